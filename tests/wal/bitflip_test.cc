// Every bit of the last two batches, flipped one at a time (doc/wal-format.md, recovery rules 4
// and 5): a flip in the last batch is a torn tail (that batch is cut, every earlier batch
// survives); a flip in the batch before it is corruption naming the file and the offset of the
// damaged frame, because the complete batch after it proves it was acknowledged. Every bit is
// checked against read-only recovery; one bit of every byte also against `verify` and repair
// (in process; cli_test.cc runs the binary on one bit of every byte).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>

#include "harness.h"
#include "raftd/wal/inspect.h"
#include "raftd/wal/recovery.h"

namespace raftd::wal {
namespace {

using testing::append_one;
using testing::FrameAt;
using testing::Harness;
using testing::list_frames;
using testing::LogView;
using testing::view_of;

struct BatchRange {
  std::string path;
  uint64_t start = 0;
  uint64_t end = 0;
  uint64_t batch = 0;
};

// A log whose last two batches are small and known byte for byte.
struct Scenario {
  Harness h;
  std::vector<BatchRange> batches;  // the last two, oldest first
  LogView before_last;              // the state every flip in the last batch must recover
  std::vector<FrameAt> frames;      // every frame, to name the damaged one
  std::vector<std::string> paths;   // segment files
  std::vector<std::vector<std::byte>> originals;
};

// One turn: entries for two groups and a hard state, so a batch has two frames (ENTRIES, then
// HARD_STATE, which ends the batch).
void small_batch(Harness& h, uint64_t i) {
  REQUIRE(append_one(*h.wal, GroupId(1), LogIndex(i), Term(1), fmt::format("one-{}", i)).is_ok());
  REQUIRE(append_one(*h.wal, GroupId(2), LogIndex(i), Term(2), std::string(i % 13, 'q')).is_ok());
  REQUIRE(h.wal->set_hard_state(GroupId(1), HardState{Term(1), NodeId(2), LogIndex(i)}).is_ok());
  h.settle();
}

void restore(Scenario& sc) {
  for (size_t k = 0; k < sc.paths.size(); ++k) sc.h.env.write_raw(sc.paths[k], 0, sc.originals[k]);
}

// Appends batches until the log rolls into a second segment, then `after_roll` more; the last
// two batches are recorded. after_roll = 0: the last batch is the second segment's only one and
// the one before it ends the first segment; 1: the last segment holds its first write and one
// batch; 4: both lie in the middle of the last segment.
void build(Scenario& sc, int after_roll) {
  Harness& h = sc.h;
  REQUIRE(h.open().is_ok());
  uint64_t i = 1;
  uint64_t end = kSegmentHeaderBytes;  // where the log ends in the first segment
  // Bulk first, so the roll-over comes after about a hundred small batches, not thousands.
  while (h.wal->segment_sequences().size() < 2 || after_roll-- > 0) {
    const bool bulk = h.wal->segment_sequences().size() < 2 && end < h.segment_bytes - 24 * 1024;
    if (bulk) {
      REQUIRE(append_one(*h.wal, GroupId(3), LogIndex(i), Term(1), std::string(3000, 'b')).is_ok());
    }
    small_batch(h, i++);
    h.wal.reset();
    auto log = recover_log(h.env, Harness::kDir, RecoveryMode::kReadOnly);
    REQUIRE(log.is_ok());
    const SegmentSummary& last = log->written.back();
    // A batch starts where the one before it ended, or at the first frame slot of a new segment
    // (the segment's first write: its checkpoint frames, then the records).
    BatchRange r{last.path, kSegmentHeaderBytes, last.end_offset, last.last_batch};
    end = log->written.front().end_offset;
    if (!sc.batches.empty() && sc.batches.back().path == r.path) r.start = sc.batches.back().end;
    sc.batches.push_back(r);
    if (sc.batches.size() > 2) sc.batches.erase(sc.batches.begin());
    REQUIRE(h.open().is_ok());
  }
  // The state after the batch before the last, from a log without the last batch: recovery of a
  // copy with the last batch zeroed.
  h.wal.reset();
  sc.frames = list_frames(h.env, Harness::kDir);
  auto log = recover_log(h.env, Harness::kDir, RecoveryMode::kReadOnly);
  REQUIRE(log.is_ok());
  for (const auto& s : log->written) sc.paths.push_back(s.path);
  for (const auto& s : log->spares) sc.paths.push_back(s.path);
  for (const auto& p : sc.paths) sc.originals.push_back(h.env.read_raw(p));
  const BatchRange& last = sc.batches.back();
  h.env.write_raw(last.path, last.start, std::vector<std::byte>(last.end - last.start));
  auto before = recover_log(h.env, Harness::kDir, RecoveryMode::kReadOnly);
  REQUIRE_MESSAGE(before.is_ok(), before.status().to_string());
  sc.before_last = view_of(*before);
  REQUIRE(sc.before_last != view_of(*log));
  restore(sc);
}

uint64_t frame_start(const Scenario& sc, const std::string& path, uint64_t at) {
  uint64_t best = 0;
  for (const FrameAt& f : sc.frames) {
    if (f.path == path && f.offset <= at) best = std::max(best, f.offset);
  }
  return best;
}

// Flips every bit of the last two batches and checks what recovery and verify make of it.
void flip_everything(Scenario& sc) {
  FaultEnv& env = sc.h.env;
  const std::string dir = Harness::kDir;
  uint64_t torn = 0;
  uint64_t refused = 0;
  for (size_t b = 0; b < 2; ++b) {
    const BatchRange& r = sc.batches[b];
    const bool last = b == 1;
    for (uint64_t at = r.start; at < r.end; ++at) {
      for (int bit = 0; bit < 8; ++bit) {
        const std::string ctx =
            fmt::format("{} batch {} byte {} bit {}", last ? "last" : "previous", r.batch, at, bit);
        INFO(ctx);
        env.flip_bit(r.path, at, bit);
        auto ro = recover_log(env, dir, RecoveryMode::kReadOnly);
        // verify and repair on one bit of every byte (the bit varies with the byte).
        const bool deep = bit == int(at % 8);
        if (last) {
          REQUIRE_MESSAGE(ro.is_ok(), ro.status().to_string());
          REQUIRE(ro->torn.has_value());
          CHECK(ro->torn->path == r.path);
          CHECK(ro->torn->offset == r.start);
          CHECK(ro->torn->batch == r.batch);
          CHECK(view_of(*ro) == sc.before_last);
          ++torn;
          if (!deep) {
            env.flip_bit(r.path, at, bit);
            continue;
          }
          std::string report;
          REQUIRE(verify_dir(env, dir, &report).is_ok());
          CHECK(report.find(fmt::format("warning: torn tail: {} at offset {}", r.path, r.start)) !=
                std::string::npos);
          CHECK(report.find("; cut") == std::string::npos);
          // Repair cuts it, and the log then recovers clean to the same state.
          auto repaired = recover_log(env, dir, RecoveryMode::kRepair);
          REQUIRE(repaired.is_ok());
          CHECK(view_of(*repaired) == sc.before_last);
          auto again = recover_log(env, dir, RecoveryMode::kReadOnly);
          REQUIRE(again.is_ok());
          CHECK_FALSE(again->torn.has_value());
          CHECK(view_of(*again) == sc.before_last);
          std::vector<std::byte> cut = env.read_raw(r.path);
          CHECK(std::all_of(cut.begin() + long(r.start), cut.begin() + long(r.end),
                            [](std::byte x) { return x == std::byte{0}; }));
          restore(sc);
        } else {
          const std::string where =
              fmt::format("{} at offset {}:", r.path, frame_start(sc, r.path, at));
          REQUIRE(ro.status().code() == Code::kCorruption);
          CHECK_MESSAGE(ro.status().message().find(where) == 0, ro.status().message());
          ++refused;
          if (deep) {
            std::string report;
            CHECK(verify_dir(env, dir, &report).message() == ro.status().message());
            // Repair refuses too, and changes nothing.
            auto repaired = recover_log(env, dir, RecoveryMode::kRepair);
            CHECK(repaired.status().message() == ro.status().message());
          }
          env.flip_bit(r.path, at, bit);
          if (deep) {
            for (size_t k = 0; k < sc.paths.size(); ++k) {
              CHECK(env.read_raw(sc.paths[k]) == sc.originals[k]);
            }
          }
        }
      }
    }
  }
  CHECK(torn == 8 * (sc.batches[1].end - sc.batches[1].start));
  CHECK(refused == 8 * (sc.batches[0].end - sc.batches[0].start));
  MESSAGE(
      fmt::format("{} flips cut as a torn last batch, {} refused as corruption", torn, refused));
}

TEST_CASE("wal::recovery: every bit flip in the last two batches, both mid-segment") {
  Scenario sc;
  build(sc, 4);
  REQUIRE(sc.batches[0].path == sc.batches[1].path);
  REQUIRE(sc.batches[0].start > kSegmentHeaderBytes);
  flip_everything(sc);
}

TEST_CASE("wal::recovery: every bit flip in a segment's first write and the batch after it") {
  Scenario sc;
  build(sc, 1);
  REQUIRE(sc.batches[0].path == sc.batches[1].path);
  REQUIRE(sc.batches[0].start == kSegmentHeaderBytes);  // checkpoint frames + records
  flip_everything(sc);
}

TEST_CASE(
    "wal::recovery: every bit flip in the last batch of a segment and the next segment's "
    "only batch") {
  Scenario sc;
  build(sc, 0);
  REQUIRE(sc.batches[0].path != sc.batches[1].path);
  REQUIRE(sc.batches[1].start == kSegmentHeaderBytes);
  flip_everything(sc);
  // A flip in the only batch of the last segment makes it a spare again once cut.
  sc.h.env.flip_bit(sc.batches[1].path, sc.batches[1].start + 9, 0);
  auto repaired = recover_log(sc.h.env, Harness::kDir, RecoveryMode::kRepair);
  REQUIRE(repaired.is_ok());
  CHECK(repaired->written.back().path == sc.batches[0].path);
  CHECK(repaired->spares.front().path == sc.batches[1].path);
}

// The reported case (a): the BATCH_END frame of the next-to-last batch is damaged and exactly
// one complete batch follows. Before format version 2 the reader could not tell that the frames
// after the damage were a later batch, called it a torn tail and would have cut both.
TEST_CASE("wal::Wal: a damaged BATCH_END frame followed by a complete batch is corruption") {
  Scenario sc;
  build(sc, 4);
  const BatchRange& prev = sc.batches[0];
  const FrameAt* batch_end = nullptr;
  for (const FrameAt& f : sc.frames) {
    if (f.path == prev.path && f.header.batch == prev.batch && f.header.batch_end()) batch_end = &f;
  }
  REQUIRE(batch_end != nullptr);
  sc.h.env.flip_bit(prev.path, batch_end->offset + kFrameHeaderBytes + 3, 5);
  Status s = sc.h.open();
  REQUIRE(s.code() == Code::kCorruption);
  CHECK(s.message().find(fmt::format("{} at offset {}:", prev.path, batch_end->offset)) == 0);
  CHECK(s.message().find("acknowledged") != std::string::npos);
  std::string report;
  CHECK(verify_dir(sc.h.env, Harness::kDir, &report).message() == s.message());
}

// The reported case (b): the header of the last segment, which holds one batch, is damaged.
// Headers are written once and synced before use, so that is damage to durable data.
TEST_CASE("wal::Wal: a damaged header of the last segment is corruption at offset 0") {
  Scenario sc;
  build(sc, 0);
  const std::string path = sc.batches[1].path;
  for (uint64_t at : {uint64_t(0), uint64_t(20), uint64_t(50), uint64_t(100), uint64_t(4095)}) {
    sc.h.env.flip_bit(path, at, 1);
    Status s = sc.h.open();
    REQUIRE(s.code() == Code::kCorruption);
    CHECK_MESSAGE(s.message().find(path + " at offset 0:") == 0, s.message());
    std::string report;
    CHECK(verify_dir(sc.h.env, Harness::kDir, &report).message() == s.message());
    sc.h.env.flip_bit(path, at, 1);
  }
  REQUIRE(sc.h.open().is_ok());
}

}  // namespace
}  // namespace raftd::wal
