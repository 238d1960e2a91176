// The WAL's entry cache: the ring of bytes (CacheArena) on its own, and the Wal reading cached and
// evicted entries back while the ring laps many times.
#include "raftd/wal/cache_arena.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "harness.h"

namespace raftd::wal {
namespace {

using testing::append_one;
using testing::Harness;

std::vector<std::byte> filled(size_t n, char c) { return std::vector<std::byte>(n, std::byte(c)); }

TEST_CASE("wal::CacheArena: an entry never straddles the end of the ring") {
  CacheArena a(100);
  uint64_t p1 = a.put(filled(60, 'a'));
  CHECK(p1 == 0);
  // 50 bytes do not fit in the 40 left before the end: they start at the next lap, which still
  // holds the first entry, so there is no room until it is released.
  CHECK(a.start_of(50) == 100);
  CHECK_FALSE(a.room(50));
  a.release(60);
  REQUIRE(a.room(50));
  uint64_t p2 = a.put(filled(50, 'b'));
  CHECK(p2 == 100);
  CHECK(a.at(p2) == a.at(0));
  CHECK(a.used() == 90);  // the 40-byte gap at the lap end counts until the tail passes it
  CHECK(std::to_integer<char>(a.at(p2)[49]) == 'b');
}

TEST_CASE("wal::CacheArena: release is monotonic and never passes the head") {
  CacheArena a(64);
  a.put(filled(10, 'x'));
  a.put(filled(10, 'y'));
  a.release(15);
  a.release(5);  // older: ignored
  CHECK(a.used() == 5);
  a.release(1000);  // beyond the head: clamped
  CHECK(a.used() == 0);
  CHECK(a.room(44));  // up to the end of the ring
  // 45 bytes start at the next lap, which ends where the (empty) ring's tail is: 20 bytes short.
  CHECK_FALSE(a.room(45));
  CHECK_FALSE(a.room(65));
}

TEST_CASE("wal::CacheArena: every put takes a position of its own, empty ones too") {
  CacheArena a(16);
  uint64_t p1 = a.put({});
  uint64_t p2 = a.put({});
  uint64_t p3 = a.put(filled(3, 'z'));
  CHECK(p1 == 0);
  CHECK(p2 == 1);
  CHECK(p3 == 2);
  CHECK(CacheArena::end_of(p1, 0) == 1);
  CHECK(CacheArena::end_of(p3, 3) == 5);
  CHECK(a.used() == 5);
  // An empty entry also needs its byte before the end of the ring.
  a.put(filled(10, 'w'));
  CHECK(a.start_of(0) == 15);
  a.put({});
  CHECK(a.start_of(0) == 16);
  CHECK_FALSE(a.room(0));  // the next lap's first byte still holds the first entry
  a.release(1);
  CHECK(a.room(0));
}

// Compacted entries leave their bytes in the ring until the eviction of the entries before them
// passes them. The ring's bytes in use, dead ones included, are held to cache_bytes_max after
// every durable batch; counting only live entries had let the ring fill with dead bytes (and the
// references to them) up to its whole size.
TEST_CASE("wal::Wal: the cache ring's bytes in use stay within cache_bytes_max under compaction") {
  Harness h;
  h.cache_bytes_max = 64 * 1024;
  h.batch_bytes_max = 4096;  // the ring is 64 KiB + two entries' slack
  h.segment_bytes = 4 * kSegmentBytesMin;
  REQUIRE(h.open().is_ok());
  uint64_t max_used = 0;
  uint64_t last = 0;
  for (int step = 0; step < 2000; ++step) {
    ++last;
    for (uint64_t g = 1; g <= 4; ++g) {
      REQUIRE(
          append_one(*h.wal, GroupId(g), LogIndex(last), Term(1), std::string(200, 'c')).is_ok());
    }
    h.settle();
    max_used = std::max(max_used, h.wal->stats().cache_arena_bytes);
    // Each group keeps its last 20 entries: the rest are compacted, dead in the ring.
    if (last > 20) {
      for (uint64_t g = 1; g <= 4; ++g) {
        REQUIRE(h.wal->compact(GroupId(g), LogIndex(last - 20), Term(1)).is_ok());
      }
    }
  }
  h.settle();  // the last compaction's mark is written, and the stats follow it
  REQUIRE(h.failed == std::nullopt);
  CHECK(max_used > 32 * 1024);                        // the ring did fill
  CHECK(max_used <= 64 * 1024);                       // to cache_bytes_max, dead bytes included
  CHECK(h.wal->stats().cache_bytes <= 4 * 20 * 200);  // only the live entries are cached
  // The entries kept are still read from the ring.
  auto got = h.wal->read(GroupId(1), LogIndex(last - 19), LogIndex(last + 1), UINT64_MAX);
  REQUIRE(got.is_ok());
  CHECK(got->size() == 20);
  CHECK(h.wal->stats().file_reads == 0);
}

// One group's entries lie back to back in the arena batch after batch, and the WAL tracks them as
// runs, not one by one; a run is capped so that evicting the oldest run does not empty the cache.
TEST_CASE("wal::Wal: a single group's cache is evicted a little at a time") {
  Harness h;
  h.cache_bytes_max = 256 * 1024;
  h.batch_bytes_max = 4096;
  h.segment_bytes = 16 * kSegmentBytesMin;
  REQUIRE(h.open().is_ok());
  uint64_t low = UINT64_MAX;
  const uint64_t n = 8000;
  for (uint64_t i = 1; i <= n; ++i) {
    REQUIRE(append_one(*h.wal, GroupId(1), LogIndex(i), Term(1), std::string(100, 'r')).is_ok());
    if (i % 3 == 0) h.settle();
    if (i > 4000) low = std::min(low, h.wal->stats().cache_bytes);  // well after the ring filled
  }
  h.settle();
  REQUIRE(h.failed == std::nullopt);
  CHECK(low >= 256 * 1024 - 2 * 64 * 1024);  // never more than about a run below the cap
  CHECK(h.wal->stats().cache_arena_bytes <= 256 * 1024);
  // The newest 1,000 entries are all still in the ring.
  auto got = h.wal->read(GroupId(1), LogIndex(n - 999), LogIndex(n + 1), UINT64_MAX);
  REQUIRE(got.is_ok());
  CHECK(got->size() == 1000);
  CHECK(h.wal->stats().file_reads == 0);
}

// Random appends with frequent overwrites of the tail of a group's log: the overwritten entries'
// bytes stay in the ring, dead, until its tail passes them, so the ring fills, laps many times
// and must make room by evicting the oldest entries. Every live entry must read back with its own
// bytes, whether it still sits in the ring or was evicted and comes from its segment.
TEST_CASE("wal::Wal: entries read back intact while the cache ring laps") {
  Harness h;
  h.cache_bytes_max = 64 * 1024;
  h.batch_bytes_max = 4096;  // the ring is then 64 KiB + 8 KiB of slack
  h.segment_bytes = 4 * kSegmentBytesMin;
  REQUIRE(h.open().is_ok());
  std::mt19937_64 rng(7);
  std::map<uint64_t, std::vector<std::string>> model;  // group -> data at index 1..n
  uint64_t appended_bytes = 0;
  for (int step = 0; step < 4000; ++step) {
    const uint64_t g = 1 + rng() % 3;
    auto& log = model[g];
    uint64_t index = log.size() + 1;
    if (log.size() > 3 && rng() % 2 == 0) index = log.size() - rng() % 3;  // overwrite the tail
    const std::string data(1 + rng() % 1500, char('a' + step % 26));
    REQUIRE(append_one(*h.wal, GroupId(g), LogIndex(index), Term(1), data).is_ok());
    log.resize(index - 1);
    log.push_back(data);
    appended_bytes += data.size();
    if (rng() % 4 == 0) h.settle();
    if (step % 100 != 99) continue;
    h.settle();
    for (const auto& [group, entries] : model) {
      const uint64_t lo = entries.size() > 20 ? entries.size() - 20 : 1;
      auto got =
          h.wal->read(GroupId(group), LogIndex(lo), LogIndex(entries.size() + 1), UINT64_MAX);
      REQUIRE(got.is_ok());
      REQUIRE(got->size() == entries.size() + 1 - lo);
      for (const Entry& e : *got) REQUIRE(e.data == entries[raw(e.index) - 1]);
    }
  }
  REQUIRE(h.failed == std::nullopt);
  CHECK(h.wal->stats().cache_bytes <= 64 * 1024);
  CHECK(h.wal->stats().cache_hits > 0);
  CHECK(h.wal->stats().file_reads > 0);
  // The ring is 72 KiB here; the run wrote many times that.
  CHECK(appended_bytes > 20 * 72 * 1024);
}

// The ring holds the larger of cache_bytes_max and two batches, not everything the batch queue
// can hold: an append that would not fit once every durable entry had left is refused with
// kUnavailable and stages nothing, and goes in once the entries before it are durable.
TEST_CASE("wal::Wal: an append the cache ring cannot hold until a sync waits for it") {
  Harness h;
  h.cache_bytes_max = 16 * 1024;
  h.batch_bytes_max = 4096;  // the ring: 16 KiB + 8 KiB of slack; the queue could take 36 KiB
  h.segment_bytes = 4 * kSegmentBytesMin;
  REQUIRE(h.open().is_ok());
  auto data = [](uint64_t i) { return std::string(1000, char('a' + i % 26)); };
  uint64_t i = 1;
  for (; i <= 100; ++i) {
    Status s = append_one(*h.wal, GroupId(1), LogIndex(i), Term(1), data(i));
    if (s.code() == Code::kUnavailable) break;
    REQUIRE(s.is_ok());
  }
  // Nothing was durable: the ring held every staged entry, up to its size.
  CHECK((i - 1) * 1000 > 16 * 1024);
  CHECK((i - 1) * 1000 <= 24 * 1024);
  CHECK(h.wal->queued_batch_count() < h.wal->queued_batches_max());  // not the queue's limit
  CHECK(h.wal->group(GroupId(1))->last_index == LogIndex(i - 1));    // nothing of it staged
  h.settle();
  const uint64_t n = i + 40;
  for (; i <= n; ++i) {
    REQUIRE(append_one(*h.wal, GroupId(1), LogIndex(i), Term(1), data(i)).is_ok());
    h.settle();
  }
  REQUIRE(h.failed == std::nullopt);
  auto got = h.wal->read(GroupId(1), LogIndex(1), LogIndex(n + 1), UINT64_MAX);
  REQUIRE(got.is_ok());
  REQUIRE(got->size() == n);
  for (const Entry& e : *got) REQUIRE(e.data == data(raw(e.index)));
  CHECK(h.wal->stats().cache_arena_bytes <= 16 * 1024);
}

}  // namespace
}  // namespace raftd::wal
