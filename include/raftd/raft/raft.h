// raft::Group: one Raft group's consensus as a pure, deterministic state machine.
//
// No I/O, no clock, no threads, no randomness except the seeded generator in Config. The caller
// (the daemon, the simulator, the tests) feeds inputs (tick, step, propose, read_index,
// on_persisted, ...) and drains outputs through Ready. Same inputs, same outputs, always.
//
// Threading: a Group is not thread-safe; one thread drives it. Groups are independent.
//
// The Ready cycle (the contract every driver must keep):
//   while (g.has_ready()) {
//     Ready rd = g.ready();
//     send(rd.messages)                       // may leave at once, before anything is durable
//     if rd.snapshot: install it (app + storage) before writing rd.entries
//     write rd.entries (an entry at index i replaces every stored entry >= i), then
//       rd.hard_state (or both in one atomic write): see "Hard state" below
//     g.advance(rd);                          // hands back the Ready; nothing is durable yet
//     ... later, when BOTH writes are durable (fdatasync returned), in Ready order:
//     send(rd.messages_after_persist)         // vote requests/responses, append acks
//     g.on_persisted(last entry index, term)  // if rd.entries was non-empty
//     g.on_snapshot_installed(rd.snapshot->meta)  // if rd.snapshot
//     apply rd.committed_entries (any time after advance; they are already durable locally)
//   }
// Hard state (term, vote AND commit; nothing in it is a hint):
//   - rd.hard_state must be durable before rd.messages_after_persist leave and before
//     on_persisted() is called for rd.entries (both wait for the whole Ready's write).
//   - It must not become durable before rd.entries (nor before rd.snapshot): its commit may
//     cover them, and a hard state ahead of the log stops the node at boot (subtle bug #16).
//     Entries first, or one atomic write. A crash between the two writes is fine: the core boots
//     in the term of its last entry if that is newer than the hard state's (with no vote), and
//     with commit >= the snapshot index. Writing only the newest of several queued hard states
//     is fine (they only grow) as long as the rules above hold for every Ready it stands for.
//   - A hard state that newly commits a configuration change entry must be durable no later
//     than the entries of any later Ready of the group (before them, or in one atomic write
//     with them; never deferred or coalesced past them): the core applies the change on
//     advance() and may append entries that follow from it (a leader's leave of a joint
//     configuration), and those entries durable without that commit would let a restarted node
//     win an election in the old configuration and commit them with none of the new one's
//     voters holding them (doc/raft.md).
//   - The application must never make an applied index (or a snapshot of its state) durable
//     beyond the durable commit index (BootState: applied <= hard_state.commit, except for a
//     snapshot the core installed, see above); applying in memory earlier is fine.
//   - A restart passes the last durable hard state. Restarting with an older commit index is a
//     driver bug the core cannot detect: configuration changes the node had seen committed would
//     not be re-applied, and it could campaign under a configuration the group has left (two
//     leaders in one term). With the commit durable, a restarted node re-applies them from its
//     log and refuses to campaign until it has (a committed, unapplied change blocks elections).
// Lazy commit (etcd's MustSync is false for such a hard state): when rd.hard_state_lazy is set,
// the Ready has no entries and no snapshot, and its hard state differs from the previous one
// only in a commit index that moved over no configuration change entry. The driver may then
// stage it to become durable with a later write (or within a bound of its choosing) instead of
// a write of its own, and a crash may lose it: the node restarts with the older commit index,
// which is safe because no configuration change lies between the two (the rule above is about
// those), and it is handed the entries above it again once they are known committed (the
// application ignores what it already applied). rd.messages_after_persist of such a Ready need
// not wait for its hard state, only for what earlier Readys wrote. A hard state that is not lazy
// (term or vote changed, or a configuration change newly committed) is written as before, and
// it covers the lazy ones before it (hard states only grow).
// LogStorage must return the entries of a Ready no later than when on_persisted covers them.
// For each peer in rd.snapshot_requests: build a snapshot (metadata from snapshot_meta_at()),
// call send_snapshot(), and report_snapshot(peer, ok) once the transfer finished or failed.
// Every replica of a group boots from the same initial ConfState at index 0, including replicas
// added later by a configuration change (they learn the rest from the log or a snapshot).
//
// Membership semantics (doc/raft.md): a configuration change takes effect when its entry is
// APPLIED, i.e. when the core hands it out in Ready::committed_entries and advance() is called
// for that Ready (etcd's semantics). A leader accepts a change only after it has committed an
// entry of its own term and applied every earlier change (the errata fix), so at most one change
// is ever pending. A replica never starts an election while a committed configuration change is
// not applied yet (etcd's hasUnappliedConfChanges). A leader whose own removal is in its log
// refuses further proposals, and when the removal is applied it sends its commit index to the
// remaining voters and hands leadership to the most caught-up one before stepping down.
//
// Quiescing (doc/raft.md): with quiesce_after_ticks > 0 an idle leader whose followers all hold
// its whole log and its commit index sends kQuiesce and stops heartbeating; tick() then costs
// almost nothing. A quiesced follower stops counting election ticks. Any message other than
// kQuiesce, any proposal or read wakes a replica. Because followers of a quiesced leader never
// time out, the DRIVER must call wake() on a quiesced follower when it learns that the leader's
// node is unreachable or restarted (transport failure, node liveness); otherwise a crashed
// quiesced leader is never replaced. A follower obeys kQuiesce only while it has heard from that
// leader within an election timeout, and only a notice that echoes its current wake epoch: each
// wake() starts a new epoch, which the leader learns from the follower's later messages, so a
// notice sent before a wake() never puts the follower back to sleep, however late it arrives.
//
// Heartbeats folded into appends: at a heartbeat tick the leader sends no heartbeat to a
// follower it sent an append since the last heartbeat round, when that append already did the
// heartbeat's work: the follower is replicating and has acknowledged the whole log, has
// answered the current read round, and was sent the commit index the heartbeat would carry. The
// append reset its election timer, and its answer counts for CheckQuorum. A busy group so sends
// about one message per follower per write instead of that plus a heartbeat and its answer every
// tick. Read rounds (ReadIndex) always send their heartbeats.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "raftd/base/ids.h"
#include "raftd/base/status.h"
#include "raftd/raft/types.h"

