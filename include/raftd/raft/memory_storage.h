// MemoryLogStorage: a LogStorage kept in memory, for tests, the simulator and benchmarks.
//
// It models the durable part of one replica's log: the driver calls append() with the entries of
// a Ready once they count as durable (or when it writes them, if it models crashes separately),
// install_snapshot() for a Ready snapshot and compact() after Group::compact(). Not thread-safe.
#pragma once

#include <deque>
#include <vector>

#include "raftd/raft/raft.h"

namespace raftd::raft {

class MemoryLogStorage final : public LogStorage {
 public:
  MemoryLogStorage() = default;
  // Starts with an empty log after `snapshot` (first_index = snapshot.index + 1).
  explicit MemoryLogStorage(const SnapshotMeta& snapshot) : snapshot_(snapshot) {}

  LogIndex first_index() const override { return snapshot_.index + 1; }
  LogIndex last_index() const override { return snapshot_.index + entries_.size(); }
  Result<Term> term(LogIndex i) const override;
  Status entries(LogIndex lo, LogIndex hi, uint64_t max_bytes,
                 std::vector<Entry>* out) const override;

  // Appends `es` (contiguous), replacing every stored entry with index >= es[0].index. Asserts
  // that es[0].index <= last_index() + 1 and > snapshot index.
  void append(const std::vector<Entry>& es);
  // Drops every entry; the log continues after `meta`.
  void install_snapshot(const SnapshotMeta& meta);
  // Drops entries up to `meta.index` (which must be stored or be the snapshot index).
  void compact(const SnapshotMeta& meta);
  // Drops entries with index > `index` (a crash losing unsynced writes, in the simulator).
  void truncate_after(LogIndex index);

  const SnapshotMeta& snapshot() const { return snapshot_; }

 private:
  SnapshotMeta snapshot_;
  std::deque<Entry> entries_;
};

}  // namespace raftd::raft
