#include "raftd/base/ring.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <deque>
#include <random>
#include <vector>

namespace raftd {
namespace {

struct Loc {
  std::uint64_t a = 0;
  std::uint32_t b = 0;
};

std::vector<std::uint64_t> contents(const Ring<std::uint64_t>& r) {
  std::vector<std::uint64_t> v;
  for (std::uint64_t x : r) v.push_back(x);
  return v;
}

TEST_CASE("base::Ring: pushes and pops at both ends match a deque through wrap, growth, shrink") {
  Ring<std::uint64_t> r;
  std::deque<std::uint64_t> model;
  std::mt19937_64 rng(7);
  std::uint64_t next = 1;
  for (int step = 0; step < 200'000; ++step) {
    // Phases of growth and of shrinking, so the array doubles and halves many times while its
    // front sits anywhere in it.
    const bool growing = (step / 5000) % 2 == 0;
    const auto dice = rng() % 10;
    if (dice < (growing ? 6u : 3u) || model.empty()) {
      r.push_back(next);
      model.push_back(next++);
    } else if (dice < 8) {
      r.pop_front();
      model.pop_front();
    } else {
      r.pop_back();
      model.pop_back();
    }
    REQUIRE(r.size() == model.size());
    if (!model.empty()) {
      REQUIRE(r.front() == model.front());
      REQUIRE(r.back() == model.back());
      const std::size_t i = rng() % model.size();
      REQUIRE(r[i] == model[i]);
      // The array stays within 4x of what it holds, and a power of two.
      REQUIRE(r.capacity() >= r.size());
      REQUIRE(r.capacity() <=
              std::max<std::size_t>(Ring<std::uint64_t>::kMinCapacity, 4 * r.size()));
      REQUIRE((r.capacity() & (r.capacity() - 1)) == 0);
    } else {
      REQUIRE(r.capacity() == 0);
    }
    if (step % 997 == 0) {
      REQUIRE(contents(r) == std::vector<std::uint64_t>(model.begin(), model.end()));
    }
  }
}

TEST_CASE("base::Ring: an idle group's one entry costs two slots; empty costs nothing") {
  Ring<Loc> r;
  CHECK(r.capacity() == 0);
  r.push_back(Loc{1, 2});
  CHECK(r.capacity() == Ring<Loc>::kMinCapacity);
  r.push_back(Loc{3, 4});
  CHECK(r.capacity() == 2);
  r.pop_front();
  CHECK(r.front().a == 3);
  r.pop_front();
  CHECK(r.empty());
  CHECK(r.capacity() == 0);
}

TEST_CASE("base::Ring: copies and moves keep the order of a wrapped ring") {
  Ring<std::uint64_t> r;
  for (std::uint64_t i = 1; i <= 8; ++i) r.push_back(i);
  for (int i = 0; i < 5; ++i) r.pop_front();  // the front at slot 5 of 8: the pushes wrap
  for (std::uint64_t i = 9; i <= 12; ++i) r.push_back(i);
  const std::vector<std::uint64_t> want{6, 7, 8, 9, 10, 11, 12};
  REQUIRE(contents(r) == want);
  Ring<std::uint64_t> copy = r;
  CHECK(contents(copy) == want);
  Ring<std::uint64_t> moved = std::move(r);
  CHECK(contents(moved) == want);
  CHECK(r.empty());  // NOLINT(bugprone-use-after-move): a moved-from ring is empty
  for (auto& x : moved) x *= 10;
  CHECK(moved.front() == 60);
  moved.clear();
  CHECK(moved.capacity() == 0);
  CHECK(contents(copy) == want);
}

}  // namespace
}  // namespace raftd
