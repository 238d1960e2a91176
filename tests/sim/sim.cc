// The simulator's setup, event loop, Ready cycle and disks (sim_impl.h).
#include "sim_impl.h"

namespace raftd::sim::detail {
namespace {

// The seed's modes, from a stream of their own, then the forced ones. Plain Raft (no PreVote, no
// CheckQuorum) and each driver behaviour get a fair share of seeds; membership changes run in
// two seeds out of three.
Modes draw_modes(uint64_t seed, const std::map<std::string, bool>& force) {
  Prng side(seed ^ 0x6d0de5ULL);
  Modes m;
  m.membership = side.below(3) != 0;
  m.pre_vote = side.below(4) != 0;
  m.check_quorum = side.below(4) != 0;
  m.lazy_ready = side.below(3) == 0;
  m.split_hs = side.below(3) == 0;
  m.disk_stall = side.below(4) == 0;
  m.wire_survives = side.below(3) == 0;
  m.two_to_one = side.below(2) == 0;
  m.coalesce_hs = side.below(3) == 0;
  m.compaction = side.below(3) == 0;   // drawn after the others: their draws stay as they were
  m.lazy_commit = side.below(3) == 0;  // likewise after compaction
  for (const auto& [name, on] : force) {
    RAFTD_ASSERT(set_mode(&m, name, on), "sim: unknown mode (checked by the CLI)");
  }
  return m;
}

// Rates of the membership and driver modes, from the main stream after the fault mix.
void draw_mode_rates(Prng& rng, Swarm* s) {
  const Modes& m = s->modes;
  if (m.membership) {
    s->conf_ppm = static_cast<uint32_t>(rng.range(1, 6)) * 4'000;
    s->remove_leader_ppm = static_cast<uint32_t>(rng.range(0, 4)) * 100'000;
  }
  if (m.lazy_ready) s->lazy_ready_ppm = static_cast<uint32_t>(rng.range(3, 9)) * 100'000;
  if (m.split_hs) s->split_landed_ppm = static_cast<uint32_t>(rng.range(2, 8)) * 100'000;
  if (m.disk_stall) {
    s->stall_ppm = static_cast<uint32_t>(rng.range(1, 10)) * 1'000;
    s->stall_max_us = static_cast<int64_t>(rng.range(100, 3000)) * kUsPerMs;
  }
  if (m.wire_survives) s->wire_ppm = static_cast<uint32_t>(rng.range(3, 10)) * 100'000;
}

// The compaction mode's rates, from a stream of their own (seeds without the mode run as before
// it existed). Thresholds from 1 entry (a snapshot for nearly every follower that falls behind)
// to 128; the app makes its state durable every 1-32 entries applied.
void draw_compaction(uint64_t seed, uint32_t faults, Swarm* s) {
  if (!s->modes.compaction) return;
  Prng side(seed ^ 0xc0a1e5ceULL);
  s->compact_after = uint64_t{1} << side.below(8);
  s->flush_every = uint64_t{1} << side.below(6);
  if (faults & kFaultCrash) s->snap_crash_ppm = static_cast<uint32_t>(side.range(1, 4)) * 100'000;
}

// The lazy-commit mode's rate, from a stream of its own.
void draw_lazy_commit(uint64_t seed, Swarm* s) {
  if (!s->modes.lazy_commit) return;
  Prng side(seed ^ 0x1a2ec0ULL);
  s->lazy_flush_ppm = static_cast<uint32_t>(side.range(1, 10)) * 100'000;
}

}  // namespace

Swarm draw_swarm(Prng& rng, const SimOptions& o) {
  const uint64_t seed = o.seed;
  const uint32_t faults = o.faults;
  Swarm s;
  s.delay_max_us = static_cast<int64_t>(rng.range(1, 15)) * kUsPerMs;
  s.disk_max_us = static_cast<int64_t>(rng.range(1, 25)) * kUsPerMs;
  s.max_msg_bytes = static_cast<uint32_t>(rng.range(1, 16)) * 64;
  s.max_inflight_msgs = static_cast<uint32_t>(rng.range(1, 16));
  s.transfer_ppm = static_cast<uint32_t>(rng.range(0, 3)) * 2'000;
  s.think_max_us = static_cast<int64_t>(rng.range(1, 40)) * kUsPerMs;
  if (faults & kFaultNetwork) {
    s.loss_ppm = static_cast<uint32_t>(rng.range(0, 20)) * 10'000;
    s.dup_ppm = static_cast<uint32_t>(rng.range(0, 10)) * 10'000;
    s.spike_ppm = static_cast<uint32_t>(rng.range(0, 5)) * 5'000;
  }
  if (faults & kFaultPartition) {
    s.leader_churn = rng.below(3) == 0;
    s.partition_ppm = static_cast<uint32_t>(rng.range(5, 40)) * (s.leader_churn ? 5'000 : 1'000);
  }
  if (faults & kFaultCrash) {
    s.crash_ppm = static_cast<uint32_t>(rng.range(2, 30)) * 1'000;
    s.crash_all_ppm = rng.below(2) ? static_cast<uint32_t>(rng.range(1, 5)) * 1'000 : 0;
    s.fresh_leader_crash_ppm = static_cast<uint32_t>(rng.range(0, 6)) * 100'000;
    s.after_commit_crash_ppm = static_cast<uint32_t>(rng.range(0, 3)) * 10'000;
    s.after_first_commit_crash_ppm = static_cast<uint32_t>(rng.range(0, 10)) * 100'000;
    s.landed_ppm = static_cast<uint32_t>(rng.range(0, 10)) * 100'000;
    s.restart_max_us = static_cast<int64_t>(rng.range(30, 1000)) * kUsPerMs;
  }
  // Drawn from a stream of its own so that adding it left every other draw of a seed as it was.
  Prng side(seed ^ 0x51e5ce5eULL);
  s.quiesce_after_ticks = side.below(3) == 0 ? static_cast<uint32_t>(side.range(3, 20)) : 0;
  s.modes = draw_modes(seed, o.force);
  if (auto it = o.force.find("quiesce"); it != o.force.end()) {
    s.quiesce_after_ticks = it->second ? static_cast<uint32_t>(side.range(3, 20)) : 0;
  }
  s.modes.quiesce = s.quiesce_after_ticks > 0;
  draw_mode_rates(rng, &s);
  draw_compaction(seed, faults, &s);
  draw_lazy_commit(seed, &s);
  return s;
}

// ---------------------------------------------------------------------------------------------
// Setup

raft::Config Sim::make_config(uint64_t node_id, int group) {
  raft::Config c;
  c.id = NodeId(node_id);
  c.group = GroupId(static_cast<uint64_t>(group) + 1);
  c.election_tick = kElectionTicks;
  c.heartbeat_tick = 1;
  c.max_inflight_msgs = swarm_.max_inflight_msgs;
  c.max_msg_bytes = swarm_.max_msg_bytes;
  c.quiesce_after_ticks = swarm_.quiesce_after_ticks;
  c.pre_vote = swarm_.modes.pre_vote;
  c.check_quorum = swarm_.modes.check_quorum;
  c.random_seed = rng_.fork();
  RAFTD_ASSERT(c.validate().is_ok(), "sim: invalid raft config");
  return c;
}

void Sim::init() {
  auto bug = raft::parse_sim_bug(o_.bug);
  RAFTD_ASSERT(bug.has_value(), "sim: unknown bug name (checked by the CLI)");
  raft::set_sim_bug(*bug);
  swarm_ = draw_swarm(rng_, o_);
  result_.modes = modes_name(swarm_.modes);
  // Spare nodes host no replica at first; membership changes add them to groups.
  n_nodes_ = o_.nodes + (swarm_.modes.membership ? o_.spares : 0);
  raft::ConfState cs;
  for (int i = 1; i <= o_.nodes; ++i) cs.voters.push_back(NodeId(static_cast<uint64_t>(i)));
  genesis_ = raft::SnapshotMeta{LogIndex(0), Term(0), cs};
  blocked_.assign(static_cast<size_t>(n_nodes_),
                  std::vector<bool>(static_cast<size_t>(n_nodes_), false));
  for (size_t i = 0; i < static_cast<size_t>(n_nodes_); ++i) {
    Node& n = nodes_.emplace_back();
    n.id = i + 1;
    // Clocks drift: each node ticks at its own rate, within 5% of nominal.
    n.tick_period_us = kTickUs - 500 + static_cast<int64_t>(rng_.below(1001));
    n.lazy_ready = swarm_.modes.lazy_ready && rng_.below(2) == 0;
    n.retired.assign(static_cast<size_t>(o_.groups), false);
    n.removed_at.assign(static_cast<size_t>(o_.groups), LogIndex(0));
    for (int g = 0; g < o_.groups; ++g) {
      std::unique_ptr<Replica> r;
      if (static_cast<int>(i) < o_.nodes) {
        r = std::make_unique<Replica>();
        r->storage = raft::MemoryLogStorage(genesis_);
        r->durable_conf = genesis_.conf_state;
      }
      n.replicas.push_back(std::move(r));
    }
    boot(n);
    schedule(Event{.t = static_cast<int64_t>(rng_.below(kTickUs)),
                   .kind = Ev::kTick,
                   .node = static_cast<int>(i)});
  }
  record_.resize(static_cast<size_t>(o_.groups));
  facts_.resize(static_cast<size_t>(o_.groups));
  live_.assign(static_cast<size_t>(o_.groups), false);
  marker_.resize(static_cast<size_t>(o_.groups));
  marker_term_.resize(static_cast<size_t>(o_.groups));
  healthy_since_.assign(static_cast<size_t>(o_.groups), -1);
  avail_live_.assign(static_cast<size_t>(o_.groups), false);
  conf_record_.resize(static_cast<size_t>(o_.groups));
  // One seed in three leaves one group without clients: idle groups are where quiescing acts,
  // and no client request wakes their replicas.
  Prng side(o_.seed ^ 0x1d1eULL);
  const int idle =
      side.below(3) == 0 ? static_cast<int>(side.below(static_cast<uint64_t>(o_.groups))) : -1;
  for (int g = 0; g < o_.groups; ++g) {
    for (int k = 0; k < o_.clients_per_group && g != idle; ++k) {
      const int id = static_cast<int>(clients_.size());
      clients_.push_back(Client{.id = id, .group = g});
      schedule(Event{.t = static_cast<int64_t>(rng_.below(50 * kUsPerMs)),
                     .kind = Ev::kClientStart,
                     .node = id});
    }
  }
  schedule(Event{.t = kTickUs, .kind = Ev::kWorld});
}

// (Re)creates every replica of a node from its durable state, as the daemon does after a crash.
void Sim::boot(Node& n) {
  for (size_t g = 0; g < n.replicas.size(); ++g) {
    if (!n.replicas[g]) continue;
    Replica& r = *n.replicas[g];
    const raft::SnapshotMeta& snap = r.storage.snapshot();
    // The daemon boots from (snapshot, last durable hard state, the app's durable applied
    // index): raft.h, BootState. The log was compacted only up to what the app made durable,
    // and the app made durable only what its durable commit index covered.
    const LogIndex applied = r.durable.applied;
    const LogIndex commit = std::max(r.hard_state.commit, snap.index);
    if (applied < snap.index || applied > commit || applied > r.storage.last_index()) {
      violate(
          fmt::format("node {} group {}: restarts with its app durable at {}, outside [snapshot "
                      "{}, commit {}] or beyond its durable log ({})",
                      n.id, g + 1, applied.value(), snap.index.value(), commit.value(),
                      r.storage.last_index().value()));
      continue;
    }
    result_.stats.boots_compacted += snap.index > LogIndex(0);
    result_.stats.boots_app_ahead += applied > snap.index;
    // The last durable hard state, as raft.h requires (the commit index is durable state).
    r.group = std::make_unique<raft::Group>(make_config(n.id, static_cast<int>(g)), r.storage,
                                            raft::BootState{r.hard_state, snap, applied});
    r.app = r.durable;
    r.conf = r.durable_conf;  // as of the app's durable index: the core must agree (check_conf)
    r.checked_commit = snap.index;  // the next check verifies the durable log against the record
    r.seen_commit = commit;
    r.reads.clear();
    r.proposals.clear();
    r.unsynced.clear();  // what was not durable is gone
    r.unsynced_bytes = 0;
    r.unsynced_max_entry = 0;
    r.hs_slot.reset();
    r.lazy_hs.reset();
    r.hs_commit = r.hard_state.commit;
  }
}

void Sim::schedule(Event e) {
  e.seq = seq_++;
  heap_.push_back(e);
  std::push_heap(heap_.begin(), heap_.end(), std::greater<>());
}

// ---------------------------------------------------------------------------------------------
// The event loop

SimResult Sim::run() {
  init();
  const int64_t fault_end = static_cast<int64_t>(o_.steps) * kTickUs;
  while (!heap_.empty() && result_.ok) {
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<>());
    const Event e = heap_.back();
    heap_.pop_back();
    now_ = e.t;
    if (!healed_ && now_ >= fault_end) heal();
    hash(static_cast<uint64_t>(e.t));
    hash(static_cast<uint64_t>(e.kind) << 32 | static_cast<uint64_t>(e.node) << 16 |
         static_cast<uint64_t>(e.group));
    dispatch(e);
    if (++result_.stats.events > kEventsMax) violate("simulator: event budget exceeded");
    if (live_time_ >= 0) {
      const bool idle =
          std::none_of(clients_.begin(), clients_.end(), [](const Client& c) { return c.busy; });
      if (idle || now_ > live_time_ + kClientTimeoutUs) break;
    }
  }
  result_.stats.sim_ms = now_ / kUsPerMs;
  result_.stats.elections = leaders_.size();
  for (const auto& g : record_) {
    for (const Record& r : g) result_.stats.committed += r.term != 0;
  }
  if (result_.ok) {
    for (Client& c : clients_) {
      if (c.busy) client_complete(c, lincheck::EventType::kInfo);
    }
    lincheck::HistoryBuilder builder;
    for (size_t i = 0; i < history_.size(); ++i) {
      Status s = builder.add(history_[i], i + 1);
      RAFTD_ASSERT(s.is_ok(), "sim: the simulator recorded a malformed history");
    }
    const std::vector<lincheck::Op> ops = std::move(builder).finish();
    const lincheck::CheckResult check = lincheck::check(ops);
    if (check.verdict == lincheck::Verdict::kNotLinearizable) {
      violate(fmt::format("client history not linearizable (key {})", check.failures[0].key));
      result_.details += lincheck::describe(ops, check);
    } else if (check.verdict == lincheck::Verdict::kUnknown) {
      violate("client history: linearizability search exceeded its budget");
    }
  }
  result_.trace_hash = hash_;
  raft::set_sim_bug(raft::Bug::kNone);
  return result_;
}

