#include "raftd/node/group_host.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "raftd/base/assert.h"
#include "raftd/base/lazy_deque.h"
#include "raftd/base/log.h"
#include "raftd/wal/format.h"

namespace raftd::node {
namespace {

raft::Entry to_raft(wal::Entry&& e) {
  return raft::Entry{e.term, e.index, static_cast<raft::EntryType>(e.type), std::move(e.data)};
}

wal::HardState to_wal(const raft::HardState& h) { return wal::HardState{h.term, h.vote, h.commit}; }

raft::HardState to_raft(const wal::HardState& h) {
  return raft::HardState{h.term, h.vote, h.commit};
}

// LogStorage over the WAL's view of one group. The WAL's view includes staged records, which is
// a superset of what on_persisted confirmed: the core only reads indexes it knows are stored.
class WalStorage final : public raft::LogStorage {
 public:
  WalStorage(wal::Wal& wal, GroupId g) : wal_(wal), group_(g) {}

  LogIndex first_index() const override {
    auto info = wal_.group(group_);
    return info ? info->mark.index + 1 : LogIndex(1);
  }
  LogIndex last_index() const override {
    auto info = wal_.group(group_);
    return info ? info->last_index : LogIndex(0);
  }
  Result<Term> term(LogIndex i) const override {
    if (auto t = wal_.term(group_, i)) return *t;
    if (i == LogIndex(0)) return Term(0);
    if (i < first_index()) return Status(Code::kNotFound, "compacted");
    return Status(Code::kInvalidArgument,
                  fmt::format("no entry {} in group {}", i.value(), group_.value()));
  }
  Status entries(LogIndex lo, LogIndex hi, uint64_t max_bytes,
                 std::vector<raft::Entry>* out) const override {
    auto r = wal_.read(group_, lo, hi, max_bytes);
    if (!r) return r.status();
    for (wal::Entry& e : r.value()) out->push_back(to_raft(std::move(e)));
    return Status::ok();
  }

