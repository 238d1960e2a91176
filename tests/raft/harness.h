// Test harness for the raft core: an in-memory cluster of raft::Group replicas (one group) whose
// Ready cycles are driven by hand, with a controllable network and controllable durability.
//
// Usage (doctest):
//   raftd::raft::test::Cluster c(3);          // voters 1..3, PreVote + CheckQuorum on
//   c.elect(1);                                // node 1 campaigns and wins
//   auto idx = c.propose(1, "x");              // Result<LogIndex>
//   c.stabilize();                             // run Ready cycles + deliver until quiet
//   CHECK(c.node(2).applied_data() == std::vector<std::string>{"x"});
//
// What a "step" is: every Ready of every live node is processed (persisted immediately unless
// the node is in manual-persist mode, messages queued, committed entries applied) and every
// queued message is delivered in FIFO order. After every single input given to a Group
// (tick, step, propose, on_persisted, ...) the harness REQUIREs check_invariants() and checks
// that every node's applied sequence is a prefix of every other node's (state machine safety).
//
// Network: isolate(n) / partition({..},{..}) / heal(); drop(from, to) for one direction;
// set_filter(f) to drop or inspect individual messages (return false = drop).
// Durability: set_manual_persist(n, true) keeps n's Ready writes pending until persist(n) (or
// persist_one(n)); crash(n) loses pending writes and restarts nothing; restart(n) rebuilds the
// Group from the node's durable storage + hard state, as the daemon does after a crash.
// Messages addressed to the sender itself (a candidate's own vote) are delivered like any other.
#pragma once

#include <doctest/doctest.h>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "raftd/raft/memory_storage.h"
#include "raftd/raft/raft.h"

namespace raftd::raft::test {

inline constexpr GroupId kTestGroup{7};
// Upper bound on stabilize() rounds: a correct cluster goes quiet long before; a livelock fails.
inline constexpr int kStabilizeRoundsMax = 10000;

struct ClusterOptions {
  uint32_t election_tick = 10;
  uint32_t heartbeat_tick = 1;
  bool pre_vote = true;
  bool check_quorum = true;
  uint32_t max_inflight_msgs = 256;
  uint64_t max_inflight_bytes = 0;
  uint64_t max_msg_bytes = 1 << 20;
  uint64_t max_uncommitted_bytes = 0;
  uint32_t quiesce_after_ticks = 0;
  uint64_t max_committed_bytes_per_ready = 4 << 20;
  std::vector<uint64_t> learners;  // node ids added as learners (in addition to the voters)
};

// One replica: its durable state (storage + hard state), the in-memory Group, and the
// application state (the applied entries).
struct Node {
  NodeId id;
  Config config;
  std::unique_ptr<MemoryLogStorage> storage;
  HardState durable_hard_state;
  std::unique_ptr<Group> group;  // null while crashed
  std::vector<Entry> applied;    // every entry applied, in order (empty/conf entries included)
  std::vector<ReadState> read_states;
  size_t checked_applied = 0;  // prefix of `applied` already checked
  bool manual_persist = false;
  // Ready writes not yet durable (manual mode), oldest first.
  struct PendingWrite {
    std::optional<Snapshot> snapshot;
    std::vector<Entry> entries;
    std::optional<HardState> hard_state;
    std::vector<Message> after_persist;
  };
  std::deque<PendingWrite> pending;
  // Every hard state a Ready handed out, with its Ready::hard_state_lazy, oldest first.
  std::vector<std::pair<HardState, bool>> hard_states;

