// NodeImpl, continued: the network, the reactor turn, the Ready driver, the meta group and the
// application's results.
#include <fmt/format.h>
#include <malloc.h>

#include <algorithm>

#include "node/node_impl.h"
#include "raftd/base/assert.h"
#include "raftd/base/log.h"
#include "raftd/node/metrics.h"

namespace raftd::node {

namespace {

bool is_forward(const http::Exchange& ex) {
  const std::string& t = ex.request().target;
  return t.rfind(kForwardPath, 0) == 0 || t == kForwardBatchPath;
}

// A joining node's question (node_cluster.cc): answered from its headers; it has no body.
bool is_join(const http::Exchange& ex) { return ex.request().target == kJoinPath; }

}  // namespace

// Snapshot streams and the transport's message streams are both http::Handlers; forwarded
// proposals are the node's own.
http::Handler& PeerRouter::handler_of(const http::Exchange& ex) {
  // Asked for every chunk of every peer stream: compared in place, nothing built.
  const std::string_view target = ex.request().target;
  const std::string_view snapshot = kSnapshotPath;
  if (target.starts_with(snapshot) &&
      (target.size() == snapshot.size() || target[snapshot.size()] == '?')) {
    return n_.snapshot_receiver();
  }
  return n_.transport().handler();
}

void PeerRouter::on_headers(http::Exchange& ex) {
  if (is_join(ex)) return n_.join_request(ex);
  if (is_forward(ex)) return n_.forward_headers(ex);
  handler_of(ex).on_headers(ex);
}
http::Flow PeerRouter::on_body(http::Exchange& ex, std::string_view chunk) {
  if (is_join(ex)) return http::Flow::kContinue;
  if (is_forward(ex)) return n_.forward_body(ex, chunk);
  return handler_of(ex).on_body(ex, chunk);
}
void PeerRouter::on_end(http::Exchange& ex) {
  if (is_join(ex)) return;
  if (is_forward(ex)) return n_.forward_end(ex);
  handler_of(ex).on_end(ex);
}
void PeerRouter::on_drained(http::Exchange& ex) {
  if (!is_forward(ex) && !is_join(ex)) handler_of(ex).on_drained(ex);
}
void PeerRouter::on_aborted(http::Exchange& ex) {
  if (!is_forward(ex) && !is_join(ex)) handler_of(ex).on_aborted(ex);
}

Result<transport::Peer> peer_of(const NodeInfo& n) {
  size_t colon = n.peer.rfind(':');
  if (colon == std::string::npos) return Status(Code::kInvalidArgument, "bad peer " + n.peer);
  int port = std::atoi(n.peer.c_str() + colon + 1);
  if (port <= 0 || port > 65535) return Status(Code::kInvalidArgument, "bad peer " + n.peer);
  return transport::Peer{n.id, n.peer.substr(0, colon), static_cast<uint16_t>(port)};
}

Status NodeImpl::open_network() {
  // Turn-end hooks run in the order they were added, and the transport's and the HTTP clients'
  // hooks hand their output to the sockets: the node's hook (which drains Readys into them) must
  // come first, or a turn's messages would wait for whatever wakes the reactor next.
  hook_ = reactor_->add_turn_end_hook([this] { on_turn_end(); });
  transport::TransportOptions to;
  to.cluster_id = cluster_.cluster_id;
  to.self = self_;
  to.queue_bytes_max = cfg_.transport.queue_bytes_max;
  to.backoff_min_ms = cfg_.transport.reconnect_min_ms;
  to.backoff_max_ms = cfg_.transport.reconnect_max_ms;
  to.coalesce_heartbeats = cfg_.transport.coalesce_heartbeats;
  transport::TransportCallbacks cb;
  cb.on_messages = [this](std::span<raft::Message> ms) {
    for (const raft::Message& m : ms) host_->step(m);
  };
  cb.known_peer = [this](NodeId id) { return known_node(id); };
  cb.hosts_group = [this](GroupId g) { return host_->hosts(g); };
  cb.on_peer_state = [this](NodeId peer, bool reachable) {
    if (reachable) cluster_check_.heard_from_cluster();
    if (!reachable) on_peer_down(peer);
  };
  cb.on_peer_reconnected = [this](NodeId peer, bool restarted) {
    if (restarted) on_peer_down(peer);
  };
  // A node whose peers refuse it for another cluster id stops at start-up (doc/node.md "A node
  // of another cluster"): run() shuts down and returns the check's verdict.
  cb.on_refused = [this](NodeId peer, const transport::Refusal& r) {
    if (r.kind != transport::Refusal::Kind::kOtherCluster) return;
    if (transport_->stats().inbound_streams > 0) cluster_check_.heard_from_cluster();
    if (cluster_check_.refused(cluster_, peer, r.peer_cluster_id)) request_stop();
  };
  transport_ = std::make_unique<transport::Transport>(*reactor_, to, std::move(cb));
  update_peers();
  if (Status s = open_snapshot_streams(); !s.is_ok()) return s;

  app::AppOptions ao;
  ao.url = app::AppUrl{cfg_.app.url.host, cfg_.app.url.port, cfg_.app.url.base_path};
  ao.encoding = cfg_.app.encoding == config::AppEncoding::kJson ? app::Encoding::kJson
                                                                : app::Encoding::kBinary;
  ao.sync = cfg_.app.sync;
  ao.token = cfg_.app.token.value_or("");
  ao.call_timeout_ms = cfg_.app.timeout_ms;
  ao.recover_timeout_ms = cfg_.app.recover_timeout_ms;
  ao.retry_backoff_min_ms = cfg_.app.retry_min_ms;
  ao.retry_backoff_max_ms = cfg_.app.retry_max_ms;
  ao.batch_bytes_max = cfg_.app.batch_bytes_max;
  ao.batch_entries_max = cfg_.app.batch_entries_max;
  ao.queue_bytes_max = std::max<size_t>(ao.queue_bytes_max, ao.batch_bytes_max);
  ao.on_applied = [this](GroupId g, LogIndex last, std::vector<app::Record> results) {
    on_applied(g, last, std::move(results));
  };
  auto a = app::AppClient::create(*reactor_, std::move(ao));
  if (!a) return a.status();
  app_ = std::move(*a);

  if (!http_) http_ = std::make_unique<http::Client>(*reactor_, http::ClientOptions{});

  peer_router_ = std::make_unique<PeerRouter>(*this);
  http::ServerOptions po;
  po.host = cfg_.listen.peer.host;
  po.port = cfg_.listen.peer.port;
  transport::Transport::adjust_server_options(po);
  auto ps = http::Server::start(*reactor_, *peer_router_, po);
  if (!ps) return ps.status();
  peer_server_ = std::move(*ps);
  if (!client_server_) {
    if (Status s = open_client_server(); !s.is_ok()) return s;
  }

  ticker_ = std::make_unique<io::RepeatingTimer>(
      *reactor_, std::chrono::milliseconds(cfg_.raft.tick_ms), [this] { on_tick(); });
  ticker_->start();
  return Status::ok();
}

// A joining node opens it first, to answer /healthz and /readyz while it waits.
Status NodeImpl::open_client_server() {
  http::ServerOptions cs;
  cs.host = cfg_.listen.client.host;
  cs.port = cfg_.listen.client.port;
  cs.body_bytes_max = cfg_.limits.client_body_bytes_max;
  cs.header_bytes_max = cfg_.limits.header_bytes_max;
  cs.connections_max = cfg_.limits.connections_max;
  cs.json_errors = true;  // API.md: every error body is JSON, the server's own answers too
  cs.on_exchange_end = [](const http::Request& rq, int status, io::Duration elapsed) {
    api_metrics().observe(rq, status, elapsed);  // /metrics: proposals and reads
  };
  auto c = http::Server::start(*reactor_, *this, cs);
  if (!c) return c.status();
  client_server_ = std::move(*c);
  return Status::ok();
}

void NodeImpl::update_peers() {
  std::vector<transport::Peer> peers;
  std::vector<const NodeInfo*> nodes;
  for (const auto& [id, n] : meta_.nodes()) nodes.push_back(&n);
  for (const auto& [id, n] : departing_) nodes.push_back(&n);
  for (const NodeInfo& n : cluster_.contacts) {
    if (known_node(n.id) && meta_.node(n.id) == nullptr && !departing_.contains(n.id)) {
      nodes.push_back(&n);
    }
  }
  for (const NodeInfo* np : nodes) {
    const NodeInfo& n = *np;
    const NodeId id = n.id;
    if (id == self_) continue;
    auto p = peer_of(n);
    if (p) {
      peers.push_back(*p);
    } else {
      log::error("meta: node {}: {}", id.value(), p.status().to_string());
    }
  }
  transport_->set_peers(peers);
}

// Raft's contract for quiesced followers (raft.h "Quiescing"): when the leader's node is gone or
// came back as a new process, wake them so that a dead quiesced leader is replaced.
void NodeImpl::on_peer_down(NodeId peer) {
  for (GroupId g : host_->group_ids()) {
    raft::Group* grp = host_->group(g);
    if (grp->role() == raft::Role::kLeader) grp->report_unreachable(peer);
    if (grp->leader() == peer) grp->wake();
    host_->mark_dirty(g);
  }
}

void NodeImpl::on_turn_end() {
  if (!transport_ || !app_) return;  // still starting
  if (!installs_missing_.empty()) finish_missing_installs();
  host_->process();
  if (!snapshot_requests_.empty()) finish_snapshot_requests();
  journal_->flush();
  flush_forwards();
  transport_->flush();
  // Lazy hard states (GroupHost::Commit) ride with the next write; a tick, or shutdown, writes
  // them when no write came (so they wait at most about a tick).
  if (lazy_flush_due_ || stopping_) {
    lazy_flush_due_ = !wal_->flush_lazy();
  } else {
    wal_->flush();
  }
}

namespace {

// Group 0 is never compacted (the meta state is rebuilt from its whole log at every start), so
// its first entries would keep the oldest WAL segment, and with it every later one (segments
// are released oldest first), forever: no space would ever be released, a deleted group's
// included. When group 0 alone keeps the oldest segment, its whole log is staged again as one
// append of the same entries (the WAL writes one group's append as one record, so it is atomic:
// a crash leaves the old copy or the new one). Once that batch is durable the old copies are
// dead and the segments before it are released. The meta log is small (an entry per group
// command, node command and election), so this costs a few KiB per segment's worth of writes.
// A meta log too big for one batch stays where it is (a warning, once per process); it is tried
// again when it has grown (the check reads at most one batch's worth of it).
void relocate_meta_log(wal::Wal& wal, uint64_t batch_bytes_max, MetaRelocation& st) {
  LogIndex& too_big_at = st.too_big_at;
  bool& warned = st.warned;
  const std::vector<wal::PinningGroup> pins = wal.pinning_groups();
  if (pins.size() != 1 || pins[0].group != GroupId(0)) return;
  const auto info = wal.group(GroupId(0));
  if (!info || info->last_index <= info->mark.index || info->last_index == too_big_at) return;
  const LogIndex first(info->mark.index.value() + 1);
  const LogIndex end(info->last_index.value() + 1);
  auto entries = wal.read(GroupId(0), first, end, batch_bytes_max);
  Status s = entries.status();
  if (entries) {
    if (entries->back().index != info->last_index) {
      s = Status(Code::kTooLarge,
                 fmt::format("its log {}..{} is over one batch of {} bytes", first.value(),
                             info->last_index.value(), batch_bytes_max));
    } else {
      std::vector<wal::EntryView> views;
      views.reserve(entries->size());
      for (const wal::Entry& e : *entries) {
        views.push_back({e.term, e.type, std::as_bytes(std::span(e.data.data(), e.data.size()))});
      }
      s = wal.append(GroupId(0), first, views);
      if (s.is_ok()) {
        log::debug("meta: log {}..{} copied forward in the WAL, so older segments can go",
                   first.value(), info->last_index.value());
        return;
      }
    }
  }
  if (s.code() == Code::kUnavailable) return;  // the WAL's queue is full: next tick
  if (s.code() == Code::kTooLarge) too_big_at = info->last_index;
  if (!warned) {
    warned = true;
    log::warn("meta: cannot copy group 0's log forward in the WAL ({}); the oldest segment stays",
              s.to_string());
  }
}

}  // namespace

void NodeImpl::on_tick() {
  lazy_flush_due_ = true;
  host_->tick();
  sweep_timeouts();
  reconcile_all_hosts();
  reconcile_meta_members();
  relocate_meta_log(*wal_, cfg_.wal.batch_bytes_max, meta_relocation_);
  compact_pinning();
  trim_heap_when_quiet();
}

// glibc gives freed memory back to the system only from the top of the heap. A burst (10,000
// groups created through this node in seconds, an election storm after a restart) leaves
// megabytes of freed chunks between live ones, resident for good: 3.2 MB on the node that took
// the creations in bench/scale, 8 % of its memory for those groups. Once the node has written
// nothing for kHeapTrimQuietTicks, malloc_trim returns their pages, once per quiet spell; a busy
// node is never trimmed, so it does not fault pages back in that it is about to reuse.
void NodeImpl::trim_heap_when_quiet() {
  const uint64_t batches = wal_->stats().batches;
  if (batches != trim_batches_seen_) {
    trim_batches_seen_ = batches;
    trim_quiet_ticks_ = 0;
    return;
  }
  if (++trim_quiet_ticks_ == kHeapTrimQuietTicks) malloc_trim(0);
}

// ---- run and shutdown ----------------------------------------------------------------------

Status NodeImpl::run() {
  if (joining_) {
    if (Status s = run_joining(); !s.is_ok() || joining_) return s;  // stopped while waiting
  }
  while (true) {
    if (stop_requested_.load() && !stopping_) begin_shutdown();
    if (wal_->failed()) return Status(Code::kAborted, "the WAL stopped after a write error");
    if (stopping_ && wal_->idle() && client_server_->closed() && peer_server_->closed() &&
        transport_->closed() && app_->closed() && http_->closed() && sender_->closed() &&
        receiver_->idle()) {
      break;
    }
    reactor_->run_once(std::chrono::milliseconds(50));
  }
  reactor_->remove_turn_end_hook(hook_);
  reactor_->shutdown();
  if (cluster_check_.failed()) return cluster_check_.verdict();  // the caller logs it
  log::info("raftd: node {} stopped", self_.value());
  return Status::ok();
}

void NodeImpl::request_stop() {
  stop_requested_.store(true);
  if (reactor_) reactor_->wake();
}

// Listeners close first (no new work), then what is in flight ends: waiting clients are answered
// by the servers' close (their exchanges abort), the WAL's batch in flight completes (run()
// waits for idle()), and the streams and app calls end.
void NodeImpl::begin_shutdown() {
  stopping_ = true;
  log::info("raftd: node {} stopping", self_.value());
  ticker_->stop();
  client_server_->close();
  peer_server_->close();
  transport_->close();
  sender_->close();
  app_->close();
  http_->close();
}

// ---- the Ready driver ----------------------------------------------------------------------

void NodeImpl::send(raft::Message&& m) { transport_->send(std::move(m)); }

void NodeImpl::on_soft_state(GroupId g, const raft::SoftState& s) {
  // A new leader finishes what its predecessor may have left of the hosting records.
  if (s.role == raft::Role::kLeader && g != GroupId(0)) hosting_check_.insert(g);
  if (s.leader != NodeId(0)) finish_transfers(g, s.leader);
  if (g == GroupId(0)) {
    log::info("meta: leader is node {} ({})", s.leader.value(), raft::role_name(s.role));
  } else {
    log::debug("group {}: leader is node {} ({})", g.value(), s.leader.value(),
               raft::role_name(s.role));
  }
}

void NodeImpl::on_snapshot_refused(GroupId g, const raft::SnapshotMeta& meta) {
  log::error(
      "group {}: the leader sent a snapshot at index {}, which this release cannot install; "
      "the group stops on this node",
      g.value(), meta.index.value());
  app_->drop_group(g);
}

void NodeImpl::apply(GroupId g, std::vector<raft::Entry>&& committed) {
  if (g == GroupId(0)) {
    for (const raft::Entry& e : committed) {
      apply_meta(e);
      if (e.type == raft::EntryType::kConfChange && !departing_.empty()) prune_departing();
    }
    return;
  }
  std::vector<app::AppEntry>& backlog = app_backlog_[g];
  const LogIndex app_start_index = app_start(g);
  for (raft::Entry& e : committed) {
    if (e.type == raft::EntryType::kConfChange) on_conf_applied(g, e);
    app::AppEntry a{e.index, false, {}};
    if (e.type == raft::EntryType::kNormal) {
      auto env = decode_envelope(e.data);
      if (env && env->kind == EntryKind::kApp) {
        a.to_app = true;
        a.data.assign(env->payload);
        if (env->origin == self_ && waiters_.contains(env->request_id) &&
            e.index > app_start_index) {
          by_index_[{g, e.index}] = env->request_id;
        }
      } else {
        log::warn("group {}: entry {} is not an application entry; skipped for the app", g.value(),
                  e.index.value());
      }
    }
    backlog.push_back(std::move(a));
  }
  if (relays_waiting_ > 0) finish_relayed(g);
  offer_to_app(g);
}

// Entries go to the app client in order; what it refuses (its queue is full) waits here, and is
// offered again after the group's next acknowledged batch.
void NodeImpl::offer_to_app(GroupId g) {
  auto it = app_backlog_.find(g);
  if (it == app_backlog_.end() || it->second.empty()) return;
  Status s = app_->enqueue(g, std::move(it->second));
  if (s.is_ok()) {
    it->second.clear();
  } else {
    RAFTD_ASSERT(s.code() == Code::kUnavailable, "app enqueue refused entries in order");
  }
}

void NodeImpl::on_applied(GroupId g, LogIndex last, std::vector<app::Record> results) {
  applied_[g] = std::max(applied_[g], last);
  for (app::Record& r : results) {
    auto it = by_index_.find({g, r.index});
    if (it == by_index_.end()) continue;
    uint64_t rid = it->second;
    by_index_.erase(it);
    finish_waiter(rid, 200, r.data, "application/octet-stream", r.index);
  }
  journal_applied(g, last, results);
  offer_to_app(g);
  serve_ready_reads(g);
  maybe_compact(g);
}

void NodeImpl::on_read_states(GroupId g, std::vector<raft::ReadState>&& states) {
  for (const raft::ReadState& rs : states) {
    auto it = reads_.find(rs.request_id);
    if (it == reads_.end()) continue;
    if (!rs.ok) {
      fail_waiter(rs.request_id, 503, "no_leader", "the read lost its leader; retry");
      continue;
    }
    it->second.index = rs.index;
    it->second.has_index = true;
  }
  serve_ready_reads(g);
}

// ---- the meta group ------------------------------------------------------------------------

void NodeImpl::apply_meta(const raft::Entry& e) {
  if (e.type != raft::EntryType::kNormal) return;
  auto env = decode_envelope(e.data);
  if (!env || env->kind != EntryKind::kMeta) {
    log::error("meta: entry {} is not a meta command; ignored on every node", e.index.value());
    return;
  }
  auto cmd = decode_meta_command(env->payload);
  if (!cmd) {
    log::error("meta: entry {}: {}", e.index.value(), cmd.status().to_string());
    if (env->origin == self_) fail_waiter(env->request_id, 400, "bad_request", "bad meta command");
    return;
  }
  std::optional<NodeInfo> removed;
  if (const auto* rn = std::get_if<RemoveNode>(&*cmd)) {
    if (const NodeInfo* n = meta_.node(rn->id)) removed = *n;
  }
  MetaOutcome o = meta_.apply(*cmd);
  if (removed && o == MetaOutcome::kOk) {
    departing_[removed->id] = *removed;
    prune_departing();
  }
  applied_[GroupId(0)] = e.index;
  after_meta(*cmd, o);
  if (env->origin != self_ || !waiters_.contains(env->request_id)) return;
  switch (o) {
    case MetaOutcome::kOk: break;
    case MetaOutcome::kGroupExists:
      return fail_waiter(env->request_id, 409, "group_exists", "the group id exists or was used");
    case MetaOutcome::kUnknownGroup:
      return fail_waiter(env->request_id, 404, "unknown_group", "no such group");
    case MetaOutcome::kNodeExists:
    case MetaOutcome::kNodeInUse:
      return fail_waiter(env->request_id, 409, "conflict", meta_outcome_name(o));
    case MetaOutcome::kUnknownNode:
      if (std::holds_alternative<RemoveNode>(*cmd)) {
        return fail_waiter(env->request_id, 404, "not_found", "no such node");
      }
      [[fallthrough]];
    case MetaOutcome::kReservedGroup:
    case MetaOutcome::kAddressInUse:
      return fail_waiter(env->request_id, 400, "bad_request", meta_outcome_name(o));
  }
  std::string body = "{}";
  int status = 200;
  if (const auto* c = std::get_if<CreateGroup>(&*cmd)) {
    if (std::binary_search(c->members.begin(), c->members.end(), self_) && !host_->hosts(c->id)) {
      creating_[c->id] = {env->request_id, e.index};  // answered by start_group
      return;
    }
    status = 201;
    body = group_status_json(c->id);
  } else if (const auto* d = std::get_if<DeleteGroup>(&*cmd)) {
    body = fmt::format("{{\"id\":{},\"deleted\":true}}", d->id.value());
  } else if (const auto* a = std::get_if<AddNode>(&*cmd)) {
    status = 201;
    body = node_json(a->node, false);
  } else if (const auto* r = std::get_if<RemoveNode>(&*cmd)) {
    body = fmt::format("{{\"id\":{},\"removed\":true}}", r->id.value());
  }
  finish_waiter(env->request_id, status, std::move(body), "application/json", e.index);
}

void NodeImpl::after_meta(const MetaCommand& c, MetaOutcome o) {
  if (o != MetaOutcome::kOk) return;
  if (const auto* cg = std::get_if<CreateGroup>(&c)) {
    if (std::binary_search(cg->members.begin(), cg->members.end(), self_)) start_group(cg->id);
  } else if (const auto* dg = std::get_if<DeleteGroup>(&c)) {
    stop_group(dg->id);
  } else if (const auto* hg = std::get_if<HostGroup>(&c)) {
    // Added to the group: start it (empty, from its initial configuration); the leader's
    // entries bring the log, and the configuration changes in it, up to date.
    if (hg->node == self_ && !host_->hosts(hg->group)) start_group(hg->group);
  } else if (const auto* ug = std::get_if<UnhostGroup>(&c)) {
    if (ug->node == self_ && host_->hosts(ug->group)) {
      log::info("group {}: this node was removed from it", ug->group.value());
      stop_group(ug->group);
    }
  } else {
    if (const auto* rn = std::get_if<RemoveNode>(&c); rn != nullptr && rn->id == self_) {
      log::warn(
          "meta: this node was removed from the cluster; it hosts no group and can be "
          "stopped (its id is never used again)");
    }
    update_peers();
  }
}

// A group starts once the app said where it is (LastLogIndex): committed entries above that are
// delivered again, none below.
void NodeImpl::start_group(GroupId g) {
  app_->last_log_index(g, [this, g](LogIndex app_index) {
    if (const GroupInfo* info = meta_.group(g);
        info != nullptr && info->hosted_by(self_) && !host_->hosts(g)) {
      raft::ConfState conf;
      conf.voters = info->members;
      if (Status s = host_->add_group(g, conf, app_index); s.is_ok()) {
        applied_[g] = std::min(app_index, host_->group(g)->applied_index());
        app_start_[g] = app_index;
        if (cfg_.app.sync) synced_[g] = app_index;
        scan_keys(g);
        log::info("group {}: started (app index {}, commit {})", g.value(), app_index.value(),
                  host_->group(g)->commit_index().value());
      } else {
        log::error("group {}: cannot start: {}", g.value(), s.to_string());
      }
    }
    if (auto it = creating_.find(g); it != creating_.end()) {
      const auto [rid, index] = it->second;
      creating_.erase(it);
      finish_waiter(rid, 201, group_status_json(g), "application/json", index);
    }
  });
}

// A deleted group stops here; its log is compacted away in the WAL so its space is released
// when the segments holding it are.
void NodeImpl::stop_group(GroupId g) {
  bool hosted = host_->hosts(g);
  host_->remove_group(g);
  app_->drop_group(g);
  app_backlog_.erase(g);
  applied_.erase(g);
  app_start_.erase(g);
  std::vector<uint64_t> gone;
  for (const auto& [rid, w] : waiters_) {
    if (w.group == g) gone.push_back(rid);
  }
  for (const auto& [rid, r] : reads_) {
    if (r.group == g) gone.push_back(rid);
  }
  for (uint64_t rid : gone) fail_waiter(rid, 404, "unknown_group", "the group was deleted");
  by_index_.erase(by_index_.lower_bound({g, LogIndex(0)}),
                  by_index_.lower_bound({g + 1, LogIndex(0)}));
  keyed_waits_.erase(keyed_waits_.lower_bound({g, LogIndex(0)}),
                     keyed_waits_.lower_bound({g + 1, LogIndex(0)}));
  keys_.drop_group(g);
  journal_mark_.erase(g);
  forget_snapshots(g);
  if (auto info = wal_->group(g); info && info->last_index > info->mark.index) {
    if (Status s = wal_->compact(g, info->last_index, info->last_term); !s.is_ok()) {
      log::warn("group {}: compaction after delete: {}", g.value(), s.to_string());
    }
  }
  if (hosted) log::info("group {}: stopped on this node", g.value());
}

}  // namespace raftd::node