namespace raftd::raft {

// Defaults with reasons. Ticks are abstract; the daemon maps one tick to e.g. 100 ms.
inline constexpr uint32_t kDefaultElectionTicks = 10;  // thesis: 10x the heartbeat interval
inline constexpr uint32_t kDefaultHeartbeatTicks = 1;
// Pipelining depth per follower: enough to fill a LAN bandwidth-delay product with 1 MiB
// messages, small enough that a lagging follower cannot pin much memory in the transport.
inline constexpr uint32_t kDefaultMaxInflightMsgs = 256;
inline constexpr uint64_t kDefaultMaxInflightBytes = 32ull << 20;
inline constexpr uint64_t kDefaultMaxMsgBytes = 1ull << 20;  // one append message's entries
// Uncommitted tail a leader accepts before refusing proposals (quorum loss must not OOM us).
inline constexpr uint64_t kDefaultMaxUncommittedBytes = 64ull << 20;
// Committed entries handed out per Ready (bounds apply batches and memory).
inline constexpr uint64_t kDefaultMaxCommittedBytesPerReady = 4ull << 20;

struct Config {
  NodeId id;                                         // this replica, >= 1
  GroupId group;                                     // stamped on every outgoing message
  uint32_t election_tick = kDefaultElectionTicks;    // timeout drawn from [e, 2e) ticks
  uint32_t heartbeat_tick = kDefaultHeartbeatTicks;  // must be < election_tick
  bool pre_vote = true;
  bool check_quorum = true;
  uint32_t max_inflight_msgs = kDefaultMaxInflightMsgs;
  uint64_t max_inflight_bytes = kDefaultMaxInflightBytes;  // 0 = no byte limit
  uint64_t max_msg_bytes = kDefaultMaxMsgBytes;            // at least one entry is always sent
  uint64_t max_uncommitted_bytes = kDefaultMaxUncommittedBytes;  // 0 = no limit
  uint64_t max_committed_bytes_per_ready = kDefaultMaxCommittedBytesPerReady;
  uint32_t quiesce_after_ticks = 0;  // 0 = never quiesce
  // Seeds the election-timeout generator and the first wake epoch (quiescing): pick it per
  // replica, and anew at every boot.
  uint64_t random_seed = 1;

