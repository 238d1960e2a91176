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

namespace {

// True when `id` has a vote or pre-vote request queued (it started an election).
bool campaigned(Cluster& c, uint64_t id) {
  for (const Message& m : c.queue()) {
    if (m.from == NodeId(id) && (m.type == MessageType::kVote || m.type == MessageType::kPreVote)) {
      return true;
    }
  }
  return false;
}

}  // namespace

// A node learns that its own removal is committed and, before its next ready() applies it, is
// told to campaign (here: a handover, which bypasses PreVote and the lease). Campaigning then
// would make it lead a configuration it is not part of once the removal is applied.
TEST_CASE("raft membership: no campaign while a committed configuration change is unapplied") {
  Cluster c(3);
  c.elect(1);
  Result<LogIndex> rm = c.propose_conf_change(1, cc_remove(2));
  REQUIRE(rm.is_ok());
  // The removal reaches 2 and 3 and is acknowledged; the commit index reaches 2 only in the
  // leader's next message.
  c.process_readys();
  c.deliver_all();
  c.process_readys();
  c.deliver_all();
  c.process_readys();
  REQUIRE(c.g(1).commit_index() >= rm.value());
  std::vector<Message> to2 = c.take([](const Message& m) { return m.to == NodeId(2); });
  for (const Message& m : to2) c.deliver(m);
  REQUIRE(c.g(2).commit_index() >= rm.value());
  REQUIRE(c.g(2).applied_index() < rm.value());
  REQUIRE(c.g(2).conf_state().voters == node_ids({1, 2, 3}));

  c.force_campaign(2);  // before 2's next ready()
  CHECK(c.g(2).role() == Role::kFollower);
  for (int i = 0; i < 40; ++i) c.tick(2);  // timeouts are refused as well
  CHECK(c.g(2).role() == Role::kFollower);
  CHECK_FALSE(campaigned(c, 2));

  c.stabilize();
  CHECK(c.g(2).conf_state().voters == node_ids({1, 3}));
  c.run_ticks(50);
  CHECK(c.g(2).role() == Role::kFollower);
  CHECK(c.leader() == 1);
}

// Restart with the commit index durable (the Ready contract): the restarted node's committed
// configuration changes are re-applied from its log before it may campaign. Configurations:
// C0 = {1,2,3}, C1 = C0 + 4, C2 = C1 - 3; node 3 restarts with C0 in force until it re-applies.
TEST_CASE(
    "raft restart: a node with committed, unapplied configuration changes does not campaign") {
  ClusterOptions o;
  o.pre_vote = false;
  o.check_quorum = false;
  Cluster c(3, o);
  c.add_node(NodeId(4));
  c.elect(1);
  REQUIRE(c.propose_conf_change(1, cc_add_voter(4)).is_ok());
  c.stabilize();
  Result<LogIndex> rm = c.propose_conf_change(1, cc_remove(3));
  REQUIRE(rm.is_ok());
  c.stabilize();
  REQUIRE(c.node(3).durable_hard_state.commit >= rm.value());

  c.crash(3);
  c.restart(3);
  REQUIRE(c.g(3).conf_state().voters == node_ids({1, 2, 3}));  // C0 until re-applied
  c.partition({1, 4}, {2, 3});
  for (int i = 0; i < 40; ++i) c.tick(3);  // before any ready() of the restarted node
  CHECK(c.g(3).role() == Role::kFollower);
  CHECK_FALSE(campaigned(c, 3));

  c.stabilize();
  CHECK(c.g(3).conf_state().voters == node_ids({1, 2, 4}));
  for (int i = 0; i < 100; ++i) {
    c.tick(3);
    c.stabilize();
  }
  CHECK(c.g(3).role() == Role::kFollower);
  CHECK(c.g(3).term() == c.g(1).term());
}

