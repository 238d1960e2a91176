// A group's entry index (group_log.h): a Ring while short, a pooled deque once longer than
// kSmallMax, back to nothing allocated when emptied; the same contents as a std::deque
// throughout.
#include <doctest/doctest.h>

#include <cstdint>
#include <deque>
#include <random>
#include <vector>

#include "raftd/wal/group_log.h"

namespace raftd::wal {
namespace {

EntryLoc loc(uint64_t token) {
  EntryLoc l;
  l.cache_pos = token;
  l.frame_offset = uint32_t(token * 3);
  return l;
}

TEST_CASE("wal::EntryIndex: matches a deque across the switch between ring and deque") {
  EntryIndex index;
  std::deque<uint64_t> model;
  std::mt19937_64 rng(11);
  uint64_t next = 1;
  bool was_spilled = false;
  int switches = 0;
  for (int step = 0; step < 100'000; ++step) {
    // Around kSmallMax most of the time, so the index crosses it both ways often; now and then
    // a long run of pushes or a compaction to empty.
    const auto dice = rng() % 100;
    if (dice == 0) {
      for (int i = 0; i < 200; ++i) {
        index.push_back(loc(next));
        model.push_back(next++);
      }
    } else if (dice == 1) {
      index.clear();
      model.clear();
    } else if (model.size() < EntryIndex::kSmallMax * 2 && (dice < 52 || model.empty())) {
      index.push_back(loc(next));
      model.push_back(next++);
    } else if (dice < 76) {
      index.pop_front();
      model.pop_front();
    } else {
      index.pop_back();
      model.pop_back();
    }
    REQUIRE(index.size() == model.size());
    REQUIRE(index.empty() == model.empty());
    if (!model.empty()) {
      REQUIRE(index.front().cache_pos == model.front());
      REQUIRE(index.back().cache_pos == model.back());
      const size_t i = rng() % model.size();
      REQUIRE(index[i].cache_pos == model[i]);
      REQUIRE(index[i].frame_offset == model[i] * 3);
    }
    // Spilled only past kSmallMax, and never left spilled once empty.
    if (model.size() > EntryIndex::kSmallMax) REQUIRE(index.spilled());
    if (model.empty()) REQUIRE_FALSE(index.spilled());
    if (index.spilled() != was_spilled) ++switches;
    was_spilled = index.spilled();
    if (step % 1009 == 0) {
      std::vector<uint64_t> got;
      for (const EntryLoc& l : index) got.push_back(l.cache_pos);
      REQUIRE(got == std::vector<uint64_t>(model.begin(), model.end()));
    }
  }
  CHECK(switches > 100);
}

TEST_CASE("wal::GroupLog: compaction and truncation across the ring/deque switch") {
  GroupLog log;
  for (uint64_t i = 1; i <= 20; ++i) {
    EntryLoc l = loc(i);
    l.term = Term(1 + i / 10);
    log.locs.push_back(l);
  }
  REQUIRE(log.locs.spilled());
  std::vector<uint64_t> dropped;
  log.compact_to(SnapshotMark{LogIndex(15), Term(2)},
                 [&](EntryLoc& l) { dropped.push_back(l.cache_pos); });
  CHECK(dropped.size() == 15);
  CHECK(log.last_index() == LogIndex(20));
  CHECK(log.at(LogIndex(16))->cache_pos == 16);
  CHECK(log.at(LogIndex(15)) == nullptr);
  log.truncate_from(LogIndex(18), [&](EntryLoc& l) { dropped.push_back(l.cache_pos); });
  CHECK(log.last_index() == LogIndex(17));
  CHECK(log.at(LogIndex(17))->cache_pos == 17);
  log.compact_to(SnapshotMark{LogIndex(30), Term(3)},
                 [&](EntryLoc& l) { dropped.push_back(l.cache_pos); });
  CHECK(log.locs.empty());
  CHECK_FALSE(log.locs.spilled());
  CHECK(dropped.size() == 20);
  CHECK(log.last_index() == LogIndex(30));
  CHECK(log.last_term() == Term(3));
}

}  // namespace
}  // namespace raftd::wal
