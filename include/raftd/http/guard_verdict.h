// The answer of the layer's incremental pre-scans (HeaderGuard, ChunkGuard): one type for both,
// so the parser reads every guard the same way.
//
// A guard is fed bytes in any split and reports kMore (its section continues), kDone (the
// section ended; the guard scanned up to its last byte) or kBad (a byte outside the strict
// grammar; final until reset()).
#pragma once

#include <cstdint>

namespace raftd::http {

enum class GuardVerdict : std::uint8_t { kMore, kDone, kBad };

// The verdict of a guard whose state machine ends in the states State::kDone and State::kBad
// (every other state means more bytes are expected).
template <typename State>
constexpr GuardVerdict guard_verdict(State state) {
  if (state == State::kDone) return GuardVerdict::kDone;
  if (state == State::kBad) return GuardVerdict::kBad;
  return GuardVerdict::kMore;
}

}  // namespace raftd::http
