// NodePool and NodeAllocator: the memory behind the WAL's per-entry indexes (a group's entry
// locations once its log is longer than a few entries, group_log.h, and the entry cache's
// order), std::deques that allocate one node of about 512 bytes every 9 to 16 entries. From the
// heap, each node cost a malloc that split fresh memory off the top of the heap and, every 8 nodes,
// a page fault on first touch: together a fifth of the WAL's CPU per batch of 64 appends while logs
// grew (perf, bench/wal/README.md). Here a node is a block from a 2 MiB region on transparent huge
// pages (one fault per region), and a freed node goes to a free list for the next.
//
// Blocks are never returned to the system: the pool holds as many as the most index nodes that
// were live at once (the heap would keep most of them too). Other allocations of a container
// (the deque's map) pass through to the heap. Thread-safe (one mutex): several WALs and recovery
// passes may run on different threads of one process.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>

#include "raftd/base/assert.h"
#include "raftd/base/memory.h"

// Under AddressSanitizer a free block is poisoned, so a use after free of an index node is still
// caught although the block is not returned to the heap.

namespace raftd::wal {

class NodePool {
 public:
  // libstdc++'s deque node: 512 bytes, or one element when larger.
  static constexpr size_t kBlockBytes = 512;
  // One transparent huge page.
  static constexpr size_t kRegionBytes = kHugePageBytes;

  // The process's pool; never destroyed (containers may free nodes during exit).
  static NodePool& instance() {
    static NodePool* pool = new NodePool();
    return *pool;
  }
  // True for the sizes the pool serves: a deque node (more than half a block, at most one).
  static constexpr bool serves(size_t bytes) {
    return bytes > kBlockBytes / 2 && bytes <= kBlockBytes;
  }

  void* get() {
    std::lock_guard lock(mu_);
    if (free_ != nullptr) {
      FreeBlock* b = free_;
      asan_unpoison(b, kBlockBytes);
      free_ = b->next;
      return b;
    }
    if (region_used_ == kRegionBytes) {
      region_ = map_huge(kRegionBytes, "wal node pool: out of memory");
      region_used_ = 0;
    }
    void* b = region_ + region_used_;
    region_used_ += kBlockBytes;
    return b;
  }
  void put(void* p) {
    std::lock_guard lock(mu_);
    free_ = new (p) FreeBlock{free_};
    asan_poison(p, kBlockBytes);
  }

 private:
  struct FreeBlock {
    FreeBlock* next;
  };
  NodePool() = default;
  std::mutex mu_;
  FreeBlock* free_ = nullptr;
  std::byte* region_ = nullptr;
  size_t region_used_ = kRegionBytes;
};

// A std::allocator that takes deque-node-sized requests from NodePool.
template <typename T>
struct NodeAllocator {
  using value_type = T;
  static_assert(alignof(T) <= NodePool::kBlockBytes, "a node block is 512-byte aligned");

  NodeAllocator() = default;
  template <typename U>
  NodeAllocator(const NodeAllocator<U>&) {}  // NOLINT: rebinding is implicit by design

  T* allocate(size_t n) {
    if (NodePool::serves(n * sizeof(T))) return static_cast<T*>(NodePool::instance().get());
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, size_t n) {
    if (NodePool::serves(n * sizeof(T))) {
      NodePool::instance().put(p);
      return;
    }
    std::allocator<T>().deallocate(p, n);
  }
  template <typename U>
  bool operator==(const NodeAllocator<U>&) const {
    return true;
  }
};

}  // namespace raftd::wal
