// Subtle Raft bugs seen by clients: #10 (disruptive servers), #12 (stale reads) and #14
// (duplicate application of a client command).
#include <doctest/doctest.h>

#include <algorithm>

#include "bugs_scenarios.h"

using namespace raftd;
using namespace raftd::raft;
using namespace raftd::raft::test;

namespace {

// Ticks and stabilizes the whole cluster `rounds` times, requiring after every round that node
// `leader` still leads in term `term` and that no live node moved past `term`.
void require_undisturbed(Cluster& c, uint64_t leader, Term term, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    c.tick_all();
    c.stabilize();
    REQUIRE(c.g(leader).role() == Role::kLeader);
    for (uint64_t id : c.ids()) {
      if (c.node(id).up()) REQUIRE(c.g(id).term() == term);
    }
  }
}

size_t count_of(const std::vector<std::string>& v, const std::string& x) {
  return static_cast<size_t>(std::count(v.begin(), v.end(), x));
}

}  // namespace

TEST_CASE("raft bug #10: PreVote and CheckQuorum keep a partitioned node from disrupting") {
  Cluster c(3);
  c.elect(1);
  const Term term = c.g(1).term();
  SUBCASE("a node cut off from everyone rejoins without raising the term") {
    c.isolate(3);
    require_undisturbed(c, 1, term, 60);
    CHECK(c.g(3).role() == Role::kPreCandidate);  // it tried, without moving its term
    c.heal();
    require_undisturbed(c, 1, term, 20);
    CHECK(c.g(3).leader() == NodeId(1));
  }
  SUBCASE("a node that cannot hear the leader but reaches a follower") {
    c.drop(1, 3);
    c.drop(3, 1);
    // Node 2 still hears from the leader: it ignores node 3's pre-votes (the lease).
    require_undisturbed(c, 1, term, 60);
    c.heal();
    require_undisturbed(c, 1, term, 20);
    CHECK(c.g(3).leader() == NodeId(1));
  }
  SUBCASE("a removed node that never learned of its removal") {
    c.isolate(3);
    REQUIRE(c.propose_conf_change(1, cc_remove(3)).is_ok());
    c.stabilize();
    REQUIRE(c.g(2).conf_state().voters == node_ids({1, 2}));
    c.heal();  // node 3 still believes it is a voter; nobody sends it anything any more
    require_undisturbed(c, 1, term, 60);
  }
  SUBCASE("a leader cut off from the quorum steps down (no stale leader lingers)") {
    c.isolate(1);
    for (int i = 0; i < 25; ++i) {
      c.tick(1);
      c.stabilize();
    }
    CHECK(c.g(1).role() != Role::kLeader);
    CHECK(c.propose(1, "late").status().code() == Code::kUnavailable);
  }
}

TEST_CASE("raft bug #12: a new leader serves ReadIndex only after committing in its term") {
  scenario_bug12_no_read_before_commit_in_term();
}

TEST_CASE("raft bug #12: a deposed leader does not serve reads") {
  scenario_bug12_deposed_leader_serves_no_read();
}

TEST_CASE("raft bug #12: a read through a follower waits for the leader's confirmation") {
  scenario_bug12_follower_read_waits_for_quorum();
}

// Bug #14 at the core level. Client sessions and the Idempotency-Key (a client retrying a
// proposal whose first attempt DID commit must get the first result, not a second application)
// are the node layer's duty and are tested there. What the core owes them: a replica never hands
// an entry out twice (also across restarts: entries up to the application's applied index are not
// repeated), and a proposal's (index, term) tells for certain whether it was applied, so a
// lost proposal can be retried without risk of a double application.
TEST_CASE("raft bug #14: entries are applied once, and a lost proposal is known to be lost") {
  SUBCASE("a restart resumes after the application's applied index") {
    Cluster c(3);
    c.elect(1);
    for (const char* d : {"a", "b", "c"}) REQUIRE(c.propose(1, d).is_ok());
    c.stabilize();
    c.crash(2);
    Node& n = c.node(2);
    const LogIndex applied(3);  // the application durably applied the no-op, "a" and "b"
    Group g(n.config, *n.storage, BootState{n.durable_hard_state, n.storage->snapshot(), applied});
    std::vector<Entry> handed;
    while (g.has_ready()) {
      Ready rd = g.ready();
      handed.insert(handed.end(), rd.committed_entries.begin(), rd.committed_entries.end());
      g.advance(rd);
    }
    REQUIRE(handed.size() == 1);
    CHECK(handed[0].index == LogIndex(4));
    CHECK(handed[0].data == "c");
  }
  SUBCASE("a proposal overwritten after a leader change is never applied; its retry once") {
    ClusterOptions o;
    o.check_quorum = false;
    Cluster c(3, o);
    c.elect(1);
    c.isolate(1);
    Result<LogIndex> lost = c.propose(1, "w");  // accepted by a leader that is cut off
    REQUIRE(lost.is_ok());
    const Term lost_term = c.g(1).term();
    campaign_until_leader(c, 2);
    c.heal();
    c.run_ticks(3);
    // The entry at that index is not the proposal: the client is told to retry ...
    REQUIRE(c.applied_record().contains(lost.value().value()));
    CHECK(c.applied_record().at(lost.value().value()).term != lost_term);
    // ... and the retry is applied exactly once, everywhere.
    REQUIRE(c.propose(2, "w").is_ok());
    c.stabilize();
    for (uint64_t id : {1, 2, 3}) CHECK(count_of(c.node(id).applied_data(), "w") == 1);
  }
}
