// The Ready contract and the log: entries handed out once, hard state only when it changes,
// restart from durable state, conflicting suffixes replaced, invariants checked.
#include <doctest/doctest.h>

#include "harness.h"

using namespace raftd;
using namespace raftd::raft;
using raftd::raft::test::Cluster;

namespace {

Config config(uint64_t id) {
  Config c;
  c.id = NodeId(id);
  c.group = raftd::raft::test::kTestGroup;
  return c;
}

SnapshotMeta boot_meta(std::initializer_list<uint64_t> voters) {
  SnapshotMeta m;
  for (uint64_t v : voters) m.conf_state.voters.push_back(NodeId(v));
  return m;
}

}  // namespace

TEST_CASE("raft ready: entries and hard state are handed out once") {
  MemoryLogStorage st(boot_meta({1}));
  Group g(config(1), st, BootState{{}, st.snapshot(), LogIndex(0)});
  CHECK_FALSE(g.has_ready());
  for (int i = 0; i < 25 && g.role() == Role::kFollower; ++i) g.tick();
  REQUIRE(g.has_ready());
  Ready rd = g.ready();
  REQUIRE(rd.hard_state.has_value());
  CHECK(rd.hard_state->term == Term(1));
  CHECK(rd.hard_state->vote == NodeId(1));
  REQUIRE(rd.messages_after_persist.size() == 1);  // its own vote, released after the write
  CHECK(rd.messages_after_persist[0].to == NodeId(1));
  CHECK(rd.soft_state.has_value());
  g.advance(rd);
  CHECK_FALSE(g.has_ready());
  g.step(rd.messages_after_persist[0]);
  CHECK(g.role() == Role::kLeader);
  Ready rd2 = g.ready();
  REQUIRE(rd2.entries.size() == 1);  // the no-op
  CHECK(rd2.entries[0].type == EntryType::kEmpty);
  CHECK(rd2.committed_entries.empty());  // not durable yet
  st.append(rd2.entries);
  g.advance(rd2);
  g.on_persisted(rd2.entries.back().index, rd2.entries.back().term);
  Ready rd3 = g.ready();
  CHECK(rd3.entries.empty());
  REQUIRE(rd3.committed_entries.size() == 1);
  REQUIRE(rd3.hard_state.has_value());
  CHECK(rd3.hard_state->commit == LogIndex(1));
  g.advance(rd3);
  CHECK(g.applied_index() == LogIndex(1));
  CHECK_FALSE(g.has_ready());
  CHECK(g.check_invariants().is_ok());
}

TEST_CASE("raft restart: term, vote, log and commit survive") {
  Cluster c(3);
  c.elect(1);
  for (int i = 0; i < 4; ++i) REQUIRE(c.propose(1, "r" + std::to_string(i)).is_ok());
  c.stabilize();
  c.run_ticks(1);
  HardState before = c.g(2).hard_state();
  LogIndex last = c.g(2).last_index();
  c.crash(2);
  c.restart(2);
  CHECK(c.g(2).term() == before.term);
  CHECK(c.g(2).vote() == before.vote);
  CHECK(c.g(2).last_index() == last);
  CHECK(c.g(2).commit_index() == before.commit);
  c.stabilize();
  CHECK(c.node(2).applied_data().size() == 4);  // re-applied from the log
}

TEST_CASE("raft restart: a whole cluster restarts and keeps every committed entry") {
  Cluster c(3);
  c.elect(1);
  for (int i = 0; i < 10; ++i) REQUIRE(c.propose(1, std::to_string(i)).is_ok());
  c.stabilize();
  std::vector<std::string> committed = c.node(1).applied_data();
  for (uint64_t id : {1, 2, 3}) c.crash(id);
  for (uint64_t id : {1, 2, 3}) c.restart(id);
  for (int i = 0; i < 60 && c.leader() == 0; ++i) c.run_ticks(1);
  REQUIRE(c.leader() != 0);
  c.run_ticks(2);
  for (uint64_t id : {1, 2, 3}) CHECK(c.node(id).applied_data() == committed);
}

TEST_CASE("raft log: a follower's uncommitted conflicting suffix is replaced") {
  Cluster c(3);
  c.elect(1);
  c.isolate(1);
  REQUIRE(c.propose(1, "lost-1").is_ok());
  REQUIRE(c.propose(1, "lost-2").is_ok());
  c.stabilize();
  c.elect(2);
  REQUIRE(c.propose(2, "kept").is_ok());
  c.stabilize();
  c.heal();
  c.run_ticks(3);
  CHECK(c.g(1).role() == Role::kFollower);
  CHECK(c.node(1).applied_data() == std::vector<std::string>{"kept"});
  CHECK(c.g(1).last_index() == c.g(2).last_index());
  CHECK(c.g(1).term_at(c.g(1).last_index()) == c.g(2).term());
}

TEST_CASE("raft log: a stale append does not truncate acknowledged entries") {
  // Subtle bug #3: a reordered, older append must not cut entries the follower already has.
  Cluster c(3);
  c.elect(1);
  c.run_ticks(1);
  c.set_filter(
      [](const Message& m) { return !(m.type == MessageType::kAppend && m.to == NodeId(2)); });
  REQUIRE(c.propose(1, "a").is_ok());
  c.process_readys();
  auto first =
      c.take([](const Message& m) { return m.type == MessageType::kAppend && m.to == NodeId(2); });
  REQUIRE(c.propose(1, "b").is_ok());
  c.process_readys();
  auto second =
      c.take([](const Message& m) { return m.type == MessageType::kAppend && m.to == NodeId(2); });
  REQUIRE(first.size() == 1);
  REQUIRE(second.size() == 1);
  c.set_filter(nullptr);
  c.deliver(second[0]);  // out of order: rejected (gap), nothing lost
  c.deliver(first[0]);
  c.deliver(second[0]);
  LogIndex last = c.g(2).last_index();
  c.deliver(first[0]);  // duplicate of the older append arrives late
  CHECK(c.g(2).last_index() == last);
  c.stabilize();
  CHECK(c.node(2).applied_data() == std::vector<std::string>{"a", "b"});
}

TEST_CASE("raft invariants: a Group reports a consistent state after boot") {
  MemoryLogStorage st(boot_meta({1, 2, 3}));
  Group g(config(2), st, BootState{{}, st.snapshot(), LogIndex(0)});
  CHECK(g.check_invariants().is_ok());
  CHECK(g.role() == Role::kFollower);
  CHECK(g.leader() == kNoNode);
  CHECK_FALSE(g.progress(NodeId(1)).has_value());
}
