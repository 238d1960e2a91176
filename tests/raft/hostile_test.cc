// Messages no honest replica sends (doc/raft.md, "Messages no honest peer sends"): each is
// stepped straight into a Group, bypassing the transport's validation, and must be refused
// (dropped, counted in refused_messages(), no state changed) instead of tripping an assertion of
// the core or corrupting its state. Plus the leader-side rule that keeps undecodable conf-change
// entries out of every log.
#include <doctest/doctest.h>

#include "harness.h"

using namespace raftd;
using namespace raftd::raft;
using namespace raftd::raft::test;

namespace {

// Leader 1 of voters 1..3 with three committed entries everywhere.
Cluster committed_cluster(ClusterOptions o = {}) {
  Cluster c(3, o);
  c.elect(1);
  for (int i = 0; i < 3; ++i) REQUIRE(c.propose(1, "e" + std::to_string(i)).is_ok());
  c.stabilize();
  REQUIRE(c.g(2).commit_index() == c.g(1).last_index());
  return c;
}

Message msg(MessageType type, uint64_t from, uint64_t to, Term term) {
  Message m;
  m.type = type;
  m.group = kTestGroup;
  m.from = NodeId(from);
  m.to = NodeId(to);
  m.term = term;
  return m;
}

// What a refused message must leave untouched.
struct Seen {
  HardState hs;
  SoftState ss;
  LogIndex last;
  Term last_term;
  ConfState conf;
  uint64_t refused;

  explicit Seen(const Group& g)
      : hs(g.hard_state()),
        ss(g.soft_state()),
        last(g.last_index()),
        last_term(g.last_term()),
        conf(g.conf_state()),
        refused(g.refused_messages()) {}
};

// Steps `m` into node `to` directly and drives every Ready; REQUIREs that it was refused.
void refused(Cluster& c, const Message& m) {
  Group& g = c.g(m.to.value());
  const Seen before(g);
  g.step(m);
  c.process_readys();
  CHECK(g.refused_messages() == before.refused + 1);
  CHECK(g.hard_state() == before.hs);
  CHECK(g.soft_state() == before.ss);
  CHECK(g.last_index() == before.last);
  CHECK(g.last_term() == before.last_term);
  CHECK(g.conf_state() == before.conf);
  CHECK(g.check_invariants().is_ok());
}

}  // namespace

TEST_CASE("raft hostile: entries that conflict below the commit index are refused") {
  // Before: RaftLog asserted "conflicting entry below the commit index" (the entries do not
  // follow the message's index, so the early answer for appends below the commit missed them).
  Cluster c = committed_cluster();
  const LogIndex commit = c.g(2).commit_index();
  const Term newer = c.g(1).term() + 1;
  Message m = msg(MessageType::kAppend, 1, 2, newer);
  m.index = commit;
  m.log_term = *c.g(2).term_at(commit);
  m.entries.push_back(Entry{newer, commit - 1, EntryType::kNormal, "lie"});
  m.commit = commit;
  refused(c, m);
}

TEST_CASE("raft hostile: an appended conf change that does not decode is refused") {
  // Before: the follower appended it, committed it and asserted "undecodable conf change entry"
  // when it applied it.
  Cluster c = committed_cluster();
  const LogIndex last = c.g(2).last_index();
  Message m = msg(MessageType::kAppend, 1, 2, c.g(1).term());
  m.index = last;
  m.log_term = c.g(2).last_term();
  m.entries.push_back(Entry{c.g(1).term(), last + 1, EntryType::kConfChange, "not a change"});
  m.commit = last + 1;
  refused(c, m);
  c.stabilize();
  CHECK(c.g(2).applied_index() == last);
}

TEST_CASE("raft hostile: entries of an unknown type or badly ordered terms are refused") {
  Cluster c = committed_cluster();
  const Term term = c.g(1).term();
  const LogIndex last = c.g(2).last_index();
  Message m = msg(MessageType::kAppend, 1, 2, term);
  m.index = last;
  m.log_term = c.g(2).last_term();
  m.entries.push_back(Entry{term, last + 1, static_cast<EntryType>(9), "?"});
  refused(c, m);
  m.entries = {Entry{term + 1, last + 1, EntryType::kNormal, "from the future"}};
  refused(c, m);  // before: "last log term beyond current term"
  m.entries = {Entry{term, last + 1, EntryType::kNormal, "a"},
               Entry{Term(0), last + 2, EntryType::kNormal, "b"}};
  refused(c, m);  // before: "log terms decrease"
}