  bool up() const { return group != nullptr; }
  // Data of applied kNormal entries, in order.
  std::vector<std::string> applied_data() const {
    std::vector<std::string> out;
    for (const Entry& e : applied) {
      if (e.type == EntryType::kNormal) out.push_back(e.data);
    }
    return out;
  }
};

// Every node named in `cs` (voters of both halves, learners, learners_next), sorted, unique.
inline std::vector<NodeId> members(const ConfState& cs) {
  std::set<NodeId> all;
  for (const auto* v : {&cs.voters, &cs.learners, &cs.voters_outgoing, &cs.learners_next}) {
    all.insert(v->begin(), v->end());
  }
  return {all.begin(), all.end()};
}

class Cluster {
 public:
  explicit Cluster(size_t voters, ClusterOptions opts = {}) : opts_(std::move(opts)) {
    ConfState cs;
    for (size_t i = 1; i <= voters; ++i) cs.voters.push_back(NodeId(i));
    for (uint64_t l : opts_.learners) cs.learners.push_back(NodeId(l));
    std::vector<NodeId> all = cs.voters;
    all.insert(all.end(), cs.learners.begin(), cs.learners.end());
    initial_conf_ = cs;
    for (NodeId id : all) add_node(id);
  }

  // Adds a node with an empty log that boots, like every replica of the group, from the group's
  // initial configuration at index 0 (the rule for joining a running group, see doc/raft.md):
  // it becomes a member when the leader's configuration names it and the log or a snapshot
  // reaches it.
  void add_node(NodeId id) { add_node(id, initial_conf_); }
  void add_node(NodeId id, const ConfState& initial) {
    Node n;
    n.id = id;
    n.config = make_config(id);
    SnapshotMeta boot{LogIndex(0), Term(0), initial};
    n.storage = std::make_unique<MemoryLogStorage>(boot);
    n.group =
        std::make_unique<Group>(n.config, *n.storage, BootState{HardState{}, boot, LogIndex(0)});
    nodes_[id.value()] = std::move(n);
  }

  Node& node(uint64_t id) { return nodes_.at(id); }
  Group& g(uint64_t id) {
    REQUIRE_MESSAGE(nodes_.at(id).up(), "node ", id, " is down");
    return *nodes_.at(id).group;
  }
  std::vector<uint64_t> ids() const {
    std::vector<uint64_t> out;
    for (const auto& [id, n] : nodes_) out.push_back(id);
    return out;
  }

  // --- driving ---------------------------------------------------------------------------------
  void tick(uint64_t id, int n = 1) {
    for (int i = 0; i < n; ++i) {
      g(id).tick();
      check(id);
    }
  }
  void tick_all(int n = 1) {
    for (int i = 0; i < n; ++i) {
      for (auto& [id, node] : nodes_) {
        if (node.up()) tick(id);
      }
    }
  }
  // Ticks and stabilizes all nodes `n` times (time passing in a healthy cluster).
  void run_ticks(int n) {
    for (int i = 0; i < n; ++i) {
      tick_all();
      stabilize();
    }
  }

  Result<LogIndex> propose(uint64_t id, std::string data) {
    Result<LogIndex> r = g(id).propose(std::move(data));
    check(id);
    return r;
  }
  Result<LogIndex> propose_conf_change(uint64_t id, const ConfChange& cc) {
    Result<LogIndex> r = g(id).propose_conf_change(cc);
    check(id);
    return r;
  }
  Status read_index(uint64_t id, uint64_t request_id) {
    Status s = g(id).read_index(request_id);
    check(id);
    return s;
  }
  Status transfer_leader(uint64_t id, uint64_t to) {
    Status s = g(id).transfer_leader(NodeId(to));
    check(id);
    return s;
  }

  // Node `id` times out (ticks until it leaves the follower role) and the cluster settles. If
  // that does not make it leader (e.g. the others still hold a leader lease), the harness forces
  // an immediate campaign with a TimeoutNow addressed to itself, as a leader transfer would.
  // REQUIREs that it ends up leader.
  void elect(uint64_t id) {
    for (int i = 0;
         i < 4 * static_cast<int>(opts_.election_tick) && g(id).role() == Role::kFollower; ++i) {
      tick(id);
    }
    stabilize();
    if (g(id).role() != Role::kLeader) {
      force_campaign(id);
      stabilize();
    }
    REQUIRE_MESSAGE(g(id).role() == Role::kLeader, "node ", id, " did not win the election");
  }
  // Makes `id` campaign now (skipping PreVote and the lease), without settling the cluster.
  void force_campaign(uint64_t id) {
    Message m;
    m.type = MessageType::kTimeoutNow;
    m.group = kTestGroup;
    m.from = NodeId(id);
    m.to = NodeId(id);
    m.term = g(id).term();
    deliver(m);
  }

