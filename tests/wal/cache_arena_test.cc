// The WAL's entry cache: the ring of bytes (CacheArena) on its own, and the Wal reading cached and
// evicted entries back while the ring laps many times.
#include "raftd/wal/cache_arena.h"

#include <doctest/doctest.h>

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

// Random appends with frequent overwrites of the tail of a group's log: the overwritten entries'
// bytes stay in the ring, dead, until its tail passes them, so the ring fills, laps many times
// and must make room by evicting the oldest entries. Every live entry must read back with its own
// bytes, whether it still sits in the ring or was evicted and comes from its segment.
TEST_CASE("wal::Wal: entries read back intact while the cache ring laps") {
  Harness h;
  h.cache_bytes_max = 64 * 1024;
  h.batch_bytes_max = 4096;  // the ring is then 64 KiB + about 48 KiB
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
  // The ring is about 112 KiB here; the run wrote many times that.
  CHECK(appended_bytes > 20 * 112 * 1024);
}

}  // namespace
}  // namespace raftd::wal
