// Mutation hooks (simulator build only). See raftd/raft/bugs.h.
#include "raftd/raft/bugs.h"

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
};

}  // namespace

void set_sim_bug(Bug bug) { g_bug = bug; }
Bug sim_bug() { return g_bug; }

std::optional<Bug> parse_sim_bug(std::string_view name) {
  for (const BugName& b : kBugNames) {
    if (name == b.name) return b.bug;
  }
  return std::nullopt;
}

const char* sim_bug_name(Bug bug) {
  for (const BugName& b : kBugNames) {
    if (b.bug == bug) return b.name;
  }
  return "?";
}

}  // namespace raftd::raft
