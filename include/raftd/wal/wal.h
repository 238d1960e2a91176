// Wal: the node's one write-ahead log for all groups (doc/wal-format.md).
//
// Appending and durability are different things: append()/set_hard_state()/truncate()/
// compact() only stage records; flush(), called at the end of every reactor turn, turns
// everything staged since the last batch into ONE write chained to ONE fdatasync (group
// commit). One batch is in flight at a time; records staged meanwhile wait for the next flush.
// Stage from inside a turn (a completion callback or a function given to Reactor::post()): a
// record staged between turns is flushed only at the end of the next turn, which first blocks
// in io_uring for as long as nothing completes.
// When a batch is durable, on_durable reports, per group touched, the (index, term) and hard
// state now on disk: only then may Raft acknowledge, vote or count itself.
//
// Failures: a write or fdatasync error is fail-stop (logged with file, offset and errno, then
// WalOptions::fail_stop, default abort): after an fsync error the kernel may have dropped the
// dirty pages, so retrying could report durability that does not exist. After fail-stop every
// call returns kAborted. Staging errors (bad arguments, batch queue full) are Statuses.
//
// Threading: one owner thread (the reactor's) for every call and callback. The segment
// preparer's thread only touches files through Env and reports back via the Executor.
// Lifetime: destroy only when idle() (no batch in flight), or after fail-stop, or after
// dropping the executor's queue in a simulated crash.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "raftd/base/histogram.h"
#include "raftd/base/ids.h"
#include "raftd/base/status.h"
#include "raftd/wal/cache_arena.h"
#include "raftd/wal/file.h"
#include "raftd/wal/format.h"
#include "raftd/wal/group_log.h"
#include "raftd/wal/node_pool.h"
#include "raftd/wal/records.h"
#include "raftd/wal/recovery.h"
#include "raftd/wal/segment_preparer.h"
#include "raftd/wal/sync_writer.h"

