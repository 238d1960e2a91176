// raft::Group: assembling a Ready, taking it back (advance: committed entries count as applied,
// configuration changes take effect), and the invariant checker.
#include <fmt/format.h>

#include <algorithm>

#include "bug_hooks.h"
#include "group_impl.h"

namespace raftd::raft {

bool GroupImpl::has_ready() const {
  return !msgs_.empty() || !msgs_after_persist_.empty() || !read_states_.empty() ||
         !snapshot_requests_.empty() || read_round_needed_ || bcast_pending_ ||
         hard_state() != prev_hard_state_ || soft_state() != prev_soft_state_ ||
         log_.has_entries_to_persist() || log_.has_snapshot_to_install() ||
         log_.has_committed_to_apply();
}

Ready GroupImpl::ready() {
  Ready rd;
  ready(&rd);
  return rd;
}

void GroupImpl::ready(Ready* out) {
  RAFTD_ASSERT(!ready_outstanding_, "raft::Group::ready: previous Ready not advanced");
  if (read_round_needed_ && role_ == Role::kLeader) {
    // One heartbeat round confirms every read queued since the last Ready (batching, §6.4).
    ++read_round_sent_;
    bcast_heartbeat(false);
    read_round_needed_ = false;
  }
  if (bcast_pending_ && role_ == Role::kLeader) bcast_append();
  bcast_pending_ = false;
  Ready& rd = *out;
  rd.snapshot = log_.take_snapshot_to_install();
  rd.entries = log_.take_entries_to_persist();
  rd.hard_state.reset();
  rd.hard_state_lazy = false;
  HardState hs = hard_state();
  if (hs != prev_hard_state_) {
    rd.hard_state = hs;
    rd.hard_state_lazy = rd.entries.empty() && !rd.snapshot && hs.term == prev_hard_state_.term &&
                         hs.vote == prev_hard_state_.vote &&
                         log_.conf_change_bound() <= prev_hard_state_.commit;
    prev_hard_state_ = hs;
  }
  rd.soft_state.reset();
  SoftState ss = soft_state();
  if (ss != prev_soft_state_) {
    rd.soft_state = ss;
    prev_soft_state_ = ss;
  }
  rd.committed_entries = log_.take_committed_to_apply(cfg_.max_committed_bytes_per_ready);
  // The message lists trade buffers with the caller's Ready (emptied first), so a driver that
  // passes the same Ready every time allocates none while the group is writing (its heartbeat
  // Readys between writes included). An idle group keeps none: quiesced, or kQuietReadiesKept
  // Readys in a row without entries to write or apply. Idle groups are most of a node's groups
  // and their memory is budgeted.
  const bool log_work = !rd.entries.empty() || !rd.committed_entries.empty();
  if (log_work) {
    quiet_readies_ = 0;
  } else if (quiet_readies_ < kQuietReadiesKept) {
    ++quiet_readies_;
  }
  const bool keep = !quiesced_ && quiet_readies_ < kQuietReadiesKept;
  trade_buffers(&rd.messages, &msgs_, keep);
  trade_buffers(&rd.messages_after_persist, &msgs_after_persist_, keep);
  rd.read_states = std::move(read_states_);
  read_states_.clear();
  rd.snapshot_requests = std::move(snapshot_requests_);
  snapshot_requests_.clear();
  ready_outstanding_ = true;
}

void GroupImpl::trade_buffers(std::vector<Message>* out, std::vector<Message>* mine, bool keep) {
  out->clear();
  out->swap(*mine);
  if (!keep || mine->capacity() > kKeptMessageBuffer) std::vector<Message>().swap(*mine);
}

void GroupImpl::advance(const Ready& rd) {
  RAFTD_ASSERT(ready_outstanding_, "raft::Group::advance without a Ready");
  ready_outstanding_ = false;
  if (rd.committed_entries.empty()) return;
  for (const Entry& e : rd.committed_entries) {
    // Release the proposal budget taken by append_proposal (this term's non-empty entries).
    if (role_ == Role::kLeader && e.type != EntryType::kEmpty && e.term == term_) {
      uint64_t b = e.size_bytes();
      uncommitted_bytes_ = uncommitted_bytes_ > b ? uncommitted_bytes_ - b : 0;
    }
    if (bug_late_conf_) {
      std::unique_ptr<Entry> late = std::move(bug_late_conf_);
      if (late->index > conf_index_) apply_conf_entry(*late);
    }
    // A snapshot installed meanwhile may already carry a newer configuration.
    if (e.type != EntryType::kConfChange || e.index <= conf_index_) continue;
    if (RAFTD_BUG(kConfApplyLate) && cfg_.id == NodeId(1)) {
      // Mutation (conf_apply_late): node 1 applies each change one committed entry late, so
      // right after applying it, its configuration is not the others'.
      bug_late_conf_ = std::make_unique<Entry>(e);
      continue;
    }
    apply_conf_entry(e);
  }
  log_.applied_to(rd.committed_entries.back().index);
  if (campaign_after_apply_ && role_ != Role::kLeader && !has_unapplied_conf_changes()) {
    campaign_after_apply_ = false;
    if (promotable()) campaign(false, true);  // the handover that arrived before the apply
  }
  // Joint configuration with auto_leave: the leader proposes the leave once the joint config is
  // applied and nothing else is pending.
  if (role_ == Role::kLeader && conf_.joint() && conf_.auto_leave &&
      pending_conf_index_ <= log_.applied()) {
    Result<ConfState> next = apply_conf_change(conf_, ConfChange{});
    if (next.is_ok()) (void)append_conf_change(ConfChange{}, next.value());
  }
}

void GroupImpl::apply_conf_entry(const Entry& e) {
  Result<ConfChange> cc = decode_conf_change(e.data);
  RAFTD_ASSERT(cc.is_ok(), "raft: undecodable conf change entry");
  Result<ConfState> next = apply_conf_change(conf_, cc.value());
  // An invalid change is ignored identically on every replica (deterministic).
  if (next.is_ok()) apply_conf_state(next.value(), e.index);
}

Status GroupImpl::check_invariants() const {
  auto fail = [&](std::string what) {
    return Status(Code::kCorruption,
                  fmt::format("raft invariant (node {} group {} term {}): {}", cfg_.id.value(),
                              cfg_.group.value(), term_.value(), what));
  };
  LogIndex last = log_.last_index();
  LogIndex commit = log_.committed();
  if (commit > last)
    return fail(fmt::format("commit {} > last index {}", commit.value(), last.value()));
  if (log_.applied() > commit) return fail("applied > commit");
  if (log_.applying() > commit) return fail("handed out entries beyond commit");
  if (term_ < checked_term_) return fail("term decreased");
  if (term_ == checked_term_ && checked_vote_ != kNoNode && vote_ != checked_vote_) {
    return fail("vote changed within a term");
  }
  if (commit < checked_commit_ && !log_.snapshot_pending()) return fail("commit index decreased");
  std::optional<Term> lt = log_.term(last);
  if (!lt) return fail("term of the last index unknown");
  if (*lt > term_) return fail("last log term beyond current term");
  const std::vector<Entry>& un = log_.unstable();
  for (size_t i = 0; i < un.size(); ++i) {
    if (un[i].index != log_.offset() + i) return fail("unstable entries not contiguous");
    if (i > 0 && un[i].term < un[i - 1].term) return fail("log terms decrease");
  }
  if (!un.empty()) {
    std::optional<Term> before = log_.term(log_.offset() - 1);
    if (before && *before > un.front().term) return fail("log terms decrease at the unstable tail");
  }
  Status cs = validate_conf_state(conf_);
  if (!cs.is_ok()) return fail(cs.message());
  if (role_ == Role::kLeader) {
    if (lead_ != cfg_.id || vote_ != cfg_.id) return fail("leader did not vote for itself");
    for (const auto& [id, pr] : progress_) {
      if (pr.match > last) return fail(fmt::format("match of {} beyond last index", id.value()));
      if (pr.next <= pr.match) return fail(fmt::format("next <= match for {}", id.value()));
    }
  } else if (!progress_.empty()) {
    return fail("non-leader keeps progress");
  }
  if (role_ == Role::kCandidate && vote_ != cfg_.id)
    return fail("candidate did not vote for itself");
  checked_term_ = term_;
  checked_vote_ = vote_;
  checked_commit_ = commit;
  return Status::ok();
}

}  // namespace raftd::raft