  // The live leader with the highest term, 0 if none.
  uint64_t leader() const {
    uint64_t best = 0;
    Term best_term;
    for (const auto& [id, n] : nodes_) {
      if (n.up() && n.group->role() == Role::kLeader && n.group->term() >= best_term) {
        best = id;
        best_term = n.group->term();
      }
    }
    return best;
  }

  // Processes Readys and delivers messages until nothing moves.
  void stabilize() {
    for (int round = 0; round < kStabilizeRoundsMax; ++round) {
      bool any = false;
      for (auto& [id, n] : nodes_) {
        while (n.up() && n.group->has_ready()) {
          process_ready(n);
          any = true;
        }
      }
      if (!queue_.empty()) {
        any = true;
        deliver_all();
      }
      if (!any) return;
    }
    FAIL("raft harness: cluster did not stabilize (livelock?)");
  }

  // Processes each node's pending Readys once, without delivering any message.
  void process_readys() {
    for (auto& [id, n] : nodes_) {
      while (n.up() && n.group->has_ready()) process_ready(n);
    }
  }

  // Delivers the messages queued right now (not those their delivery produces).
  void deliver_all() {
    std::deque<Message> batch;
    batch.swap(queue_);
    for (const Message& m : batch) deliver(m);
  }
  std::deque<Message>& queue() { return queue_; }
  // Takes every queued message matching `pred` out of the queue (to reorder/replay by hand).
  std::vector<Message> take(const std::function<bool(const Message&)>& pred) {
    std::vector<Message> out;
    std::deque<Message> keep;
    for (Message& m : queue_) (pred(m) ? out.push_back(m) : keep.push_back(m));
    queue_.swap(keep);
    return out;
  }
  // Steps one message into its destination now (bypassing the queue but not the network rules).
  // The outcome of a snapshot is reported to its sender (report_snapshot), as the daemon's
  // snapshot stream does when it finishes or fails.
  void deliver(const Message& m) {
    auto it = nodes_.find(m.to.value());
    bool lost = !link_up(m.from.value(), m.to.value()) || (filter_ && !filter_(m)) ||
                it == nodes_.end() || !it->second.up();
    if (lost) {
      auto from = nodes_.find(m.from.value());
      if (m.type == MessageType::kSnapshot && from != nodes_.end() && from->second.up()) {
        from->second.group->report_snapshot(m.to, false);
        check(m.from.value());
      }
      return;
    }
    it->second.group->step(m);
    if (m.type == MessageType::kSnapshot) {
      auto from = nodes_.find(m.from.value());
      if (from != nodes_.end() && from->second.up()) {
        from->second.group->report_snapshot(m.to, true);
        check(m.from.value());
      }
    }
    check(m.to.value());
  }

  // --- network ---------------------------------------------------------------------------------
  void isolate(uint64_t id) {
    for (const auto& [other, n] : nodes_) {
      if (other != id) {
        cut_.insert({id, other});
        cut_.insert({other, id});
      }
    }
  }
  void partition(const std::vector<uint64_t>& a, const std::vector<uint64_t>& b) {
    for (uint64_t x : a) {
      for (uint64_t y : b) {
        cut_.insert({x, y});
        cut_.insert({y, x});
      }
    }
  }
  void drop(uint64_t from, uint64_t to) { cut_.insert({from, to}); }
  void heal() { cut_.clear(); }
  bool link_up(uint64_t from, uint64_t to) const {
    return from == to || !cut_.contains({from, to});
  }
  void set_filter(std::function<bool(const Message&)> f) { filter_ = std::move(f); }

