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
//     the Ready's records is durable (Wal::urgent_batch / durable_batch); on_durable(), wired to
//     WalOptions::on_durable, releases them per group in Ready order. A Ready that staged nothing
//     still waits for every earlier Ready of its group (its acks may cover their entries). Lazy
//     hard states (Commit::kLazy) are the exception: nothing waits for them.
//   - Snapshots (doc/node.md "Snapshots"): a Ready carrying one from the leader is held while the
//     driver installs it in the application (Driver::install_snapshot, asynchronous); the group
//     is not drained meanwhile. On finish_install(OK) the host records the snapshot's
//     configuration (ConfMarks), stages the WAL's compaction mark past the old log, then the rest
//     of the Ready, and calls on_snapshot_installed once that is durable. On a failure the
//     replica is removed and the driver told (Driver::on_install_failed). A driver
//     that cannot install snapshots returns false: the replica stops (on_snapshot_refused).
//   - A leader's Ready::snapshot_requests go to Driver::on_snapshot_request; the driver answers
//     the core (send_snapshot / report_snapshot) when its transfer ends.
//   - compact() drops a group's log up to an index its application made durable, bounded by the
//     durable commit index and what the core allows (raft.h), recording the configuration first.
//   - Driver callbacks may call propose(), read_index() and mark_dirty(); remove_group() only
//     from apply() (the host checks for it) or outside process().
// The WAL's batch queue is bounded: process() stops draining when the WAL has no room for
// another full batch (kWalRoomBatches), and resumes on a later turn, once a batch is durable.
// A Ready's entries are staged in pieces that each fit one WAL batch; a Ready larger than the
// room left (a leader's turn of many big proposals) is held, partly staged, and finished on a
// later turn: nothing of it is advanced or acknowledged before all of it is staged.
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
#include "raftd/node/conf_marks.h"
#include "raftd/raft/raft.h"
#include "raftd/wal/wal.h"

namespace raftd::node {

// Batches the WAL must still be able to queue before the host drains another Ready: one Ready's
// records are bounded by raft's max_uncommitted_bytes and max_committed_bytes_per_ready, far below
// two batches of the default 1 MiB only when proposals are small, so the host stops early rather
// than making the WAL refuse a record it has already taken from the core.
inline constexpr uint32_t kWalRoomBatches = 2;
// Sleeping (quiesced) groups are looked at once every this many ticks (10 s at the default
// tick): a safety net only (every input comes with mark_dirty, which wakes its group), so rare
// that 10,000 sleeping groups cost about 0.04 % of a core for it, yet a replica given an input
// without mark_dirty still moves within seconds.
inline constexpr uint64_t kSleeperSweepTicks = 100;

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
    // The leader sent this replica a snapshot. True: the driver installs it in the application
    // and calls GroupHost::finish_install(g, status) when done (never from within this call).
    // False: it cannot; the host stops hosting g (on_snapshot_refused, then it is removed).
    virtual bool install_snapshot(GroupId g, const raft::SnapshotMeta& meta) {
      (void)g;
      (void)meta;
      return false;
    }
    virtual void on_snapshot_refused(GroupId g, const raft::SnapshotMeta& meta) = 0;
    // finish_install reported a failure (or recording the snapshot failed): the host has removed
    // the replica (nothing of the snapshot was staged); the driver may take g up again.
    virtual void on_install_failed(GroupId g, const raft::SnapshotMeta& meta, const Status& why) {
      (void)g;
      (void)meta;
      (void)why;
    }
    // This replica leads g and peer `to` needs a snapshot. True: the driver builds and sends it
    // and answers the core itself (send_snapshot, report_snapshot). False: the host reports the
    // failure at once (the core asks again later).
    virtual bool on_snapshot_request(GroupId g, NodeId to) {
      (void)g;
      (void)to;
      return false;
    }
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

  // The configuration of each group at its compaction points (required before add_group of a
  // group whose WAL log is compacted, and for compact() and snapshot installs).
  void set_conf_marks(ConfMarks* marks) { conf_marks_ = marks; }

  // How a group's commit-only hard states are written (raft.h "Lazy commit"). kLazy: staged
  // with Wal::Urgency::kLazy, so they ride with the node's next write (or its next tick,
  // Wal::flush_lazy) instead of costing an fdatasync of their own, and a crash may lose them.
  // kEager: every hard state is written at once, for a group whose applied commands have
  // effects outside its log and app (the node's meta group).
  enum class Commit : uint8_t { kLazy, kEager };

  // Starts hosting g. Errors: kAlreadyExists, kCorruption (the WAL's state for g is
  // inconsistent), kAborted (the log is compacted past app_applied: the application lost state
  // raftd no longer has), kInvalidArgument (config).
  Status add_group(GroupId g, const raft::ConfState& initial, LogIndex app_applied,
                   Commit commit = Commit::kLazy);
  // Stops hosting g: its Ready work is dropped (the WAL keeps its records until compaction).
  void remove_group(GroupId g);
  bool hosts(GroupId g) const { return groups_.contains(g); }
  size_t group_count() const { return groups_.size(); }
  std::vector<GroupId> group_ids() const;