 private:
  wal::Wal& wal_;
  GroupId group_;
};

}  // namespace

// What a drained Ready still owes once its WAL batch is durable.
struct GroupHost::Pending {
  uint64_t batch = 0;  // durable once Wal::durable_batch() >= batch
  std::vector<raft::Message> after_persist;
  std::optional<std::pair<LogIndex, Term>> persisted;  // last entry of the Ready
  std::optional<raft::SnapshotMeta> snapshot;          // installed by the Ready
};

struct GroupHost::Hosted {
  Hosted(wal::Wal& wal, GroupId g, raft::ConfState initial_conf)
      : storage(wal, g), initial(std::move(initial_conf)) {}
  WalStorage storage;
  raft::ConfState initial;
  std::optional<raft::Group> group;
  LazyDeque<Pending> pending;  // nothing allocated while empty, as it nearly always is
  bool dirty = false;
  bool waiting = false;  // listed in GroupHost::waiting_
  bool awake = false;    // listed in awake_: ticked until seen quiesced with nothing to do
  uint64_t ticked = 0;   // the last GroupHost tick that ticked it
  // Commit index of the last durable hard state (compaction stays at or below it).
  LogIndex durable_commit;
  // A Ready carrying a snapshot, held while the driver installs it; install_result is set by
  // finish_install and consumed by the next drain. On the heap: a Ready is 360 bytes and is
  // held rarely, while every one of thousands of idle groups would carry it inline.
  std::unique_ptr<raft::Ready> held;
  std::optional<Status> install_result;
  bool snapshot_staged = false;  // the held Ready's snapshot is in the WAL already
  size_t entries_staged = 0;     // of the held Ready's entries, staged so far
  Commit commit = Commit::kLazy;
};

// raft.h "Lazy commit": the core says when a Ready's hard state may wait; the group says whether
// it lets it.
wal::Wal::Urgency GroupHost::urgency(const Hosted& h, const raft::Ready& rd) {
  const bool lazy = rd.hard_state_lazy && h.commit == Commit::kLazy;
  return lazy ? wal::Wal::Urgency::kLazy : wal::Wal::Urgency::kNow;
}

GroupHost::GroupHost(wal::Wal& wal, const raft::Config& config, Driver& driver)
    : wal_(wal), config_(config), driver_(driver) {}

GroupHost::~GroupHost() = default;

Status GroupHost::add_group(GroupId g, const raft::ConfState& initial, LogIndex app_applied,
                            Commit commit) {
  if (groups_.contains(g)) return Status(Code::kAlreadyExists, fmt::format("group {}", g.value()));
  auto h = std::make_unique<Hosted>(wal_, g, initial);
  h->commit = commit;
  if (Status s = start_replica(g, *h, app_applied); !s.is_ok()) return s;
  h->dirty = true;
  dirty_.push_back(g);
  wake_up(g, *h);
  groups_.emplace(g, std::move(h));
  return Status::ok();
}

Status GroupHost::start_replica(GroupId g, Hosted& h, LogIndex app_applied) {
  raft::Config c = config_;
  c.group = g;
  // Distinct per node and group, so replicas of one group do not time out in lockstep.
  c.random_seed = config_.random_seed ^ (g.value() * 0x9E3779B97F4A7C15ull) ^ c.id.value();
  if (Status s = c.validate(); !s.is_ok()) return s;
  raft::BootState boot{{}, raft::SnapshotMeta{LogIndex(0), Term(0), h.initial}, LogIndex(0)};
  if (auto info = wal_.group(g)) {
    boot.hard_state = to_raft(info->hard);
    if (boot.hard_state.commit > info->last_index) {
      return Status(Code::kCorruption,
                    fmt::format("group {}: commit {} beyond last index {}", g.value(),
                                boot.hard_state.commit.value(), info->last_index.value()));
    }
    boot.applied = std::min(app_applied, boot.hard_state.commit);
    if (info->mark.index != LogIndex(0)) {
      std::optional<raft::ConfState> conf;
      if (conf_marks_ != nullptr) conf = conf_marks_->at(g, info->mark.index);
      boot.snapshot = raft::SnapshotMeta{info->mark.index, info->mark.term,
                                         conf ? std::move(*conf) : h.initial};
      if (app_applied < info->mark.index) {
        return Status(Code::kAborted,
                      fmt::format("group {}: the application's last index {} is below the "
                                  "compacted log (entries up to {} are gone): it lost state "
                                  "raftd made it durable with",
                                  g.value(), app_applied.value(), info->mark.index.value()));
      }
      boot.applied = std::max(boot.applied, info->mark.index);
    }
    h.durable_commit = info->hard.commit;
  }
  h.group.emplace(c, h.storage, boot);
  return Status::ok();
}

void GroupHost::remove_group(GroupId g) {
  groups_.erase(g);
  std::erase(waiting_, g);
  stalled_.erase(g);
}

std::vector<GroupId> GroupHost::group_ids() const {
  std::vector<GroupId> ids;
  ids.reserve(groups_.size());
  for (const auto& [g, h] : groups_) ids.push_back(g);
  std::sort(ids.begin(), ids.end());
  return ids;
}

raft::Group* GroupHost::group(GroupId g) {
  auto it = groups_.find(g);
  return it == groups_.end() ? nullptr : &*it->second->group;
}

const raft::Group* GroupHost::group(GroupId g) const {
  auto it = groups_.find(g);
  return it == groups_.end() ? nullptr : &*it->second->group;
}

void GroupHost::mark_dirty(GroupId g) {
  auto it = groups_.find(g);
  if (it == groups_.end()) return;
  wake_up(g, *it->second);
  if (it->second->dirty) return;
  it->second->dirty = true;
  dirty_.push_back(g);
}

bool GroupHost::installing(GroupId g) const {
  auto it = groups_.find(g);
  if (it == groups_.end()) return false;
  const Hosted& h = *it->second;
  return h.held && h.held->snapshot && !h.snapshot_staged;
}

LogIndex GroupHost::durable_commit(GroupId g) const {
  auto it = groups_.find(g);
  return it == groups_.end() ? LogIndex(0) : it->second->durable_commit;
}

LogIndex GroupHost::compacted_index(GroupId g) const {
  if (!groups_.contains(g)) return LogIndex(0);
  auto info = wal_.group(g);
  return info ? info->mark.index : LogIndex(0);
}

Result<LogIndex> GroupHost::compact(GroupId g, LogIndex index) {
  auto it = groups_.find(g);
  if (it == groups_.end()) {
    return Status(Code::kNotFound, fmt::format("group {} not hosted", g.value()));
  }
  Hosted& h = *it->second;
  if (h.held) {
    return Status(
        Code::kUnavailable,
        fmt::format("group {}: a Ready is being staged or a snapshot installed", g.value()));
  }
  const LogIndex mark = compacted_index(g);
  index = std::min({index, h.group->applied_index(), h.group->persisted_index(), h.durable_commit});
  if (index <= mark) return mark;
  auto meta = h.group->snapshot_meta_at(index);
  if (!meta.is_ok()) return meta.status();
  // The configuration first: once the WAL's mark is durable, a restart needs it.
  if (conf_marks_ == nullptr) {
    return Status(Code::kInvalidArgument, "group host: no configuration marks");
  }
  if (Status s = conf_marks_->record(g, meta.value(), h.initial); !s.is_ok()) return s;
  auto done = h.group->compact(index);
  if (!done.is_ok()) return done.status();
  Status s = wal_.compact(g, index, done.value().term);
  RAFTD_ASSERT(s.is_ok(), "WAL refused a compaction the core accepted");
  ++stats_.compactions;
  return index;
}

void GroupHost::finish_install(GroupId g, const Status& status) {
  auto it = groups_.find(g);
  if (!installing(g) || it->second->install_result) return;
  it->second->install_result = status;
  mark_dirty(g);
}

void GroupHost::wake_up(GroupId g, Hosted& h) {
  if (h.awake) return;
  h.awake = true;
  awake_.push_back(g);
}

void GroupHost::tick() {
  ++ticks_;
  size_t keep = 0;
  for (size_t i = 0; i < awake_.size(); ++i) {
    const GroupId g = awake_[i];
    auto it = groups_.find(g);
    if (it == groups_.end()) continue;  // removed
    Hosted& h = *it->second;
    if (h.ticked == ticks_) continue;  // listed twice
    h.ticked = ticks_;
    h.group->tick();
    ++stats_.groups_ticked;
    if (!h.dirty && h.group->has_ready()) {
      h.dirty = true;
      dirty_.push_back(g);
    }
    if (h.group->quiesced() && !h.dirty) {
      h.awake = false;  // asleep until an input wakes it (mark_dirty, step)
      continue;
    }
    awake_[keep++] = g;
  }
  awake_.resize(keep);
  if (ticks_ % kSleeperSweepTicks == 0) sweep_sleepers();
}

void GroupHost::sweep_sleepers() {
  for (auto& [g, h] : groups_) {
    if (h->awake) continue;
    const bool ready = h->group->has_ready();
    if (!ready && h->group->quiesced()) continue;
    ++stats_.sleepers_woken;
    mark_dirty(g);
  }
}

void GroupHost::step(const raft::Message& m) {
  raft::Group* grp = group(m.group);
  if (grp == nullptr) {
    ++stats_.dropped_messages;
    return;
  }
  // An entry this node's WAL cannot hold as one record (a leader configured with a larger
  // wal.batch_bytes_max than this node) would stop the node when staged: the message is dropped
  // and counted instead, and the operator told; the group lags here until the configs agree.
  const uint64_t record_max = wal_.batch_bytes_max() - wal::kFrameHeaderBytes -
                              wal::kEntriesBlockBytes - wal::kEntryHeaderBytes;
  for (const raft::Entry& e : m.entries) {
    if (e.data.size() > record_max) {
      if (stats_.oversized_dropped++ % 1000 == 0) {
        log::error(
            "group {}: node {} sent an entry of {} bytes, over this node's WAL record "
            "limit of {} (wal.batch_bytes_max); dropped: raise wal.batch_bytes_max here",
            m.group.value(), m.from.value(), e.data.size(), record_max);
      }
      return;
    }
  }
  grp->step(m);
  mark_dirty(m.group);
}

Result<LogIndex> GroupHost::propose(GroupId g, std::string data) {
  raft::Group* grp = group(g);
  if (grp == nullptr) return Status(Code::kNotFound, fmt::format("group {} not hosted", g.value()));
  auto r = grp->propose(std::move(data));
  mark_dirty(g);
  return r;
}

Status GroupHost::read_index(GroupId g, uint64_t request_id) {
  raft::Group* grp = group(g);
  if (grp == nullptr) return Status(Code::kNotFound, fmt::format("group {} not hosted", g.value()));
  Status s = grp->read_index(request_id);
  mark_dirty(g);
  return s;
}

bool GroupHost::wal_has_room() const {
  return wal_.queued_batch_count() + kWalRoomBatches <= wal_.queued_batches_max();
}

void GroupHost::process() {
  // Groups dirtied while draining (a driver callback proposing, say) are drained next turn.
  std::vector<GroupId> work;
  work.swap(dirty_);
  size_t i = 0;
  for (; i < work.size(); ++i) {
    if (!wal_has_room()) break;
    auto it = groups_.find(work[i]);
    if (it == groups_.end()) continue;
    it->second->dirty = false;
    drain(work[i], *it->second);
  }
  if (i < work.size()) {
    ++stats_.wal_waits;
    dirty_.insert(dirty_.end(), work.begin() + static_cast<ptrdiff_t>(i), work.end());
  }
}

void GroupHost::drain(GroupId g, Hosted& h) {
  if (h.held) {
    if (h.held->snapshot && !h.snapshot_staged) {
      if (!h.install_result) return;  // the driver is still installing the snapshot
      Status result = *h.install_result;
      h.install_result.reset();
      if (result.is_ok()) result = stage_snapshot(g, h, h.held->snapshot->meta);
      if (!result.is_ok()) {
        // The replica goes; the driver takes the group up again from what the WAL and the
        // application hold, and the leader sends the snapshot again.
        ++stats_.snapshot_installs_failed;
        const raft::SnapshotMeta meta = h.held->snapshot->meta;
        remove_group(g);
        driver_.on_install_failed(g, meta, result);
        return;
      }
      ++stats_.snapshots_installed;
      h.snapshot_staged = true;
    }
    raft::Ready rd = std::move(*h.held);
    h.held.reset();  // before finish_ready, which may hold rd again
    if (!finish_ready(g, h, rd)) return;
    if (!groups_.contains(g)) return;
  }
  // The message lists of the Readys trade buffers with the core (Group::ready(Ready*)) and
  // go back to spare_ when the drain ends, so steady traffic allocates none. A drain entered
  // again from a driver callback finds spare_ empty and merely allocates (what it gives back
  // is then replaced by ours).
  raft::Ready rd;
  rd.messages.swap(spare_.messages);
  rd.messages_after_persist.swap(spare_.after_persist);
  struct GiveBack {
    raft::Ready& rd;
    Spare& spare;
    ~GiveBack() {
      rd.messages.clear();
      rd.messages_after_persist.clear();
      spare.messages.swap(rd.messages);
      spare.after_persist.swap(rd.messages_after_persist);
    }
  } give_back{rd, spare_};
  while (h.group->has_ready()) {
    h.group->ready(&rd);
    ++stats_.readies;
    for (raft::Message& m : rd.messages) deliver(g, h, std::move(m));
    for (NodeId to : rd.snapshot_requests) {
      if (!driver_.on_snapshot_request(g, to)) h.group->report_snapshot(to, false);
    }
    if (rd.snapshot) {
      if (!driver_.install_snapshot(g, rd.snapshot->meta)) {
        // Nothing of this Ready is staged and the replica stops here (the WAL keeps what it
        // had); the driver reports it.
        driver_.on_snapshot_refused(g, rd.snapshot->meta);
        remove_group(g);
        return;
      }
      h.snapshot_staged = false;
      h.held = std::make_unique<raft::Ready>(std::move(rd));
      return;
    }
    if (!finish_ready(g, h, rd)) return;
    if (!groups_.contains(g)) return;  // the driver removed the group while applying
  }
}

Status GroupHost::stage_snapshot(GroupId g, Hosted& h, const raft::SnapshotMeta& meta) {
  if (conf_marks_ == nullptr) {
    return Status(Code::kInvalidArgument, "group host: no configuration marks");
  }
  if (Status s = conf_marks_->record(g, meta, h.initial); !s.is_ok()) return s;
  // The snapshot replaces the whole log: whatever this replica held past its old compaction
  // point goes (it may conflict with the snapshot's entry at meta.index), then the log restarts
  // empty after meta.index.
  if (auto info = wal_.group(g); info && info->last_index > info->mark.index) {
    Status s = wal_.truncate(g, info->mark.index + 1);
    RAFTD_ASSERT(s.is_ok(), "WAL refused to truncate a group's live log");
  }
  Status s = wal_.compact(g, meta.index, meta.term);
  RAFTD_ASSERT(s.is_ok(), "WAL refused a snapshot's compaction mark");
  return Status::ok();
}

bool GroupHost::finish_ready(GroupId g, Hosted& h, raft::Ready& rd) {
  if (!stage(g, h, rd)) {
    // The WAL's queue is full: the Ready waits, partly staged, for a batch to become durable.
    ++stats_.stage_waits;
    h.held = std::make_unique<raft::Ready>(std::move(rd));
    stalled_.insert(g);
    return false;
  }
  stalled_.erase(g);
  h.snapshot_staged = false;
  if (!rd.entries.empty()) driver_.on_log_entries(g, rd.entries);
  if (rd.soft_state) driver_.on_soft_state(g, *rd.soft_state);
  Pending p;
  // What the Ready staged, and every earlier Ready's records, except lazy hard states: nothing
  // waits for those (raft.h), and they may sit in the open batch until a later write or tick.
  p.batch = wal_.urgent_batch();
  if (!rd.messages_after_persist.empty()) {
    // The list waits in p; rd takes a spare one (if any) for the next Ready.
    p.after_persist.swap(rd.messages_after_persist);
    if (!spare_.lists.empty()) {
      rd.messages_after_persist.swap(spare_.lists.back());
      spare_.lists.pop_back();
    }
  }
  if (!rd.entries.empty()) p.persisted = {rd.entries.back().index, rd.entries.back().term};
  if (rd.snapshot) p.snapshot = rd.snapshot->meta;
  // advance() counts rd.committed_entries as applied (and applies configuration changes in
  // them): take them out only after it.
  h.group->advance(rd);
  std::vector<raft::Entry> committed = std::move(rd.committed_entries);
  std::vector<raft::ReadState> reads = std::move(rd.read_states);
  if (!p.after_persist.empty() || p.persisted || p.snapshot) {
    h.pending.push_back(std::move(p));
    if (!h.waiting) {
      h.waiting = true;
      waiting_.push_back(g);
    }
  }
  release(g, h);
  if (!committed.empty()) driver_.apply(g, std::move(committed));
  if (!reads.empty()) driver_.on_read_states(g, std::move(reads));
  return true;
}

// Stages what is left of rd's entries, then its hard state (entries first: raft.h). The entries
// go in pieces that each fit one WAL batch, so a Ready of any size can be written; when the WAL's
// queue is full the rest waits (h.entries_staged says how far it got) and false is returned.
bool GroupHost::stage(GroupId g, Hosted& h, const raft::Ready& rd) {
  const uint64_t record_max = wal_.batch_bytes_max() - wal::kFrameHeaderBytes;
  std::vector<wal::EntryView>& views = spare_.views;
  while (h.entries_staged < rd.entries.size()) {
    views.clear();
    uint64_t bytes = wal::kEntriesBlockBytes;
    for (size_t i = h.entries_staged; i < rd.entries.size(); ++i) {
      const raft::Entry& e = rd.entries[i];
      const uint64_t add = wal::kEntryHeaderBytes + ((e.data.size() + 7) & ~uint64_t(7));
      if (!views.empty() && bytes + add > record_max) break;
      bytes += add;
      views.push_back(
          wal::EntryView{e.term, static_cast<uint16_t>(e.type),
                         std::span<const std::byte>(
                             reinterpret_cast<const std::byte*>(e.data.data()), e.data.size())});
    }
    Status s = wal_.append(g, rd.entries[h.entries_staged].index, views);
    if (s.code() == Code::kUnavailable) return false;
    // Anything else means the core and the WAL disagree about the log (or an entry is larger
    // than this node's WAL takes), which no retry can mend.
    RAFTD_ASSERT(s.is_ok(), "WAL refused a Ready's entries");
    h.entries_staged += views.size();
  }
  if (rd.hard_state) {
    Status s = wal_.set_hard_state(g, to_wal(*rd.hard_state), urgency(h, rd));
    if (s.code() == Code::kUnavailable) return false;
    RAFTD_ASSERT(s.is_ok(), "WAL refused a Ready's hard state");
  }
  h.entries_staged = 0;
  return true;
}

void GroupHost::deliver(GroupId g, Hosted& h, raft::Message&& m) {
  if (m.to != config_.id) return driver_.send(std::move(m));
  h.group->step(m);
  mark_dirty(g);
}

void GroupHost::release(GroupId g, Hosted& h) {
  const uint64_t durable = wal_.durable_batch();
  while (!h.pending.empty() && h.pending.front().batch <= durable) {
    Pending p = std::move(h.pending.front());
    h.pending.pop_front();
    for (raft::Message& m : p.after_persist) deliver(g, h, std::move(m));
    if (p.after_persist.capacity() != 0 && p.after_persist.capacity() <= Spare::kMaxListMessages &&
        spare_.lists.size() < Spare::kMaxLists) {
      p.after_persist.clear();
      spare_.lists.push_back(std::move(p.after_persist));
    }
    if (p.persisted) h.group->on_persisted(p.persisted->first, p.persisted->second);
    if (p.snapshot) h.group->on_snapshot_installed(*p.snapshot);
  }
}

size_t GroupHost::groups_waiting() const {
  size_t n = 0;
  for (GroupId g : waiting_) {
    auto it = groups_.find(g);
    n += it != groups_.end() && !it->second->pending.empty();
  }
  return n;
}

void GroupHost::on_durable(std::span<const wal::Durable> durable) {
  for (const wal::Durable& d : durable) {
    auto g = groups_.find(d.group);
    if (g != groups_.end()) {
      g->second->durable_commit = std::max(g->second->durable_commit, d.hard.commit);
    }
  }
  // Readys that waited for room in the WAL's queue go on.
  for (GroupId g : stalled_) mark_dirty(g);
  // durable_batch() says the rest for every group, including untouched ones.
  // Compacted in place: the groups still waiting keep their order.
  size_t kept = 0;
  for (size_t i = 0; i < waiting_.size(); ++i) {
    const GroupId id = waiting_[i];
    auto g = groups_.find(id);
    if (g == groups_.end()) continue;
    Hosted& h = *g->second;
    release(id, h);
    if (h.group->has_ready()) mark_dirty(id);
    if (h.pending.empty()) {
      h.waiting = false;
    } else {
      waiting_[kept++] = id;
    }
  }
  waiting_.resize(kept);
}

}  // namespace raftd::node
