// base/memory.h: huge-page mappings and ASan poisoning.
#include "raftd/base/memory.h"

#include <doctest/doctest.h>

#include <cstring>

using namespace raftd;

TEST_CASE("base::memory: huge_rounded rounds up to whole huge pages") {
  CHECK(huge_rounded(0) == 0);
  CHECK(huge_rounded(1) == kHugePageBytes);
  CHECK(huge_rounded(kHugePageBytes) == kHugePageBytes);
  CHECK(huge_rounded(kHugePageBytes + 1) == 2 * kHugePageBytes);
}

TEST_CASE("base::memory: map_huge gives zeroed, writable memory of the rounded size") {
  const uint64_t n = kHugePageBytes + 4096;
  std::byte* p = map_huge(n, "test");
  REQUIRE(p != nullptr);
  CHECK(reinterpret_cast<uintptr_t>(p) % 4096 == 0);
  CHECK(p[0] == std::byte{0});
  CHECK(p[huge_rounded(n) - 1] == std::byte{0});  // the whole rounded size is usable
  std::memset(p, 0xab, n);
  CHECK(p[n - 1] == std::byte{0xab});
  unmap_huge(p, n);
}

#ifdef RAFTD_ASAN
TEST_CASE("base::memory: asan_poison marks memory unusable until asan_unpoison") {
  std::byte* p = map_huge(4096, "test");
  CHECK_FALSE(__asan_address_is_poisoned(p + 100));
  asan_poison(p, 4096);
  CHECK(__asan_address_is_poisoned(p + 100));
  asan_unpoison(p, 64);
  CHECK_FALSE(__asan_address_is_poisoned(p + 8));
  CHECK(__asan_address_is_poisoned(p + 100));
  asan_unpoison(p, 4096);
  unmap_huge(p, 4096);
}
#endif
