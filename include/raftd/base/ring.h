// Ring<T>: a double-ended sequence of trivially copyable values in one array used as a circular
// buffer: push and pop at both ends, indexing, iteration front to back. The array doubles when
// full and halves when no more than a quarter of it is used, so memory follows the size: a ring
// of 1 or 2 values holds 2 slots, an empty one none.
//
// Why not std::deque: libstdc++'s deque allocates a 512-byte node and a map on construction and
// keeps one node while empty. The WAL keeps one index per group (the locations of its live
// entries, wal/group_log.h), and an idle group holds one or two entries: with 10,000 groups the
// deques alone cost about 5.8 MB per node. The WAL keeps short logs in a Ring.
//
// Growing copies every value once per doubling (amortized O(1) per push). References and
// iterators are invalidated by any push or pop, as for std::vector.
//
// Threading: none (a plain value).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <utility>

#include "raftd/base/assert.h"

namespace raftd {

// A forward iterator over any container with operator[] and size(), by position: for range-for
// over Ring and containers built on it.
template <typename C, typename V>
class IndexIter {
 public:
  IndexIter(C* c, std::size_t i) : c_(c), i_(i) {}
  V& operator*() const { return (*c_)[i_]; }
  V* operator->() const { return &(*c_)[i_]; }
  IndexIter& operator++() {
    ++i_;
    return *this;
  }
  bool operator==(const IndexIter& o) const { return i_ == o.i_; }

 private:
  C* c_;
  std::size_t i_;
};

template <typename T>
class Ring {
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>,
                "Ring moves its values with memcpy");

 public:
  // The smallest array allocated, and the one shrinking stops at.
  static constexpr std::size_t kMinCapacity = 2;

  Ring() = default;
  Ring(const Ring& o) { *this = o; }
  Ring& operator=(const Ring& o) {
    if (this == &o) return *this;
    clear();
    if (o.size_ > 0) {
      reallocate(capacity_for(o.size_));
      for (std::size_t i = 0; i < o.size_; ++i) buf_[i] = o[i];
      size_ = o.size_;
    }
    return *this;
  }
  Ring(Ring&& o) noexcept
      : buf_(std::exchange(o.buf_, nullptr)),
        cap_(std::exchange(o.cap_, 0)),
        head_(std::exchange(o.head_, 0)),
        size_(std::exchange(o.size_, 0)) {}
  Ring& operator=(Ring&& o) noexcept {
    if (this != &o) {
      std::free(buf_);
      buf_ = std::exchange(o.buf_, nullptr);
      cap_ = std::exchange(o.cap_, 0);
      head_ = std::exchange(o.head_, 0);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  ~Ring() { std::free(buf_); }

  bool empty() const { return size_ == 0; }
  std::size_t size() const { return size_; }
  std::size_t capacity() const { return cap_; }

  T& operator[](std::size_t i) {
    RAFTD_ASSERT(i < size_, "Ring index out of range");
    return buf_[(head_ + i) & (cap_ - 1)];
  }
  const T& operator[](std::size_t i) const {
    RAFTD_ASSERT(i < size_, "Ring index out of range");
    return buf_[(head_ + i) & (cap_ - 1)];
  }
  T& front() { return (*this)[0]; }
  const T& front() const { return (*this)[0]; }
  T& back() { return (*this)[size_ - 1]; }
  const T& back() const { return (*this)[size_ - 1]; }

  void push_back(const T& v) {
    if (size_ == cap_) reallocate(cap_ == 0 ? kMinCapacity : cap_ * 2);
    buf_[(head_ + size_) & (cap_ - 1)] = v;
    ++size_;
  }
  void pop_front() {
    RAFTD_ASSERT(size_ > 0, "Ring::pop_front of an empty ring");
    head_ = (head_ + 1) & (cap_ - 1);
    --size_;
    maybe_shrink();
  }
  void pop_back() {
    RAFTD_ASSERT(size_ > 0, "Ring::pop_back of an empty ring");
    --size_;
    maybe_shrink();
  }
  // Frees the array.
  void clear() {
    std::free(buf_);
    buf_ = nullptr;
    cap_ = head_ = size_ = 0;
  }

  using iterator = IndexIter<Ring, T>;
  using const_iterator = IndexIter<const Ring, const T>;
  iterator begin() { return {this, 0}; }
  iterator end() { return {this, size_}; }
  const_iterator begin() const { return {this, 0}; }
  const_iterator end() const { return {this, size_}; }

 private:
  static std::size_t capacity_for(std::size_t n) {
    std::size_t c = kMinCapacity;
    while (c < n) c *= 2;
    return c;
  }
  void maybe_shrink() {
    if (size_ == 0) {
      clear();
    } else if (cap_ > kMinCapacity && size_ <= cap_ / 4) {
      reallocate(cap_ / 2);
    }
  }
  // Moves the values, front first, to the start of a new array of `cap` slots (a power of two).
  void reallocate(std::size_t cap) {
    RAFTD_ASSERT(cap >= size_ && (cap & (cap - 1)) == 0, "Ring: bad capacity");
    T* nb = static_cast<T*>(std::malloc(cap * sizeof(T)));
    RAFTD_ASSERT(nb != nullptr, "Ring: out of memory");
    if (size_ > 0) {
      const std::size_t first = std::min(size_, cap_ - head_);
      std::memcpy(static_cast<void*>(nb), buf_ + head_, first * sizeof(T));
      std::memcpy(static_cast<void*>(nb + first), buf_, (size_ - first) * sizeof(T));
    }
    std::free(buf_);
    buf_ = nb;
    cap_ = cap;
    head_ = 0;
  }

  T* buf_ = nullptr;
  std::size_t cap_ = 0;   // 0 or a power of two
  std::size_t head_ = 0;  // slot of the front value
  std::size_t size_ = 0;
};

}  // namespace raftd
