// Internal: the leader's view of each follower (match/next, flow-control state, inflight window)
// and quorum arithmetic over (possibly joint) voter sets.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "raftd/raft/raft.h"

namespace raftd::raft {

// Appends sent but not yet acknowledged, by last index, bounded by count and by bytes.
class Inflights {
 public:
  void add(LogIndex last, uint64_t bytes);
  // Frees every append whose last index is <= `index` (they were acknowledged).
  void free_le(LogIndex index);
  // Frees the oldest append. Only the simulator's heartbeat_frees_inflight mutation calls it
  // (raftd/raft/bugs.h): freeing on a heartbeat answer widens the window without bound.
  void free_first();
  void reset();
  bool full(uint32_t max_msgs, uint64_t max_bytes) const;
  uint32_t count() const { return static_cast<uint32_t>(window_.size() - head_); }
  uint64_t bytes() const { return bytes_; }

 private:
  struct Flight {
    LogIndex last;
    uint64_t bytes;
  };
  // window_[head_..] are in flight. A vector (not a deque) so an idle follower costs no heap:
  // libstdc++'s deque allocates even when empty, and a node hosts thousands of groups.
  std::vector<Flight> window_;
  size_t head_ = 0;
  uint64_t bytes_ = 0;
};

struct Progress {
  LogIndex match;  // highest index known replicated (durable) on the follower
  LogIndex next;   // next index to send
  ProgressState state = ProgressState::kProbe;
  bool probe_sent = false;     // kProbe: one append in flight, wait for a reply/heartbeat
  LogIndex pending_snapshot;   // kSnapshot: index of the snapshot sent (0 = still requested)
  bool recent_active = false;  // heard from within the current CheckQuorum period
  bool learner = false;
  uint64_t read_ack = 0;           // highest read round the follower answered
  LogIndex sent_commit;            // highest commit index sent to it (to bump it promptly)
  uint64_t wake_epoch = 0;         // the follower's wake epoch as last heard; echoed in kQuiesce
  bool append_since_beat = false;  // an append went to it since the last heartbeat round
  Inflights inflights;

  void become_probe();
  void become_replicate();
  void become_snapshot();
  // An acknowledgement up to `index`: returns whether match moved.
  bool maybe_update(LogIndex index);
  // A rejection of the append with previous index `rejected`; `hint` is the leader's guess of the
  // last matching index. Returns false for stale rejections.
  bool maybe_decrease_to(LogIndex rejected, LogIndex hint);
  bool paused(uint32_t max_msgs, uint64_t max_bytes) const;
};

using ProgressMap = std::map<NodeId, Progress>;

enum class VoteResult { kPending, kWon, kLost };

// Largest value v such that a majority of `voters` have value >= v (value_of missing = 0).
// An empty voter set places no constraint (UINT64_MAX).
template <typename F>
uint64_t majority_value(const std::vector<NodeId>& voters, F value_of) {
  if (voters.empty()) return UINT64_MAX;
  // On the stack for any usual group: this runs for every acknowledgement a leader receives.
  constexpr size_t kInline = 16;
  uint64_t inline_vals[kInline];
  std::vector<uint64_t> heap_vals;
  uint64_t* vals = inline_vals;
  if (voters.size() > kInline) {
    heap_vals.resize(voters.size());
    vals = heap_vals.data();
  }
  for (size_t i = 0; i < voters.size(); ++i) vals[i] = value_of(voters[i]);
  std::sort(vals, vals + voters.size());
  return vals[voters.size() - (voters.size() / 2 + 1)];
}

// Whether a majority of `voters` satisfy `yes` (an empty voter set places no constraint), and
// the same for both halves of a joint configuration.
template <typename F>
bool majority_agrees(const std::vector<NodeId>& voters, F yes) {
  size_t n = 0;
  for (NodeId v : voters) n += yes(v) ? 1 : 0;
  return voters.empty() || n >= voters.size() / 2 + 1;
}
template <typename F>
bool joint_majority_agrees(const ConfState& cs, F yes) {
  return majority_agrees(cs.voters, yes) && majority_agrees(cs.voters_outgoing, yes);
}

template <typename F>
uint64_t joint_majority_value(const ConfState& cs, F value_of) {
  uint64_t in = majority_value(cs.voters, value_of);
  uint64_t out = majority_value(cs.voters_outgoing, value_of);
  return in < out ? in : out;
}

// Tally of votes (granted = true) over `voters`; missing voters have not answered.
VoteResult vote_result(const std::vector<NodeId>& voters, const std::map<NodeId, bool>& votes);
VoteResult joint_vote_result(const ConfState& cs, const std::map<NodeId, bool>& votes);

bool contains(const std::vector<NodeId>& v, NodeId id);

}  // namespace raftd::raft
