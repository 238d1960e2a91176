// MemoryLogStorage: see raftd/raft/memory_storage.h.
#include "raftd/raft/memory_storage.h"

namespace raftd::raft {

Result<Term> MemoryLogStorage::term(LogIndex i) const {
  if (i < snapshot_.index) return Status(Code::kNotFound, "compacted");
  if (i == snapshot_.index) return snapshot_.term;
  if (i > last_index()) return Status(Code::kNotFound, "beyond the last index");
  return entries_[i - first_index()].term;
}

Status MemoryLogStorage::entries(LogIndex lo, LogIndex hi, uint64_t max_bytes,
                                 std::vector<Entry>* out) const {
  if (lo < first_index()) return Status(Code::kNotFound, "compacted");
  RAFTD_ASSERT(hi <= last_index() + 1 && lo <= hi, "MemoryLogStorage::entries: range");
  uint64_t bytes = 0;
  for (LogIndex i = lo; i < hi; ++i) {
    const Entry& e = entries_[i - first_index()];
    if (i != lo && bytes + e.size_bytes() > max_bytes) break;
    bytes += e.size_bytes();
    out->push_back(e);
  }
  return Status::ok();
}

void MemoryLogStorage::append(const std::vector<Entry>& es) {
  if (es.empty()) return;
  LogIndex first = es.front().index;
  RAFTD_ASSERT(first > snapshot_.index, "MemoryLogStorage::append: below the snapshot");
  RAFTD_ASSERT(first <= last_index() + 1, "MemoryLogStorage::append: gap in the log");
  entries_.resize(first - first_index());
  for (const Entry& e : es) {
    RAFTD_ASSERT(e.index == first_index() + entries_.size(), "MemoryLogStorage: not contiguous");
    entries_.push_back(e);
  }
}

void MemoryLogStorage::install_snapshot(const SnapshotMeta& meta) {
  snapshot_ = meta;
  entries_.clear();
}

void MemoryLogStorage::compact(const SnapshotMeta& meta) {
  if (meta.index <= snapshot_.index) return;
  RAFTD_ASSERT(meta.index <= last_index(), "MemoryLogStorage::compact: beyond the last index");
  size_t drop = meta.index - snapshot_.index;
  entries_.erase(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(drop));
  snapshot_ = meta;
}

void MemoryLogStorage::truncate_after(LogIndex index) {
  if (index >= last_index()) return;
  RAFTD_ASSERT(index >= snapshot_.index, "MemoryLogStorage::truncate_after: below the snapshot");
  entries_.resize(index - snapshot_.index);
}

}  // namespace raftd::raft
