// Quiescing: an idle group stops heartbeating; any message, proposal or read wakes it;
// followers of a quiesced leader do not time out until the driver calls wake().
#include <doctest/doctest.h>

#include "harness.h"

using namespace raftd;
using namespace raftd::raft;
using raftd::raft::test::Cluster;
using raftd::raft::test::ClusterOptions;

namespace {

ClusterOptions quiescing() {
  ClusterOptions o;
  o.quiesce_after_ticks = 5;
  return o;
}

}  // namespace

TEST_CASE("raft quiesce: an idle group goes silent") {
  Cluster c(3, quiescing());
  c.elect(1);
  REQUIRE(c.propose(1, "a").is_ok());
  c.stabilize();
  c.run_ticks(10);
  CHECK(c.g(1).quiesced());
  CHECK(c.g(2).quiesced());
  CHECK(c.g(3).quiesced());
  for (int i = 0; i < 100; ++i) c.tick_all();
  c.process_readys();
  CHECK(c.queue().empty());  // no heartbeats, no elections
  CHECK(c.leader() == 1);
  CHECK(c.g(2).role() == Role::kFollower);
}

TEST_CASE("raft quiesce: a proposal wakes the group") {
  Cluster c(3, quiescing());
  c.elect(1);
  c.run_ticks(10);
  REQUIRE(c.g(1).quiesced());
  REQUIRE(c.propose(1, "wake").is_ok());
  CHECK_FALSE(c.g(1).quiesced());
  c.stabilize();
  CHECK_FALSE(c.g(2).quiesced());
  CHECK(c.node(2).applied_data() == std::vector<std::string>{"wake"});
  c.run_ticks(10);
  CHECK(c.g(1).quiesced());  // and it goes back to sleep
}

TEST_CASE("raft quiesce: a read on a follower wakes the leader") {
  Cluster c(3, quiescing());
  c.elect(1);
  c.run_ticks(10);
  REQUIRE(c.g(1).quiesced());
  REQUIRE(c.read_index(3, 1).is_ok());
  c.stabilize();
  REQUIRE(c.node(3).read_states.size() == 1);
  CHECK(c.node(3).read_states[0].ok);
}

TEST_CASE("raft quiesce: followers do not elect while quiesced; wake() lets them") {
  Cluster c(3, quiescing());
  c.elect(1);
  c.run_ticks(10);
  REQUIRE(c.g(2).quiesced());
  c.crash(1);
  for (int i = 0; i < 100; ++i) c.run_ticks(1);
  CHECK(c.leader() == 0);  // the documented rule: the driver must notice the dead leader
  c.g(2).wake();
  c.g(3).wake();
  for (int i = 0; i < 60 && c.leader() == 0; ++i) c.run_ticks(1);
  CHECK((c.leader() == 2 || c.leader() == 3));
}

TEST_CASE("raft quiesce: a follower that is behind refuses to sleep and wakes the leader") {
  Cluster c(3, quiescing());
  c.elect(1);
  // 3 misses an entry; the leader cannot quiesce while 3 lags, so force the situation by
  // delivering a hand-made quiesce notice to 3.
  c.isolate(3);
  REQUIRE(c.propose(1, "a").is_ok());
  c.stabilize();
  c.heal();
  Message q;
  q.type = MessageType::kQuiesce;
  q.group = raftd::raft::test::kTestGroup;
  q.from = NodeId(1);
  q.to = NodeId(3);
  q.term = c.g(1).term();
  q.index = c.g(1).last_index();
  q.log_term = c.g(1).last_term();
  q.commit = c.g(1).commit_index();
  c.deliver(q);
  CHECK_FALSE(c.g(3).quiesced());
  c.run_ticks(3);
  CHECK(c.node(3).applied_data() == std::vector<std::string>{"a"});
}

TEST_CASE("raft quiesce: the leader does not quiesce while a follower lags") {
  Cluster c(3, quiescing());
  c.elect(1);
  c.isolate(3);
  REQUIRE(c.propose(1, "a").is_ok());
  c.run_ticks(20);
  CHECK_FALSE(c.g(1).quiesced());
}

TEST_CASE("raft quiesce: off by default") {
  Cluster c(3);
  c.elect(1);
  c.run_ticks(50);
  CHECK_FALSE(c.g(1).quiesced());
  c.tick_all();
  c.process_readys();
  CHECK(c.queued(MessageType::kHeartbeat) == 2);
}
