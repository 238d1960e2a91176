// Fault injection and the simulated clients (sim_impl.h).
#include "sim_impl.h"

namespace raftd::sim::detail {
// ---------------------------------------------------------------------------------------------
// Faults

void Sim::inject_faults() {
  const auto n_nodes = static_cast<uint64_t>(n_nodes_);
  if (rng_.chance(swarm_.crash_ppm)) {
    const int victim = static_cast<int>(rng_.below(n_nodes));
    if (node(victim).up) crash(victim);
  }
  if (rng_.chance(swarm_.crash_all_ppm)) {
    trace("power loss: every node crashes");
    for (int i = 0; i < n_nodes_; ++i) {
      if (node(i).up) crash(i);
    }
  }
  if (!partitioned_ && rng_.chance(swarm_.partition_ppm)) start_partition();
  maybe_stall_disk();
  for (int g = 0; g < o_.groups; ++g) {
    if (swarm_.modes.membership) membership_tick(g);
    if (!rng_.chance(swarm_.transfer_ppm)) continue;
    for (int i = 0; i < n_nodes_; ++i) {
      raft::Group* grp = running(i, g);
      if (!grp || grp->role() != raft::Role::kLeader) continue;
      // Usually to a voter of its configuration, sometimes to any node (the core refuses).
      const auto& voters = grp->conf_state().voters;
      const uint64_t to =
          rng_.below(4) == 0 ? rng_.range(1, n_nodes) : voters[rng_.below(voters.size())].value();
      trace(fmt::format("n{} g{} transfers leadership to n{}", i + 1, g + 1, to));
      (void)grp->transfer_leader(NodeId(to));
      drain(i, g);
      break;
    }
  }
}

// A node's disk stops completing writes for a while (a stalled device, a long fsync).
void Sim::maybe_stall_disk() {
  if (!rng_.chance(swarm_.stall_ppm)) return;
  const int victim = static_cast<int>(rng_.below(static_cast<uint64_t>(n_nodes_)));
  const int64_t length =
      static_cast<int64_t>(rng_.range(1, static_cast<uint64_t>(swarm_.stall_max_us)));
  Node& nd = node(victim);
  nd.stall_until = std::max(nd.stall_until, now_ + length);
  ++result_.stats.stalls;
  fault_changed();
  trace(fmt::format("n{} disk stalls for {} ms", victim + 1, length / kUsPerMs));
}

// The transport notices a peer crash, restart or unreachability and wakes quiesced groups.
void Sim::wake_all() {
  if (swarm_.quiesce_after_ticks == 0) return;
  for (int n = 0; n < n_nodes_ && result_.ok; ++n) {
    for (int g = 0; g < o_.groups && result_.ok; ++g) {
      raft::Group* grp = running(n, g);
      if (!grp) continue;
      grp->wake();
      drain(n, g);
    }
  }
}

// `land`: the batch in flight reached the disk whole (a crash placed right before its completion).
void Sim::crash(int n, bool land) {
  Node& nd = node(n);
  ++result_.stats.crashes;
  fault_changed();
  // The batch in flight may have reached the disk whole, its completion never reported;
  // otherwise it is lost whole (recovery discards a torn batch), like everything queued.
  if (!nd.writing.empty() && (land || rng_.chance(swarm_.landed_ppm))) {
    for (const DiskWrite& w : nd.writing) {
      make_durable(n, w, true);
      result_.stats.crash_snapshot_landed += w.snapshot.has_value();
    }
    trace(fmt::format("n{} crashes; the batch in flight landed, {} queued writes lost", n + 1,
                      nd.disk.size()));
  } else if (!nd.writing.empty() && rng_.chance(swarm_.split_landed_ppm)) {
    // A driver that writes the hard state after the entries (raft.h allows it: nothing the
    // hard state guards has left the node yet) crashed between the two writes. A hard state
    // that newly commits a configuration change is written before the entries of the group's
    // later Readys (raft.h), so those did not land either: without that rule a restart forgot
    // the change was committed while holding the entry its application had led to (the leave of
    // a joint configuration), won an election in the old configuration and committed that
    // entry with none of the new one's voters holding it: no leader ever after (seed 714).
    std::set<int> cut;
    for (const DiskWrite& w : nd.writing) {
      if (cut.contains(w.group)) continue;
      make_durable(n, w, false);
      if (w.commits_conf) cut.insert(w.group);
    }
    trace(fmt::format("n{} crashes between the entries and the hard-state write of its batch",
                      n + 1));
  } else {
    trace(fmt::format("n{} crashes; {} unsynced writes lost", n + 1,
                      nd.disk.size() + nd.writing.size()));
  }
  nd.disk.clear();
  nd.writing.clear();
  for (int g = 0; g < o_.groups; ++g) {
    if (hosts(n, g)) result_.stats.hs_lazy_lost += rep(n, g).lazy_hs.has_value();
  }
  // Messages still in the node's socket buffers die with it, unless they were on the wire.
  if (!rng_.chance(swarm_.wire_ppm)) {
    std::erase_if(in_flight_, [&](const auto& kv) { return kv.second.from.value() == nd.id; });
  }
  nd.up = false;
  ++nd.incarnation;
  for (auto& r : nd.replicas) {
    if (r) r->group.reset();
  }
  for (Client& c : clients_) {
    if (c.busy && c.node == n) client_complete(c, lincheck::EventType::kInfo);
  }
  const int64_t after = static_cast<int64_t>(rng_.range(
      static_cast<uint64_t>(swarm_.restart_min_us), static_cast<uint64_t>(swarm_.restart_max_us)));
  schedule(Event{.t = now_ + after, .kind = Ev::kRestart, .node = n, .a = nd.incarnation});
  wake_all();
}

void Sim::restart(int n) {
  Node& nd = node(n);
  nd.up = true;
  fault_changed();
  boot(nd);
  trace(fmt::format("n{} restarts", n + 1));
  for (int g = 0; g < o_.groups && result_.ok; ++g) {
    if (hosts(n, g)) drain(n, g);
  }
  wake_all();
}

void Sim::start_partition() {
  const auto n = static_cast<size_t>(n_nodes_);
  partitioned_ = true;
  ++result_.stats.partitions;
  const uint64_t kind = swarm_.leader_churn ? 3 : rng_.below(4);
  std::string desc;
  if (kind == 0 || kind == 3) {  // isolate one node (kind 3: a leader), both directions
    size_t victim = rng_.below(n);
    const int g = static_cast<int>(rng_.below(static_cast<uint64_t>(o_.groups)));
    for (size_t i = 0; kind == 3 && i < n; ++i) {
      const int ni = static_cast<int>(i);
      raft::Group* grp = running(ni, g);
      if (grp && grp->role() == raft::Role::kLeader) victim = i;
    }
    for (size_t i = 0; i < n; ++i) {
      if (i != victim) blocked_[i][victim] = blocked_[victim][i] = true;
    }
    desc = fmt::format("n{} isolated", victim + 1);
  } else if (kind == 1) {  // random split into two sides
    std::vector<int> side(n);
    for (size_t i = 0; i < n; ++i) side[i] = static_cast<int>(rng_.below(2));
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < n; ++j) blocked_[i][j] = side[i] != side[j];
    }
    desc = "split";
    for (size_t i = 0; i < n; ++i) desc += fmt::format(" n{}:{}", i + 1, side[i]);
  } else {  // one-way cuts
    desc = "one-way cuts";
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < n; ++j) {
        if (i != j && rng_.below(3) == 0) {
          blocked_[i][j] = true;
          desc += fmt::format(" n{}->n{}", i + 1, j + 1);
        }
      }
    }
  }
  trace("partition: " + desc);
  fault_changed();
  wake_all();
  const int64_t length =
      static_cast<int64_t>(swarm_.leader_churn ? rng_.range(30, 300) : rng_.range(50, 2000)) *
      kUsPerMs;
  schedule(Event{.t = now_ + length, .kind = Ev::kHealPartition, .a = ++partition_gen_});
}

