// Membership changes with apply-time semantics: simple changes, joint consensus with automatic
// and explicit leave, learners, the errata fix (commit in the new term first, one change at a
// time), removal of the leader, and the configuration after a restart.
#include <doctest/doctest.h>

#include "harness.h"

using namespace raftd;
using namespace raftd::raft;
using raftd::raft::test::Cluster;
using raftd::raft::test::ClusterOptions;

namespace {

ConfChange change(ConfChangeType type, uint64_t node, ConfTransition t = ConfTransition::kAuto) {
  return ConfChange{t, {{type, NodeId(node)}}};
}

std::vector<NodeId> ids(std::initializer_list<uint64_t> l) {
  std::vector<NodeId> out;
  for (uint64_t x : l) out.push_back(NodeId(x));
  return out;
}

}  // namespace

TEST_CASE("raft membership: adding a voter (simple change)") {
  Cluster c(3);
  c.elect(1);
  c.add_node(NodeId(4));
  REQUIRE(c.propose_conf_change(1, change(ConfChangeType::kAddVoter, 4)).is_ok());
  c.stabilize();
  c.run_ticks(3);
  for (uint64_t id : {1, 2, 3, 4}) {
    CHECK(c.g(id).conf_state().voters == ids({1, 2, 3, 4}));
    CHECK_FALSE(c.g(id).conf_state().joint());
  }
  REQUIRE(c.propose(1, "after").is_ok());
  c.stabilize();
  CHECK(c.node(4).applied_data() == std::vector<std::string>{"after"});
  // 4 counts for the quorum now: with two of four voters cut off nothing commits.
  c.isolate(3);
  c.isolate(4);
  LogIndex commit = c.g(1).commit_index();
  REQUIRE(c.propose(1, "stuck").is_ok());
  c.stabilize();
  CHECK(c.g(1).commit_index() == commit);
}

TEST_CASE("raft membership: one pending change at a time, and only after the new leader commits") {
  Cluster c(3);
  c.elect(1);
  c.add_node(NodeId(4));
  c.add_node(NodeId(5));
  REQUIRE(c.propose_conf_change(1, change(ConfChangeType::kAddLearner, 4)).is_ok());
  CHECK(c.propose_conf_change(1, change(ConfChangeType::kAddLearner, 5)).status().code() ==
        Code::kUnavailable);
  c.stabilize();
  CHECK(c.propose_conf_change(1, change(ConfChangeType::kAddLearner, 5)).is_ok());
  c.stabilize();
  // A new leader whose no-op is not committed yet must refuse (errata fix, bug #6).
  c.set_filter([](const Message& m) { return m.type != MessageType::kAppend; });
  c.elect(2);
  CHECK(c.propose_conf_change(2, change(ConfChangeType::kRemove, 5)).status().code() ==
        Code::kUnavailable);
  c.set_filter(nullptr);
  c.run_ticks(2);
  CHECK(c.propose_conf_change(2, change(ConfChangeType::kRemove, 5)).is_ok());
  CHECK(c.propose_conf_change(3, change(ConfChangeType::kRemove, 4)).status().code() ==
        Code::kUnavailable);  // not the leader
}

TEST_CASE("raft membership: invalid changes are refused") {
  Cluster c(1);
  c.elect(1);
  CHECK(c.propose_conf_change(1, change(ConfChangeType::kRemove, 1)).status().code() ==
        Code::kInvalidArgument);
  CHECK(c.propose_conf_change(1, ConfChange{}).status().code() == Code::kInvalidArgument);
}

TEST_CASE("raft membership: joint consensus replaces two voters and leaves automatically") {
  Cluster c(3);
  c.elect(1);
  c.add_node(NodeId(4));
  c.add_node(NodeId(5));
  ConfChange cc{ConfTransition::kAuto,
                {{ConfChangeType::kAddVoter, NodeId(4)},
                 {ConfChangeType::kAddVoter, NodeId(5)},
                 {ConfChangeType::kRemove, NodeId(3)}}};
  bool saw_joint = false;
  REQUIRE(c.propose_conf_change(1, cc).is_ok());
  for (int i = 0; i < 10; ++i) {
    c.process_readys();
    c.deliver_all();
    saw_joint = saw_joint || c.g(1).conf_state().joint();
  }
  c.stabilize();
  c.run_ticks(3);
  CHECK(saw_joint);
  for (uint64_t id : {1, 2, 4, 5}) {
    CHECK(c.g(id).conf_state().voters == ids({1, 2, 4, 5}));
    CHECK_FALSE(c.g(id).conf_state().joint());
  }
  CHECK(c.leader() == 1);
}