void Sim::dispatch(const Event& e) {
  switch (e.kind) {
    case Ev::kTick: {
      Node& n = node(e.node);
      if (n.up) {
        for (int g = 0; g < o_.groups && result_.ok; ++g) {
          if (!hosts(e.node, g)) continue;
          rep(e.node, g).group->tick();
          drain(e.node, g);  // a lazy driver too (maybe_drain): a Ready waits a tick at most
        }
        // coalesce-hs: hard states nothing waited for go out with the next batch, or on an
        // idle disk at the next tick.
        if (swarm_.modes.coalesce_hs && n.writing.empty()) disk_start(e.node);
        // lazy-commit: a tick writes the lazy hard states (now and then, see lazy_flush_ppm).
        if (swarm_.modes.lazy_commit && n.writing.empty() && rng_.chance(swarm_.lazy_flush_ppm)) {
          queue_lazy_hard_states(e.node);
          disk_start(e.node);
        }
      }
      schedule(Event{.t = now_ + n.tick_period_us, .kind = Ev::kTick, .node = e.node});
      break;
    }
    case Ev::kWorld: world_tick(); break;
    case Ev::kDeliver: deliver(e); break;
    case Ev::kDiskDone: disk_done(e); break;
    case Ev::kCrash:
      if (!healed_ && node(e.node).up && e.a == node(e.node).incarnation) {
        crash(e.node, e.b == 1);
      }
      break;
    case Ev::kRestart:
      if (!node(e.node).up && e.a == node(e.node).incarnation) restart(e.node);
      break;
    case Ev::kHealPartition:
      if (partitioned_ && e.a == partition_gen_) {
        for (auto& row : blocked_) std::fill(row.begin(), row.end(), false);
        partitioned_ = false;
        trace("partition healed");
        fault_changed();
        wake_all();
      }
      break;
    case Ev::kClientStart: client_start(e.node); break;
    case Ev::kClientTimeout: {
      Client& c = clients_[static_cast<size_t>(e.node)];
      if (c.busy && c.serial == e.a) client_complete(c, lincheck::EventType::kInfo);
      break;
    }
    case Ev::kSnapshotReport: {
      Node& n = node(e.node);
      if (n.up && n.incarnation == e.b && hosts(e.node, e.group)) {
        rep(e.node, e.group).group->report_snapshot(NodeId(e.a >> 1), (e.a & 1) != 0);
        drain(e.node, e.group);
      }
      break;
    }
  }
}

