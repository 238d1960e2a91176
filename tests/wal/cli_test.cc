// The raftd binary's `wal verify` / `wal inspect` exit codes on a good and a damaged WAL.
// RAFTD_BIN names the binary (set by meson).
#include <doctest/doctest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "raftd/wal/recovery.h"
#include "raftd/wal/sync_writer.h"
#include "raftd/wal/wal.h"

namespace raftd::wal {
namespace {

struct Run {
  int code;
  std::string output;
};

Run run(const std::string& args) {
  const char* bin = std::getenv("RAFTD_BIN");
  REQUIRE_MESSAGE(bin != nullptr, "RAFTD_BIN is not set");
  std::string cmd = std::string(bin) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int status = ::pclose(p);
  REQUIRE(WIFEXITED(status));
  return {WEXITSTATUS(status), out};
}

// Writes a WAL with three segments into dir through the real file system.
void write_wal(const std::string& dir) {
  ManualExecutor exec;
  FileSyncWriter writer(exec);
  WalOptions o;
  o.segment_bytes = kSegmentBytesMin;
  o.batch_bytes_max = 16 * 1024;
  o.prepare_on_thread = false;
  o.on_durable = [](std::span<const Durable>) {};
  auto w = Wal::open(posix_env(), dir, std::move(o), exec, writer);
  REQUIRE(w.is_ok());
  Wal& wal = **w;
  std::string data(900, 'd');
  for (uint64_t i = 1; wal.segment_sequences().size() < 3; ++i) {
    EntryView e{Term(1), 0, std::as_bytes(std::span(data))};
    REQUIRE(wal.append(GroupId(1), LogIndex(i), std::span(&e, 1)).is_ok());
    wal.flush();
    exec.run_pending();
  }
  while (!wal.idle() || exec.pending() > 0) {
    wal.flush();
    exec.run_pending();
  }
}

TEST_CASE("raftd wal verify/inspect: exit 0 on a good WAL, 1 on a damaged one, 2 on misuse") {
  auto dir = std::filesystem::temp_directory_path() / "raftd-cli-test-XXXXXX";
  std::string d = dir.string();
  REQUIRE(::mkdtemp(d.data()) != nullptr);
  write_wal(d);

  Run ok = run("wal verify " + d);
  CHECK(ok.code == 0);
  CHECK(ok.output.find("ok:") != std::string::npos);
  Run inspect = run("wal inspect " + d);
  CHECK(inspect.code == 0);
  CHECK(inspect.output.find("group 1:") != std::string::npos);
  CHECK(inspect.output.find("0000000000000001.wal") != std::string::npos);

  CHECK(run("wal verify").code == 2);
  CHECK(run("wal verify " + d + "/no-such-dir").code == 2);
  CHECK(run("wal verify --help").code == 0);
  CHECK(run("wal inspect --help").code == 0);
  CHECK(run("version").code == 0);

  // Garbage right after the last frame of the last segment looks like a torn, unacknowledged
  // batch: verify warns but exits 0 (the next start cuts it).
  {
    auto log = recover_log(posix_env(), d, RecoveryMode::kReadOnly);
    REQUIRE(log.is_ok());
    const SegmentSummary& last = log->written.back();
    std::fstream f(last.path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(std::streamoff(last.end_offset + 8));
    std::string junk(100, char(0xab));
    f.write(junk.data(), std::streamsize(junk.size()));
  }
  Run torn = run("wal verify " + d);
  CHECK(torn.code == 0);
  CHECK(torn.output.find("warning: torn tail") != std::string::npos);

  // Damage the oldest segment in the middle of its frames.
  std::string seg = d + "/0000000000000001.wal";
  {
    std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(5000);
    char c = 0;
    f.read(&c, 1);
    c = char(c ^ 0x04);
    f.seekp(5000);
    f.write(&c, 1);
  }
  Run bad = run("wal verify " + d);
  CHECK(bad.code == 1);
  CHECK(bad.output.find(seg) != std::string::npos);
  CHECK(bad.output.find("at offset") != std::string::npos);
  CHECK(run("wal inspect " + d).code == 1);
  std::filesystem::remove_all(d);
}

}  // namespace
}  // namespace raftd::wal
