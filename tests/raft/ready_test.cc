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