  // --- durability and crashes ------------------------------------------------------------------
  void set_manual_persist(uint64_t id, bool manual) { node(id).manual_persist = manual; }
  // Makes the oldest pending write of `id` durable (and releases its after-persist messages).
  bool persist_one(uint64_t id) {
    Node& n = node(id);
    if (n.pending.empty()) return false;
    Node::PendingWrite w = std::move(n.pending.front());
    n.pending.pop_front();
    complete_write(n, std::move(w));
    return true;
  }
  void persist(uint64_t id) {
    while (persist_one(id)) {
    }
  }
  // The process dies: pending (non-durable) writes and all volatile state are lost.
  void crash(uint64_t id) {
    Node& n = node(id);
    n.pending.clear();
    n.group.reset();
  }
  // Restarts from durable state. The application state survives up to the snapshot index
  // (the harness's app is "durable at snapshots"); later entries are applied again.
  void restart(uint64_t id) {
    Node& n = node(id);
    REQUIRE(!n.up());
    const SnapshotMeta& snap = n.storage->snapshot();
    while (!n.applied.empty() && n.applied.back().index > snap.index) n.applied.pop_back();
    n.checked_applied = std::min(n.checked_applied, n.applied.size());
    n.group = std::make_unique<Group>(n.config, *n.storage,
                                      BootState{n.durable_hard_state, snap, snap.index});
    check(id);
  }
  // Compacts `id`'s log up to `index` (as the daemon does after an app snapshot).
  void compact(uint64_t id, uint64_t index) {
    Status s = try_compact(id, index);
    REQUIRE_MESSAGE(s.is_ok(), s.to_string());
  }
  // Same, but a refusal (index not applied yet, snapshot being installed) is returned. Like a
  // correct driver, the harness never makes a snapshot durable beyond the durable commit index
  // (a restart would find applied > commit).
  Status try_compact(uint64_t id, uint64_t index) {
    if (LogIndex(index) > node(id).durable_hard_state.commit) {
      return Status(Code::kInvalidArgument, "harness: compaction beyond the durable commit");
    }
    Result<SnapshotMeta> meta = g(id).compact(LogIndex(index));
    if (!meta.is_ok()) return meta.status();
    node(id).storage->compact(meta.value());
    check(id);
    return Status::ok();
  }

  // --- checks ----------------------------------------------------------------------------------
  void check(uint64_t id) {
    Node& n = node(id);
    if (n.up()) {
      Status s = n.group->check_invariants();
      REQUIRE_MESSAGE(s.is_ok(), s.to_string());
    }
    check_applied_prefixes();
  }
  // State machine safety: every replica applies the same entry at a given index (checked
  // against a record of every entry ever applied anywhere).
  void check_applied_prefixes() {
    for (auto& [id, n] : nodes_) {
      for (size_t i = n.checked_applied; i < n.applied.size(); ++i) {
        const Entry& e = n.applied[i];
        auto inserted = applied_record_.emplace(e.index.value(), e);
        bool same = inserted.second || inserted.first->second == e;
        uint64_t node_id = id;
        REQUIRE_MESSAGE(same, "node ", node_id, " applied a different entry at index ",
                        e.index.value());
      }
      n.checked_applied = n.applied.size();
    }
  }
  const std::map<uint64_t, Entry>& applied_record() const { return applied_record_; }

  // Number of messages of `type` delivered or queued so far is not tracked; count the queue.
  size_t queued(MessageType type) const {
    size_t k = 0;
    for (const Message& m : queue_) k += m.type == type ? 1 : 0;
    return k;
  }

 private:
  Config make_config(NodeId id) const {
    Config c;
    c.id = id;
    c.group = kTestGroup;
    c.election_tick = opts_.election_tick;
    c.heartbeat_tick = opts_.heartbeat_tick;
    c.pre_vote = opts_.pre_vote;
    c.check_quorum = opts_.check_quorum;
    c.max_inflight_msgs = opts_.max_inflight_msgs;
    c.max_inflight_bytes = opts_.max_inflight_bytes;
    c.max_msg_bytes = opts_.max_msg_bytes;
    c.max_uncommitted_bytes = opts_.max_uncommitted_bytes;
    c.quiesce_after_ticks = opts_.quiesce_after_ticks;
    c.max_committed_bytes_per_ready = opts_.max_committed_bytes_per_ready;
    c.random_seed = 1000 + id.value();
    return c;
  }

