// Stale and older-term responses: the leader's view of a follower (match, next, state) only moves
// forward on fresh acknowledgements, and nothing from an older term counts.
#include <doctest/doctest.h>

#include "bugs_util.h"

using namespace raftd;
using namespace raftd::raft;
using namespace raftd::raft::test;

namespace {

Message append_resp(uint64_t from, uint64_t to, Term term, LogIndex index, bool reject = false,
                    LogIndex hint = LogIndex(0)) {
  Message m;
  m.type = MessageType::kAppendResp;
  m.group = kTestGroup;
  m.from = NodeId(from);
  m.to = NodeId(to);
  m.term = term;
  m.index = index;
  m.reject = reject;
  m.reject_hint = hint;
  return m;
}

// Leader 1 with every follower in replicate at the last index.
Cluster replicating_cluster(ClusterOptions o = {}) {
  Cluster c(3, o);
  c.elect(1);
  for (int i = 0; i < 3; ++i) REQUIRE(c.propose(1, "e" + std::to_string(i)).is_ok());
  c.stabilize();
  REQUIRE(c.g(1).progress(NodeId(2))->state == ProgressState::kReplicate);
  REQUIRE(c.g(1).progress(NodeId(2))->match == c.g(1).last_index());
  return c;
}

}  // namespace

TEST_CASE("raft responses: a stale acknowledgement moves neither match nor next back") {
  Cluster c = replicating_cluster();
  const ProgressView before = *c.g(1).progress(NodeId(2));
  c.deliver(append_resp(2, 1, c.g(1).term(), LogIndex(2)));  // an old, duplicated ack
  c.process_readys();
  const ProgressView after = *c.g(1).progress(NodeId(2));
  CHECK(after.match == before.match);
  CHECK(after.next == before.next);
  CHECK(after.state == ProgressState::kReplicate);
  CHECK(c.queued(MessageType::kAppend) == 0);  // nothing resent for it
}

TEST_CASE("raft responses: a stale rejection below match is ignored while replicating") {
  Cluster c = replicating_cluster();
  const ProgressView before = *c.g(1).progress(NodeId(2));
  // The rejection of an append that was sent long ago, at index 1 (< match).
  c.deliver(append_resp(2, 1, c.g(1).term(), LogIndex(1), true, LogIndex(0)));
  c.process_readys();
  const ProgressView after = *c.g(1).progress(NodeId(2));
  CHECK(after.state == ProgressState::kReplicate);
  CHECK(after.match == before.match);
  CHECK(after.next == before.next);
}

TEST_CASE("raft responses: while probing only the rejection of the last probe counts") {
  Cluster c = replicating_cluster();
  c.isolate(2);
  for (int i = 0; i < 3; ++i) REQUIRE(c.propose(1, "p" + std::to_string(i)).is_ok());
  c.stabilize();
  c.g(1).report_unreachable(NodeId(2));  // back to probing from match + 1
  c.check(1);
  const ProgressView probing = *c.g(1).progress(NodeId(2));
  REQUIRE(probing.state == ProgressState::kProbe);
  REQUIRE(probing.next == probing.match + 1);
  // A rejection of some other (older, reordered) append must not move next.
  c.deliver(append_resp(2, 1, c.g(1).term(), probing.next + 1, true, LogIndex(1)));
  c.process_readys();
  CHECK(c.g(1).progress(NodeId(2))->next == probing.next);
  CHECK(c.g(1).progress(NodeId(2))->match == probing.match);
  c.heal();
  c.run_ticks(3);
  CHECK(c.g(1).progress(NodeId(2))->match == c.g(1).last_index());
  CHECK(c.g(1).progress(NodeId(2))->next == c.g(1).last_index() + 1);
}

TEST_CASE("raft responses: an acknowledgement from an older term does not count") {
  Cluster c(3);
  c.elect(1);
  c.elect(2);  // term 2 (or later) under node 2
  c.elect(1);
  const Term term = c.g(1).term();
  REQUIRE(term >= Term(3));
  c.isolate(2);
  c.isolate(3);
  Result<LogIndex> x = c.propose(1, "x");
  REQUIRE(x.is_ok());
  c.process_readys();
  const LogIndex match2 = c.g(1).progress(NodeId(2))->match;
  REQUIRE(match2 < x.value());
  c.heal();
  c.set_filter([](const Message& m) { return m.from == NodeId(1); });  // acks are hand-made
  // Acks of the same index from an older term (e.g. replies to an earlier leadership of node 1).
  c.deliver(append_resp(2, 1, term - 1, x.value()));
  c.deliver(append_resp(3, 1, term - 1, x.value()));
  c.process_readys();
  CHECK(c.g(1).role() == Role::kLeader);
  CHECK(c.g(1).term() == term);
  CHECK(c.g(1).progress(NodeId(2))->match == match2);
  CHECK(c.g(1).commit_index() < x.value());
  c.set_filter(nullptr);
  c.run_ticks(3);
  CHECK(c.g(1).commit_index() >= x.value());
}

TEST_CASE("raft responses: votes from an older term do not elect a candidate") {
  ClusterOptions o;
  o.pre_vote = false;
  o.check_quorum = false;
  Cluster c(3, o);
  c.elect(1);
  c.isolate(3);
  for (int i = 0; i < kCampaignTicksMax && c.g(3).role() != Role::kCandidate; ++i) c.tick(3);
  c.stabilize();  // the candidate's term and self-vote are durable; its requests are lost
  REQUIRE(c.g(3).role() == Role::kCandidate);
  const Term term = c.g(3).term();
  for (uint64_t from : {1, 2}) {
    Message v;
    v.type = MessageType::kVoteResp;
    v.group = kTestGroup;
    v.from = NodeId(from);
    v.to = NodeId(3);
    v.term = term - 1;  // granted, but in an older election
    c.deliver(v);
  }
  c.process_readys();
  CHECK(c.g(3).role() == Role::kCandidate);
  CHECK(c.g(3).term() == term);
}