TEST_CASE("raft membership: an explicit joint configuration needs both majorities") {
  Cluster c(3);
  c.elect(1);
  c.add_node(NodeId(4));
  c.add_node(NodeId(5));
  c.add_node(NodeId(6));
  ConfChange cc{ConfTransition::kJointExplicit,
                {{ConfChangeType::kAddVoter, NodeId(4)},
                 {ConfChangeType::kAddVoter, NodeId(5)},
                 {ConfChangeType::kAddVoter, NodeId(6)},
                 {ConfChangeType::kRemove, NodeId(2)},
                 {ConfChangeType::kRemove, NodeId(3)}}};
  REQUIRE(c.propose_conf_change(1, cc).is_ok());
  c.stabilize();
  c.run_ticks(2);
  REQUIRE(c.g(1).conf_state().joint());
  CHECK(c.g(1).conf_state().voters == ids({1, 4, 5, 6}));
  CHECK(c.g(1).conf_state().voters_outgoing == ids({1, 2, 3}));
  // The new half alone (1, 4, 5, 6) is not enough: the old half {1,2,3} needs a majority too.
  c.isolate(2);
  c.isolate(3);
  LogIndex commit = c.g(1).commit_index();
  REQUIRE(c.propose(1, "needs-both").is_ok());
  c.stabilize();
  CHECK(c.g(1).commit_index() == commit);
  c.heal();
  c.run_ticks(2);
  CHECK(c.g(1).commit_index() > commit);
  REQUIRE(c.propose_conf_change(1, ConfChange{}).is_ok());  // leave
  c.stabilize();
  c.run_ticks(2);
  CHECK_FALSE(c.g(1).conf_state().joint());
  CHECK(c.g(1).conf_state().voters == ids({1, 4, 5, 6}));
}

TEST_CASE("raft membership: learners replicate but do not count toward a quorum") {
  ClusterOptions o;
  o.learners = {4};
  Cluster c(3, o);
  c.elect(1);
  REQUIRE(c.propose(1, "a").is_ok());
  c.stabilize();
  CHECK(c.node(4).applied_data() == std::vector<std::string>{"a"});
  CHECK(c.g(1).progress(NodeId(4))->learner);
  c.isolate(2);
  c.isolate(3);
  LogIndex commit = c.g(1).commit_index();
  REQUIRE(c.propose(1, "b").is_ok());
  c.stabilize();
  CHECK(c.g(1).commit_index() == commit);  // 1 + learner 4 is no majority of {1,2,3}
  // A learner never campaigns.
  for (int i = 0; i < 50; ++i) c.tick(4);
  CHECK(c.g(4).role() == Role::kFollower);
}

TEST_CASE("raft membership: a learner votes when asked (it may have been promoted)") {
  // Subtle bug #11: node 4 is a voter in the candidate's configuration but does not know it yet.
  ClusterOptions o;
  o.learners = {4};
  Cluster c(3, o);
  Message v;
  v.type = MessageType::kVote;
  v.group = raftd::raft::test::kTestGroup;
  v.from = NodeId(2);
  v.to = NodeId(4);
  v.term = Term(5);
  v.index = LogIndex(10);
  v.log_term = Term(4);
  c.deliver(v);
  c.process_readys();
  auto resp = c.take([](const Message& m) { return m.type == MessageType::kVoteResp; });
  REQUIRE(resp.size() == 1);
  CHECK_FALSE(resp[0].reject);
}

TEST_CASE("raft membership: promoting a learner to voter") {
  ClusterOptions o;
  o.learners = {4};
  Cluster c(3, o);
  c.elect(1);
  REQUIRE(c.propose_conf_change(1, change(ConfChangeType::kAddVoter, 4)).is_ok());
  c.stabilize();
  c.run_ticks(2);
  CHECK(c.g(4).conf_state().voters == ids({1, 2, 3, 4}));
  CHECK(c.g(4).conf_state().learners.empty());
  CHECK_FALSE(c.g(1).progress(NodeId(4))->learner);
}

