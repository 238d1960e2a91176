#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "harness.h"

namespace raftd::wal {
namespace {

using testing::append_one;
using testing::Harness;

TEST_CASE("wal::Wal: appends from many groups in one turn are one write and one fdatasync") {
  Harness h;
  REQUIRE(h.open().is_ok());
  uint64_t syncs = h.writer.syncs();
  for (uint64_t g = 1; g <= 50; ++g) {
    REQUIRE(
        append_one(*h.wal, GroupId(g), LogIndex(1), Term(1), "entry-" + std::to_string(g)).is_ok());
    REQUIRE(h.wal->set_hard_state(GroupId(g), HardState{Term(1), NodeId(1), LogIndex(0)}).is_ok());
  }
  h.settle();
  CHECK(h.writer.syncs() == syncs + 1);
  CHECK(h.wal->stats().batches == 1);
  REQUIRE(h.durable.size() == 50);
  for (const Durable& d : h.durable) {
    CHECK(d.last_index == LogIndex(1));
    CHECK(d.last_term == Term(1));
    CHECK(d.hard.vote == NodeId(1));
  }
  auto r = h.wal->read(GroupId(7), LogIndex(1), LogIndex(2), 1 << 20);
  REQUIRE(r.is_ok());
  CHECK(r->at(0).data == "entry-7");
}

}  // namespace
}  // namespace raftd::wal

