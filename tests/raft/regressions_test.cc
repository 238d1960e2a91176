// Regression tests for defects found by black-box testing of the core (liveness after removing a
// leader, configuration changes and restarts, quiescing, reads, plain mode, flow control), and
// the scenarios behind the simulator's newer mutation hooks (raftd/raft/bugs.h), which
// bugs_mutations_test.cc also runs with each mutation switched on.
#include <doctest/doctest.h>

#include <algorithm>

#include "bugs_scenarios.h"

using namespace raftd;
using namespace raftd::raft;
using namespace raftd::raft::test;

TEST_CASE("raft learners: a learner's acknowledgement never completes a quorum") {
  scenario_learner_ack_does_not_commit();
}

TEST_CASE("raft learners: a learner's vote never completes an election") {
  scenario_learner_vote_does_not_elect();
}

TEST_CASE("raft membership: a change takes effect on the leader only when applied") {
  scenario_conf_change_waits_for_apply();
}

TEST_CASE("raft quiesce: a late quiesce notice does not silence woken followers") {
  scenario_late_quiesce_after_wake();
}