void Sim::world_tick() {
  ++world_ticks_;
  if (!healed_) inject_faults();
  if (world_ticks_ % kLogCheckEveryTicks == 0) check_logs();
  for (int g = 0; g < o_.groups && swarm_.modes.membership && result_.ok; ++g) {
    leave_explicit_joint(g);
  }
  if (swarm_.modes.membership && result_.ok) destroy_removed();
  if (healed_) liveness_tick();
  if (!healed_) availability_tick();
  if (swarm_.modes.quiesce) check_quiesced();
  schedule(Event{.t = now_ + kTickUs, .kind = Ev::kWorld});
}

// ---------------------------------------------------------------------------------------------
// Driving the core: the Ready cycle of raft.h, with the disk in between.

void Sim::drain(int n, int g) {
  Replica& r = rep(n, g);
  if (!r.group) return;
  const raft::ConfState before = r.group->conf_state();
  const uint64_t seq = ++drain_seq_;
  raft::Ready rd;
  std::swap(rd, node(n).kept_ready);  // a drain entered from within this one finds it empty
  while (result_.ok && r.group->has_ready()) {
    r.group->ready(&rd);
    process_ready(n, g, rd);
  }
  std::swap(rd, node(n).kept_ready);
  if (result_.ok) check_conf(n, g);
  if (result_.ok) check_commit_quorum(n, g, before, seq);
  if (result_.ok) check_replica(n, g);
}

