// GroupHost with real WALs on FaultEnv: three in-process nodes, messages passed by hand, WAL
// completions run by hand, so durability ordering and crashes are deterministic.
#include "raftd/node/group_host.h"

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "raftd/node/conf_marks.h"
#include "raftd/wal/fault_env.h"
#include "raftd/wal/sync_writer.h"

namespace raftd::node {
namespace {

using raft::Entry;
using raft::EntryType;
using raft::Message;
using raft::MessageType;

struct TestNode final : GroupHost::Driver {
  explicit TestNode(NodeId i) : id(i) {}
  ~TestNode() override {
    if (!marks_dir.empty()) std::filesystem::remove_all(marks_dir);
  }

  NodeId id;
  wal::FaultEnv env;
  wal::ManualExecutor exec;
  wal::FileSyncWriter writer{exec};
  std::unique_ptr<wal::Wal> wal;
  std::unique_ptr<GroupHost> host;
  std::vector<Message> outbox;
  std::map<GroupId, std::vector<Entry>> applied;  // normal entries, in apply order, this boot
  std::map<GroupId, LogIndex> app_index;          // what "the application" applied, all boots
  std::map<GroupId, LogIndex> delivered;          // last index handed to apply(), this boot
  std::map<GroupId, LogIndex> first_delivered;    // first index handed to apply(), this boot
  std::vector<GroupId> refused;
  bool up = false;
  bool lazy_flush_due = false;  // a tick since the last turn (turn())
  // Snapshots: "the application's" state is every normal entry it applied (all boots), so a
  // snapshot is a copy of it. The configuration marks live in a real temp directory (they
  // survive crash(), as files fsynced by replace_file do).
  std::map<GroupId, std::vector<std::string>> state;
  bool snapshots = true;
  bool fail_installs = false;
  uint32_t quiesce_after_ticks = 0;  // raft::Config::quiesce_after_ticks of its groups
  GroupHost::Commit commit = GroupHost::Commit::kLazy;           // of every group it hosts
  std::vector<std::pair<GroupId, raft::SnapshotMeta>> installs;  // asked, not yet finished
  std::vector<std::pair<GroupId, NodeId>> requests;              // as a leader
  std::vector<GroupId> install_failed;
  std::string marks_dir;
  std::unique_ptr<ConfMarks> marks;

  // The host steps messages to this node itself (a candidate's self-vote); a network, like the
  // daemon's transport, knows only the other nodes.
  void send(Message&& m) override {
    CHECK(m.to != id);
    outbox.push_back(std::move(m));
  }
  void apply(GroupId g, std::vector<Entry>&& committed) override {
    for (Entry& e : committed) {
      // Within one boot every index comes once, in order, without gaps.
      if (delivered.contains(g)) CHECK(e.index == delivered[g] + 1);
      delivered[g] = e.index;
      first_delivered.try_emplace(g, e.index);
      // Like a real application: indexes at or below the stored one are re-deliveries.
      if (e.index <= app_index[g]) continue;
      app_index[g] = e.index;
      if (e.type == EntryType::kNormal && !e.data.empty()) state[g].push_back(e.data);
      if (e.type == EntryType::kNormal) applied[g].push_back(std::move(e));
    }
  }
  void on_read_states(GroupId, std::vector<raft::ReadState>&&) override {}
  void on_soft_state(GroupId, const raft::SoftState&) override {}
  void on_snapshot_refused(GroupId g, const raft::SnapshotMeta&) override { refused.push_back(g); }
  bool install_snapshot(GroupId g, const raft::SnapshotMeta& meta) override {
    if (!snapshots) return false;
    installs.emplace_back(g, meta);
    return true;
  }
  bool on_snapshot_request(GroupId g, NodeId to) override {
    if (!snapshots) return false;
    requests.emplace_back(g, to);
    return true;
  }
  void on_install_failed(GroupId g, const raft::SnapshotMeta&, const Status&) override {
    install_failed.push_back(g);
  }

