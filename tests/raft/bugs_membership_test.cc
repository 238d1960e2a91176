// Subtle Raft bugs about membership: #6 (the single-server change errata: a new leader commits in
// its term first; one change at a time), #7 (an uncommitted configuration never sticks; restart
// rebuilds the configuration), #8 (snapshots carry the configuration as of their index), #9 (a
// removed leader steps down, not earlier), #11 (learners vote when asked) and #17 (removals in a
// two-member group).
//
// The core's semantics (raft.h): a configuration change takes effect when its entry is APPLIED,
// and a leader accepts a change only after committing an entry of its term and applying every
// earlier change. The tests check those semantics, not the thesis's append-time variant.
#include <doctest/doctest.h>

#include "bugs_util.h"

using namespace raftd;
using namespace raftd::raft;
using namespace raftd::raft::test;

namespace {

ClusterOptions no_lease() {
  ClusterOptions o;
  o.check_quorum = false;  // elections below must not wait for followers' leases to expire
  return o;
}

bool drops_appends_from(const Message& m, uint64_t from) {
  return m.type == MessageType::kAppend && m.from == NodeId(from);
}

}  // namespace

TEST_CASE("raft bug #6: a new leader accepts a conf change only after committing in its term") {
  Cluster c(3, no_lease());
  c.elect(1);
  SUBCASE("the previous leader's change is still in flight") {
    // Node 1's change reaches node 2 but node 1 never learns it: it stays uncommitted.
    c.isolate(3);
    c.drop(2, 1);
    REQUIRE(c.propose_conf_change(1, cc_add_learner(4)).is_ok());
    c.stabilize();
    REQUIRE(c.g(2).last_index() == LogIndex(2));
    REQUIRE(c.g(2).commit_index() == LogIndex(1));
    c.crash(1);
  }
  SUBCASE("nothing in flight; only the new leader's no-op is uncommitted") { c.crash(1); }
  c.heal();
  c.set_filter([](const Message& m) { return !drops_appends_from(m, 2); });
  campaign_until_leader(c, 2);
  Result<LogIndex> early = c.propose_conf_change(2, cc_add_learner(5));
  REQUIRE_FALSE(early.is_ok());
  CHECK(early.status().code() == Code::kUnavailable);

  c.set_filter(nullptr);
  c.tick(2);
  c.stabilize();
  REQUIRE(c.g(2).commit_index() == c.g(2).last_index());
  Result<LogIndex> first = c.propose_conf_change(2, cc_add_learner(5));
  REQUIRE(first.is_ok());
  // At most one change pending: the next waits until the first is applied.
  Result<LogIndex> second = c.propose_conf_change(2, cc_add_learner(6));
  REQUIRE_FALSE(second.is_ok());
  CHECK(second.status().code() == Code::kUnavailable);
  c.stabilize();
  REQUIRE(c.propose_conf_change(2, cc_add_learner(6)).is_ok());
  c.stabilize();
  for (uint64_t id : {2, 3}) {
    std::vector<NodeId> learners = c.g(id).conf_state().learners;
    CHECK(std::find(learners.begin(), learners.end(), NodeId(5)) != learners.end());
    CHECK(std::find(learners.begin(), learners.end(), NodeId(6)) != learners.end());
  }
}

TEST_CASE("raft bug #7: an uncommitted configuration entry that is truncated never takes effect") {
  Cluster c(3, no_lease());
  c.elect(1);
  c.isolate(1);
  Result<LogIndex> removal = c.propose_conf_change(1, cc_remove(3));
  REQUIRE(removal.is_ok());
  c.stabilize();
  CHECK(c.g(1).conf_state().voters == node_ids({1, 2, 3}));  // appended, not committed

  campaign_until_leader(c, 2);
  REQUIRE(c.propose(2, "x").is_ok());
  c.stabilize();
  c.heal();
  c.run_ticks(3);
  // Node 1's removal entry was replaced by node 2's log; node 3 is still a voter everywhere.
  CHECK(c.g(1).role() == Role::kFollower);
  CHECK(c.g(1).term_at(removal.value()) == c.g(2).term());
  for (uint64_t id : {1, 2, 3}) CHECK(c.g(id).conf_state().voters == node_ids({1, 2, 3}));
  CHECK(c.node(1).applied_data() == std::vector<std::string>{"x"});
  // And node 3 can still lead (node 1's vote counts for it).
  c.crash(2);
  campaign_until_leader(c, 3);
}