// A lazy driver steps several inputs before it calls ready(): on a lazy-Ready node an input is
// left undrained at random; a later input, at the latest the next tick, drains them all. (Ticks
// were lazy too until 2026-12-02: a Ready could wait many ticks, so a vote took longer to
// become durable than an election timeout, and with PreVote off two candidates kept raising
// the term past each other, seeds 346 and 1355: a driver slower than the timeouts, which no
// configuration can make live.)
void Sim::maybe_drain(int n, int g) {
  if (node(n).lazy_ready && rng_.chance(swarm_.lazy_ready_ppm)) return;
  drain(n, g);
}

void Sim::process_ready(int n, int g, raft::Ready& rd) {
  Replica& r = rep(n, g);
  for (const Message& m : rd.messages) send(n, m);
  if (rd.snapshot) {
    note_snapshot_install(n, g, *rd.snapshot);
    if (!result_.ok) return;
    r.conf = rd.snapshot->meta.conf_state;
    // The application installs the snapshot before anything after it is applied.
    r.app = App::decode(rd.snapshot->data, rd.snapshot->meta.index);
    ++result_.stats.snapshots;
    trace(fmt::format("n{} g{} installs snapshot at {}", n + 1, g + 1,
                      rd.snapshot->meta.index.value()));
  }
  check_new_entries(n, g, rd.entries);
  if (!result_.ok) return;
  std::optional<raft::HardState> hs = rd.hard_state;
  if (swarm_.modes.lazy_commit && rd.hard_state_lazy) {
    // raft.h "Lazy commit": nothing waits for it; it goes out with the node's next batch.
    r.lazy_hs = hs;
    hs.reset();
    ++result_.stats.hs_lazy;
  } else if (hs) {
    r.lazy_hs.reset();  // a newer hard state, written, stands for it
  }
  for (const Entry& e : rd.entries) {
    if (e.type == raft::EntryType::kConfChange) r.conf_entries[e.index] = e.term;
  }
  bool commits_conf = false;
  if (rd.hard_state) {
    const LogIndex commit = rd.hard_state->commit;
    for (auto it = r.conf_entries.upper_bound(r.hs_commit);
         it != r.conf_entries.end() && it->first <= commit; ++it) {
      commits_conf = commits_conf || r.group->term_at(it->first) == it->second;
    }
    r.hs_commit = std::max(r.hs_commit, commit);
  }
  if (hs || !rd.entries.empty() || rd.snapshot || !rd.messages_after_persist.empty()) {
    DiskWrite w{g,
                rd.snapshot,
                rd.entries,
                hs,
                std::move(rd.messages_after_persist),
                commits_conf && hs.has_value()};
    if (!swarm_.modes.coalesce_hs || coalesce_hard_state(n, &w)) disk_enqueue(n, std::move(w));
  }
  r.group->advance(rd);
  for (const Entry& e : rd.committed_entries) {
    apply(n, g, e);
    if (!result_.ok) return;
  }
  note_applied_conf(n, g, rd);
  if (!result_.ok) return;
  check_reads(n, g);
  for (const raft::ReadState& rs : rd.read_states) {
    auto it = r.reads.find(rs.request_id);
    if (it == r.reads.end()) continue;
    Client& c = clients_[static_cast<size_t>(it->second)];
    r.reads.erase(it);
    if (!rs.ok) {
      client_complete(c, lincheck::EventType::kFail);
    } else {
      c.read_index = rs.index;
      check_reads(n, g);
    }
  }
  for (NodeId to : rd.snapshot_requests) {
    // The state as applied, or (compaction mode, half the time) the app's durable state, as a
    // daemon that streams its state file does: older, its configuration perhaps from before
    // the receiver was added.
    const bool durable = swarm_.flush_every > 0 && rng_.below(2) == 0;
    const App& state = durable ? r.durable : r.app;
    auto meta = r.group->snapshot_meta_at(state.applied);
    if (!meta) {
      r.group->report_snapshot(to, false);
      continue;
    }
    r.group->send_snapshot(to, raft::Snapshot{*meta, state.encode()});
    ++result_.stats.snapshots_sent;
  }
  maybe_flush_app(n, g);
  maybe_compact(n, g);
}

