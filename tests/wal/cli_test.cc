// The raftd binary's `wal verify` / `wal inspect` exit codes and messages on good and damaged
// WALs, including one flipped bit in every byte of the last two batches. RAFTD_BIN names the
// binary (set by meson).
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

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

std::string make_temp_dir() {
  auto dir = std::filesystem::temp_directory_path() / "raftd-cli-test-XXXXXX";
  std::string d = dir.string();
  REQUIRE(::mkdtemp(d.data()) != nullptr);
  return d;
}

void flip(const std::string& path, uint64_t offset, int bit) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  REQUIRE(f.good());
  f.seekg(std::streamoff(offset));
  char c = 0;
  f.read(&c, 1);
  c = char(c ^ (1 << bit));
  f.seekp(std::streamoff(offset));
  f.write(&c, 1);
}

// Writes a WAL with three segments into dir through the real file system, then `small` more
// small batches.
void write_wal(const std::string& dir, int small = 0) {
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
  for (int k = 0; k < small; ++k) {
    // Two frames (ENTRIES, HARD_STATE), except the very last batch: one HARD_STATE frame.
    LogIndex next = wal.group(GroupId(1))->last_index + 1;
    std::string d1 = fmt::format("s{}", k);
    EntryView e{Term(2), 0, std::as_bytes(std::span(d1))};
    if (k + 1 < small) REQUIRE(wal.append(GroupId(1), next, std::span(&e, 1)).is_ok());
    REQUIRE(wal.set_hard_state(GroupId(1), HardState{Term(2), NodeId(1), next - 1}).is_ok());
    wal.flush();
    while (!wal.idle() || exec.pending() > 0) {
      exec.run_pending();
      wal.flush();
    }
  }
}

TEST_CASE("raftd wal verify/inspect: exit 0 on a good WAL, 1 on a damaged one, 2 on misuse") {
  std::string d = make_temp_dir();
  write_wal(d);

  Run ok = run("wal verify " + d);
  CHECK(ok.code == 0);
  CHECK(ok.output.find("ok:") != std::string::npos);
  Run inspect = run("wal inspect " + d);
  CHECK(inspect.code == 0);
  CHECK(inspect.output.find("group 1:") != std::string::npos);
  CHECK(inspect.output.find("0000000000000001.wal") != std::string::npos);
  CHECK(inspect.output.find("batches 1..") != std::string::npos);
  // What keeps each segment: group 1's live entries are in the oldest.
  CHECK(inspect.output.find("kept by") != std::string::npos);
  CHECK(inspect.output.find("segment seq 1 (oldest): group 1 (") != std::string::npos);
  Run frames = run("wal inspect --frames " + d);
  CHECK(frames.code == 0);
  CHECK(frames.output.find("batch 1.0 CHECKPOINT") != std::string::npos);

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
  // Read-only: nothing was cut, and nothing says so.
  CHECK(torn.output.find("; cut") == std::string::npos);
  CHECK(torn.output.find("cutting") == std::string::npos);
  CHECK(run("wal verify " + d).output == torn.output);

  // Damage the oldest segment in the middle of its frames.
  std::string seg = d + "/0000000000000001.wal";
  flip(seg, 5000, 2);
  Run bad = run("wal verify " + d);
  CHECK(bad.code == 1);
  CHECK(bad.output.find(seg) != std::string::npos);
  CHECK(bad.output.find("at offset") != std::string::npos);
  CHECK(run("wal inspect " + d).code == 1);
  std::filesystem::remove_all(d);
}

