// libFuzzer target: hostile peers against the raft core (doc/raft.md, "Messages no honest peer
// sends"). A small group (voters 1..3, optionally learner 4) runs on MemoryLogStorage with a
// correct driver; the fuzz bytes pick the configuration (PreVote, CheckQuorum, quiescing, small
// flow-control windows), which replica is the target and the state it is brought into (follower
// with a committed log, leader with followers, candidate, learner), then a sequence of
// operations: messages forged from the fuzz bytes (fresh, or a recently sent message altered
// and redirected) stepped into the target, ticks, deliveries (in order or not, some lost) of
// the honest traffic, Ready/advance cycles and durability reports, proposals (conf changes
// included, valid or not), reads, transfers, compaction, snapshots, wake-ups, and crashes with
// restarts from the durable state (which must boot: a peer's messages must not leave durable
// state the core refuses at start-up).
//
// Every message that reaches a Group first passes transport::validate() for its (from, to) pair,
// as in the daemon; half of the forged ones are stepped even when it refuses them, because
// Group::step promises that no message trips an assertion. Checked for every input: no
// assertion of the core or of MemoryLogStorage fires, and check_invariants() holds on every
// replica after every operation (the fuzzer aborts otherwise). State machine safety across
// replicas is NOT checked: a lying peer can break it, and Raft does not claim otherwise.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "raftd/raft/memory_storage.h"
#include "raftd/raft/raft.h"
#include "raftd/transport/codec.h"

namespace {

using namespace raftd;
using namespace raftd::raft;

constexpr GroupId kGroup{1};
constexpr uint64_t kNonMember = 5;        // a node id no configuration names (at first)
constexpr size_t kNetMessagesMax = 2048;  // honest traffic kept in flight at most
constexpr size_t kRecentMax = 32;         // sent messages kept as templates for forgeries
constexpr int kOpsMax = 400;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "group_step_fuzz: %s\n", what.c_str());
  std::abort();
}

struct Replica {
  Config config;
  std::unique_ptr<MemoryLogStorage> storage;
  std::unique_ptr<Group> group;
  HardState durable;
  struct Write {
    std::optional<Snapshot> snapshot;
    std::vector<Entry> entries;
    std::optional<HardState> hard_state;
    std::vector<Message> after_persist;
  };
  std::deque<Write> pending;
  std::vector<NodeId> snapshot_requests;
  std::vector<NodeId> snapshots_sent;  // waiting for report_snapshot
};

class World {
 public:
  World(FuzzedDataProvider& in) : in_(in) {
    const uint8_t flags = in_.ConsumeIntegral<uint8_t>();
    Config base;
    base.group = kGroup;
    base.election_tick = 5;
    base.heartbeat_tick = 1;
    base.pre_vote = flags & 1;
    base.check_quorum = flags & 2;
    base.quiesce_after_ticks = (flags & 4) ? 3 : 0;
    if (flags & 8) {
      base.max_inflight_msgs = 2;
      base.max_msg_bytes = 64;
      base.max_committed_bytes_per_ready = 64;
      base.max_uncommitted_bytes = 512;
    }
    ConfState cs;
    cs.voters = {NodeId(1), NodeId(2), NodeId(3)};
    if (flags & 16) cs.learners = {NodeId(4)};
    for (NodeId id : cs.voters) add(id, base, cs);
    for (NodeId id : cs.learners) add(id, base, cs);
  }

  // Brings the group into a state chosen by the fuzz bytes, then picks the target.
  void setup() {
    const uint64_t leader = in_.ConsumeIntegralInRange<uint64_t>(1, 3);
    elect(leader);
    const int entries = in_.ConsumeIntegralInRange<int>(0, 6);
    for (int i = 0; i < entries; ++i) {
      (void)r(leader).group->propose(std::string(in_.ConsumeIntegralInRange<size_t>(0, 40), 'x'));
      settle();
    }
    if (in_.ConsumeBool()) compact_all();
    target_ = in_.ConsumeIntegralInRange<uint64_t>(1, replicas_.size());
    if (in_.ConsumeBool() && target_ != leader) {
      // Cut off and timed out: a (pre-)candidate.
      for (int i = 0; i < 30 && r(target_).group->role() == Role::kFollower; ++i) {
        r(target_).group->tick();
        check();
      }
      drive(target_);
      drop_traffic_of(target_);
    }
  }

  void run() {
    for (int op = 0; op < kOpsMax && in_.remaining_bytes() > 0; ++op) {
      switch (in_.ConsumeIntegralInRange<int>(0, 14)) {
        case 0:
        case 1:
        case 2:
        case 3: forge(); break;
        case 4: tick(pick()); break;
        case 5: deliver_some(); break;
        case 6: drive(pick()); break;
        case 7: persist_one(pick()); break;
        case 8: propose(pick()); break;
        case 9: propose_conf_change(pick()); break;
        case 10: misc(pick()); break;
        case 11: compact(pick()); break;
        case 12: serve_snapshot(pick()); break;
        case 13: settle(); break;
        case 14: restart(pick()); break;
      }
      check();
    }
    settle();
    check();
  }