void Sim::heal() {
  healed_ = true;
  heal_time_ = now_;
  for (auto& m : marker_) m.reset();
  trace("faults end: restart every node, heal the network");
  for (auto& row : blocked_) std::fill(row.begin(), row.end(), false);
  partitioned_ = false;
  swarm_.loss_ppm = swarm_.dup_ppm = swarm_.spike_ppm = 0;
  for (int i = 0; i < n_nodes_; ++i) {
    node(i).stall_until = 0;
    if (!node(i).up) restart(i);
  }
}

// ---------------------------------------------------------------------------------------------
// Clients: sequential, each bound to one group; reads through ReadIndex on any node, writes
// and cas proposed on the leader (a follower forwards, as the daemon will).

void Sim::client_record(const Client& c, lincheck::EventType type, const nlohmann::json& value) {
  lincheck::Event e{.process = c.id, .type = type, .value = value, .time = now_};
  if (type == lincheck::EventType::kInvoke) {
    e.f = c.f;
    e.key = c.key;
  }
  history_.push_back(std::move(e));
  hash(static_cast<uint64_t>(type) << 32 | static_cast<uint64_t>(c.id));
}

void Sim::client_start(int id) {
  Client& c = clients_[static_cast<size_t>(id)];
  if (healed_ || c.busy) return;
  const int g = c.group;
  // A node hosting a replica of the group (it may be down, or not know yet that it was removed).
  std::vector<int> hosting;
  for (int i = 0; i < n_nodes_; ++i) {
    if (hosts(i, g)) hosting.push_back(i);
  }
  if (hosting.empty()) return;  // every replica destroyed: impossible, a group keeps a voter
  const int n = hosting[rng_.below(hosting.size())];
  c.busy = true;
  ++c.serial;
  c.key = fmt::format("g{}/k{}", g + 1, rng_.below(static_cast<uint64_t>(o_.keys_per_group)));
  const std::string app_key = c.key.substr(c.key.find('/') + 1);
  const uint64_t dice = rng_.below(10);
  c.f = dice < 4   ? lincheck::OpKind::kRead
        : dice < 8 ? lincheck::OpKind::kWrite
                   : lincheck::OpKind::kCas;
  c.read_index.reset();
  schedule(
      Event{.t = now_ + kClientTimeoutUs, .kind = Ev::kClientTimeout, .node = id, .a = c.serial});
  int target = n;
  if (running(n, g) && c.f != lincheck::OpKind::kRead) {
    const NodeId leader = rep(n, g).group->leader();
    const int l = static_cast<int>(leader.value()) - 1;
    if (leader.value() != 0 && l < n_nodes_ && running(l, g)) target = l;
  }
  c.node = target;
  std::string data;
  if (c.f == lincheck::OpKind::kWrite) {
    c.value = next_value_;
    data = fmt::format("w {} {}", app_key, next_value_++);
  } else if (c.f == lincheck::OpKind::kCas) {
    const std::string expected = running(target, g) ? rep(target, g).app.get(app_key) : "n";
    c.value = nlohmann::json::array({value_json(expected), next_value_});
    data = fmt::format("c {} {} {}", app_key, expected, next_value_++);
  } else {
    c.value = nullptr;
  }
  client_record(c, lincheck::EventType::kInvoke, c.value);
  if (!running(target, g)) {
    client_complete(c, lincheck::EventType::kFail);  // connection refused: never sent
    return;
  }
  Replica& r = rep(target, g);
  if (c.f == lincheck::OpKind::kRead) {
    c.read_id = next_read_id_++;
    if (!r.group->read_index(c.read_id).is_ok()) {
      client_complete(c, lincheck::EventType::kFail);
      return;
    }
    r.reads[c.read_id] = id;
  } else {
    auto index = r.group->propose(data);
    if (!index) {
      client_complete(c, lincheck::EventType::kFail);
      return;
    }
    c.index = *index;
    c.term = r.group->term();
    r.proposals[*index] = id;
  }
  drain(target, g);
}

