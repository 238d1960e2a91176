// The checkers: safety after every event, the committed-log record, liveness (sim_impl.h).
#include "sim_impl.h"

namespace raftd::sim::detail {
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
    auto [it, inserted] = leaders_.emplace(std::make_pair(g, grp.term().value()),
                                           std::make_pair(node(n).id, node(n).incarnation));
    if (inserted) {
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
}

// Every replica's committed prefix (down to kLogCheckDepth below commit) against the record:
// catches a committed entry that was overwritten without the commit index moving.
void Sim::check_logs() {
  for (int n = 0; n < o_.nodes && result_.ok; ++n) {
    if (!node(n).up) continue;
    for (int g = 0; g < o_.groups && result_.ok; ++g) {
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
  for (int n = 0; n < o_.nodes; ++n) {
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
    for (int p = 0; p < o_.nodes; ++p) {
      auto pr = grp.progress(NodeId(static_cast<uint64_t>(p) + 1));
      if (!pr) continue;
      s += fmt::format("      n{}: match {} next {} {} inflight {} active {}\n", p + 1,
                       pr->match.value(), pr->next.value(), raft::progress_state_name(pr->state),
                       pr->inflight_msgs, pr->recent_active);
    }
  }
  return s;
}

// After the heal: each group needs a leader that commits a fresh marker entry.
void Sim::liveness_tick() {
  bool all = true;
  for (int g = 0; g < o_.groups; ++g) {
    if (live_[static_cast<size_t>(g)]) continue;
    all = false;
    auto& marker = marker_[static_cast<size_t>(g)];
    if (marker) {
      const Replica& r = rep(marker->first, g);
      if (r.app.applied >= marker->second) {
        auto t = r.group->term_at(marker->second);
        if (!t || *t == marker_term_[static_cast<size_t>(g)]) {
          live_[static_cast<size_t>(g)] = true;
          trace(fmt::format("g{} live: marker committed at {}", g + 1, marker->second.value()));
          continue;
        }
        marker.reset();  // overwritten by another leader: propose again
      } else if (r.group->role() != raft::Role::kLeader) {
        marker.reset();
      }
    }
    for (int n = 0; n < o_.nodes && !marker; ++n) {
      Replica& r = rep(n, g);
      if (r.group->role() != raft::Role::kLeader) continue;
      auto index = r.group->propose(fmt::format("m {}", world_ticks_));
      if (!index) continue;
      marker = std::make_pair(n, *index);
      marker_term_[static_cast<size_t>(g)] = r.group->term();
      drain(n, g);
    }
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

}  // namespace raftd::sim::detail