  Status validate() const;
};

// Read access to the durable part of the log, owned by the driver (the WAL in the daemon, an
// in-memory store in tests). The core reads through it, never writes: the driver appends Ready
// entries, installs snapshots and compacts. Entries newer than what on_persisted has confirmed
// are served by the core from memory, so the storage may lag behind them.
//
// Errors: kNotFound for an index below first_index() - 1 (compacted). Any other error is treated
// as fatal (RAFTD_ASSERT): the core cannot make progress on a log it cannot read.
class LogStorage {
 public:
  virtual ~LogStorage() = default;
  // First index of a stored entry; snapshot index + 1 after compaction or snapshot install.
  virtual LogIndex first_index() const = 0;
  // Last stored index; first_index() - 1 when no entry is stored.
  virtual LogIndex last_index() const = 0;
  // Term of entry i, for i in [first_index() - 1, last_index()] (first_index()-1 is the snapshot).
  virtual Result<Term> term(LogIndex i) const = 0;
  // Entries [lo, hi) appended to *out, stopping once their size_bytes() total exceeds max_bytes
  // but always returning at least one entry.
  virtual Status entries(LogIndex lo, LogIndex hi, uint64_t max_bytes,
                         std::vector<Entry>* out) const = 0;
};

// Everything a replica needs to (re)start, read from durable state by the driver. A brand-new
// group starts from {hard_state = {}, snapshot = {index 0, term 0, conf_state = initial members},
// applied = 0} with empty storage. A restart passes the persisted hard state, the latest snapshot
// metadata and the index the application has durably applied (snapshot.index <= applied <=
// max(hard_state.commit, snapshot.index)); committed entries after `applied` are handed out
// again. hard_state must be
// the last durable one (never an older commit index: see "Hard state" above).
struct BootState {
  HardState hard_state;
  SnapshotMeta snapshot;
  LogIndex applied;
};

// Output of one Ready cycle. See the contract at the top of this file.
struct Ready {
  std::optional<HardState> hard_state;  // persist if set (term/vote/commit changed)
  // The Ready writes nothing but a hard state whose commit index alone moved, over no
  // configuration change entry: the driver may make it durable later ("Lazy commit" above).
  bool hard_state_lazy = false;
  std::vector<Entry> entries;        // persist (append, replacing any suffix from entries[0])
  std::optional<Snapshot> snapshot;  // install + persist before entries, then report back
  std::vector<Message> messages;     // may be sent immediately
  std::vector<Message> messages_after_persist;  // only after THIS Ready's writes are durable
  std::vector<Entry> committed_entries;         // apply in order; durable on this node already
  std::vector<ReadState> read_states;
  std::vector<NodeId> snapshot_requests;  // peers that need a snapshot: call send_snapshot()
  std::optional<SoftState> soft_state;    // set when leader/role/quiesced changed

