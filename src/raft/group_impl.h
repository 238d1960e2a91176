// Internal: the state of one Raft replica and the transitions between roles. Split over
// group.cc (construction, roles, elections, ticks, public inputs), group_step.cc (message
// handling) and group_ready.cc (Ready, advance, invariants).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "conf_change.h"
#include "progress.h"
#include "raft_log.h"
#include "raftd/raft/raft.h"

namespace raftd::raft {

class GroupImpl {
 public:
  GroupImpl(const Config& config, const LogStorage& storage, const BootState& boot);

  // Public inputs (see raft.h).
  void tick();
  void step(const Message& m);
  Result<LogIndex> propose(std::string data);
  Result<LogIndex> propose_conf_change(const ConfChange& cc);
  Status read_index(uint64_t request_id);
  Status transfer_leader(NodeId to);
  // A follower's read_index / transfer_leader: `m` goes to the known leader in this term.
  Status forward_to_leader(Message m);
  void on_persisted(LogIndex index, Term term);
  void on_snapshot_installed(const SnapshotMeta& meta);
  void send_snapshot(NodeId to, Snapshot snapshot);
  void report_snapshot(NodeId to, bool ok);
  void report_unreachable(NodeId to);
  void wake();
  Result<SnapshotMeta> compact(LogIndex index);
  Result<SnapshotMeta> snapshot_meta_at(LogIndex index) const;

  bool has_ready() const;
  Ready ready();
  void ready(Ready* out);
  void advance(const Ready& rd);
  Status check_invariants() const;

  // Inspection.
  const Config& config() const { return cfg_; }
  Role role() const { return role_; }
  NodeId leader() const { return lead_; }
  Term term() const { return term_; }
  NodeId vote() const { return vote_; }
  const RaftLog& log() const { return log_; }
  HardState hard_state() const { return {term_, vote_, log_.committed()}; }
  SoftState soft_state() const { return {lead_, role_, quiesced_}; }
  const ConfState& conf_state() const { return conf_; }
  bool quiesced() const { return quiesced_; }
  size_t message_capacity() const { return msgs_.capacity() + msgs_after_persist_.capacity(); }
  bool transferring() const { return lead_transferee_ != kNoNode; }
  uint64_t refused_messages() const { return refused_; }
  const ProgressMap& progress() const { return progress_; }

 private:
  struct PendingRead {
    uint64_t request_id;
    NodeId from;  // this node for local requests
    LogIndex index;
    uint64_t round;
  };

  // Roles (group.cc).
  void reset(Term term);
  void become_follower(Term term, NodeId leader);
  void become_pre_candidate();
  void become_candidate();
  void become_leader();
  void campaign(bool pre_vote, bool transfer);
  void poll(NodeId from, bool granted);
  bool promotable() const;
  // Whether an election may start now (a voter, no committed but unapplied configuration
  // change). `transfer`: a refused kTimeoutNow is remembered and honoured after the apply.
  bool may_campaign(bool transfer);
  bool has_unapplied_conf_changes() const;
  void reset_randomized_timeout();
  uint64_t next_random();
  void tick_election();
  void tick_heartbeat();
  bool quorum_active();
  void maybe_quiesce();
  void unquiesce(bool lease_expired);
  Result<LogIndex> append_proposal(EntryType type, std::string data);
  // Appends a validated change (`next` = the configuration it leads to) and tracks it as pending.
  Result<LogIndex> append_conf_change(const ConfChange& cc, const ConfState& next);
  // Whether the changes in (applied, last index] leave us out of the incoming voters.
  bool log_removes_self() const;
  void apply_conf_state(const ConfState& cs, LogIndex index);
  // Simulator mutation conf_at_append (raftd/raft/bugs.h); never called in the daemon's build.
  void bug_conf_at_append(const std::vector<Entry>& entries);
  // Applies a committed conf change entry (decoded; an invalid change is ignored identically on
  // every replica).
  void apply_conf_entry(const Entry& e);
  void rebuild_progress();
  void drop_pending_reads();
  bool committed_in_current_term() const;

