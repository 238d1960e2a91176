// Crash and fault-injection tests: what survives a power loss at any point, torn writes, bit
// flips, stale and missing segments, ENOSPC and EIO.
#include <doctest/doctest.h>

#include <cerrno>
#include <random>
#include <thread>

#include "harness.h"
#include "model.h"
#include "raftd/wal/recovery.h"

namespace raftd::wal {
namespace {

using testing::append_one;
using testing::Harness;
using testing::Model;
using testing::reseal_frame;

constexpr size_t kPayloadMax = 300;

// Runs `turns` turns of random staging; each turn is one batch. Stops early when the file
// system stopped or the WAL failed. Returns false if it stopped early.
bool run_turns(Harness& h, Model& m, std::mt19937_64& rng, int turns, uint64_t groups,
               int groups_per_turn) {
  for (int t = 0; t < turns; ++t) {
    m.stage_turn(*h.wal, rng, groups, groups_per_turn);
    size_t before = h.durable.size();
    h.settle();
    if (h.durable.size() > before) m.commit_turn();
    if (h.env.stopped() || h.failed) return false;
  }
  return true;
}

TEST_CASE("wal::Wal: a crash at every write boundary loses nothing that was reported durable") {
  constexpr uint64_t kSeed = 20261126;
  constexpr int kTurns = 80;
  // Count the mutating file operations of the whole workload once.
  uint64_t total_ops = 0;
  {
    Harness h;
    REQUIRE(h.open().is_ok());
    Model m(kPayloadMax);
    std::mt19937_64 rng(kSeed);
    uint64_t before = h.env.mutating_ops();
    REQUIRE(run_turns(h, m, rng, kTurns, 4, 3));
    total_ops = h.env.mutating_ops() - before;
    CHECK(h.wal->segment_sequences().size() >= 2);  // the workload rolls over
  }
  REQUIRE(total_ops > 50);
  for (uint64_t n = 0; n <= total_ops; ++n) {
    Harness h;
    REQUIRE(h.open().is_ok());
    Model m(kPayloadMax);
    std::mt19937_64 rng(kSeed);
    h.env.stop_after_ops(n);
    run_turns(h, m, rng, kTurns, 4, 3);
    h.crash();
    std::string ctx = fmt::format("crash after {} of {} operations", n, total_ops);
    Status s = h.open();
    REQUIRE_MESSAGE(s.is_ok(), ctx, ": ", s.to_string());
    m.check(*h.wal, /*exact=*/true, ctx);
  }
}

// Stages one more turn whose write lands but whose fdatasync never happens, then crashes
// keeping part of it. Returns the fail-stop info of the interrupted batch.
FailStopInfo interrupted_turn(Harness& h, Model& m, std::mt19937_64& rng) {
  while (h.wal->idle()) m.stage_turn(*h.wal, rng, 4, 3);  // a turn may stage nothing
  h.env.stop_after_ops(1);  // the write succeeds, the fdatasync does not
  h.settle();
  REQUIRE(h.failed.has_value());
  return *h.failed;
}

TEST_CASE("wal::Wal: a write torn at a random byte of the last batch is cut, nothing else") {
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    Harness h;
    REQUIRE(h.open().is_ok());
    Model m(kPayloadMax);
    std::mt19937_64 rng(seed);
    REQUIRE(run_turns(h, m, rng, int(5 + seed % 20), 4, 3));
    FailStopInfo info = interrupted_turn(h, m, rng);
    uint64_t unsynced = h.env.unsynced_bytes(info.path);
    REQUIRE(unsynced == info.bytes);
    uint64_t keep = 1 + rng() % (unsynced - 1);
    h.crash(keep);
    std::string ctx = fmt::format("seed {} kept {} of {} bytes", seed, keep, unsynced);
    Status s = h.open();
    REQUIRE_MESSAGE(s.is_ok(), ctx, ": ", s.to_string());
    m.check(*h.wal, /*exact=*/false, ctx);
    if (const auto& torn = h.wal->recovered_torn_tail()) {
      CHECK(torn->path == info.path);
      CHECK(torn->offset >= info.offset);
      CHECK(torn->offset < info.offset + info.bytes);
    }
    // The cut tail was zeroed: the log keeps working and reopens cleanly.
    auto recovered = m.check(*h.wal, false, ctx);
    m.reset_to(recovered);
    REQUIRE(run_turns(h, m, rng, 5, 4, 3));
    h.crash();
    REQUIRE(h.open().is_ok());
    CHECK_FALSE(h.wal->recovered_torn_tail().has_value());
    m.check(*h.wal, /*exact=*/true, ctx + " after more turns");
  }
}

TEST_CASE("wal::Wal: unsynced sectors written back in any order are a torn tail, not damage") {
  for (uint64_t seed = 100; seed < 140; ++seed) {
    Harness h;
    REQUIRE(h.open().is_ok());
    Model m(kPayloadMax);
    std::mt19937_64 rng(seed);
    REQUIRE(run_turns(h, m, rng, int(5 + seed % 20), 4, 3));
    interrupted_turn(h, m, rng);
    h.exec.clear();
    h.wal.reset();
    h.env.crash_random_sectors(rng);
    std::string ctx = fmt::format("seed {}", seed);
    Status s = h.open();
    REQUIRE_MESSAGE(s.is_ok(), ctx, ": ", s.to_string());
    m.check(*h.wal, /*exact=*/false, ctx);
  }
}

// Appends to two groups until `segments` segments hold frames; no compaction.
void fill_segments(Harness& h, size_t segments) {
  uint64_t i = 1;
  while (h.wal->segment_sequences().size() < segments) {
    for (uint64_t g = 1; g <= 2; ++g) {
      REQUIRE(append_one(*h.wal, GroupId(g), LogIndex(i), Term(1), std::string(900, 'x')).is_ok());
    }
    ++i;
    h.settle();
  }
  REQUIRE(h.wal->idle());
}

TEST_CASE("wal::Wal: a bit flip in an older segment is corruption naming file and offset") {
  Harness h;
  REQUIRE(h.open().is_ok());
  fill_segments(h, 3);
  h.wal.reset();
  const std::string path = h.segment_path(1);
  h.env.flip_bit(path, kSegmentHeaderBytes + 2000, 3);
  Status s = h.open();
  REQUIRE(s.code() == Code::kCorruption);
  CHECK(s.message().find(path) != std::string::npos);
  CHECK(s.message().find("at offset") != std::string::npos);
}

TEST_CASE("wal::Wal: a bit flip in the last batch is cut as a torn tail") {
  Harness h;
  REQUIRE(h.open().is_ok());
  fill_segments(h, 2);
  uint64_t last_seq = h.wal->segment_sequences().back();
  const std::string path = h.segment_path(last_seq);
  std::vector<std::byte> before = h.env.read_raw(path);
  REQUIRE(append_one(*h.wal, GroupId(1), LogIndex(1000), Term(1), "x").code() ==
          Code::kInvalidArgument);  // a gap is refused before anything is staged
  auto info = h.wal->group(GroupId(1));
  REQUIRE(append_one(*h.wal, GroupId(1), info->last_index + 1, Term(1), "last").is_ok());
  h.settle();
  std::vector<std::byte> after = h.env.read_raw(path);
  uint64_t start = 0;
  while (start < after.size() && before[start] == after[start]) ++start;
  REQUIRE(start < after.size());
  // The batch begins with a frame's header checksum, over zeros: its first bytes can be zero too
  // (one run in 256 for the first byte, the salt being random), but not all eight, and frames
  // start at multiples of 8.
  start -= start % kFrameAlignBytes;
  h.wal.reset();
  h.env.flip_bit(path, start + 60, 0);
  REQUIRE(h.open().is_ok());
  REQUIRE(h.wal->recovered_torn_tail().has_value());
  CHECK(h.wal->recovered_torn_tail()->offset == start);
  CHECK(h.wal->group(GroupId(1))->last_index == info->last_index);
}

TEST_CASE(
    "wal::Wal: recovery reads spares by header and first slot, the next one as far as its "
    "first write reaches") {
  Harness h;
  REQUIRE(h.open().is_ok());
  REQUIRE(append_one(*h.wal, GroupId(1), LogIndex(1), Term(1), "a").is_ok());
  h.settle();
  REQUIRE(h.wal->ready_segment_count() == 2);
  h.wal.reset();
  auto log = recover_log(h.env, Harness::kDir, RecoveryMode::kReadOnly);
  REQUIRE(log.is_ok());
  REQUIRE(log->written.size() == 1);
  REQUIRE(log->spares.size() == 2);
  // The written segment (read in 1 MiB chunks, so whole), the header and first frame slot of
  // each spare (read from the newest back to find the last written segment), and the next
  // spare again as far as its first write reaches (checkpoint of one group plus one batch).
  const uint64_t reach = first_write_bytes_max(1, h.batch_bytes_max);
  CHECK(log->bytes_scanned <= h.segment_bytes + 2 * (kSegmentHeaderBytes + kFrameHeaderBytes) +
                                  (kSegmentHeaderBytes + reach));
  // A byte past the first frame slot of the second spare is never read (the writer's first
  // write into a segment starts at its first slot, and it writes the spares in order)...
  h.env.write_raw(h.segment_path(3), kSegmentHeaderBytes + 8192, {std::byte{1}});
  REQUIRE(h.open().is_ok());
  CHECK_FALSE(h.wal->recovered_torn_tail().has_value());
  h.wal.reset();
  // ...a byte inside the reach of the next spare's first write is a torn first write: cut...
  h.env.write_raw(h.segment_path(2), kSegmentHeaderBytes + 1000, {std::byte{1}});
  REQUIRE(h.open().is_ok());
  REQUIRE(h.wal->recovered_torn_tail().has_value());
  CHECK(h.wal->recovered_torn_tail()->path == h.segment_path(2));
  CHECK(h.wal->recovered_torn_tail()->offset == kSegmentHeaderBytes);
  CHECK(h.env.read_raw(h.segment_path(2))[kSegmentHeaderBytes + 1000] == std::byte{0});
  CHECK(h.wal->group(GroupId(1))->last_index == LogIndex(1));
  h.wal.reset();
  // ...and a frame header in the first slot of a spare that is not the next to be written is
  // corruption (it makes that segment the last written one, after an unwritten one).
  h.env.write_raw(h.segment_path(3), kSegmentHeaderBytes, {std::byte{1}});
  Status s = h.open();
  REQUIRE(s.code() == Code::kCorruption);
  CHECK(s.message().find(h.segment_path(2) + " at offset 4096") != std::string::npos);
  CHECK(s.message().find("never written") != std::string::npos);
}

TEST_CASE("wal::Wal: the zero tail of the last segment is checked within one write's reach") {
  Harness h;
  REQUIRE(h.open().is_ok());
  REQUIRE(append_one(*h.wal, GroupId(1), LogIndex(1), Term(1), "a").is_ok());
  h.settle();
  h.wal.reset();
  auto log = recover_log(h.env, Harness::kDir, RecoveryMode::kReadOnly);
  REQUIRE(log.is_ok());
  const uint64_t end = log->written.back().end_offset;
  const uint64_t window_end = end + log->written.back().header.write_bytes_max;
  REQUIRE(window_end + 4096 < h.segment_bytes);
  const std::string path = h.segment_path(1);
  // Past the window no write of the writer can have reached: not read, the log is clean.
  h.env.write_raw(path, window_end + 1024, {std::byte{7}});
  Status clean = h.open();
  REQUIRE_MESSAGE(clean.is_ok(), clean.to_string());
  CHECK_FALSE(h.wal->recovered_torn_tail().has_value());
  h.wal.reset();
  // Inside the window: what a torn last write leaves, cut with a warning.
  h.env.write_raw(path, end + 100, {std::byte{7}});
  REQUIRE(h.open().is_ok());
  REQUIRE(h.wal->recovered_torn_tail().has_value());
  CHECK(h.wal->recovered_torn_tail()->offset == end);
  CHECK(h.wal->group(GroupId(1))->last_index == LogIndex(1));
}

TEST_CASE("wal::Wal: a batch torn behind some of its frames is cut whole (batches are atomic)") {
  Harness h;
  REQUIRE(h.open().is_ok());
  REQUIRE(append_one(*h.wal, GroupId(1), LogIndex(1), Term(1), "a").is_ok());
  h.settle();
  const std::string path = h.segment_path(1);
  std::vector<std::byte> before = h.env.read_raw(path);
  // One batch of two frames: ENTRIES, then HARD_STATE (the BATCH_END frame).
  REQUIRE(append_one(*h.wal, GroupId(1), LogIndex(2), Term(1), "b").is_ok());
  REQUIRE(h.wal->set_hard_state(GroupId(1), HardState{Term(1), NodeId(1), LogIndex(1)}).is_ok());
  h.settle();
  std::vector<std::byte> after = h.env.read_raw(path);
  uint64_t start = 0;
  while (start < after.size() && before[start] == after[start]) ++start;
  REQUIRE(start < after.size());
  h.wal.reset();
  const uint64_t second_frame = start + frame_bytes(kEntriesBlockBytes + kEntryHeaderBytes + 8);
  h.env.flip_bit(path, second_frame + 60, 0);
  REQUIRE(h.open().is_ok());
  REQUIRE(h.wal->recovered_torn_tail().has_value());
  CHECK(h.wal->recovered_torn_tail()->offset == start);
  CHECK(h.wal->recovered_torn_tail()->damage_offset == second_frame);
  CHECK(h.wal->group(GroupId(1))->last_index == LogIndex(1));  // the intact first frame too
  CHECK(h.wal->group(GroupId(1))->hard == HardState{});
  // The cut region was zeroed, so the writer goes on where the cut batch began.
  REQUIRE(append_one(*h.wal, GroupId(1), LogIndex(2), Term(1), "c").is_ok());
  h.settle();
  CHECK(h.wal->segment_sequences().back() == 1);
  REQUIRE(h.open().is_ok());
  CHECK_FALSE(h.wal->recovered_torn_tail().has_value());
  CHECK(h.wal->group(GroupId(1))->last_index == LogIndex(2));
  auto r = h.wal->read(GroupId(1), LogIndex(2), LogIndex(3), 100);
  REQUIRE(r.is_ok());
  CHECK(r->at(0).data == "c");
}

TEST_CASE("wal::Wal: a stale segment with the wrong salt is corruption") {
  Harness h;
  REQUIRE(h.open().is_ok());
  fill_segments(h, 3);
  h.wal.reset();
  const std::string path = h.segment_path(2);
  std::vector<std::byte> raw = h.env.read_raw(path);
  SegmentHeader hdr;
  REQUIRE(decode_segment_header(raw, &hdr) == HeaderError::kOk);
  hdr.salt ^= 0x5a5a5a5a;  // a valid header from "another life" of the file
  std::vector<std::byte> enc(kSegmentHeaderBytes);
  encode_segment_header(hdr, std::span<std::byte, kSegmentHeaderBytes>(enc.data(), enc.size()));
  h.env.write_raw(path, 0, enc);
  Status s = h.open();
  REQUIRE(s.code() == Code::kCorruption);
  CHECK(s.message().find(path + " at offset 4096") != std::string::npos);
  CHECK(s.message().find("salt") != std::string::npos);
}

TEST_CASE("wal::Wal: a missing segment is corruption") {
  Harness h;
  REQUIRE(h.open().is_ok());
  fill_segments(h, 3);
  h.wal.reset();
  REQUIRE(h.env.remove(h.segment_path(2)).is_ok());
  REQUIRE(h.env.sync_dir(Harness::kDir).is_ok());
  Status s = h.open();
  REQUIRE(s.code() == Code::kCorruption);
  CHECK(s.message().find("gap in the segment sequence") != std::string::npos);
  CHECK(s.message().find(segment_file_name(2)) != std::string::npos);
}

TEST_CASE("wal::Wal: a broken chain between segments is corruption, even in the last batch") {
  Harness h;
  REQUIRE(h.open().is_ok());
  fill_segments(h, 3);
  h.wal.reset();
  const std::string path = h.segment_path(3);
  // An intact frame (both checksums match) that does not chain to the frame before it was
  // written that way: not a torn write, wherever it is.
  reseal_frame(h.env, path, kSegmentHeaderBytes,
               [](FrameHeader& f, std::vector<std::byte>&) { f.prev_checksum ^= 1; });
  Status s = h.open();
  REQUIRE(s.code() == Code::kCorruption);
  CHECK(s.message().find(path + " at offset 4096") != std::string::npos);
  CHECK(s.message().find("broken chain") != std::string::npos);
}

TEST_CASE("wal::Wal: ENOSPC on a batch write is fail-stop") {
  Harness h;
  REQUIRE(h.open().is_ok());
  REQUIRE(append_one(*h.wal, GroupId(1), LogIndex(1), Term(1), "a").is_ok());
  h.settle();
  h.env.fail_writes_after(0, ENOSPC);
  REQUIRE(append_one(*h.wal, GroupId(1), LogIndex(2), Term(1), "b").is_ok());
  h.settle();
  REQUIRE(h.failed.has_value());
  CHECK(h.failed->error == ENOSPC);
  CHECK(h.failed->path == h.segment_path(1));
  CHECK(h.wal->failed());
  CHECK(append_one(*h.wal, GroupId(1), LogIndex(3), Term(1), "c").code() == Code::kAborted);
  CHECK(h.durable.size() == 1);
}

TEST_CASE("wal::Wal: ENOSPC while preparing segments stalls the roll-over, then recovers") {
  Harness h;
  REQUIRE(h.open().is_ok());
  REQUIRE(h.wal->ready_segment_count() == 2);
  h.env.fail_writes_after(0, ENOSPC, ".prep");
  uint64_t i = 1;
  while (h.wal->stats().roll_waits == 0 && i < 1000) {
    REQUIRE(append_one(*h.wal, GroupId(1), LogIndex(i++), Term(1), std::string(1000, 'y')).is_ok());
    h.settle();
  }
  CHECK(h.wal->stats().roll_waits > 0);
  CHECK_FALSE(h.failed.has_value());
  CHECK_FALSE(h.wal->idle());
  h.env.clear_faults();
  std::this_thread::sleep_for(std::chrono::milliseconds(4 * Harness::kPrepareRetryMs));
  h.wal->flush();  // a turn after the retry delay prepares again
  h.settle();
  CHECK(h.wal->idle());
  CHECK(h.wal->group(GroupId(1))->last_index == LogIndex(i - 1));
  CHECK(h.durable.back().last_index == LogIndex(i - 1));
}

TEST_CASE("wal::Wal: EIO on fdatasync is fail-stop and never retried") {
  Harness h;
  REQUIRE(h.open().is_ok());
  REQUIRE(append_one(*h.wal, GroupId(1), LogIndex(1), Term(1), "a").is_ok());
  h.settle();
  h.env.fail_sync(1, EIO);
  REQUIRE(append_one(*h.wal, GroupId(1), LogIndex(2), Term(1), "b").is_ok());
  h.settle();
  REQUIRE(h.failed.has_value());
  CHECK(h.failed->error == EIO);
  CHECK(h.failed->offset > 0);
  uint64_t syncs = h.env.sync_count();
  CHECK(append_one(*h.wal, GroupId(1), LogIndex(2), Term(1), "b").code() == Code::kAborted);
  h.wal->flush();
  h.settle();
  CHECK(h.env.sync_count() == syncs);
  CHECK(h.durable.size() == 1);
  h.crash();
  REQUIRE(h.open().is_ok());
  CHECK(h.wal->group(GroupId(1))->last_index == LogIndex(1));
}

TEST_CASE("wal::Wal: short writes are completed before the fdatasync") {
  Harness h;
  REQUIRE(h.open().is_ok());
  h.env.set_max_write_bytes(100);
  Model m(kPayloadMax);
  std::mt19937_64 rng(7);
  REQUIRE(run_turns(h, m, rng, 10, 4, 3));
  h.crash();
  REQUIRE(h.open().is_ok());
  m.check(*h.wal, /*exact=*/true, "short writes");
}

}  // namespace
}  // namespace raftd::wal