TEST_CASE("raft hostile: terms and indexes near 2^64 are refused") {
  // Before: the follower moved to term 2^64-1; its next campaign wrapped the term to 0.
  Cluster c = committed_cluster();
  Message hb = msg(MessageType::kHeartbeat, 1, 2, Term(UINT64_MAX));
  refused(c, hb);
  Message m = msg(MessageType::kAppend, 1, 2, c.g(1).term());
  m.index = LogIndex(UINT64_MAX - 1);
  m.log_term = c.g(1).term();
  m.entries = {Entry{c.g(1).term(), LogIndex(UINT64_MAX), EntryType::kNormal, "x"},
               Entry{c.g(1).term(), LogIndex(0), EntryType::kNormal, "y"}};
  refused(c, m);
}

TEST_CASE("raft hostile: a leader's message at term 0 is refused") {
  // Before: a fresh replica (term 0) appended an entry of term 0 from a "leader" of term 0.
  Cluster c(3);
  Message m = msg(MessageType::kAppend, 2, 1, Term(0));
  m.entries.push_back(Entry{Term(0), LogIndex(1), EntryType::kNormal, "x"});
  refused(c, m);
  refused(c, msg(MessageType::kTimeoutNow, 2, 1, Term(0)));
  CHECK(c.g(1).role() == Role::kFollower);
}

TEST_CASE("raft hostile: snapshots with odd metadata are refused") {
  Cluster c = committed_cluster();
  const Term term = c.g(1).term();
  auto snap = [&](LogIndex index, Term t, ConfState cs) {
    Message m = msg(MessageType::kSnapshot, 1, 2, term);
    m.snapshot = Snapshot{SnapshotMeta{index, t, std::move(cs)}, {}};
    return m;
  };
  const LogIndex ahead = c.g(2).last_index() + 10;
  const ConfState good = c.g(2).conf_state();
  ConfState bad = good;
  bad.learners_next = {NodeId(3)};             // only valid in a joint configuration
  refused(c, snap(ahead, term, bad));          // before: the follower took an invalid configuration
  refused(c, snap(ahead, term, ConfState{}));  // before: a configuration without a voter
  refused(c, snap(ahead, term + 1, good));     // snapshot term above the message's
  refused(c, snap(LogIndex(UINT64_MAX), term, good));  // before: the log's offset wrapped to 0
  Message none = msg(MessageType::kSnapshot, 1, 2, term);
  refused(c, none);  // no snapshot at all (before: a null dereference)
}

TEST_CASE("raft hostile: a second leader in the leader's own term is refused") {
  // Before: a quiesce notice from a peer in the leader's term made the leader step down.
  Cluster c = committed_cluster();
  const Term term = c.g(1).term();
  Message q = msg(MessageType::kQuiesce, 2, 1, term);
  q.index = c.g(1).last_index();
  q.log_term = c.g(1).last_term();
  q.commit = c.g(1).commit_index();
  refused(c, q);
  CHECK(c.g(1).role() == Role::kLeader);
  refused(c, msg(MessageType::kHeartbeat, 2, 1, term));
  refused(c, msg(MessageType::kTimeoutNow, 3, 1, term));
}

TEST_CASE("raft hostile: leader messages from another node than the known leader are refused") {
  // Before: a follower took node 3 for its leader on a heartbeat in node 1's term (and sent its
  // reads and transfers there).
  Cluster c = committed_cluster();
  REQUIRE(c.g(2).leader() == NodeId(1));
  Message hb = msg(MessageType::kHeartbeat, 3, 2, c.g(1).term());
  hb.commit = c.g(2).commit_index();
  refused(c, hb);
  CHECK(c.g(2).leader() == NodeId(1));
  Message tn = msg(MessageType::kTimeoutNow, 3, 2, c.g(1).term());
  refused(c, tn);  // before: node 2 campaigned
  CHECK(c.g(2).role() == Role::kFollower);
}