void Sim::client_complete(Client& c, lincheck::EventType type, nlohmann::json value) {
  if (!c.busy) return;
  c.busy = false;
  if (c.f != lincheck::OpKind::kRead) value = c.value;
  client_record(c, type, value);
  switch (type) {
    case lincheck::EventType::kOk: ++result_.stats.ops_ok; break;
    case lincheck::EventType::kFail: ++result_.stats.ops_fail; break;
    default: ++result_.stats.ops_info; break;
  }
  // Forget where it waited (a later apply or read state for it is ignored).
  if (c.node >= 0 && running(c.node, c.group)) {
    Replica& r = rep(c.node, c.group);
    if (c.f == lincheck::OpKind::kRead) {
      r.reads.erase(c.read_id);
    } else if (auto it = r.proposals.find(c.index); it != r.proposals.end() && it->second == c.id) {
      r.proposals.erase(it);
    }
  }
  c.read_index.reset();
  // After a refusal (no leader, node down) back off like a real client instead of spinning.
  const bool refused = type == lincheck::EventType::kFail && c.f != lincheck::OpKind::kCas;
  const int64_t think =
      refused ? static_cast<int64_t>(rng_.range(20, 100)) * kUsPerMs
              : static_cast<int64_t>(rng_.below(static_cast<uint64_t>(swarm_.think_max_us)));
  schedule(Event{.t = now_ + think, .kind = Ev::kClientStart, .node = c.id});
}

// Reads whose read index this replica has now applied complete with the local value.
void Sim::check_reads(int n, int g) {
  Replica& r = rep(n, g);
  for (Client& c : clients_) {
    if (!c.busy || c.group != g || c.node != n || c.f != lincheck::OpKind::kRead) continue;
    if (!c.read_index || r.app.applied < *c.read_index) continue;
    const std::string app_key = c.key.substr(c.key.find('/') + 1);
    client_complete(c, lincheck::EventType::kOk, value_json(r.app.get(app_key)));
  }
}

}  // namespace raftd::sim::detail
