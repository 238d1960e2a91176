// Snapshots: compaction, a follower behind the compacted log gets a snapshot through the driver
// (Ready::snapshot_requests -> send_snapshot), installs it, and takes the configuration from it.
#include <doctest/doctest.h>

#include "harness.h"

using namespace raftd;
using namespace raftd::raft;
using raftd::raft::test::Cluster;

TEST_CASE("raft snapshot: a follower behind the compacted log catches up by snapshot") {
  Cluster c(3);
  c.elect(1);
  c.isolate(3);
  for (int i = 0; i < 20; ++i) REQUIRE(c.propose(1, "s" + std::to_string(i)).is_ok());
  c.stabilize();
  c.compact(1, 15);
  c.compact(2, 15);
  size_t snapshots = 0;
  c.set_filter([&](const Message& m) {
    snapshots += m.type == MessageType::kSnapshot ? 1 : 0;
    return true;
  });
  c.heal();
  c.run_ticks(5);
  CHECK(snapshots == 1);
  CHECK(c.node(3).storage->snapshot().index >= LogIndex(15));
  CHECK(c.g(3).commit_index() == c.g(1).commit_index());
  CHECK(c.g(3).applied_index() == c.g(1).applied_index());
  CHECK(c.node(3).applied_data() == c.node(1).applied_data());
  CHECK(c.g(1).progress(NodeId(3))->state == ProgressState::kReplicate);
  REQUIRE(c.propose(1, "after").is_ok());
  c.stabilize();
  CHECK(c.node(3).applied_data().back() == "after");
}

TEST_CASE("raft snapshot: the snapshot carries the configuration as of its index") {
  Cluster c(3);
  c.elect(1);
  c.add_node(NodeId(4));
  REQUIRE(c.propose_conf_change(
               1, ConfChange{ConfTransition::kAuto, {{ConfChangeType::kAddLearner, NodeId(4)}}})
              .is_ok());
  c.stabilize();
  c.isolate(4);
  for (int i = 0; i < 5; ++i) REQUIRE(c.propose(1, "x").is_ok());
  c.stabilize();
  c.run_ticks(1);
  LogIndex applied = c.g(1).applied_index();
  Result<SnapshotMeta> meta = c.g(1).snapshot_meta_at(applied);
  REQUIRE(meta.is_ok());
  CHECK(meta.value().conf_state.learners == std::vector<NodeId>{NodeId(4)});
  // The configuration before the change is still reported for an index before it.
  Result<SnapshotMeta> early = c.g(1).snapshot_meta_at(LogIndex(1));
  REQUIRE(early.is_ok());
  CHECK(early.value().conf_state.learners.empty());
  c.compact(1, applied.value());
  c.compact(2, applied.value());
  c.compact(3, applied.value());
  // Node 4 still runs with the initial configuration (it never applied the change); the
  // snapshot brings it the configuration as of the snapshot index.
  c.heal();
  c.run_ticks(5);
  CHECK(c.g(4).conf_state().learners == std::vector<NodeId>{NodeId(4)});
  CHECK(c.g(4).commit_index() == c.g(1).commit_index());
}

TEST_CASE("raft snapshot: a failed snapshot is retried") {
  Cluster c(3);
  c.elect(1);
  c.isolate(3);
  for (int i = 0; i < 5; ++i) REQUIRE(c.propose(1, "x").is_ok());
  c.stabilize();
  c.compact(1, 5);
  size_t seen = 0;
  c.set_filter([&](const Message& m) {
    if (m.type != MessageType::kSnapshot) return true;
    return ++seen > 1;  // the first attempt is lost
  });
  c.heal();
  c.tick(1);
  c.stabilize();
  // The harness reported the loss (report_snapshot(3, false)): 3 is probed again.
  REQUIRE(seen == 1);
  CHECK(c.g(1).progress(NodeId(3))->state == ProgressState::kProbe);
  CHECK(c.g(3).commit_index() < c.g(1).commit_index());
  c.run_ticks(3);
  CHECK(seen == 2);
  CHECK(c.g(3).commit_index() == c.g(1).commit_index());
  CHECK(c.g(1).progress(NodeId(3))->state == ProgressState::kReplicate);
}

TEST_CASE("raft snapshot: report_snapshot is ignored for a follower not waiting for one") {
  Cluster c(3);
  c.elect(1);
  c.stabilize();
  c.g(1).report_snapshot(NodeId(2), false);
  CHECK(c.g(1).progress(NodeId(2))->state == ProgressState::kReplicate);
  c.g(1).send_snapshot(NodeId(2), Snapshot{});  // nobody asked: ignored
  c.process_readys();
  CHECK(c.queued(MessageType::kSnapshot) == 0);
}

TEST_CASE("raft snapshot: compaction limits") {
  Cluster c(3);
  c.elect(1);
  REQUIRE(c.propose(1, "x").is_ok());
  c.stabilize();
  LogIndex applied = c.g(1).applied_index();
  CHECK(c.g(1).compact(applied + 1).status().code() == Code::kInvalidArgument);
  CHECK(c.g(1).snapshot_meta_at(applied + 1).status().code() == Code::kInvalidArgument);
  c.compact(1, applied.value());
  CHECK(c.g(1).snapshot_meta_at(LogIndex(0)).status().code() == Code::kInvalidArgument);
  Result<SnapshotMeta> m = c.g(1).snapshot_meta_at(applied);
  REQUIRE(m.is_ok());
  CHECK(m.value().term == c.g(1).term());
}

