#include "raftd/node/group_host.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "raftd/base/assert.h"

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
};

struct GroupHost::Hosted {
  Hosted(wal::Wal& wal, GroupId g) : storage(wal, g) {}
  WalStorage storage;
  std::optional<raft::Group> group;
  std::deque<Pending> pending;
  bool dirty = false;
};

GroupHost::GroupHost(wal::Wal& wal, const raft::Config& config, Driver& driver)
    : wal_(wal), config_(config), driver_(driver) {}

GroupHost::~GroupHost() = default;

Status GroupHost::add_group(GroupId g, const raft::ConfState& initial, LogIndex app_applied) {
  if (groups_.contains(g)) return Status(Code::kAlreadyExists, fmt::format("group {}", g.value()));
  raft::Config c = config_;
  c.group = g;
  // Distinct per node and group, so replicas of one group do not time out in lockstep.
  c.random_seed = config_.random_seed ^ (g.value() * 0x9E3779B97F4A7C15ull) ^ c.id.value();
  if (Status s = c.validate(); !s.is_ok()) return s;
  raft::BootState boot{{}, raft::SnapshotMeta{LogIndex(0), Term(0), initial}, LogIndex(0)};
  if (auto info = wal_.group(g)) {
    if (info->mark.index != LogIndex(0)) {
      return Status(
          Code::kUnsupported,
          fmt::format("group {} has a compacted log (snapshots are not hosted yet)", g.value()));
    }
    boot.hard_state = to_raft(info->hard);
    if (boot.hard_state.commit > info->last_index) {
      return Status(Code::kCorruption,
                    fmt::format("group {}: commit {} beyond last index {}", g.value(),
                                boot.hard_state.commit.value(), info->last_index.value()));
    }
    boot.applied = std::min(app_applied, boot.hard_state.commit);
  }
  auto h = std::make_unique<Hosted>(wal_, g);
  h->group.emplace(c, h->storage, boot);
  h->dirty = true;
  dirty_.push_back(g);
  groups_.emplace(g, std::move(h));
  return Status::ok();
}

void GroupHost::remove_group(GroupId g) {
  groups_.erase(g);
  waiting_.erase(g);
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
  if (it == groups_.end() || it->second->dirty) return;
  it->second->dirty = true;
  dirty_.push_back(g);
}

void GroupHost::tick() {
  for (auto& [g, h] : groups_) {
    h->group->tick();
    if (!h->dirty && h->group->has_ready()) {
      h->dirty = true;
      dirty_.push_back(g);
    }
  }
}

void GroupHost::step(const raft::Message& m) {
  raft::Group* grp = group(m.group);
  if (grp == nullptr) {
    ++stats_.dropped_messages;
    return;
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
  while (h.group->has_ready()) {
    raft::Ready rd = h.group->ready();
    ++stats_.readies;
    for (raft::Message& m : rd.messages) deliver(g, h, std::move(m));
    if (rd.snapshot) {
      // Not hosted yet: nothing of this Ready is staged and the replica stops here (the WAL
      // keeps what it had); the driver reports it.
      driver_.on_snapshot_refused(g, rd.snapshot->meta);
      remove_group(g);
      return;
    }
    stage(g, rd);
    if (!rd.entries.empty()) driver_.on_log_entries(g, rd.entries);
    if (rd.soft_state) driver_.on_soft_state(g, *rd.soft_state);
    Pending p;
    p.batch = wal_.staged_batch();
    p.after_persist = std::move(rd.messages_after_persist);
    if (!rd.entries.empty()) p.persisted = {rd.entries.back().index, rd.entries.back().term};
    // advance() counts rd.committed_entries as applied (and applies configuration changes in
    // them): take them out only after it.
    h.group->advance(rd);
    std::vector<raft::Entry> committed = std::move(rd.committed_entries);
    std::vector<raft::ReadState> reads = std::move(rd.read_states);
    if (!p.after_persist.empty() || p.persisted) {
      h.pending.push_back(std::move(p));
      waiting_.insert(g);
    }
    release(g, h);
    if (!committed.empty()) driver_.apply(g, std::move(committed));
    if (!reads.empty()) driver_.on_read_states(g, std::move(reads));
    if (!groups_.contains(g)) return;  // the driver removed the group while applying
  }
}

void GroupHost::stage(GroupId g, const raft::Ready& rd) {
  if (!rd.entries.empty()) {
    std::vector<wal::EntryView> views;
    views.reserve(rd.entries.size());
    for (const raft::Entry& e : rd.entries) {
      views.push_back(
          wal::EntryView{e.term, static_cast<uint16_t>(e.type),
                         std::span<const std::byte>(
                             reinterpret_cast<const std::byte*>(e.data.data()), e.data.size())});
    }
    Status s = wal_.append(g, rd.entries.front().index, views);
    // The host checked for room, and the core's limits bound a Ready: a refusal here means the
    // core and the WAL disagree about the log, which no retry can mend.
    RAFTD_ASSERT(s.is_ok(), "WAL refused a Ready's entries");
  }
  if (rd.hard_state) {
    Status s = wal_.set_hard_state(g, to_wal(*rd.hard_state));
    RAFTD_ASSERT(s.is_ok(), "WAL refused a Ready's hard state");
  }
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
    if (p.persisted) h.group->on_persisted(p.persisted->first, p.persisted->second);
  }
}

void GroupHost::on_durable(std::span<const wal::Durable> durable) {
  (void)durable;  // durable_batch() says the same for every group, including untouched ones
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    auto g = groups_.find(*it);
    if (g == groups_.end()) {
      it = waiting_.erase(it);
      continue;
    }
    Hosted& h = *g->second;
    release(*it, h);
    if (h.group->has_ready()) mark_dirty(*it);
    it = h.pending.empty() ? waiting_.erase(it) : std::next(it);
  }
}

}  // namespace raftd::node
