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