TEST_CASE("raft bug #7: a restart rebuilds the configuration from the snapshot and the log") {
  Cluster c(3);
  c.elect(1);
  Result<LogIndex> change = c.propose_conf_change(1, cc_add_learner(4));
  REQUIRE(change.is_ok());
  c.stabilize();
  REQUIRE(c.propose(1, "a").is_ok());
  c.stabilize();
  const std::vector<NodeId> learner4 = node_ids({4});
  REQUIRE(c.g(2).conf_state().learners == learner4);

  SUBCASE("from the log, when the application's applied index is past the change") {
    c.crash(2);
    Node& n = c.node(2);
    HardState hs = n.durable_hard_state;
    REQUIRE(hs.commit > change.value());
    Group g(n.config, *n.storage, BootState{hs, n.storage->snapshot(), hs.commit});
    CHECK(g.conf_state().learners == learner4);
    CHECK(g.conf_state().voters == node_ids({1, 2, 3}));
  }
  SUBCASE("from the snapshot, when the change is compacted") {
    c.compact(2, c.g(2).applied_index().value());
    c.crash(2);
    c.restart(2);
    CHECK(c.g(2).conf_state().learners == learner4);
  }
  SUBCASE("by applying the committed entries again") {
    c.crash(2);
    c.restart(2);
    c.stabilize();
    CHECK(c.g(2).conf_state().learners == learner4);
  }
}

TEST_CASE("raft bug #8: a snapshot carries the configuration as of its index") {
  Cluster c(3);
  c.elect(1);
  REQUIRE(c.propose(1, "a").value() == LogIndex(2));
  REQUIRE(c.propose_conf_change(1, cc_add_learner(4)).value() == LogIndex(3));
  c.stabilize();
  REQUIRE(c.propose(1, "b").value() == LogIndex(4));
  c.stabilize();
  REQUIRE(c.propose_conf_change(1, cc_remove(4)).value() == LogIndex(5));
  c.stabilize();
  REQUIRE(c.g(1).applied_index() == LogIndex(5));
  const std::vector<NodeId> none;
  const std::vector<NodeId> learner4 = node_ids({4});
  CHECK(c.g(1).snapshot_meta_at(LogIndex(2)).value().conf_state.learners == none);
  CHECK(c.g(1).snapshot_meta_at(LogIndex(3)).value().conf_state.learners == learner4);
  CHECK(c.g(1).snapshot_meta_at(LogIndex(4)).value().conf_state.learners == learner4);
  CHECK(c.g(1).snapshot_meta_at(LogIndex(5)).value().conf_state.learners == none);
  // Compaction keeps the configuration as of the compaction point.
  c.compact(1, 4);
  CHECK(c.g(1).snapshot_meta_at(LogIndex(4)).value().conf_state.learners == learner4);
  CHECK(c.g(1).snapshot_meta_at(LogIndex(5)).value().conf_state.learners == none);
  // Nothing beyond the applied index (an uncommitted configuration) can be snapshotted.
  CHECK_FALSE(c.g(1).snapshot_meta_at(LogIndex(6)).is_ok());
}

TEST_CASE("raft bug #8: installing a snapshot replaces the follower's configuration") {
  Cluster c(3);
  c.elect(1);
  c.isolate(3);
  REQUIRE(c.propose_conf_change(1, cc_add_learner(4)).is_ok());
  c.stabilize();
  REQUIRE(c.propose(1, "a").is_ok());
  REQUIRE(c.propose(1, "b").is_ok());
  c.stabilize();
  // Everything node 3 misses, including the change, is compacted away on the others.
  for (uint64_t id : {1, 2}) c.compact(id, c.g(id).applied_index().value());
  c.add_node(NodeId(4));  // learner 4 appears now: empty log, empty configuration
  c.heal();
  c.run_ticks(5);
  for (uint64_t id : {3, 4}) {
    CHECK(c.g(id).conf_state().voters == node_ids({1, 2, 3}));
    CHECK(c.g(id).conf_state().learners == node_ids({4}));
  }
  REQUIRE(c.propose(1, "c").is_ok());
  c.run_ticks(2);
  CHECK(c.g(3).applied_index() == c.g(1).applied_index());
  CHECK(c.g(4).applied_index() == c.g(1).applied_index());
}

TEST_CASE("raft bug #9: a removed leader steps down once the removal is applied, not before") {
  Cluster c(3);
  c.elect(1);
  REQUIRE(c.propose_conf_change(1, cc_remove(1)).is_ok());
  c.process_readys();
  CHECK(c.g(1).role() == Role::kLeader);  // appended only: it still manages the change
  c.stabilize();
  // The removal committed (node 1 led it to commitment), then node 1 stepped down.
  CHECK(c.g(1).role() == Role::kFollower);
  for (uint64_t id : {2, 3}) CHECK(c.g(id).conf_state().voters == node_ids({2, 3}));
  c.run_ticks(60);
  uint64_t leader = c.leader();
  CHECK((leader == 2 || leader == 3));
  CHECK(c.g(1).role() == Role::kFollower);  // a removed node does not campaign
  REQUIRE(leader != 0);
  REQUIRE(c.propose(leader, "after").is_ok());
  c.stabilize();
  for (uint64_t id : {2, 3}) CHECK(c.node(id).applied_data() == std::vector<std::string>{"after"});
}

