// GroupHost: runs every Raft group of this node on the node's one WAL.
//
// The host owns one raft::Group per hosted group and keeps raft.h's Ready contract for all of
// them, with the WAL as the durable log:
//   - Inputs (tick, step, propose, read_index, ...) go to the group; the group is marked dirty.
//   - process(), called once at the end of every reactor turn BEFORE Wal::flush(), drains the
//     Ready of every dirty group: its messages go to the driver at once (a leader's appends leave
//     while its own WAL write is in flight), its entries and hard state are staged in the WAL
//     (entries first, then hard state: they land in the same or a later batch, never earlier),
//     the Ready is advanced, and its committed entries go to the driver to apply.
//   - A message addressed to this node itself (a candidate's vote for itself, which raft sends
//     in messages_after_persist) never goes to the driver: the host steps it into the group when
//     it would have been sent (doc/raft.md, the Ready cycle).
//   - The Ready's messages_after_persist and its on_persisted() wait until the WAL batch holding
//     the Ready's records is durable (Wal::staged_batch / durable_batch); on_durable(), wired to
//     WalOptions::on_durable, releases them per group in Ready order. A Ready that staged nothing
//     still waits for every earlier Ready of its group (its acks may cover their entries).
//   - Snapshots are not hosted yet (see README "Status"): a Ready carrying one stops the
//     replica (Driver::on_snapshot_refused, then the group is no longer hosted).
//   - Driver callbacks may call propose(), read_index() and mark_dirty(); remove_group() only
//     from apply() (the host checks for it) or outside process().
// The WAL's batch queue is bounded: process() stops draining when the WAL has no room for
// another full batch (kWalRoomBatches), and resumes on a later turn, once a batch is durable.
//
// Boot: add_group() starts a replica from what the WAL holds for it (hard state, entries) or, for
// a group the WAL does not know, from index 0 with the initial members. The driver passes the
// index the application has durably applied, clamped by the host to the durable commit index
// (raft.h, BootState: an application may run ahead of the last durable commit; the entries in
// between are committed cluster-wide, and re-delivering them is harmless because the
// application ignores indexes at or below its own).
//
// Threading: one thread (the reactor's) for every call and callback.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "raftd/base/ids.h"
#include "raftd/base/status.h"
#include "raftd/raft/raft.h"
#include "raftd/wal/wal.h"

namespace raftd::node {

// Batches the WAL must still be able to queue before the host drains another Ready: one Ready's
// records are bounded by raft's max_uncommitted_bytes and max_committed_bytes_per_ready, far below
// two batches of the default 1 MiB only when proposals are small, so the host stops early rather
// than making the WAL refuse a record it has already taken from the core.
inline constexpr uint32_t kWalRoomBatches = 2;

class GroupHost {
 public:
  class Driver {
   public:
    virtual ~Driver() = default;
    virtual void send(raft::Message&& m) = 0;
    // Committed entries of group g, in log order, every entry exactly once per boot.
    virtual void apply(GroupId g, std::vector<raft::Entry>&& committed) = 0;
    virtual void on_read_states(GroupId g, std::vector<raft::ReadState>&& states) = 0;
    virtual void on_soft_state(GroupId g, const raft::SoftState& s) = 0;
    // The leader sent this replica a snapshot, which this release cannot install: the host has
    // stopped hosting g (called before it is removed).
    virtual void on_snapshot_refused(GroupId g, const raft::SnapshotMeta& meta) = 0;
    // Entries the log of g gains (staged for the WAL), from entries.front().index on: whatever
    // the log held at those indexes and above was cut. Called before apply() of the same Ready.
    virtual void on_log_entries(GroupId g, const std::vector<raft::Entry>& entries) {
      (void)g;
      (void)entries;
    }
  };

  // `config` is the template for every group (id, group and random_seed are set per group).
  GroupHost(wal::Wal& wal, const raft::Config& config, Driver& driver);
  ~GroupHost();
  GroupHost(const GroupHost&) = delete;
  GroupHost& operator=(const GroupHost&) = delete;

  // Starts hosting g. Errors: kAlreadyExists, kUnsupported (the WAL holds a compacted log, which
  // needs the snapshot support of a later release), kCorruption (the WAL's state for g is
  // inconsistent), kInvalidArgument (config).
  Status add_group(GroupId g, const raft::ConfState& initial, LogIndex app_applied);
  // Stops hosting g: its Ready work is dropped (the WAL keeps its records until compaction).
  void remove_group(GroupId g);
  bool hosts(GroupId g) const { return groups_.contains(g); }
  size_t group_count() const { return groups_.size(); }
  std::vector<GroupId> group_ids() const;

  // The replica of g, or nullptr. Inputs given to it directly must be followed by mark_dirty(g).
  raft::Group* group(GroupId g);
  const raft::Group* group(GroupId g) const;
  void mark_dirty(GroupId g);

  void tick();
  // A message from the transport for a group this node hosts (validated by the transport).
  // Messages for groups not hosted are counted and dropped.
  void step(const raft::Message& m);
  Result<LogIndex> propose(GroupId g, std::string data);
  Status read_index(GroupId g, uint64_t request_id);

  // End of a reactor turn, before Wal::flush().
  void process();
  // WalOptions::on_durable.
  void on_durable(std::span<const wal::Durable> durable);

  struct Stats {
    uint64_t readies = 0;
    uint64_t dropped_messages = 0;  // for groups not hosted here
    uint64_t wal_waits = 0;         // turns that left Readys for lack of WAL room
  };
  const Stats& stats() const { return stats_; }

 private:
  struct Hosted;
  struct Pending;

  bool wal_has_room() const;
  void drain(GroupId g, Hosted& h);
  void stage(GroupId g, const raft::Ready& rd);
  void release(GroupId g, Hosted& h);
  // To the driver, or stepped into h's group when addressed to this node.
  void deliver(GroupId g, Hosted& h, raft::Message&& m);

  wal::Wal& wal_;
  raft::Config config_;
  Driver& driver_;
  std::unordered_map<GroupId, std::unique_ptr<Hosted>> groups_;
  std::vector<GroupId> dirty_;
  std::unordered_set<GroupId> waiting_;  // groups with Readys waiting for durability
  Stats stats_;
};

}  // namespace raftd::node