// Two voters; the leader proposes its own removal and then a normal entry. The removal commits,
// the leader steps down, and the survivor misses the commit (it still needs both votes). Had the
// old leader accepted the later entry, its longer log would make it refuse the survivor's
// PreVote forever while never campaigning itself (it is no longer a voter): no leader, ever.
TEST_CASE("raft membership: a leader whose removal is in its log accepts no more proposals") {
  Cluster c(2);
  c.elect(1);
  Result<LogIndex> rm = c.propose_conf_change(1, cc_remove(1));
  REQUIRE(rm.is_ok());
  c.process_readys();
  c.deliver_all();  // the removal reaches node 2
  Result<LogIndex> after = c.propose(1, "after");
  CHECK(after.status().code() == Code::kUnavailable);
  CHECK(c.propose_conf_change(1, cc_add_learner(3)).status().code() == Code::kUnavailable);
  const LogIndex at = rm.value();
  // Node 2 misses the commit, the handover and anything node 1 appended after the removal.
  c.set_filter([at](const Message& m) {
    return !(m.from == NodeId(1) &&
             (m.commit >= at || m.type == MessageType::kTimeoutNow || carries_index(m, at + 1)));
  });
  c.stabilize();
  REQUIRE(c.g(1).role() == Role::kFollower);
  REQUIRE(c.g(2).commit_index() < at);
  CHECK(c.g(1).last_index() == c.g(2).last_index());
  c.set_filter(nullptr);
  for (int i = 0; i < 100 && c.leader() == 0; ++i) c.run_ticks(1);
  REQUIRE(c.leader() == 2);
  c.stabilize();
  CHECK(c.g(2).conf_state().voters == node_ids({2}));
}

// The removed leader hands over: the survivor learns the commit, applies the change and takes
// over at once instead of after an election timeout.
TEST_CASE("raft membership: a removed leader hands leadership to the most caught-up voter") {
  SUBCASE("two voters") {
    Cluster c(2);
    c.elect(1);
    REQUIRE(c.propose_conf_change(1, cc_remove(1)).is_ok());
    c.stabilize();  // no ticks: no election timeout can fire
    CHECK(c.g(1).role() == Role::kFollower);
    CHECK(c.leader() == 2);
    CHECK(c.g(2).conf_state().voters == node_ids({2}));
  }
  SUBCASE("three voters, one of them lagging") {
    Cluster c(3);
    c.elect(1);
    c.isolate(3);
    REQUIRE(c.propose(1, "x").is_ok());
    REQUIRE(c.propose_conf_change(1, cc_remove(1)).is_ok());
    c.stabilize();
    CHECK(c.g(1).role() == Role::kFollower);
    CHECK(c.g(2).role() == Role::kCandidate);  // took over at once; {2, 3} needs node 3 too
    c.heal();
    for (int i = 0; i < 100 && c.leader() == 0; ++i) c.run_ticks(1);
    CHECK(c.leader() == 2);  // node 3 lacks entries: it cannot win
    CHECK(c.node(3).applied_data() == std::vector<std::string>{"x"});
    CHECK(c.g(3).conf_state().voters == node_ids({2, 3}));
  }
  SUBCASE("through a joint configuration that replaces the leader") {
    Cluster c(3);
    c.add_node(NodeId(4));
    c.elect(1);
    ConfChange cc;
    cc.changes = {{ConfChangeType::kRemove, NodeId(1)}, {ConfChangeType::kAddVoter, NodeId(4)}};
    REQUIRE(c.propose_conf_change(1, cc).is_ok());
    c.stabilize();
    uint64_t l = c.leader();
    REQUIRE(l != 0);
    CHECK(l != 1);
    CHECK(c.g(l).conf_state().voters == node_ids({2, 3, 4}));
    CHECK_FALSE(c.g(l).conf_state().joint());
  }
}

// A read waits for a quorum of the configuration; when a change leaves the leader as the only
// voter, that read is confirmed by the leader alone and must be answered right away, not when
// some later read comes along.
TEST_CASE("raft read_index: a read pending when the group shrinks to one voter is answered") {
  Cluster c(2);
  c.elect(1);
  Result<LogIndex> rm = c.propose_conf_change(1, cc_remove(2));
  REQUIRE(rm.is_ok());
  c.process_readys();
  c.deliver_all();  // node 2 gets the removal
  c.process_readys();
  REQUIRE(c.read_index(1, 5).is_ok());
  // Node 2's answers to the read round never arrive; its acknowledgement of the removal does.
  c.set_filter([](const Message& m) { return m.type != MessageType::kHeartbeatResp; });
  c.stabilize();
  REQUIRE(c.g(1).conf_state().voters == node_ids({1}));
  REQUIRE(c.node(1).read_states.size() == 1);
  CHECK(c.node(1).read_states[0].request_id == 5);
  CHECK(c.node(1).read_states[0].ok);
  CHECK(c.node(1).read_states[0].index >= rm.value() - 1);
}