  // The replica of g, or nullptr. Inputs given to it directly must be followed by mark_dirty(g).
  raft::Group* group(GroupId g);
  const raft::Group* group(GroupId g) const;
  void mark_dirty(GroupId g);

  // Compacts g's log up to at most `index`, bounded by the replica's applied and persisted
  // index and the commit index of the last durable hard state. Returns the compaction index now
  // in effect (the old one when nothing could be dropped). Errors: kNotFound (not hosted),
  // kUnavailable (a snapshot is being installed), I/O errors writing the configuration marks.
  Result<LogIndex> compact(GroupId g, LogIndex index);
  // The compaction index (first_index - 1) of g's log, 0 when not hosted.
  LogIndex compacted_index(GroupId g) const;
  // The commit index of g's last durable hard state (a lazy one may trail the replica's commit
  // until the node's next write or tick), 0 when not hosted.
  LogIndex durable_commit(GroupId g) const;
  // Ends a snapshot install started by Driver::install_snapshot (see the file comment). No-op for
  // a group not installing.
  void finish_install(GroupId g, const Status& status);
  bool installing(GroupId g) const;

  // One tick to every group that is awake: a quiesced replica's tick does nothing, so a group
  // whose leader quiesced it is not visited until an input (a message, a proposal, mark_dirty)
  // wakes it; an idle node's tick costs nothing per quiesced group. Every kSleeperSweepTicks
  // ticks the sleeping groups are looked at once as well (a replica given an input directly
  // without mark_dirty is noticed then; counted in Stats::sleepers_woken, which stays 0 when
  // every caller keeps the contract).
  void tick();
  // A message from the transport for a group this node hosts (validated by the transport).
  // Messages for groups not hosted, and messages carrying an entry larger than this node's WAL
  // can hold as one record, are counted and dropped.
  void step(const raft::Message& m);
  Result<LogIndex> propose(GroupId g, std::string data);
  Status read_index(GroupId g, uint64_t request_id);

  // End of a reactor turn, before Wal::flush().
  void process();
  // WalOptions::on_durable.
  void on_durable(std::span<const wal::Durable> durable);

  struct Stats {
    uint64_t readies = 0;
    uint64_t dropped_messages = 0;   // for groups not hosted here
    uint64_t oversized_dropped = 0;  // carrying an entry over this node's WAL record limit
    uint64_t wal_waits = 0;          // turns that left Readys for lack of WAL room
    uint64_t stage_waits = 0;        // Readys held, partly staged, for lack of WAL room
    uint64_t snapshots_installed = 0;
    uint64_t snapshot_installs_failed = 0;
    uint64_t compactions = 0;
    uint64_t groups_ticked = 0;   // tick() calls given to replicas
    uint64_t sleepers_woken = 0;  // sleeping groups the sweep found awake or with a Ready
  };
  const Stats& stats() const { return stats_; }
  // Groups with a drained Ready whose messages or persistence report wait for a WAL batch.
  size_t groups_waiting() const;

 private:
  struct Hosted;
  struct Pending;

  bool wal_has_room() const;
  void wake_up(GroupId g, Hosted& h);
  void sweep_sleepers();
  void drain(GroupId g, Hosted& h);
  // The rest of a Ready once any snapshot in it is installed. False: the WAL's queue had no room
  // for all of it; the Ready is held (partly staged) until a batch is durable.
  bool finish_ready(GroupId g, Hosted& h, raft::Ready& rd);
  Status stage_snapshot(GroupId g, Hosted& h, const raft::SnapshotMeta& meta);
  Status start_replica(GroupId g, Hosted& h, LogIndex app_applied);
  bool stage(GroupId g, Hosted& h, const raft::Ready& rd);
  static wal::Wal::Urgency urgency(const Hosted& h, const raft::Ready& rd);
  void release(GroupId g, Hosted& h);
  // To the driver, or stepped into h's group when addressed to this node.
  void deliver(GroupId g, Hosted& h, raft::Message&& m);

  wal::Wal& wal_;
  ConfMarks* conf_marks_ = nullptr;
  raft::Config config_;
  Driver& driver_;
  std::unordered_map<GroupId, std::unique_ptr<Hosted>> groups_;
  std::vector<GroupId> dirty_;
  // Groups tick() visits (Hosted::awake); a group may be listed twice after it was removed and
  // added again (Hosted::ticked keeps it to one tick per round).
  std::vector<GroupId> awake_;
  uint64_t ticks_ = 0;
  // Groups with Readys waiting for durability, each once (Hosted::waiting); a list, which
  // allocates nothing per Ready once it has grown.
  std::vector<GroupId> waiting_;
  std::unordered_set<GroupId> stalled_;  // groups holding a Ready the WAL had no room for
  // Buffers kept from one Ready to the next so that steady traffic allocates no lists: the
  // message lists drain() hands the core, the after-persist lists of released Readys, and
  // stage()'s entry views.
  struct Spare {
    static constexpr size_t kMaxLists = 256;        // spare after-persist lists kept
    static constexpr size_t kMaxListMessages = 64;  // capacity of the largest one kept
    std::vector<raft::Message> messages;
    std::vector<raft::Message> after_persist;
    std::vector<std::vector<raft::Message>> lists;
    std::vector<wal::EntryView> views;
  };
  Spare spare_;
  Stats stats_;
};

}  // namespace raftd::node
