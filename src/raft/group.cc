// raft::Group: construction, roles, elections, ticks and the public inputs other than messages.
// Thesis chapter 3 (roles, elections), §9.6 (PreVote), §6.2 and §4.2.3 (CheckQuorum, lease),
// §3.10 (leader transfer); etcd-io/raft raft.go is the structural model.
#include <fmt/format.h>

#include <algorithm>

#include "bug_hooks.h"
#include "group_impl.h"

namespace raftd::raft {

namespace {

// The commit index to boot with. A snapshot covers committed entries only, so its index is
// committed even when the hard state written after it did not become durable (a crash between
// installing a Ready's snapshot and writing that Ready's hard state: raft.h, "Hard state").
LogIndex boot_commit(const BootState& boot) {
  return std::max(boot.hard_state.commit, boot.snapshot.index);
}

// A wake epoch to boot with, drawn from the seed (which the driver picks anew per boot) without
// touching the election-timeout generator: a restarted replica must not reuse the epochs of its
// previous life, which notices still in flight may echo. 32 bits keep the varint short on every
// kAppendResp; a clash needs a late notice to echo one of the few epochs of this boot.
uint64_t initial_wake_epoch(uint64_t seed) {
  uint64_t z = seed ^ 0xD1B54A32D192ED03ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return (z ^ (z >> 31)) >> 32;
}

}  // namespace

GroupImpl::GroupImpl(const Config& config, const LogStorage& storage, const BootState& boot)
    : cfg_(config), log_(storage, boot.snapshot, boot_commit(boot), boot.applied) {
  Status s = cfg_.validate();
  RAFTD_ASSERT(s.is_ok(), "raft::Group: invalid Config (call Config::validate() first)");
  RAFTD_ASSERT(validate_conf_state(boot.snapshot.conf_state).is_ok(),
               "raft::Group: invalid ConfState in the boot snapshot");
  RAFTD_ASSERT(storage.first_index() == boot.snapshot.index + 1,
               "raft::Group: storage does not start right after the boot snapshot");
  // Subtle bug #16: a hard state ahead of the log means lost or corrupted storage; refuse.
  RAFTD_ASSERT(boot.hard_state.commit <= storage.last_index(),
               "raft::Group: commit index beyond the last stored entry (log lost or truncated?)");
  RAFTD_ASSERT(boot.snapshot.index <= boot.applied && boot.applied <= boot_commit(boot),
               "raft::Group: applied index outside [snapshot index, commit]");
  rng_state_ = cfg_.random_seed ^ (cfg_.id.value() * 0x9E3779B97F4A7C15ull);
  wake_epoch_ = initial_wake_epoch(rng_state_);
  term_ = boot.hard_state.term;
  vote_ = boot.hard_state.vote;
  if (log_.last_term() > term_) {
    // The entries of a Ready became durable, its hard state (written after them) did not: the
    // node had moved to the entries' term in that Ready. It promised nothing in that term (votes
    // and acks wait for the whole Ready, and a vote in it would have made the term durable in an
    // earlier Ready), so it resumes in that term with no vote; the next Ready persists it.
    term_ = log_.last_term();
    vote_ = kNoNode;
  }
  conf_ = boot.snapshot.conf_state;
  conf_index_ = boot.snapshot.index;
  // Apply-time semantics: the active configuration is the one as of the applied index.
  if (boot.applied > boot.snapshot.index) {
    std::optional<std::vector<Entry>> es =
        log_.slice(boot.snapshot.index + 1, boot.applied + 1, UINT64_MAX);
    RAFTD_ASSERT(es.has_value(), "raft::Group: applied entries not readable from storage");
    for (const Entry& e : *es) {
      if (e.type != EntryType::kConfChange) continue;
      Result<ConfChange> cc = decode_conf_change(e.data);
      RAFTD_ASSERT(cc.is_ok(), "raft::Group: undecodable conf change entry in storage");
      Result<ConfState> next = apply_conf_change(conf_, cc.value());
      if (next.is_ok()) apply_conf_state(next.value(), e.index);
    }
  }
  become_follower(term_, kNoNode);
  prev_hard_state_ = boot.hard_state;
  prev_soft_state_ = soft_state();
  checked_term_ = term_;
  checked_vote_ = vote_;
  checked_commit_ = log_.committed();
}

// --- roles ---------------------------------------------------------------------------------------

void GroupImpl::reset(Term term) {
  if (term != term_) {
    term_ = term;
    vote_ = kNoNode;  // only a new term clears the vote (subtle bug #4)
  }
  lead_ = kNoNode;
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  reset_randomized_timeout();
  lead_transferee_ = kNoNode;
  votes_.clear();
  pending_conf_index_ = LogIndex(0);
  leaving_ = false;
  campaign_after_apply_ = false;
  uncommitted_bytes_ = 0;
  bcast_pending_ = false;
  quiesced_ = false;
  idle_ticks_ = 0;
  drop_pending_reads();
  progress_.clear();
}

void GroupImpl::become_follower(Term term, NodeId leader) {
  reset(term);
  role_ = Role::kFollower;
  lead_ = leader;
}

void GroupImpl::become_pre_candidate() {
  RAFTD_ASSERT(role_ != Role::kLeader, "raft: leader cannot become pre-candidate");
  // PreVote changes neither term nor vote: a partitioned node cannot disrupt the group.
  votes_.clear();
  lead_ = kNoNode;
  role_ = Role::kPreCandidate;
  quiesced_ = false;
  reset_randomized_timeout();  // a fresh draw per attempt breaks repeated split pre-votes
}

void GroupImpl::become_candidate() {
  RAFTD_ASSERT(role_ != Role::kLeader, "raft: leader cannot become candidate");
  reset(term_ + 1);
  vote_ = cfg_.id;
  role_ = Role::kCandidate;
}

void GroupImpl::become_leader() {
  RAFTD_ASSERT(role_ == Role::kCandidate, "raft: only a candidate becomes leader");
  reset(term_);
  lead_ = cfg_.id;
  role_ = Role::kLeader;
  rebuild_progress();
  // Errata fix (subtle bug #6): no conf change until every entry from earlier terms is applied
  // AND this leader has committed an entry of its own term (checked in propose_conf_change).
  pending_conf_index_ = log_.last_index();
  leaving_ = log_removes_self();
  // The no-op entry lets this leader commit in its term (thesis §3.6.2, §6.4).
  Result<LogIndex> r = append_proposal(EntryType::kEmpty, {});
  RAFTD_ASSERT(r.is_ok(), "raft: leader could not append its empty entry");
}

void GroupImpl::rebuild_progress() {
  progress_.clear();
  if (role_ != Role::kLeader) return;
  LogIndex next = log_.last_index() + 1;
  for (NodeId n : all_members(conf_)) {
    Progress pr;
    pr.next = next;
    pr.learner = !contains(conf_.voters, n) && !contains(conf_.voters_outgoing, n);
    pr.recent_active = true;  // a new leader gives everyone a full CheckQuorum period
    if (n == cfg_.id) {
      pr.match = log_.persisted();
      pr.become_replicate();
    }
    progress_.emplace(n, std::move(pr));
  }
}

bool GroupImpl::promotable() const {
  return contains(conf_.voters, cfg_.id) || contains(conf_.voters_outgoing, cfg_.id);
}

uint64_t GroupImpl::next_random() {
  // splitmix64: tiny, fast, deterministic; quality is ample for spreading election timeouts.
  uint64_t z = (rng_state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void GroupImpl::reset_randomized_timeout() {
  randomized_timeout_ =
      cfg_.election_tick + static_cast<uint32_t>(next_random() % cfg_.election_tick);
}

void GroupImpl::campaign(bool pre_vote, bool transfer) {
  if (!promotable()) return;
  MessageType type;
  Term term;
  if (pre_vote) {
    become_pre_candidate();
    type = MessageType::kPreVote;
    term = term_ + 1;        // the term it would use; its own term does not move
    votes_[cfg_.id] = true;  // a pre-vote changes no state, nothing to persist first
  } else {
    become_candidate();
    type = MessageType::kVote;
    term = term_;
    // The self-vote counts only once term and vote are durable: it travels as a message to self
    // released after the persist, like every other vote (subtle bug #4).
    Message self;
    self.type = MessageType::kVoteResp;
    self.from = cfg_.id;
    self.to = cfg_.id;
    self.term = term_;
    send(std::move(self));
  }
  if (pre_vote) {
    VoteResult r = joint_vote_result(conf_, votes_);
    if (r == VoteResult::kWon) {
      campaign(false, transfer);
      return;
    }
  }
  for (NodeId v : all_members(conf_)) {
    if (v == cfg_.id) continue;
    bool voter = contains(conf_.voters, v) || contains(conf_.voters_outgoing, v);
    if (!voter && !RAFTD_BUG(kLearnerInQuorum)) continue;
    Message m;
    m.type = type;
    m.to = v;
    m.term = term;
    m.index = log_.last_index();
    m.log_term = log_.last_term();
    m.transfer = transfer;
    send(std::move(m));
  }
}

void GroupImpl::poll(NodeId from, bool granted) {
  votes_.emplace(from, granted);
  VoteResult r = RAFTD_BUG(kLearnerInQuorum) ? joint_vote_result(learners_as_voters(conf_), votes_)
                                             : joint_vote_result(conf_, votes_);
  if (r == VoteResult::kWon) {
    if (role_ == Role::kPreCandidate) {
      campaign(false, false);
    } else {
      become_leader();  // appends the no-op, which is broadcast
    }
  } else if (r == VoteResult::kLost) {
    // Stay in the same term; the next timeout retries.
    become_follower(term_, kNoNode);
  }
}

// --- ticks ---------------------------------------------------------------------------------------

void GroupImpl::tick() {
  if (role_ == Role::kLeader) {
    tick_heartbeat();
  } else {
    tick_election();
  }
}

void GroupImpl::tick_election() {
  if (quiesced_) return;  // the leader said the group is idle (see raft.h, quiescing)
  ++election_elapsed_;
  if (promotable() && election_elapsed_ >= randomized_timeout_) {
    election_elapsed_ = 0;
    if (may_campaign(false)) campaign(cfg_.pre_vote, false);
  }
}

bool GroupImpl::may_campaign(bool transfer) {
  if (!promotable()) return false;
  if (!has_unapplied_conf_changes()) return true;
  // etcd's hasUnappliedConfChanges: our configuration is about to change (the change is
  // committed, only not applied yet); campaigning now would use a configuration the group has
  // left, or make us lead one we are no longer part of. A timeout retries later; a handover
  // (kTimeoutNow) is kept and honoured once the changes are applied (advance()).
  if (transfer) campaign_after_apply_ = true;
  return false;
}

bool GroupImpl::has_unapplied_conf_changes() const {
  LogIndex lo = log_.applied() + 1;
  const LogIndex hi = log_.committed() + 1;
  while (lo < hi) {
    std::optional<std::vector<Entry>> es = log_.slice(lo, hi, cfg_.max_committed_bytes_per_ready);
    // Compacted: a snapshot replaced the log and its configuration is already in force.
    if (!es || es->empty()) return false;
    for (const Entry& e : *es) {
      if (e.type == EntryType::kConfChange) return true;
    }
    lo = es->back().index + 1;
  }
  return false;
}

void GroupImpl::tick_heartbeat() {
  if (quiesced_) return;
  ++heartbeat_elapsed_;
  ++election_elapsed_;
  if (election_elapsed_ >= cfg_.election_tick) {
    election_elapsed_ = 0;
    if (cfg_.check_quorum && !quorum_active()) {
      become_follower(term_, kNoNode);  // thesis §6.2: a leader without a quorum steps down
      return;
    }
    // Leader transfer did not finish within an election timeout: abort (thesis §3.10).
    lead_transferee_ = kNoNode;
  }
  if (heartbeat_elapsed_ >= cfg_.heartbeat_tick) {
    heartbeat_elapsed_ = 0;
    bcast_heartbeat(true);
  }
  maybe_quiesce();
}

bool GroupImpl::quorum_active() {
  // Counted in place (no map): this runs every election timeout in every leader.
  auto active = [&](NodeId n) {
    auto it = progress_.find(n);
    return it != progress_.end() && (n == cfg_.id || it->second.recent_active);
  };
  const bool won = joint_majority_agrees(conf_, active);
  for (auto& [id, pr] : progress_) {
    if (id != cfg_.id) pr.recent_active = false;
  }
  return won;
}

void GroupImpl::maybe_quiesce() {
  if (cfg_.quiesce_after_ticks == 0) return;
  bool idle = lead_transferee_ == kNoNode && reads_.empty() && reads_before_commit_.empty() &&
              !read_round_needed_ && log_.committed() == log_.last_index() && !conf_.joint() &&
              pending_conf_index_ <= log_.applied();
  for (const auto& [id, pr] : progress_) {
    if (!idle) break;
    idle = pr.match == log_.last_index();
  }
  idle_ticks_ = idle ? idle_ticks_ + 1 : 0;
  if (idle_ticks_ < cfg_.quiesce_after_ticks) return;
  for (const auto& [id, pr] : progress_) {
    if (id == cfg_.id) continue;
    Message m;
    m.type = MessageType::kQuiesce;
    m.to = id;
    m.term = term_;
    m.index = log_.last_index();
    m.log_term = log_.last_term();
    m.commit = log_.committed();
    m.context = pr.wake_epoch;
    send(std::move(m));
  }
  quiesced_ = true;
}

void GroupImpl::unquiesce(bool lease_expired) {
  if (!quiesced_) return;
  quiesced_ = false;
  idle_ticks_ = 0;
  heartbeat_elapsed_ = 0;
  // lease_expired: the driver says the leader is gone; otherwise give it a full timeout.
  election_elapsed_ = lease_expired ? cfg_.election_tick : 0;
  for (auto& [id, pr] : progress_) pr.recent_active = true;
}

void GroupImpl::wake() {
  // A new epoch: no notice sent before this call echoes it (the leader can only have learned it
  // from a message we send from now on).
  if (role_ != Role::kLeader) ++wake_epoch_;
  unquiesce(role_ != Role::kLeader);
}

// --- proposals -----------------------------------------------------------------------------------

Result<LogIndex> GroupImpl::append_proposal(EntryType type, std::string data) {
  Entry e;
  e.term = term_;
  e.index = log_.last_index() + 1;
  e.type = type;
  e.data = std::move(data);
  uint64_t bytes = type == EntryType::kEmpty ? 0 : e.size_bytes();
  // Empty entries (no-op, leave-joint) are never refused: they are needed to make progress.
  if (bytes != 0 && cfg_.max_uncommitted_bytes != 0 && uncommitted_bytes_ > 0 &&
      uncommitted_bytes_ + bytes > cfg_.max_uncommitted_bytes) {
    return Status(Code::kTooLarge, "raft: too many uncommitted bytes; retry later");
  }
  uncommitted_bytes_ += bytes;
  LogIndex index = e.index;
  std::vector<Entry> bug_appended;  // stays empty (no allocation) in the daemon's build
  if (RAFTD_BUG(kConfAtAppend)) bug_appended.push_back(e);
  log_.append({std::move(e)});
  if (RAFTD_BUG(kConfAtAppend)) bug_conf_at_append(bug_appended);
  if (RAFTD_BUG(kAckBeforePersist)) {
    // Mutation: the leader counts its own entry before it is durable.
    auto self = progress_.find(cfg_.id);
    if (self != progress_.end()) self->second.maybe_update(index);
  }
  if (maybe_commit()) after_commit_advanced();
  bcast_pending_ = true;  // sent at the next ready(), together with any further proposals
  return index;
}

Result<LogIndex> GroupImpl::propose(std::string data) {
  if (role_ != Role::kLeader) {
    return Status(Code::kUnavailable, "raft: not the leader");
  }
  if (lead_transferee_ != kNoNode) {
    return Status(Code::kUnavailable, "raft: leader transfer in progress");
  }
  if (leaving_) {
    return Status(Code::kUnavailable, "raft: this leader is being removed from the group");
  }
  unquiesce(false);
  return append_proposal(EntryType::kNormal, std::move(data));
}

bool GroupImpl::committed_in_current_term() const {
  std::optional<Term> t = log_.term(log_.committed());
  return t && *t == term_;
}

Result<LogIndex> GroupImpl::propose_conf_change(const ConfChange& cc) {
  if (role_ != Role::kLeader) return Status(Code::kUnavailable, "raft: not the leader");
  if (lead_transferee_ != kNoNode) {
    return Status(Code::kUnavailable, "raft: leader transfer in progress");
  }
  if (!committed_in_current_term()) {
    return Status(Code::kUnavailable, "raft: new leader has not committed in its term yet");
  }
  if (pending_conf_index_ > log_.applied()) {
    return Status(Code::kUnavailable, "raft: another configuration change is pending");
  }
  if (leaving_ && !cc.leave_joint()) {
    return Status(Code::kUnavailable, "raft: this leader is being removed from the group");
  }
  // Every replica decodes the entry when it applies it; one it could not decode would stop them
  // all (and followers refuse an append carrying it).
  Result<ConfChange> carried = decode_conf_change(encode_conf_change(cc));
  if (!carried.is_ok() || carried.value() != cc) {
    return Status(Code::kInvalidArgument, "raft: conf change not representable in its encoding");
  }
  Result<ConfState> next = apply_conf_change(conf_, cc);
  if (!next.is_ok()) return next.status();
  unquiesce(false);
  return append_conf_change(cc, next.value());
}

Result<LogIndex> GroupImpl::append_conf_change(const ConfChange& cc, const ConfState& next) {
  Result<LogIndex> r = append_proposal(EntryType::kConfChange, encode_conf_change(cc));
  if (!r.is_ok()) return r;
  pending_conf_index_ = r.value();
  // Our own removal (or demotion) is in the log: accept nothing after it. Once it is committed
  // the remaining voters must be able to elect a leader, and a voter whose log is longer than
  // theirs (us, when the survivor of a 2-to-1 change missed the commit) would refuse its vote.
  if (!contains(next.voters, cfg_.id)) leaving_ = true;
  return r;
}

bool GroupImpl::log_removes_self() const {
  ConfState cs = conf_;
  LogIndex lo = log_.applied() + 1;
  const LogIndex hi = log_.last_index() + 1;
  while (lo < hi) {
    std::optional<std::vector<Entry>> es = log_.slice(lo, hi, cfg_.max_committed_bytes_per_ready);
    if (!es || es->empty()) break;
    for (const Entry& e : *es) {
      if (e.type != EntryType::kConfChange) continue;
      Result<ConfChange> cc = decode_conf_change(e.data);
      if (!cc.is_ok()) continue;
      Result<ConfState> next = apply_conf_change(cs, cc.value());
      if (next.is_ok()) cs = std::move(next).value();
    }
    lo = es->back().index + 1;
  }
  return !contains(cs.voters, cfg_.id);
}

void GroupImpl::apply_conf_state(const ConfState& cs, LogIndex index) {
  conf_ = cs;
  conf_index_ = index;
  conf_history_.emplace_back(index, cs);
  if (role_ != Role::kLeader) {
    // A (pre-)candidate that is no longer a voter gives up (may_campaign() keeps this from
    // happening through committed changes; a snapshot can still bring such a configuration).
    if (role_ != Role::kFollower && !promotable()) become_follower(term_, kNoNode);
    return;
  }
  bool self_voter = promotable();
  // Keep progress of members that stay; add new ones in probe state.
  ProgressMap old = std::move(progress_);
  progress_.clear();
  for (NodeId n : all_members(conf_)) {
    auto it = old.find(n);
    Progress pr;
    if (it != old.end()) {
      pr = std::move(it->second);
    } else {
      pr.next = log_.last_index() + 1;
      pr.recent_active = true;
    }
    pr.learner = !contains(conf_.voters, n) && !contains(conf_.voters_outgoing, n);
    progress_.emplace(n, std::move(pr));
  }
  if (!self_voter) {
    // Subtle bug #9: a removed or demoted leader steps down once the change is applied. First
    // it tells the remaining members the commit index (a survivor that missed it would still
    // count us as a voter) and hands leadership to the most caught-up voter, which campaigns
    // once it has applied the change too (no waiting for an election timeout).
    bcast_append();
    NodeId best = kNoNode;
    LogIndex best_match;
    for (const auto& [id, pr] : progress_) {
      if (id == cfg_.id || !contains(conf_.voters, id)) continue;
      if (best == kNoNode || pr.match > best_match) {
        best = id;
        best_match = pr.match;
      }
    }
    if (best != kNoNode && best_match == log_.last_index()) send_timeout_now(best);
    become_follower(term_, kNoNode);
    return;
  }
  if (lead_transferee_ != kNoNode && !contains(conf_.voters, lead_transferee_)) {
    lead_transferee_ = kNoNode;
  }
  // The quorum changed: pending reads may be confirmed already (e.g. a single voter is left).
  release_confirmed_reads();
  if (maybe_commit()) after_commit_advanced();
  bcast_append();
}

void GroupImpl::bug_conf_at_append(const std::vector<Entry>& entries) {
  // Mutation (conf_at_append): only node 1 switches configuration at append time, so replicas
  // disagree about who the voters are while a change is in flight.
  if (cfg_.id != NodeId(1)) return;
  for (const Entry& e : entries) {
    if (e.type != EntryType::kConfChange || e.index <= conf_index_) continue;
    Result<ConfChange> cc = decode_conf_change(e.data);
    if (!cc.is_ok()) continue;
    Result<ConfState> next = apply_conf_change(conf_, cc.value());
    if (next.is_ok()) apply_conf_state(next.value(), e.index);
  }
}

// --- reads and transfer -------------------------------------------------------------------------

Status GroupImpl::read_index(uint64_t request_id) {
  if (role_ == Role::kLeader) {
    unquiesce(false);
    handle_read_request(request_id, cfg_.id);
    return Status::ok();
  }
  Message m;
  m.type = MessageType::kReadIndex;
  m.context = request_id;
  return forward_to_leader(std::move(m));
}

Status GroupImpl::transfer_leader(NodeId to) {
  if (role_ == Role::kLeader) {
    if (!contains(conf_.voters, to)) {
      return Status(Code::kInvalidArgument, "raft: transfer target is not a voter");
    }
    unquiesce(false);
    handle_transfer(to);
    return Status::ok();
  }
  Message m;
  m.type = MessageType::kTransferLeader;
  m.transfer_target = to;
  return forward_to_leader(std::move(m));
}

Status GroupImpl::forward_to_leader(Message m) {
  if (lead_ == kNoNode) return Status(Code::kUnavailable, "raft: no leader known");
  unquiesce(false);
  m.to = lead_;
  m.term = term_;
  send(std::move(m));
  return Status::ok();
}

void GroupImpl::handle_transfer(NodeId to) {
  if (to == cfg_.id || !contains(conf_.voters, to)) return;
  if (lead_transferee_ == to) return;
  lead_transferee_ = to;
  election_elapsed_ = 0;  // the transfer must finish within one election timeout
  const Progress& pr = progress_.at(to);
  if (pr.match == log_.last_index()) {
    send_timeout_now(to);
  } else {
    maybe_send_append(to, true);
  }
}

void GroupImpl::drop_pending_reads() {
  for (const auto& [id, from] : reads_before_commit_) {
    if (from == cfg_.id) read_states_.push_back({id, LogIndex(0), false});
  }
  for (const PendingRead& r : reads_) {
    if (r.from == cfg_.id) read_states_.push_back({r.request_id, LogIndex(0), false});
  }
  reads_before_commit_.clear();
  reads_.clear();
  read_round_needed_ = false;
}

// --- durability and snapshots -------------------------------------------------------------------

void GroupImpl::on_persisted(LogIndex index, Term term) {
  if (!log_.stable_to(index, term)) return;
  if (role_ != Role::kLeader) return;
  // The leader counts itself toward a quorum only for entries it has made durable (bug #5).
  auto it = progress_.find(cfg_.id);
  if (it != progress_.end() && it->second.maybe_update(log_.persisted())) {
    if (maybe_commit()) after_commit_advanced();
  }
}

void GroupImpl::on_snapshot_installed(const SnapshotMeta& meta) { log_.snapshot_installed(meta); }

void GroupImpl::send_snapshot(NodeId to, Snapshot snapshot) {
  if (role_ != Role::kLeader) return;
  auto it = progress_.find(to);
  if (it == progress_.end()) return;
  Progress& pr = it->second;
  if (pr.state != ProgressState::kSnapshot || pr.pending_snapshot != LogIndex(0)) return;
  if (snapshot.meta.index < log_.first_index() - 1) return;  // too old to help
  pr.pending_snapshot = snapshot.meta.index;
  Message m;
  m.type = MessageType::kSnapshot;
  m.to = to;
  m.term = term_;
  m.snapshot = std::move(snapshot);
  send(std::move(m));
}

void GroupImpl::report_snapshot(NodeId to, bool ok) {
  if (role_ != Role::kLeader) return;
  auto it = progress_.find(to);
  if (it == progress_.end() || it->second.state != ProgressState::kSnapshot) return;
  Progress& pr = it->second;
  if (!ok) pr.pending_snapshot = LogIndex(0);
  pr.become_probe();
  // Wait for the next heartbeat response before probing again.
  pr.probe_sent = true;
}

void GroupImpl::report_unreachable(NodeId to) {
  if (role_ != Role::kLeader) return;
  auto it = progress_.find(to);
  if (it == progress_.end()) return;
  if (it->second.state == ProgressState::kReplicate) it->second.become_probe();
}

Result<SnapshotMeta> GroupImpl::snapshot_meta_at(LogIndex index) const {
  if (log_.snapshot_pending()) {
    return Status(Code::kUnavailable, "raft: a snapshot from the leader is being installed");
  }
  if (index < log_.snapshot_meta().index || index > log_.applied()) {
    return Status(Code::kInvalidArgument,
                  fmt::format("raft: snapshot index {} outside [{}, applied {}]", index.value(),
                              log_.snapshot_meta().index.value(), log_.applied().value()));
  }
  std::optional<Term> t = log_.term(index);
  if (!t) return Status(Code::kNotFound, "raft: term of the snapshot index is unknown");
  SnapshotMeta meta{index, *t, log_.snapshot_meta().conf_state};
  if (index == log_.snapshot_meta().index) return meta;
  for (const auto& [at, cs] : conf_history_) {
    if (at <= index) meta.conf_state = cs;
  }
  return meta;
}

Result<SnapshotMeta> GroupImpl::compact(LogIndex index) {
  Result<SnapshotMeta> meta = snapshot_meta_at(index);
  if (!meta.is_ok()) return meta;
  if (index > log_.persisted()) {
    return Status(Code::kInvalidArgument, "raft: cannot compact entries not yet durable");
  }
  log_.compacted(meta.value());
  // Configurations older than the compaction point are only needed as its base.
  std::erase_if(conf_history_, [&](const auto& h) { return h.first <= index; });
  return meta;
}

// --- public wrapper ------------------------------------------------------------------------------

Group::Group(const Config& config, const LogStorage& storage, const BootState& boot)
    : impl_(std::make_unique<GroupImpl>(config, storage, boot)) {}
Group::~Group() = default;
Group::Group(Group&&) noexcept = default;
Group& Group::operator=(Group&&) noexcept = default;

void Group::tick() { impl_->tick(); }
void Group::step(const Message& m) { impl_->step(m); }
Result<LogIndex> Group::propose(std::string data) { return impl_->propose(std::move(data)); }
Result<LogIndex> Group::propose_conf_change(const ConfChange& cc) {
  return impl_->propose_conf_change(cc);
}
Status Group::read_index(uint64_t request_id) { return impl_->read_index(request_id); }
Status Group::transfer_leader(NodeId to) { return impl_->transfer_leader(to); }
void Group::on_persisted(LogIndex index, Term term) { impl_->on_persisted(index, term); }
void Group::on_snapshot_installed(const SnapshotMeta& meta) { impl_->on_snapshot_installed(meta); }
void Group::send_snapshot(NodeId to, Snapshot snapshot) {
  impl_->send_snapshot(to, std::move(snapshot));
}
void Group::report_snapshot(NodeId to, bool ok) { impl_->report_snapshot(to, ok); }
void Group::report_unreachable(NodeId to) { impl_->report_unreachable(to); }
void Group::wake() { impl_->wake(); }
Result<SnapshotMeta> Group::compact(LogIndex index) { return impl_->compact(index); }
Result<SnapshotMeta> Group::snapshot_meta_at(LogIndex index) const {
  return impl_->snapshot_meta_at(index);
}
bool Group::has_ready() const { return impl_->has_ready(); }
Ready Group::ready() { return impl_->ready(); }
void Group::ready(Ready* out) { impl_->ready(out); }
void Group::advance(const Ready& rd) { impl_->advance(rd); }
Status Group::check_invariants() const { return impl_->check_invariants(); }

NodeId Group::id() const { return impl_->config().id; }
GroupId Group::group() const { return impl_->config().group; }
Role Group::role() const { return impl_->role(); }
NodeId Group::leader() const { return impl_->leader(); }
Term Group::term() const { return impl_->term(); }
NodeId Group::vote() const { return impl_->vote(); }
LogIndex Group::commit_index() const { return impl_->log().committed(); }
LogIndex Group::applied_index() const { return impl_->log().applied(); }
LogIndex Group::last_index() const { return impl_->log().last_index(); }
Term Group::last_term() const { return impl_->log().last_term(); }
LogIndex Group::persisted_index() const { return impl_->log().persisted(); }
HardState Group::hard_state() const { return impl_->hard_state(); }
SoftState Group::soft_state() const { return impl_->soft_state(); }
const ConfState& Group::conf_state() const { return impl_->conf_state(); }
bool Group::quiesced() const { return impl_->quiesced(); }
size_t Group::message_capacity() const { return impl_->message_capacity(); }
bool Group::transferring() const { return impl_->transferring(); }
uint64_t Group::refused_messages() const { return impl_->refused_messages(); }
std::optional<Term> Group::term_at(LogIndex i) const { return impl_->log().term(i); }

std::optional<ProgressView> Group::progress(NodeId peer) const {
  if (impl_->role() != Role::kLeader) return std::nullopt;
  auto it = impl_->progress().find(peer);
  if (it == impl_->progress().end()) return std::nullopt;
  const Progress& pr = it->second;
  return ProgressView{
      pr.match,         pr.next,   pr.state, pr.inflights.count(), pr.inflights.bytes(),
      pr.recent_active, pr.learner};
}

}  // namespace raftd::raft