namespace raftd::wal {
namespace {

using testing::append_one;
using testing::Harness;

TEST_CASE("wal::Wal: appends during a batch in flight wait for the next batch") {
  Harness h;
  REQUIRE(h.open().is_ok());
  uint64_t syncs = h.writer.syncs();
  REQUIRE(append_one(*h.wal, GroupId(1), LogIndex(1), Term(1), "a").is_ok());
  h.wal->flush();  // submitted; its completion is queued, not yet run
  REQUIRE(append_one(*h.wal, GroupId(1), LogIndex(2), Term(1), "b").is_ok());
  REQUIRE(append_one(*h.wal, GroupId(2), LogIndex(1), Term(3), "c").is_ok());
  h.wal->flush();  // one batch in flight: nothing new is submitted
  CHECK(h.writer.syncs() == syncs + 1);
  CHECK(h.durable.empty());
  h.exec.run_pending();  // the first batch completes
  REQUIRE(h.durable.size() == 1);
  CHECK(h.durable[0].group == GroupId(1));
  CHECK(h.durable[0].last_index == LogIndex(1));
  h.wal->flush();
  h.exec.run_pending();
  CHECK(h.writer.syncs() == syncs + 2);
  REQUIRE(h.durable.size() == 3);
  CHECK(h.durable[1].last_index == LogIndex(2));
  CHECK(h.durable[2].group == GroupId(2));
  CHECK(h.durable[2].last_term == Term(3));
}

TEST_CASE("wal::Wal: staged_batch and durable_batch tell a driver when its records are durable") {
  Harness h;
  REQUIRE(h.open().is_ok());
  // Nothing staged: everything (nothing) is durable already.
  CHECK(h.wal->staged_batch() <= h.wal->durable_batch());
  REQUIRE(append_one(*h.wal, GroupId(1), LogIndex(1), Term(1), "a").is_ok());
  uint64_t first = h.wal->staged_batch();
  CHECK(first > h.wal->durable_batch());
  h.wal->flush();  // in flight
  REQUIRE(append_one(*h.wal, GroupId(1), LogIndex(2), Term(1), "b").is_ok());
  uint64_t second = h.wal->staged_batch();
  CHECK(second > first);
  h.wal->flush();  // waits behind the first
  h.exec.run_pending();
  CHECK(h.wal->durable_batch() >= first);
  CHECK(h.wal->durable_batch() < second);
  // With the open batch empty, staged_batch names the newest batch that holds anything.
  CHECK(h.wal->staged_batch() == second);
  h.wal->flush();
  h.exec.run_pending();
  CHECK(h.wal->durable_batch() >= second);
  CHECK(h.wal->staged_batch() <= h.wal->durable_batch());
}

TEST_CASE(
    "wal::Wal: a lazy hard state waits for the next write or flush_lazy, and nothing waits for "
    "it") {
  using Urgency = Wal::Urgency;
  Harness h;
  REQUIRE(h.open().is_ok());
  REQUIRE(append_one(*h.wal, GroupId(1), LogIndex(1), Term(1), "a").is_ok());
  h.wal->flush();
  h.exec.run_pending();
  const uint64_t syncs = h.writer.syncs();
  const uint64_t before = h.wal->durable_batch();
  // Alone in the open batch, a lazy hard state is not written by flush().
  REQUIRE(
      h.wal->set_hard_state(GroupId(1), HardState{Term(1), NodeId(1), LogIndex(1)}, Urgency::kLazy)
          .is_ok());
  CHECK(h.wal->staged_batch() > before);
  CHECK(h.wal->urgent_batch() == before);  // nothing staged since needs to be waited for
  h.wal->flush();
  h.exec.run_pending();
  CHECK(h.writer.syncs() == syncs);
  CHECK_FALSE(h.wal->idle());
  CHECK(h.wal->group(GroupId(1))->hard.commit == LogIndex(1));  // the staged view has it
  // An urgent record joins it: one write carries both.
  REQUIRE(append_one(*h.wal, GroupId(2), LogIndex(1), Term(1), "b").is_ok());
  CHECK(h.wal->urgent_batch() == h.wal->staged_batch());
  h.wal->flush();
  h.exec.run_pending();
  CHECK(h.writer.syncs() == syncs + 1);
  CHECK(h.wal->idle());
  REQUIRE(h.durable.size() >= 3);
  CHECK(h.durable[h.durable.size() - 2].group == GroupId(1));
  CHECK(h.durable[h.durable.size() - 2].hard.commit == LogIndex(1));
  // Alone again: flush_lazy() writes it (false while a batch is in flight).
  REQUIRE(
      h.wal->set_hard_state(GroupId(2), HardState{Term(1), NodeId(1), LogIndex(1)}, Urgency::kLazy)
          .is_ok());
  h.wal->flush();
  CHECK(h.writer.syncs() == syncs + 1);
  CHECK(h.wal->flush_lazy());
  CHECK(h.writer.syncs() == syncs + 2);
  REQUIRE(
      h.wal->set_hard_state(GroupId(2), HardState{Term(1), NodeId(1), LogIndex(1)}, Urgency::kLazy)
          .is_ok());
  CHECK_FALSE(h.wal->flush_lazy());  // the previous batch is still in flight
  h.exec.run_pending();
  CHECK(h.wal->flush_lazy());
  h.exec.run_pending();
  CHECK(h.writer.syncs() == syncs + 3);
  CHECK(h.wal->idle());
  CHECK(h.wal->urgent_batch() <= h.wal->durable_batch());
  // Written, it survives a restart like any hard state; one still waiting is lost in a crash.
  REQUIRE(append_one(*h.wal, GroupId(2), LogIndex(2), Term(1), "c").is_ok());
  h.settle();
  REQUIRE(
      h.wal->set_hard_state(GroupId(2), HardState{Term(1), NodeId(1), LogIndex(2)}, Urgency::kLazy)
          .is_ok());
  h.settle();
  h.crash();
  REQUIRE(h.open().is_ok());
  CHECK(h.wal->group(GroupId(2))->hard.commit == LogIndex(1));
  CHECK(h.wal->group(GroupId(2))->last_index == LogIndex(2));
}

TEST_CASE("wal::Wal: term() answers for live entries and the compaction mark only") {
  Harness h;
  REQUIRE(h.open().is_ok());
  for (uint64_t i = 1; i <= 4; ++i) {
    REQUIRE(append_one(*h.wal, GroupId(5), LogIndex(i), Term(i < 3 ? 1 : 2), "x").is_ok());
  }
  CHECK(h.wal->term(GroupId(5), LogIndex(2)) == Term(1));
  CHECK(h.wal->term(GroupId(5), LogIndex(4)) == Term(2));
  CHECK_FALSE(h.wal->term(GroupId(5), LogIndex(5)).has_value());
  CHECK_FALSE(h.wal->term(GroupId(6), LogIndex(1)).has_value());
  REQUIRE(h.wal->compact(GroupId(5), LogIndex(2), Term(1)).is_ok());
  CHECK(h.wal->term(GroupId(5), LogIndex(2)) == Term(1));  // the mark
  CHECK_FALSE(h.wal->term(GroupId(5), LogIndex(1)).has_value());
  CHECK(h.wal->term(GroupId(5), LogIndex(3)) == Term(2));
}

TEST_CASE("wal::Wal: reopening rebuilds every group and reads entries back from the files") {
  Harness h;
  REQUIRE(h.open().is_ok());
  for (uint64_t i = 1; i <= 200; ++i) {
    for (uint64_t g = 1; g <= 3; ++g) {
      REQUIRE(append_one(*h.wal, GroupId(g), LogIndex(i), Term(1 + i / 50),
                         fmt::format("g{}-i{}-{}", g, i, std::string(100 + i % 97, 'z')))
                  .is_ok());
    }
    if (i % 10 == 0) {
      REQUIRE(
          h.wal->set_hard_state(GroupId(2), HardState{Term(1 + i / 50), NodeId(3), LogIndex(i - 5)})
              .is_ok());
      h.settle();
    }
  }
  REQUIRE(h.wal->truncate(GroupId(3), LogIndex(150)).is_ok());
  h.settle();
  CHECK(h.wal->segment_sequences().size() >= 2);
  h.wal.reset();
  REQUIRE(h.open().is_ok());
  CHECK_FALSE(h.wal->recovered_torn_tail().has_value());
  auto g2 = h.wal->group(GroupId(2));
  REQUIRE(g2.has_value());
  CHECK(g2->hard == HardState{Term(5), NodeId(3), LogIndex(195)});
  CHECK(g2->last_index == LogIndex(200));
  CHECK(h.wal->group(GroupId(3))->last_index == LogIndex(149));
  auto r = h.wal->read(GroupId(1), LogIndex(1), LogIndex(201), UINT64_MAX);
  REQUIRE(r.is_ok());
  REQUIRE(r->size() == 200);
  for (uint64_t i = 1; i <= 200; ++i) {
    const Entry& e = (*r)[i - 1];
    CHECK(e.index == LogIndex(i));
    CHECK(e.term == Term(1 + i / 50));
    CHECK(e.data == fmt::format("g1-i{}-{}", i, std::string(100 + i % 97, 'z')));
  }
  CHECK(h.wal->stats().file_reads > 0);
  CHECK(h.wal->stats().cache_hits == 0);
  // A read stops at max_bytes but always returns at least one entry.
  auto small = h.wal->read(GroupId(1), LogIndex(10), LogIndex(100), 1);
  REQUIRE(small.is_ok());
  CHECK(small->size() == 1);
}

TEST_CASE("wal::Wal: the entry cache is bounded and misses are read from the segments") {
  Harness h;
  h.cache_bytes_max = 4096;
  REQUIRE(h.open().is_ok());
  for (uint64_t i = 1; i <= 50; ++i) {
    REQUIRE(
        append_one(*h.wal, GroupId(1), LogIndex(i), Term(1), std::string(500, char('a' + i % 26)))
            .is_ok());
    h.settle();
  }
  CHECK(h.wal->stats().cache_bytes <= 4096);
  auto recent = h.wal->read(GroupId(1), LogIndex(50), LogIndex(51), UINT64_MAX);
  REQUIRE(recent.is_ok());
  CHECK(h.wal->stats().cache_hits == 1);
  CHECK(h.wal->stats().file_reads == 0);
  auto old = h.wal->read(GroupId(1), LogIndex(1), LogIndex(3), UINT64_MAX);
  REQUIRE(old.is_ok());
  CHECK((*old)[0].data == std::string(500, char('a' + 1)));
  CHECK((*old)[1].data == std::string(500, char('a' + 2)));
  CHECK(h.wal->stats().file_reads == 2);
}

TEST_CASE("wal::Wal: a damaged frame read back from a segment is reported, not returned") {
  Harness h;
  h.cache_bytes_max = 0;
  REQUIRE(h.open().is_ok());
  REQUIRE(append_one(*h.wal, GroupId(1), LogIndex(1), Term(1), std::string(300, 'q')).is_ok());
  h.settle();
  std::string path = h.segment_path(h.wal->segment_sequences().back());
  std::vector<std::byte> raw = h.env.read_raw(path);
  std::vector<std::byte> needle = testing::bytes_of(std::string(300, 'q'));
  auto it = std::search(raw.begin(), raw.end(), needle.begin(), needle.end());
  REQUIRE(it != raw.end());
  uint64_t at = uint64_t(it - raw.begin());
  h.env.flip_bit(path, at + 10, 1);
  auto r = h.wal->read(GroupId(1), LogIndex(1), LogIndex(2), UINT64_MAX);
  REQUIRE(r.status().code() == Code::kCorruption);
  CHECK(r.status().message().find(path) != std::string::npos);
}

TEST_CASE("wal::Wal: segments are deleted oldest first once every group compacted past them") {
  Harness h;
  REQUIRE(h.open().is_ok());
  uint64_t i = 1;
  // Group 1 writes a lot; group 2 writes once, early, and pins the first segment.
  REQUIRE(append_one(*h.wal, GroupId(2), LogIndex(1), Term(1), "laggard").is_ok());
  while (h.wal->segment_sequences().size() < 4) {
    REQUIRE(append_one(*h.wal, GroupId(1), LogIndex(i), Term(1), std::string(1000, 'p')).is_ok());
    ++i;
    h.settle();
  }
  REQUIRE(h.wal->compact(GroupId(1), LogIndex(i - 1), Term(1)).is_ok());
  h.settle();
  CHECK(h.wal->segment_sequences().front() == 1);  // group 2 still needs segment 1
  auto pins = h.wal->pinning_groups();
  REQUIRE(pins.size() == 1);
  CHECK(pins[0].group == GroupId(2));
  CHECK(pins[0].segment == 1);
  CHECK(pins[0].first_index == LogIndex(1));

  REQUIRE(h.wal->compact(GroupId(2), LogIndex(1), Term(1)).is_ok());
  h.settle();
  // Everything but the active segment is gone, and the deletions are durable.
  CHECK(h.wal->segment_sequences().size() == 1);
  CHECK(h.wal->stats().segments_deleted == 3);
  CHECK_FALSE(h.env.exists(h.segment_path(1)));
  CHECK(h.wal->pinning_groups().empty());
  auto read = h.wal->read(GroupId(1), LogIndex(1), LogIndex(2), UINT64_MAX);
  CHECK(read.status().code() == Code::kNotFound);

  // Recovery starts from the checkpoint at the head of the oldest remaining segment.
  REQUIRE(h.wal->set_hard_state(GroupId(2), HardState{Term(4), NodeId(2), LogIndex(1)}).is_ok());
  REQUIRE(append_one(*h.wal, GroupId(1), LogIndex(i), Term(2), "after").is_ok());
  h.settle();
  h.crash();
  REQUIRE(h.open().is_ok());
  auto g1 = h.wal->group(GroupId(1));
  REQUIRE(g1.has_value());
  CHECK(g1->mark == SnapshotMark{LogIndex(i - 1), Term(1)});
  CHECK(g1->last_index == LogIndex(i));
  CHECK(g1->last_term == Term(2));
  CHECK(h.wal->group(GroupId(2))->hard == HardState{Term(4), NodeId(2), LogIndex(1)});
  CHECK(h.wal->group(GroupId(2))->mark.index == LogIndex(1));
  auto after = h.wal->read(GroupId(1), LogIndex(i), LogIndex(i + 1), UINT64_MAX);
  REQUIRE(after.is_ok());
  CHECK((*after)[0].data == "after");
}

TEST_CASE("wal::Wal: a compaction past the last entry (snapshot install) restarts the log") {
  Harness h;
  REQUIRE(h.open().is_ok());
  REQUIRE(append_one(*h.wal, GroupId(5), LogIndex(1), Term(1), "one").is_ok());
  h.settle();
  REQUIRE(h.wal->compact(GroupId(5), LogIndex(100), Term(7)).is_ok());
  REQUIRE(append_one(*h.wal, GroupId(5), LogIndex(101), Term(7), "hundred-one").is_ok());
  h.settle();
  REQUIRE(h.durable.size() == 2);
  CHECK(h.durable.back().last_index == LogIndex(101));
  CHECK(h.durable.back().mark == SnapshotMark{LogIndex(100), Term(7)});
  h.wal.reset();
  REQUIRE(h.open().is_ok());
  auto g = h.wal->group(GroupId(5));
  CHECK(g->mark == SnapshotMark{LogIndex(100), Term(7)});
  CHECK(g->last_index == LogIndex(101));
  auto r = h.wal->read(GroupId(5), LogIndex(101), LogIndex(102), UINT64_MAX);
  REQUIRE(r.is_ok());
  CHECK((*r)[0].data == "hundred-one");
}

TEST_CASE("wal::Wal: invalid appends are refused before anything is staged") {
  Harness h;
  REQUIRE(h.open().is_ok());
  REQUIRE(append_one(*h.wal, GroupId(1), LogIndex(1), Term(2), "a").is_ok());
  CHECK(append_one(*h.wal, GroupId(1), LogIndex(3), Term(2), "gap").code() ==
        Code::kInvalidArgument);
  CHECK(append_one(*h.wal, GroupId(1), LogIndex(2), Term(1), "older term").code() ==
        Code::kInvalidArgument);
  CHECK(h.wal->compact(GroupId(1), LogIndex(1), Term(9)).code() == Code::kInvalidArgument);
  CHECK(h.wal->truncate(GroupId(1), LogIndex(5)).code() == Code::kInvalidArgument);
  CHECK(h.wal->set_hard_state(GroupId(1), HardState{Term(3), NodeId(1), LogIndex(0)}).is_ok());
  CHECK(h.wal->set_hard_state(GroupId(1), HardState{Term(2), NodeId(1), LogIndex(0)}).code() ==
        Code::kInvalidArgument);
  std::vector<std::byte> huge(kEntryBytesMax + 1);
  EntryView e{Term(2), 0, huge};
  CHECK(h.wal->append(GroupId(1), LogIndex(2), std::span(&e, 1)).code() == Code::kTooLarge);
  h.settle();
  CHECK(h.wal->group(GroupId(1))->last_index == LogIndex(1));
  CHECK(h.wal->read(GroupId(9), LogIndex(1), LogIndex(2), 1).status().code() == Code::kNotFound);
}

TEST_CASE("wal::Wal: a full batch queue is backpressure, not unbounded memory") {
  Harness h;
  REQUIRE(h.open().is_ok());
  REQUIRE(append_one(*h.wal, GroupId(1), LogIndex(1), Term(1), "x").is_ok());
  h.wal->flush();  // in flight; completion not run
  Status last;
  uint64_t i = 2;
  for (; i < 10000; ++i) {
    last = append_one(*h.wal, GroupId(1), LogIndex(i), Term(1), std::string(3000, 'b'));
    if (!last) break;
  }
  CHECK(last.code() == Code::kUnavailable);
  // Everything staged before the refusal becomes durable, batch by batch.
  h.settle();
  CHECK(h.wal->idle());
  CHECK(h.durable.back().last_index == LogIndex(i - 1));
  CHECK(h.wal->stats().batches == h.writer.syncs() - 0);
}

TEST_CASE("wal::Wal: the compaction thread prepares segments ahead of the writer") {
  Harness h;
  WalOptions o = h.options();
  o.prepare_on_thread = true;
  auto w = Wal::open(h.env, Harness::kDir, std::move(o), h.exec, h.writer);
  REQUIRE(w.is_ok());
  h.wal = std::move(*w);
  // Generous deadline: the machine is shared; this only guards against a hang.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  uint64_t i = 1;
  while (h.wal->segment_sequences().size() < 4 && std::chrono::steady_clock::now() < deadline) {
    REQUIRE(append_one(*h.wal, GroupId(1), LogIndex(i++), Term(1), std::string(2000, 'r')).is_ok());
    h.wal->flush();
    h.exec.run_pending();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(h.wal->segment_sequences().size() >= 4);
  while (!h.wal->idle() && std::chrono::steady_clock::now() < deadline) {
    h.wal->flush();
    h.exec.run_pending();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  REQUIRE(h.wal->idle());
  h.wal.reset();
  h.exec.clear();  // results of preparations still running are dropped with the Wal
  REQUIRE(h.open().is_ok());
  CHECK(h.wal->group(GroupId(1))->last_index == LogIndex(i - 1));
}

}  // namespace
}  // namespace raftd::wal