namespace raftd::wal {
namespace {

using testing::append_one;
using testing::Harness;

// Recovery measures the torn-tail window with each segment's write_bytes_max, fixed when the
// segment was prepared: a writer restarted with a larger batch limit must not write batches
// that large into segments prepared for smaller ones.
TEST_CASE("wal::Wal: a larger batch limit after a restart replaces spares and rolls over") {
  Harness h;
  h.segment_bytes = 256 * 1024;
  h.batch_bytes_max = 16 * 1024;
  REQUIRE(h.open().is_ok());
  REQUIRE(append_one(*h.wal, GroupId(1), LogIndex(1), Term(1), "a").is_ok());
  h.settle();
  REQUIRE(h.wal->ready_segment_count() == 2);
  h.wal.reset();
  h.batch_bytes_max = 64 * 1024;
  REQUIRE(h.open().is_ok());
  auto log = recover_log(h.env, Harness::kDir, RecoveryMode::kReadOnly);
  REQUIRE(log.is_ok());
  REQUIRE(log->spares.size() == 2);
  for (const SegmentSummary& s : log->spares) CHECK(s.header.write_bytes_max == 64 * 1024);
  // A 40 KiB batch: more than segment 1 may take after its first write, so it goes to 2.
  REQUIRE(append_one(*h.wal, GroupId(1), LogIndex(2), Term(1), std::string(40000, 'b')).is_ok());
  h.settle();
  CHECK(h.wal->segment_sequences() == std::vector<uint64_t>{1, 2});
  CHECK_FALSE(h.failed.has_value());
  REQUIRE(h.open().is_ok());
  CHECK(h.wal->group(GroupId(1))->last_index == LogIndex(2));
  CHECK(h.wal->read(GroupId(1), LogIndex(2), LogIndex(3), 1)->at(0).data.size() == 40000);
}

}  // namespace
}  // namespace raftd::wal
