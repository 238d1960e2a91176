// Distinct integer types for ids, terms and indexes, so that a term cannot be passed where a log
// index is expected. They compare, order, hash and print like the integer they wrap; arithmetic
// is limited to what the code needs (+/- an integer, difference of two values).
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <ostream>

namespace raftd {

template <typename Tag>
class StrongU64 {
 public:
  constexpr StrongU64() = default;
  constexpr explicit StrongU64(uint64_t v) : v_(v) {}

  constexpr uint64_t value() const { return v_; }
  constexpr auto operator<=>(const StrongU64&) const = default;

  constexpr StrongU64 operator+(uint64_t n) const { return StrongU64(v_ + n); }
  constexpr StrongU64 operator-(uint64_t n) const { return StrongU64(v_ - n); }
  constexpr uint64_t operator-(StrongU64 o) const { return v_ - o.v_; }
  constexpr StrongU64& operator++() {
    ++v_;
    return *this;
  }
  constexpr StrongU64& operator+=(uint64_t n) {
    v_ += n;
    return *this;
  }

  friend std::ostream& operator<<(std::ostream& os, StrongU64 x) { return os << x.v_; }

 private:
  uint64_t v_ = 0;
};

struct NodeIdTag {};
struct GroupIdTag {};
struct TermTag {};
struct LogIndexTag {};

using NodeId = StrongU64<NodeIdTag>;      // >= 1; 0 means "none"
using GroupId = StrongU64<GroupIdTag>;    // group 0 is the meta group
using Term = StrongU64<TermTag>;          // Raft term, never decreases on a node
using LogIndex = StrongU64<LogIndexTag>;  // 1-based; 0 means "before the first entry"

}  // namespace raftd

template <typename Tag>
struct std::hash<raftd::StrongU64<Tag>> {
  size_t operator()(raftd::StrongU64<Tag> x) const noexcept {
    return std::hash<uint64_t>{}(x.value());
  }
};