void Sim::apply(int n, int g, const Entry& e) {
  Replica& r = rep(n, g);
  if (e.index != r.app.applied + 1) {
    violate(fmt::format("node {} group {} applies index {} after {}", n + 1, g + 1, e.index.value(),
                        r.app.applied.value()));
    return;
  }
  auto& rec = record_[static_cast<size_t>(g)];
  if (rec.size() <= e.index.value()) rec.resize(e.index.value() + 1);
  Record& x = rec[e.index.value()];
  if (x.term != 0 && x.term != e.term.value()) {
    violate(
        fmt::format("group {} index {}: node {} applies an entry of term {}, but term {} "
                    "was committed there",
                    g + 1, e.index.value(), n + 1, e.term.value(), x.term));
    return;
  }
  if (x.applied && x.data != e.data) {
    violate(fmt::format("group {} index {}: node {} applies different data than another replica",
                        g + 1, e.index.value(), n + 1));
    return;
  }
  if (x.term == 0) x.drain = drain_seq_;
  x.term = e.term.value();
  x.applied = true;
  x.data = e.data;
  r.app.applied = e.index;
  const bool cas_ok = e.type == raft::EntryType::kNormal ? r.app.apply(e.data) : true;
  auto p = r.proposals.find(e.index);
  if (p == r.proposals.end()) return;
  Client& c = clients_[static_cast<size_t>(p->second)];
  r.proposals.erase(p);
  if (e.term != c.term) {
    // Another entry committed at this index: ours never will (Raft's log matching).
    client_complete(c, lincheck::EventType::kFail);
  } else {
    client_complete(c, cas_ok ? lincheck::EventType::kOk : lincheck::EventType::kFail);
  }
}

// The application makes its state durable (compaction mode; otherwise only with a compaction,
// below). Never beyond the durable commit index (raft.h, "Hard state"), and only at an index
// its durable log holds: right after the app installed a snapshot in memory, the snapshot is
// not durable yet.
void Sim::maybe_flush_app(int n, int g) {
  if (swarm_.flush_every == 0) return;
  Replica& r = rep(n, g);
  const LogIndex at = r.app.applied;
  if (at < r.durable.applied + swarm_.flush_every) return;
  if (at > r.hard_state.commit) return;
  if (at < r.storage.snapshot().index || at > r.storage.last_index()) return;
  r.durable = r.app;
  r.durable_conf = r.conf;
  ++result_.stats.app_flushes;
}

