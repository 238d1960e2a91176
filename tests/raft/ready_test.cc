// Group::ready(Ready*): a Ready kept by the driver is refilled, never carried over, and its
// message lists trade buffers with the core's (no allocation in the steady state), except that a
// quiesced group, or one handed an unusually large list, keeps none.
#include <doctest/doctest.h>

#include "harness.h"

using namespace raftd;
using namespace raftd::raft;
using raftd::raft::test::Cluster;
using raftd::raft::test::ClusterOptions;

namespace {

// Ticks node 1 (an idle leader) until its next heartbeat round is waiting in a Ready.
void tick_to_heartbeats(Cluster& c) {
  for (int i = 0; i < 50 && !c.g(1).has_ready(); ++i) c.g(1).tick();
  REQUIRE(c.g(1).has_ready());
}

}  // namespace

TEST_CASE("raft ready: a kept Ready carries nothing of the previous one over") {
  Cluster c(3);
  c.elect(1);
  c.stabilize();
  c.run_ticks(1);
  Ready rd;
  rd.hard_state = HardState{Term(9), NodeId(2), LogIndex(7)};
  rd.soft_state = SoftState{NodeId(3), Role::kFollower, true};
  rd.snapshot = Snapshot{};
  rd.entries = {Entry{Term(9), LogIndex(8), EntryType::kNormal, "stale entry"}};
  rd.committed_entries = {Entry{Term(9), LogIndex(7), EntryType::kNormal, "stale commit"}};
  rd.messages.resize(3);
  rd.messages_after_persist.resize(2);
  rd.read_states = {ReadState{}};
  rd.snapshot_requests = {NodeId(3)};
  tick_to_heartbeats(c);
  c.g(1).ready(&rd);
  // Only this tick's heartbeats: no hard or soft state change, nothing to write or apply.
  CHECK_FALSE(rd.hard_state);
  CHECK_FALSE(rd.soft_state);
  CHECK_FALSE(rd.snapshot);
  CHECK(rd.entries.empty());
  CHECK(rd.committed_entries.empty());
  CHECK(rd.messages_after_persist.empty());
  CHECK(rd.read_states.empty());
  CHECK(rd.snapshot_requests.empty());
  REQUIRE(rd.messages.size() == 2);
  for (const Message& m : rd.messages) CHECK(m.type == MessageType::kHeartbeat);
  c.g(1).advance(rd);
  CHECK(c.g(1).check_invariants().is_ok());
}

TEST_CASE("raft ready: a writing group fills the message list the driver lent it") {
  Cluster c(3);
  c.elect(1);
  c.stabilize();
  Ready rd;
  rd.messages.reserve(16);
  const Message* lent = rd.messages.data();
  REQUIRE(c.propose(1, "w").is_ok());
  c.g(1).ready(&rd);
  REQUIRE_FALSE(rd.entries.empty());
  CHECK(rd.messages.size() == 2);     // the appends
  CHECK(rd.messages.data() != lent);  // the core's own list came out, ours went in
  CHECK(c.g(1).message_capacity() >= 16);
  c.handle_ready(c.node(1), rd);
  REQUIRE(c.propose(1, "x").is_ok());
  c.g(1).ready(&rd);
  REQUIRE_FALSE(rd.entries.empty());
  CHECK(rd.messages.data() == lent);  // the next appends were built in our buffer
  CHECK(rd.messages.capacity() >= 16);
  c.handle_ready(c.node(1), rd);
  c.stabilize();
  for (uint64_t id : {1, 2, 3}) CHECK(c.g(id).commit_index() == c.g(1).last_index());
}

