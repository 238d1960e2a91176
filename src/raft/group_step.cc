// raft::Group: message handling. Term rules and the vote lease follow thesis §3.3, §4.2.3 and
// §9.6; replication and flow control follow etcd-io/raft (stepLeader, handleAppendEntries,
// tracker/progress.go).
#include <algorithm>

#include "bug_hooks.h"
#include "group_impl.h"

namespace raftd::raft {
namespace {

bool is_vote_request(MessageType t) {
  return t == MessageType::kVote || t == MessageType::kPreVote;
}

bool from_leader(MessageType t) {
  return t == MessageType::kAppend || t == MessageType::kHeartbeat || t == MessageType::kSnapshot ||
         t == MessageType::kQuiesce;
}

// Only the leader of a term sends these: kTimeoutNow hands that leadership over, and a
// kReadIndexResp answers a request forwarded to the leader (a node that is no longer leader in
// that term still answers, and it is the node the request went to).
bool leader_only(MessageType t) {
  return from_leader(t) || t == MessageType::kTimeoutNow || t == MessageType::kReadIndexResp;
}

}  // namespace

void GroupImpl::send(Message m) {
  m.group = cfg_.group;
  m.from = cfg_.id;
  // Votes and append acknowledgements promise durable state (term, vote, entries): they leave
  // only after this Ready's writes are durable (thesis §3.8; subtle bugs #4 and #5). A vote
  // request too: a candidate that could win before its term and self-vote are durable could
  // crash, forget the term, win the same term again and write a second, different entry at an
  // index it already replicated in that term (two entries with one (index, term)).
  bool after_persist = false;
  switch (m.type) {
    case MessageType::kVote: after_persist = true; break;
    case MessageType::kVoteResp: after_persist = !RAFTD_BUG(kVoteBeforePersist); break;
    case MessageType::kAppendResp:
      after_persist = !RAFTD_BUG(kAckBeforePersist);
      m.context = wake_epoch_;  // the leader echoes it in its next kQuiesce
      break;
    default: break;
  }
  (after_persist ? msgs_after_persist_ : msgs_).push_back(std::move(m));
}

void GroupImpl::step(const Message& m) {
  RAFTD_ASSERT(m.to == cfg_.id, "raft::Group::step: message for another node");
  RAFTD_ASSERT(m.group == cfg_.group, "raft::Group::step: message for another group");
  // A message no honest replica sends is dropped before it changes anything (doc/raft.md,
  // "Messages no honest peer sends"). Our own (the self-vote, a driver's kTimeoutNow to itself)
  // are trusted.
  if (m.from != cfg_.id && !acceptable(m)) {
    ++refused_;
    return;
  }
  // Any traffic means the group is not idle any more, except the quiesce notice itself and the
  // late answers to the last heartbeats (a lagging follower's answer carries reject = true).
  bool idle_traffic =
      m.type == MessageType::kQuiesce || (m.type == MessageType::kHeartbeatResp && !m.reject);
  if (!idle_traffic) unquiesce(false);
  if (m.type == MessageType::kVoteResp || m.type == MessageType::kPreVoteResp) {
    learn_commit(m);  // whatever its term: a commit index stays true forever
  }
  // Only a follower that heard from this very leader within an election timeout, by a notice
  // that echoes its current wake epoch, may go to sleep: a notice sent before a wake() (the
  // driver saw the leader's node fail), or delayed past our own election timeout, must not
  // silence us, or no election ever follows. A late heartbeat may renew the lease; it cannot
  // make an old notice echo an epoch that did not exist when the notice was sent.
  bool quiesce_lease = role_ == Role::kFollower && m.term == term_ && lead_ == m.from &&
                       election_elapsed_ < cfg_.election_tick && m.context == wake_epoch_;
  if (!step_term_check(m)) return;
  if (m.type == MessageType::kQuiesce) {
    if (role_ != Role::kFollower) become_follower(m.term, m.from);
    lead_ = m.from;
    handle_quiesce(m, quiesce_lease || RAFTD_BUG(kQuiesceWithoutLease));
    return;
  }
  if (is_vote_request(m.type)) {
    step_vote_request(m);
    return;
  }
  switch (role_) {
    case Role::kLeader: step_leader(m); break;
    case Role::kCandidate:
    case Role::kPreCandidate: step_candidate(m); break;
    case Role::kFollower: step_follower(m); break;
  }
}

bool GroupImpl::acceptable(const Message& m) const {
  if (!check_message(m)) return false;
  if (m.term != term_) return true;  // stale, or news of a later term: the term rules handle it
  // Election Safety: one leader per term. A leader's message in our term from another node
  // than that leader (ourselves, or the one we follow) is a lie.
  if (leader_only(m.type)) {
    if (role_ == Role::kLeader) return false;
    if (lead_ != kNoNode && lead_ != m.from) return false;
  }
  if (role_ != Role::kLeader) return true;
  switch (m.type) {
    case MessageType::kAppendResp:
      // A follower answers appends this leader sent: it never names an index beyond our log.
      // Counted, such an acknowledgement would commit past the last index.
      return m.index <= log_.last_index() && m.reject_hint <= log_.last_index();
    case MessageType::kHeartbeatResp:
      // The context echoes a read round we sent; a later one would confirm reads early. A refused
      // kQuiesce (reject) carries the follower's wake epoch there instead, which confirms nothing.
      return m.reject || m.context <= read_round_sent_;
    default: return true;
  }
}

// Returns false when the message is finished with (stale, or ignored under the lease).
bool GroupImpl::step_term_check(const Message& m) {
  if (m.term > term_) {
    if (is_vote_request(m.type)) {
      // Lease (thesis §4.2.3): while we hear from a leader, ignore disruptive candidates, unless
      // the leader itself asked for the election (transfer).
      bool in_lease =
          cfg_.check_quorum && lead_ != kNoNode && election_elapsed_ < cfg_.election_tick;
      if (!m.transfer && in_lease) return false;
    }
    if (m.type == MessageType::kPreVote) return true;  // pre-votes never change our term
    if (m.type == MessageType::kPreVoteResp && !m.reject) return true;  // term is term_+1
    become_follower(m.term, from_leader(m.type) ? m.from : kNoNode);
    return true;
  }
  if (m.term < term_) {
    // Answer with our term (thesis Fig. 3.2: every response carries currentTerm), so a stale
    // leader or candidate learns it was replaced. In every mode: under PreVote/CheckQuorum a
    // node cut off may never see a higher-term request otherwise (§9.6 interplay), and without
    // them a stale leader that the new configuration no longer contacts (it was removed, or
    // the new leader's appends to it are lost) would keep leading its old term forever.
    if (m.type == MessageType::kAppend || m.type == MessageType::kHeartbeat) {
      Message r;
      r.type = MessageType::kAppendResp;
      r.to = m.from;
      r.term = term_;
      msgs_.push_back(std::move(r));
      msgs_.back().group = cfg_.group;
      msgs_.back().from = cfg_.id;
    } else if (m.type == MessageType::kPreVote || m.type == MessageType::kVote) {
      Message r;
      r.type = m.type == MessageType::kPreVote ? MessageType::kPreVoteResp : MessageType::kVoteResp;
      r.to = m.from;
      r.term = term_;
      r.reject = true;
      attach_commit(&r);
      send(std::move(r));
    }
    return false;
  }
  return true;
}

void GroupImpl::step_vote_request(const Message& m) {
  bool pre = m.type == MessageType::kPreVote;
  // We may vote for m.from if we already did in this term, or have no vote and know no leader;
  // a pre-vote for a future term is always possible. Learners vote too when asked (bug #11).
  bool can_vote =
      vote_ == m.from || (vote_ == kNoNode && lead_ == kNoNode) || (pre && m.term > term_);
  bool grant = can_vote && log_.is_up_to_date(m.index, m.log_term);
  Message r;
  r.type = pre ? MessageType::kPreVoteResp : MessageType::kVoteResp;
  r.to = m.from;
  r.term = grant ? m.term : term_;
  r.reject = !grant;
  attach_commit(&r);
  if (grant && !pre) {
    election_elapsed_ = 0;
    vote_ = m.from;
  }
  send(std::move(r));
}

void GroupImpl::attach_commit(Message* r) const {
  std::optional<Term> t = log_.term(log_.committed());
  if (!t) return;  // a snapshot being installed: nothing to tell
  r->commit = log_.committed();
  r->log_term = *t;
}

void GroupImpl::learn_commit(const Message& m) {
  // Log Matching: if our entry at m.commit has the term the voter has there, our log up to it is
  // the voter's, which the voter knows to be committed. This is how a node that missed a commit
  // (a crash before its hard state was durable, lost messages) learns it from a voter, e.g. that
  // a change removing that voter is committed, when only that voter could otherwise elect it.
  if (role_ == Role::kLeader || m.commit <= log_.committed()) return;
  if (!log_.match_term(m.commit, m.log_term)) return;
  log_.commit_to(m.commit);
  // A (pre-)candidate that now has a committed, unapplied configuration change gives up this
  // election (may_campaign()); it campaigns again under the new configuration once applied.
  if (role_ != Role::kFollower && has_unapplied_conf_changes()) become_follower(term_, kNoNode);
}

void GroupImpl::step_candidate(const Message& m) {
  switch (m.type) {
    case MessageType::kAppend:
      become_follower(m.term, m.from);
      handle_append(m);
      break;
    case MessageType::kHeartbeat:
      become_follower(m.term, m.from);
      handle_heartbeat(m);
      break;
    case MessageType::kSnapshot:
      become_follower(m.term, m.from);
      handle_snapshot(m);
      break;
    case MessageType::kTimeoutNow:
      // A pre-candidate is still a follower of no one: the handover applies to it too.
      if (role_ == Role::kPreCandidate && may_campaign(true)) campaign(false, true);
      break;
    case MessageType::kPreVoteResp:
      if (role_ == Role::kPreCandidate) poll(m.from, !m.reject);
      break;
    case MessageType::kVoteResp:
      if (role_ == Role::kCandidate) poll(m.from, !m.reject);
      break;
    default: break;  // proposals, reads and transfers wait for a leader
  }
}

void GroupImpl::step_follower(const Message& m) {
  switch (m.type) {
    case MessageType::kAppend:
      election_elapsed_ = 0;
      lead_ = m.from;
      handle_append(m);
      break;
    case MessageType::kHeartbeat:
      election_elapsed_ = 0;
      lead_ = m.from;
      handle_heartbeat(m);
      break;
    case MessageType::kSnapshot:
      election_elapsed_ = 0;
      lead_ = m.from;
      handle_snapshot(m);
      break;
    case MessageType::kTimeoutNow:
      // The leader hands over: campaign now, skipping PreVote and bypassing the lease.
      if (may_campaign(true)) campaign(false, true);
      break;
    case MessageType::kReadIndexResp:
      read_states_.push_back({m.context, m.index, !m.reject});
      break;
    case MessageType::kTransferLeader:
      if (lead_ != kNoNode) {
        Message f = m;
        f.to = lead_;
        f.term = term_;
        send(std::move(f));
      }
      break;
    case MessageType::kReadIndex: {
      Message r;  // we are not the leader: the requester retries elsewhere
      r.type = MessageType::kReadIndexResp;
      r.to = m.from;
      r.term = term_;
      r.context = m.context;
      r.reject = true;
      send(std::move(r));
      break;
    }
    default: break;
  }
}

void GroupImpl::handle_append(const Message& m) {
  Message r;
  r.type = MessageType::kAppendResp;
  r.to = m.from;
  r.term = term_;
  if (m.index < log_.committed() && !RAFTD_BUG(kTruncateCommitted)) {
    // Everything up to our commit index matches the leader already (it may even be compacted).
    r.index = log_.committed();
    send(std::move(r));
    return;
  }
  std::optional<LogIndex> last_new = log_.maybe_append(m.index, m.log_term, m.commit, m.entries);
  if (last_new) {
    if (RAFTD_BUG(kConfAtAppend)) bug_conf_at_append(m.entries);
    r.index = *last_new;
    send(std::move(r));
    return;
  }
  // Fast backtracking: tell the leader the last index that may match and its term.
  LogIndex hint = log_.find_conflict_by_term(std::min(m.index, log_.last_index()), m.log_term);
  r.index = m.index;
  r.reject = true;
  r.reject_hint = hint;
  r.log_term = log_.term(hint).value_or(Term(0));
  send(std::move(r));
}

void GroupImpl::handle_heartbeat(const Message& m) {
  // The leader sends min(our match, its commit): never beyond what we verified (bug #2).
  log_.commit_to(std::min(m.commit, log_.last_index()));
  Message r;
  r.type = MessageType::kHeartbeatResp;
  r.to = m.from;
  r.term = term_;
  r.context = m.context;
  send(std::move(r));
}

void GroupImpl::handle_quiesce(const Message& m, bool lease) {
  if (lease && log_.last_index() == m.index && log_.match_term(m.index, m.log_term)) {
    log_.commit_to(std::min(m.commit, log_.last_index()));
    if (log_.committed() == m.commit) {
      quiesced_ = true;
      return;
    }
  }
  // Not caught up (or no lease): answer with reject = true, which wakes the leader (if it is
  // alive) so it resumes replicating and heartbeating, with our wake epoch for its next notice.
  Message r;
  r.type = MessageType::kHeartbeatResp;
  r.to = m.from;
  r.term = term_;
  r.reject = true;
  r.context = wake_epoch_;
  send(std::move(r));
}

void GroupImpl::handle_snapshot(const Message& m) {
  const SnapshotMeta& meta = m.snapshot->meta;
  Message r;
  r.type = MessageType::kAppendResp;
  r.to = m.from;
  r.term = term_;
  const bool bug_rewind = RAFTD_BUG(kSnapshotBelowCommit) && meta.index < log_.committed();
  if (meta.index <= log_.committed() && !bug_rewind) {
    r.index = log_.committed();
  } else if (!bug_rewind && log_.match_term(meta.index, meta.term)) {
    // We already hold the snapshot's last entry: just fast-forward the commit index.
    log_.commit_to(meta.index);
    r.index = log_.committed();
  } else {
    // Replace the log; the configuration is the snapshot's (subtle bug #8).
    log_.restore(*m.snapshot);
    conf_ = meta.conf_state;
    conf_index_ = meta.index;
    conf_history_.clear();
    r.index = meta.index;
  }
  send(std::move(r));
}

void GroupImpl::step_leader(const Message& m) {
  auto it = progress_.find(m.from);
  switch (m.type) {
    case MessageType::kAppendResp:
      if (it != progress_.end()) handle_append_resp(m);
      break;
    case MessageType::kHeartbeatResp:
      if (it != progress_.end()) handle_heartbeat_resp(m);
      break;
    case MessageType::kReadIndex: handle_read_request(m.context, m.from); break;
    case MessageType::kTransferLeader:
      if (m.transfer_target == cfg_.id) {
        lead_transferee_ = kNoNode;  // we already lead: the transfer is complete
      } else {
        handle_transfer(m.transfer_target);
      }
      break;
    default: break;
  }
}

void GroupImpl::handle_append_resp(const Message& m) {
  // acceptable() refused responses that name an index beyond our log.
  Progress& pr = progress_.at(m.from);
  pr.recent_active = true;
  pr.wake_epoch = m.context;
  if (m.reject) {
    LogIndex hint = m.reject_hint;
    if (m.log_term > Term(0)) hint = log_.find_conflict_by_term(m.reject_hint, m.log_term);
    if (pr.maybe_decrease_to(m.index, hint)) {
      if (pr.state == ProgressState::kReplicate) pr.become_probe();
      maybe_send_append(m.from, true);
    }
    return;
  }
  bool was_paused = pr.paused(cfg_.max_inflight_msgs, cfg_.max_inflight_bytes);
  if (!pr.maybe_update(m.index)) {
    if (was_paused && !pr.paused(cfg_.max_inflight_msgs, cfg_.max_inflight_bytes)) {
      maybe_send_append(m.from, false);
    }
    return;
  }
  switch (pr.state) {
    case ProgressState::kProbe: pr.become_replicate(); break;
    case ProgressState::kSnapshot:
      if (pr.match + 1 >= log_.first_index()) {
        pr.become_probe();
        pr.become_replicate();
      }
      break;
    case ProgressState::kReplicate: pr.inflights.free_le(pr.match); break;
  }
  if (maybe_commit()) {
    after_commit_advanced();
  } else {
    while (maybe_send_append(m.from, false)) {
    }
  }
  if (m.from == lead_transferee_ && pr.match == log_.last_index()) send_timeout_now(m.from);
}

void GroupImpl::handle_heartbeat_resp(const Message& m) {
  Progress& pr = progress_.at(m.from);
  pr.recent_active = true;
  pr.probe_sent = false;
  if (RAFTD_BUG(kHeartbeatFreesInflight)) {
    // Mutation (heartbeat_frees_inflight): the answer frees the oldest slot of a full window and
    // the next append goes out, so a follower whose disk stalls gets one more append per
    // heartbeat, without bound (the flaw the window probe below replaced).
    if (pr.state == ProgressState::kReplicate &&
        pr.inflights.full(cfg_.max_inflight_msgs, cfg_.max_inflight_bytes)) {
      pr.inflights.free_first();
    }
    if (pr.match < log_.last_index()) maybe_send_append(m.from, true);
  } else if (pr.state == ProgressState::kReplicate &&
             pr.inflights.full(cfg_.max_inflight_msgs, cfg_.max_inflight_bytes)) {
    // The window is full and the follower is alive: either our appends were lost or its disk is
    // slow. Freeing a slot would send more entries on every heartbeat, without bound, to a
    // follower whose disk stalls. Instead an empty append at the end of the window: a follower
    // that lost appends rejects it (and we go back to probing from its match); one that is only
    // slow acknowledges it once its writes are durable.
    send_window_probe(m.from);
  } else if (pr.match < log_.last_index()) {
    maybe_send_append(m.from, true);
  }
  if (m.reject) {
    pr.wake_epoch = m.context;  // a refused kQuiesce: the epoch our next notice must echo
  } else if (m.context > pr.read_ack) {
    pr.read_ack = m.context;
    release_confirmed_reads();
  }
}

bool GroupImpl::maybe_send_append(NodeId to, bool send_if_empty) {
  Progress& pr = progress_.at(to);
  if (to == cfg_.id) return false;
  if (pr.paused(cfg_.max_inflight_msgs, cfg_.max_inflight_bytes)) return false;
  LogIndex prev = pr.next - 1;
  std::optional<Term> prev_term = log_.term(prev);
  std::optional<std::vector<Entry>> es;
  if (prev_term) es = log_.slice(pr.next, log_.last_index() + 1, cfg_.max_msg_bytes);
  if (!prev_term || !es) {
    // The entries it needs are compacted: ask the driver for a snapshot (only for followers that
    // answer; a dead follower would waste the effort).
    if (!pr.recent_active) return false;
    pr.become_snapshot();
    snapshot_requests_.push_back(to);
    return false;
  }
  // An empty append is still worth sending when it tells the follower a newer commit index.
  bool commit_news = pr.sent_commit < std::min(log_.committed(), prev);
  if (es->empty() && !send_if_empty && !commit_news) return false;
  Message m = make_append(to, prev, *prev_term, std::move(*es));
  if (!m.entries.empty()) {
    LogIndex last = m.entries.back().index;
    if (pr.state == ProgressState::kReplicate) {
      pr.next = last + 1;
      pr.inflights.add(last, m.entries_bytes());
    }
  }
  if (pr.state == ProgressState::kProbe) pr.probe_sent = true;
  send(std::move(m));
  return true;
}

void GroupImpl::send_window_probe(NodeId to) {
  Progress& pr = progress_.at(to);
  LogIndex prev = pr.next - 1;
  std::optional<Term> prev_term = log_.term(prev);
  if (!prev_term) {
    // Compacted meanwhile: what the follower misses may need a snapshot; probing finds out.
    pr.become_probe();
    maybe_send_append(to, true);
    return;
  }
  send(make_append(to, prev, *prev_term, {}));
}

Message GroupImpl::make_append(NodeId to, LogIndex prev, Term prev_term,
                               std::vector<Entry> entries) {
  Message m;
  m.type = MessageType::kAppend;
  m.to = to;
  m.term = term_;
  m.index = prev;
  m.log_term = prev_term;
  m.commit = log_.committed();
  m.entries = std::move(entries);
  Progress& pr = progress_.at(to);
  pr.sent_commit = std::max(pr.sent_commit, std::min(m.commit, prev + m.entries.size()));
  pr.append_since_beat = true;
  return m;
}

void GroupImpl::bcast_append() {
  for (auto& [id, pr] : progress_) {
    if (id != cfg_.id) maybe_send_append(id, true);
  }
}

void GroupImpl::send_heartbeat(NodeId to, uint64_t round) {
  const Progress& pr = progress_.at(to);
  Message m;
  m.type = MessageType::kHeartbeat;
  m.to = to;
  m.term = term_;
  // Never tell a follower to commit beyond what it is known to hold (subtle bug #2).
  m.commit = std::min(pr.match, log_.committed());
  m.context = round;
  progress_.at(to).sent_commit = std::max(pr.sent_commit, m.commit);
  send(std::move(m));
}

void GroupImpl::bcast_heartbeat(bool fold) {
  for (auto& [id, pr] : progress_) {
    if (id == cfg_.id) continue;
    const bool folded = fold && heartbeat_folded(pr);
    pr.append_since_beat = false;
    if (!folded) send_heartbeat(id, read_round_sent_);
  }
}

bool GroupImpl::heartbeat_folded(const Progress& pr) const {
  // The append reset the follower's election timer and its answer renews pr.recent_active
  // (CheckQuorum), as the heartbeat's would. The heartbeat still goes when it carries more: to a
  // follower that has not acknowledged the whole log (an append or its answer may be lost, and
  // the heartbeat's answer is what makes the leader send again), a commit index the follower
  // was not sent, or a read round it has not answered (the round's own heartbeat may have been
  // lost).
  return pr.append_since_beat && pr.state == ProgressState::kReplicate &&
         pr.match == log_.last_index() && pr.read_ack >= read_round_sent_ &&
         pr.sent_commit >= std::min(pr.match, log_.committed());
}

void GroupImpl::send_timeout_now(NodeId to) {
  Message m;
  m.type = MessageType::kTimeoutNow;
  m.to = to;
  m.term = term_;
  send(std::move(m));
}

bool GroupImpl::maybe_commit() {
  auto match_of = [&](NodeId n) -> uint64_t {
    auto it = progress_.find(n);
    return it == progress_.end() ? 0 : it->second.match.value();
  };
  LogIndex index(RAFTD_BUG(kLearnerInQuorum)
                     ? joint_majority_value(learners_as_voters(conf_), match_of)
                     : joint_majority_value(conf_, match_of));
  if (index <= log_.committed()) return false;
  // Only entries of the current term commit by counting replicas (thesis §3.6.2, bug #1).
  std::optional<Term> t = log_.term(index);
  if (!RAFTD_BUG(kCommitPrevTerm) && (!t || *t != term_)) return false;
  log_.commit_to(index);
  return true;
}

void GroupImpl::after_commit_advanced() {
  if (!reads_before_commit_.empty() && committed_in_current_term()) {
    auto waiting = std::move(reads_before_commit_);
    reads_before_commit_.clear();
    for (const auto& [id, from] : waiting) handle_read_request(id, from);
  }
  bcast_append();
}

// --- ReadIndex ----------------------------------------------------------------------------------

void GroupImpl::handle_read_request(uint64_t request_id, NodeId from) {
  if (RAFTD_BUG(kReadWithoutQuorum)) {
    // Mutation: answer from local state without confirming leadership.
    answer_read({request_id, from, log_.committed(), 0});
    return;
  }
  if (!committed_in_current_term()) {
    // Our commit index may lag the true one until our no-op commits (thesis §6.4 step 1).
    reads_before_commit_.emplace_back(request_id, from);
    return;
  }
  if (RAFTD_BUG(kReadIndexUnconfirmed)) {
    // Mutation: the commit index is safe to read only if we still lead; nobody confirmed that.
    answer_read({request_id, from, log_.committed(), 0});
    return;
  }
  PendingRead r{request_id, from, log_.committed(), read_round_sent_ + 1};
  reads_.push_back(r);
  read_round_needed_ = true;
  release_confirmed_reads();  // a single-voter group confirms at once
}

void GroupImpl::release_confirmed_reads() {
  auto ack_of = [&](NodeId n) -> uint64_t {
    if (n == cfg_.id) return UINT64_MAX;
    auto it = progress_.find(n);
    return it == progress_.end() ? 0 : it->second.read_ack;
  };
  uint64_t confirmed = joint_majority_value(conf_, ack_of);
  size_t done = 0;
  while (done < reads_.size() && reads_[done].round <= confirmed) answer_read(reads_[done++]);
  reads_.erase(reads_.begin(), reads_.begin() + static_cast<std::ptrdiff_t>(done));
  if (reads_.empty()) read_round_needed_ = false;
}

void GroupImpl::answer_read(const PendingRead& r) {
  if (r.from == cfg_.id) {
    read_states_.push_back({r.request_id, r.index, true});
    return;
  }
  Message m;
  m.type = MessageType::kReadIndexResp;
  m.to = r.from;
  m.term = term_;
  m.index = r.index;
  m.context = r.request_id;
  send(std::move(m));
}

}  // namespace raftd::raft
