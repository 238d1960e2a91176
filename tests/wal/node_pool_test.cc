// The WAL's index nodes (node_pool.h): deques on NodeAllocator behave as std::deque, and their
// nodes come from the pool and are reused once freed.
#include "raftd/wal/node_pool.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <deque>
#include <random>
#include <set>
#include <vector>

#include "raftd/wal/group_log.h"

namespace raftd::wal {
namespace {

TEST_CASE("wal::NodeAllocator: a deque on the pool holds what a std::deque holds") {
  std::deque<EntryLoc, NodeAllocator<EntryLoc>> pooled;
  std::deque<uint64_t> model;
  std::mt19937_64 rng(7);
  for (int step = 0; step < 20000; ++step) {
    const uint64_t op = rng() % 4;
    if (op < 2 || model.empty()) {
      EntryLoc loc;
      loc.cache_pos = rng();
      pooled.push_back(loc);
      model.push_back(loc.cache_pos);
    } else if (op == 2) {
      pooled.pop_front();
      model.pop_front();
    } else {
      pooled.pop_back();
      model.pop_back();
    }
    REQUIRE(pooled.size() == model.size());
  }
  for (size_t i = 0; i < model.size(); ++i) CHECK(pooled[i].cache_pos == model[i]);
}

TEST_CASE("wal::NodePool: freed nodes are handed out again before new memory") {
  static_assert(NodePool::serves(512) && NodePool::serves(504) && !NodePool::serves(64));
  NodePool& pool = NodePool::instance();
  std::set<void*> freed;
  std::vector<void*> held;
  for (int i = 0; i < 100; ++i) held.push_back(pool.get());
  for (void* p : held) {
    CHECK(reinterpret_cast<uintptr_t>(p) % NodePool::kBlockBytes == 0);
    pool.put(p);
    freed.insert(p);
  }
  // Other threads of the test binary do not use the pool, so every block comes back.
  for (int i = 0; i < 100; ++i) CHECK(freed.count(pool.get()) == 1);
}

}  // namespace
}  // namespace raftd::wal