TEST_CASE("raft membership: a removed leader steps down once the removal is applied") {
  Cluster c(3);
  c.elect(1);
  REQUIRE(c.propose_conf_change(1, change(ConfChangeType::kRemove, 1)).is_ok());
  c.stabilize();
  CHECK(c.g(1).role() == Role::kFollower);
  CHECK(c.g(2).conf_state().voters == ids({2, 3}));
  // The remaining two elect a leader; the removed node never campaigns.
  for (int i = 0; i < 60 && c.leader() == 0; ++i) c.run_ticks(1);
  CHECK((c.leader() == 2 || c.leader() == 3));
  CHECK(c.g(1).role() == Role::kFollower);
}

TEST_CASE("raft membership: after a restart the configuration is rebuilt from the log") {
  Cluster c(3);
  c.elect(1);
  c.add_node(NodeId(4));
  REQUIRE(c.propose_conf_change(1, change(ConfChangeType::kAddVoter, 4)).is_ok());
  c.stabilize();
  c.run_ticks(2);
  // Restart with applied = the conf change index: the configuration is there at once.
  const raftd::raft::test::Node& n2 = c.node(2);
  Config cfg;
  cfg.id = NodeId(2);
  cfg.group = raftd::raft::test::kTestGroup;
  Group g(cfg, *n2.storage,
          BootState{n2.durable_hard_state, n2.storage->snapshot(), n2.durable_hard_state.commit});
  CHECK(g.conf_state().voters == ids({1, 2, 3, 4}));
  CHECK(g.check_invariants().is_ok());
  // Restart with applied = 0 (the harness's app): the change is applied again with its entry.
  c.crash(2);
  c.restart(2);
  CHECK(c.g(2).conf_state().voters == ids({1, 2, 3}));
  c.stabilize();
  CHECK(c.g(2).conf_state().voters == ids({1, 2, 3, 4}));
}

TEST_CASE("raft membership: a leader replaced through a joint configuration steps down on leave") {
  Cluster c(3);
  c.elect(1);
  c.add_node(NodeId(4));
  ConfChange cc{ConfTransition::kJointImplicit,
                {{ConfChangeType::kAddVoter, NodeId(4)}, {ConfChangeType::kRemove, NodeId(1)}}};
  REQUIRE(c.propose_conf_change(1, cc).is_ok());
  c.stabilize();
  c.run_ticks(2);
  // While joint, 1 is still an outgoing voter and leads; after the automatic leave it is gone.
  CHECK(c.g(2).conf_state().voters == ids({2, 3, 4}));
  CHECK_FALSE(c.g(2).conf_state().joint());
  CHECK(c.g(1).role() == Role::kFollower);
  for (int i = 0; i < 60 && c.leader() == 0; ++i) c.run_ticks(1);
  CHECK(c.leader() != 0);
  CHECK(c.leader() != 1);
  REQUIRE(c.propose(c.leader(), "new-era").is_ok());
  c.run_ticks(2);
  CHECK(c.node(4).applied_data() == std::vector<std::string>{"new-era"});
}

TEST_CASE("raft membership: demoting a voter through a joint configuration (learners_next)") {
  Cluster c(4);
  c.elect(1);
  ConfChange cc{ConfTransition::kJointExplicit, {{ConfChangeType::kAddLearner, NodeId(4)}}};
  REQUIRE(c.propose_conf_change(1, cc).is_ok());
  c.stabilize();
  c.run_ticks(2);
  REQUIRE(c.g(1).conf_state().joint());
  CHECK(c.g(1).conf_state().learners_next == ids({4}));
  CHECK(c.g(1).conf_state().learners.empty());
  REQUIRE(c.propose_conf_change(1, ConfChange{}).is_ok());
  c.stabilize();
  c.run_ticks(2);
  CHECK(c.g(1).conf_state().voters == ids({1, 2, 3}));
  CHECK(c.g(1).conf_state().learners == ids({4}));
  CHECK(c.g(1).progress(NodeId(4))->learner);
}
