// Membership changes (sim_impl.h): leaders propose random changes through the core's public API
// as a daemon's admin path would, new replicas start on the nodes being added, replicas that
// applied their own removal are destroyed, and the checker follows every replica's
// configuration.
#include "sim_impl.h"

namespace raftd::sim::detail {
namespace {

bool has(const std::vector<NodeId>& v, NodeId x) {
  return std::binary_search(v.begin(), v.end(), x);
}

bool member(const raft::ConfState& cs, NodeId x) {
  return has(cs.voters, x) || has(cs.learners, x) || has(cs.voters_outgoing, x) ||
         has(cs.learners_next, x);
}

std::string change_name(const raft::ConfChange& cc) {
  if (cc.leave_joint()) return "leave joint";
  static constexpr const char* kTransition[] = {"auto", "joint", "joint-explicit"};
  std::string s = kTransition[static_cast<int>(cc.transition)];
  for (const raft::ConfChangeItem& it : cc.changes) {
    static constexpr const char* kType[] = {"+voter", "+learner", "-"};
    s += fmt::format(" {}n{}", kType[static_cast<int>(it.type)], it.node.value());
  }
  return s;
}

}  // namespace

// The application's half of an explicit joint change (ConfTransition::kJointExplicit): once the
// leader applied the joint configuration, the driver proposes leaving it, as an admin tool
// would, until the leader accepts.
void Sim::leave_explicit_joint(int g) {
  for (int n = 0; n < n_nodes_; ++n) {
    raft::Group* grp = running(n, g);
    if (!grp || grp->role() != raft::Role::kLeader) continue;
    const raft::ConfState& cs = grp->conf_state();
    if (!cs.joint() || cs.auto_leave) return;
    auto index = grp->propose_conf_change(raft::ConfChange{});
    if (!index) return;
    trace(fmt::format("n{} g{} proposes leaving the joint configuration: index {}", n + 1, g + 1,
                      index->value()));
    drain(n, g);
    return;
  }
}

// Now and then a group's leader proposes a change: add a spare node as learner or voter,
// promote a learner, demote or remove a voter (the leader itself too), remove a learner, or
// several of these at once (joint consensus, left automatically or explicitly).
void Sim::membership_tick(int g) {
  if (!rng_.chance(swarm_.conf_ppm)) return;
  for (int n = 0; n < n_nodes_; ++n) {
    raft::Group* grp = running(n, g);
    if (!grp || grp->role() != raft::Role::kLeader) continue;
    std::optional<raft::ConfChange> cc = draw_conf_change(g, grp->conf_state(), NodeId(node(n).id));
    if (!cc) return;
    for (const raft::ConfChangeItem& it : cc->changes) {
      const int target = static_cast<int>(it.node.value()) - 1;
      if (it.type == raft::ConfChangeType::kRemove) {
        node(target).retired[static_cast<size_t>(g)] = true;  // never re-added (etcd's rule)
      } else if (!hosts(target, g)) {
        create_replica(target, g);
      }
    }
    auto index = grp->propose_conf_change(*cc);
    trace(fmt::format("n{} g{} proposes conf change {}: {}", n + 1, g + 1, change_name(*cc),
                      index ? fmt::format("index {}", index->value()) : index.status().message()));
    drain(n, g);
    return;
  }
}

std::optional<raft::ConfChange> Sim::draw_conf_change(int g, const raft::ConfState& cs,
                                                      NodeId leader) {
  raft::ConfChange cc;
  if (cs.joint()) return std::nullopt;  // left automatically or by leave_explicit_joint()
  std::vector<NodeId> spares;           // nodes that may join: never removed from this group
  for (int n = 0; n < n_nodes_; ++n) {
    const NodeId id(node(n).id);
    if (!member(cs, id) && !node(n).retired[static_cast<size_t>(g)]) spares.push_back(id);
  }
  auto pick = [&](const std::vector<NodeId>& v) { return v[rng_.below(v.size())]; };
  const int items = rng_.below(4) == 0 ? 2 + static_cast<int>(rng_.below(2)) : 1;
  raft::ConfState view = cs;  // to avoid naming one node twice
  for (int i = 0; i < items; ++i) {
    // Learners get a fair share: they must never count in a quorum (learner_in_quorum).
    const uint64_t dice = rng_.below(8);
    raft::ConfChangeItem it;
    if (i == 0 && has(view.voters, leader) && rng_.chance(swarm_.remove_leader_ppm)) {
      it = {raft::ConfChangeType::kRemove, leader};
    } else if (dice <= 3 && !spares.empty()) {
      it = {dice <= 2 ? raft::ConfChangeType::kAddLearner : raft::ConfChangeType::kAddVoter,
            pick(spares)};
      std::erase(spares, it.node);
    } else if (dice == 4 && !view.learners.empty()) {
      it = {raft::ConfChangeType::kAddVoter, pick(view.learners)};
    } else if (dice == 5 && !view.learners.empty()) {
      it = {raft::ConfChangeType::kRemove, pick(view.learners)};
    } else if (dice >= 6 && view.voters.size() > 1) {
      it = {dice == 6 ? raft::ConfChangeType::kRemove : raft::ConfChangeType::kAddLearner,
            pick(view.voters)};
    } else {
      continue;
    }
    std::erase(view.voters, it.node);
    std::erase(view.learners, it.node);
    cc.changes.push_back(it);
  }
  if (cc.changes.empty()) return std::nullopt;
  // The 2-to-1 shrink (doc/raft.md rule 5) only in `two-to-one` seeds.
  std::vector<NodeId> incoming = cs.voters;
  for (const raft::ConfChangeItem& it : cc.changes) {
    std::erase(incoming, it.node);
    if (it.type == raft::ConfChangeType::kAddVoter) incoming.push_back(it.node);
  }
  if (!swarm_.modes.two_to_one && cs.voters.size() == 2 && incoming.size() == 1) {
    return std::nullopt;
  }
  cc.transition = static_cast<raft::ConfTransition>(rng_.below(3));
  return cc;
}

// A node about to be added starts the group's replica from the initial configuration, like
// every replica (raft.h); it learns the rest from the leader.
void Sim::create_replica(int n, int g) {
  auto r = std::make_unique<Replica>();
  r->storage = raft::MemoryLogStorage(genesis_);
  r->conf = genesis_.conf_state;
  r->durable_conf = genesis_.conf_state;
  r->added = true;
  Node& nd = node(n);
  if (nd.up) {
    r->group = std::make_unique<raft::Group>(make_config(nd.id, g), r->storage,
                                             raft::BootState{{}, genesis_, LogIndex(0)});
    r->app = App::decode("", LogIndex(0));
  }
  nd.replicas[static_cast<size_t>(g)] = std::move(r);
  trace(fmt::format("n{} g{}: replica created", n + 1, g + 1));
}

// A Ready hands the driver a snapshot to install. The core replaces its log with a snapshot only
// when the snapshot is newer than its commit index (raft.h: it covers committed entries, and
// what this replica committed it may have applied, acknowledged and made durable): a snapshot at
// or below the commit index the replica reported would rewind its state machine
// (`snapshot_below_commit`). Counts what kind of install this is (a new member's, a lagging
// member's, one carrying another configuration).
void Sim::note_snapshot_install(int n, int g, const raft::Snapshot& snap) {
  Replica& r = rep(n, g);
  const LogIndex at = snap.meta.index;
  if (at <= r.seen_commit || at < r.app.applied) {
    violate(
        fmt::format("node {} group {}: installs a snapshot at {}, not above its commit index "
                    "{} (applied {})",
                    n + 1, g + 1, at.value(), r.seen_commit.value(), r.app.applied.value()));
    return;
  }
  SimStats& st = result_.stats;
  ++(r.added && r.app.applied == LogIndex(0) ? st.snap_new_member : st.snap_lagging);
  const NodeId self(node(n).id);
  const raft::ConfState& cs = snap.meta.conf_state;
  st.snap_conf_changed += cs != r.conf;
  st.snap_conf_learner += has(cs.learners, self) || has(cs.learners_next, self);
  st.snap_conf_joint += cs.joint();
  st.snap_conf_excludes += !member(cs, self);
}

// The daemon stops and deletes a replica once it applied its own removal and the remaining
// voters applied it too (destroy_removed): its state, its queued disk writes, and whatever
// clients waited on it.
void Sim::destroy_replica(int n, int g) {
  Node& nd = node(n);
  for (Client& c : clients_) {
    if (c.busy && c.node == n && c.group == g) client_complete(c, lincheck::EventType::kInfo);
  }
  auto other_group = [g](const DiskWrite& w) { return w.group == g; };
  std::erase_if(nd.disk, other_group);
  std::erase_if(nd.writing, other_group);
  nd.replicas[static_cast<size_t>(g)].reset();
  nd.retired[static_cast<size_t>(g)] = true;
  nd.removed_at[static_cast<size_t>(g)] = LogIndex(0);
  ++result_.stats.destroyed;
  trace(fmt::format("n{} g{}: replica destroyed after applying its removal", n + 1, g + 1));
  // Its peers' transports learn that the replica is gone (the node answers "no such group"),
  // which wakes quiesced followers as a lost leader does (raft.h).
  wake_all();
}

// raft.h / doc/raft.md rule 5: a driver keeps a removed replica running until the remaining
// voters have applied its removal. "Applied" must survive their crashes: each has the removal
// below its durable commit index, so it applies it (again) before it may campaign (rule 7).
// Then the replica is destroyed.
void Sim::destroy_removed() {
  for (int n = 0; n < n_nodes_; ++n) {
    for (int g = 0; g < o_.groups; ++g) {
      const LogIndex at = node(n).removed_at[static_cast<size_t>(g)];
      if (at.value() == 0 || !hosts(n, g)) continue;
      const raft::ConfState& cs = rep(n, g).conf;
      bool all = true;
      for (const auto* voters : {&cs.voters, &cs.voters_outgoing}) {
        for (NodeId v : *voters) {
          const int i = static_cast<int>(v.value()) - 1;
          if (!hosts(i, g)) continue;
          const Replica& r = rep(i, g);
          all = all && r.hard_state.commit >= at;
        }
      }
      if (all) destroy_replica(n, g);
    }
  }
}

// A replica's configuration changes only when it applies a conf change entry or installs a
// snapshot (raft.h: apply-time semantics): the Readies of the drain updated Replica::conf.
void Sim::check_conf(int n, int g) {
  const Replica& r = rep(n, g);
  if (r.group->conf_state() == r.conf) return;
  violate(
      fmt::format("node {} group {}: the configuration changed without a conf change being applied "
                  "(applied index {}, {} voters in the core, {} as applied)",
                  n + 1, g + 1, r.app.applied.value(), r.group->conf_state().voters.size(),
                  r.conf.voters.size()));
}

// After a Ready's committed entries are applied: every conf change among them moved the
// replica's configuration; all replicas must agree on the configuration after each one; a
// replica whose configuration no longer includes it is destroyed.
void Sim::note_applied_conf(int n, int g, const raft::Ready& rd) {
  Replica& r = rep(n, g);
  const Entry* last = nullptr;
  for (const Entry& e : rd.committed_entries) {
    if (e.type == raft::EntryType::kConfChange) last = &e;
  }
  if (!last) return;
  const raft::ConfState was = r.conf;
  r.conf = r.group->conf_state();
  auto [it, inserted] = conf_record_[static_cast<size_t>(g)].emplace(last->index.value(), r.conf);
  if (inserted) {
    ++result_.stats.conf_changes;
    trace(fmt::format("g{} applies the conf change at {}: {} voters", g + 1, last->index.value(),
                      r.conf.voters.size()));
  } else if (it->second != r.conf) {
    violate(
        fmt::format("group {}: node {} has another configuration than node(s) before it "
                    "after applying the conf change at index {}",
                    g + 1, n + 1, last->index.value()));
    return;
  }
  const NodeId self(node(n).id);
  if (member(was, self) && !member(r.conf, self)) {
    node(n).removed_at[static_cast<size_t>(g)] = last->index;
    trace(fmt::format("n{} g{} applied its own removal at {}", n + 1, g + 1, last->index.value()));
  }
}

}  // namespace raftd::sim::detail
