// LatencyHistogram: the latency record of raftd-load, log-linear like HdrHistogram. Values below
// 2^kPrecisionBits are counted exactly; above, every power-of-two range is cut into
// 2^(kPrecisionBits - 1) equal buckets, so a reported value is at most 1/2^(kPrecisionBits - 1)
// (0.78%) above the true one, from nanoseconds to centuries, in a fixed 58 KiB of counts.
// Recording is a count-leading-zeros, a shift and an increment; no allocation.
//
// percentile(q) reports the highest value of the bucket holding the observation of rank
// ceil(q * count) (1-based, over the sorted observations), capped at the largest value seen:
// the same "highest equivalent value" HdrHistogram prints, so it never under-reports.
//
// Threading: none; each load thread keeps its own and they are merged at the end.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace raftd::bench {

class LatencyHistogram {
 public:
  // 2^8 exact values, then 128 buckets per power of two: 0.78% relative precision, the same
  // order as wrk2's and HdrHistogram's usual 2-3 significant digits.
  static constexpr unsigned kPrecisionBits = 8;
  static constexpr uint64_t kExact = uint64_t{1} << kPrecisionBits;
  static constexpr uint64_t kHalf = kExact / 2;
  static constexpr std::size_t kBuckets = kExact + (64 - kPrecisionBits) * kHalf;

  LatencyHistogram() : counts_(std::make_unique<std::array<uint64_t, kBuckets>>()) {
    counts_->fill(0);
  }
  LatencyHistogram(LatencyHistogram&&) = default;
  LatencyHistogram& operator=(LatencyHistogram&&) = default;

  static std::size_t bucket_of(uint64_t v) {
    if (v < kExact) return static_cast<std::size_t>(v);
    const unsigned msb = 63u - static_cast<unsigned>(std::countl_zero(v));
    const unsigned shift = msb - kPrecisionBits + 1;  // v >> shift lies in [kHalf, kExact)
    return static_cast<std::size_t>(kExact + (shift - 1) * kHalf + ((v >> shift) - kHalf));
  }
  // Smallest and largest value counted in bucket `b`.
  static uint64_t bucket_low(std::size_t b) {
    if (b < kExact) return b;
    const uint64_t k = b - kExact;
    const uint64_t shift = k / kHalf + 1;
    return (k % kHalf + kHalf) << shift;
  }
  static uint64_t bucket_high(std::size_t b) {
    if (b < kExact) return b;
    const uint64_t k = b - kExact;
    const uint64_t shift = k / kHalf + 1;
    const uint64_t next = (k % kHalf + kHalf + 1) << shift;
    return next == 0 ? UINT64_MAX : next - 1;  // the very last bucket ends at 2^64 - 1
  }

  void record(uint64_t v) {
    ++(*counts_)[bucket_of(v)];
    ++count_;
    if (v > max_) max_ = v;
    if (v < min_) min_ = v;
    sum_ += static_cast<double>(v);
  }
  void merge(const LatencyHistogram& other) {
    for (std::size_t i = 0; i < kBuckets; ++i) (*counts_)[i] += (*other.counts_)[i];
    count_ += other.count_;
    sum_ += other.sum_;
    if (other.max_ > max_) max_ = other.max_;
    if (other.min_ < min_) min_ = other.min_;
  }

  // q in [0, 1]; 0 when nothing was recorded.
  uint64_t percentile(double q) const {
    if (count_ == 0) return 0;
    if (q <= 0) return min_;
    double want = q * static_cast<double>(count_);
    uint64_t rank = static_cast<uint64_t>(want);
    if (static_cast<double>(rank) < want) ++rank;  // ceil without <cmath>'s rounding surprises
    if (rank < 1) rank = 1;
    if (rank > count_) rank = count_;
    uint64_t seen = 0;
    for (std::size_t b = 0; b < kBuckets; ++b) {
      seen += (*counts_)[b];
      if (seen >= rank) return bucket_high(b) < max_ ? bucket_high(b) : max_;
    }
    return max_;
  }

  // Observations counted in the buckets up to the one holding `v` (all those <= v, and some
  // equal to it within the bucket's precision).
  uint64_t count_at_or_below(uint64_t v) const {
    uint64_t n = 0;
    const std::size_t last = bucket_of(v);
    for (std::size_t b = 0; b <= last; ++b) n += (*counts_)[b];
    return n;
  }

  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  double mean() const { return count_ == 0 ? 0 : sum_ / static_cast<double>(count_); }
  uint64_t count_at(std::size_t b) const { return (*counts_)[b]; }

 private:
  std::unique_ptr<std::array<uint64_t, kBuckets>> counts_;
  uint64_t count_ = 0;
  uint64_t max_ = 0;
  uint64_t min_ = UINT64_MAX;
  double sum_ = 0;
};

}  // namespace raftd::bench
