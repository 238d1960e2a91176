// Flow control per follower (probe / replicate / snapshot) and quorum arithmetic.
#include "progress.h"

#include <algorithm>

namespace raftd::raft {

void Inflights::add(LogIndex last, uint64_t bytes) {
  window_.push_back({last, bytes});
  bytes_ += bytes;
}

void Inflights::free_le(LogIndex index) {
  while (head_ < window_.size() && window_[head_].last <= index) {
    bytes_ -= window_[head_].bytes;
    ++head_;
  }
  if (head_ == window_.size()) {
    window_.clear();
    head_ = 0;
  } else if (head_ >= 64 && head_ * 2 >= window_.size()) {
    // Reclaim the freed prefix once it dominates, so the vector stays bounded by the window.
    window_.erase(window_.begin(), window_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
}

void Inflights::free_first() {
  if (head_ == window_.size()) return;
  free_le(window_[head_].last);
}

void Inflights::reset() {
  std::vector<Flight>().swap(window_);
  head_ = 0;
  bytes_ = 0;
}

bool Inflights::full(uint32_t max_msgs, uint64_t max_bytes) const {
  return count() >= max_msgs || (max_bytes != 0 && bytes_ >= max_bytes);
}

void Progress::become_probe() {
  // Coming back from a snapshot, the follower has at least the snapshot: probe from there.
  if (state == ProgressState::kSnapshot && pending_snapshot != LogIndex(0)) {
    next = std::max(match + 1, pending_snapshot + 1);
  } else {
    next = match + 1;
  }
  state = ProgressState::kProbe;
  probe_sent = false;
  pending_snapshot = LogIndex(0);
  inflights.reset();
}

void Progress::become_replicate() {
  state = ProgressState::kReplicate;
  next = match + 1;
  probe_sent = false;
  pending_snapshot = LogIndex(0);
  inflights.reset();
}

void Progress::become_snapshot() {
  state = ProgressState::kSnapshot;
  probe_sent = false;
  pending_snapshot = LogIndex(0);
  inflights.reset();
}

bool Progress::maybe_update(LogIndex index) {
  bool updated = false;
  if (index > match) {
    match = index;
    updated = true;
    probe_sent = false;
  }
  if (next < index + 1) next = index + 1;
  return updated;
}

bool Progress::maybe_decrease_to(LogIndex rejected, LogIndex hint) {
  if (state == ProgressState::kReplicate) {
    // Pipelined appends beyond match were lost or rejected: restart after match.
    if (rejected <= match) return false;
    next = match + 1;
    return true;
  }
  // Probing: only the rejection of the append we sent last is meaningful.
  if (next - 1 != rejected) return false;
  LogIndex to = std::min(rejected, hint + 1);
  next = std::max(to, match + 1);
  if (next < LogIndex(1)) next = LogIndex(1);
  probe_sent = false;
  return true;
}

bool Progress::paused(uint32_t max_msgs, uint64_t max_bytes) const {
  switch (state) {
    case ProgressState::kProbe: return probe_sent;
    case ProgressState::kReplicate: return inflights.full(max_msgs, max_bytes);
    case ProgressState::kSnapshot: return true;
  }
  return true;
}

VoteResult vote_result(const std::vector<NodeId>& voters, const std::map<NodeId, bool>& votes) {
  if (voters.empty()) return VoteResult::kWon;
  size_t granted = 0, missing = 0;
  for (NodeId v : voters) {
    auto it = votes.find(v);
    if (it == votes.end()) {
      ++missing;
    } else if (it->second) {
      ++granted;
    }
  }
  size_t quorum = voters.size() / 2 + 1;
  if (granted >= quorum) return VoteResult::kWon;
  if (granted + missing >= quorum) return VoteResult::kPending;
  return VoteResult::kLost;
}

VoteResult joint_vote_result(const ConfState& cs, const std::map<NodeId, bool>& votes) {
  VoteResult in = vote_result(cs.voters, votes);
  VoteResult out = vote_result(cs.voters_outgoing, votes);
  if (in == VoteResult::kLost || out == VoteResult::kLost) return VoteResult::kLost;
  if (in == VoteResult::kWon && out == VoteResult::kWon) return VoteResult::kWon;
  return VoteResult::kPending;
}

bool contains(const std::vector<NodeId>& v, NodeId id) {
  return std::find(v.begin(), v.end(), id) != v.end();
}

}  // namespace raftd::raft
