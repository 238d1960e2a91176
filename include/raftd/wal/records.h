// Frame bodies: the records the WAL stores for each group (doc/wal-format.md, "Frame types and
// bodies"), an encoder that appends records to a body buffer and a validating decoder. Pure
// code, no I/O; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "raftd/base/ids.h"
#include "raftd/base/status.h"
#include "raftd/wal/format.h"

namespace raftd::wal {

// The integer inside an id/term/index, for formatting messages (fmt has no formatter for the
// strong types); other values pass through unchanged.
template <typename Tag>
constexpr uint64_t raw(StrongU64<Tag> x) {
  return x.value();
}
template <typename T>
constexpr const T& raw(const T& x) {
  return x;
}

// Raft's persistent per-group state (Raft paper fig. 2: currentTerm, votedFor) plus the commit
// index. Must be durable before a vote is granted or an AppendEntries acknowledged.
struct HardState {
  Term term;
  NodeId vote;  // NodeId(0): no vote in `term`
  LogIndex commit;
  bool operator==(const HardState&) const = default;
};

// A compaction point: the group's entries through `index` are covered by a snapshot the
// application holds; `term` is the term of the entry at `index`.
struct SnapshotMark {
  LogIndex index;
  Term term;
  bool operator==(const SnapshotMark&) const = default;
};

// An entry handed to the WAL for appending; `data` is borrowed for the call only.
struct EntryView {
  Term term;
  uint16_t type = 0;  // opaque to the WAL: the Raft layer's entry kind
  std::span<const std::byte> data;
};

// An entry read back from the WAL; owns its payload.
struct Entry {
  LogIndex index;
  Term term;
  uint16_t type = 0;
  std::string data;
  bool operator==(const Entry&) const = default;
};

// One group's state in a CHECKPOINT frame.
struct CheckpointRecord {
  GroupId group;
  HardState hard;
  SnapshotMark mark;
  LogIndex last_index;
  Term last_term;
};

// Appends records to a frame body. The caller counts items per frame.
class BodyWriter {
 public:
  explicit BodyWriter(std::vector<std::byte>* out) : out_(out) {}
  void entries_block(GroupId g, LogIndex first, uint32_t count);
  // Returns the offset of the entry's payload inside the body.
  uint64_t entry(const EntryView& e);
  void hard_state(GroupId g, const HardState& hs);
  void truncate(GroupId g, LogIndex from);
  void snapshot_mark(GroupId g, const SnapshotMark& m);
  void checkpoint(const CheckpointRecord& c);

 private:
  std::byte* grow(uint64_t n);
  std::vector<std::byte>* out_;
};

// Receives the records of a body in order. `payload_offset` is relative to the body start.
class BodyVisitor {
 public:
  virtual ~BodyVisitor() = default;
  virtual Status on_entry(GroupId g, LogIndex index, Term term, uint16_t type,
                          std::span<const std::byte> data, uint64_t payload_offset) = 0;
  // Called before the block's entries; entries of the block replace the group's from `first`.
  virtual Status on_entries_block(GroupId g, LogIndex first, uint32_t count) = 0;
  virtual Status on_hard_state(GroupId g, const HardState& hs) = 0;
  virtual Status on_truncate(GroupId g, LogIndex from) = 0;
  virtual Status on_snapshot_mark(GroupId g, const SnapshotMark& m) = 0;
  virtual Status on_checkpoint(const CheckpointRecord& c) = 0;
};

// Checks the body's structure (record sizes, item count: group blocks for ENTRIES, records for
// the other types; at least one except for CHECKPOINT; no trailing bytes; reserved fields and
// entry padding zero; entries within kEntryBytesMax) and calls the visitor for each record. A
// structural error or a visitor error is returned as kCorruption with a message saying what is
// wrong (the caller adds file and offset).
Status decode_body(FrameType type, uint32_t item_count, std::span<const std::byte> body,
                   BodyVisitor& v);

}  // namespace raftd::wal
