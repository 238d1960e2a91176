// Histogram: a count of observations per fixed bucket, their sum and their number, the shape
// Prometheus exports (`_bucket{le=...}`, `_sum`, `_count`; node/metrics.h renders it). Kept by
// the layer that sees the events (the WAL's batches, the app client's calls, the node's client
// requests) and read at scrape time, so the buckets are fixed at construction: observing costs a
// short scan and no allocation.
//
// Threading: none of its own; the owner's thread (the reactor's in raftd) observes and reads.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "raftd/base/assert.h"

namespace raftd {

// Bucket bounds (upper, inclusive) for durations in seconds: 100 us (a page-cache fsync, a
// loopback call) to 30 s (beyond the API's own timeouts), about three per decade.
inline constexpr std::array<double, 17> kSecondsBuckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,    0.25,    0.5,    1.0,   2.5,    5.0,   10.0, 30.0};
// Bucket bounds for sizes in bytes: 256 B (a batch of one small entry) to 64 MiB (above the
// largest WAL batch, segment_bytes / 4 of a 256 MiB segment), a factor of four apart.
inline constexpr std::array<double, 10> kBytesBuckets = {
    256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864};

class Histogram {
 public:
  // Enough for any of the bucket sets above; the counts live inline.
  static constexpr std::size_t kBoundsMax = 24;

  // `bounds`: ascending upper bounds in static storage (the histogram keeps the span).
  explicit Histogram(std::span<const double> bounds) : bounds_(bounds) {
    RAFTD_ASSERT(!bounds.empty() && bounds.size() <= kBoundsMax, "histogram: 1 to 24 buckets");
    RAFTD_ASSERT(std::is_sorted(bounds.begin(), bounds.end()) &&
                     std::adjacent_find(bounds.begin(), bounds.end()) == bounds.end(),
                 "histogram: bucket bounds must be strictly ascending");
  }

  // Counted in the first bucket whose bound is >= v (the +Inf bucket past the last bound).
  void observe(double v) {
    const auto at = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
    ++counts_[static_cast<std::size_t>(at)];
    ++count_;
    sum_ += v;
  }

  std::span<const double> bounds() const { return bounds_; }
  // Observations <= bounds()[i] (Prometheus' cumulative bucket); i == bounds().size() is +Inf.
  std::uint64_t cumulative(std::size_t i) const {
    RAFTD_ASSERT(i <= bounds_.size(), "histogram: bucket out of range");
    std::uint64_t n = 0;
    for (std::size_t k = 0; k <= i; ++k) n += counts_[k];
    return n;
  }
  std::uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::span<const double> bounds_;
  std::array<std::uint64_t, kBoundsMax + 1> counts_{};  // per bucket, not cumulative
  std::uint64_t count_ = 0;
  double sum_ = 0;
};

}  // namespace raftd
