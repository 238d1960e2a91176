// GroupLog: what the WAL knows about one group: its hard state, compaction mark and where each
// live entry is stored. Built by recovery, then kept up to date by the writer. Not thread-safe
// (owned by the reactor thread, or by a recovery pass).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "raftd/base/ids.h"
#include "raftd/base/ring.h"
#include "raftd/wal/format.h"
#include "raftd/wal/node_pool.h"
#include "raftd/wal/records.h"

namespace raftd::wal {

// Marks a base term that is not known: the entry before the first live one sits in a deleted
// segment and was never compacted (recovery reports this as a gap unless a mark covers it).
inline constexpr Term kTermUnknown{UINT64_MAX};

// EntryLoc::cache_pos of an entry that never was in the cache arena (recovered from a file).
inline constexpr uint64_t kNoCachePos = UINT64_MAX;

// Where one live entry is: 40 bytes, one per entry of every group's live log, so a node
// holding a few hundred thousand live entries spends its index memory here (it was 56 bytes
// with a separate token; bench/etcd/README.md "Memory"). A frame lies within one segment of at
// most kSegmentBytesMax (1 GiB) bytes, so its offset and the payload's offset in it fit 32 bits.
struct EntryLoc {
  Term term;
  uint64_t segment = 0;  // sequence of the segment holding the frame; 0 while not placed
  // The entry's position in the Wal's cache arena (cache_arena.h): where its bytes are while
  // `cached`, and afterwards still its identity. Positions never repeat (every put advances the
  // arena), so a record made for one appended entry (a fix-up, a cache reference) recognizes a
  // later entry at the same index as another one. kNoCachePos for an entry read by recovery.
  uint64_t cache_pos = kNoCachePos;
  uint32_t frame_offset = 0;    // byte offset of the frame header in that segment
  uint32_t payload_offset = 0;  // offset of the payload inside the frame body
  uint32_t length = 0;
  uint16_t type = 0;
  bool cached = false;  // the Wal's cache arena holds the bytes (recent or not yet durable)
};
static_assert(sizeof(EntryLoc) == 40, "EntryLoc is per live entry: keep it dense");
static_assert(kSegmentBytesMax <= UINT32_MAX, "frame offsets are 32-bit");

// The locations of a group's live entries, oldest first. An idle group holds one or a few
// entries, and a node holds thousands of groups: up to kSmallMax entries live in a Ring
// (base/ring.h) that costs what it holds (two slots for one entry). A longer log moves to a
// deque whose nodes come from NodePool (node_pool.h), on huge pages: growing a log by
// reallocating one array would fault in fresh 4 KiB pages and copy it at every doubling, which
// cost the WAL's loop half again its CPU per batch while logs grew (bench/wal/README.md). The
// deque is dropped when it empties, so a group back to a few entries costs little again once
// compaction clears its log.
class EntryIndex {
 public:
  static constexpr size_t kSmallMax = 8;

  bool empty() const { return size() == 0; }
  size_t size() const { return big_ ? big_->size() : small_.size(); }
  EntryLoc& operator[](size_t i) { return big_ ? (*big_)[i] : small_[i]; }
  const EntryLoc& operator[](size_t i) const { return big_ ? (*big_)[i] : small_[i]; }
  EntryLoc& front() { return (*this)[0]; }
  const EntryLoc& front() const { return (*this)[0]; }
  EntryLoc& back() { return (*this)[size() - 1]; }
  const EntryLoc& back() const { return (*this)[size() - 1]; }

  void push_back(const EntryLoc& loc) {
    if (!big_ && small_.size() == kSmallMax) {
      big_ = std::make_unique<Deque>();
      for (const EntryLoc& l : small_) big_->push_back(l);
      small_.clear();
    }
    if (big_) {
      big_->push_back(loc);
    } else {
      small_.push_back(loc);
    }
  }
  void pop_front() {
    if (!big_) {
      small_.pop_front();
      return;
    }
    big_->pop_front();
    if (big_->empty()) big_.reset();
  }
  void pop_back() {
    if (!big_) {
      small_.pop_back();
      return;
    }
    big_->pop_back();
    if (big_->empty()) big_.reset();
  }
  void clear() {
    small_.clear();
    big_.reset();
  }
  bool spilled() const { return big_ != nullptr; }

  IndexIter<EntryIndex, EntryLoc> begin() { return {this, 0}; }
  IndexIter<EntryIndex, EntryLoc> end() { return {this, size()}; }
  IndexIter<const EntryIndex, const EntryLoc> begin() const { return {this, 0}; }
  IndexIter<const EntryIndex, const EntryLoc> end() const { return {this, size()}; }

 private:
  using Deque = std::deque<EntryLoc, NodeAllocator<EntryLoc>>;
  Ring<EntryLoc> small_;
  std::unique_ptr<Deque> big_;  // past kSmallMax entries
};

struct GroupLog {
  HardState hard;
  SnapshotMark mark;    // compaction point: entries <= mark.index are gone
  LogIndex base_index;  // index of the entry just before locs.front() (== mark.index normally)
  Term base_term;
  // Live entries base_index+1 .. last_index().
  EntryIndex locs;

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