TEST_CASE("raft hostile: a read index answer from another node than the leader is refused") {
  // Before: node 2 took node 3's answer to a request it never made as a read point.
  Cluster c = committed_cluster();
  Message m = msg(MessageType::kReadIndexResp, 3, 2, c.g(1).term());
  m.index = c.g(2).commit_index();
  m.context = 99;
  refused(c, m);
  CHECK(c.node(2).read_states.empty());
}

TEST_CASE("raft hostile: a heartbeat answer for a read round never sent is refused") {
  // Before: one lying follower's answer for a future round (with the leader's own vote, a
  // majority of three) confirmed a read that no heartbeat round had confirmed.
  Cluster c = committed_cluster();
  c.isolate(2);
  c.isolate(3);
  Message forged = msg(MessageType::kHeartbeatResp, 2, 1, c.g(1).term());
  forged.context = 1000;
  refused(c, forged);
  REQUIRE(c.read_index(1, 42).is_ok());
  c.stabilize();
  CHECK(c.node(1).read_states.empty());
  c.heal();
  c.run_ticks(2);
  REQUIRE(c.node(1).read_states.size() == 1);
  CHECK(c.node(1).read_states[0].request_id == 42);
}

TEST_CASE("raft hostile: an acknowledgement beyond the leader's log is refused and counted") {
  Cluster c = committed_cluster();
  Message m = msg(MessageType::kAppendResp, 2, 1, c.g(1).term());
  m.index = c.g(1).last_index() + 5;
  refused(c, m);
  CHECK(c.g(1).progress(NodeId(2))->match <= c.g(1).last_index());
}

TEST_CASE("raft hostile: honest traffic is never refused") {
  ClusterOptions o;
  o.learners = {4};
  o.quiesce_after_ticks = 3;
  Cluster c(3, o);
  c.elect(1);
  for (int i = 0; i < 5; ++i) REQUIRE(c.propose(1, "x").is_ok());
  REQUIRE(c.read_index(2, 7).is_ok());
  c.run_ticks(20);
  c.elect(2);
  REQUIRE(c.propose_conf_change(
               2, ConfChange{ConfTransition::kAuto, {{ConfChangeType::kAddVoter, NodeId(4)}}})
              .is_ok());
  c.run_ticks(20);
  c.compact(2, c.g(2).applied_index().value());
  c.isolate(3);
  for (int i = 0; i < 5; ++i) REQUIRE(c.propose(2, "y").is_ok());
  c.run_ticks(5);
  c.compact(2, c.g(2).applied_index().value());
  c.heal();
  c.run_ticks(30);  // node 3 catches up by snapshot
  CHECK(c.g(3).commit_index() == c.g(2).commit_index());
  for (uint64_t id : c.ids()) CHECK(c.g(id).refused_messages() == 0);
}

// Leader side: a change the encoding cannot carry would be appended, replicated and committed,
// and every replica would stop when applying it. propose_conf_change() refuses it instead.
TEST_CASE("raft hostile: a conf change that would not decode is never proposed") {
  Cluster c = committed_cluster();
  const LogIndex last = c.g(1).last_index();
  ConfChange bad_transition{static_cast<ConfTransition>(7),
                            {{ConfChangeType::kAddLearner, NodeId(9)}}};
  CHECK(c.propose_conf_change(1, bad_transition).status().code() == Code::kInvalidArgument);
  ConfChange many;  // valid as a change, but more items than the encoding allows
  many.transition = ConfTransition::kJointImplicit;
  for (uint64_t n = 10; n < 10 + 1025; ++n) {
    many.changes.push_back({ConfChangeType::kAddLearner, NodeId(n)});
  }
  CHECK(c.propose_conf_change(1, many).status().code() == Code::kInvalidArgument);
  c.stabilize();
  CHECK(c.g(1).last_index() == last);
  // A representable one still goes through.
  ConfChange ok{ConfTransition::kAuto, {{ConfChangeType::kAddLearner, NodeId(9)}}};
  REQUIRE(c.propose_conf_change(1, ok).is_ok());
  c.stabilize();
  CHECK(c.g(2).conf_state().learners == std::vector<NodeId>{NodeId(9)});
}