namespace raftd::wal {

// One batch: its frames are written with one write + one fdatasync. 1 MiB keeps a batch's
// write well under the disk's fsync cost at 64 KiB-1 MiB blocks while bounding what a crash
// can tear and what recovery may have to cut.
inline constexpr uint64_t kBatchBytesDefault = 1ULL << 20;
// Recently appended entries kept in memory for replication and re-delivery. Their bytes live in
// one ring (cache_arena.h) of max(cache_bytes_max, 2 * batch_bytes_max) plus two entries'
// slack, reserved at open and faulted in as it fills: 10 MiB by default, all resident once the
// ring has wrapped. After each durable batch the oldest durable entries leave until the ring's
// bytes in use (live entries, dead ones not yet passed, staged ones) are at most
// cache_bytes_max; staged entries always stay, and an append they leave no room for gets
// kUnavailable (append()). (Until 2026-12-02 the ring was the sum of the cache and ten batches,
// 28 MiB, and only live entries counted: it filled with the bytes of compacted entries; then
// the larger of the two, 18 MiB.) Reads only need what followers and the app have not taken
// yet, a fraction of a second of writes when they keep up: 8 MiB is over 5 s of 100-byte entries
// at 12,000/s (bench/etcd) and 0.7 s of 1 KiB ones at that rate; a reader further behind reads
// the segment files (raftd_wal_file_reads_total). At 256 connections 16, 8 and 4 MiB all
// served every read from memory at the same throughput, and each halving saved its size in
// RSS; 64 MiB had cost each node 48 MB more for no gain (bench/etcd/README.md "Memory").
inline constexpr uint64_t kCacheBytesDefault = 8ULL << 20;
// Sealed batches waiting behind the one in flight; beyond this, appends get kUnavailable.
inline constexpr uint32_t kQueuedBatchesDefault = 8;
// Segments kept prepared ahead, so roll-over never waits for file creation.
inline constexpr uint32_t kReadySegmentsDefault = 2;

struct FailStopInfo {
  std::string path;
  uint64_t offset = 0;
  uint64_t bytes = 0;
  int error = 0;  // errno
};

// What one completed batch made durable for one group.
struct Durable {
  GroupId group;
  LogIndex last_index;  // the group's log is durable through (last_index, last_term)
  Term last_term;
  HardState hard;
  SnapshotMark mark;
};

struct WalOptions {
  uint64_t segment_bytes = kSegmentBytesDefault;  // [kSegmentBytesMin, kSegmentBytesMax]
  // [kWriteBytesMin, segment_bytes / 4]; also the largest record (an ENTRIES frame of one
  // entry, so entries are smaller than this: doc/wal-format.md, "Limits").
  uint64_t batch_bytes_max = kBatchBytesDefault;
  uint64_t cache_bytes_max = kCacheBytesDefault;
  uint32_t queued_batches_max = kQueuedBatchesDefault;
  uint32_t ready_segments = kReadySegmentsDefault;  // 1 or 2
  // false: the preparer runs its jobs inline (deterministic tests); results still arrive via
  // the executor.
  bool prepare_on_thread = true;
  // After a failed segment preparation (ENOSPC, EIO), wait this long before trying again, so
  // a full disk does not turn the reactor into a busy loop of failing file creations.
  uint32_t prepare_retry_ms = 1000;
  // Called on the owner thread after each durable batch. Required.
  std::function<void(std::span<const Durable>)> on_durable;
  // Fail-stop action; default logs and aborts. If it returns (tests), the Wal stops working.
  std::function<void(const FailStopInfo&)> fail_stop;
};

// A group that keeps the oldest segment alive (it has not compacted past its entries there).
struct PinningGroup {
  GroupId group;
  uint64_t segment = 0;  // sequence of the oldest segment
  LogIndex first_index;  // the group's first live entry
};

struct WalStats {
  uint64_t batches = 0;  // batches made durable
  uint64_t syncs = 0;    // fdatasyncs issued by the writer (== batches + the one in flight)
  uint64_t frames = 0;
  uint64_t bytes_written = 0;
  uint64_t segments_created = 0;
  uint64_t segments_deleted = 0;
  uint64_t roll_waits = 0;         // times a batch waited for a prepared segment
  uint64_t cache_bytes = 0;        // payload bytes of live cached entries
  uint64_t cache_arena_bytes = 0;  // bytes in use in the cache ring: live, dead, gaps, staged
  uint64_t cache_hits = 0;
  uint64_t file_reads = 0;
  uint64_t batch_bytes_last = 0;
  // Per durable batch: its linked write + fdatasync, from submission to completion, and its
  // bytes (for /metrics).
  Histogram sync_seconds{kSecondsBuckets};
  Histogram batch_bytes{kBytesBuckets};
};

class Wal final : private SyncCompletion {
 public:
  // Recovers `dir` (created if missing; recovery rules in doc/wal-format.md) and prepares to
  // write. Errors: kCorruption naming file and offset, kInvalidArgument for bad options, I/O
  // errors. The Env, Executor and SyncWriter must outlive the Wal.
  static Result<std::unique_ptr<Wal>> open(Env& env, const std::string& dir, WalOptions options,
                                           Executor& executor, SyncWriter& writer);
  ~Wal();
  Wal(const Wal&) = delete;
  Wal& operator=(const Wal&) = delete;

  // ---- staging (not durable until on_durable) ----
  // Entries first.. replace the group's entries from `first` on (mark.index < first <=
  // last_index + 1); terms must not decrease. Errors: kInvalidArgument, kTooLarge (an entry
  // above kEntryBytesMax or a group record above the batch size), kUnavailable (queue full, or
  // the cache ring full of entries not yet durable; nothing is staged, retry after a sync).
  Status append(GroupId g, LogIndex first, std::span<const EntryView> entries);
  // hs.term must not go below the group's current term. A lazy hard state (raft.h "Lazy
  // commit") does not make its batch urgent: flush() leaves a batch holding only lazy records
  // open for later records to join, and flush_lazy() writes it.
  enum class Urgency : uint8_t { kNow, kLazy };
  Status set_hard_state(GroupId g, const HardState& hs, Urgency urgency = Urgency::kNow);
  // Removes entries >= from (mark.index < from <= last_index + 1).
  Status truncate(GroupId g, LogIndex from);
  // Compaction point: entries <= index are no longer needed (the app's snapshot covers them).
  // index >= the current mark (at the mark's index, only with the mark's term: a no-op); when
  // index <= last_index, term must be that entry's term; when index > last_index (a snapshot was
  // installed), the log restarts empty after index.
  Status compact(GroupId g, LogIndex index, Term term);

