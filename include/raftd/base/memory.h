// Anonymous memory on transparent huge pages, and AddressSanitizer's poisoning of memory the
// heap does not guard. The WAL's cache arena, its index node pool and the recovery scan's segment
// buffer map their large buffers here: a first touch of a 4 KiB page costs a fault (several
// microseconds in a VM, more than the work done on the page), a huge page one fault per 2 MiB.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>

#include "raftd/base/assert.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RAFTD_ASAN 1
#endif
#elif defined(__SANITIZE_ADDRESS__)
#define RAFTD_ASAN 1
#endif
#ifdef RAFTD_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace raftd {

inline constexpr uint64_t kHugePageBytes = 2ULL << 20;

// `bytes` rounded up to whole huge pages: what map_huge() maps.
constexpr uint64_t huge_rounded(uint64_t bytes) {
  return (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
}

// Reserves huge_rounded(bytes) of zeroed anonymous memory, faulted in as it is touched, on
// transparent huge pages where the kernel allows them. Out of address space is fatal (`what`
// names the owner). Release with unmap_huge(p, bytes).
inline std::byte* map_huge(uint64_t bytes, const char* what) {
  const uint64_t n = huge_rounded(bytes);
  void* p =
      mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  RAFTD_ASSERT(p != MAP_FAILED, what);
  (void)madvise(p, n, MADV_HUGEPAGE);  // advice only: 4 KiB pages work too
  return static_cast<std::byte*>(p);
}

inline void unmap_huge(std::byte* p, uint64_t bytes) {
  if (p != nullptr) munmap(p, huge_rounded(bytes));
}

// Under AddressSanitizer, marks [p, p + n) unusable (a later access is reported) or usable
// again; no-ops otherwise.
inline void asan_poison(const void* p, size_t n) {
#ifdef RAFTD_ASAN
  ASAN_POISON_MEMORY_REGION(p, n);
#else
  (void)p, (void)n;
#endif
}
inline void asan_unpoison(const void* p, size_t n) {
#ifdef RAFTD_ASAN
  ASAN_UNPOISON_MEMORY_REGION(p, n);
#else
  (void)p, (void)n;
#endif
}

}  // namespace raftd