TEST_CASE("raft ready: an unusually large lent list is not kept") {
  Cluster c(3);
  c.elect(1);
  c.stabilize();
  Ready rd;
  rd.messages.reserve(10'000);
  REQUIRE(c.propose(1, "w").is_ok());
  c.g(1).ready(&rd);
  REQUIRE_FALSE(rd.entries.empty());
  CHECK(c.g(1).message_capacity() < 10'000);
  c.handle_ready(c.node(1), rd);
  c.stabilize();
}

TEST_CASE("raft ready: idle groups keep no message buffers, heartbeating or quiesced") {
  // (Heartbeating: kQuietReadiesKept = 8 Readys without entries in a row; one tick per
  // heartbeat here.)
  for (uint32_t quiesce : {0u, 5u}) {
    CAPTURE(quiesce);
    ClusterOptions o;
    o.quiesce_after_ticks = quiesce;
    Cluster c(3, o);
    c.elect(1);
    for (int round = 0; round < 2; ++round) {
      REQUIRE(c.propose(1, "a").is_ok());
      c.stabilize();
      // Writing: the harness drives every Ready through one kept Ready, so buffers circulate.
      size_t kept = 0;
      for (uint64_t id : {1, 2, 3}) kept += c.g(id).message_capacity();
      CHECK(kept > 0);
      // Still writing a moment ago: heartbeat Readys keep the buffers for a while.
      c.run_ticks(2);
      if (quiesce == 0) CHECK(c.g(1).message_capacity() > 0);
      c.run_ticks(30);
      for (uint64_t id : {1, 2, 3}) {
        CHECK(c.g(id).quiesced() == (quiesce != 0));
        CHECK(c.g(id).message_capacity() == 0);
        CHECK(c.g(id).commit_index() == c.g(1).last_index());
      }
    }
  }
}

// raft.h "Lazy commit".
namespace {

// The node's hard states from the `from`-th on, each checked against the one before it: a lazy
// one changed only the commit index, forward.
int count_lazy(const raftd::raft::test::Node& n, size_t from) {
  int lazy = 0;
  for (size_t i = std::max<size_t>(from, 1); i < n.hard_states.size(); ++i) {
    const auto& [prev, prev_lazy] = n.hard_states[i - 1];
    const auto& [hs, is_lazy] = n.hard_states[i];
    if (!is_lazy) continue;
    ++lazy;
    CHECK(hs.term == prev.term);
    CHECK(hs.vote == prev.vote);
    CHECK(hs.commit > prev.commit);
  }
  return lazy;
}

}  // namespace

TEST_CASE("raft ready: a commit index moved over plain entries is lazy; term and vote are not") {
  Cluster c(3);
  c.elect(1);
  c.stabilize();
  for (uint64_t id = 1; id <= 3; ++id) {
    // The election: every hard state that changed term or vote was written at once.
    const auto& hs = c.node(id).hard_states;
    for (size_t i = 1; i < hs.size(); ++i) {
      if (hs[i].first.term != hs[i - 1].first.term || hs[i].first.vote != hs[i - 1].first.vote) {
        CHECK_FALSE(hs[i].second);
      }
    }
  }
  std::vector<size_t> mark;
  for (uint64_t id = 1; id <= 3; ++id) mark.push_back(c.node(id).hard_states.size());
  for (int i = 0; i < 5; ++i) {
    REQUIRE(c.propose(1, "x" + std::to_string(i)).is_ok());
    c.stabilize();
  }
  for (uint64_t id = 1; id <= 3; ++id) {
    INFO("node ", id);
    // The leader learns each commit on an ack, a follower on the next append or heartbeat: a
    // Ready with no entries, so the hard state is lazy (five commits, five lazy hard states
    // on the leader at least).
    const int lazy = count_lazy(c.node(id), mark[id - 1]);
    CHECK(lazy >= (id == 1 ? 5 : 1));
  }
}

TEST_CASE("raft ready: a commit index moved over a configuration change is not lazy") {
  Cluster c(3);
  c.elect(1);
  c.stabilize();
  REQUIRE(c.propose(1, "before").is_ok());
  c.stabilize();
  std::vector<size_t> mark;
  for (uint64_t id = 1; id <= 3; ++id) mark.push_back(c.node(id).hard_states.size());
  ConfChange cc;
  cc.changes = {ConfChangeItem{ConfChangeType::kAddLearner, NodeId(4)}};
  Result<LogIndex> at = c.propose_conf_change(1, cc);
  REQUIRE(at.is_ok());
  c.stabilize();
  for (uint64_t id = 1; id <= 3; ++id) {
    INFO("node ", id);
    const auto& hs = c.node(id).hard_states;
    // The hard state whose commit first covers the change (and every one until the change is
    // below the previous commit) is written at once.
    bool covered = false;
    for (size_t i = mark[id - 1]; i < hs.size(); ++i) {
      if (hs[i].first.commit >= *at && hs[i - 1].first.commit < *at) {
        covered = true;
        CHECK_FALSE(hs[i].second);
      }
    }
    CHECK(covered);
  }
  // Past the change, commits are lazy again.
  for (uint64_t id = 1; id <= 3; ++id) mark[id - 1] = c.node(id).hard_states.size();
  REQUIRE(c.propose(1, "after").is_ok());
  c.stabilize();
  CHECK(count_lazy(c.node(1), mark[0]) >= 1);
}

TEST_CASE("raft ready: after a restart, commits over the log it booted with are not lazy") {
  Cluster c(3);
  c.elect(1);
  c.stabilize();
  // Node 3 holds entries its durable commit index does not cover when it crashes: it may have
  // booted with configuration changes among them, which the core does not read at boot.
  c.set_manual_persist(3, true);
  REQUIRE(c.propose(1, "a").is_ok());
  c.stabilize();
  REQUIRE(c.persist_one(3));  // the entries; the hard state committing them is lost below
  const LogIndex booted_last = c.node(3).storage->last_index();
  REQUIRE(c.node(3).durable_hard_state.commit < booted_last);
  const LogIndex booted_commit = c.node(3).durable_hard_state.commit;
  c.crash(3);
  c.set_manual_persist(3, false);
  c.restart(3);
  const size_t mark = c.node(3).hard_states.size();
  // Heartbeats (no entries to write) carry the commit index over the booted log.
  c.run_ticks(5);
  const auto& hs = c.node(3).hard_states;
  bool crossed = false;
  for (size_t i = mark; i < hs.size(); ++i) {
    const LogIndex prev = i == mark ? booted_commit : hs[i - 1].first.commit;
    if (prev < booted_last && hs[i].first.commit >= booted_last) {
      crossed = true;
      CHECK_FALSE(hs[i].second);
    }
  }
  CHECK(crossed);
}
