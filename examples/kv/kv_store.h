// raftd-kv's state: per group, a key-value map and two indexes, in memory, rebuilt from the log
// (kv_log.h) on start. Commands and results are the KV language of examples/README.md.
//
// applied: the last index whose batch was applied to the map (entries at or below it are
//          skipped when raftd delivers them again).
// durable: the last index whose log record is durable; LastLogIndex answers it. Without
//          --sync-mode it trails applied while a batch's fdatasync runs; with --sync-mode the app
//          reports what it applied (raftd keeps its log until /Sync) and durable == applied.
//
// Snapshots: prepare_snapshot() copies the group's map into a SnapshotImage (kv_snapshot.h) and
// names it by a context string; the Store keeps the kSnapshotContextsPerGroup newest images of
// each group (an older one is dropped, and its context is then unknown). reset() replaces a
// group's state with a recovered snapshot's.
//
// Not thread-safe: used on the reactor thread only.
#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "kv_log.h"
#include "kv_snapshot.h"
#include "raftd/app/codec.h"
#include "raftd/base/ids.h"

namespace raftd::kv {

// A write command of the KV language, parsed from an entry's data.
struct Command {
  enum class Op { kPut, kDelete, kCas } op;
  std::string key;
  std::string value;                    // put, cas
  std::optional<std::string> expected;  // cas: nullopt means "only if absent"
};

// nullopt when `data` is not a valid command (its result is then bad_command).
std::optional<Command> parse_command(std::string_view data);
// The key of a GetEntry query {"op":"get","key":K}, or nullopt.
std::optional<std::string> parse_get_query(std::string_view body);

// The canonical result strings (examples/README.md).
std::string result_ok(const std::string* prev);
std::string result_cas_failed(const std::string* prev);
std::string result_bad_command();

struct BatchOutcome {
  std::vector<app::Record> results;  // one per entry, in order; empty for skipped entries
  LogRecord record;                  // the changes and the group's new last index
  bool changed = false;              // record holds changes or moves the index: append it
};

// How many prepared snapshots a group keeps. raftd streams one snapshot at a time per follower
// that needs it, so a few cover followers catching up together; each costs a copy of the map.
inline constexpr std::size_t kSnapshotContextsPerGroup = 3;

class Store {
 public:
  // Applies the entries of `batch` above the group's applied index, in order, and moves the
  // applied index to max(applied, batch.last_index). Precondition: the batch is well formed
  // (indexes >= 1, strictly increasing, none above last_index).
  BatchOutcome apply_batch(GroupId group, const app::EntryBatch& batch);
  // Replay: the record's changes and index, as they were applied before.
  void replay(LogRecord&& record);
  // The record of a batch up to `index` is durable.
  void mark_durable(GroupId group, LogIndex index);

  // PrepareSnapshot: a copy of the group's state at its applied index, kept under the context
  // returned (the oldest of the group's images is dropped beyond kSnapshotContextsPerGroup).
  std::string prepare_snapshot(GroupId group);
  // The image a context names, or null when it is unknown, dropped, or of another group. The
  // image stays valid for its holder after it is dropped.
  std::shared_ptr<const SnapshotImage> find_snapshot(GroupId group, std::string_view context);
  // RecoverFromSnapshot: the group's state becomes exactly `pairs` at `index` (applied; durable
  // only through mark_durable once its reset record is, and never above `index` meanwhile).
  void reset(GroupId group, LogIndex index, KvMap pairs);

  LogIndex applied_index(GroupId group) const;
  LogIndex durable_index(GroupId group) const;
  const std::string* get(GroupId group, const std::string& key) const;
  std::size_t group_count() const { return groups_.size(); }

 private:
  struct Snapshot {
    std::string context;
    std::shared_ptr<const SnapshotImage> image;
  };
  struct Group {
    LogIndex applied;
    LogIndex durable;
    KvMap data;
    std::deque<Snapshot> snapshots;  // oldest first
  };
  std::string apply_command(Group& g, std::string_view data, std::vector<Change>& changes);

  std::unordered_map<GroupId, Group> groups_;
  std::uint64_t next_snapshot_ = 1;
};

}  // namespace raftd::kv