TEST_CASE("raft snapshot: a stale snapshot is answered with the commit index") {
  Cluster c(3);
  c.elect(1);
  for (int i = 0; i < 3; ++i) REQUIRE(c.propose(1, "x").is_ok());
  c.stabilize();
  c.run_ticks(1);
  Message m;
  m.type = MessageType::kSnapshot;
  m.group = raftd::raft::test::kTestGroup;
  m.from = NodeId(1);
  m.to = NodeId(2);
  m.term = c.g(1).term();
  m.snapshot = Snapshot{SnapshotMeta{LogIndex(2), Term(1), c.g(2).conf_state()}, ""};
  LogIndex last = c.g(2).last_index();
  c.deliver(m);
  CHECK(c.g(2).last_index() == last);  // nothing replaced
  c.process_readys();
  auto resp = c.take(
      [](const Message& r) { return r.type == MessageType::kAppendResp && r.from == NodeId(2); });
  REQUIRE(resp.size() == 1);
  CHECK(resp[0].index == c.g(2).commit_index());
}

namespace {

using raftd::raft::test::kTestGroup;

Message snapshot_msg(uint64_t from, uint64_t to, Term term, SnapshotMeta meta) {
  Message m;
  m.type = MessageType::kSnapshot;
  m.group = kTestGroup;
  m.from = NodeId(from);
  m.to = NodeId(to);
  m.term = term;
  m.snapshot = Snapshot{std::move(meta), "app"};
  return m;
}

// Gives node 2 the log (1..5, all of term 1) with commit 1, through a hand-made append.
void give_log_of_term1(Cluster& c) {
  std::vector<Entry> es;
  for (uint64_t i = 1; i <= 5; ++i) {
    es.push_back(Entry{Term(1), LogIndex(i), EntryType::kNormal, "t1-" + std::to_string(i)});
  }
  Message m;
  m.type = MessageType::kAppend;
  m.group = kTestGroup;
  m.from = NodeId(1);
  m.to = NodeId(2);
  m.term = Term(1);
  m.entries = es;
  m.commit = LogIndex(1);
  c.deliver(m);
  c.process_readys();
  REQUIRE(c.g(2).last_index() == LogIndex(5));
  REQUIRE(c.g(2).commit_index() == LogIndex(1));
  c.queue().clear();
}

ConfState voters_123() {
  ConfState cs;
  cs.voters = {NodeId(1), NodeId(2), NodeId(3)};
  return cs;
}

}  // namespace

TEST_CASE("raft snapshot: installing onto a conflicting log replaces the whole log") {
  Cluster c(3);
  give_log_of_term1(c);
  // A leader of term 2 whose entry 3 has term 2: entries 3..5 of node 2 conflict.
  c.deliver(snapshot_msg(3, 2, Term(2), SnapshotMeta{LogIndex(3), Term(2), voters_123()}));
  CHECK(c.g(2).last_index() == LogIndex(3));
  CHECK(c.g(2).last_term() == Term(2));
  CHECK(c.g(2).commit_index() == LogIndex(3));
  CHECK(c.g(2).term_at(LogIndex(4)) == std::nullopt);  // the conflicting tail is gone
  c.process_readys();
  std::vector<Message> resp =
      c.take([](const Message& m) { return m.type == MessageType::kAppendResp; });
  REQUIRE(resp.size() == 1);
  CHECK_FALSE(resp[0].reject);
  CHECK(resp[0].index == LogIndex(3));
  CHECK(c.node(2).storage->snapshot().index == LogIndex(3));
  CHECK(c.node(2).storage->last_index() == LogIndex(3));
  CHECK(c.g(2).applied_index() == LogIndex(3));
}

TEST_CASE("raft snapshot: a snapshot the follower's log already matches keeps the log") {
  Cluster c(3);
  give_log_of_term1(c);
  c.deliver(snapshot_msg(1, 2, Term(1), SnapshotMeta{LogIndex(3), Term(1), voters_123()}));
  CHECK(c.g(2).last_index() == LogIndex(5));  // entries 4 and 5 stay
  CHECK(c.g(2).commit_index() == LogIndex(3));
  c.process_readys();
  std::vector<Message> resp =
      c.take([](const Message& m) { return m.type == MessageType::kAppendResp; });
  REQUIRE(resp.size() == 1);
  CHECK_FALSE(resp[0].reject);
  CHECK(resp[0].index == LogIndex(3));
  CHECK(c.node(2).storage->snapshot().index == LogIndex(0));  // nothing installed
  CHECK(c.node(2).storage->last_index() == LogIndex(5));
  CHECK(c.g(2).applied_index() == LogIndex(3));
  CHECK(c.node(2).applied_data() == std::vector<std::string>{"t1-1", "t1-2", "t1-3"});
}
