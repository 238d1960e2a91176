// The simulator's only source of randomness: xoshiro256** seeded through splitmix64. Every
// random choice of a run comes from one Prng built from the run's seed, so a seed replays the
// run exactly on any platform (no std:: distributions, whose output is implementation-defined).
#pragma once

#include <cstdint>

#include "raftd/base/assert.h"

namespace raftd::sim {

class Prng {
 public:
  explicit Prng(uint64_t seed) {
    uint64_t x = seed;
    for (uint64_t& word : s_) word = splitmix64(x);
  }

  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, n), n > 0 (Lemire's multiply-shift; the tiny bias is irrelevant here and
  // keeps one draw per call, which keeps traces easy to reason about).
  uint64_t below(uint64_t n) {
    RAFTD_ASSERT(n > 0, "Prng::below(0)");
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }
  // Uniform in [lo, hi].
  uint64_t range(uint64_t lo, uint64_t hi) { return lo + below(hi - lo + 1); }
  // True with probability per_million / 1e6.
  bool chance(uint32_t per_million) { return below(1'000'000) < per_million; }
  // A fresh seed for a sub-generator (e.g. one per raft node), drawn from this stream.
  uint64_t fork() { return next(); }

  static uint64_t splitmix64(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace raftd::sim
