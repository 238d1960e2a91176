// raftd-bench-http: an HTTP/1.1 server on raftd's HTTP layer that answers every request with
// the same small response, for comparing against nginx under wrk (bench/http/run.sh).
// Usage: raftd-bench-http [--port N] [--host 127.0.0.1]
// One reactor thread, like nginx with one worker. Stops on SIGINT/SIGTERM.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "raftd/http/server.h"

namespace {

constexpr std::string_view kBody = "Hello, World!\n";

class FixedHandler final : public raftd::http::Handler {
 public:
  void on_headers(raftd::http::Exchange& ex) override { (void)ex; }
  void on_end(raftd::http::Exchange& ex) override { ex.respond(200, kBody); }
};

// Set by the signal handler, polled by a timer: Reactor::stop() is not async-signal-safe.
volatile std::sig_atomic_t g_stop = 0;

void on_signal(int) { g_stop = 1; }

int usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s [--port N] [--host IPV4]\n", argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  raftd::http::ServerOptions options;
  options.port = 8080;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      options.port = static_cast<std::uint16_t>(std::atoi(argv[++i]));
    } else if (std::strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
      options.host = argv[++i];
    } else {
      return usage(argv[0]);
    }
  }
  raftd::io::ReactorOptions ro;
  ro.sq_entries = 1024;
  auto reactor = raftd::io::Reactor::create(ro);
  if (!reactor) {
    std::fprintf(stderr, "raftd-bench-http: %s\n", reactor.status().to_string().c_str());
    return 1;
  }
  FixedHandler handler;
  auto server = raftd::http::Server::start(*reactor.value(), handler, options);
  if (!server) {
    std::fprintf(stderr, "raftd-bench-http: %s\n", server.status().to_string().c_str());
    return 1;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  raftd::io::Reactor& r = *reactor.value();
  raftd::io::RepeatingTimer stopper(r, std::chrono::milliseconds(100), [&r] {
    if (g_stop != 0) r.stop();
  });
  stopper.start();
  std::printf("raftd-bench-http listening on %s:%u\n", options.host.c_str(),
              server.value()->port());
  std::fflush(stdout);
  r.run();
  stopper.stop();
  server.value()->close();
  r.shutdown();
  return 0;
}
