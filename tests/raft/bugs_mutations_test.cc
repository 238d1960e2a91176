// Proof that the scenario tests for the subtle bugs catch those bugs: each scenario runs against
// the simulator's build of the core (raft_sim_dep) with one classic bug switched back in
// (raftd/raft/bugs.h), and must FAIL (doctest::should_fail). A control case runs every scenario
// with no mutation and must pass, so a failure above is the mutation's doing.
//
// Build: one executable from this file alone, linked with raft_sim_dep and doctest_main_dep
// (it must not be listed in bug_tests.txt: the unit-test executable links raft_dep, which has no
// mutation hooks).
#include <doctest/doctest.h>

#include "bugs_scenarios.h"
#include "raftd/raft/bugs.h"

using namespace raftd::raft;
using namespace raftd::raft::test;

namespace {

// Selects a mutation for one test case and always restores correct behaviour.
class BugGuard {
 public:
  explicit BugGuard(Bug bug) { set_sim_bug(bug); }
  ~BugGuard() { set_sim_bug(Bug::kNone); }
  BugGuard(const BugGuard&) = delete;
  BugGuard& operator=(const BugGuard&) = delete;
};

}  // namespace

TEST_CASE("raft bug mutations: control, every scenario passes without a mutation") {
  REQUIRE(sim_bug() == Bug::kNone);
  scenario_bug1_prev_term_entry_not_committed();
  scenario_bug3_stale_append_keeps_acked_entries();
  scenario_bug3_conflict_below_commit_refused();
  scenario_bug4_vote_leaves_after_persist();
  scenario_bug5_single_voter_applies_after_persist();
  scenario_bug5_leader_and_follower_count_durable_entries();
  scenario_bug12_no_read_before_commit_in_term();
  scenario_bug12_deposed_leader_serves_no_read();
  scenario_bug12_follower_read_waits_for_quorum();
  scenario_learner_ack_does_not_commit();
  scenario_learner_vote_does_not_elect();
  scenario_conf_change_waits_for_apply();
  scenario_late_quiesce_after_wake();
}

TEST_CASE("raft bug mutations: every bug name parses back to its bug") {
  REQUIRE(all_sim_bugs().size() == 13);
  CHECK(all_sim_bugs().front() == Bug::kNone);
  for (Bug b : all_sim_bugs()) {
    std::optional<Bug> parsed = parse_sim_bug(sim_bug_name(b));
    REQUIRE(parsed.has_value());
    CHECK(*parsed == b);
  }
  for (const char* name :
       {"learner_in_quorum", "conf_at_append", "quiesce_without_lease", "read_index_unconfirmed"}) {
    CHECK(parse_sim_bug(name).has_value());
  }
  CHECK_FALSE(parse_sim_bug("no_such_bug").has_value());
}

TEST_CASE("raft bug mutations: commit_prev_term fails the bug #1 test" * doctest::should_fail()) {
  BugGuard g(Bug::kCommitPrevTerm);
  scenario_bug1_prev_term_entry_not_committed();
}

TEST_CASE("raft bug mutations: truncate_committed fails the bug #3 stale-append test" *
          doctest::should_fail()) {
  BugGuard g(Bug::kTruncateCommitted);
  scenario_bug3_stale_append_keeps_acked_entries();
}

TEST_CASE("raft bug mutations: truncate_committed fails the bug #3 below-commit test" *
          doctest::should_fail()) {
  BugGuard g(Bug::kTruncateCommitted);
  scenario_bug3_conflict_below_commit_refused();
}

TEST_CASE("raft bug mutations: vote_before_persist fails the bug #4 test" *
          doctest::should_fail()) {
  BugGuard g(Bug::kVoteBeforePersist);
  scenario_bug4_vote_leaves_after_persist();
}

TEST_CASE("raft bug mutations: ack_before_persist fails the bug #5 test" * doctest::should_fail()) {
  BugGuard g(Bug::kAckBeforePersist);
  scenario_bug5_single_voter_applies_after_persist();
}

TEST_CASE("raft bug mutations: ack_before_persist fails the bug #5 three-voter test" *
          doctest::should_fail()) {
  BugGuard g(Bug::kAckBeforePersist);
  scenario_bug5_leader_and_follower_count_durable_entries();
}

TEST_CASE("raft bug mutations: read_without_quorum fails the bug #12 new-leader test" *
          doctest::should_fail()) {
  BugGuard g(Bug::kReadWithoutQuorum);
  scenario_bug12_no_read_before_commit_in_term();
}

TEST_CASE("raft bug mutations: read_without_quorum fails the bug #12 deposed-leader test" *
          doctest::should_fail()) {
  BugGuard g(Bug::kReadWithoutQuorum);
  scenario_bug12_deposed_leader_serves_no_read();
}

TEST_CASE("raft bug mutations: read_without_quorum fails the bug #12 follower-read test" *
          doctest::should_fail()) {
  BugGuard g(Bug::kReadWithoutQuorum);
  scenario_bug12_follower_read_waits_for_quorum();
}

TEST_CASE("raft bug mutations: learner_in_quorum fails the learner-ack test" *
          doctest::should_fail()) {
  BugGuard g(Bug::kLearnerInQuorum);
  scenario_learner_ack_does_not_commit();
}

TEST_CASE("raft bug mutations: learner_in_quorum fails the learner-vote test" *
          doctest::should_fail()) {
  BugGuard g(Bug::kLearnerInQuorum);
  scenario_learner_vote_does_not_elect();
}

TEST_CASE("raft bug mutations: conf_at_append fails the apply-time configuration test" *
          doctest::should_fail()) {
  BugGuard g(Bug::kConfAtAppend);
  scenario_conf_change_waits_for_apply();
}

TEST_CASE("raft bug mutations: quiesce_without_lease fails the late-quiesce test" *
          doctest::should_fail()) {
  BugGuard g(Bug::kQuiesceWithoutLease);
  scenario_late_quiesce_after_wake();
}

TEST_CASE("raft bug mutations: read_index_unconfirmed fails the bug #12 deposed-leader test" *
          doctest::should_fail()) {
  BugGuard g(Bug::kReadIndexUnconfirmed);
  scenario_bug12_deposed_leader_serves_no_read();
}

TEST_CASE("raft bug mutations: read_index_unconfirmed fails the bug #12 follower-read test" *
          doctest::should_fail()) {
  BugGuard g(Bug::kReadIndexUnconfirmed);
  scenario_bug12_follower_read_waits_for_quorum();
}