 private:
  Replica& r(uint64_t id) { return replicas_.at(id); }
  uint64_t pick() { return in_.ConsumeIntegralInRange<uint64_t>(1, replicas_.size()); }

  void add(NodeId id, Config base, const ConfState& cs) {
    Replica rep;
    rep.config = base;
    rep.config.id = id;
    rep.config.random_seed = 7 + id.value();
    SnapshotMeta boot{LogIndex(0), Term(0), cs};
    rep.storage = std::make_unique<MemoryLogStorage>(boot);
    rep.group = std::make_unique<Group>(rep.config, *rep.storage,
                                        BootState{HardState{}, boot, LogIndex(0)});
    replicas_.emplace(id.value(), std::move(rep));
  }

  void check() {
    for (auto& [id, rep] : replicas_) {
      Status s = rep.group->check_invariants();
      if (!s.is_ok()) fail(s.to_string());
    }
  }

  // The daemon's receive path: transport validation for the (from, to) pair, then step.
  void deliver(const Message& m) {
    auto it = replicas_.find(m.to.value());
    if (it == replicas_.end()) return;
    if (m.from != m.to) {
      transport::ValidationContext ctx{m.from, m.to, {}};
      if (!transport::validate(m, ctx).is_ok()) return;
    }
    it->second.group->step(m);
  }

  void send(Message m) {
    recent_.push_back(m);
    if (recent_.size() > kRecentMax) recent_.pop_front();
    if (net_.size() < kNetMessagesMax) net_.push_back(std::move(m));
  }

  // One Ready cycle of `id` (writes stay pending until persist_one), repeated while it has one.
  void drive(uint64_t id) {
    Replica& rep = r(id);
    for (int i = 0; i < 64 && rep.group->has_ready(); ++i) {
      Ready rd = rep.group->ready();
      for (Message& m : rd.messages) send(std::move(m));
      for (NodeId p : rd.snapshot_requests) rep.snapshot_requests.push_back(p);
      if (rd.snapshot || !rd.entries.empty() || rd.hard_state ||
          !rd.messages_after_persist.empty()) {
        rep.pending.push_back(
            {rd.snapshot, rd.entries, rd.hard_state, std::move(rd.messages_after_persist)});
      }
      rep.group->advance(rd);
      check();
    }
  }

  bool persist_one(uint64_t id) {
    Replica& rep = r(id);
    if (rep.pending.empty()) return false;
    Replica::Write w = std::move(rep.pending.front());
    rep.pending.pop_front();
    if (w.snapshot) rep.storage->install_snapshot(w.snapshot->meta);
    if (!w.entries.empty()) rep.storage->append(w.entries);
    if (w.hard_state) rep.durable = *w.hard_state;
    for (Message& m : w.after_persist) send(std::move(m));
    if (!w.entries.empty()) {
      rep.group->on_persisted(w.entries.back().index, w.entries.back().term);
    }
    if (w.snapshot) rep.group->on_snapshot_installed(w.snapshot->meta);
    return true;
  }

  // Every replica's Readys processed and made durable, and every message delivered, until quiet.
  void settle() {
    for (int round = 0; round < 200; ++round) {
      bool any = false;
      for (auto& [id, rep] : replicas_) {
        while (rep.group->has_ready() || !rep.pending.empty()) {
          drive(id);
          while (persist_one(id)) any = true;
          any = true;
        }
        while (!rep.snapshot_requests.empty()) any |= serve_snapshot(id);
      }
      if (!net_.empty()) {
        std::deque<Message> batch;
        batch.swap(net_);
        for (const Message& m : batch) deliver(m);
        any = true;
      }
      check();
      if (!any) return;
    }
  }

  void elect(uint64_t id) {
    for (int i = 0; i < 30 && r(id).group->role() == Role::kFollower; ++i) {
      r(id).group->tick();
    }
    settle();
    if (r(id).group->role() != Role::kLeader) {
      Message m;
      m.type = MessageType::kTimeoutNow;
      m.group = kGroup;
      m.from = NodeId(id);
      m.to = NodeId(id);
      m.term = r(id).group->term();
      r(id).group->step(m);
      settle();
    }
  }

  // A crash (the writes not yet durable are lost) and a restart from the durable state; the
  // application is durable at the storage's snapshot, so later entries are applied again.
  void restart(uint64_t id) {
    Replica& rep = r(id);
    rep.pending.clear();
    rep.snapshot_requests.clear();
    rep.snapshots_sent.clear();
    const SnapshotMeta snap = rep.storage->snapshot();
    rep.group.reset();
    rep.group =
        std::make_unique<Group>(rep.config, *rep.storage, BootState{rep.durable, snap, snap.index});
  }