// The log is compacted up to what the application made durable, never beyond: a restart boots
// from the snapshot and the app's durable state and replays the log between them.
void Sim::maybe_compact(int n, int g) {
  Replica& r = rep(n, g);
  const bool own_flush = swarm_.flush_every > 0;
  // Without flushes of its own the app makes its state durable here, as the snapshot.
  const LogIndex at = own_flush && !o_.compact_past_durable ? r.durable.applied : r.app.applied;
  if (at <= r.storage.snapshot().index) return;
  if (at - r.storage.snapshot().index < swarm_.compact_after) return;
  if (at > r.storage.last_index()) return;  // applied entries are durable, but be exact
  // The applied state may become durable only up to the durable commit index (raft.h).
  if (at > r.hard_state.commit) return;
  auto meta = r.group->compact(at);
  if (!meta && meta.status().code() == Code::kUnavailable) return;  // a snapshot is installing
  if (!meta) {
    violate(fmt::format("node {} group {}: compact({}) at the applied index failed: {}", n + 1,
                        g + 1, at.value(), meta.status().to_string()));
    return;
  }
  // Snapshot file first (durable at once: a local operation), then drop the log prefix.
  if (!own_flush) {
    r.durable = r.app;
    r.durable_conf = r.conf;
    ++result_.stats.app_flushes;
  }
  if (meta->index > r.durable.applied) {
    violate(
        fmt::format("node {} group {}: compacts its log to {}, past its app's durable applied "
                    "index {}",
                    n + 1, g + 1, meta->index.value(), r.durable.applied.value()));
    return;
  }
  r.storage.compact(*meta);
  ++(r.group->role() == raft::Role::kLeader ? result_.stats.compactions_leader
                                            : result_.stats.compactions_follower);
}

void Sim::send(int from, const Message& m) {
  ++result_.stats.messages;
  const int to = static_cast<int>(m.to.value()) - 1;
  const int g = static_cast<int>(m.group.value()) - 1;
  const bool snap = m.type == MessageType::kSnapshot;
  Event e{.kind = Ev::kDeliver, .node = to, .group = g};
  if (to == from) {  // a replica's message to itself is local
    e.t = now_;
    e.a = seq_;
    in_flight_.emplace(e.a, m);
    schedule(e);
    return;
  }
  auto delay = [&] {
    int64_t d = static_cast<int64_t>(rng_.range(static_cast<uint64_t>(swarm_.delay_min_us),
                                                static_cast<uint64_t>(swarm_.delay_max_us)));
    if (rng_.chance(swarm_.spike_ppm)) d += static_cast<int64_t>(rng_.below(kSpikeUs));
    return d;
  };
  const bool muted =
      o_.mute_votes && (m.type == MessageType::kVoteResp || m.type == MessageType::kPreVoteResp);
  const bool lost = blocked_[static_cast<size_t>(from)][static_cast<size_t>(to)] ||
                    rng_.chance(swarm_.loss_ppm) || muted;
  const int copies = lost ? 0 : rng_.chance(swarm_.dup_ppm) ? 2 : 1;
  // An append of the leader's pipelined window (replicate state, inside the window it counts):
  // the flow-control check counts what these bring a follower (note_unsynced).
  bool pipelined = false;
  if (m.type == MessageType::kAppend && !m.entries.empty()) {
    if (raft::Group* leader = running(from, g)) {
      const std::optional<raft::ProgressView> pv = leader->progress(m.to);
      pipelined = pv && pv->state == raft::ProgressState::kReplicate && pv->inflight_msgs > 0 &&
                  m.entries.back().index < pv->next;
    }
  }
  if (lost) ++result_.stats.dropped;
  int64_t first = 0;
  for (int i = 0; i < copies; ++i) {
    e.t = now_ + delay();
    first = i == 0 ? e.t : first;
    e.a = seq_;
    in_flight_.emplace(e.a, m);
    if (pipelined) pipelined_.insert(e.a);
    schedule(e);
  }
  if (snap) {
    const uint64_t report = m.to.value() << 1 | (lost ? 0 : 1);
    schedule(Event{.t = lost ? now_ + delay() : first,
                   .kind = Ev::kSnapshotReport,
                   .node = from,
                   .group = g,
                   .a = report,
                   .b = node(from).incarnation});
  }
}

void Sim::deliver(const Event& e) {
  const bool pipelined = pipelined_.erase(e.a) > 0;
  auto it = in_flight_.find(e.a);
  if (it == in_flight_.end()) return;  // lost in its sender's crash
  const Message m = std::move(it->second);
  in_flight_.erase(it);
  hash(static_cast<uint64_t>(m.type) << 56 | m.from.value() << 48 | m.to.value() << 40 |
       m.term.value());
  hash(m.index.value() << 20 | m.entries.size() << 1 | (m.reject ? 1 : 0));
  if (!node(e.node).up || !hosts(e.node, e.group)) return;  // no replica there: dropped
  trace(fmt::format("n{} g{} <- n{} {} term {} index {} log_term {} entries {} commit {}{}",
                    e.node + 1, e.group + 1, m.from.value(), raft::message_type_name(m.type),
                    m.term.value(), m.index.value(), m.log_term.value(), m.entries.size(),
                    m.commit.value(), m.reject ? " reject" : ""));
  // Which of the append's entries the follower holds already (flow-control check, below).
  raft::Group& grp = *rep(e.node, e.group).group;
  std::vector<bool> had;
  if (m.type == MessageType::kAppend) {
    had.reserve(m.entries.size());
    for (const Entry& x : m.entries) had.push_back(grp.term_at(x.index) == x.term);
  }
  grp.step(m);
  if (m.type == MessageType::kAppend || m.type == MessageType::kSnapshot) {
    note_unsynced(e.node, e.group, m, pipelined ? had : std::vector<bool>(m.entries.size(), true));
    if (!result_.ok) return;
  }
  maybe_drain(e.node, e.group);
}

