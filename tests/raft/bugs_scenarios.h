// Scenarios for the subtle bugs that the simulator can also reintroduce as mutations
// (raftd/raft/bugs.h). Each function builds the failing situation from the research checklist and
// asserts the correct outcome with doctest. They live in a header because two executables run
// them: the core's unit tests (raft_dep, where they must pass) and the mutation check
// (raft_sim_dep, bugs_mutations_test.cc, where each must FAIL with its bug switched on; that is
// the proof that the test would catch the bug).
#pragma once

#include "bugs_util.h"

namespace raftd::raft::test {

// Bug #1, thesis §3.6.2, Figure 3.7 (the "Figure 8" of the Raft paper), on five servers with the
// leader's no-op standing in for the paper's client entries:
//  (a) S1 leads term 1 and replicates "a" at index 2 to S2 only;
//  (b) S1 crashes; S5 wins term 2 with S3 and S4 and appends its own entry at index 2, locally;
//  (c) S5 crashes; S1 restarts and wins term 3; it gets "a" onto S3 (now S1, S2, S3 hold it: a
//      majority) but its own term-3 entry reaches only S2.
// Returns with the cluster in state (c); S4 is isolated, S5 is down.
inline void figure_3_7_until_c(Cluster& c) {
  c.elect(1);
  c.partition({1, 2}, {3, 4, 5});
  REQUIRE(c.propose(1, "a").value() == LogIndex(2));
  c.stabilize();
  REQUIRE(c.g(2).term_at(LogIndex(2)) == Term(1));
  CHECK(c.g(1).commit_index() == LogIndex(1));  // two of five

  c.crash(1);
  c.heal();
  c.set_filter(
      [](const Message& m) { return !(m.from == NodeId(5) && m.type == MessageType::kAppend); });
  c.elect(5);
  REQUIRE(c.g(5).term() == Term(2));
  REQUIRE(c.g(5).term_at(LogIndex(2)) == Term(2));
  c.crash(5);

  c.isolate(4);
  // Once S3 holds "a", S1's term-3 entry (index 3) must not reach it: S1 "crashes" before that
  // message leaves. (S1's first probe to S3 carries index 3 too; S3 rejects it, S1 backs off.)
  c.set_filter([&c](const Message& m) {
    bool s3_has_a = c.node(3).up() && c.g(3).term_at(LogIndex(2)) == Term(1);
    return !(m.type == MessageType::kAppend && m.to == NodeId(3) && s3_has_a &&
             carries_index(m, LogIndex(3)));
  });
  c.restart(1);
  campaign_until_leader(c, 1);
  REQUIRE(c.g(1).term() == Term(3));
  for (uint64_t id : {1, 2, 3}) {
    INFO("node ", id, " last index ", c.g(id).last_index().value(), " term ",
         c.g(id).term().value());
    REQUIRE(c.g(id).term_at(LogIndex(2)) == Term(1));
  }
  REQUIRE(c.g(3).last_index() == LogIndex(2));
}

// Bug #1, part (c) -> (d): the term-1 entry sits on a majority, yet it must not be committed;
// S5 can still win (votes of S3 and S4) and replace it, and nobody ever applied it.
inline void scenario_bug1_prev_term_entry_not_committed() {
  ClusterOptions o;
  o.pre_vote = false;
  o.check_quorum = false;
  o.max_msg_bytes = 1;  // one entry per append, so entries can be lost one by one
  Cluster c(5, o);
  figure_3_7_until_c(c);
  CHECK(c.g(1).commit_index() == LogIndex(1));
  CHECK(c.g(2).commit_index() == LogIndex(1));
  CHECK(c.g(3).commit_index() == LogIndex(1));

  // (d) S1 crashes; S5 restarts and wins with S3 and S4, overwriting index 2 everywhere.
  c.crash(1);
  c.set_filter(nullptr);
  c.heal();
  c.restart(5);
  campaign_until_leader(c, 5);
  c.stabilize();
  CHECK(c.g(5).commit_index() >= LogIndex(3));
  REQUIRE(c.applied_record().contains(2));
  CHECK(c.applied_record().at(2).term == Term(2));  // S5's entry, not S1's "a"
  for (uint64_t id : {2, 3, 4, 5}) {
    const std::vector<std::string> data = c.node(id).applied_data();
    CHECK(std::find(data.begin(), data.end(), "a") == data.end());
  }
}

// Bug #3: a stale (duplicated, reordered) AppendEntries must not truncate entries the follower
// already acknowledged. Node 2 holds and acked "a" (2) and "b" (3), has not learned that they are
// committed, and then receives the first append again.
inline void scenario_bug3_stale_append_keeps_acked_entries() {
  ClusterOptions o;
  o.max_msg_bytes = 1;
  Cluster c(3, o);
  c.elect(1);
  REQUIRE(c.propose(1, "a").is_ok());
  c.process_readys();
  std::vector<Message> first;
  for (const Message& m : c.queue()) {
    if (m.type == MessageType::kAppend && m.to == NodeId(2)) first.push_back(m);
  }
  REQUIRE(first.size() == 1);
  REQUIRE(c.propose(1, "b").is_ok());
  c.process_readys();
  for (const Message& m : c.take([](const Message& m) { return m.to == NodeId(2); })) c.deliver(m);
  c.process_readys();  // node 2 persists "a" and "b" and acknowledges index 3
  REQUIRE(c.g(2).last_index() == LogIndex(3));
  REQUIRE(c.g(2).commit_index() == LogIndex(1));

  c.deliver(first[0]);  // the stale copy: prev index 1, entries [2]
  c.process_readys();
  CHECK(c.g(2).last_index() == LogIndex(3));
  CHECK(stored_entry(c, 2, 3).data == "b");
  c.stabilize();
  for (uint64_t id : {1, 2, 3}) {
    CHECK(c.node(id).applied_data() == std::vector<std::string>{"a", "b"});
  }
}

// Bug #3: an append that would replace a committed entry is refused; the follower keeps its log
// and answers with its commit index.
inline void scenario_bug3_conflict_below_commit_refused() {
  Cluster c(3);
  c.elect(1);
  REQUIRE(c.propose(1, "a").is_ok());
  REQUIRE(c.propose(1, "b").is_ok());
  c.stabilize();
  REQUIRE(c.g(2).commit_index() == LogIndex(3));
  // A message that would replace committed index 2 (no correct leader sends it; a corrupted or
  // misrouted one might): the follower keeps its committed log and reports its commit index.
  Entry evil{Term(5), LogIndex(2), EntryType::kNormal, "evil"};
  c.deliver(append_msg(3, 2, Term(5), LogIndex(1), Term(1), {evil}, LogIndex(1)));
  c.process_readys();
  CHECK(c.g(2).term_at(LogIndex(2)) == Term(1));
  CHECK(c.g(2).commit_index() == LogIndex(3));
  CHECK(stored_entry(c, 2, 2).data == "a");
  std::vector<Message> resp = c.take(
      [](const Message& m) { return m.from == NodeId(2) && m.type == MessageType::kAppendResp; });
  REQUIRE(resp.size() == 1);
  CHECK_FALSE(resp[0].reject);
  CHECK(resp[0].index == LogIndex(3));
}

// Bug #4: a vote must be durable before the candidate hears of it. Node 3 grants node 1 a vote
// in term 1, crashes before the write is durable and comes back without it; it then votes for
// node 2 in the same term. That is safe only if node 1 never received the first vote.
inline void scenario_bug4_vote_leaves_after_persist() {
  ClusterOptions o;
  o.pre_vote = false;
  o.check_quorum = false;
  Cluster c(3, o);
  c.set_manual_persist(3, true);
  c.isolate(2);
  for (int i = 0; i < kCampaignTicksMax && c.g(1).role() == Role::kFollower; ++i) c.tick(1);
  REQUIRE(c.g(1).role() == Role::kCandidate);
  REQUIRE(c.g(1).term() == Term(1));
  c.stabilize();  // node 3 grants, but its write is pending
  CHECK(c.g(3).vote() == NodeId(1));
  CHECK(c.g(1).role() == Role::kCandidate);

  c.crash(3);  // the vote was never durable
  c.restart(3);
  c.set_manual_persist(3, false);
  CHECK(c.g(3).term() == Term(0));
  c.heal();
  c.isolate(1);
  campaign_until_leader(c, 2);
  CHECK(c.g(2).term() == Term(1));
  // Exactly one leader in term 1.
  CHECK_FALSE((c.g(1).role() == Role::kLeader && c.g(1).term() == Term(1)));
}

// Bug #5: a single-voter group must not commit (and so not apply or acknowledge) an entry before
// its own write is durable: a crash right after would lose an applied entry.
inline void scenario_bug5_single_voter_applies_after_persist() {
  Cluster c(1);
  c.elect(1);
  c.set_manual_persist(1, true);
  Result<LogIndex> idx = c.propose(1, "lost-on-crash");
  REQUIRE(idx.is_ok());
  c.stabilize();
  CHECK(c.g(1).commit_index() < idx.value());
  CHECK(c.node(1).applied_data().empty());

  c.crash(1);
  c.restart(1);
  c.set_manual_persist(1, false);
  c.elect(1);
  REQUIRE(c.propose(1, "after").is_ok());
  c.stabilize();
  // The entry at that index is now the new term's no-op, applied once, consistently.
  REQUIRE(c.applied_record().contains(idx.value().value()));
  CHECK(c.applied_record().at(idx.value().value()).type == EntryType::kEmpty);
  CHECK(c.node(1).applied_data() == std::vector<std::string>{"after"});
}

// Bug #5 with three voters: neither the leader nor a follower counts an entry toward the quorum
// before its own write is durable (node 3 is cut off, so nodes 1 and 2 must both hold it).
inline void scenario_bug5_leader_and_follower_count_durable_entries() {
  Cluster c(3);
  c.elect(1);
  c.isolate(3);  // the leader and node 2 are the only possible quorum
  c.set_manual_persist(1, true);
  c.set_manual_persist(2, true);
  Result<LogIndex> idx = c.propose(1, "x");
  REQUIRE(idx.is_ok());
  c.stabilize();
  CHECK(c.g(1).progress(NodeId(2))->match < idx.value());  // node 2 did not ack yet
  CHECK(c.g(1).commit_index() < idx.value());
  c.persist(2);
  c.stabilize();
  CHECK(c.g(1).progress(NodeId(2))->match == idx.value());
  CHECK(c.g(1).commit_index() < idx.value());  // the leader's own write is still pending
  CHECK(c.node(1).applied_data().empty());
  c.persist(1);
  c.stabilize();
  CHECK(c.g(1).commit_index() == idx.value());
  CHECK(c.node(1).applied_data() == std::vector<std::string>{"x"});
}

// Bug #12 (a): a new leader must not serve ReadIndex before it committed an entry of its term.
// Node 1 commits "x" and crashes before followers learn it is committed; node 2 wins with a
// stale commit index. A read answered at that stale index would miss the acknowledged "x".
inline void scenario_bug12_no_read_before_commit_in_term() {
  ClusterOptions o;
  o.check_quorum = false;
  Cluster c(3, o);
  c.elect(1);
  Result<LogIndex> x = c.propose(1, "x");
  REQUIRE(x.is_ok());
  c.process_readys();
  c.deliver_all();     // appends reach 2 and 3
  c.process_readys();  // they persist and ack
  c.deliver_all();     // acks reach 1: "x" is committed on the leader
  REQUIRE(c.g(1).commit_index() == x.value());
  c.crash(1);
  REQUIRE(c.g(2).commit_index() < x.value());

  // Node 2 wins, but its no-op cannot commit yet.
  c.set_filter([](const Message& m) { return m.type != MessageType::kAppend; });
  c.elect(2);
  REQUIRE(c.read_index(2, 7).is_ok());
  c.stabilize();
  CHECK(c.node(2).read_states.empty());

  c.set_filter(nullptr);
  c.run_ticks(2);
  REQUIRE(c.node(2).read_states.size() == 1);
  const ReadState& rs = c.node(2).read_states[0];
  CHECK(rs.request_id == 7);
  CHECK(rs.ok);
  CHECK(rs.index > x.value());  // covers "x" and the new leader's no-op
}

// Bug #12 (b): a deposed leader (cut off, a new leader elected and committing) must not answer a
// read from its stale state. CheckQuorum is off here to model the window before it would step
// down on its own.
inline void scenario_bug12_deposed_leader_serves_no_read() {
  ClusterOptions o;
  o.check_quorum = false;
  Cluster c(3, o);
  c.elect(1);
  c.isolate(1);
  campaign_until_leader(c, 2);
  Result<LogIndex> y = c.propose(2, "y");
  REQUIRE(y.is_ok());
  c.stabilize();
  REQUIRE(c.g(3).applied_index() >= y.value());

  REQUIRE(c.g(1).role() == Role::kLeader);  // it does not know yet
  REQUIRE(c.read_index(1, 42).is_ok());
  for (int i = 0; i < 5; ++i) {
    c.tick(1);
    c.stabilize();
  }
  CHECK(c.node(1).read_states.empty());

  c.heal();
  c.run_ticks(5);
  CHECK(c.g(1).role() == Role::kFollower);
  // The request is answered (dropped: retry), never with a point that misses "y".
  REQUIRE(c.node(1).read_states.size() == 1);
  const ReadState& rs = c.node(1).read_states[0];
  CHECK(rs.request_id == 42);
  CHECK((!rs.ok || rs.index >= y.value()));
}

// Bug #12 (c): a follower's read is answered only after the leader confirmed its leadership with
// a quorum, never from the leader's state alone.
inline void scenario_bug12_follower_read_waits_for_quorum() {
  Cluster c(3);
  c.elect(1);
  REQUIRE(c.propose(1, "x").is_ok());
  c.stabilize();
  const LogIndex x_index = c.g(1).commit_index();
  // The leader gets node 3's request but no answer to its confirming heartbeats: no read point.
  c.set_filter([](const Message& m) { return m.type != MessageType::kHeartbeatResp; });
  REQUIRE(c.read_index(3, 9).is_ok());
  c.stabilize();
  CHECK(c.node(3).read_states.empty());
  c.set_filter(nullptr);
  c.tick_all();
  c.stabilize();
  REQUIRE(c.node(3).read_states.size() == 1);
  CHECK(c.node(3).read_states[0].ok);
  CHECK(c.node(3).read_states[0].index >= x_index);
}

// learner_in_quorum: a learner's acknowledgement never counts toward a commit. Voters {1, 2},
// learner 3; with voter 2 cut off, leader 1 and learner 3 hold "x" but are not a majority of the
// voters, so "x" must stay uncommitted until 2 is back.
inline void scenario_learner_ack_does_not_commit() {
  ClusterOptions o;
  o.learners = {3};
  Cluster c(2, o);
  c.elect(1);
  c.isolate(2);
  Result<LogIndex> x = c.propose(1, "x");
  REQUIRE(x.is_ok());
  c.stabilize();
  REQUIRE(c.g(3).last_index() == x.value());  // the learner has it
  CHECK(c.g(1).commit_index() < x.value());
  CHECK(c.node(1).applied_data().empty());
  c.heal();
  c.run_ticks(3);
  CHECK(c.g(1).commit_index() >= x.value());
  CHECK(c.node(3).applied_data() == std::vector<std::string>{"x"});
}

// learner_in_quorum (elections): voters {1, 2}, learner 3. With node 2 down, node 1 must not win
// an election with the learner's vote.
inline void scenario_learner_vote_does_not_elect() {
  ClusterOptions o;
  o.learners = {3};
  o.pre_vote = false;
  o.check_quorum = false;
  Cluster c(2, o);
  c.crash(2);
  for (int i = 0; i < kCampaignTicksMax; ++i) {
    c.tick(1);
    c.stabilize();
  }
  CHECK(c.g(1).role() != Role::kLeader);
}

// conf_at_append: a configuration change takes effect on every replica only when it is applied.
// Voters {1, 2}; leader 1 proposes adding voter 3 while 2 is cut off: the change cannot commit
// (it needs 2 under the old configuration), so neither the leader's configuration nor its commit
// index may move, and node 3 is not replicated to.
inline void scenario_conf_change_waits_for_apply() {
  Cluster c(2);
  c.add_node(NodeId(3));
  c.elect(1);
  c.isolate(2);
  Result<LogIndex> cc = c.propose_conf_change(1, cc_add_voter(3));
  REQUIRE(cc.is_ok());
  c.stabilize();
  CHECK(c.g(1).conf_state().voters == node_ids({1, 2}));
  CHECK(c.g(1).commit_index() < cc.value());
  CHECK(c.g(3).last_index() == LogIndex(0));
  c.heal();
  c.run_ticks(5);
  CHECK(c.g(1).conf_state().voters == node_ids({1, 2, 3}));
  CHECK(c.g(3).conf_state().voters == node_ids({1, 2, 3}));
}

// quiesce_without_lease: a kQuiesce the leader sent just before it died, delivered after the
// driver woke the followers (wake(): the leader's node is gone), must not put them back to
// sleep; an election follows.
inline void scenario_late_quiesce_after_wake() {
  ClusterOptions o;
  o.quiesce_after_ticks = 5;
  Cluster c(3, o);
  c.elect(1);
  std::vector<Message> notices;
  c.set_filter([&notices](const Message& m) {
    if (m.type != MessageType::kQuiesce) return true;
    notices.push_back(m);
    return false;  // held back: "in the network" when the leader dies
  });
  for (int i = 0; i < 20 && notices.empty(); ++i) c.run_ticks(1);
  REQUIRE(notices.size() == 2);
  c.set_filter(nullptr);
  c.crash(1);
  c.g(2).wake();
  c.g(3).wake();
  for (const Message& m : notices) c.deliver(m);  // late
  CHECK_FALSE(c.g(2).quiesced());
  CHECK_FALSE(c.g(3).quiesced());
  for (int i = 0; i < 100 && c.leader() == 0; ++i) c.run_ticks(1);
  CHECK((c.leader() == 2 || c.leader() == 3));
}

}  // namespace raftd::raft::test
