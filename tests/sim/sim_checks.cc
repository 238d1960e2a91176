// The checkers: safety after every event, the committed-log record, liveness (sim_impl.h).
#include "sim_impl.h"

namespace raftd::sim::detail {
namespace {

std::string ids(const std::vector<NodeId>& v) {
  std::string s = "{";
  for (NodeId x : v) s += fmt::format("{}{}", s.size() > 1 ? "," : "", x.value());
  return s + "}";
}

}  // namespace
// ---------------------------------------------------------------------------------------------
// Checkers

void Sim::violate(std::string what) {
  if (!result_.ok) return;
  result_.ok = false;
  result_.violation = std::move(what);
  std::string tail = fmt::format("last {} events (time in ms):\n", trace_.size());
  for (const TraceRec& t : trace_) {
    tail += fmt::format("  {:>9.3f} {}\n", static_cast<double>(t.t) / kUsPerMs, t.what);
  }
  result_.details = tail + result_.details;
}

void Sim::trace(std::string what) {
  if (o_.trace) fmt::print("{:>9.3f} {}\n", static_cast<double>(now_) / kUsPerMs, what);
  trace_.push_back(TraceRec{now_, std::move(what)});
  if (trace_.size() > kTraceTail) trace_.pop_front();
}

void Sim::record_commit(int g, LogIndex i, Term t, int n) {
  auto& rec = record_[static_cast<size_t>(g)];
  if (rec.size() <= i.value()) rec.resize(i.value() + 1);
  Record& x = rec[i.value()];
  if (x.term == 0) {
    x.term = t.value();
    x.drain = drain_seq_;
  } else if (x.term != t.value()) {
    violate(fmt::format(
        "group {} index {}: committed in term {}, but node {} now has term {} "
        "there at commit index {}",
        g + 1, i.value(), x.term, n + 1, t.value(), rep(n, g).group->commit_index().value()));
  }
}

// After every event that touched (node, group).
void Sim::check_replica(int n, int g) {
  Replica& r = rep(n, g);
  const raft::Group& grp = *r.group;
  if (Status s = grp.check_invariants(); !s.is_ok()) {
    violate(fmt::format("node {} group {}: invariant: {}", n + 1, g + 1, s.message()));
    return;
  }
  if (grp.role() == raft::Role::kLeader) {
    const raft::ConfState& cs = grp.conf_state();
    const NodeId self(node(n).id);
    const bool voter =
        std::binary_search(cs.voters.begin(), cs.voters.end(), self) ||
        std::binary_search(cs.voters_outgoing.begin(), cs.voters_outgoing.end(), self);
    if (!voter || o_.diverge == Diverge::kLeaderNotVoter) {  // self-test: sim.h
      violate(fmt::format("group {} term {}: node {} leads a configuration it is not a voter of",
                          g + 1, grp.term().value(), n + 1));
      return;
    }
    auto [it, inserted] = leaders_.emplace(std::make_pair(g, grp.term().value()),
                                           std::make_pair(node(n).id, node(n).incarnation));
    if (inserted) {
      check_leader_completeness(n, g);
      if (!result_.ok) return;
      if (!healed_ && rng_.chance(swarm_.fresh_leader_crash_ppm)) {
        schedule(Event{.t = now_ + static_cast<int64_t>(rng_.below(kFreshLeaderCrashUs)),
                       .kind = Ev::kCrash,
                       .node = n,
                       .a = node(n).incarnation});
      }
      trace(fmt::format("n{} g{} becomes leader in term {}", n + 1, g + 1, grp.term().value()));
    } else if (it->second != std::make_pair(node(n).id, node(n).incarnation)) {
      violate(
          fmt::format("group {} term {}: two leaders, node {} (incarnation {}) and node {} "
                      "(incarnation {})",
                      g + 1, grp.term().value(), it->second.first, it->second.second, n + 1,
                      node(n).incarnation));
      return;
    }
  }
  const LogIndex commit = grp.commit_index();
  const bool leader_commits = commit > r.checked_commit && grp.role() == raft::Role::kLeader;
  const bool first_commit = leader_commits && r.first_commit_term != grp.term();
  if (first_commit) r.first_commit_term = grp.term();
  if (!healed_ && leader_commits &&
      rng_.chance(first_commit ? swarm_.after_first_commit_crash_ppm
                               : swarm_.after_commit_crash_ppm)) {
    schedule(Event{.t = now_ + static_cast<int64_t>(rng_.below(kUsPerMs)),
                   .kind = Ev::kCrash,
                   .node = n,
                   .a = node(n).incarnation});
  }
  for (LogIndex i = r.checked_commit + 1; i <= commit && result_.ok; ++i) {
    if (auto t = grp.term_at(i)) record_commit(g, i, *t, n);
  }
  r.checked_commit = std::max(r.checked_commit, commit);
  r.seen_commit = std::max(r.seen_commit, commit);
}

// Flow control (raft.h, Config::max_inflight_msgs): in replicate state a leader has at most
// max_inflight_msgs appends in flight to a follower, each of at most max_msg_bytes of entries
// (or one larger entry), and frees a slot only when the follower acknowledges, which it does
// once the entries are durable. So the entries a follower accepted from one leader's pipelined
// appends and has not made durable yet never exceed that window, however long its disk stalls.
// Every window starts after an acknowledged match, durable on the follower, so this holds even
// when appends of an earlier window (before a reject sent the leader back to probing) arrive
// late or twice; entries the follower holds already do not count again. Probes (one at a time,
// at a guessed position) are not counted: Sim::send tags the pipelined appends. Called after a
// follower steps an append or a snapshot: `had[i]` tells whether m.entries[i] does not count
// (held before, or a probe).
void Sim::note_unsynced(int n, int g, const Message& m, const std::vector<bool>& had) {
  Replica& r = rep(n, g);
  const raft::Group& grp = *r.group;
  auto forget = [&r](auto it) {
    r.unsynced_bytes -= it->second.second;
    return r.unsynced.erase(it);
  };
  if (grp.term() != r.unsynced_term) {  // another leader's window: the old one no longer counts
    r.unsynced.clear();
    r.unsynced_bytes = 0;
    r.unsynced_max_entry = 0;
    r.unsynced_term = grp.term();
  }
  // Entries gone from the log (replaced after a conflict, or under a snapshot) leave the count.
  for (auto it = r.unsynced.begin(); it != r.unsynced.end();) {
    it = grp.term_at(it->first) == it->second.first ? std::next(it) : forget(it);
  }
  if (m.type != MessageType::kAppend || grp.role() != raft::Role::kFollower || m.term != grp.term())
    return;
  for (size_t i = 0; i < m.entries.size(); ++i) {
    const Entry& x = m.entries[i];
    if (had[i] || grp.term_at(x.index) != x.term) continue;  // held already, or not accepted
    const uint64_t bytes = x.size_bytes();
    auto [it, inserted] = r.unsynced.emplace(x.index, std::make_pair(x.term, bytes));
    if (!inserted) continue;
    r.unsynced_bytes += bytes;
    r.unsynced_max_entry = std::max(r.unsynced_max_entry, bytes);
  }
  const uint64_t window =
      uint64_t{swarm_.max_inflight_msgs} * (uint64_t{swarm_.max_msg_bytes} + r.unsynced_max_entry);
  result_.stats.unsynced_peak_pct =
      std::max(result_.stats.unsynced_peak_pct, r.unsynced_bytes * 100 / window);
  if (r.unsynced_bytes > window) {
    violate(fmt::format(
        "node {} group {}: flow control: {} entries ({} bytes) accepted from the leader of term "
        "{} are not durable yet, beyond its window of {} appends of {} bytes",
        n + 1, g + 1, r.unsynced.size(), r.unsynced_bytes, m.term.value(), swarm_.max_inflight_msgs,
        swarm_.max_msg_bytes));
  }
}

// Leader completeness (thesis §3.6): a new leader of term T holds every entry committed in an
// earlier term. Checked when the leader is first seen, against the record of everything ever
// committed; entries it compacted away are committed in its snapshot.
void Sim::check_leader_completeness(int n, int g) {
  const raft::Group& grp = *rep(n, g).group;
  const auto& rec = record_[static_cast<size_t>(g)];
  const uint64_t term = grp.term().value();
  for (uint64_t i = rep(n, g).storage.snapshot().index.value() + 1; i < rec.size(); ++i) {
    if (rec[i].term == 0 || rec[i].term >= term) continue;
    const std::optional<Term> t = grp.term_at(LogIndex(i));
    if (t && t->value() == rec[i].term) continue;
    if (!t && LogIndex(i) <= grp.last_index()) continue;  // compacted meanwhile: committed
    violate(fmt::format(
        "group {} term {}: new leader node {} lacks index {} committed in term {} (it holds {})",
        g + 1, term, n + 1, i, rec[i].term, t ? fmt::format("term {}", t->value()) : "nothing"));
    return;
  }
}

// Whether `node` durably holds entry (i, t) of `group`. A node without the replica (destroyed
// after its removal) counts as holding: its acknowledgements were real, its disk is gone.
bool Sim::durably_holds(int n, int g, LogIndex i, Term t) {
  if (n >= n_nodes_ || !hosts(n, g)) return true;
  const raft::MemoryLogStorage& st = rep(n, g).storage;
  if (i <= st.snapshot().index) return true;  // compacted or in a snapshot: it was applied
  if (i > st.last_index()) return false;
  auto term = st.term(i);
  return term.is_ok() && term.value() == t;
}

// Commit safety: when a leader's commit index advances, a majority of the voters (of both halves
// of a joint configuration) durably hold each newly committed entry. The leader counted with
// its configuration before this drain, or the one a conf change applied during it. An entry the
// record held before this drain was committed first by another leader, checked then with that
// leader's configuration: this one only learned it (a vote answer carries the voter's commit
// index), and its configuration may differ from the one that entry's quorum was counted in (a
// candidate in a joint configuration learned, from a vote answer, an index another leader had
// committed with the old voters before it applied the joint change: the joint configuration keeps
// them).
void Sim::check_commit_quorum(int n, int g, const raft::ConfState& before, uint64_t drain) {
  Replica& r = rep(n, g);
  const raft::Group& grp = *r.group;
  if (grp.role() != raft::Role::kLeader) return;
  const auto& rec = record_[static_cast<size_t>(g)];
  auto majority = [&](const std::vector<NodeId>& voters, LogIndex i, Term t) {
    size_t have = 0;
    for (NodeId v : voters) have += durably_holds(static_cast<int>(v.value()) - 1, g, i, t);
    return voters.empty() || have > voters.size() / 2;
  };
  auto quorum = [&](const raft::ConfState& cs, LogIndex i, Term t) {
    return majority(cs.voters, i, t) && majority(cs.voters_outgoing, i, t);
  };
  for (LogIndex i = r.checked_commit + 1; i <= grp.commit_index(); ++i) {
    const std::optional<Term> t = grp.term_at(i);
    if (!t || quorum(before, i, *t) || quorum(grp.conf_state(), i, *t)) continue;
    // Known committed before this drain began (entries it applied are recorded as they go).
    if (i.value() < rec.size() && rec[i.value()].term == t->value() &&
        rec[i.value()].drain < drain) {
      continue;
    }
    violate(fmt::format(
        "group {} term {}: leader node {} committed index {} that no majority of its voters {} / "
        "{} holds durably",
        g + 1, grp.term().value(), n + 1, i.value(), ids(before.voters),
        ids(before.voters_outgoing)));
    return;
  }
}

// Every replica's committed prefix (down to kLogCheckDepth below commit) against the record:
// catches a committed entry that was overwritten without the commit index moving.
void Sim::check_logs() {
  for (int n = 0; n < n_nodes_ && result_.ok; ++n) {
    for (int g = 0; g < o_.groups && result_.ok; ++g) {
      if (!running(n, g)) continue;
      const raft::Group& grp = *rep(n, g).group;
      const LogIndex commit = grp.commit_index();
      for (uint64_t d = 0; d < kLogCheckDepth && d < commit.value() && result_.ok; ++d) {
        const LogIndex i = commit - d;
        auto t = grp.term_at(i);
        if (!t) break;
        record_commit(g, i, *t, n);
      }
    }
  }
}

// Log matching after every event, committed or not. Every change to a replica's log (an append,
// or a suffix replaced after a conflict) reaches the driver as Ready::entries, and a restarted
// replica's log is what earlier Readies made durable, so checking each Ready's entries against
// the facts covers every entry any log ever held, at the cost of one lookup per entry.
void Sim::check_new_entries(int n, int g, const std::vector<Entry>& entries) {
  if (entries.empty()) return;
  const Entry& first = entries.front();
  // The entries are already in the core's log: the one before them is stable or the snapshot.
  auto before = first.index.value() == 0 ? std::nullopt : rep(n, g).group->term_at(first.index - 1);
  uint64_t prev = before ? before->value() : kUnknownTerm;
  for (const Entry& e : entries) {
    uint64_t h = entry_hash(e);
    uint64_t p = prev;
    if (n == 1 && e.index.value() == o_.diverge_index) {  // checker self-test (sim.h)
      if (o_.diverge == Diverge::kData) h = ~h;
      if (o_.diverge == Diverge::kPrevTerm && p != kUnknownTerm) p += 1;
    }
    check_entry_fact(n, g, e, h, p);
    if (!result_.ok) return;
    prev = e.term.value();
  }
}

void Sim::check_entry_fact(int n, int g, const Entry& e, uint64_t h, uint64_t prev_term) {
  auto& by_index = facts_[static_cast<size_t>(g)];
  if (by_index.size() <= e.index.value()) by_index.resize(e.index.value() + 1);
  auto& facts = by_index[e.index.value()];
  auto it = std::find_if(facts.begin(), facts.end(),
                         [&](const EntryFact& f) { return f.term == e.term.value(); });
  if (it == facts.end()) {
    facts.push_back(EntryFact{e.term.value(), prev_term, h, n});
    return;
  }
  if (it->data_hash != h) {
    violate(
        fmt::format("group {}: log matching: nodes {} and {} both hold index {} of term {}, "
                    "but with different entries",
                    g + 1, it->node + 1, n + 1, e.index.value(), e.term.value()));
  } else if (prev_term != kUnknownTerm && it->prev_term != kUnknownTerm &&
             it->prev_term != prev_term) {
    violate(
        fmt::format("group {}: log matching: nodes {} and {} both hold index {} of term {}, "
                    "but their entries at {} have terms {} and {}",
                    g + 1, it->node + 1, n + 1, e.index.value(), e.term.value(),
                    e.index.value() - 1, it->prev_term, prev_term));
  } else if (it->prev_term == kUnknownTerm) {
    it->prev_term = prev_term;
  }
}

// The replicas of a group as the core sees them, for liveness reports.
std::string Sim::describe_group(int g) {
  std::string s = fmt::format("group {} replicas:\n", g + 1);
  for (int n = 0; n < n_nodes_; ++n) {
    if (!hosts(n, g)) {
      s += fmt::format("  n{}: no replica{}\n", n + 1,
                       node(n).retired[static_cast<size_t>(g)] ? " (removed)" : "");
      continue;
    }
    const Replica& r = rep(n, g);
    if (!r.group) {
      s += fmt::format("  n{}: down\n", n + 1);
      continue;
    }
    const raft::Group& grp = *r.group;
    s += fmt::format(
        "  n{}: {} term {} vote {} leader {} commit {} applied {} last {} (term {}) persisted {} "
        "durable ({}, {}] disk queue {}\n",
        n + 1, raft::role_name(grp.role()), grp.term().value(), grp.vote().value(),
        grp.leader().value(), grp.commit_index().value(), grp.applied_index().value(),
        grp.last_index().value(), grp.last_term().value(), grp.persisted_index().value(),
        r.storage.snapshot().index.value(), r.storage.last_index().value(),
        node(n).disk.size() + node(n).writing.size());
    const raft::ConfState& cs = grp.conf_state();
    s += fmt::format("      conf voters {} learners {} outgoing {} learners_next {}{}\n",
                     ids(cs.voters), ids(cs.learners), ids(cs.voters_outgoing),
                     ids(cs.learners_next), cs.auto_leave ? " auto_leave" : "");
    for (int p = 0; p < n_nodes_; ++p) {
      auto pr = grp.progress(NodeId(static_cast<uint64_t>(p) + 1));
      if (!pr) continue;
      s += fmt::format("      n{}: match {} next {} {} inflight {} active {}\n", p + 1,
                       pr->match.value(), pr->next.value(), raft::progress_state_name(pr->state),
                       pr->inflight_msgs, pr->recent_active);
    }
  }
  return s;
}

// Drives group g's marker entry "m <tick>": proposes one on a leader, re-proposes when the
// leader loses it, and returns true (forgetting it) once it committed.
bool Sim::marker_tick(int g) {
  auto& marker = marker_[static_cast<size_t>(g)];
  if (marker) {
    raft::Group* grp = running(marker->first, g);
    if (grp && rep(marker->first, g).app.applied >= marker->second) {
      auto t = grp->term_at(marker->second);
      const bool ours = !t || *t == marker_term_[static_cast<size_t>(g)];
      marker.reset();
      if (ours) return true;  // else overwritten by another leader: propose again
    } else if (!grp || grp->role() != raft::Role::kLeader) {
      marker.reset();
    }
  }
  for (int n = 0; n < n_nodes_ && !marker; ++n) {
    raft::Group* grp = running(n, g);
    if (!grp || grp->role() != raft::Role::kLeader) continue;
    auto index = grp->propose(fmt::format("m {}", world_ticks_));
    if (!index) continue;
    marker = std::make_pair(n, *index);
    marker_term_[static_cast<size_t>(g)] = grp->term();
    drain(n, g);
  }
  return false;
}

// After the heal: each group needs a leader that commits a fresh marker entry.
void Sim::liveness_tick() {
  bool all = true;
  for (int g = 0; g < o_.groups && result_.ok; ++g) {
    if (live_[static_cast<size_t>(g)]) continue;
    if (marker_tick(g)) {
      live_[static_cast<size_t>(g)] = true;
      trace(fmt::format("g{} live: marker committed", g + 1));
      continue;
    }
    all = false;
  }
  if (all && live_time_ < 0) live_time_ = now_;
  if (!all && now_ > heal_time_ + static_cast<int64_t>(kLivenessTicks) * kTickUs) {
    for (int g = 0; g < o_.groups; ++g) {
      if (live_[static_cast<size_t>(g)]) continue;
      violate(
          fmt::format("liveness: group {} did not elect a leader and commit a fresh entry "
                      "within {} ms after the faults healed",
                      g + 1, kLivenessTicks * kTickUs / kUsPerMs));
      result_.details += describe_group(g);
      return;
    }
  }
}

// Availability during faults. A group is healthy while a majority of its current voters (of
// both halves of a joint configuration) are up, run a replica, have a disk that is not
// stalled, and form an island: every link among them open both ways, every link between them
// and any other running node cut both ways (so no outsider, e.g. a removed node that does not
// know it, can disturb them). The current configuration is the one applied by the most
// advanced replica.
bool Sim::group_healthy(int g, std::string* why) {
  int best = -1;
  for (int n = 0; n < n_nodes_; ++n) {
    if (running(n, g) && (best < 0 || rep(n, g).app.applied > rep(best, g).app.applied)) best = n;
  }
  if (best < 0) return false;
  const raft::ConfState& cs = rep(best, g).conf;
  auto ok_node = [&](int n) { return running(n, g) != nullptr && now_ >= node(n).stall_until; };
  // Islands: nodes joined by links open both ways.
  std::vector<int> island(static_cast<size_t>(n_nodes_), -1);
  for (int a = 0; a < n_nodes_; ++a) {
    if (!node(a).up || island[static_cast<size_t>(a)] >= 0) continue;
    island[static_cast<size_t>(a)] = a;
    for (int b = a + 1; b < n_nodes_; ++b) {
      if (node(b).up && island[static_cast<size_t>(b)] < 0 &&
          !blocked_[static_cast<size_t>(a)][static_cast<size_t>(b)] &&
          !blocked_[static_cast<size_t>(b)][static_cast<size_t>(a)]) {
        island[static_cast<size_t>(b)] = a;
      }
    }
  }
  for (int root = 0; root < n_nodes_; ++root) {
    if (!node(root).up || island[static_cast<size_t>(root)] != root) continue;
    bool clean = true;  // fully open inside, fully cut to every other up node
    for (int a = 0; a < n_nodes_ && clean; ++a) {
      if (!node(a).up) continue;
      for (int b = 0; b < n_nodes_ && clean; ++b) {
        if (a == b || !node(b).up) continue;
        const bool inside_a = island[static_cast<size_t>(a)] == root;
        const bool inside_b = island[static_cast<size_t>(b)] == root;
        if (!inside_a && !inside_b) continue;
        const bool open = !blocked_[static_cast<size_t>(a)][static_cast<size_t>(b)];
        clean = inside_a && inside_b ? open : !open;
      }
    }
    if (!clean) continue;
    auto majority = [&](const std::vector<NodeId>& voters) {
      size_t have = 0;
      for (NodeId v : voters) {
        const int n = static_cast<int>(v.value()) - 1;
        have += n < n_nodes_ && island[static_cast<size_t>(n)] == root && ok_node(n) ? 1 : 0;
      }
      return voters.empty() || have > voters.size() / 2;
    };
    if (majority(cs.voters) && majority(cs.voters_outgoing)) {
      *why = fmt::format("island of n{} holds a majority of the voters {} / {}", root + 1,
                         ids(cs.voters), ids(cs.voters_outgoing));
      return true;
    }
  }
  return false;
}

// Quiescing (raft.h): the driver wakes every replica when a node crashes or restarts or the
// network changes, so a follower that sleeps under a leader that is down, gone or cut off from
// it went (back) to sleep after that wake: nothing would ever wake it again.
void Sim::check_quiesced() {
  for (int n = 0; n < n_nodes_ && result_.ok; ++n) {
    for (int g = 0; g < o_.groups && result_.ok; ++g) {
      const raft::Group* grp = running(n, g);
      if (!grp || !grp->quiesced() || grp->role() != raft::Role::kFollower) continue;
      const int l = static_cast<int>(grp->leader().value()) - 1;
      if (l == n) continue;
      const bool gone = l < 0 || l >= n_nodes_ || !running(l, g);
      if (!gone && !blocked_[static_cast<size_t>(l)][static_cast<size_t>(n)]) continue;
      violate(fmt::format("node {} group {} sleeps (quiesced) under leader node {}, which is {}",
                          n + 1, g + 1, l + 1, gone ? "down or gone" : "cut off from it"));
    }
  }
}

// Every fault change (crash, restart, partition, heal, disk stall) starts every window anew:
// the availability claim is about a fault state that stays put long enough.
void Sim::fault_changed() {
  std::fill(healthy_since_.begin(), healthy_since_.end(), -1);
  if (healed_) return;
  for (auto& m : marker_) m.reset();
}

// While a group stays healthy, it must elect a leader and commit: once it has been healthy for
// kAvailSettleTicks it proposes a marker entry (re-proposed on leader changes) that must commit
// before it has been healthy for kAvailTicks; each committed marker starts a new window.
void Sim::availability_tick() {
  for (int g = 0; g < o_.groups && result_.ok; ++g) {
    int64_t& since = healthy_since_[static_cast<size_t>(g)];
    std::string why;
    if (!group_healthy(g, &why)) {
      since = -1;
      marker_[static_cast<size_t>(g)].reset();
      continue;
    }
    if (since < 0) since = now_;
    const int64_t healthy = now_ - since;
    if (healthy < static_cast<int64_t>(kAvailSettleTicks) * kTickUs) continue;
    if (marker_tick(g)) {
      ++result_.stats.avail_windows;
      since = now_;
      continue;
    }
    if (healthy > static_cast<int64_t>(kAvailTicks) * kTickUs) {
      violate(fmt::format(
          "availability: group {} has been healthy for {} ms ({}) but did not elect a leader "
          "and commit a fresh entry",
          g + 1, healthy / kUsPerMs, why));
      result_.details += describe_group(g);
    }
  }
}

}  // namespace raftd::sim::detail
