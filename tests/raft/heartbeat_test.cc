// Heartbeats folded into appends (raft.h): a busy leader sends no tick heartbeat to a follower
// whose append of the same interval did the heartbeat's work, and still sends it whenever the
// heartbeat carries more (an unanswered read round, a commit index, a probe, a full window).
#include <doctest/doctest.h>

#include "harness.h"

using namespace raftd;
using namespace raftd::raft;
using raftd::raft::test::Cluster;

namespace {

// Tick heartbeats node 1 sends at its next tick, left queued (then delivered by the caller).
size_t tick_heartbeats(Cluster& c) {
  const size_t before = c.queued(MessageType::kHeartbeat);
  c.tick(1);
  c.process_readys();
  return c.queued(MessageType::kHeartbeat) - before;
}

}  // namespace

TEST_CASE("raft heartbeats: an idle leader heartbeats every follower at every heartbeat tick") {
  Cluster c(3);
  c.elect(1);
  c.stabilize();
  c.run_ticks(1);  // the interval of the election's appends ends
  for (int i = 0; i < 5; ++i) {
    CHECK(tick_heartbeats(c) == 2);
    c.stabilize();
  }
}

TEST_CASE("raft heartbeats: a follower that got an append this interval gets no heartbeat") {
  Cluster c(3);
  c.elect(1);
  c.stabilize();
  c.run_ticks(1);
  for (int i = 0; i < 5; ++i) {
    REQUIRE(c.propose(1, "w").is_ok());
    c.stabilize();  // appended, committed, and the commit sent to both followers
    CHECK(tick_heartbeats(c) == 0);
    c.stabilize();
  }
  // The group keeps its leader and every follower applies every write.
  c.run_ticks(30);
  CHECK(c.g(1).role() == Role::kLeader);
  CHECK(c.g(2).commit_index() == c.g(1).commit_index());
  CHECK(c.g(3).commit_index() == c.g(1).commit_index());
  // No append in the last interval: heartbeats again.
  CHECK(tick_heartbeats(c) == 2);
}

TEST_CASE("raft heartbeats: folded heartbeats keep followers from campaigning") {
  Cluster c(3);
  c.elect(1);
  c.stabilize();
  // A write every tick for 10 election timeouts: the followers hear only appends.
  for (int i = 0; i < 100; ++i) {
    REQUIRE(c.propose(1, "w").is_ok());
    c.stabilize();
    const size_t beats = tick_heartbeats(c);
    CHECK(beats == 0);
    c.tick(2);
    c.tick(3);
    c.stabilize();
  }
  CHECK(c.g(1).role() == Role::kLeader);
  CHECK(c.g(1).term() == c.g(2).term());
  CHECK(c.g(2).leader() == NodeId(1));
  CHECK(c.g(3).leader() == NodeId(1));
}

TEST_CASE("raft heartbeats: an unanswered read round is heartbeated again despite appends") {
  Cluster c(3);
  c.elect(1);
  REQUIRE(c.propose(1, "a").is_ok());
  c.stabilize();
  c.run_ticks(1);
  // The read round's own heartbeats are lost.
  REQUIRE(c.read_index(1, 42).is_ok());
  c.process_readys();
  REQUIRE(c.take([](const Message& m) { return m.type == MessageType::kHeartbeat; }).size() == 2);
  // Appends keep flowing, yet the next tick heartbeats both followers with the round.
  REQUIRE(c.propose(1, "b").is_ok());
  c.stabilize();
  CHECK(c.node(1).read_states.empty());
  CHECK(tick_heartbeats(c) == 2);
  c.stabilize();
  REQUIRE(c.node(1).read_states.size() == 1);
  CHECK(c.node(1).read_states[0].request_id == 42);
  CHECK(c.node(1).read_states[0].ok);
}

TEST_CASE("raft heartbeats: a lost commit index reaches the follower one interval later") {
  Cluster c(3);
  c.elect(1);
  c.stabilize();
  c.run_ticks(1);
  // The empty append that tells node 3 the write's commit index is lost.
  c.set_filter([](const Message& m) {
    return !(m.type == MessageType::kAppend && m.to == NodeId(3) && m.entries.empty());
  });
  REQUIRE(c.propose(1, "w").is_ok());
  c.stabilize();
  c.set_filter(nullptr);
  REQUIRE(c.g(3).commit_index() < c.g(1).commit_index());
  // This interval's appends fold the heartbeats (the leader sent the commit index); the next
  // interval has no append, so its heartbeats carry the commit index again.
  CHECK(tick_heartbeats(c) == 0);
  c.stabilize();
  CHECK(tick_heartbeats(c) == 2);
  c.stabilize();
  CHECK(c.g(3).commit_index() == c.g(1).commit_index());
}

TEST_CASE("raft heartbeats: a follower whose answers are lost still gets its heartbeat") {
  Cluster c(3);
  c.elect(1);
  c.stabilize();
  c.run_ticks(1);
  c.drop(3, 1);  // node 3 receives the appends; its answers are lost
  REQUIRE(c.propose(1, "w").is_ok());
  c.stabilize();
  // Node 2 acknowledged: folded. Node 3 did not: its heartbeat goes.
  std::vector<Message> beats;
  c.tick(1);
  c.process_readys();
  for (const Message& m : c.queue()) {
    if (m.type == MessageType::kHeartbeat) beats.push_back(m);
  }
  REQUIRE(beats.size() == 1);
  CHECK(beats[0].to == NodeId(3));
}
