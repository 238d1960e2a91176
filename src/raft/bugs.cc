// Mutation hooks (simulator build only). See raftd/raft/bugs.h.
#include "raftd/raft/bugs.h"

#include <iterator>

namespace raftd::raft {
namespace {

// Process-wide by design: the simulator is single-threaded and selects one bug per run.
Bug g_bug = Bug::kNone;

struct BugName {
  Bug bug;
  const char* name;
};
constexpr BugName kBugNames[] = {
    {Bug::kNone, "none"},
    {Bug::kCommitPrevTerm, "commit_prev_term"},
    {Bug::kVoteBeforePersist, "vote_before_persist"},
    {Bug::kAckBeforePersist, "ack_before_persist"},
    {Bug::kReadWithoutQuorum, "read_without_quorum"},
    {Bug::kTruncateCommitted, "truncate_committed"},
    {Bug::kLearnerInQuorum, "learner_in_quorum"},
    {Bug::kConfAtAppend, "conf_at_append"},
    {Bug::kQuiesceWithoutLease, "quiesce_without_lease"},
    {Bug::kReadIndexUnconfirmed, "read_index_unconfirmed"},
    {Bug::kHeartbeatFreesInflight, "heartbeat_frees_inflight"},
    {Bug::kConfApplyLate, "conf_apply_late"},
    {Bug::kSnapshotBelowCommit, "snapshot_below_commit"},
};

constexpr Bug kAllBugs[] = {
    Bug::kNone,
    Bug::kCommitPrevTerm,
    Bug::kVoteBeforePersist,
    Bug::kAckBeforePersist,
    Bug::kReadWithoutQuorum,
    Bug::kTruncateCommitted,
    Bug::kLearnerInQuorum,
    Bug::kConfAtAppend,
    Bug::kQuiesceWithoutLease,
    Bug::kReadIndexUnconfirmed,
    Bug::kHeartbeatFreesInflight,
    Bug::kConfApplyLate,
    Bug::kSnapshotBelowCommit,
};
static_assert(std::size(kAllBugs) == std::size(kBugNames), "every bug has a name");

}  // namespace

void set_sim_bug(Bug bug) { g_bug = bug; }
Bug sim_bug() { return g_bug; }

std::optional<Bug> parse_sim_bug(std::string_view name) {
  for (const BugName& b : kBugNames) {
    if (name == b.name) return b.bug;
  }
  return std::nullopt;
}

std::span<const Bug> all_sim_bugs() { return kAllBugs; }

const char* sim_bug_name(Bug bug) {
  for (const BugName& b : kBugNames) {
    if (b.bug == bug) return b.name;
  }
  return "?";
}

}  // namespace raftd::raft
