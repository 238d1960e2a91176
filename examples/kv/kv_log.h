// raftd-kv's storage: one append-only log file (DATA_DIR/kv.log) for all groups, replayed into
// memory on start. Each UpdateEntries batch that changes anything becomes ONE record holding the
// group's new last index and the batch's changes, so the data and the index are durable
// together: a record is either whole on disk (both) or cut off at replay (neither).
//
// Byte layout (integers little-endian):
//   file   := record*
//   record := u32 body_bytes | u64 checksum | body         checksum = XXH3_64bits(body)
//   body   := u64 group | u64 last_index | u32 change_count | change{change_count}
//   change := u8 kind | u32 key_bytes | key [| u32 value_bytes | value]
//             kind 1 = put (value follows), 2 = delete (no value),
//             3 = reset (key_bytes 0, no value; only as a record's first change)
// A record with no change only moves the group's last index (raftd's own entries, or bad
// commands). A batch's record moves the group's index to max(index, last_index).
//
// A reset record is RecoverFromSnapshot's: "the group is now exactly these pairs at last_index".
// Its first change is a reset (drop every pair of the group), every other change a put; replay
// sets the group's index to exactly last_index (a snapshot may, in principle, be older than what
// the group had). The whole new state is in this one record, so a crash during the recovery
// leaves either the whole record (the new state) or a torn tail (the old state). Apart from
// resets, records of one group appear in increasing last_index order.
//
// Replay reads records from the start and stops at the first one that is incomplete, longer
// than kRecordBodyBytesMax, fails its checksum or does not parse: that is the torn tail of a
// write a crash cut short (only the last write can be in flight; see Log below). The file is
// truncated there and synced, and the cut is logged. The example cannot tell a torn tail from
// damage in the middle of the file; raftd's own WAL can and refuses the latter.
//
// Log (the writer) is group commit on the io_uring reactor: append() copies a record into a
// pending buffer; at the end of each reactor turn everything appended during the turn goes out
// as one write, in durable mode linked to an fdatasync (WriteSyncOp), and at most one write is
// in flight, so the file never has a hole before a record that was written. when_written()
// calls back once every byte appended before the call is written and, if asked, durable.
// A failed write or fdatasync is fatal (the process aborts): after a failed fsync the kernel
// may have dropped the dirty pages, and only a restart with replay knows what is on disk.
//
// Threading: a Log belongs to its reactor's thread. Lifetime: the Log must stay alive while
// its op is active (idle() false); close() flushes and the caller turns the reactor until idle.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "raftd/base/ids.h"
#include "raftd/base/status.h"
#include "raftd/io/reactor.h"

namespace raftd::kv {

// A batch's record body is at most the changes of an UpdateEntries body of at most
// app::kBatchBytesMax (64 MiB) bytes, where each change is no longer than the entry it came from
// plus 9 bytes of framing and each entry has 12 bytes of framing: 128 MiB bounds it with room.
inline constexpr std::uint32_t kBatchRecordBodyBytesMax = 128u * 1024 * 1024;
// A reset record holds a whole snapshot (kv_snapshot.h): at most kSnapshotBytesMax (1 GiB) of
// snapshot, whose pairs take 8 bytes of framing each there and 9 here, so at most 9/8 of it plus
// the record's 21 bytes: 1.5 GiB bounds it with room and fits the u32 length. A longer length at
// replay is garbage, not a record.
inline constexpr std::uint32_t kRecordBodyBytesMax = 1536u * 1024 * 1024;
inline constexpr std::size_t kRecordHeadBytes = 12;  // u32 body_bytes + u64 checksum

enum class ChangeKind : std::uint8_t { kPut = 1, kDelete = 2, kReset = 3 };

struct Change {
  ChangeKind kind;
  std::string key;    // empty for kReset
  std::string value;  // empty for kDelete and kReset
};

struct LogRecord {
  GroupId group;
  LogIndex last_index;
  std::vector<Change> changes;
};

// The whole record, head and body, ready to append.
std::string encode_record(const LogRecord& record);
// A reset record (a reset, then a put per pair) straight from a group's pairs, without first
// copying them into a LogRecord.
std::string encode_reset_record(GroupId group, LogIndex last_index,
                                const std::unordered_map<std::string, std::string>& pairs);
// The record resets its group (its first change is a reset).
inline bool is_reset(const LogRecord& record) {
  return !record.changes.empty() && record.changes.front().kind == ChangeKind::kReset;
}

// Reads the log at `path` record by record, calling `apply` for each, and truncates (and
// syncs) a torn tail. Errors: kIoError from the file system. `torn_bytes` gets the number of
// bytes cut off.
Status replay(int fd, const std::function<void(LogRecord&&)>& apply, std::uint64_t& torn_bytes);

class Log {
 public:
  // `fd` is the open log file, positioned nowhere (writes use offsets), `end` its size after
  // replay. durable: every write is followed by an fdatasync; otherwise writes are plain and
  // when_written(.., true) issues the fdatasync.
  Log(io::Reactor& reactor, int fd, std::uint64_t end, bool durable);
  ~Log();
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;

  void append(std::string_view record);
  // Calls `done` once every byte appended so far is written and, when `sync` (or the Log is
  // durable), made durable by an fdatasync that started after it was written. Never inline.
  void when_written(bool sync, std::function<void()> done);

  // Writes out what is pending; afterwards nothing new may be appended. Turn the reactor until
  // idle().
  void close();
  bool idle() const;

  std::uint64_t written_bytes() const { return written_end_; }
  std::uint64_t syncs() const { return syncs_; }

 private:
  struct Waiter {
    std::uint64_t end;  // satisfied when written_end_ (sync: durable_end_) reaches it
    bool sync;
    std::function<void()> done;
  };
  void on_turn_end();
  void pump();
  void on_written(std::int32_t res, bool synced);
  void run_waiters();

  io::Reactor& reactor_;
  int fd_;
  bool durable_;
  io::Reactor::HookId hook_ = 0;
  io::WriteSyncOp write_sync_;
  io::WriteOp write_;
  io::SyncOp sync_;
  std::string pending_;   // appended, not yet handed to a write
  std::string inflight_;  // the bytes of the write in flight (stable until its callback)
  std::uint64_t appended_end_;
  std::uint64_t written_end_;
  std::uint64_t durable_end_;
  std::uint64_t inflight_end_ = 0;  // written_end_ after the op in flight
  bool inflight_sync_ = false;
  std::vector<Waiter> waiters_;
  std::uint64_t syncs_ = 0;
  bool closed_ = false;
};

}  // namespace raftd::kv