  void start(const std::vector<GroupId>& groups, const raft::ConfState& conf) {
    wal::WalOptions o;
    o.segment_bytes = wal::kSegmentBytesMin;
    o.batch_bytes_max = 16 * 1024;
    o.prepare_on_thread = false;
    o.on_durable = [this](std::span<const wal::Durable> ds) { host->on_durable(ds); };
    auto w = wal::Wal::open(env, "/wal", o, exec, writer);
    REQUIRE_MESSAGE(w.is_ok(), w.status().to_string());
    wal = std::move(*w);
    raft::Config c;
    c.id = id;
    c.random_seed = 7;
    c.quiesce_after_ticks = quiesce_after_ticks;
    host = std::make_unique<GroupHost>(*wal, c, *this);
    if (marks_dir.empty()) {
      marks_dir = (std::filesystem::temp_directory_path() / "raftd-gh-XXXXXX").string();
      REQUIRE(::mkdtemp(marks_dir.data()) != nullptr);
    }
    auto m = ConfMarks::open(marks_dir + "/conf-marks");
    REQUIRE(m.is_ok());
    marks = std::move(*m);
    host->set_conf_marks(marks.get());
    installs.clear();
    requests.clear();
    for (GroupId g : groups) REQUIRE(host->add_group(g, conf, app_index[g], commit).is_ok());
    applied.clear();
    delivered.clear();
    first_delivered.clear();
    up = true;
  }
  // One reactor turn: completions, then the turn-end work. As in the node, a tick since the last
  // turn also writes lazy hard states (GroupHost::Commit).
  void turn() {
    exec.run_pending();
    host->process();
    if (lazy_flush_due) {
      lazy_flush_due = !wal->flush_lazy();
    } else {
      wal->flush();
    }
  }
  void tick() {
    host->tick();
    lazy_flush_due = true;
  }
  // Power loss: queued completions are lost, then whatever was not synced.
  void crash() {
    exec.clear();
    host.reset();
    wal.reset();
    env.crash();
    outbox.clear();
    up = false;
  }
};

struct Cluster {
  std::vector<std::unique_ptr<TestNode>> nodes;
  std::vector<GroupId> groups;
  raft::ConfState conf;
  uint64_t rounds = 0;
  // Snapshots "streamed" by leaders, by (group, index): the leader app's state at that index.
  std::map<std::pair<GroupId, LogIndex>, std::vector<std::string>> snaps;

  // What the daemon does with snapshot requests and installs, done at once: a leader's app state
  // at its applied index is the snapshot; an install replaces the follower app's state with it.
  void serve_snapshots() {
    for (auto& n : nodes) {
      if (!n->up) continue;
      std::vector<std::pair<GroupId, NodeId>> reqs;
      reqs.swap(n->requests);
      for (const auto& [g, to] : reqs) {
        raft::Group* grp = n->host->group(g);
        if (grp == nullptr) continue;
        auto meta = grp->snapshot_meta_at(n->app_index[g]);
        if (!meta) {
          grp->report_snapshot(to, false);
        } else {
          snaps[{g, meta->index}] = n->state[g];
          grp->send_snapshot(to, raft::Snapshot{*meta, {}});
          grp->report_snapshot(to, true);
        }
        n->host->mark_dirty(g);
      }
      std::vector<std::pair<GroupId, raft::SnapshotMeta>> ins;
      ins.swap(n->installs);
      for (const auto& [g, meta] : ins) {
        auto it = snaps.find({g, meta.index});
        if (n->fail_installs || it == snaps.end()) {
          n->host->finish_install(g, Status(Code::kIoError, "the test's app failed"));
          continue;
        }
        n->state[g] = it->second;
        n->app_index[g] = meta.index;
        n->delivered[g] = meta.index;
        n->host->finish_install(g, Status::ok());
      }
      // A replica whose install failed is taken up again, as the daemon does.
      std::vector<GroupId> failed;
      failed.swap(n->install_failed);
      for (GroupId g : failed) {
        REQUIRE(n->host->add_group(g, conf, n->app_index[g], n->commit).is_ok());
        n->delivered.erase(g);
      }
    }
  }

  explicit Cluster(size_t group_count, uint32_t quiesce_after_ticks = 0,
                   GroupHost::Commit commit = GroupHost::Commit::kLazy) {
    for (uint64_t i = 1; i <= 3; ++i) {
      nodes.push_back(std::make_unique<TestNode>(NodeId(i)));
      nodes.back()->quiesce_after_ticks = quiesce_after_ticks;
      nodes.back()->commit = commit;
    }
    for (uint64_t g = 1; g <= group_count; ++g) groups.push_back(GroupId(g));
    conf.voters = {NodeId(1), NodeId(2), NodeId(3)};
    for (auto& n : nodes) n->start(groups, conf);
  }
  TestNode& node(NodeId id) { return *nodes[id.value() - 1]; }

