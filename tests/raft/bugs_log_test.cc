// Subtle Raft bugs #1..#3 of the research checklist: what a leader may commit, what a follower
// may mark committed, and when a follower may truncate its log. Each test builds the situation in
// which the buggy rule loses or changes a committed entry, and checks that it does not happen.
#include <doctest/doctest.h>

#include <algorithm>

#include "bugs_scenarios.h"

using namespace raftd;
using namespace raftd::raft;
using namespace raftd::raft::test;

namespace {

ClusterOptions figure_3_7_options() {
  ClusterOptions o;
  o.pre_vote = false;
  o.check_quorum = false;
  o.max_msg_bytes = 1;
  return o;
}

}  // namespace

TEST_CASE("raft bug #1: a leader never commits a previous-term entry by counting replicas") {
  scenario_bug1_prev_term_entry_not_committed();
}

TEST_CASE("raft bug #1: the earlier-term entry commits once an entry of the leader's term does") {
  Cluster c(5, figure_3_7_options());
  figure_3_7_until_c(c);
  // Figure 3.7 (e): S1's own entry now reaches S3 too, committing index 3 and, with it, index 2.
  c.set_filter(nullptr);
  c.tick(1);
  c.stabilize();
  CHECK(c.g(1).commit_index() == LogIndex(3));
  CHECK(c.node(1).applied_data() == std::vector<std::string>{"a"});
  // S5 can no longer win: S2 and S3 hold a newer entry than S5's last one.
  c.crash(1);
  c.heal();
  c.restart(5);
  for (int i = 0; i < kCampaignTicksMax; ++i) {
    c.tick(5);
    c.stabilize();
    REQUIRE(c.g(5).role() != Role::kLeader);
  }
}

TEST_CASE("raft bug #2: a follower never commits beyond the entries it verified") {
  ClusterOptions o;
  o.pre_vote = false;
  o.check_quorum = false;
  Cluster c(5, o);
  c.elect(1);
  // Node 5 receives three entries of term 1 that never commit (only node 1 and 5 have them).
  c.partition({1, 5}, {2, 3, 4});
  for (const char* d : {"stale-a", "stale-b", "stale-c"}) REQUIRE(c.propose(1, d).is_ok());
  c.stabilize();
  REQUIRE(c.g(5).last_index() == LogIndex(4));
  c.crash(1);
  c.isolate(5);
  c.elect(2);  // term 2, with 3 and 4
  REQUIRE(c.propose(2, "x").is_ok());
  REQUIRE(c.propose(2, "y").is_ok());
  c.stabilize();
  REQUIRE(c.g(2).commit_index() == LogIndex(4));

  // An append whose prefix (index 1) matches but which carries no entries, with leader commit 4:
  // only index 1 is verified, so node 5 may not commit its own (stale) entries 2..4.
  c.heal();
  c.deliver(append_msg(2, 5, c.g(2).term(), LogIndex(1), Term(1), {}, LogIndex(4)));
  CHECK(c.g(5).commit_index() == LogIndex(1));
  c.set_filter(
      [](const Message& m) { return !(m.type == MessageType::kAppend && m.to == NodeId(5)); });
  c.process_readys();
  CHECK(c.node(5).applied_data().empty());

  // Heartbeats carry min(follower's match, leader commit), never the bare leader commit.
  c.tick(2);
  c.process_readys();
  std::optional<ProgressView> pr = c.g(2).progress(NodeId(5));
  REQUIRE(pr.has_value());
  size_t heartbeats = 0;
  for (const Message& m : c.queue()) {
    if (m.type != MessageType::kHeartbeat || m.to != NodeId(5)) continue;
    ++heartbeats;
    CHECK(m.commit <= pr->match);
  }
  CHECK(heartbeats == 1);
  c.stabilize();
  CHECK(c.g(5).commit_index() == LogIndex(1));
  CHECK(c.node(5).applied_data().empty());

  c.set_filter(nullptr);
  c.run_ticks(3);
  CHECK(c.node(5).applied_data() == std::vector<std::string>{"x", "y"});
}

TEST_CASE("raft bug #3: a stale AppendEntries does not truncate acknowledged entries") {
  scenario_bug3_stale_append_keeps_acked_entries();
}

TEST_CASE("raft bug #3: a conflicting suffix below the commit index is refused") {
  scenario_bug3_conflict_below_commit_refused();
}

TEST_CASE("raft bug #3: a conflict removes the whole stale tail, not just the first entry") {
  ClusterOptions o = figure_3_7_options();
  Cluster c(5, o);
  c.elect(1);
  // Node 5 holds two entries of term 1 that never commit.
  c.partition({1, 5}, {2, 3, 4});
  REQUIRE(c.propose(1, "stale-a").is_ok());
  REQUIRE(c.propose(1, "stale-b").is_ok());
  c.stabilize();
  REQUIRE(c.g(5).last_index() == LogIndex(3));
  c.crash(1);
  c.isolate(5);
  c.elect(2);
  REQUIRE(c.propose(2, "x").is_ok());
  c.stabilize();
  // Only the leader's first entry (2, term 2) reaches node 5: it conflicts with (2, term 1), so
  // (3, term 1) after it must go too, though the message says nothing about index 3.
  c.heal();
  c.set_filter([](const Message& m) {
    return !(m.type == MessageType::kAppend && m.to == NodeId(5) && carries_index(m, LogIndex(3)));
  });
  c.tick(2);
  c.stabilize();
  CHECK(c.g(5).term_at(LogIndex(2)) == c.g(2).term());
  CHECK(c.g(5).last_index() == LogIndex(2));
  CHECK(c.node(5).storage->last_index() == LogIndex(2));
  c.set_filter(nullptr);
  c.run_ticks(2);
  CHECK(c.node(5).applied_data() == std::vector<std::string>{"x"});
}

TEST_CASE("raft bug #3: a compacted prev index counts as matching, not as a conflict") {
  Cluster c(3);
  c.elect(1);
  for (const char* d : {"a", "b", "c"}) REQUIRE(c.propose(1, d).is_ok());
  c.stabilize();
  c.compact(2, 3);
  REQUIRE(c.g(2).term_at(LogIndex(1)) == std::nullopt);
  // A replayed append from the current leader whose prev index (1) node 2 no longer stores.
  Entry a = stored_entry(c, 1, 2);
  Entry b = stored_entry(c, 1, 3);
  c.deliver(append_msg(1, 2, c.g(1).term(), LogIndex(1), Term(1), {a, b}, LogIndex(1)));
  c.process_readys();
  std::vector<Message> resp = c.take(
      [](const Message& m) { return m.from == NodeId(2) && m.type == MessageType::kAppendResp; });
  REQUIRE(resp.size() == 1);
  CHECK_FALSE(resp[0].reject);
  CHECK(resp[0].index >= LogIndex(3));
  CHECK(c.g(2).last_index() == LogIndex(4));
  CHECK(c.g(2).commit_index() == LogIndex(4));
  // Replication continues normally on top of the compacted prefix.
  REQUIRE(c.propose(1, "d").is_ok());
  c.stabilize();
  CHECK(c.node(2).applied_data() == std::vector<std::string>{"a", "b", "c", "d"});
}