// ---------------------------------------------------------------------------------------------
// The disk: one per node, shared by all groups, with group commit like the WAL: everything
// queued when the disk becomes free goes out as one batch (one write + one fsync). A batch
// becomes durable when it completes; only then are its after-persist messages sent and the core
// told, in Ready order.

void Sim::disk_enqueue(int n, DiskWrite w) {
  node(n).disk.push_back(std::move(w));
  if (node(n).writing.empty()) disk_start(n);
}

// coalesce-hs (raft.h: "Writing only the newest of several queued hard states is fine"): a
// driver that keeps one hard state per replica and writes only the newest. A Ready whose hard
// state nothing waits for (no entries, snapshot or after-persist messages) only updates the
// replica's slot, which goes out with the node's next batch (or at its next tick), after that
// batch's entries; a Ready that writes takes the slot's place, and the hard states of its
// replica's earlier writes still queued for the next batch are dropped (the newest, written
// after them in the same batch, stands for them). A hard state that newly commits a
// configuration change is neither put in the slot nor dropped: it is written in Ready order,
// before the entries of later Readys (raft.h). Returns whether `w` is still to be written.
bool Sim::coalesce_hard_state(int n, DiskWrite* w) {
  Replica& r = rep(n, w->group);
  if (!w->snapshot && w->entries.empty() && w->after_persist.empty() && !w->commits_conf) {
    result_.stats.hs_coalesced += r.hs_slot.has_value();
    r.hs_slot = w->hard_state;
    return false;
  }
  if (!w->hard_state) {
    w->hard_state = r.hs_slot;
  } else {
    result_.stats.hs_coalesced += r.hs_slot.has_value();
    for (DiskWrite& q : node(n).disk) {
      if (q.group != w->group || !q.hard_state || q.commits_conf) continue;
      q.hard_state.reset();
      ++result_.stats.hs_coalesced;
    }
  }
  r.hs_slot.reset();
  return true;
}

void Sim::disk_start(int n) {
  Node& nd = node(n);
  if (swarm_.modes.coalesce_hs) {
    for (int g = 0; g < o_.groups; ++g) {
      if (!hosts(n, g) || !rep(n, g).hs_slot) continue;
      nd.disk.push_back(DiskWrite{.group = g, .hard_state = rep(n, g).hs_slot});
      rep(n, g).hs_slot.reset();
    }
  }
  if (nd.disk.empty()) return;
  // lazy-commit: they ride with a batch that is written anyway, after its other hard states.
  if (swarm_.modes.lazy_commit) queue_lazy_hard_states(n);
  nd.writing.swap(nd.disk);
  const int64_t latency = static_cast<int64_t>(rng_.range(
      static_cast<uint64_t>(swarm_.disk_min_us), static_cast<uint64_t>(swarm_.disk_max_us)));
  schedule(Event{.t = now_ + latency, .kind = Ev::kDiskDone, .node = n, .a = nd.incarnation});
  // Compaction mode: a crash just before a batch that installs a snapshot completes, the batch
  // landed (snapshot durable, on_snapshot_installed never called): the restart boots from it.
  const bool snap = std::any_of(nd.writing.begin(), nd.writing.end(),
                                [](const DiskWrite& w) { return w.snapshot.has_value(); });
  if (snap && !healed_ && swarm_.snap_crash_ppm > 0 && rng_.chance(swarm_.snap_crash_ppm)) {
    schedule(
        Event{.t = now_ + latency - 1, .kind = Ev::kCrash, .node = n, .a = nd.incarnation, .b = 1});
  }
}

void Sim::queue_lazy_hard_states(int n) {
  for (int g = 0; g < o_.groups; ++g) {
    if (!hosts(n, g) || !rep(n, g).lazy_hs) continue;
    node(n).disk.push_back(DiskWrite{.group = g, .hard_state = rep(n, g).lazy_hs});
    rep(n, g).lazy_hs.reset();
  }
}

// Makes a whole write durable: snapshot, entries, hard state.
void Sim::make_durable(int n, const DiskWrite& w, bool with_hard_state) {
  Replica& r = rep(n, w.group);
  if (w.snapshot) {
    // The app's state is the snapshot's from now on, durable with it.
    r.storage.install_snapshot(w.snapshot->meta);
    r.durable = App::decode(w.snapshot->data, w.snapshot->meta.index);
    r.durable_conf = w.snapshot->meta.conf_state;
  }
  if (!w.entries.empty()) {
    const LogIndex first = w.entries.front().index;
    // Only committed entries are compacted, so writing below the snapshot overwrites committed
    // entries; a gap means the core lost track of its log.
    if (first <= r.storage.snapshot().index || first > r.storage.last_index() + 1) {
      violate(
          fmt::format("node {} group {}: the core writes entries from index {}, but the "
                      "durable log holds ({}, {}]",
                      n + 1, w.group + 1, first.value(), r.storage.snapshot().index.value(),
                      r.storage.last_index().value()));
      return;
    }
    r.storage.append(w.entries);
    for (const Entry& x : w.entries) {
      auto it = r.unsynced.find(x.index);
      if (it == r.unsynced.end() || it->second.first != x.term) continue;
      r.unsynced_bytes -= it->second.second;
      r.unsynced.erase(it);
    }
  }
  // Entries first, then the hard state (raft.h): a crash may fall in between (split-hs).
  if (w.hard_state && with_hard_state) r.hard_state = *w.hard_state;
}

