// NodeImpl, continued: compaction of each group's log behind what its application made durable,
// and snapshots (doc/node.md "Compaction" and "Snapshots").
#include <fmt/format.h>

#include <algorithm>

#include "node/node_impl.h"
#include "raftd/base/assert.h"
#include "raftd/base/log.h"

namespace raftd::node {

namespace {

// Groups keeping the oldest WAL segment are compacted (behind their app, with no tail) once the
// WAL holds more than this many segments, checked at most this often: an idle group's few old
// entries must not keep every later segment on disk while other groups write.
constexpr size_t kPinnedSegmentsMax = 2;
constexpr auto kPinCheckEvery = std::chrono::milliseconds(1000);
// A failed snapshot send is tried again after this long, doubling per failure up to the max: a
// follower's node coming back is served within a second, a broken app costs a try per 30 s.
constexpr io::Duration kSendRetryMin = std::chrono::milliseconds(500);
constexpr io::Duration kSendRetryMax = std::chrono::seconds(30);

}  // namespace

Status NodeImpl::open_snapshots() {
  auto cm = ConfMarks::open(cfg_.node.data_dir + "/conf-marks");
  if (!cm) return cm.status();
  conf_marks_ = std::move(*cm);
  host_->set_conf_marks(conf_marks_.get());
  // Records of groups whose log is gone, and records below what a durable mark still needs.
  std::map<GroupId, LogIndex> marks;
  for (GroupId g : wal_->groups()) {
    auto info = wal_->group(g);
    if (info && info->mark.index != LogIndex(0)) marks[g] = info->mark.index;
  }
  for (const auto& [g, recs] : conf_marks_->records()) {
    if (!marks.contains(g) && wal_->group(g)) marks[g] = LogIndex(0);
  }
  return conf_marks_->prune(marks);
}

// What the application made durable for g: its UpdateEntries answers, or with app.sync its Sync
// answers (API.md 3.1).
LogIndex NodeImpl::app_durable(GroupId g) const {
  const auto& m = cfg_.app.sync ? synced_ : applied_;
  auto it = m.find(g);
  return it == m.end() ? LogIndex(0) : it->second;
}

void NodeImpl::with_durable(GroupId g, std::function<void(LogIndex)> then) {
  if (!cfg_.app.sync) return then(app_durable(g));
  app_->sync(g, [this, g, then = std::move(then)](LogIndex durable) {
    LogIndex& s = synced_[g];
    s = std::max(s, durable);
    then(s);
  });
}

bool NodeImpl::compact_to(GroupId g, LogIndex index, std::string_view why) {
  const LogIndex before = host_->compacted_index(g);
  auto r = host_->compact(g, index);
  if (!r) {
    log::warn("group {}: compaction to {} ({}): {}", g.value(), index.value(), why,
              r.status().to_string());
    return false;
  }
  if (*r > before) {
    log_bytes_[g] = 0;
    log::debug("group {}: log compacted to {} ({})", g.value(), r->value(), why);
  }
  return true;
}

// After each acknowledged batch: compact when the log holds more than snapshot.entries durable
// entries beyond the tail, or snapshot.bytes were appended since the last compaction.
void NodeImpl::maybe_compact(GroupId g) {
  if (g == GroupId(0) || compacting_.contains(g) || !host_->hosts(g)) return;
  const auto& sc = cfg_.snapshot;
  const uint64_t mark = host_->compacted_index(g).value();
  const uint64_t applied = applied_[g].value();
  if (applied <= mark + sc.tail) return;
  const uint64_t behind = applied - mark;
  const bool by_count = sc.entries > 0 && behind >= sc.entries + sc.tail;
  const bool by_bytes = sc.bytes > 0 && log_bytes_[g] >= sc.bytes;
  if (!by_count && !by_bytes) return;
  compacting_.insert(g);
  with_durable(g, [this, g](LogIndex durable) {
    compacting_.erase(g);
    if (!host_->hosts(g) || durable.value() <= cfg_.snapshot.tail) return;
    compact_to(g, LogIndex(durable.value() - cfg_.snapshot.tail), "threshold");
  });
}

// Groups whose live entries keep the oldest WAL segment are compacted behind their app, so that
// the segment can go (the meta group is copied forward instead: node_driver.cc).
// With both thresholds 0 there is no automatic compaction at all (only the API's), this neither.
void NodeImpl::compact_pinning() {
  if (cfg_.snapshot.entries == 0 && cfg_.snapshot.bytes == 0) return;
  const io::TimePoint now = io::Reactor::now();
  if (now - pins_checked_ < kPinCheckEvery) return;
  pins_checked_ = now;
  if (wal_->segment_sequences().size() <= kPinnedSegmentsMax) return;
  for (const wal::PinningGroup& p : wal_->pinning_groups()) {
    const GroupId g = p.group;
    if (g == GroupId(0) || compacting_.contains(g) || !host_->hosts(g)) continue;
    if (app_durable(g) < p.first_index && !cfg_.app.sync) continue;  // the app is behind
    compacting_.insert(g);
    with_durable(g, [this, g](LogIndex durable) {
      compacting_.erase(g);
      if (host_->hosts(g)) compact_to(g, durable, "oldest WAL segment");
    });
  }
}

// POST /v1/groups/{id}/snapshot: this node's log of g, compacted up to what its app made durable,
// with no tail (API.md section 2).
void NodeImpl::api_snapshot(http::Exchange& ex, GroupId g) {
  if (ex.request().method != "POST") {
    return respond_error(ex, 405, "method_not_allowed", "use POST");
  }
  if (g == GroupId(0) || !host_->hosts(g)) {
    return respond_error(ex, 404, "unknown_group", "this node hosts no such group");
  }
  const uint64_t rid = next_request_++;
  add_waiter(ex, g, rid);
  with_durable(g, [this, g, rid](LogIndex durable) {
    if (!waiters_.contains(rid)) return;  // the client left or the request timed out
    // The log is compacted no further than the commit index of the last durable hard state,
    // which a lazy commit (raft.h) may leave behind the app until the next write or tick: the
    // lazy hard states are written at this turn's end and the compaction waits for them.
    snapshot_requests_.push_back({rid, g, durable});
    lazy_flush_due_ = true;
  });
}

// POST /snapshot requests whose app-durable index the group's durable commit has reached (or
// that can go no further): compacted and answered. Called at every turn's end.
void NodeImpl::finish_snapshot_requests() {
  std::erase_if(snapshot_requests_, [this](const SnapshotRequest& q) {
    if (!waiters_.contains(q.rid)) return true;  // the client left or the request timed out
    if (!host_->hosts(q.group)) {
      fail_waiter(q.rid, 404, "unknown_group", "the group is gone");
      return true;
    }
    const raft::Group* grp = host_->group(q.group);
    const LogIndex target = std::min(q.durable, grp->commit_index());
    if (host_->durable_commit(q.group) < target) {
      lazy_flush_due_ = true;
      return false;
    }
    if (host_->installing(q.group)) {
      fail_waiter(q.rid, 503, "unavailable", "a snapshot from the leader is being installed");
    } else if (!compact_to(q.group, q.durable, "request")) {
      fail_waiter(q.rid, 503, "unavailable", "the compaction failed (see the node's log)");
    } else {
      finish_waiter(q.rid, 200, group_status_json(q.group), "application/json",
                    host_->compacted_index(q.group));
    }
    return true;
  });
}

void NodeImpl::forget_snapshots(GroupId g) {
  synced_.erase(g);
  log_bytes_.erase(g);
  compacting_.erase(g);
  for (auto it = sends_.lower_bound({g, NodeId(0)}); it != sends_.end() && it->first.first == g;) {
    if (it->second.started) {
      if (it->second.save != 0) app_->cancel_save(it->second.save);
      if (it->second.transfer != 0) sender_->cancel(it->second.transfer);
      --sends_active_;
    }
    it = sends_.erase(it);
  }
  std::erase_if(send_queue_, [g](const auto& q) { return q.first == g; });
  std::erase_if(send_backoff_, [g](const auto& b) { return b.first.first == g; });
  if (receiver_) receiver_->remove(g);
  start_next_send();
}

// ---- snapshot streams ----------------------------------------------------------------------

Status NodeImpl::open_snapshot_streams() {
  http::ClientOptions co;
  // A receiver pauses the body while it writes and fdatasyncs at the end; a peer silent for
  // this long is gone.
  co.response_timeout_ms = 30'000;
  sender_ = std::make_unique<SnapshotSender>(*reactor_, co);
  ReceiverOptions ro;
  ro.dir = cfg_.node.data_dir + "/snapshots";
  ro.cluster_id = cluster_.cluster_id;
  ro.self = self_;
  ro.concurrent_max = cfg_.snapshot.receives_max;
  ro.accept = [this](const SnapshotId& id, NodeId from) { return accept_snapshot(id, from); };
  ro.on_received = [](const SnapshotId& id, const std::string& path, uint64_t bytes) {
    (void)path;
    log::info("group {}: received a snapshot at index {} ({} bytes); waiting for the leader",
              id.group.value(), id.index.value(), bytes);
  };
  auto r = SnapshotReceiver::open(*reactor_, std::move(ro));
  if (!r) return r.status();
  receiver_ = std::move(*r);
  return Status::ok();
}

// A leader offers a snapshot of g: taken only for a group this node hosts (or is about to: the
// meta state says it hosts it), and only when it is ahead of this replica's commit index.
Status NodeImpl::accept_snapshot(const SnapshotId& id, NodeId from) {
  if (stopping_) return Status(Code::kUnavailable, "the node is shutting down");
  const GroupInfo* info = meta_.group(id.group);
  if (id.group == GroupId(0) || info == nullptr || !info->hosted_by(self_)) {
    return Status(Code::kNotFound,
                  fmt::format("node {} does not host group {}", self_.value(), id.group.value()));
  }
  const raft::Group* grp = host_->group(id.group);
  if (grp == nullptr) return Status(Code::kUnavailable, "the group is starting on this node");
  if (grp->commit_index() >= id.index) {
    return Status(Code::kAlreadyExists,
                  fmt::format("group {}: this replica has committed {} already (snapshot at {})",
                              id.group.value(), grp->commit_index().value(), id.index.value()));
  }
  (void)from;
  return Status::ok();
}

bool NodeImpl::on_snapshot_request(GroupId g, NodeId to) {
  if (stopping_ || g == GroupId(0)) return false;
  const auto key = std::make_pair(g, to);
  if (sends_.contains(key)) return true;  // under way or queued: the core waits for it
  // After a failure the next try waits (the core asks at every heartbeat answer): an app that
  // cannot make snapshots, or a follower that refuses them, costs a try per backoff, not a storm.
  if (auto b = send_backoff_.find(key);
      b != send_backoff_.end() && io::Reactor::now() < b->second.first) {
    return false;
  }
  sends_.emplace(key, Outgoing{});
  send_queue_.push_back(key);
  start_next_send();
  return true;
}

// At most snapshot.sends_max streams at once, and one per follower node (a follower that lost
// many groups gets them one after another, each at full speed, not all at once).
void NodeImpl::start_next_send() {
  for (auto q = send_queue_.begin();
       sends_active_ < cfg_.snapshot.sends_max && q != send_queue_.end();) {
    const auto [g, to] = *q;
    auto it = sends_.find({g, to});
    if (it == sends_.end()) {
      q = send_queue_.erase(q);
      continue;
    }
    const bool busy = std::any_of(sends_.begin(), sends_.end(), [to = to](const auto& s) {
      return s.first.second == to && s.second.started;
    });
    if (busy) {
      ++q;
      continue;
    }
    q = send_queue_.erase(q);
    it->second.started = true;
    it->second.since = io::Reactor::now();
    ++sends_active_;
    start_send(g, to);
  }
}

// PrepareSnapshot on this node's app (in the group's FIFO: the app's state is exactly at the
// index it names), then its SaveSnapshot answer streamed to the follower's node as it arrives.
void NodeImpl::start_send(GroupId g, NodeId to) {
  app_->prepare_snapshot(g, [this, g, to](Result<app::SnapshotContext> ctx) {
    auto it = sends_.find({g, to});
    if (it == sends_.end()) return;
    if (!ctx) return finish_send(g, to, ctx.status());
    raft::Group* grp = host_->group(g);
    if (grp == nullptr || grp->role() != raft::Role::kLeader) {
      return finish_send(g, to, Status(Code::kAborted, "no longer the group's leader"));
    }
    auto meta = grp->snapshot_meta_at(ctx->index);
    if (!meta) return finish_send(g, to, meta.status());
    const NodeInfo* peer = meta_.node(to);
    auto addr = peer ? peer_of(*peer) : Result<transport::Peer>(Status(Code::kNotFound, "node"));
    if (!addr) return finish_send(g, to, addr.status());
    it->second.meta = *meta;
    log::info("group {}: sending a snapshot at index {} to node {}", g.value(), meta->index.value(),
              to.value());
    SendTarget target{self_, to, cluster_.cluster_id, addr->host, addr->port};
    const SnapshotId id{g, meta->index, meta->term};
    it->second.transfer = sender_->start(
        target, id,
        [this, g, to] {
          if (auto s = sends_.find({g, to}); s != sends_.end() && s->second.save != 0) {
            app_->resume_save(s->second.save);
          }
        },
        [this, g, to](Status st) {
          if (auto s = sends_.find({g, to}); s != sends_.end()) {
            s->second.transfer = 0;
            if (s->second.save != 0) app_->cancel_save(s->second.save);
            s->second.save = 0;
          }
          finish_send(g, to, st);
        });
    const SnapshotSender::TransferId transfer = it->second.transfer;
    it->second.save = app_->save_snapshot(
        g, std::move(ctx->context),
        [this, transfer](std::string_view piece) { return sender_->push(transfer, piece); },
        [this, g, to, transfer](Status st) {
          if (auto s = sends_.find({g, to}); s != sends_.end()) s->second.save = 0;
          sender_->finish(transfer, st);  // ignored when the transfer is over
        });
  });
}

void NodeImpl::finish_send(GroupId g, NodeId to, const Status& status) {
  auto it = sends_.find({g, to});
  if (it == sends_.end()) return;
  const Outgoing o = it->second;
  sends_.erase(it);
  if (o.started) --sends_active_;
  raft::Group* grp = host_->group(g);
  const double secs = std::chrono::duration<double>(io::Reactor::now() - o.since).count();
  if (status.is_ok()) {
    send_backoff_.erase({g, to});
    ++snapshots_sent_;
    log::info("group {}: snapshot at index {} delivered to node {} in {:.1f} s", g.value(),
              o.meta.index.value(), to.value(), secs);
    if (grp != nullptr) {
      grp->send_snapshot(to, raft::Snapshot{o.meta, {}});
      grp->report_snapshot(to, true);
    }
  } else {
    ++snapshots_send_failed_;
    auto& [next, delay] = send_backoff_[{g, to}];
    delay = std::clamp(delay * 2, kSendRetryMin, kSendRetryMax);
    next = io::Reactor::now() + delay;
    log::warn("group {}: snapshot to node {} failed after {:.1f} s: {}", g.value(), to.value(),
              secs, status.to_string());
    if (grp != nullptr) grp->report_snapshot(to, false);
  }
  if (grp != nullptr) host_->mark_dirty(g);
  start_next_send();
}

// ---- installing a snapshot from the leader -------------------------------------------------

// The leader's node streamed the snapshot here before it sent the core's message (it waits for
// the spooled file's 200), so the file is normally on disk. The app's pipeline for g is reset:
// what it still had queued belongs to the log the snapshot replaces.
bool NodeImpl::install_snapshot(GroupId g, const raft::SnapshotMeta& meta) {
  auto file = receiver_->find(SnapshotId{g, meta.index, meta.term});
  app_->drop_group(g);
  app_backlog_.erase(g);
  compacting_.erase(g);
  if (!file) {
    // Finished at the end of the turn (never from within this call, GroupHost's rule).
    installs_missing_.emplace_back(g, meta);
    return true;
  }
  log::info("group {}: installing the snapshot at index {} ({} bytes) in the application",
            g.value(), meta.index.value(), file->second);
  app_->recover_from_snapshot(g, meta.index, file->first,
                              [this, g, meta](Status st) { on_install_done(g, meta, st); });
  return true;
}

void NodeImpl::on_install_done(GroupId g, const raft::SnapshotMeta& meta, const Status& status) {
  if (!host_->installing(g)) return;
  if (status.is_ok()) {
    applied_[g] = meta.index;
    synced_[g] = meta.index;  // RecoverFromSnapshot is durable (API.md section 3)
    log_bytes_[g] = 0;
    keys_.cut(g, meta.index + 1);  // the log after the snapshot's index is replaced
    receiver_->remove(g);
    log::info("group {}: snapshot at index {} installed", g.value(), meta.index.value());
    serve_ready_reads(g);
  }
  host_->finish_install(g, status);
}

// Installs whose file was missing, finished at the end of the turn that started them.
void NodeImpl::finish_missing_installs() {
  std::vector<std::pair<GroupId, raft::SnapshotMeta>> missing;
  missing.swap(installs_missing_);
  for (const auto& [g, meta] : missing) {
    on_install_done(g, meta,
                    Status(Code::kNotFound, "no spooled snapshot file for this index and term"));
  }
}

SnapshotMetrics NodeImpl::snapshot_metrics() const {
  SnapshotMetrics m;
  m.sent = snapshots_sent_;
  m.send_failed = snapshots_send_failed_;
  m.bytes_sent = sender_->stats().bytes;
  m.received = receiver_->stats().received;
  m.receive_failed = receiver_->stats().failed;
  m.bytes_received = receiver_->stats().bytes;
  m.installed = host_->stats().snapshots_installed;
  m.install_failed = host_->stats().snapshot_installs_failed;
  m.compactions = host_->stats().compactions;
  return m;
}

void NodeImpl::on_install_failed(GroupId g, const raft::SnapshotMeta& meta, const Status& why) {
  log::warn("group {}: the snapshot at index {} was not installed ({}); restarting the group",
            g.value(), meta.index.value(), why.to_string());
  // The replica is gone (GroupHost removed it); its log and the app's state are as they were.
  // Waiting clients stay: they are answered if their entries are applied after the restart.
  app_->drop_group(g);
  app_backlog_.erase(g);
  applied_.erase(g);
  synced_.erase(g);
  compacting_.erase(g);
  const GroupInfo* info = meta_.group(g);
  if (info != nullptr && info->hosted_by(self_)) start_group(g);
}

}  // namespace raftd::node
