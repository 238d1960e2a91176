// Mutation hooks: deliberately reintroduced classic Raft bugs, so the simulator can prove that its
// checkers catch them. Compiled only into raft_sim_dep (built with RAFTD_SIM_BUGS=1); the
// daemon's raft_dep has no hooks and this header refuses to compile there.
//
// The selected bug is process-wide (the simulator is single-threaded); set it before creating
// groups. kNone restores correct behaviour.
#pragma once

#if !defined(RAFTD_SIM_BUGS) || !RAFTD_SIM_BUGS
#error "raftd/raft/bugs.h is for the simulator only: link raft_sim_dep"
#endif

#include <optional>
#include <span>
#include <string_view>

namespace raftd::raft {

enum class Bug {
  kNone = 0,
  kCommitPrevTerm,          // commit_prev_term: count replicas for entries of earlier terms
  kVoteBeforePersist,       // vote_before_persist: vote responses leave before the vote is durable
  kAckBeforePersist,        // ack_before_persist: append responses leave before the entries are
                            // durable, and the leader counts its own entries before on_persisted
  kReadWithoutQuorum,       // read_without_quorum: ReadIndex answered at once with the commit index
  kTruncateCommitted,       // truncate_committed: a conflicting suffix below commit is accepted
  kLearnerInQuorum,         // learner_in_quorum: learners count toward the commit quorum and get
                            // vote requests whose answers count toward elections
  kConfAtAppend,            // conf_at_append: on the replica with node id 1 only, a configuration
                            // change takes effect when its entry is appended (the others wait for
                            // apply), so replicas disagree on the configuration
  kQuiesceWithoutLease,     // quiesce_without_lease: a follower obeys kQuiesce even when it has not
                            // heard from that leader within an election timeout (e.g. after wake())
  kReadIndexUnconfirmed,    // read_index_unconfirmed: once it committed in its term, the leader
                            // answers ReadIndex with its commit index without the quorum round
  kHeartbeatFreesInflight,  // heartbeat_frees_inflight: a heartbeat answer frees a slot of a
                            // full inflight window, so a follower whose disk stalls receives
                            // one more append per heartbeat, without bound
  kConfApplyLate,           // conf_apply_late: on the replica with node id 1 only, a conf
                            // change takes effect with the next committed entry applied
  kSnapshotBelowCommit,     // snapshot_below_commit: a follower installs a snapshot older than
                            // its commit index (a late or duplicated one), rewinding its log,
                            // commit index and state machine
};

void set_sim_bug(Bug bug);
Bug sim_bug();
// "none", "commit_prev_term", "vote_before_persist", "ack_before_persist",
// "read_without_quorum", "truncate_committed", "learner_in_quorum", "conf_at_append",
// "quiesce_without_lease", "read_index_unconfirmed", "heartbeat_frees_inflight",
// "conf_apply_late", "snapshot_below_commit"; nullopt for anything else.
std::optional<Bug> parse_sim_bug(std::string_view name);
const char* sim_bug_name(Bug bug);
// Every bug, kNone first, in declaration order (for listings such as `--bug help`).
std::span<const Bug> all_sim_bugs();

}  // namespace raftd::raft