void Sim::disk_done(const Event& e) {
  Node& nd = node(e.node);
  if (!nd.up || e.a != nd.incarnation) return;
  if (now_ < nd.stall_until) {  // a stalled disk completes nothing until the stall ends
    schedule(Event{.t = nd.stall_until, .kind = Ev::kDiskDone, .node = e.node, .a = e.a});
    return;
  }
  // `writing` stays non-empty while the completions run, so what they enqueue waits its turn.
  for (const DiskWrite& w : nd.writing) {
    make_durable(e.node, w, true);
    if (!result_.ok) return;
  }
  for (const DiskWrite& w : nd.writing) {
    Replica& r = rep(e.node, w.group);
    for (const Message& m : w.after_persist) send(e.node, m);
    if (!w.entries.empty()) r.group->on_persisted(w.entries.back().index, w.entries.back().term);
    if (w.snapshot) r.group->on_snapshot_installed(w.snapshot->meta);
    drain(e.node, w.group);
    if (!result_.ok) return;
  }
  nd.writing.clear();
  disk_start(e.node);
}

}  // namespace raftd::sim::detail

namespace raftd::sim {
using detail::Sim;
// ---------------------------------------------------------------------------------------------

bool parse_faults(const std::string& text, uint32_t* out) {
  if (text == "none") {
    *out = kFaultNone;
    return true;
  }
  if (text == "all") {
    *out = kFaultAll;
    return true;
  }
  uint32_t f = 0;
  std::istringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item == "network") {
      f |= kFaultNetwork;
    } else if (item == "partition") {
      f |= kFaultPartition;
    } else if (item == "crash") {
      f |= kFaultCrash;
    } else {
      return false;
    }
  }
  *out = f;
  return !text.empty();
}

std::string faults_name(uint32_t faults) {
  if (faults == kFaultNone) return "none";
  if (faults == kFaultAll) return "all";
  std::string s;
  for (auto [bit, name] :
       {std::pair{kFaultNetwork, "network"}, std::pair{kFaultPartition, "partition"},
        std::pair{kFaultCrash, "crash"}}) {
    if (faults & bit) s += (s.empty() ? "" : ",") + std::string(name);
  }
  return s;
}

const std::vector<std::string>& mode_names() {
  static const std::vector<std::string> kNames = {
      "membership", "prevote",       "checkquorum", "quiesce",     "lazy-ready", "split-hs",
      "disk-stall", "wire-survives", "two-to-one",  "coalesce-hs", "compaction", "lazy-commit"};
  return kNames;
}

namespace {

bool* mode_flag(Modes* m, const std::string& name) {
  bool* flags[] = {&m->membership, &m->pre_vote,    &m->check_quorum, &m->quiesce,
                   &m->lazy_ready, &m->split_hs,    &m->disk_stall,   &m->wire_survives,
                   &m->two_to_one, &m->coalesce_hs, &m->compaction,   &m->lazy_commit};
  const auto& names = mode_names();
  static_assert(std::size(flags) == 12, "one flag per mode name");
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) return flags[i];
  }
  return nullptr;
}

}  // namespace

bool set_mode(Modes* m, const std::string& name, bool on) {
  bool* flag = mode_flag(m, name);
  if (flag) *flag = on;
  return flag != nullptr;
}

bool parse_mode(const std::string& text, std::string* name, bool* on) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos) return false;
  const std::string value = text.substr(eq + 1);
  if (value != "on" && value != "off") return false;
  Modes probe;
  *name = text.substr(0, eq);
  *on = value == "on";
  return set_mode(&probe, *name, *on);
}

std::string modes_name(const Modes& m) {
  Modes copy = m;
  std::string s;
  for (const std::string& name : mode_names()) {
    s += fmt::format("{}{}={}", s.empty() ? "" : " ", name, *mode_flag(&copy, name) ? "on" : "off");
  }
  return s;
}

std::string replay_command(const SimOptions& o) {
  std::string s = fmt::format("raftd-sim --seed {} --nodes {} --groups {} --steps {} --faults {}",
                              o.seed, o.nodes, o.groups, o.steps, faults_name(o.faults));
  if (o.clients_per_group != SimOptions{}.clients_per_group) {
    s += fmt::format(" --clients {}", o.clients_per_group);
  }
  if (o.keys_per_group != SimOptions{}.keys_per_group)
    s += fmt::format(" --keys {}", o.keys_per_group);
  if (o.spares != SimOptions{}.spares) s += fmt::format(" --spares {}", o.spares);
  for (const auto& [name, on] : o.force) s += fmt::format(" --mode {}={}", name, on ? "on" : "off");
  if (o.bug != "none") s += " --bug " + o.bug;
  return s;
}

SimResult run_simulation(const SimOptions& options) { return Sim(options).run(); }

}  // namespace raftd::sim
