// Randomized fault schedules over the harness (a small, in-suite cousin of the simulator):
// message loss, duplication and reordering, partitions, crashes with lost unsynced writes,
// restarts, compaction. Safety is checked after every input (harness); at the end, with faults
// healed, the group must elect a leader and commit.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <random>

#include "harness.h"

using namespace raftd;
using namespace raftd::raft;
using raftd::raft::test::Cluster;
using raftd::raft::test::ClusterOptions;

namespace {

// Steps per seed and seeds per configuration: enough to cover elections under churn while the
// whole file stays well under a second per configuration on a loaded machine.
constexpr int kSteps = 1500;
constexpr uint64_t kSeeds = 60;
// Simulated ticks a healed cluster gets to elect a leader and commit (many election timeouts).
constexpr int kLivenessTicks = 400;

// Seeds per configuration; RAFTD_CHAOS_SEEDS=N runs N instead (for long manual runs).
uint64_t seed_count() {
  const char* env = std::getenv("RAFTD_CHAOS_SEEDS");
  if (env == nullptr) return kSeeds;
  uint64_t n = std::strtoull(env, nullptr, 10);
  return n == 0 ? kSeeds : n;
}

// A random membership change for the current configuration `cs` of the group's nodes 1..nodes:
// remove a member, add a node as voter (new or a learner being promoted) or as learner (new or
// a voter being demoted). Never removes the last voter.
ConfChange random_conf_change(const ConfState& cs, size_t nodes, std::mt19937_64& rng) {
  NodeId n(1 + rng() % nodes);
  bool voter = std::find(cs.voters.begin(), cs.voters.end(), n) != cs.voters.end();
  ConfChange cc;
  switch (rng() % 3) {
    case 0:
      if (!(voter && cs.voters.size() == 1)) cc.changes.push_back({ConfChangeType::kRemove, n});
      break;
    case 1: cc.changes.push_back({ConfChangeType::kAddVoter, n}); break;
    default:
      if (!(voter && cs.voters.size() == 1)) {
        cc.changes.push_back({ConfChangeType::kAddLearner, n});
      }
      break;
  }
  return cc;
}

void run(uint64_t seed, size_t nodes, ClusterOptions opts, bool membership = false) {
  CAPTURE(seed);
  std::mt19937_64 rng(seed);
  auto pick = [&](uint64_t n) { return rng() % n; };
  Cluster c(nodes, opts);
  for (uint64_t id = 1; id <= nodes; ++id) c.set_manual_persist(id, true);
  std::map<uint64_t, uint64_t> leader_of_term;
  int proposals = 0;
  for (int step = 0; step < kSteps; ++step) {
    uint64_t id = 1 + pick(nodes);
    switch (pick(20)) {
      case 0:
        if (pick(4) == 0)
          c.heal();
        else
          c.isolate(id);
        break;
      case 1:
        if (c.node(id).up() && pick(8) == 0) c.crash(id);
        break;
      case 2:
        if (!c.node(id).up()) c.restart(id);
        break;
      case 3:
        if (c.node(id).up() && c.g(id).applied_index() > c.node(id).storage->snapshot().index + 1 &&
            pick(3) == 0) {
          (void)c.try_compact(id, c.g(id).applied_index().value() - 1);
        }
        break;
      case 4:
      case 5:
      case 6:
        if (c.node(id).up() && c.g(id).role() == Role::kLeader) {
          (void)c.propose(id, "p" + std::to_string(proposals++));
        }
        break;
      case 7:
        // Lose a few random messages.
        for (size_t k = 0; k < c.queue().size(); ++k) {
          if (pick(3) == 0) c.queue()[k].to = NodeId(99);  // dropped at delivery (no such node)
        }
        break;
      case 8:
        // Duplicate a message (retransmission).
        if (!c.queue().empty()) c.queue().push_back(c.queue()[pick(c.queue().size())]);
        break;
      case 9:
        // Reorder what is in flight.
        std::shuffle(c.queue().begin(), c.queue().end(), rng);
        break;
      case 10:
        if (membership && c.node(id).up() && c.g(id).role() == Role::kLeader) {
          ConfChange cc = random_conf_change(c.g(id).conf_state(), nodes, rng);
          if (!cc.changes.empty()) (void)c.propose_conf_change(id, cc);
        }
        break;
      default:
        if (c.node(id).up()) c.tick(id);
        break;
    }
    c.process_readys();
    for (uint64_t n = 1; n <= nodes; ++n) {
      if (c.node(n).up() && pick(2) == 0) c.persist(n);
    }
    c.deliver_all();
    for (uint64_t n = 1; n <= nodes; ++n) {
      if (!c.node(n).up() || c.g(n).role() != Role::kLeader) continue;
      auto known = leader_of_term.emplace(c.g(n).term().value(), n).first;
      uint64_t term = known->first;
      REQUIRE_MESSAGE(known->second == n, "two leaders in term ", term);
    }
  }
  // Heal everything: a leader must emerge and commit a new entry.
  c.heal();
  for (uint64_t n = 1; n <= nodes; ++n) {
    if (!c.node(n).up()) c.restart(n);
    c.set_manual_persist(n, false);
    c.persist(n);
  }
  // A proposal can still be lost to a leader change; keep proposing until one is applied by all.
  auto everyone_applied_final = [&] {
    uint64_t l = c.leader();
    if (l == 0) return false;
    for (NodeId member : raftd::raft::test::members(c.g(l).conf_state())) {
      uint64_t n = member.value();
      std::vector<std::string> d = c.node(n).applied_data();
      if (std::find(d.begin(), d.end(), "final") == d.end()) return false;
    }
    return true;
  };
  Term proposed_in;
  for (int i = 0; i < kLivenessTicks && !everyone_applied_final(); ++i) {
    uint64_t l = c.leader();
    if (l != 0 && c.g(l).term() != proposed_in && c.propose(l, "final").is_ok()) {
      proposed_in = c.g(l).term();
    }
    c.run_ticks(1);
  }
  CHECK(everyone_applied_final());
}

}  // namespace