// Plain mode (no PreVote, no CheckQuorum): a leader cut off while the others elected a new one
// and removed it from the group is never contacted again by the new leader. Its heartbeats of
// the old term must be answered with the new term, or it leads its old term forever.
TEST_CASE("raft plain mode: a stale removed leader learns the new term from its own heartbeats") {
  ClusterOptions o;
  o.pre_vote = false;
  o.check_quorum = false;
  Cluster c(3, o);
  c.elect(1);
  c.isolate(1);
  campaign_until_leader(c, 2);
  c.run_ticks(1);
  REQUIRE(c.propose_conf_change(2, cc_remove(1)).is_ok());
  c.stabilize();
  REQUIRE(c.g(2).conf_state().voters == node_ids({2, 3}));
  c.heal();
  c.run_ticks(5);
  CHECK(c.g(1).role() == Role::kFollower);
  CHECK(c.g(1).term() == c.g(2).term());
  CHECK(c.leader() == 2);
}

// Plain mode: a candidate of a stale term learns the current term from the rejection.
TEST_CASE("raft plain mode: a lower-term vote request is rejected with the current term") {
  ClusterOptions o;
  o.pre_vote = false;
  o.check_quorum = false;
  Cluster c(3, o);
  c.elect(1);
  c.elect(2);
  REQUIRE(c.g(2).term() > Term(1));
  // A vote request of term 1 (a candidate cut off since then), for a log of term 1.
  Message v;
  v.type = MessageType::kVote;
  v.group = kTestGroup;
  v.from = NodeId(3);
  v.to = NodeId(2);
  v.term = Term(1);
  v.index = LogIndex(1);
  v.log_term = Term(1);
  c.deliver(v);
  c.process_readys();
  std::vector<Message> resp = c.take([](const Message& m) {
    return m.from == NodeId(2) && m.to == NodeId(3) && m.type == MessageType::kVoteResp;
  });
  REQUIRE(resp.size() == 1);
  CHECK(resp[0].reject);
  CHECK(resp[0].term == c.g(2).term());
}

// Flow control: a follower whose disk stalls answers heartbeats but acknowledges nothing. The
// leader must not push one more append per heartbeat: the follower holds at most one window of
// entries it has not made durable.
TEST_CASE("raft replication: a follower with a stalled disk gets at most one window of entries") {
  ClusterOptions o;
  o.max_inflight_msgs = 4;
  o.max_msg_bytes = 1;  // one entry per append
  Cluster c(3, o);
  c.elect(1);
  c.run_ticks(1);
  REQUIRE(c.g(1).progress(NodeId(2))->state == ProgressState::kReplicate);
  const LogIndex durable = c.g(2).persisted_index();
  c.set_manual_persist(2, true);  // its writes never complete
  for (int i = 0; i < 30; ++i) {
    REQUIRE(c.propose(1, "e" + std::to_string(i)).is_ok());
    c.stabilize();
  }
  c.run_ticks(60);
  CHECK(c.g(1).commit_index() == c.g(1).last_index());  // nodes 1 and 3 commit
  CHECK(c.g(2).last_index() <= durable + 4);
  CHECK(c.g(1).progress(NodeId(2))->inflight_msgs <= 4);

  c.persist(2);  // the disk recovers: node 2 catches up
  c.set_manual_persist(2, false);
  c.run_ticks(10);
  CHECK(c.g(2).last_index() == c.g(1).last_index());
  CHECK(c.node(2).applied_data().size() == 30);
}

// Flow control: appends lost with the window full are recovered through the heartbeat answers.
TEST_CASE("raft replication: a full window of lost appends is resent after a heartbeat") {
  ClusterOptions o;
  o.max_inflight_msgs = 2;
  o.max_msg_bytes = 1;
  Cluster c(3, o);
  c.elect(1);
  c.run_ticks(1);
  c.set_filter(
      [](const Message& m) { return !(m.type == MessageType::kAppend && m.to == NodeId(2)); });
  for (int i = 0; i < 6; ++i) {
    REQUIRE(c.propose(1, "e" + std::to_string(i)).is_ok());
    c.stabilize();
  }
  REQUIRE(c.g(1).progress(NodeId(2))->inflight_msgs == 2);
  c.set_filter(nullptr);
  c.run_ticks(10);
  CHECK(c.node(2).applied_data().size() == 6);
}