  bool must_persist() const { return hard_state || !entries.empty() || snapshot; }
  bool empty() const;
};

// Follower replication state as seen by the leader (tracker/progress in etcd terms).
enum class ProgressState : uint8_t { kProbe = 0, kReplicate, kSnapshot };
const char* progress_state_name(ProgressState s);

struct ProgressView {
  LogIndex match;
  LogIndex next;
  ProgressState state = ProgressState::kProbe;
  uint32_t inflight_msgs = 0;
  uint64_t inflight_bytes = 0;
  bool recent_active = false;
  bool learner = false;
};

class GroupImpl;

class Group {
 public:
  // Asserts that `config` is valid (call Config::validate() first for a Status) and that the boot
  // state is consistent with `storage` (commit <= last index etc.: subtle bug #16 must stop the
  // node, never be papered over). `storage` must outlive the Group.
  Group(const Config& config, const LogStorage& storage, const BootState& boot);
  ~Group();
  Group(Group&&) noexcept;
  Group& operator=(Group&&) noexcept;
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  // --- inputs ---------------------------------------------------------------------------------
  // One logical clock tick: election timeouts, heartbeats, CheckQuorum, transfer timeout, quiesce.
  void tick();
  // A message from a peer (or from this node to itself). Messages for another group or another
  // node are a driver bug (asserted). Stale or unexpected messages are ignored (not errors). A
  // message from another node that no honest replica could send in this state (check_message()
  // fails, a second leader in our term, an answer to something this leader never sent: see
  // doc/raft.md, "Messages no honest peer sends") is dropped without any effect and counted in
  // refused_messages(); no message, whatever its content, trips an assertion.
  void step(const Message& m);
  // Appends `data` on the leader. Errors: kUnavailable (not leader, no leader, leader transfer in
  // progress), kTooLarge (max_uncommitted_bytes reached). Returns the entry's index; the entry
  // may still be lost (leader change): match applied entries by index AND term.
  Result<LogIndex> propose(std::string data);
  // Proposes a membership change. Errors as propose(), plus kUnavailable while another change is
  // pending or before the leader committed an entry of its term, kInvalidArgument for a change
  // that is invalid for the current configuration or that encode_conf_change() cannot carry
  // (an out-of-range enum value, more items than the encoding allows).
  Result<LogIndex> propose_conf_change(const ConfChange& cc);
  // Requests a linearizable read point. The answer arrives as a ReadState with this request_id
  // (ids must be unique per replica among outstanding requests). Followers forward to the leader.
  // Errors: kUnavailable when no leader is known (nothing is queued then).
  Status read_index(uint64_t request_id);
  // Asks the leader (this node, or forwarded to the known leader) to hand leadership to `to`.
  Status transfer_leader(NodeId to);
  // Entries up to `index` whose term at `index` is `term` are durable. A completion whose
  // (index, term) no longer matches the log (the suffix was overwritten meanwhile: subtle bug
  // #13, ABA) is ignored. Completions must be reported in Ready order.
  void on_persisted(LogIndex index, Term term);
  // The snapshot handed out in a Ready is installed and durable.
  void on_snapshot_installed(const SnapshotMeta& meta);
  // Answer to a Ready::snapshot_requests entry: send `snapshot` to `to`. Ignored if `to` no longer
  // waits for one. The metadata must come from snapshot_meta_at().
  void send_snapshot(NodeId to, Snapshot snapshot);
  // The driver could not produce/deliver a snapshot for `to`, or delivered it (ok): the leader
  // resumes probing `to`.
  void report_snapshot(NodeId to, bool ok);
  // The transport could not reach `to`: stop pipelining to it (back to probing).
  void report_unreachable(NodeId to);
  // Leaves the quiesced state (see the quiescing rule above); on a follower, also starts a new
  // wake epoch, so it refuses every kQuiesce sent before this call. Cheap otherwise.
  void wake();
  // The driver compacted its log storage up to `index` (<= applied, and <= the commit index of
  // the last DURABLE hard state: a snapshot is applied state, see "Hard state" above). Returns
  // the metadata of a snapshot at `index` (term and configuration as of `index`).
  Result<SnapshotMeta> compact(LogIndex index);
  // Metadata for a snapshot of the application at `index` (in [snapshot index, applied]).
  Result<SnapshotMeta> snapshot_meta_at(LogIndex index) const;

  // --- outputs --------------------------------------------------------------------------------
  bool has_ready() const;
  Ready ready();
  // The same into `out`, whose previous contents are discarded. Its message lists trade buffers
  // with the core's: a driver that passes the same Ready every time (and moves the messages out,
  // not the lists) allocates no message lists while the group writes. An idle group keeps none:
  // quiesced, or 8 Readys in a row without entries to write or apply.
  void ready(Ready* out);
  // Hands back the Ready last returned by ready() (exactly once, in order).
  void advance(const Ready& rd);

  // --- inspection -----------------------------------------------------------------------------
  // Checks the core's invariants (commit <= last index, applied <= commit, term never decreases,
  // one vote per term, log terms non-decreasing, progress sane, ...). Returns kCorruption with a
  // description on the first violation; never aborts.
  Status check_invariants() const;

  NodeId id() const;
  GroupId group() const;
  Role role() const;
  NodeId leader() const;
  Term term() const;
  NodeId vote() const;
  LogIndex commit_index() const;
  LogIndex applied_index() const;
  LogIndex last_index() const;
  Term last_term() const;
  LogIndex persisted_index() const;  // highest index known durable locally
  HardState hard_state() const;
  SoftState soft_state() const;
  const ConfState& conf_state() const;  // the applied (active) configuration
  bool quiesced() const;
  // Messages the core's output lists can hold without allocating (buffers traded by ready(Ready*)).
  size_t message_capacity() const;
  bool transferring() const;
  // Messages step() dropped because no honest replica sends them (a faulty or hostile peer).
  uint64_t refused_messages() const;
  std::optional<ProgressView> progress(NodeId peer) const;  // leader only
  // Term of entry `i`, if the core still knows it (unstable tail, storage or snapshot).
  std::optional<Term> term_at(LogIndex i) const;

 private:
  std::unique_ptr<GroupImpl> impl_;
};

}  // namespace raftd::raft
