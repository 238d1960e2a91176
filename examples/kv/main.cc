// raftd-kv: the example key-value application of raftd (examples/README.md, examples/kv/README.md).
// Usage: raftd-kv --listen 127.0.0.1:PORT --data-dir DIR [--token T] [--sync-mode]
// One reactor thread serves HTTP and writes the log. The first line on stdout is
// "listening on HOST:PORT" (PORT 0 picks a free port). SIGTERM or SIGINT stops it cleanly.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>

#include "kv_handler.h"
#include "kv_log.h"
#include "kv_snapshot.h"
#include "kv_store.h"
#include "raftd/app/codec.h"
#include "raftd/base/log.h"
#include "raftd/http/server.h"
#include "raftd/io/reactor.h"

namespace {

using namespace raftd;  // NOLINT: a small program's main file

// Set by the signal handler, polled by a timer: Reactor::stop() must run on its thread.
volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

struct Options {
  std::string listen;
  std::string data_dir;
  std::optional<std::string> token;
  bool sync_mode = false;
};

Result<std::pair<std::string, std::uint16_t>> parse_listen(const std::string& text) {
  const auto colon = text.rfind(':');
  unsigned port = 0;
  if (colon == std::string::npos || colon == 0) {
    return Status(Code::kInvalidArgument, "--listen wants HOST:PORT, got " + text);
  }
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data() + colon + 1, end, port);
  if (ec != std::errc() || ptr != end || port > 65535 || colon + 1 == text.size()) {
    return Status(Code::kInvalidArgument, "--listen: bad port in " + text);
  }
  return std::pair{text.substr(0, colon), static_cast<std::uint16_t>(port)};
}

// Opens DIR/kv.log, created if missing (and the directory synced, so the new name survives a
// crash), locked so that two processes never write one log.
Result<int> open_log(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status(Code::kIoError, "create " + dir + ": " + ec.message());
  const std::string path = dir + "/kv.log";
  const bool existed = std::filesystem::exists(path, ec);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::from_errno(errno, "open " + path);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    Status s = Status::from_errno(errno, path + " is in use by another raftd-kv");
    ::close(fd);
    return s;
  }
  if (!existed) {
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || ::fsync(dfd) != 0) {
      Status s = Status::from_errno(errno, "fsync of " + dir);
      if (dfd >= 0) ::close(dfd);
      ::close(fd);
      return s;
    }
    ::close(dfd);
  }
  return fd;
}

int run(const Options& opt) {
  auto listen = parse_listen(opt.listen);
  if (!listen) {
    std::fprintf(stderr, "raftd-kv: %s\n", listen.status().message().c_str());
    return 2;
  }
  Result<int> fd = open_log(opt.data_dir);
  if (!fd) {
    std::fprintf(stderr, "raftd-kv: %s\n", fd.status().to_string().c_str());
    return 1;
  }
  kv::Store store;
  std::uint64_t torn = 0;
  if (Status s = kv::replay(
          *fd, [&store](kv::LogRecord&& r) { store.replay(std::move(r)); }, torn);
      !s) {
    std::fprintf(stderr, "raftd-kv: %s\n", s.to_string().c_str());
    return 1;
  }
  if (torn > 0)
    log::warn("raftd-kv: cut a torn tail of {} bytes off {}/kv.log", torn, opt.data_dir);
  const off_t end = ::lseek(*fd, 0, SEEK_END);
  log::info("raftd-kv: replayed {} bytes, {} groups", end, store.group_count());

  // Its clients are one raftd's pool (at most 64 connections) and a few readers: the reactor's
  // default 128 receive buffers of 16 KiB (2 MiB, doc/io.md) are plenty.
  auto reactor = io::Reactor::create();
  if (!reactor) {
    std::fprintf(stderr, "raftd-kv: %s\n", reactor.status().to_string().c_str());
    return 1;
  }
  io::Reactor& r = *reactor.value();
  kv::Log kvlog(r, *fd, static_cast<std::uint64_t>(end), !opt.sync_mode);
  kv::KvHandler handler(store, kvlog, kv::HandlerOptions{opt.token, opt.sync_mode});
  http::ServerOptions so;
  so.host = listen->first;
  so.port = listen->second;
  // A snapshot's limit; the handler holds every other call to app::kBatchBytesMax.
  so.body_bytes_max = kv::kSnapshotBytesMax;
  auto server = http::Server::start(r, handler, so);
  if (!server) {
    std::fprintf(stderr, "raftd-kv: %s\n", server.status().to_string().c_str());
    return 1;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  io::RepeatingTimer stopper(r, std::chrono::milliseconds(50), [&r] {
    if (g_stop != 0) r.stop();
  });
  stopper.start();
  std::printf("listening on %s:%u\n", so.host.c_str(), server.value()->port());
  std::fflush(stdout);
  r.run();

  // Stop taking calls, write out what was appended, then let every op end.
  stopper.stop();
  server.value()->close();
  kvlog.close();
  while (!kvlog.idle() || !server.value()->closed() || stopper.active()) {
    r.run_once(std::chrono::milliseconds(10));
  }
  server.value().reset();
  r.shutdown();
  ::close(*fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{"raftd-kv: example key-value application for raftd (examples/README.md)",
               "raftd-kv"};
  app.add_option("--listen", opt.listen, "HOST:PORT to serve raftd's calls on (PORT 0: any)")
      ->required();
  app.add_option("--data-dir", opt.data_dir, "directory of the log file kv.log")->required();
  app.add_option("--token", opt.token, "require Authorization: Bearer TOKEN on every call");
  app.add_flag("--sync-mode", opt.sync_mode,
               "answer UpdateEntries before the batch is durable; POST /Sync makes it durable "
               "(raftd's app.sync = true)");
  CLI11_PARSE(app, argc, argv);
  return run(opt);
}