// One flipped bit in every byte of the last two batches (the bit varies with the byte), through
// the binary: in the last batch a torn tail (exit 0, a warning naming the file and where the
// batch starts), in the batch before it damage (exit 1, naming the file and the damaged frame).
TEST_CASE("raftd wal verify: a flip in the last batch is a torn tail, in the one before damage") {
  std::string d = make_temp_dir();
  write_wal(d, 2);
  struct FrameLister final : FrameObserver {
    void on_segment(const SegmentSummary&, bool) override {}
    void on_frame(const SegmentSummary& s, uint64_t off, const FrameHeader& h,
                  std::span<const std::byte>) override {
      frames.push_back({s.path, off, h.batch});
    }
    struct F {
      std::string path;
      uint64_t offset;
      uint64_t batch;
    };
    std::vector<F> frames;
  } lister;
  auto log = recover_log(posix_env(), d, RecoveryMode::kReadOnly, &lister);
  REQUIRE(log.is_ok());
  const SegmentSummary& seg = log->written.back();
  const uint64_t last_batch = seg.last_batch;
  uint64_t starts[3] = {0, 0, seg.end_offset};  // batch last-1 start, last start, end
  for (const auto& f : lister.frames) {
    if (f.path != seg.path) continue;
    if (f.batch == last_batch - 1 && starts[0] == 0) starts[0] = f.offset;
    if (f.batch == last_batch && starts[1] == 0) starts[1] = f.offset;
  }
  REQUIRE(starts[0] > kSegmentHeaderBytes);
  REQUIRE(starts[1] > starts[0]);
  int torn = 0;
  int damaged = 0;
  for (uint64_t at = starts[0]; at < starts[2]; ++at) {
    const int bit = int(at % 8);
    INFO("byte ", at, " bit ", bit);
    flip(seg.path, at, bit);
    Run r = run("wal verify " + d);
    flip(seg.path, at, bit);
    if (at >= starts[1]) {
      CHECK(r.code == 0);
      CHECK_MESSAGE(r.output.find(fmt::format("warning: torn tail: {} at offset {}", seg.path,
                                              starts[1])) != std::string::npos,
                    r.output);
      ++torn;
    } else {
      uint64_t frame = 0;
      for (const auto& f : lister.frames) {
        if (f.path == seg.path && f.offset <= at) frame = std::max(frame, f.offset);
      }
      CHECK(r.code == 1);
      CHECK_MESSAGE(r.output.find(fmt::format(
                        "raftd wal verify: damaged: {} at offset {}: ", seg.path, frame)) == 0,
                    r.output);
      ++damaged;
    }
  }
  CHECK(torn == int(starts[2] - starts[1]));
  CHECK(damaged == int(starts[1] - starts[0]));
  CHECK(run("wal verify " + d).code == 0);
  std::filesystem::remove_all(d);
}

TEST_CASE("raftd wal verify: headers, unwritten segments between written ones, empty dirs") {
  std::string d = make_temp_dir();
  CHECK(run("wal verify " + d).output.find("ok: 0 segments") == 0);
  write_wal(d);
  auto log = recover_log(posix_env(), d, RecoveryMode::kReadOnly);
  REQUIRE(log.is_ok());
  const std::string last = log->written.back().path;
  // A damaged header of the last segment: synced before use, so damage, at offset 0.
  flip(last, 30, 0);
  Run header = run("wal verify " + d);
  CHECK(header.code == 1);
  CHECK_MESSAGE(header.output.find("damaged: " + last + " at offset 0: segment header checksum") !=
                    std::string::npos,
                header.output);
  flip(last, 30, 0);
  flip(last, 2000, 0);  // the header's zero area
  Run zero = run("wal verify " + d);
  CHECK(zero.code == 1);
  CHECK(zero.output.find(last + " at offset 0: non-zero byte in the header's zero area (byte "
                                "2000)") != std::string::npos);
  flip(last, 2000, 0);
  // A written segment made to look unwritten (its first frame slot zeroed) between written ones
  // is named, not the healthy segment after it.
  const std::string middle = log->written[1].path;
  {
    std::fstream f(middle, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(std::streamoff(kSegmentHeaderBytes));
    std::string zeros(kFrameHeaderBytes, '\0');
    f.write(zeros.data(), std::streamsize(zeros.size()));
  }
  Run gap = run("wal verify " + d);
  CHECK(gap.code == 1);
  CHECK_MESSAGE(gap.output.find("damaged: " + middle +
                                " at offset 4096: the first frame slot is "
                                "zero") != std::string::npos,
                gap.output);
  std::filesystem::remove_all(d);
}

}  // namespace
}  // namespace raftd::wal