  // Messages (group_step.cc).
  void send(Message m);
  // Whether `m` (from another node) could come from an honest replica in our current state:
  // raft::check_message() plus the rules that need our term, role and log. A message that fails
  // is dropped before it changes anything and counted in refused_.
  bool acceptable(const Message& m) const;
  bool step_term_check(const Message& m);
  void step_vote_request(const Message& m);
  // Vote responses carry the voter's commit index and its term; a candidate whose log matches
  // there commits up to it (Log Matching makes that prefix committed).
  void attach_commit(Message* r) const;
  void learn_commit(const Message& m);
  void step_leader(const Message& m);
  void step_candidate(const Message& m);
  void step_follower(const Message& m);
  void handle_append(const Message& m);
  void handle_heartbeat(const Message& m);
  void handle_snapshot(const Message& m);
  // `lease`: we heard from m.from within an election timeout; without it we stay awake.
  void handle_quiesce(const Message& m, bool lease);
  void handle_append_resp(const Message& m);
  void handle_heartbeat_resp(const Message& m);
  void handle_read_request(uint64_t request_id, NodeId from);
  void handle_transfer(NodeId to);
  bool maybe_send_append(NodeId to, bool send_if_empty);
  // The append to `to` after entry `prev` (of term `prev_term`) with `entries` and our commit
  // index; notes the commit index sent (Progress::sent_commit). Flow control is the caller's.
  Message make_append(NodeId to, LogIndex prev, Term prev_term, std::vector<Entry> entries);
  void bcast_append();
  // An empty append at the end of `to`'s full inflight window (lost appends show as a reject).
  void send_window_probe(NodeId to);
  void send_heartbeat(NodeId to, uint64_t round);
  // A heartbeat to every follower. With `fold` (the tick's round), none to a follower for which
  // heartbeat_folded() holds.
  void bcast_heartbeat(bool fold);
  // An append already did this interval what the tick's heartbeat would do (raft.h, "Heartbeats
  // folded into appends").
  bool heartbeat_folded(const Progress& pr) const;
  void send_timeout_now(NodeId to);
  bool maybe_commit();
  void after_commit_advanced();
  void release_confirmed_reads();
  void answer_read(const PendingRead& r);

  Config cfg_;
  RaftLog log_;

  // Persistent (HardState): term_ and vote_ reach the Ready before any message depending on them.
  Term term_;
  NodeId vote_ = kNoNode;

  // Volatile.
  Role role_ = Role::kFollower;
  NodeId lead_ = kNoNode;
  ConfState conf_;       // the applied configuration (apply-time semantics)
  LogIndex conf_index_;  // index of the entry or snapshot conf_ comes from
  std::vector<std::pair<LogIndex, ConfState>> conf_history_;  // for snapshot_meta_at()
  ProgressMap progress_;  // leader only: every member, this node included
  std::map<NodeId, bool> votes_;
  uint32_t election_elapsed_ = 0;
  uint32_t heartbeat_elapsed_ = 0;
  uint32_t randomized_timeout_ = 0;
  uint64_t rng_state_ = 0;
  NodeId lead_transferee_ = kNoNode;
  LogIndex pending_conf_index_;
  bool leaving_ = false;  // leader: its own removal/demotion is in the log; no more proposals
  bool campaign_after_apply_ = false;  // a kTimeoutNow waits for committed changes to apply
  uint64_t uncommitted_bytes_ = 0;
  bool quiesced_ = false;
  uint8_t quiet_readies_ = 0;  // Readys in a row without log work, up to kQuietReadiesKept
  uint32_t idle_ticks_ = 0;
  uint64_t refused_ = 0;  // messages step() dropped because no honest replica sends them
  // Changes at every wake() of a non-leader; starts at a value drawn per boot (random_seed).
  // The leader echoes the last value it heard from us (kAppendResp, a refused kQuiesce) in its
  // kQuiesce, and we obey only a notice that echoes the current one: a notice sent before a
  // wake(), however late it arrives, carries an older value (doc/raft.md, "Quiescing").
  uint64_t wake_epoch_ = 0;

  // ReadIndex (thesis §6.4): requests wait for a heartbeat round numbered >= their round.
  std::vector<std::pair<uint64_t, NodeId>> reads_before_commit_;
  std::vector<PendingRead> reads_;  // oldest first; few at a time (batched per round)
  uint64_t read_round_sent_ = 0;
  bool read_round_needed_ = false;
  // Proposals since the last Ready are broadcast together at the next ready() (batching).
  bool bcast_pending_ = false;

  // Outputs waiting for the next Ready. The message lists of a writing group reuse the driver's
  // buffers (trade_buffers), up to kKeptMessageBuffer messages each, until it has been quiet
  // (no entries to write or apply) for kQuietReadiesKept Readys.
  static constexpr size_t kKeptMessageBuffer = 64;
  static constexpr uint8_t kQuietReadiesKept = 8;
  static void trade_buffers(std::vector<Message>* out, std::vector<Message>* mine, bool keep);
  std::vector<Message> msgs_;
  std::vector<Message> msgs_after_persist_;
  std::vector<ReadState> read_states_;
  std::vector<NodeId> snapshot_requests_;
  HardState prev_hard_state_;
  SoftState prev_soft_state_;
  bool ready_outstanding_ = false;
  // Simulator mutation conf_apply_late: the conf change entry node 1 applies with the next
  // committed entry (always null in the daemon's build).
  std::unique_ptr<Entry> bug_late_conf_;

  // For check_invariants(): what was observed at the previous check.
  mutable Term checked_term_;
  mutable NodeId checked_vote_ = kNoNode;
  mutable LogIndex checked_commit_;
};

}  // namespace raftd::raft