TEST_CASE("raft bug #11: a learner that is a voter in the candidate's configuration votes") {
  ClusterOptions o;
  o.learners = {3};
  Cluster c(2, o);
  c.elect(1);
  // Node 3 is promoted while cut off: nodes 1 and 2 know it is a voter, node 3 does not.
  c.isolate(3);
  REQUIRE(c.propose_conf_change(1, cc_add_voter(3)).is_ok());
  c.stabilize();
  REQUIRE(c.g(2).conf_state().voters == node_ids({1, 2, 3}));
  REQUIRE(c.g(3).conf_state().learners == node_ids({3}));
  // Node 1 dies. Node 2 needs node 3's vote, and node 3 still believes it is a learner.
  c.crash(1);
  c.heal();
  for (int i = 0; i < 3 * 10; ++i) c.tick(3);  // three election timeouts: node 3's lease expires
  c.stabilize();
  campaign_until_leader(c, 2);
  REQUIRE(c.propose(2, "after").is_ok());
  c.stabilize();
  CHECK(c.node(3).applied_data() == std::vector<std::string>{"after"});
  CHECK(c.g(3).conf_state().voters == node_ids({1, 2, 3}));
}

// Bug #17: two-member groups. The core's behaviour (raft.h): a change commits under
// the configuration that is active before it (apply-time semantics), so a removal in a group of
// two needs both members; the survivor then runs alone. Operators should run three voters: while
// the member being removed is down, the group cannot commit anything.
TEST_CASE("raft bug #17: removing one of two members") {
  SUBCASE("removing the live follower: the leader then commits alone") {
    Cluster c(2);
    c.elect(1);
    REQUIRE(c.propose_conf_change(1, cc_remove(2)).is_ok());
    c.stabilize();
    CHECK(c.g(1).conf_state().voters == node_ids({1}));
    c.crash(2);
    REQUIRE(c.propose(1, "solo").is_ok());
    c.stabilize();
    CHECK(c.node(1).applied_data() == std::vector<std::string>{"solo"});
  }
  SUBCASE("the member being removed is down: nothing commits until it returns") {
    Cluster c(2);
    c.elect(1);
    c.crash(2);
    Result<LogIndex> removal = c.propose_conf_change(1, cc_remove(2));
    REQUIRE(removal.is_ok());
    REQUIRE(c.propose(1, "x").is_ok());
    c.stabilize();
    CHECK(c.g(1).commit_index() < removal.value());
    CHECK(c.g(1).conf_state().voters == node_ids({1, 2}));
    c.run_ticks(40);  // CheckQuorum: the leader gives up leading without a quorum
    CHECK(c.g(1).role() != Role::kLeader);
    CHECK(c.g(1).commit_index() < removal.value());
    c.restart(2);
    c.run_ticks(60);
    CHECK(c.g(1).conf_state().voters == node_ids({1}));
    CHECK(c.node(1).applied_data() == std::vector<std::string>{"x"});
  }
  SUBCASE("removing the leader: the survivor finishes even if it missed the commit") {
    Cluster c(2);
    c.elect(1);
    Result<LogIndex> removal = c.propose_conf_change(1, cc_remove(1));
    REQUIRE(removal.is_ok());
    LogIndex at = removal.value();
    // Node 2 never hears from node 1 that the removal committed, nor gets its handover.
    c.set_filter([at](const Message& m) {
      return !(m.from == NodeId(1) && (m.commit >= at || m.type == MessageType::kTimeoutNow));
    });
    c.stabilize();
    REQUIRE(c.g(1).role() == Role::kFollower);
    REQUIRE(c.g(2).commit_index() < at);
    c.set_filter(nullptr);
    // Node 2 still counts node 1 as a voter; node 1, removed, still answers votes and appends.
    c.run_ticks(60);
    CHECK(c.leader() == 2);
    CHECK(c.g(2).conf_state().voters == node_ids({2}));
    c.crash(1);
    REQUIRE(c.propose(2, "alone").is_ok());
    c.stabilize();
    CHECK(c.node(2).applied_data() == std::vector<std::string>{"alone"});
  }
}
