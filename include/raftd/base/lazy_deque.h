// LazyDeque<T>: a FIFO (push at the back, take from the front) that holds no heap memory while
// it is empty. A std::deque allocates on construction (libstdc++: its map of 8 pointers and one
// 512-byte node, about 600 bytes), and raftd keeps several per group that are empty nearly all
// the time (the host's Readys waiting for durability, the app client's entries and calls):
// thousands of idle groups would pay that each. This one is a ring of slots made on the first
// push (two slots, doubled when full) and freed when it empties: one small allocation per busy
// spell of a group, where a deque made on demand took two. (base/ring.h's Ring is the same ring
// for trivially copyable values, moved with memcpy and shrunk as it drains; this one constructs
// and destroys its values in place and keeps its slots until it is empty.)
//
// Threading: none (a plain value).
#pragma once

#include <cstddef>
#include <memory>
#include <utility>

#include "raftd/base/assert.h"

namespace raftd {

template <typename T>
class LazyDeque {
 public:
  LazyDeque() = default;
  ~LazyDeque() { clear(); }
  LazyDeque(LazyDeque&& other) noexcept
      : slots_(std::exchange(other.slots_, nullptr)),
        capacity_(std::exchange(other.capacity_, 0)),
        head_(std::exchange(other.head_, 0)),
        size_(std::exchange(other.size_, 0)) {}
  LazyDeque& operator=(LazyDeque&& other) noexcept {
    if (this != &other) {
      clear();
      std::swap(slots_, other.slots_);
      std::swap(capacity_, other.capacity_);
      std::swap(head_, other.head_);
      std::swap(size_, other.size_);
    }
    return *this;
  }
  LazyDeque(const LazyDeque&) = delete;
  LazyDeque& operator=(const LazyDeque&) = delete;

  bool empty() const { return size_ == 0; }
  std::size_t size() const { return size_; }
  // Slots allocated (0 exactly while empty).
  std::size_t capacity() const { return capacity_; }
  T& front() {
    RAFTD_ASSERT(size_ > 0, "LazyDeque::front of an empty queue");
    return slots_[head_];
  }
  const T& front() const {
    RAFTD_ASSERT(size_ > 0, "LazyDeque::front of an empty queue");
    return slots_[head_];
  }
  void push_back(T v) {
    if (size_ == capacity_) grow();
    std::construct_at(&slots_[(head_ + size_) & (capacity_ - 1)], std::move(v));
    ++size_;
  }
  void pop_front() {
    RAFTD_ASSERT(size_ > 0, "LazyDeque::pop_front of an empty queue");
    std::destroy_at(&slots_[head_]);
    head_ = (head_ + 1) & (capacity_ - 1);
    if (--size_ == 0) release();
  }
  void clear() {
    while (size_ > 0) {
      std::destroy_at(&slots_[head_]);
      head_ = (head_ + 1) & (capacity_ - 1);
      --size_;
    }
    release();
  }

 private:
  static constexpr std::size_t kFirstCapacity = 2;  // a power of two, as every capacity is

  void grow() {
    const std::size_t capacity = capacity_ == 0 ? kFirstCapacity : capacity_ * 2;
    T* slots = std::allocator<T>().allocate(capacity);
    for (std::size_t i = 0; i < size_; ++i) {
      T& from = slots_[(head_ + i) & (capacity_ - 1)];
      std::construct_at(&slots[i], std::move(from));
      std::destroy_at(&from);
    }
    if (slots_ != nullptr) std::allocator<T>().deallocate(slots_, capacity_);
    slots_ = slots;
    capacity_ = capacity;
    head_ = 0;
  }
  void release() {
    if (slots_ != nullptr) std::allocator<T>().deallocate(slots_, capacity_);
    slots_ = nullptr;
    capacity_ = 0;
    head_ = 0;
  }

  T* slots_ = nullptr;  // capacity_ slots; [head_, head_ + size_) mod capacity_ are live
  std::size_t capacity_ = 0;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

}  // namespace raftd