  // Every Ready goes through kept_ready_ (Group::ready(Ready*)), as in the daemon, so the core's
  // traded buffers are exercised by every test; a cycle entered from within another finds it
  // empty.
  void process_ready(Node& n) {
    Ready rd;
    std::swap(rd, kept_ready_);
    process_ready(n, rd);
    std::swap(rd, kept_ready_);
  }

  void process_ready(Node& n, Ready& rd) {
    n.group->ready(&rd);
    handle_ready(n, rd);
  }

  // What the driver does with a Ready it took from n (public for tests that take one by hand).
 public:
  void handle_ready(Node& n, Ready& rd) {
    for (Message& m : rd.messages) queue_.push_back(std::move(m));
    for (NodeId peer : rd.snapshot_requests) send_snapshot(n, peer);
    for (const ReadState& rs : rd.read_states) n.read_states.push_back(rs);
    if (rd.hard_state) n.hard_states.emplace_back(*rd.hard_state, rd.hard_state_lazy);
    REQUIRE_MESSAGE((!rd.hard_state_lazy || (rd.hard_state && rd.entries.empty() && !rd.snapshot)),
                    "node ", n.id.value(), ": a lazy hard state in a Ready that writes more");
    Node::PendingWrite w{rd.snapshot, rd.entries, rd.hard_state, rd.messages_after_persist};
    std::vector<Entry> committed = rd.committed_entries;
    n.group->advance(rd);
    check(n.id.value());
    for (const Entry& e : committed) {
      REQUIRE_MESSAGE((n.applied.empty() || e.index == n.applied.back().index + 1), "node ",
                      n.id.value(), " applies out of order");
      n.applied.push_back(e);
    }
    check_applied_prefixes();
    bool nothing_to_write = !w.snapshot && w.entries.empty() && !w.hard_state;
    if (n.manual_persist && !(nothing_to_write && n.pending.empty() && w.after_persist.empty())) {
      n.pending.push_back(std::move(w));
    } else {
      complete_write(n, std::move(w));
    }
  }

 private:
  void complete_write(Node& n, Node::PendingWrite w) {
    if (w.snapshot) {
      n.storage->install_snapshot(w.snapshot->meta);
      // The harness's application state is its applied list: copy the sender's prefix.
      install_app_snapshot(n, w.snapshot->meta.index);
    }
    n.storage->append(w.entries);
    if (w.hard_state) n.durable_hard_state = *w.hard_state;
    for (Message& m : w.after_persist) queue_.push_back(std::move(m));
    if (!n.up()) return;
    if (w.snapshot) n.group->on_snapshot_installed(w.snapshot->meta);
    if (!w.entries.empty()) n.group->on_persisted(w.entries.back().index, w.entries.back().term);
    check(n.id.value());
  }

  void install_app_snapshot(Node& n, LogIndex index) {
    for (const auto& [id, other] : nodes_) {
      if (!other.applied.empty() && other.applied.back().index >= index &&
          other.applied.front().index == LogIndex(1)) {
        n.applied.assign(other.applied.begin(),
                         other.applied.begin() + static_cast<std::ptrdiff_t>(index.value()));
        n.checked_applied = n.applied.size();
        return;
      }
    }
    n.applied.clear();  // no full history available
    n.checked_applied = 0;
  }

  void send_snapshot(Node& leader, NodeId peer) {
    LogIndex at = leader.group->applied_index();
    Result<SnapshotMeta> meta = leader.group->snapshot_meta_at(at);
    if (!meta.is_ok()) {
      leader.group->report_snapshot(peer, false);
      return;
    }
    leader.group->send_snapshot(peer,
                                Snapshot{meta.value(), "snapshot@" + std::to_string(at.value())});
    check(leader.id.value());
  }

  ClusterOptions opts_;
  ConfState initial_conf_;
  std::map<uint64_t, Node> nodes_;
  std::deque<Message> queue_;
  Ready kept_ready_;
  std::set<std::pair<uint64_t, uint64_t>> cut_;
  std::function<bool(const Message&)> filter_;
  std::map<uint64_t, Entry> applied_record_;
};

}  // namespace raftd::raft::test
