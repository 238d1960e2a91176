#include "raftd/base/lazy_deque.h"

#include <doctest/doctest.h>

#include <deque>
#include <memory>
#include <random>
#include <string>
#include <utility>

TEST_CASE("base::LazyDeque: first in, first out; empty again after the last pop") {
  raftd::LazyDeque<std::string> q;
  CHECK(q.empty());
  CHECK(q.size() == 0);
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 1000; ++i) q.push_back(std::to_string(i));
    CHECK(q.size() == 1000);
    for (int i = 0; i < 1000; ++i) {
      REQUIRE_FALSE(q.empty());
      CHECK(q.front() == std::to_string(i));
      q.pop_front();
    }
    CHECK(q.empty());
  }
  q.push_back("x");
  q.clear();
  CHECK(q.empty());
}

TEST_CASE("base::LazyDeque: holds move-only values and frees them on clear") {
  raftd::LazyDeque<std::unique_ptr<int>> q;
  q.push_back(std::make_unique<int>(7));
  q.push_back(std::make_unique<int>(8));
  CHECK(*q.front() == 7);
  q.pop_front();
  CHECK(*q.front() == 8);
  q.clear();
  CHECK(q.empty());
}

TEST_CASE("base::LazyDeque: interleaved pushes and pops wrap and grow like a deque") {
  // The ring wraps around and grows while wrapped; a std::deque fed the same is the oracle.
  std::mt19937 rng(7);
  raftd::LazyDeque<std::string> q;
  std::deque<std::string> oracle;
  for (int step = 0; step < 20000; ++step) {
    if (oracle.empty() || rng() % 5 < 3) {
      std::string v = "value " + std::to_string(step) + std::string(rng() % 40, 'x');
      q.push_back(v);
      oracle.push_back(std::move(v));
    } else {
      REQUIRE(q.front() == oracle.front());
      q.pop_front();
      oracle.pop_front();
    }
    REQUIRE(q.size() == oracle.size());
    REQUIRE(q.empty() == oracle.empty());
    // Slots exist exactly while something is queued (a power of two of them, at least size).
    if (oracle.empty()) {
      REQUIRE(q.capacity() == 0);
    } else {
      REQUIRE(q.capacity() >= q.size());
      REQUIRE((q.capacity() & (q.capacity() - 1)) == 0);
    }
  }
}

TEST_CASE("base::LazyDeque: moves take the slots along") {
  raftd::LazyDeque<std::unique_ptr<int>> a;
  for (int i = 0; i < 5; ++i) a.push_back(std::make_unique<int>(i));
  a.pop_front();
  raftd::LazyDeque<std::unique_ptr<int>> b(std::move(a));
  CHECK(a.empty());
  CHECK(a.capacity() == 0);
  CHECK(b.size() == 4);
  raftd::LazyDeque<std::unique_ptr<int>> c;
  c.push_back(std::make_unique<int>(99));
  c = std::move(b);  // c's own element is freed (ASan would see a leak otherwise)
  CHECK(c.size() == 4);
  for (int i = 1; i < 5; ++i) {
    CHECK(*c.front() == i);
    c.pop_front();
  }
  CHECK(c.capacity() == 0);
  c.push_back(std::make_unique<int>(5));  // the destructor frees what is left
}

TEST_CASE("base::LazyDeque: an empty queue is smaller than the deque it replaces") {
  // Not the heap: an empty LazyDeque holds none, which is the point; its inline size is a
  // deque's plus the engaged flag.
  CHECK(sizeof(raftd::LazyDeque<int>) <= sizeof(std::deque<int>) + sizeof(void*));
}