  // End of a reactor turn: if no batch is in flight, writes what was staged as one batch, unless
  // the open batch holds only lazy hard states (then it stays open).
  void flush();
  // flush(), lazy hard states included (a tick bounds how long they wait, and shutdown writes
  // them). Returns whether nothing staged is left open (false: a batch was in flight; retry).
  bool flush_lazy();

  // ---- reads ----
  // Entries [lo, hi) of group g, stopping once max_bytes of payload is reached (at least one
  // entry is returned). From the cache, else from the segment files (checksums verified).
  // Errors: kNotFound (compacted: lo <= mark.index, or unknown group), kInvalidArgument
  // (hi > last_index + 1 or lo >= hi), kCorruption / I/O errors from the file.
  Result<std::vector<Entry>> read(GroupId g, LogIndex lo, LogIndex hi, uint64_t max_bytes);

  struct GroupInfo {
    HardState hard;
    SnapshotMark mark;
    LogIndex last_index;
    Term last_term;
  };
  // The group's staged view (includes what is not yet durable); nullopt if unknown.
  std::optional<GroupInfo> group(GroupId g) const;
  std::vector<GroupId> groups() const;
  // Term of the group's entry i in the staged view: a live entry, or the entry just before the
  // first live one when its term is known (the compaction mark). nullopt otherwise.
  std::optional<Term> term(GroupId g, LogIndex i) const;

  // Groups with live entries in the oldest segment (ask them to snapshot/compact).
  std::vector<PinningGroup> pinning_groups() const;
  // Segments on disk holding frames (oldest first) and ready spares.
  std::vector<uint64_t> segment_sequences() const;
  size_t ready_segment_count() const { return ready_.size(); }
  // Sealed batches waiting behind the one in flight (appends fail with kUnavailable once this
  // reaches WalOptions::queued_batches_max and the open batch is full).
  size_t queued_batch_count() const { return queued_.size(); }
  uint32_t queued_batches_max() const { return options_.queued_batches_max; }
  // The largest record (frame header included) an append may stage: WalOptions::batch_bytes_max.
  uint64_t batch_bytes_max() const { return options_.batch_bytes_max; }

  // Batch ids, for a driver that must hold messages until what it staged is durable (raft.h's
  // messages_after_persist): every record staged so far belongs to a batch whose id is at most
  // staged_batch(), and every batch whose id is at most durable_batch() is durable (on_durable
  // has run for it). Ids grow by one per batch; both start at 0.
  uint64_t staged_batch() const;
  // The newest batch holding a record that is not a lazy hard state (staged_batch() or older):
  // what a Ready with only a lazy hard state waits for (raft.h: what earlier Readys wrote).
  uint64_t urgent_batch() const;
  uint64_t durable_batch() const { return durable_batch_id_; }

  bool idle() const { return !in_flight_ && queued_.empty() && open_batch_empty(); }
  bool failed() const { return failed_; }
  const WalStats& stats() const { return stats_; }
  // The torn tail recovery cut on open, if any.
  const std::optional<TornTail>& recovered_torn_tail() const { return torn_; }

 private:
  struct GroupState;
  struct Batch;
  struct Segment;

  Wal(Env& env, std::string dir, WalOptions options, Executor& executor, SyncWriter& writer);
  Status adopt(RecoveredLog&& log);
  void on_synced(int error) override;

  GroupState& group_state(GroupId g);
  Status check_open() const;
  // Makes room for `bytes` of a record of frame type t for group g in the open batch; returns
  // the frame body to append to.
  Result<std::vector<std::byte>*> reserve(GroupState& gs, FrameType t, uint64_t bytes);
  void seal_open_batch();
  void flush_staged(Urgency upto);
  bool open_batch_empty() const;
  void encode_checkpoint(std::byte* out, uint64_t* pos, uint32_t* batch_index);
  Status drop_small_spares(std::vector<SegmentSummary>* spares);
  bool submit_front();
  void place_entries(Batch& b, Segment& seg);
  Result<std::string> read_payload(const EntryLoc& loc);
  void complete_batch();
  std::unique_ptr<Batch> new_batch();
  void recycle(std::unique_ptr<Batch> b);
  void evict_cache();
  void evict_oldest();
  void make_cache_room(uint64_t bytes);
  bool ring_fits(std::span<const EntryView> entries) const;
  void drop_loc(EntryLoc& loc);
  void release_segments();
  void request_segments();
  void on_prepared(Result<PreparedSegment> r);
  void fail(int error, uint64_t offset, uint64_t bytes);

