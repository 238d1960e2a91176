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

// Found by the simulator (seed 2152, 5 nodes, compaction on): the leader's last heartbeat and
// its quiesce notice to 3 are delayed in the network; the leader is cut off and the driver
// wakes the followers. 3 was not asleep, so it keeps the lease and refuses 2's pre-votes; the
// late heartbeat renews that lease, and the late notice arrives once the election timeout after
// the wake() has passed (the old rule refused notices for that many ticks only). 3 took it for a
// fresh one and slept under a leader that was gone: asleep, it counts no ticks and stays in its
// lease, so only another node's messages could wake it. A notice must now echo the wake epoch
// that wake() started, which no notice sent before it does.
TEST_CASE("raft quiesce: a heartbeat and notice delayed past a wake() do not put it to sleep") {
  Cluster c(3, quiescing());
  c.elect(1);
  REQUIRE(c.propose(1, "a").is_ok());
  c.stabilize();
  std::vector<Message> late;  // from 1 to 3, held "in the network"
  c.set_filter([&late](const Message& m) {
    const bool hold = m.from == NodeId(1) && m.to == NodeId(3) &&
                      (m.type == MessageType::kHeartbeat || m.type == MessageType::kQuiesce);
    if (hold) late.push_back(m);
    return !hold;
  });
  for (int i = 0; i < 20 && !c.g(1).quiesced(); ++i) c.run_ticks(1);
  REQUIRE(c.g(1).quiesced());
  REQUIRE(c.g(2).quiesced());
  REQUIRE_FALSE(c.g(3).quiesced());
  REQUIRE(late.back().type == MessageType::kQuiesce);
  c.set_filter(nullptr);
  c.crash(1);
  c.g(2).wake();
  c.g(3).wake();
  // 3 still holds its lease (it heard from 1 a few ticks ago) and refuses 2's pre-votes; the
  // late heartbeats renew it.
  c.run_ticks(3);
  REQUIRE(c.leader() == 0);
  for (const Message& m : late) {
    if (m.type == MessageType::kHeartbeat) c.deliver(m);
  }
  // The notice comes an election timeout after the wake(), within the renewed lease.
  c.run_ticks(static_cast<int>(ClusterOptions{}.election_tick) - 3);
  REQUIRE(c.leader() == 0);
  c.deliver(late.back());
  CHECK_FALSE(c.g(3).quiesced());
  for (int i = 0; i < 100 && c.leader() == 0; ++i) c.run_ticks(1);
  CHECK((c.leader() == 2 || c.leader() == 3));
}

TEST_CASE("raft quiesce: after a wake() under a live leader the group sleeps again") {
  Cluster c(3, quiescing());
  c.elect(1);
  c.run_ticks(10);
  REQUIRE(c.g(3).quiesced());
  size_t refusals = 0;
  c.set_filter([&refusals](const Message& m) {
    refusals += m.type == MessageType::kHeartbeatResp && m.reject;
    return true;
  });
  c.g(3).wake();  // the driver was wrong: 1 is alive
  for (int i = 0; i < 40 && !(c.g(1).quiesced() && c.g(3).quiesced()); ++i) c.run_ticks(1);
  CHECK(c.g(1).quiesced());
  CHECK(c.g(2).quiesced());
  CHECK(c.g(3).quiesced());
  CHECK(c.leader() == 1);
  CHECK(refusals >= 1);  // the first notice after the wake() echoed the old epoch
}

// The wake epoch lives in memory; a restarted replica starts from a new one drawn from its new
// seed, or a notice echoing an epoch of its previous life could put it to sleep.
TEST_CASE("raft quiesce: a notice from before a restart does not put the follower to sleep") {
  Cluster c(3, quiescing());
  c.elect(1);
  c.run_ticks(10);
  c.g(3).wake();  // 1 learns 3's new epoch from its refusal, and echoes it from then on
  for (int i = 0; i < 40 && !c.g(3).quiesced(); ++i) c.run_ticks(1);
  REQUIRE(c.g(3).quiesced());
  REQUIRE(c.propose(1, "a").is_ok());
  std::vector<Message> late;  // from 1 to 3, held "in the network"
  c.set_filter([&late](const Message& m) {
    const bool hold = m.from == NodeId(1) && m.to == NodeId(3) &&
                      (m.type == MessageType::kHeartbeat || m.type == MessageType::kQuiesce);
    if (hold) late.push_back(m);
    return !hold;
  });
  for (int i = 0; i < 20 && !c.g(1).quiesced(); ++i) c.run_ticks(1);
  REQUIRE(c.g(1).quiesced());
  REQUIRE(late.back().type == MessageType::kQuiesce);
  c.set_filter(nullptr);
  c.crash(3);
  c.node(3).config.random_seed = 77;  // a driver seeds every boot anew (raft.h, Config)
  c.restart(3);
  c.g(3).wake();  // as the driver does on a restart
  c.crash(1);
  for (const Message& m : late) c.deliver(m);  // the last heartbeats, then the notice
  CHECK_FALSE(c.g(3).quiesced());
  for (int i = 0; i < 100 && c.leader() == 0; ++i) c.run_ticks(1);
  CHECK((c.leader() == 2 || c.leader() == 3));
}
