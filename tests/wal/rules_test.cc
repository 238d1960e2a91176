// The recovery rules of doc/wal-format.md, one by one, on logs written by LogBuilder (an
// independent writer built from the document): a log it writes by the rules recovers and the
// Wal continues it; each rule it breaks is refused naming the file, the offset and the rule.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include "harness.h"
#include "log_builder.h"
#include "raftd/wal/inspect.h"
#include "raftd/wal/recovery.h"

namespace raftd::wal {
namespace {

using testing::append_one;
using testing::Harness;
using testing::LogBuilder;
using Frame = LogBuilder::Frame;

constexpr const char* kDir = Harness::kDir;

// Recovers read-only, checks that verify says the same, and returns the status.
Status recover(FaultEnv& env) {
  auto log = recover_log(env, kDir, RecoveryMode::kReadOnly);
  std::string report;
  Status v = verify_dir(env, kDir, &report);
  CHECK(v.code() == log.status().code());
  CHECK(v.message() == log.status().message());
  return log.status();
}

void expect_corrupt(FaultEnv& env, const std::string& path, uint64_t offset,
                    const std::string& what) {
  Status s = recover(env);
  REQUIRE_MESSAGE(s.code() == Code::kCorruption, s.to_string());
  CHECK_MESSAGE(s.message().find(fmt::format("{} at offset {}: ", path, offset)) == 0, s.message());
  CHECK_MESSAGE(s.message().find(what) != std::string::npos, s.message(), " lacks ", what);
}

// Segment 1, batch 1: the empty checkpoint of a new log, group 1's entries 1..3 (terms 1, 2,
// 2) and its hard state.
void base(LogBuilder& b) {
  b.segment();
  b.batch({LogBuilder::checkpoint({}), LogBuilder::entries(1, 1, {{1, "a"}, {2, "bb"}, {2, "ccc"}}),
           LogBuilder::hard_state(1, 2, 1, 1)});
}

TEST_CASE("wal::recovery: a log written from the format document alone recovers and continues") {
  Harness h;
  LogBuilder b(h.env, kDir);
  base(b);
  b.batch({LogBuilder::truncate(1, 3), LogBuilder::entries(1, 3, {{3, "three"}}),
           LogBuilder::snapshot_mark(1, 1, 1)});
  b.batch(
      {LogBuilder::entries(2, 1, {{1, std::string(13, 'x')}}), LogBuilder::hard_state(2, 4, 2, 0)});
  b.segment();
  b.batch({LogBuilder::checkpoint({{1, 2, 1, 1, 1, 1, 3, 3}, {2, 4, 2, 0, 0, 0, 1, 1}}),
           LogBuilder::hard_state(1, 3, 0, 3)});
  b.finish();
  auto log = recover_log(h.env, kDir, RecoveryMode::kReadOnly);
  REQUIRE_MESSAGE(log.is_ok(), log.status().to_string());
  CHECK_FALSE(log->torn.has_value());
  CHECK(log->written.size() == 2);
  CHECK(log->next_frame == 11);
  CHECK(log->next_batch == 5);
  REQUIRE(h.open().is_ok());
  auto g1 = h.wal->group(GroupId(1));
  REQUIRE(g1.has_value());
  CHECK(g1->hard == HardState{Term(3), NodeId(0), LogIndex(3)});
  CHECK(g1->mark == SnapshotMark{LogIndex(1), Term(1)});
  CHECK(g1->last_index == LogIndex(3));
  CHECK(g1->last_term == Term(3));
  auto r = h.wal->read(GroupId(1), LogIndex(2), LogIndex(4), 1000);
  REQUIRE(r.is_ok());
  CHECK(r->at(0).data == "bb");
  CHECK(r->at(1).data == "three");
  CHECK(h.wal->read(GroupId(2), LogIndex(1), LogIndex(2), 100)->at(0).data == std::string(13, 'x'));
  // The real writer continues the log the builder wrote, and the builder's reader (recovery)
  // accepts the result.
  REQUIRE(append_one(*h.wal, GroupId(1), LogIndex(4), Term(3), "four").is_ok());
  h.settle();
  REQUIRE(h.open().is_ok());
  CHECK(h.wal->group(GroupId(1))->last_index == LogIndex(4));
  CHECK_FALSE(h.wal->recovered_torn_tail().has_value());
}

// One rule broken by an intact frame (both checksums match) in a batch after base(); the batch
// is followed by another, but it would be refused even as the last batch.
struct RuleCase {
  const char* name;
  std::vector<std::vector<Frame>> batches;  // after base(); the last one breaks the rule
  const char* what;
};

TEST_CASE("wal::recovery: the group rules are enforced, naming the frame") {
  const std::vector<RuleCase> cases = {
      {"ENTRIES after a gap", {{LogBuilder::entries(1, 5, {{2, "x"}})}}, "start at 5"},
      {"ENTRIES below the previous term",
       {{LogBuilder::entries(1, 3, {{1, "x"}})}},
       "below the previous term"},
      {"ENTRIES decreasing inside a block",
       {{LogBuilder::entries(1, 4, {{3, "x"}, {2, "y"}})}},
       "below the previous term"},
      {"ENTRIES at or below the mark",
       {{LogBuilder::snapshot_mark(1, 2, 2)}, {LogBuilder::entries(1, 2, {{2, "x"}})}},
       "start at 2"},
      {"HARD_STATE term going back", {{LogBuilder::hard_state(1, 1, 0, 0)}}, "below 2"},
      {"TRUNCATE past the end", {{LogBuilder::truncate(1, 5)}}, "TRUNCATE of group 1 from 5"},
      {"TRUNCATE at the mark",
       {{LogBuilder::snapshot_mark(1, 2, 2)}, {LogBuilder::truncate(1, 2)}},
       "TRUNCATE of group 1 from 2"},
      {"SNAPSHOT_MARK moving back",
       {{LogBuilder::snapshot_mark(1, 2, 2)}, {LogBuilder::snapshot_mark(1, 1, 1)}},
       "moves back"},
      {"SNAPSHOT_MARK with another term than its entry",
       {{LogBuilder::snapshot_mark(1, 3, 1)}},
       "the entry has 2"},
      {"SNAPSHOT_MARK changing the mark's term",
       {{LogBuilder::snapshot_mark(1, 2, 2)}, {LogBuilder::snapshot_mark(1, 2, 5)}},
       "changes its term"},
      {"CHECKPOINT after the head of the segment",
       {{LogBuilder::checkpoint({})}},
       "CHECKPOINT frame after the head"},
  };
  for (const RuleCase& c : cases) {
    INFO(c.name);
    FaultEnv env;
    LogBuilder b(env, kDir);
    base(b);
    LogBuilder::Placed bad{};
    for (const auto& frames : c.batches) bad = b.batch(frames);
    b.finish();
    expect_corrupt(env, b.path(1), bad.offset, c.what);
  }
}

TEST_CASE("wal::recovery: checkpoints list every group once, ascending, 16384 per frame") {
  struct Case {
    const char* name;
    std::vector<Frame> head;
    const char* what;
  };
  using C = LogBuilder::CheckpointSpec;
  const C g1{1, 2, 1, 1, 0, 0, 3, 2};
  const C g2{2, 1, 0, 0, 0, 0, 0, 0};
  auto one_more = [](std::vector<Frame> f) {
    f.push_back(LogBuilder::hard_state(1, 2, 1, 1));
    return f;
  };
  const std::vector<Case> cases = {
      {"a group missing", one_more({LogBuilder::checkpoint({g1})}),
       "lists 1 groups, the log has 2"},
      {"a group disagreeing", one_more({LogBuilder::checkpoint({C{1, 2, 1, 1, 0, 0, 2, 2}, g2})}),
       "disagrees"},
      {"groups out of order", one_more({LogBuilder::checkpoint({g2, g1})}), "ascending"},
      {"a group listed twice", one_more({LogBuilder::checkpoint({g1, g1, g2})}), "ascending"},
      {"an unknown group", one_more({LogBuilder::checkpoint({g1, g2, C{9, 0, 0, 0, 0, 0, 0, 0}})}),
       "unknown group 9"},
      {"a CHECKPOINT frame after a partial one",
       one_more({LogBuilder::checkpoint({g1}), LogBuilder::checkpoint({g2})}),
       "CHECKPOINT frame of 1 groups after 1 frame"},
      {"no CHECKPOINT first", {LogBuilder::hard_state(1, 2, 1, 1)}, "not a CHECKPOINT"},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    FaultEnv env;
    LogBuilder b(env, kDir);
    base(b);
    b.batch({LogBuilder::hard_state(2, 1, 0, 0)});
    b.segment();
    b.batch(c.head);
    b.finish();
    Status s = recover(env);
    REQUIRE(s.code() == Code::kCorruption);
    CHECK_MESSAGE(s.message().find(b.path(2) + " at offset 4") == 0, s.message());
    CHECK_MESSAGE(s.message().find(c.what) != std::string::npos, s.message());
  }
  // A full first frame of 16384 groups followed by a partial one is the required packing.
  FaultEnv env;
  LogBuilder b(env, kDir, 4 << 20, 1 << 20);
  b.segment();
  std::vector<C> all;
  for (uint64_t g = 1; g <= kCheckpointRecordsPerFrame + 1; ++g)
    all.push_back({g, 1, 0, 0, 0, 0, 0, 0});
  std::vector<C> first(all.begin(), all.end() - 1);
  b.batch({LogBuilder::checkpoint(first), LogBuilder::checkpoint({all.back()}),
           LogBuilder::hard_state(1, 2, 0, 0)});
  b.finish();
  auto log = recover_log(env, kDir, RecoveryMode::kReadOnly);
  REQUIRE_MESSAGE(log.is_ok(), log.status().to_string());
  CHECK(log->groups.size() == kCheckpointRecordsPerFrame + 1);
}

TEST_CASE("wal::recovery: the oldest segment's checkpoint defines the groups; gaps are missing") {
  FaultEnv env;
  LogBuilder b(env, kDir);
  // A log whose older segments were deleted: it starts at segment 1 here but with frame 40.
  b.segment();
  Frame ck = LogBuilder::checkpoint({{1, 5, 2, 10, 10, 4, 10, 4}, {2, 5, 2, 7, 3, 2, 9, 3}});
  ck.frame_number = 40;
  ck.prev_checksum = 0x1234;
  ck.batch = 30;
  b.batch({ck, LogBuilder::hard_state(1, 5, 2, 10)});
  b.finish();
  // Group 2's entries 4..9 were in the deleted segments and it never compacted them.
  expect_corrupt(env, b.path(1), 4096, "group 2: entries 4..9 are missing");
}

TEST_CASE("wal::recovery: fields the format says are zero must be zero") {
  SUBCASE("unknown flag bits") {
    FaultEnv env;
    LogBuilder b(env, kDir);
    base(b);
    Frame f = LogBuilder::hard_state(1, 3, 0, 0);
    f.extra_flags = 0x8000;
    auto bad = b.batch({f});
    b.finish();
    expect_corrupt(env, b.path(1), bad.offset, "unknown flag bits");
  }
  SUBCASE("a body length that is not a multiple of 8") {
    FaultEnv env;
    LogBuilder b(env, kDir);
    base(b);
    Frame f = LogBuilder::hard_state(1, 3, 0, 0);
    f.body.resize(28);
    auto bad = b.batch({f});
    b.finish();
    expect_corrupt(env, b.path(1), bad.offset, "not a multiple of 8");
  }
  SUBCASE("an unknown frame type") {
    FaultEnv env;
    LogBuilder b(env, kDir);
    base(b);
    Frame f = LogBuilder::hard_state(1, 3, 0, 0);
    f.type = 9;
    auto bad = b.batch({f});
    b.finish();
    expect_corrupt(env, b.path(1), bad.offset, "unknown frame type");
  }
  SUBCASE("ENTRIES reserved fields and entry padding") {
    // Byte offsets inside an ENTRIES body of one block of one 3-byte entry.
    for (const auto& edit : {std::pair<size_t, const char*>{20, "reserved"},
                             {24 + 14, "reserved"},
                             {24 + 16 + 3, "padding"},
                             {24 + 16 + 7, "padding"}}) {
      const size_t at = edit.first;
      const std::string what = edit.second;
      INFO(what, " at ", at);
      FaultEnv env;
      LogBuilder b(env, kDir);
      base(b);
      Frame f = LogBuilder::entries(1, 4, {{2, "abc"}});
      f.body[at] = std::byte{1};
      auto bad = b.batch({f});
      b.finish();
      expect_corrupt(env, b.path(1), bad.offset, what);
    }
  }
  SUBCASE("header bytes 56..4095") {
    FaultEnv env;
    LogBuilder b(env, kDir);
    base(b);
    b.bytes()[3000] = std::byte{4};
    b.finish();
    expect_corrupt(env, b.path(1), 0, "zero area (byte 3000)");
  }
}

TEST_CASE("wal::recovery: an intact frame that breaks the chain is corruption, even last") {
  struct Case {
    const char* name;
    Frame frame;
    const char* what;
  };
  Frame skip = LogBuilder::hard_state(1, 3, 0, 0);
  skip.frame_number = 9;
  Frame prev = LogBuilder::hard_state(1, 3, 0, 0);
  prev.prev_checksum = 77;
  Frame batch = LogBuilder::hard_state(1, 3, 0, 0);
  batch.batch = 7;
  Frame index = LogBuilder::hard_state(1, 3, 0, 0);
  index.batch_index = 1;
  for (const Case& c : {Case{"frame number", skip, "frame number 9 where 4 was expected"},
                        Case{"prev checksum", prev, "prev_checksum"},
                        Case{"batch number", batch, "batch 7 index 0 where batch 2 index 0"},
                        Case{"batch index", index, "batch 2 index 1 where batch 2 index 0"}}) {
    INFO(c.name);
    FaultEnv env;
    LogBuilder b(env, kDir);
    base(b);
    auto bad = b.batch({c.frame});
    b.finish();
    expect_corrupt(env, b.path(1), bad.offset, c.what);
  }
  FaultEnv env;
  LogBuilder b(env, kDir);
  b.segment();
  Frame first = LogBuilder::checkpoint({});
  first.prev_checksum = 5;  // frame 1 chains to nothing
  b.batch({first, LogBuilder::hard_state(1, 1, 0, 0)});
  b.finish();
  expect_corrupt(env, b.path(1), 4096, "not a valid first frame of the log");
}

TEST_CASE("wal::recovery: segments: gaps, empty directories, unwritten segments between") {
  SUBCASE("an empty directory is an empty log") {
    Harness h;
    REQUIRE(h.env.create_dir(kDir).is_ok());
    auto log = recover_log(h.env, kDir, RecoveryMode::kReadOnly);
    REQUIRE(log.is_ok());
    CHECK(log->written.empty());
    CHECK(log->next_frame == 1);
    CHECK(log->next_batch == 1);
    std::string report;
    REQUIRE(verify_dir(h.env, kDir, &report).is_ok());
    CHECK(report.find("ok: 0 segments") == 0);
    REQUIRE(h.open().is_ok());
  }
  SUBCASE("a gap names the file after it and the missing one") {
    FaultEnv env;
    LogBuilder b(env, kDir);
    base(b);
    b.segment();
    b.segment();
    b.finish();
    REQUIRE(env.remove(b.path(2)).is_ok());
    expect_corrupt(env, b.path(3), 0, "0000000000000002.wal is missing");
  }
  SUBCASE("an unwritten segment between written ones is named, at its first frame slot") {
    FaultEnv env;
    LogBuilder b(env, kDir);
    base(b);
    b.segment();  // prepared, never written
    b.segment();
    b.batch(
        {LogBuilder::checkpoint({{1, 2, 1, 1, 0, 0, 3, 2}}), LogBuilder::hard_state(1, 2, 1, 2)});
    b.finish();
    expect_corrupt(env, b.path(2), 4096, "never written");
  }
  SUBCASE("a batch without BATCH_END ending an older segment") {
    FaultEnv env;
    LogBuilder b(env, kDir);
    base(b);
    Frame open = LogBuilder::hard_state(1, 2, 1, 2);
    open.no_batch_end = true;
    auto bad = b.batch({open});
    b.segment();
    b.finish();
    // Segment 2 is unwritten, so segment 1 is the last written: a torn tail.
    auto log = recover_log(env, kDir, RecoveryMode::kReadOnly);
    REQUIRE(log.is_ok());
    REQUIRE(log->torn.has_value());
    CHECK(log->torn->offset == bad.offset);
    CHECK(log->torn->damage_offset == bad.offset + bad.bytes);
  }
  SUBCASE("data after the zero header that ends an older segment") {
    FaultEnv env;
    LogBuilder b(env, kDir);
    base(b);
    uint64_t end = b.offset();
    b.bytes()[end + 500] = std::byte{9};
    b.segment();
    b.batch(
        {LogBuilder::checkpoint({{1, 2, 1, 1, 0, 0, 3, 2}}), LogBuilder::hard_state(1, 2, 1, 2)});
    b.finish();
    expect_corrupt(env, b.path(1), end, "followed by data");
  }
}

TEST_CASE("wal::recovery: what decides torn against corrupt in the last segment") {
  SUBCASE("frames of an unfinished batch reaching past write_bytes_max are not a torn write") {
    FaultEnv env;
    LogBuilder b(env, kDir, 64 * 1024, 4096);
    base(b);
    std::vector<Frame> big;
    for (int k = 0; k < 3; ++k) {
      big.push_back(LogBuilder::entries(1, 4 + uint64_t(k), {{2, std::string(2000, 'z')}}));
    }
    big.back().no_batch_end = true;
    auto placed = b.batch(big);
    b.finish();
    expect_corrupt(env, b.path(1), placed.offset + placed.bytes,
                   "past the reach of the last write");
  }
  SUBCASE("a later batch in the next file proves the damaged one was acknowledged") {
    FaultEnv env;
    LogBuilder b(env, kDir);
    base(b);
    auto damaged = b.batch({LogBuilder::hard_state(1, 3, 0, 0)});
    b.bytes()[damaged.offset + 60] ^= std::byte{1};
    b.segment();
    b.batch(
        {LogBuilder::checkpoint({{1, 3, 0, 0, 0, 0, 3, 2}}), LogBuilder::hard_state(1, 3, 0, 1)});
    b.batch({LogBuilder::hard_state(1, 3, 0, 2)});
    // The next segment's first frame slot was lost (zeroed): it is not "written", but its
    // later frames carry batch numbers after the damaged one.
    std::fill(b.bytes().begin() + 4096, b.bytes().begin() + 4096 + 56, std::byte{0});
    b.finish();
    expect_corrupt(env, b.path(1), damaged.offset, "follows in " + b.path(2));
  }
  SUBCASE("a later batch is seen even when its header ends in zero bytes") {
    FaultEnv env;
    LogBuilder b(env, kDir);
    base(b);
    auto damaged = b.batch({LogBuilder::hard_state(1, 3, 0, 0)});
    b.bytes()[damaged.offset + 60] ^= std::byte{1};
    // The last thing in the file: one frame with no body and item_count 0.
    b.batch({LogBuilder::checkpoint({})});
    b.finish();
    expect_corrupt(env, b.path(1), damaged.offset, "of the later batch 3 follows");
  }
  SUBCASE("a torn last batch and data where the next segment's first write goes") {
    FaultEnv env;
    LogBuilder b(env, kDir);
    base(b);
    auto torn = b.batch({LogBuilder::hard_state(1, 3, 0, 0)});
    b.bytes()[torn.offset + 60] ^= std::byte{1};
    b.segment();
    b.bytes()[5000] = std::byte{1};  // inside the reach of its first write
    b.finish();
    expect_corrupt(env, b.path(1), torn.offset, "two damaged places");
    // Either one alone is a torn write: cut.
    env.write_raw(b.path(2), 5000, {std::byte{0}});
    auto log = recover_log(env, kDir, RecoveryMode::kReadOnly);
    REQUIRE(log.is_ok());
    CHECK(log->torn->path == b.path(1));
  }
  SUBCASE("a spare whose first frame slot was lost but holds later batches") {
    FaultEnv env;
    LogBuilder b(env, kDir);
    base(b);
    b.segment();
    b.batch(
        {LogBuilder::checkpoint({{1, 2, 1, 1, 0, 0, 3, 2}}), LogBuilder::hard_state(1, 3, 0, 1)});
    b.batch({LogBuilder::hard_state(1, 3, 0, 2)});
    std::fill(b.bytes().begin() + 4096, b.bytes().begin() + 4096 + 56, std::byte{0});
    b.finish();
    expect_corrupt(env, b.path(2), 4096, "first frame was lost");
  }
}

TEST_CASE("wal::recovery: an entry over kEntryBytesMax in an intact frame is over the limit") {
  FaultEnv env;
  LogBuilder b(env, kDir, 32 << 20, 8 << 20);
  base(b);
  auto bad = b.batch({LogBuilder::entries(1, 4, {{2, std::string(kEntryBytesMax + 1, 'e')}})});
  b.finish();
  expect_corrupt(env, b.path(1), bad.offset, "over the limit of 4194304");
}

}  // namespace
}  // namespace raftd::wal