  // One round: every live node runs a turn (and ticks every fifth round, unless `ticks` is
  // false: time stands still), then its messages reach live nodes.
  void round(bool ticks = true) {
    ++rounds;
    for (auto& n : nodes) {
      if (!n->up) continue;
      if (ticks && rounds % 5 == 0) n->tick();
      n->turn();
    }
    serve_snapshots();
    for (auto& n : nodes) {
      if (!n->up) continue;
      std::vector<Message> out;
      out.swap(n->outbox);
      for (Message& m : out) {
        TestNode& to = node(m.to);
        if (to.up && m.to != n->id) to.host->step(m);
      }
    }
  }
  NodeId leader(GroupId g) {
    for (auto& n : nodes) {
      if (n->up && n->host->group(g)->role() == raft::Role::kLeader) return n->id;
    }
    return NodeId(0);
  }
  NodeId await_leader(GroupId g) {
    for (int i = 0; i < 2000; ++i) {
      if (NodeId l = leader(g); l != NodeId(0)) return l;
      round();
    }
    FAIL("no leader elected for group ", g);
    return NodeId(0);
  }
  void settle(int n = 200) {
    for (int i = 0; i < n; ++i) round();
  }
};

std::vector<std::string> datas(const std::vector<Entry>& es) {
  std::vector<std::string> out;
  for (const Entry& e : es) out.push_back(e.data);
  return out;
}

TEST_CASE("node::GroupHost: three nodes on real WALs replicate and apply in the same order") {
  Cluster c(1);
  const GroupId g(1);
  NodeId l = c.await_leader(g);
  for (int i = 0; i < 50; ++i) {
    REQUIRE(c.node(l).host->propose(g, fmt::format("e{}", i)).is_ok());
    if (i % 7 == 0) c.round();
  }
  c.settle();
  const auto expect = datas(c.node(l).applied[g]);
  REQUIRE(expect.size() == 50);
  CHECK(expect.front() == "e0");
  CHECK(expect.back() == "e49");
  for (auto& n : c.nodes) CHECK(datas(n->applied[g]) == expect);
}

TEST_CASE("node::GroupHost: what it hands to apply() counts as applied in raft") {
  // raft's applied index gates configuration changes and quiescing (a leader waits for its
  // earlier entries to be applied): the Ready given back to advance() must still hold them.
  Cluster c(1);
  const GroupId g(1);
  NodeId l = c.await_leader(g);
  for (int i = 0; i < 5; ++i) REQUIRE(c.node(l).host->propose(g, fmt::format("e{}", i)).is_ok());
  c.settle();
  for (auto& n : c.nodes) {
    const raft::Group* grp = n->host->group(g);
    REQUIRE(grp->commit_index() == grp->last_index());
    CHECK(n->delivered[g] == grp->commit_index());
    CHECK(grp->applied_index() == grp->commit_index());
  }
}

TEST_CASE("node::GroupHost: acknowledgements wait for the WAL batch to be durable") {
  Cluster c(1);
  const GroupId g(1);
  NodeId l = c.await_leader(g);
  c.settle(20);
  NodeId f = l == NodeId(1) ? NodeId(2) : NodeId(1);
  TestNode& fol = c.node(f);
  REQUIRE(c.node(l).host->propose(g, "x").is_ok());
  c.node(l).host->process();
  c.node(l).wal->flush();
  // Deliver the leader's append to the follower by hand.
  bool delivered = false;
  for (Message& m : c.node(l).outbox) {
    if (m.to == f && m.type == MessageType::kAppend && !m.entries.empty()) {
      fol.host->step(m);
      delivered = true;
    }
  }
  REQUIRE(delivered);
  fol.host->process();
  fol.wal->flush();  // the batch is submitted; its completion has not run
  for (const Message& m : fol.outbox) CHECK(m.type != MessageType::kAppendResp);
  fol.exec.run_pending();  // fdatasync done: on_durable releases the ack
  bool acked = false;
  for (const Message& m : fol.outbox) {
    if (m.type == MessageType::kAppendResp && !m.reject && m.index >= LogIndex(2)) acked = true;
  }
  CHECK(acked);
}

TEST_CASE("node::GroupHost: many groups share one fdatasync per turn") {
  Cluster c(40);
  for (GroupId g : c.groups) c.await_leader(g);
  c.settle(20);
  TestNode& n1 = c.node(NodeId(1));
  uint64_t syncs = n1.writer.syncs();
  int proposed = 0;
  for (GroupId g : c.groups) {
    NodeId l = c.leader(g);
    if (l == NodeId(1)) {
      REQUIRE(n1.host->propose(g, "v").is_ok());
      ++proposed;
    }
  }
  n1.host->process();
  n1.wal->flush();
  if (proposed > 0) CHECK(n1.writer.syncs() == syncs + 1);
  c.settle();
  for (GroupId g : c.groups) {
    for (auto& n : c.nodes) CHECK(datas(n->applied[g]) == datas(c.node(c.leader(g)).applied[g]));
  }
}

TEST_CASE("node::GroupHost: committed entries survive a crash of every node") {
  Cluster c(3);
  std::map<GroupId, std::vector<std::string>> committed;
  for (GroupId g : c.groups) {
    NodeId l = c.await_leader(g);
    for (int i = 0; i < 20; ++i) {
      REQUIRE(c.node(l).host->propose(g, fmt::format("g{}-{}", g.value(), i)).is_ok());
    }
  }
  c.settle();
  for (GroupId g : c.groups) {
    committed[g] = datas(c.node(c.leader(g)).applied[g]);
    REQUIRE(committed[g].size() == 20);
  }
  // Every node loses power; "the application" keeps what it applied (its index survives), so
  // a node whose app index is ahead of its durable commit must not get the entries again.
  for (auto& n : c.nodes) n->crash();
  for (auto& n : c.nodes) n->start(c.groups, c.conf);
  for (GroupId g : c.groups) {
    NodeId l = c.await_leader(g);
    REQUIRE(c.node(l).host->propose(g, "after").is_ok());
  }
  c.settle();
  for (GroupId g : c.groups) {
    for (auto& n : c.nodes) {
      REQUIRE(n->host->group(g) != nullptr);
      CHECK(n->app_index[g] >= LogIndex(21));  // 20 entries + the new one, plus no-ops
      CHECK(n->host->group(g)->check_invariants().is_ok());
      // After the restart only the new entry is applied (the rest was applied before).
      CHECK(datas(n->applied[g]) == std::vector<std::string>{"after"});
    }
  }
}

namespace {

// Proposes `count` entries one at a time through g's leader, each run until every node applied
// it, with no tick in between (time stands still, so only the writes carry lazy hard states).
// Returns the fdatasyncs all nodes issued meanwhile.
uint64_t propose_one_at_a_time(Cluster& c, GroupId g, int count, const std::string& prefix) {
  const NodeId l = c.await_leader(g);
  c.settle();
  uint64_t syncs = 0;
  for (auto& n : c.nodes) syncs += n->writer.syncs();
  for (int i = 0; i < count; ++i) {
    REQUIRE(c.node(l).host->propose(g, fmt::format("{}{}", prefix, i)).is_ok());
    for (int r = 0; r < 100; ++r) {
      bool all = true;
      for (auto& n : c.nodes) all = all && n->app_index[g] == c.node(l).app_index[g];
      if (all && c.node(l).applied[g].size() == static_cast<size_t>(i + 1)) break;
      c.round(false);
    }
  }
  uint64_t after = 0;
  for (auto& n : c.nodes) after += n->writer.syncs();
  return after - syncs;
}

}  // namespace

TEST_CASE("node::GroupHost: a commit-only hard state rides with the next write (Commit::kLazy)") {
  const GroupId g(1);
  Cluster lazy(1);
  const uint64_t lazy_syncs = propose_one_at_a_time(lazy, g, 20, "l");
  Cluster eager(1, 0, GroupHost::Commit::kEager);
  const uint64_t eager_syncs = propose_one_at_a_time(eager, g, 20, "e");
  INFO("fdatasyncs for 20 writes on 3 nodes: lazy ", lazy_syncs, ", eager ", eager_syncs);
  // Eager: each node writes the entry, then the hard state that commits it (6 per write). Lazy:
  // the commit rides with the next entry (3 per write).
  CHECK(eager_syncs >= 20 * 5);
  CHECK(lazy_syncs <= 20 * 4);
  // Time stands still a little longer: every write completes. Eager nodes have nothing left; on
  // lazy ones the last commit waits; a tick writes it.
  for (int r = 0; r < 5; ++r) {
    eager.round(false);
    lazy.round(false);
  }
  for (auto& n : eager.nodes) CHECK(n->wal->idle());
  for (auto& n : lazy.nodes) CHECK_FALSE(n->wal->idle());
  // Nothing waits for a lazy hard state: the followers' answers to the leader's commit-only
  // appends left as soon as what came before was durable.
  for (auto& n : lazy.nodes) CHECK(n->host->groups_waiting() == 0);
  lazy.settle(10);
  for (auto& n : lazy.nodes) CHECK(n->wal->idle());
  for (auto& n : lazy.nodes) CHECK(n->applied[g].size() == 20);
}

TEST_CASE("node::GroupHost: a lazy commit lost in a crash is delivered again, and skipped") {
  Cluster c(1);
  const GroupId g(1);
  propose_one_at_a_time(c, g, 10, "a");
  const NodeId l = c.await_leader(g);
  const NodeId f = l == NodeId(3) ? NodeId(2) : NodeId(3);
  TestNode& fol = c.node(f);
  REQUIRE(!fol.wal->idle());  // its newest commit is still staged
  const LogIndex app = fol.app_index[g];
  fol.crash();  // power loss: the follower's durable commit is behind what its app applied
  fol.start(c.groups, c.conf);
  c.settle(400);
  // The entries between the durable commit and the app's index came again and were skipped.
  CHECK(fol.app_index[g] >= app);
  CHECK(fol.applied[g].empty());
  REQUIRE(c.node(c.await_leader(g)).host->propose(g, "after").is_ok());
  c.settle();
  REQUIRE(fol.applied[g].size() == 1);
  CHECK(fol.applied[g][0].data == "after");
  CHECK(fol.host->group(g)->check_invariants().is_ok());
  REQUIRE(fol.first_delivered.contains(g));
  CHECK(fol.first_delivered[g] <= app);  // delivered again: the durable commit was behind
}

TEST_CASE("node::GroupHost: a follower that crashes loses nothing committed and catches up") {
  Cluster c(1);
  const GroupId g(1);
  NodeId l = c.await_leader(g);
  NodeId f = l == NodeId(3) ? NodeId(2) : NodeId(3);
  for (int i = 0; i < 10; ++i) REQUIRE(c.node(l).host->propose(g, fmt::format("a{}", i)).is_ok());
  c.settle();
  c.node(f).crash();
  l = c.await_leader(g);
  for (int i = 0; i < 10; ++i) REQUIRE(c.node(l).host->propose(g, fmt::format("b{}", i)).is_ok());
  c.settle();
  c.node(f).start(c.groups, c.conf);
  c.settle(400);
  NodeId l2 = c.await_leader(g);
  CHECK(c.node(f).app_index[g] == c.node(l2).app_index[g]);
  const auto& got = c.node(f).applied[g];
  REQUIRE(!got.empty());
  CHECK(got.back().data == "b9");
  CHECK(c.node(f).host->group(g)->check_invariants().is_ok());
}

TEST_CASE("node::GroupHost: two nodes of three elect a leader after the leader crashed") {
  // The candidate's own vote counts only once it is durable and stepped back in by the host:
  // with one node down, that vote is needed for a majority.
  Cluster c(2);
  for (GroupId g : c.groups) {
    NodeId l = c.await_leader(g);
    REQUIRE(c.node(l).host->propose(g, "before").is_ok());
    c.settle();
    c.node(l).crash();
    NodeId l2 = c.await_leader(g);
    CHECK(l2 != l);
    REQUIRE(c.node(l2).host->propose(g, "after").is_ok());
    c.settle();
    REQUIRE(!c.node(l2).applied[g].empty());
    CHECK(c.node(l2).applied[g].back().data == "after");
    c.node(l).start(c.groups, c.conf);
    c.settle(400);
    REQUIRE(!c.node(l).applied[g].empty());
    CHECK(c.node(l).applied[g].back().data == "after");
  }
}

TEST_CASE("node::GroupHost: messages for groups not hosted are dropped and counted") {
  Cluster c(1);
  Message m;
  m.type = MessageType::kHeartbeat;
  m.group = GroupId(99);
  m.from = NodeId(2);
  m.to = NodeId(1);
  m.term = Term(1);
  c.node(NodeId(1)).host->step(m);
  CHECK(c.node(NodeId(1)).host->stats().dropped_messages == 1);
  CHECK(c.node(NodeId(1)).host->add_group(GroupId(1), c.conf, LogIndex(0)).code() ==
        Code::kAlreadyExists);
}

TEST_CASE("node::GroupHost: a Ready larger than the WAL's queue is staged over several turns") {
  // 16 KiB batches, 8 queued at most: one turn of 100 proposals of 3 KB (300 KB) on the leader,
  // and the appends carrying them to the followers, each need many batches.
  Cluster c(1);
  const GroupId g(1);
  NodeId l = c.await_leader(g);
  c.settle(20);
  std::vector<std::string> want;
  for (int i = 0; i < 100; ++i) {
    want.push_back(fmt::format("{:03}", i) + std::string(3000, 'x'));
    REQUIRE(c.node(l).host->propose(g, want.back()).is_ok());
  }
  c.settle(400);
  CHECK(c.node(l).host->stats().stage_waits > 0);
  for (auto& n : c.nodes) {
    CHECK(n->state[g] == want);
    CHECK(n->host->group(g)->check_invariants().is_ok());
  }
  // And it all survives a crash of every node.
  for (auto& n : c.nodes) n->crash();
  for (auto& n : c.nodes) n->start(c.groups, c.conf);
  l = c.await_leader(g);
  REQUIRE(c.node(l).host->propose(g, "z").is_ok());
  c.settle();
  for (auto& n : c.nodes) CHECK(n->state[g].back() == "z");
}

TEST_CASE("node::GroupHost: an entry over this node's WAL record limit is dropped, not staged") {
  // A leader whose WAL takes bigger records than this node's (16 KiB batches here) sends an
  // append with a 20 KB entry: staging it would stop the node; the message is dropped instead.
  Cluster c(1);
  const GroupId g(1);
  NodeId l = c.await_leader(g);
  c.settle(20);
  NodeId f = l == NodeId(1) ? NodeId(2) : NodeId(1);
  TestNode& fol = c.node(f);
  const raft::Group* grp = fol.host->group(g);
  Message m;
  m.type = MessageType::kAppend;
  m.group = g;
  m.from = l;
  m.to = f;
  m.term = grp->term();
  m.index = grp->last_index();
  m.log_term = grp->last_term();
  m.commit = grp->commit_index();
  m.entries.push_back(
      Entry{grp->term(), grp->last_index() + 1, EntryType::kNormal, std::string(20'000, 'x')});
  const LogIndex before = grp->last_index();
  fol.host->step(m);
  c.settle(20);
  CHECK(fol.host->stats().oversized_dropped == 1);
  CHECK(fol.host->group(g)->last_index() >= before);
  // The group goes on with entries that fit.
  l = c.await_leader(g);
  REQUIRE(c.node(l).host->propose(g, "small").is_ok());
  c.settle();
  CHECK(fol.state[g].back() == "small");
}

TEST_CASE("node::GroupHost: compaction stays behind the app, the durable commit and the core") {
  Cluster c(1);
  const GroupId g(1);
  NodeId l = c.await_leader(g);
  for (int i = 0; i < 20; ++i) REQUIRE(c.node(l).host->propose(g, fmt::format("e{}", i)).is_ok());
  c.settle();
  TestNode& n = c.node(l);
  const LogIndex applied = n.host->group(g)->applied_index();
  auto r = n.host->compact(g, LogIndex(1'000'000));
  REQUIRE(r.is_ok());
  CHECK(*r == applied);  // clamped to what is applied (and durable)
  CHECK(n.host->compacted_index(g) == applied);
  CHECK(n.host->stats().compactions == 1);
  auto again = n.host->compact(g, LogIndex(5));  // below the mark: nothing to do
  REQUIRE(again.is_ok());
  CHECK(*again == applied);
  CHECK(n.host->stats().compactions == 1);
  CHECK(n.host->compact(GroupId(9), LogIndex(1)).status().code() == Code::kNotFound);
  // A proposal right after, its batch not yet durable: the new entry is not compacted.
  REQUIRE(n.host->propose(g, "late").is_ok());
  n.host->process();
  auto r2 = n.host->compact(g, LogIndex(1'000'000));
  REQUIRE(r2.is_ok());
  CHECK(*r2 == applied);
  c.settle();
  CHECK(n.state[g].back() == "late");
}

TEST_CASE("node::GroupHost: a follower behind the compacted log gets a snapshot and catches up") {
  Cluster c(1);
  const GroupId g(1);
  NodeId l = c.await_leader(g);
  NodeId f = l == NodeId(3) ? NodeId(2) : NodeId(3);
  for (int i = 0; i < 10; ++i) REQUIRE(c.node(l).host->propose(g, fmt::format("a{}", i)).is_ok());
  c.settle();
  c.node(f).crash();
  l = c.await_leader(g);
  for (int i = 0; i < 30; ++i) REQUIRE(c.node(l).host->propose(g, fmt::format("b{}", i)).is_ok());
  c.settle();
  // Every live node compacts its whole applied log: the follower's next entry is gone.
  for (auto& n : c.nodes) {
    if (!n->up) continue;
    REQUIRE(n->host->compact(g, n->app_index[g]).is_ok());
    CHECK(n->host->compacted_index(g) > LogIndex(20));
  }
  c.node(f).start(c.groups, c.conf);
  c.settle(600);
  TestNode& fol = c.node(f);
  CHECK(fol.host->stats().snapshots_installed == 1);
  CHECK(fol.host->group(g)->check_invariants().is_ok());
  l = c.await_leader(g);
  CHECK(fol.state[g] == c.node(l).state[g]);
  // It keeps replicating after the snapshot, and a crash of every node boots from the
  // compacted logs (the snapshot's mark on the follower) with nothing lost.
  REQUIRE(c.node(l).host->propose(g, "after").is_ok());
  c.settle();
  CHECK(fol.state[g].back() == "after");
  CHECK(fol.host->compacted_index(g) >= LogIndex(30));
  for (auto& n : c.nodes) n->crash();
  for (auto& n : c.nodes) n->start(c.groups, c.conf);
  l = c.await_leader(g);
  REQUIRE(c.node(l).host->propose(g, "rebooted").is_ok());
  c.settle();
  for (auto& n : c.nodes) {
    CHECK(n->state[g] == c.node(l).state[g]);
    CHECK(n->state[g].back() == "rebooted");
    CHECK(n->host->group(g)->check_invariants().is_ok());
  }
}

TEST_CASE("node::GroupHost: a failed install drops the replica; taken up again it succeeds") {
  Cluster c(1);
  const GroupId g(1);
  NodeId l = c.await_leader(g);
  NodeId f = l == NodeId(3) ? NodeId(2) : NodeId(3);
  c.settle();
  c.node(f).crash();
  l = c.await_leader(g);
  for (int i = 0; i < 12; ++i) REQUIRE(c.node(l).host->propose(g, fmt::format("x{}", i)).is_ok());
  c.settle();
  for (auto& n : c.nodes) {
    if (n->up) REQUIRE(n->host->compact(g, n->app_index[g]).is_ok());
  }
  TestNode& fol = c.node(f);
  fol.fail_installs = true;
  fol.start(c.groups, c.conf);
  c.settle(300);
  CHECK(fol.host->stats().snapshot_installs_failed >= 1);
  CHECK(fol.host->stats().snapshots_installed == 0);
  CHECK(fol.state[g].empty());  // nothing of a failed snapshot was taken
  fol.fail_installs = false;
  c.settle(600);
  CHECK(fol.host->stats().snapshots_installed == 1);
  l = c.await_leader(g);
  CHECK(fol.state[g] == c.node(l).state[g]);
  CHECK(fol.state[g].size() == 12);
}

TEST_CASE("node::GroupHost: quiesced groups are not ticked until an input wakes them") {
  Cluster c(20, /*quiesce_after_ticks=*/5);
  for (GroupId g : c.groups) c.await_leader(g);
  c.settle(400);  // 80 ticks: every group idle long enough to quiesce
  for (auto& n : c.nodes) {
    for (GroupId g : c.groups) REQUIRE(n->host->group(g)->quiesced());
  }
  // Asleep: more ticks visit no group (and the sweep of sleepers finds nothing to do).
  std::vector<uint64_t> ticked;
  for (auto& n : c.nodes) ticked.push_back(n->host->stats().groups_ticked);
  c.settle(200);  // 40 ticks
  for (size_t i = 0; i < c.nodes.size(); ++i) {
    CHECK(c.nodes[i]->host->stats().groups_ticked == ticked[i]);
  }
  // A proposal wakes its group on every node (through the messages, which mark it dirty); it
  // commits, is applied everywhere, and the group goes back to sleep. The others never woke.
  const GroupId g(7);
  const NodeId l = c.await_leader(g);
  REQUIRE(c.node(l).host->propose(g, "wake").is_ok());
  c.settle(100);
  for (auto& n : c.nodes) {
    REQUIRE_FALSE(n->applied[g].empty());
    CHECK(n->applied[g].back().data == "wake");
    CHECK(n->host->stats().groups_ticked > ticked[n->id.value() - 1]);
  }
  c.settle(400);
  for (auto& n : c.nodes) {
    for (GroupId x : c.groups) CHECK(n->host->group(x)->quiesced());
    CHECK(n->host->stats().sleepers_woken == 0);  // every input came with mark_dirty
  }
  // A replica woken behind the host's back (no mark_dirty) is found by the sweep within
  // kSleeperSweepTicks ticks, and counted.
  TestNode& f = c.node(l == NodeId(1) ? NodeId(2) : NodeId(1));
  f.host->group(g)->wake();
  c.settle(static_cast<int>(5 * kSleeperSweepTicks + 5));
  CHECK(f.host->stats().sleepers_woken == 1);
}

TEST_CASE("node::GroupHost: a replica that cannot install snapshots stops, as before") {
  Cluster c(1);
  const GroupId g(1);
  NodeId l = c.await_leader(g);
  NodeId f = l == NodeId(3) ? NodeId(2) : NodeId(3);
  c.node(f).crash();
  l = c.await_leader(g);
  for (int i = 0; i < 5; ++i) REQUIRE(c.node(l).host->propose(g, "y").is_ok());
  c.settle();
  for (auto& n : c.nodes) {
    if (n->up) REQUIRE(n->host->compact(g, n->app_index[g]).is_ok());
  }
  c.node(f).snapshots = false;
  c.node(f).start(c.groups, c.conf);
  c.settle(400);
  CHECK(c.node(f).refused == std::vector<GroupId>{g});
  CHECK(!c.node(f).host->hosts(g));
}

TEST_CASE("node::GroupHost: a restart from a compacted log takes the configuration marks") {
  Cluster c(1);
  const GroupId g(1);
  NodeId l = c.await_leader(g);
  // Node 3 leaves the group (a leader other than 3 proposes it), then more entries, then the
  // remaining two compact past the change.
  if (l == NodeId(3)) {
    REQUIRE(c.node(l).host->group(g)->transfer_leader(NodeId(1)).is_ok());
    c.node(l).host->mark_dirty(g);
    c.settle();
    l = c.await_leader(g);
  }
  REQUIRE(l != NodeId(3));
  raft::ConfChange cc;
  cc.changes.push_back({raft::ConfChangeType::kRemove, NodeId(3)});
  c.settle(20);
  REQUIRE(c.node(l).host->group(g)->propose_conf_change(cc).is_ok());
  c.node(l).host->mark_dirty(g);
  c.settle();
  for (int i = 0; i < 5; ++i) REQUIRE(c.node(l).host->propose(g, "z").is_ok());
  c.settle();
  const std::vector<NodeId> two{NodeId(1), NodeId(2)};
  for (NodeId id : two) {
    TestNode& n = c.node(id);
    REQUIRE(n.host->group(g)->conf_state().voters == two);
    REQUIRE(n.host->compact(g, n.app_index[g]).is_ok());
    CHECK(n.marks->at(g, n.host->compacted_index(g)).has_value());
  }
  c.node(NodeId(3)).crash();
  for (NodeId id : two) c.node(id).crash();
  for (NodeId id : two) {
    c.node(id).start(c.groups, c.conf);  // c.conf still names three voters: the marks win
    CHECK(c.node(id).host->group(g)->conf_state().voters == two);
  }
  l = c.await_leader(g);
  REQUIRE(c.node(l).host->propose(g, "two").is_ok());
  c.settle();
  for (NodeId id : two) CHECK(c.node(id).state[g].back() == "two");
}

}  // namespace
}  // namespace raftd::node