  void compact_all() {
    for (auto& [id, rep] : replicas_) compact(id);
  }

  void compact(uint64_t id) {
    Replica& rep = r(id);
    LogIndex at = std::min(rep.group->applied_index(), rep.durable.commit);
    if (at <= rep.storage->snapshot().index) return;
    Result<SnapshotMeta> meta = rep.group->compact(at);
    if (meta.is_ok()) rep.storage->compact(meta.value());
  }

  // A leader answers one snapshot request (the daemon streams the app's snapshot).
  bool serve_snapshot(uint64_t id) {
    Replica& rep = r(id);
    if (!rep.snapshots_sent.empty() && in_.ConsumeBool()) {
      NodeId to = rep.snapshots_sent.front();
      rep.snapshots_sent.erase(rep.snapshots_sent.begin());
      rep.group->report_snapshot(to, in_.ConsumeBool());
      return true;
    }
    if (rep.snapshot_requests.empty()) return false;
    NodeId to = rep.snapshot_requests.front();
    rep.snapshot_requests.erase(rep.snapshot_requests.begin());
    Result<SnapshotMeta> meta = rep.group->snapshot_meta_at(rep.group->applied_index());
    if (!meta.is_ok()) {
      rep.group->report_snapshot(to, false);
      return true;
    }
    rep.group->send_snapshot(to, Snapshot{meta.value(), {}});
    rep.snapshots_sent.push_back(to);
    return true;
  }

  void drop_traffic_of(uint64_t id) {
    std::deque<Message> keep;
    for (Message& m : net_) {
      if (m.from != NodeId(id) && m.to != NodeId(id)) keep.push_back(std::move(m));
    }
    net_.swap(keep);
  }

  void tick(uint64_t id) {
    const int n = in_.ConsumeIntegralInRange<int>(1, 12);
    for (int i = 0; i < n; ++i) {
      r(id).group->tick();
      check();
    }
  }

  // Delivers, loses or reorders some of the honest traffic.
  void deliver_some() {
    const int n = in_.ConsumeIntegralInRange<int>(1, 16);
    for (int i = 0; i < n && !net_.empty(); ++i) {
      const size_t at = in_.ConsumeIntegralInRange<size_t>(0, std::min<size_t>(net_.size() - 1, 3));
      Message m = std::move(net_[at]);
      net_.erase(net_.begin() + static_cast<std::ptrdiff_t>(at));
      const uint8_t how = in_.ConsumeIntegralInRange<uint8_t>(0, 7);
      if (how == 0) continue;           // lost
      if (how == 1) net_.push_back(m);  // duplicated, delivered again later
      deliver(m);
      check();
    }
  }

  void propose(uint64_t id) {
    std::string data = in_.ConsumeBytesAsString(in_.ConsumeIntegralInRange<size_t>(0, 48));
    (void)r(id).group->propose(std::move(data));
  }

  ConfChange forge_conf_change() {
    ConfChange cc;
    cc.transition = static_cast<ConfTransition>(in_.ConsumeIntegralInRange<uint8_t>(0, 3));
    const size_t n = in_.ConsumeBool() ? in_.ConsumeIntegralInRange<size_t>(0, 3)
                                       : in_.ConsumeIntegralInRange<size_t>(0, 1100);
    for (size_t i = 0; i < n; ++i) {
      ConfChangeItem item;
      item.type = static_cast<ConfChangeType>(in_.ConsumeIntegralInRange<uint8_t>(0, 3));
      item.node = NodeId(in_.ConsumeIntegralInRange<uint64_t>(0, 6));
      cc.changes.push_back(item);
    }
    return cc;
  }

  void propose_conf_change(uint64_t id) {
    (void)r(id).group->propose_conf_change(forge_conf_change());
  }

  void misc(uint64_t id) {
    Group& g = *r(id).group;
    switch (in_.ConsumeIntegralInRange<int>(0, 4)) {
      case 0: (void)g.read_index(in_.ConsumeIntegral<uint16_t>()); break;
      case 1: (void)g.transfer_leader(NodeId(in_.ConsumeIntegralInRange<uint64_t>(0, 6))); break;
      case 2: g.wake(); break;
      case 3: g.report_unreachable(NodeId(in_.ConsumeIntegralInRange<uint64_t>(1, 6))); break;
      case 4:
        while (persist_one(id)) {
        }
        break;
    }
  }

  // A value near `base` (most forged fields are off by a little from the truth), or anything.
  uint64_t near(uint64_t base) {
    switch (in_.ConsumeIntegralInRange<int>(0, 7)) {
      case 0: return in_.ConsumeIntegral<uint64_t>() >> in_.ConsumeIntegralInRange<int>(0, 63);
      case 1: return 0;
      default: {
        const int64_t d = in_.ConsumeIntegralInRange<int64_t>(-3, 3);
        return d < 0 && base < static_cast<uint64_t>(-d) ? 0 : base + d;
      }
    }
  }

