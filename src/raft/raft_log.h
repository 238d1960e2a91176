// Internal: one replica's log = the durable part (LogStorage, owned by the driver) + an in-memory
// unstable tail (entries appended or received but not yet confirmed durable by on_persisted) +
// optionally a snapshot received from the leader and not yet installed.
//
//   storage:  [first .............. offset-1]      durable (LogStorage may hold stale entries
//   unstable:                     [offset ........ last]    beyond offset-1: they are shadowed)
//                                  in_progress: first unstable index not yet handed to a Ready
//
// Indexes below `offset` are durable: offset only moves up in stable_to(), which the driver calls
// once entries are durable, and down when a conflicting suffix is replaced.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "raftd/raft/raft.h"

namespace raftd::raft {

class RaftLog {
 public:
  RaftLog(const LogStorage& storage, const SnapshotMeta& snapshot, LogIndex committed,
          LogIndex applied);

  LogIndex first_index() const;
  LogIndex last_index() const;
  Term last_term() const;
  // Term of entry i if known: i in [first_index() - 1, last_index()].
  std::optional<Term> term(LogIndex i) const;
  bool match_term(LogIndex i, Term t) const;
  // Is a log ending at (last_index, last_term) at least as up to date as ours (thesis §3.6.1)?
  bool is_up_to_date(LogIndex last_index, Term last_term) const;

  // Entries [lo, hi) up to max_bytes (at least one). nullopt when lo is compacted.
  std::optional<std::vector<Entry>> slice(LogIndex lo, LogIndex hi, uint64_t max_bytes) const;

  // Leader append of entries that follow the last index.
  void append(std::vector<Entry> entries);
  // Follower append (thesis Fig. 3.1 receiver rules). Returns the last new index on success,
  // nullopt when (prev_index, prev_term) does not match.
  std::optional<LogIndex> maybe_append(LogIndex prev_index, Term prev_term, LogIndex leader_commit,
                                       const std::vector<Entry>& entries);
  // Largest index <= `index` whose term is <= `term` (fast backtracking; etcd's
  // findConflictByTerm). Stops at the first index whose term is unknown (compacted).
  LogIndex find_conflict_by_term(LogIndex index, Term term) const;

  void commit_to(LogIndex index);
  LogIndex committed() const { return committed_; }
  // At or above the index of every configuration change entry in the log (entries the node
  // booted with count as such: their types are not read at boot). A commit that moves from c
  // while this is <= c commits no configuration change (Ready::hard_state_lazy).
  LogIndex conf_change_bound() const { return conf_change_bound_; }
  LogIndex applied() const { return applied_; }
  LogIndex applying() const { return applying_; }
  // Highest index known durable here (a pending snapshot is not durable yet).
  LogIndex persisted() const;

  // Durability report (index, term): ignored unless entry `index` still has term `term` (ABA).
  bool stable_to(LogIndex index, Term term);
  // Ready plumbing.
  bool has_entries_to_persist() const;
  std::vector<Entry> take_entries_to_persist();
  bool has_snapshot_to_install() const { return snapshot_ && !snapshot_handed_out_; }
  std::optional<Snapshot> take_snapshot_to_install();
  bool snapshot_pending() const { return snapshot_ != nullptr; }
  bool snapshot_installed(const SnapshotMeta& meta);
  // Committed, durable, not yet handed out; bounded by max_bytes (at least one entry).
  bool has_committed_to_apply() const;
  std::vector<Entry> take_committed_to_apply(uint64_t max_bytes);
  void applied_to(LogIndex index);

  // Replace the whole log by a snapshot from the leader.
  void restore(Snapshot snapshot);
  // The driver compacted storage; track the new snapshot base.
  void compacted(const SnapshotMeta& meta);
  const SnapshotMeta& snapshot_meta() const { return base_; }

  const std::vector<Entry>& unstable() const { return unstable_; }
  LogIndex offset() const { return offset_; }

 private:
  std::optional<Term> stored_term(LogIndex i) const;
  void truncate_and_append(const std::vector<Entry>& entries, size_t from);
  LogIndex find_conflict(const std::vector<Entry>& entries) const;

  const LogStorage* storage_;
  SnapshotMeta base_;  // latest snapshot known to be durable locally (compaction point)
  // Received, not yet installed. On the heap: rare, and 160 bytes inline in every replica.
  std::unique_ptr<Snapshot> snapshot_;
  bool snapshot_handed_out_ = false;
  std::vector<Entry> unstable_;
  LogIndex offset_;       // index of unstable_[0]
  LogIndex in_progress_;  // first unstable index not yet handed out for persisting
  LogIndex committed_;
  LogIndex conf_change_bound_;
  LogIndex applying_;  // highest index handed out to apply
  LogIndex applied_;   // highest index the driver confirmed (advance)
};

}  // namespace raftd::raft