TEST_CASE("raft chaos: 3 nodes, PreVote + CheckQuorum") {
  for (uint64_t seed = 1; seed <= seed_count(); ++seed) run(seed, 3, {});
}

TEST_CASE("raft chaos: 5 nodes, plain Raft (no PreVote, no CheckQuorum), small windows") {
  ClusterOptions o;
  o.pre_vote = false;
  o.check_quorum = false;
  o.max_inflight_msgs = 2;
  o.max_msg_bytes = 64;
  for (uint64_t seed = 100; seed < 100 + seed_count(); ++seed) run(seed, 5, o);
}

TEST_CASE("raft chaos: 3 nodes with quiescing") {
  ClusterOptions o;
  o.quiesce_after_ticks = 3;
  for (uint64_t seed = 200; seed < 200 + seed_count(); ++seed) run(seed, 3, o);
}

TEST_CASE("raft chaos: 3 nodes with membership changes") {
  for (uint64_t seed = 300; seed < 300 + seed_count(); ++seed) run(seed, 3, {}, true);
}

TEST_CASE("raft chaos: 3 nodes with membership changes, plain Raft, small windows") {
  ClusterOptions o;
  o.pre_vote = false;
  o.check_quorum = false;
  o.max_inflight_msgs = 2;
  o.max_msg_bytes = 64;
  for (uint64_t seed = 400; seed < 400 + seed_count(); ++seed) run(seed, 3, o, true);
}

TEST_CASE("raft chaos: 5 nodes with membership changes and quiescing") {
  ClusterOptions o;
  o.quiesce_after_ticks = 3;
  for (uint64_t seed = 500; seed < 500 + seed_count(); ++seed) run(seed, 5, o, true);
}
