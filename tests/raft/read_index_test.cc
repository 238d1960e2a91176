// ReadIndex (thesis §6.4): batched, confirmed by a heartbeat round, only after the leader has
// committed in its term; followers forward to the leader.
#include <doctest/doctest.h>

#include "harness.h"

using namespace raftd;
using namespace raftd::raft;
using raftd::raft::test::Cluster;
using raftd::raft::test::ClusterOptions;

TEST_CASE("raft read_index: the leader answers after a quorum confirms a heartbeat round") {
  Cluster c(3);
  c.elect(1);
  REQUIRE(c.propose(1, "a").is_ok());
  c.stabilize();
  REQUIRE(c.read_index(1, 42).is_ok());
  c.process_readys();
  CHECK(c.node(1).read_states.empty());  // not before the round is answered
  CHECK(c.queued(MessageType::kHeartbeat) == 2);
  c.stabilize();
  REQUIRE(c.node(1).read_states.size() == 1);
  CHECK(c.node(1).read_states[0] == ReadState{42, c.g(1).commit_index(), true});
}

TEST_CASE("raft read_index: reads queued together share one heartbeat round") {
  Cluster c(5);
  c.elect(1);
  c.stabilize();
  for (uint64_t id = 1; id <= 20; ++id) REQUIRE(c.read_index(1, id).is_ok());
  c.process_readys();
  CHECK(c.queued(MessageType::kHeartbeat) == 4);  // one round for 20 reads
  c.stabilize();
  CHECK(c.node(1).read_states.size() == 20);
}

TEST_CASE("raft read_index: an isolated leader cannot answer") {
  Cluster c(3);
  c.elect(1);
  c.isolate(1);
  REQUIRE(c.read_index(1, 7).is_ok());
  c.stabilize();
  for (int i = 0; i < 5; ++i) {
    c.tick(1);
    c.stabilize();
  }
  CHECK(c.node(1).read_states.empty());
  // Once it steps down (CheckQuorum) the read fails explicitly.
  for (int i = 0; i < 20; ++i) {
    c.tick(1);
    c.stabilize();
  }
  REQUIRE(c.node(1).read_states.size() == 1);
  CHECK_FALSE(c.node(1).read_states[0].ok);
}

TEST_CASE("raft read_index: a new leader waits until it commits in its term") {
  Cluster c(3);
  c.elect(1);
  // Hold back every append so that the no-op of the next leader cannot commit.
  c.set_filter([](const Message& m) { return m.type != MessageType::kAppend; });
  c.elect(2);
  REQUIRE(c.g(2).commit_index() < c.g(2).last_index());
  REQUIRE(c.read_index(2, 9).is_ok());
  c.stabilize();
  c.run_ticks(2);
  CHECK(c.node(2).read_states.empty());
  c.set_filter(nullptr);
  c.run_ticks(2);
  REQUIRE(c.node(2).read_states.size() == 1);
  CHECK(c.node(2).read_states[0].ok);
  CHECK(c.node(2).read_states[0].index == c.g(2).last_index());
}

TEST_CASE("raft read_index: followers forward to the leader and get its commit index") {
  Cluster c(3);
  c.elect(1);
  for (int i = 0; i < 3; ++i) REQUIRE(c.propose(1, "w").is_ok());
  c.stabilize();
  REQUIRE(c.read_index(3, 5).is_ok());
  c.stabilize();
  REQUIRE(c.node(3).read_states.size() == 1);
  CHECK(c.node(3).read_states[0] == ReadState{5, c.g(1).commit_index(), true});
  CHECK(c.g(3).applied_index() >= c.node(3).read_states[0].index);
}

TEST_CASE("raft read_index: without a known leader the request is refused") {
  Cluster c(3);
  CHECK(c.read_index(2, 1).code() == Code::kUnavailable);
}

TEST_CASE("raft read_index: a single-voter group answers at once") {
  Cluster c(1);
  c.elect(1);
  REQUIRE(c.read_index(1, 3).is_ok());
  c.stabilize();
  REQUIRE(c.node(1).read_states.size() == 1);
  CHECK(c.node(1).read_states[0].index == c.g(1).commit_index());
}
