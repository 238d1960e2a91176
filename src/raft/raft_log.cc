// RaftLog: see raft_log.h for the layout. Thesis Fig. 3.1 (AppendEntries receiver rules) and
// etcd's log.go/log_unstable.go are the references for the append and conflict rules.
#include "raft_log.h"

#include <algorithm>

#include "bug_hooks.h"

namespace raftd::raft {

RaftLog::RaftLog(const LogStorage& storage, const SnapshotMeta& snapshot, LogIndex committed,
                 LogIndex applied)
    : storage_(&storage), base_(snapshot) {
  offset_ = storage.last_index() + 1;
  in_progress_ = offset_;
  committed_ = committed;
  conf_change_bound_ = storage.last_index();
  applying_ = applied;
  applied_ = applied;
}

LogIndex RaftLog::first_index() const {
  if (snapshot_) return snapshot_->meta.index + 1;
  return std::max(storage_->first_index(), base_.index + 1);
}

LogIndex RaftLog::last_index() const {
  if (!unstable_.empty()) return offset_ + (unstable_.size() - 1);
  if (snapshot_) return snapshot_->meta.index;
  return offset_ - 1;
}

Term RaftLog::last_term() const {
  std::optional<Term> t = term(last_index());
  RAFTD_ASSERT(t.has_value(), "RaftLog: term of the last index is unknown");
  return *t;
}

std::optional<Term> RaftLog::stored_term(LogIndex i) const {
  if (i == base_.index) return base_.term;
  if (i < base_.index) return std::nullopt;
  Result<Term> t = storage_->term(i);
  if (!t.is_ok()) {
    RAFTD_ASSERT(t.status().code() == Code::kNotFound, "LogStorage::term failed");
    return std::nullopt;
  }
  return t.value();
}

std::optional<Term> RaftLog::term(LogIndex i) const {
  if (i >= offset_) {
    if (i - offset_ < unstable_.size()) return unstable_[i - offset_].term;
    if (snapshot_ && i == snapshot_->meta.index) return snapshot_->meta.term;
    return std::nullopt;
  }
  if (snapshot_) {
    if (i == snapshot_->meta.index) return snapshot_->meta.term;
    return std::nullopt;  // the old log is gone once a snapshot replaced it
  }
  return stored_term(i);
}

bool RaftLog::match_term(LogIndex i, Term t) const {
  std::optional<Term> mine = term(i);
  return mine && *mine == t;
}

bool RaftLog::is_up_to_date(LogIndex last_index_in, Term last_term_in) const {
  Term lt = last_term();
  return last_term_in > lt || (last_term_in == lt && last_index_in >= last_index());
}

std::optional<std::vector<Entry>> RaftLog::slice(LogIndex lo, LogIndex hi,
                                                 uint64_t max_bytes) const {
  if (lo < first_index()) return std::nullopt;
  RAFTD_ASSERT(hi <= last_index() + 1, "RaftLog::slice beyond the last index");
  std::vector<Entry> out;
  if (lo >= hi) return out;
  uint64_t bytes = 0;
  if (lo < offset_) {
    LogIndex stored_hi = std::min(hi, offset_);
    Status s = storage_->entries(lo, stored_hi, max_bytes, &out);
    if (!s.is_ok()) {
      RAFTD_ASSERT(s.code() == Code::kNotFound, "LogStorage::entries failed");
      return std::nullopt;
    }
    for (const Entry& e : out) bytes += e.size_bytes();
    if (out.empty() || out.back().index + 1 < stored_hi) return out;  // byte limit reached
  }
  for (LogIndex i = std::max(lo, offset_); i < hi; ++i) {
    const Entry& e = unstable_[i - offset_];
    if (!out.empty() && bytes + e.size_bytes() > max_bytes) break;
    bytes += e.size_bytes();
    out.push_back(e);
  }
  return out;
}

void RaftLog::append(std::vector<Entry> entries) {
  if (entries.empty()) return;
  RAFTD_ASSERT(entries.front().index == last_index() + 1, "RaftLog::append: not contiguous");
  if (unstable_.empty()) offset_ = entries.front().index;
  for (Entry& e : entries) {
    if (e.type == EntryType::kConfChange)
      conf_change_bound_ = std::max(conf_change_bound_, e.index);
    unstable_.push_back(std::move(e));
  }
}

LogIndex RaftLog::find_conflict(const std::vector<Entry>& entries) const {
  LogIndex first = first_index();
  for (const Entry& e : entries) {
    // A compacted entry is committed, hence identical to the leader's: never a conflict (bug #3).
    if (e.index < first) continue;
    if (!match_term(e.index, e.term)) return e.index;
  }
  return LogIndex(0);
}

std::optional<LogIndex> RaftLog::maybe_append(LogIndex prev_index, Term prev_term,
                                              LogIndex leader_commit,
                                              const std::vector<Entry>& entries) {
  if (!match_term(prev_index, prev_term)) return std::nullopt;
  LogIndex last_new = prev_index + entries.size();
  if (RAFTD_BUG(kTruncateCommitted)) {
    // Mutation: replace everything after prev_index on every append, even below commit, even
    // when a stale (reordered) append carries fewer entries than we already acknowledged.
    if (!entries.empty()) truncate_and_append(entries, 0);
  } else {
    LogIndex conflict = find_conflict(entries);
    if (conflict != LogIndex(0)) {
      RAFTD_ASSERT(conflict > committed_, "RaftLog: conflicting entry below the commit index");
      truncate_and_append(entries, conflict - (prev_index + 1));
    }
  }
  commit_to(std::min(leader_commit, last_new));
  return last_new;
}

void RaftLog::truncate_and_append(const std::vector<Entry>& entries, size_t from) {
  if (from >= entries.size()) return;
  LogIndex after = entries[from].index;
  if (after == offset_ + unstable_.size()) {
    // plain append
  } else if (after <= offset_) {
    // Replacing durable entries too: they are shadowed until the new ones are durable.
    unstable_.clear();
    offset_ = after;
  } else {
    unstable_.resize(after - offset_);
  }
  in_progress_ = std::min(in_progress_, after);
  for (size_t i = from; i < entries.size(); ++i) {
    if (entries[i].type == EntryType::kConfChange) {
      conf_change_bound_ = std::max(conf_change_bound_, entries[i].index);
    }
    unstable_.push_back(entries[i]);
  }
}

LogIndex RaftLog::find_conflict_by_term(LogIndex index, Term t) const {
  index = std::min(index, last_index());
  while (index > LogIndex(0)) {
    std::optional<Term> ti = term(index);
    if (!ti || *ti <= t) return index;
    index = index - 1;
  }
  return LogIndex(0);
}

void RaftLog::commit_to(LogIndex index) {
  if (index <= committed_) return;
  RAFTD_ASSERT(index <= last_index(), "RaftLog: commit index beyond the last index");
  committed_ = index;
}

LogIndex RaftLog::persisted() const {
  if (snapshot_) return applied_;
  return offset_ - 1;
}

bool RaftLog::stable_to(LogIndex index, Term t) {
  if (index < offset_ || index >= in_progress_) return false;
  if (!match_term(index, t)) return false;  // overwritten while being written (bug #13, ABA)
  size_t n = index - offset_ + 1;
  unstable_.erase(unstable_.begin(), unstable_.begin() + static_cast<std::ptrdiff_t>(n));
  offset_ = index + 1;
  if (unstable_.empty()) unstable_.shrink_to_fit();
  return true;
}

bool RaftLog::has_entries_to_persist() const {
  return !unstable_.empty() && in_progress_ <= last_index();
}

std::vector<Entry> RaftLog::take_entries_to_persist() {
  std::vector<Entry> out;
  if (!has_entries_to_persist()) return out;
  out.assign(unstable_.begin() + static_cast<std::ptrdiff_t>(in_progress_ - offset_),
             unstable_.end());
  in_progress_ = last_index() + 1;
  return out;
}

std::optional<Snapshot> RaftLog::take_snapshot_to_install() {
  if (!has_snapshot_to_install()) return std::nullopt;
  snapshot_handed_out_ = true;
  return *snapshot_;
}

bool RaftLog::snapshot_installed(const SnapshotMeta& meta) {
  if (!snapshot_ || !snapshot_handed_out_ || snapshot_->meta.index != meta.index ||
      snapshot_->meta.term != meta.term) {
    return false;
  }
  base_ = snapshot_->meta;
  snapshot_.reset();
  snapshot_handed_out_ = false;
  applying_ = std::max(applying_, meta.index);
  applied_ = std::max(applied_, meta.index);
  return true;
}

bool RaftLog::has_committed_to_apply() const {
  if (snapshot_) return false;
  LogIndex durable = RAFTD_BUG(kAckBeforePersist) ? last_index() : persisted();
  return applying_ < std::min(committed_, durable);
}

std::vector<Entry> RaftLog::take_committed_to_apply(uint64_t max_bytes) {
  if (!has_committed_to_apply()) return {};
  LogIndex durable = RAFTD_BUG(kAckBeforePersist) ? last_index() : persisted();
  LogIndex hi = std::min(committed_, durable) + 1;
  std::optional<std::vector<Entry>> es = slice(applying_ + 1, hi, max_bytes);
  RAFTD_ASSERT(es && !es->empty(), "RaftLog: committed entries not readable");
  applying_ = es->back().index;
  return std::move(*es);
}

void RaftLog::applied_to(LogIndex index) { applied_ = std::max(applied_, index); }

void RaftLog::restore(Snapshot snapshot) {
  LogIndex index = snapshot.meta.index;
  snapshot_ = std::make_unique<Snapshot>(std::move(snapshot));
  snapshot_handed_out_ = false;
  unstable_.clear();
  unstable_.shrink_to_fit();
  offset_ = index + 1;
  in_progress_ = offset_;
  committed_ = index;
}

void RaftLog::compacted(const SnapshotMeta& meta) {
  if (meta.index > base_.index) base_ = meta;
}

}  // namespace raftd::raft
