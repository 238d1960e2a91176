// LazyDeque<T>: a FIFO (push at the back, take from the front) that holds no heap memory while
// it is empty. A std::deque allocates on construction (libstdc++: its map of 8 pointers and one
// 512-byte node, about 600 bytes), and raftd keeps several per group that are empty nearly all
// the time (the host's Readys waiting for durability, the app client's entries and calls):
// thousands of idle groups would pay that each. This one makes its deque on the first push and
// frees it when it empties.
//
// Threading: none (a plain value).
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <utility>

#include "raftd/base/assert.h"

namespace raftd {

template <typename T>
class LazyDeque {
 public:
  bool empty() const { return !d_; }
  std::size_t size() const { return d_ ? d_->size() : 0; }
  T& front() {
    RAFTD_ASSERT(d_, "LazyDeque::front of an empty queue");
    return d_->front();
  }
  const T& front() const {
    RAFTD_ASSERT(d_, "LazyDeque::front of an empty queue");
    return d_->front();
  }
  void push_back(T v) {
    if (!d_) d_.emplace();
    d_->push_back(std::move(v));
  }
  void pop_front() {
    RAFTD_ASSERT(d_, "LazyDeque::pop_front of an empty queue");
    d_->pop_front();
    if (d_->empty()) d_.reset();
  }
  void clear() { d_.reset(); }

 private:
  std::optional<std::deque<T>> d_;  // engaged exactly while not empty
};

}  // namespace raftd
