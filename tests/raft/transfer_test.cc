// Leader transfer (thesis §3.10): catch the target up, TimeoutNow, abort after an election
// timeout, no proposals meanwhile.
#include <doctest/doctest.h>

#include "harness.h"

using namespace raftd;
using namespace raftd::raft;
using raftd::raft::test::Cluster;

TEST_CASE("raft transfer: an up-to-date target takes over at once") {
  Cluster c(3);
  c.elect(1);
  c.stabilize();
  REQUIRE(c.transfer_leader(1, 3).is_ok());
  c.stabilize();
  CHECK(c.leader() == 3);
  CHECK(c.g(1).role() == Role::kFollower);
  CHECK(c.g(1).leader() == NodeId(3));
}

TEST_CASE("raft transfer: a lagging target is caught up first; proposals are refused meanwhile") {
  Cluster c(3);
  c.elect(1);
  c.isolate(3);
  for (int i = 0; i < 5; ++i) REQUIRE(c.propose(1, "x").is_ok());
  c.stabilize();
  c.heal();
  REQUIRE(c.transfer_leader(1, 3).is_ok());
  CHECK(c.g(1).transferring());
  CHECK(c.propose(1, "no").status().code() == Code::kUnavailable);
  c.stabilize();
  CHECK(c.leader() == 3);
  CHECK(c.node(3).applied_data().size() == 5);
  CHECK(c.propose(3, "yes").is_ok());
}

TEST_CASE("raft transfer: aborts after an election timeout if the target does not answer") {
  Cluster c(3);
  c.elect(1);
  c.isolate(3);
  REQUIRE(c.propose(1, "x").is_ok());
  c.stabilize();
  REQUIRE(c.transfer_leader(1, 3).is_ok());
  CHECK(c.g(1).transferring());
  for (int i = 0; i < 10; ++i) {
    c.tick(1);
    c.stabilize();
  }
  CHECK_FALSE(c.g(1).transferring());
  CHECK(c.g(1).role() == Role::kLeader);
  CHECK(c.propose(1, "again").is_ok());
}

TEST_CASE("raft transfer: a follower forwards the request to the leader") {
  Cluster c(3);
  c.elect(1);
  c.stabilize();
  REQUIRE(c.transfer_leader(2, 2).is_ok());
  c.stabilize();
  CHECK(c.leader() == 2);
}

TEST_CASE("raft transfer: the target's vote request overrides the followers' lease") {
  // CheckQuorum's lease makes followers ignore candidates while the leader is alive; a transfer
  // campaign carries the transfer flag and must still win.
  Cluster c(5);
  c.elect(1);
  c.stabilize();
  REQUIRE(c.transfer_leader(1, 4).is_ok());
  c.stabilize();
  CHECK(c.leader() == 4);
  CHECK(c.g(4).term() == Term(2));
}

TEST_CASE("raft transfer: invalid targets are refused") {
  Cluster c(3);
  c.elect(1);
  CHECK(c.transfer_leader(1, 9).code() == Code::kInvalidArgument);
  CHECK(c.transfer_leader(2, 3).is_ok());  // forwarded
  Cluster lonely(3);
  CHECK(lonely.transfer_leader(2, 3).code() == Code::kUnavailable);
}
