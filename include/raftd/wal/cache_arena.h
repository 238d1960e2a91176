// CacheArena: the bytes of the WAL's entry cache, in one ring allocated once. Entries are put at
// the head in append order and leave at the tail in the same order (the WAL evicts its cache
// oldest first, and entries become durable in append order), so a ring needs no allocation per
// entry: staging 64 entries of 1 KiB with a heap string each cost more CPU per batch than
// encoding and checksumming the batch.
//
// Positions are absolute byte counts since creation (they never wrap); an entry occupies
// [pos, end_of(pos, length)) of the ring, contiguous: one that would straddle the end starts at
// the next lap instead. Every put takes at least one byte, so no two puts share a position and
// the owner may use a position as the identity of what it put there. The owner decides what may be
// overwritten: it calls release(end) once no entry before `end` is needed, and asks room() before
// put(). Memory is reserved, not touched, at creation: pages are faulted in as the ring fills. Not
// thread-safe (reactor thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "raftd/base/assert.h"
#include "raftd/base/memory.h"

namespace raftd::wal {

class CacheArena {
 public:
  explicit CacheArena(uint64_t capacity) : capacity_(capacity) {
    // Anonymous memory, reserved and touched only as the ring fills. Transparent huge pages
    // where the kernel allows them: a first touch of a 4 KiB page costs a fault (several
    // microseconds in a VM), so filling the ring with 4 KiB pages cost about 16 faults per
    // 64 KiB batch, more than the batch's own CPU work.
    ring_ = map_huge(capacity, "cache arena: out of address space");
  }
  ~CacheArena() { unmap_huge(ring_, capacity_); }
  CacheArena(const CacheArena&) = delete;
  CacheArena& operator=(const CacheArena&) = delete;

  uint64_t capacity() const { return capacity_; }
  // Bytes from the tail to the head, including the gaps left at lap ends.
  uint64_t used() const { return head_ - tail_; }

  // The position after an entry of `length` bytes put at pos.
  static uint64_t end_of(uint64_t pos, uint64_t length) { return pos + (length > 0 ? length : 1); }
  uint64_t head() const { return head_; }
  uint64_t tail() const { return tail_; }
  // Where an entry of `length` bytes would start if the head were at `head`.
  uint64_t start_at(uint64_t head, uint64_t length) const {
    const uint64_t off = head % capacity_;
    return off + taken(length) <= capacity_ ? head : head + (capacity_ - off);
  }
  // Where an entry of `length` bytes would start.
  uint64_t start_of(uint64_t length) const { return start_at(head_, length); }
  // True when put(length) would not overwrite anything before the head that is not released.
  bool room(uint64_t length) const { return end_of(start_of(length), length) - tail_ <= capacity_; }

  // Copies data in at start_of(data.size()); returns its position. Precondition: room().
  uint64_t put(std::span<const std::byte> data) {
    RAFTD_ASSERT(taken(data.size()) <= capacity_ && room(data.size()), "cache arena: no room");
    const uint64_t pos = start_of(data.size());
    if (!data.empty()) std::memcpy(ring_ + pos % capacity_, data.data(), data.size());
    head_ = end_of(pos, data.size());
    return pos;
  }
  // The bytes of an entry put at pos; valid until the tail passes pos + length.
  const std::byte* at(uint64_t pos) const { return ring_ + pos % capacity_; }
  // Everything before `end` may be overwritten. Monotonic: an older `end` is ignored.
  void release(uint64_t end) {
    if (end > tail_) tail_ = end < head_ ? end : head_;
  }

 private:
  static uint64_t taken(uint64_t length) { return length > 0 ? length : 1; }

  uint64_t capacity_;
  std::byte* ring_ = nullptr;
  uint64_t head_ = 0;
  uint64_t tail_ = 0;
};

}  // namespace raftd::wal