  Env& env_;
  std::string dir_;
  WalOptions options_;
  Executor& executor_;
  SyncWriter& writer_;
  std::unique_ptr<SegmentPreparer> preparer_;
  std::shared_ptr<Wal*> alive_;  // callbacks from the preparer hold a weak_ptr to this

  std::unordered_map<GroupId, std::unique_ptr<GroupState>> groups_;
  std::deque<std::unique_ptr<Segment>> written_;  // oldest first; back() is being written
  std::deque<std::unique_ptr<Segment>> ready_;    // prepared, unused
  uint64_t next_sequence_ = 1;                    // next sequence to prepare
  uint32_t preparing_ = 0;
  std::chrono::steady_clock::time_point prepare_retry_at_{};
  uint64_t write_offset_ = kSegmentHeaderBytes;  // in written_.back()
  bool active_needs_head_ = true;  // next write into the active segment starts with checkpoint
  uint64_t next_frame_ = 1;
  uint64_t next_batch_ = 1;  // batch number of the next write
  uint64_t last_checksum_ = 0;
  uint64_t durable_groups_ = 0;  // groups with durable_exists (the checkpoint's size)
  uint64_t next_batch_id_ = 1;
  uint64_t durable_batch_id_ = 0;  // the newest batch on_durable reported
  uint32_t last_frame_id_ = 0;     // frame the last reserve() returned

  std::unique_ptr<Batch> open_;                // staging
  std::deque<std::unique_ptr<Batch>> queued_;  // sealed, waiting
  std::unique_ptr<Batch> flight_;              // in flight
  // A written batch is kept for reuse, and its frame bodies with their capacity, so that staging
  // a batch allocates nothing in the steady state: growing fresh vectors cost more CPU per batch
  // (malloc, page faults of new memory, copies on growth) than encoding and checksumming it.
  // Bounded: one spare batch; spare bodies up to kSpareBodyBytesMax of capacity.
  std::unique_ptr<Batch> spare_batch_;
  std::vector<std::vector<std::byte>> spare_bodies_;
  uint64_t spare_body_bytes_ = 0;
  bool in_flight_ = false;
  bool waiting_for_segment_ = false;  // a batch is stalled for lack of a prepared segment
  std::byte* buf_ = nullptr;          // the in-flight write buffer (4 KiB aligned, reused)
  uint64_t buf_capacity_ = 0;
  uint64_t flight_offset_ = 0;
  uint64_t flight_bytes_ = 0;
  std::chrono::steady_clock::time_point flight_started_{};  // submission of the batch in flight
  std::vector<uint64_t> frame_offsets_;  // of the batch being encoded, by frame id (reused)
  // Reused by every segment's CHECKPOINT frames: with 10,000 groups a fresh 640 KiB body grown
  // by doubling (and faulted in) cost as much as a few batches' encoding, once per segment.
  std::vector<GroupId> checkpoint_ids_;
  std::vector<std::byte> checkpoint_body_;

  // A run of a group's durable cached entries, back to back in the arena (evict_oldest()).
  struct CacheRef {
    GroupState* group;
    LogIndex first;      // the run's first index
    uint64_t cache_end;  // arena position after the run's bytes
  };
  // A run's bytes: eviction takes whole runs, 1/256 of the default cache at most.
  static constexpr uint64_t kCacheRunBytesMax = 64 * 1024;
  std::deque<CacheRef, NodeAllocator<CacheRef>> cache_order_;  // durable cached, oldest first
  std::unique_ptr<CacheArena> cache_;                          // bytes of every cached entry
  uint64_t cache_bytes_ = 0;         // of live cached entries (WalStats::cache_bytes)
  uint64_t cache_run_start_ = 0;     // arena position where cache_order_.back()'s run starts
  std::vector<std::byte> read_buf_;  // last frame read from a file
  uint64_t read_buf_segment_ = 0;
  uint64_t read_buf_offset_ = UINT64_MAX;

  bool failed_ = false;
  std::optional<TornTail> torn_;
  WalStats stats_;
};

}  // namespace raftd::wal