  ConfState forge_conf_state() {
    ConfState cs;
    auto list = [&](std::vector<NodeId>* v) {
      for (uint64_t n = 1; n <= 6; ++n) {
        if (in_.ConsumeIntegralInRange<int>(0, 2) == 0) v->push_back(NodeId(n));
      }
    };
    list(&cs.voters);
    if (in_.ConsumeBool()) list(&cs.learners);
    if (in_.ConsumeBool()) list(&cs.voters_outgoing);
    if (in_.ConsumeBool()) list(&cs.learners_next);
    cs.auto_leave = in_.ConsumeBool();
    return cs;
  }

  std::vector<Entry> forge_entries(const Message& m) {
    std::vector<Entry> es;
    const size_t n = in_.ConsumeIntegralInRange<size_t>(0, 5);
    Term t = m.log_term;
    for (size_t i = 0; i < n; ++i) {
      Entry e;
      if (in_.ConsumeIntegralInRange<int>(0, 3) == 0 && t < m.term) t = t + 1;
      e.term = in_.ConsumeIntegralInRange<int>(0, 15) == 0 ? Term(near(t.value())) : t;
      e.index = in_.ConsumeIntegralInRange<int>(0, 15) == 0
                    ? LogIndex(near(m.index.value() + 1 + i))
                    : m.index + (i + 1);
      e.type = static_cast<EntryType>(in_.ConsumeIntegralInRange<uint8_t>(0, 3));
      if (e.type == EntryType::kConfChange && in_.ConsumeBool()) {
        e.data = encode_conf_change(forge_conf_change());
      } else if (e.type != EntryType::kEmpty || in_.ConsumeIntegralInRange<int>(0, 7) == 0) {
        e.data = in_.ConsumeBytesAsString(in_.ConsumeIntegralInRange<size_t>(0, 12));
      }
      es.push_back(std::move(e));
    }
    return es;
  }

  // A message from a peer of the target: fresh, or a recently sent one altered and redirected.
  void forge() {
    Group& g = *r(target_).group;
    Message m;
    if (!recent_.empty() && in_.ConsumeBool()) {
      m = recent_[in_.ConsumeIntegralInRange<size_t>(0, recent_.size() - 1)];
    } else {
      m.type = static_cast<MessageType>(
          in_.ConsumeIntegralInRange<uint8_t>(0, transport::kMessageTypeMax + 1));
      m.term = g.term();
      m.index = g.last_index();
      m.log_term = g.last_term();
      m.commit = g.commit_index();
    }
    uint64_t from = in_.ConsumeIntegralInRange<uint64_t>(1, kNonMember);
    if (from == target_) from = kNonMember;
    m.from = NodeId(from);
    m.to = NodeId(target_);
    m.group = kGroup;
    const uint8_t alter = in_.ConsumeIntegral<uint8_t>();
    if (alter & 1) m.term = Term(near(g.term().value()));
    if (alter & 2)
      m.index =
          LogIndex(near(in_.ConsumeBool() ? g.last_index().value() : g.commit_index().value()));
    if (alter & 4) m.log_term = Term(near(m.term.value()));
    if (alter & 8) m.commit = LogIndex(near(g.last_index().value()));
    if (alter & 16) {
      m.reject = in_.ConsumeBool();
      m.reject_hint = LogIndex(near(m.index.value()));
      m.context = near(in_.ConsumeIntegralInRange<uint64_t>(0, 4));
    }
    if (alter & 32) {
      m.transfer = in_.ConsumeBool();
      m.transfer_target = NodeId(in_.ConsumeIntegralInRange<uint64_t>(0, 6));
    }
    if ((alter & 64) && m.type == MessageType::kAppend) m.entries = forge_entries(m);
    if ((alter & 128) || (m.type == MessageType::kSnapshot && !m.snapshot)) {
      Snapshot s;
      s.meta.index = LogIndex(near(g.commit_index().value() + 2));
      s.meta.term = Term(near(m.term.value()));
      s.meta.conf_state = forge_conf_state();
      m.snapshot = s;
    }
    transport::ValidationContext ctx{m.from, m.to, {}};
    const bool valid = transport::validate(m, ctx).is_ok();
    if (!valid && in_.ConsumeBool()) return;
    g.step(m);
    check();
    if (in_.ConsumeBool()) drive(target_);
  }

  FuzzedDataProvider& in_;
  std::map<uint64_t, Replica> replicas_;
  std::deque<Message> net_;
  std::deque<Message> recent_;
  uint64_t target_ = 1;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  World w(in);
  w.setup();
  w.run();
  return 0;
}
