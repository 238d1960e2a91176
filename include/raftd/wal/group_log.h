// GroupLog: what the WAL knows about one group: its hard state, compaction mark and where each
// live entry is stored. Built by recovery, then kept up to date by the writer. Not thread-safe
// (owned by the reactor thread, or by a recovery pass).
#pragma once

#include <cstdint>
#include <string>

#include "raftd/base/ids.h"
#include "raftd/base/ring.h"
#include "raftd/wal/records.h"

namespace raftd::wal {

// Marks a base term that is not known: the entry before the first live one sits in a deleted
// segment and was never compacted (recovery reports this as a gap unless a mark covers it).
inline constexpr Term kTermUnknown{UINT64_MAX};

struct EntryLoc {
  Term term;
  uint64_t segment = 0;         // sequence of the segment holding the frame; 0 while not placed
  uint64_t frame_offset = 0;    // byte offset of the frame header in that segment
  uint32_t payload_offset = 0;  // offset of the payload inside the frame body
  uint32_t length = 0;
  uint16_t type = 0;
  bool cached = false;     // the Wal's cache arena holds the bytes (recent or not yet durable)
  uint64_t token = 0;      // unique per appended entry; ties cache and fix-up records to it
  uint64_t cache_pos = 0;  // position of the bytes in the cache arena while cached
};

struct GroupLog {
  HardState hard;
  SnapshotMark mark;    // compaction point: entries <= mark.index are gone
  LogIndex base_index;  // index of the entry just before locs.front() (== mark.index normally)
  Term base_term;
  // Live entries base_index+1 .. last_index(). A Ring (base/ring.h): an idle group's one or two
  // entries cost two slots, not a deque's 576 bytes.
  Ring<EntryLoc> locs;

  LogIndex last_index() const { return base_index + locs.size(); }
  Term last_term() const { return locs.empty() ? base_term : locs.back().term; }
  // The entry at i, or nullptr when i is not a live index.
  const EntryLoc* at(LogIndex i) const {
    if (i <= base_index || i > last_index()) return nullptr;
    return &locs[i - base_index - 1];
  }
  EntryLoc* at(LogIndex i) {
    if (i <= base_index || i > last_index()) return nullptr;
    return &locs[i - base_index - 1];
  }
  // Removes entries >= from (from > mark.index, from <= last_index() + 1). Calls drop(loc) for
  // each removed entry.
  template <typename Drop>
  void truncate_from(LogIndex from, Drop drop) {
    while (!locs.empty() && last_index() >= from) {
      drop(locs.back());
      locs.pop_back();
    }
    if (from <= base_index) {
      base_index = from - 1;
      base_term = base_index == mark.index ? mark.term : kTermUnknown;
    }
  }
  // Moves the compaction mark forward (m.index >= mark.index). Calls drop(loc) for each
  // removed entry.
  template <typename Drop>
  void compact_to(const SnapshotMark& m, Drop drop) {
    mark = m;
    if (m.index >= last_index()) {
      for (auto& l : locs) drop(l);
      locs.clear();
      base_index = m.index;
      base_term = m.term;
      return;
    }
    while (base_index < m.index) {
      drop(locs.front());
      locs.pop_front();
      ++base_index;
    }
    if (base_index == m.index) base_term = m.term;
  }
};

}  // namespace raftd::wal