// The driver writes a Ready's entries before its hard state (raft.h) and crashes in between:
// the durable log holds entries of a term newer than the durable hard state. The replica boots
// in that term, with no vote, and persists it with its first Ready.
TEST_CASE("raft restart: entries durable without their hard state") {
  ConfState cs;
  cs.voters = node_ids({1, 2, 3});
  SnapshotMeta boot{LogIndex(0), Term(0), cs};
  MemoryLogStorage st(boot);
  st.append({Entry{Term(1), LogIndex(1), EntryType::kEmpty, ""},
             Entry{Term(3), LogIndex(2), EntryType::kEmpty, ""},
             Entry{Term(3), LogIndex(3), EntryType::kNormal, "x"}});
  Config cfg;
  cfg.id = NodeId(2);
  cfg.group = kTestGroup;
  Group g(cfg, st, BootState{HardState{Term(1), NodeId(1), LogIndex(1)}, boot, LogIndex(0)});
  CHECK(g.check_invariants().is_ok());
  CHECK(g.term() == Term(3));
  CHECK(g.vote() == kNoNode);
  CHECK(g.commit_index() == LogIndex(1));
  Ready rd = g.ready();
  REQUIRE(rd.hard_state.has_value());
  CHECK(*rd.hard_state == HardState{Term(3), kNoNode, LogIndex(1)});
  g.advance(rd);
  CHECK(g.check_invariants().is_ok());
}

// Same with a snapshot installed from a leader: the snapshot is durable, the hard state written
// after it is not. A snapshot covers committed entries only, so the replica boots with its
// commit index at the snapshot index.
TEST_CASE("raft restart: a snapshot durable without its hard state") {
  ConfState cs;
  cs.voters = node_ids({1, 2, 3});
  SnapshotMeta snap{LogIndex(5), Term(2), cs};
  MemoryLogStorage st(snap);
  Config cfg;
  cfg.id = NodeId(2);
  cfg.group = kTestGroup;
  Group g(cfg, st, BootState{HardState{Term(2), kNoNode, LogIndex(2)}, snap, LogIndex(5)});
  CHECK(g.check_invariants().is_ok());
  CHECK(g.commit_index() == LogIndex(5));
  CHECK(g.applied_index() == LogIndex(5));
  CHECK(g.term() == Term(2));
}

// A voter that knows a commit tells it in its vote answers. Two voters {1, 2}; leader 1 removes
// itself and node 2 misses the commit. Without the commit in the vote answers: node 2 wins with
// node 1's vote and appends its no-op, which reaches node 1 but is lost on node 2 (crash before
// its write); then node 1's log is longer, it refuses node 2's votes and, removed, never
// campaigns: no leader ever. With it, node 2 learns from node 1's answer that the removal is
// committed, applies it and elects itself alone.
TEST_CASE("raft membership: a candidate learns a missed commit from a voter's answer") {
  Cluster c(2);
  c.elect(1);
  Result<LogIndex> rm = c.propose_conf_change(1, cc_remove(1));
  REQUIRE(rm.is_ok());
  const LogIndex at = rm.value();
  c.set_filter([at](const Message& m) {
    return !(m.from == NodeId(1) && (m.commit >= at || m.type == MessageType::kTimeoutNow));
  });
  c.stabilize();
  REQUIRE(c.g(1).role() == Role::kFollower);
  REQUIRE(c.g(1).commit_index() >= at);
  REQUIRE(c.g(2).commit_index() < at);
  c.set_filter(nullptr);

  // Node 2 campaigns; whatever it leads, its own writes never complete before the crash, while
  // node 1 stores what node 2 sends it (but its answers are lost).
  c.set_manual_persist(2, true);
  c.force_campaign(2);
  for (int i = 0; i < 10; ++i) {
    c.stabilize();
    if (c.g(2).role() == Role::kLeader) break;  // its no-op stays unwritten
    c.persist(2);
  }
  c.set_filter([](const Message& m) { return m.from != NodeId(1); });
  c.stabilize();
  c.crash(2);
  c.set_filter(nullptr);
  c.restart(2);
  c.set_manual_persist(2, false);

  for (int i = 0; i < 100 && c.leader() == 0; ++i) c.run_ticks(1);
  REQUIRE(c.leader() == 2);
  CHECK(c.g(2).conf_state().voters == node_ids({2}));
  c.crash(1);
  REQUIRE(c.propose(2, "alone").is_ok());
  c.stabilize();
  CHECK(c.node(2).applied_data() == std::vector<std::string>{"alone"});
}
