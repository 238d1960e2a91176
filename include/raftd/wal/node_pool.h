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

#include <sys/mman.h>

#include <cstddef>
#include <memory>
#include <mutex>

#include "raftd/base/assert.h"

// Under AddressSanitizer a free block is poisoned, so a use after free of an index node is still
// caught although the block is not returned to the heap.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RAFTD_NODE_POOL_ASAN 1
#endif
#elif defined(__SANITIZE_ADDRESS__)
#define RAFTD_NODE_POOL_ASAN 1
#endif
#ifdef RAFTD_NODE_POOL_ASAN
#include <sanitizer/asan_interface.h>
#define RAFTD_NODE_POOL_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define RAFTD_NODE_POOL_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define RAFTD_NODE_POOL_POISON(p, n) ((void)(p), (void)(n))
#define RAFTD_NODE_POOL_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace raftd::wal {

class NodePool {
 public:
  // libstdc++'s deque node: 512 bytes, or one element when larger.
  static constexpr size_t kBlockBytes = 512;
  // One transparent huge page.
  static constexpr size_t kRegionBytes = 2ULL << 20;

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
      RAFTD_NODE_POOL_UNPOISON(b, kBlockBytes);
      free_ = b->next;
      return b;
    }
    if (region_used_ == kRegionBytes) {
      void* p = mmap(nullptr, kRegionBytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      RAFTD_ASSERT(p != MAP_FAILED, "wal node pool: out of memory");
      (void)madvise(p, kRegionBytes, MADV_HUGEPAGE);  // advice only: 4 KiB pages work too
      region_ = static_cast<std::byte*>(p);
      region_used_ = 0;
    }
    void* b = region_ + region_used_;
    region_used_ += kBlockBytes;
    return b;
  }
  void put(void* p) {
    std::lock_guard lock(mu_);
    free_ = new (p) FreeBlock{free_};
    RAFTD_NODE_POOL_POISON(p, kBlockBytes);
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
