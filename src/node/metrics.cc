#include "raftd/node/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "raftd/app/app_client.h"
#include "raftd/base/assert.h"
#include "raftd/http/server.h"
#include "raftd/node/group_host.h"
#include "raftd/node/meta.h"
#include "raftd/raft/raft.h"
#include "raftd/transport/transport.h"
#include "raftd/wal/wal.h"

namespace raftd::node {

namespace {

std::string_view type_word(MetricType t) {
  switch (t) {
    case MetricType::kCounter: return "counter";
    case MetricType::kGauge: return "gauge";
    case MetricType::kHistogram: return "histogram";
  }
  return "untyped";
}

// Names are ours (constants below), so they are checked, not escaped.
bool valid_name(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

// A proposal or read target: "/v1/groups/<id>/<op>", the query left out.
std::string_view api_op(const http::Request& rq) {
  if (rq.method != "POST") return {};
  std::string_view path = std::string_view(rq.target).substr(0, rq.target.find('?'));
  constexpr std::string_view kPrefix = "/v1/groups/";
  if (!path.starts_with(kPrefix)) return {};
  path.remove_prefix(kPrefix.size());
  const std::size_t slash = path.find('/');
  if (slash == 0 || slash == std::string_view::npos) return {};
  for (char c : path.substr(0, slash)) {
    if (c < '0' || c > '9') return {};
  }
  return path.substr(slash + 1);
}

double seconds(io::Duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

// ---- MetricsText ----------------------------------------------------------------------------

void MetricsText::family(std::string_view name, MetricType type, std::string_view help) {
  RAFTD_ASSERT(valid_name(name), "metrics: a family name is [a-zA-Z_:][a-zA-Z0-9_:]*");
  RAFTD_ASSERT(seen_.insert(std::string(name)).second, "metrics: a family is written once");
  family_ = name;
  type_ = type;
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  for (char c : help) {
    if (c == '\\') {
      out_ += "\\\\";
    } else if (c == '\n') {
      out_ += "\\n";
    } else {
      out_ += c;
    }
  }
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type_word(type);
  out_ += '\n';
}

void MetricsText::begin_sample(std::string_view name, MetricLabels labels, std::string_view le) {
  RAFTD_ASSERT(!family_.empty() && name.starts_with(family_),
               "metrics: a sample belongs to the family written last");
  out_ += name;
  if (labels.size() > 0 || !le.empty()) {
    out_ += '{';
    bool first = true;
    auto label = [&](std::string_view key, std::string_view value) {
      RAFTD_ASSERT(valid_name(key) && key.find(':') == std::string_view::npos,
                   "metrics: a label name is [a-zA-Z_][a-zA-Z0-9_]*");
      if (!first) out_ += ',';
      first = false;
      out_ += key;
      out_ += "=\"";
      for (char c : value) {
        if (c == '\\' || c == '"') {
          out_ += '\\';
          out_ += c;
        } else if (c == '\n') {
          out_ += "\\n";
        } else {
          out_ += c;
        }
      }
      out_ += '"';
    };
    for (const auto& [key, value] : labels) label(key, value);
    if (!le.empty()) label("le", le);
    out_ += '}';
  }
  out_ += ' ';
}

void MetricsText::single(std::string_view name, MetricType type, std::string_view help,
                         std::uint64_t value) {
  family(name, type, help);
  sample(name, {}, value);
}

void MetricsText::sample(std::string_view name, MetricLabels labels, double value) {
  RAFTD_ASSERT(type_ != MetricType::kHistogram, "metrics: histogram samples come from histogram()");
  begin_sample(name, labels, {});
  out_ += fmt::format("{}\n", value);
}

void MetricsText::sample(std::string_view name, MetricLabels labels, std::uint64_t value) {
  RAFTD_ASSERT(type_ != MetricType::kHistogram, "metrics: histogram samples come from histogram()");
  begin_sample(name, labels, {});
  out_ += fmt::format("{}\n", value);
}

void MetricsText::histogram(std::string_view name, MetricLabels labels, const Histogram& h) {
  RAFTD_ASSERT(type_ == MetricType::kHistogram && name == family_,
               "metrics: histogram() writes the histogram family opened last");
  const std::string bucket = std::string(name) + "_bucket";
  for (std::size_t i = 0; i < h.bounds().size(); ++i) {
    begin_sample(bucket, labels, fmt::format("{}", h.bounds()[i]));
    out_ += fmt::format("{}\n", h.cumulative(i));
  }
  begin_sample(bucket, labels, "+Inf");
  out_ += fmt::format("{}\n", h.count());
  begin_sample(std::string(name) + "_sum", labels, {});
  out_ += fmt::format("{}\n", h.sum());
  begin_sample(std::string(name) + "_count", labels, {});
  out_ += fmt::format("{}\n", h.count());
}

// ---- ApiMetrics ----------------------------------------------------------------------------

void ApiMetrics::observe(const http::Request& request, int status, io::Duration elapsed) {
  const std::string_view op = api_op(request);
  Kind* kind = op == "propose" ? &proposals_ : op == "read" ? &reads_ : nullptr;
  if (kind == nullptr) return;
  const std::string outcome = status == 0 ? std::string("aborted") : std::to_string(status);
  ++kind->outcomes[outcome];
  if (status != 0) kind->seconds.observe(seconds(elapsed));
}

ApiMetrics& api_metrics() {
  static ApiMetrics metrics;
  return metrics;
}

// ---- rendering -----------------------------------------------------------------------------

namespace {

using T = MetricType;

void render_groups(MetricsText& m, const MetricsSources& s) {
  if (s.host == nullptr || s.applied == nullptr) return;
  struct Row {
    std::string id;
    const raft::Group* group;
    LogIndex applied;
  };
  std::vector<Row> rows;
  for (GroupId g : s.host->group_ids()) {
    const raft::Group* grp = s.host->group(g);
    if (grp == nullptr) continue;
    auto it = s.applied->find(g);
    rows.push_back(
        {std::to_string(g.value()), grp, it == s.applied->end() ? LogIndex(0) : it->second});
  }
  std::sort(rows.begin(), rows.end(),
            [](const Row& a, const Row& b) { return a.group->group() < b.group->group(); });
  m.single("raftd_groups", T::kGauge, "Groups this node hosts, the meta group (0) included.",
           static_cast<std::uint64_t>(rows.size()));
  m.single("raftd_group_sleepers_woken_total", T::kCounter,
           "Sleeping groups the host's safety sweep found with work no input had announced "
           "(0 unless an input skipped mark_dirty: a bug).",
           s.host->stats().sleepers_woken);
  m.family("raftd_group_term", T::kGauge, "The group's current term on this node.");
  for (const Row& r : rows)
    m.sample("raftd_group_term", {{"group", r.id}}, r.group->term().value());
  m.family("raftd_group_commit_index", T::kGauge, "The group's commit index on this node.");
  for (const Row& r : rows) {
    m.sample("raftd_group_commit_index", {{"group", r.id}}, r.group->commit_index().value());
  }
  m.family("raftd_group_applied_index", T::kGauge,
           "The last index this node's application acknowledged for the group.");
  for (const Row& r : rows) {
    m.sample("raftd_group_applied_index", {{"group", r.id}}, r.applied.value());
  }
  m.family("raftd_group_last_index", T::kGauge, "The last index of the group's log on this node.");
  for (const Row& r : rows) {
    m.sample("raftd_group_last_index", {{"group", r.id}}, r.group->last_index().value());
  }
  m.family("raftd_group_leader", T::kGauge, "1 if this node is the group's leader, else 0.");
  for (const Row& r : rows) {
    const bool leader = r.group->role() == raft::Role::kLeader;
    m.sample("raftd_group_leader", {{"group", r.id}}, std::uint64_t{leader ? 1u : 0u});
  }
}

void render_api_kind(MetricsText& m, const ApiMetrics::Kind& k, std::string_view total,
                     std::string_view total_help, std::string_view hist,
                     std::string_view hist_help) {
  m.family(total, T::kCounter, total_help);
  for (const auto& [outcome, n] : k.outcomes) m.sample(total, {{"outcome", outcome}}, n);
  m.family(hist, T::kHistogram, hist_help);
  m.histogram(hist, {}, k.seconds);
}

void render_api(MetricsText& m, const ApiMetrics& a) {
  render_api_kind(m, a.proposals(), "raftd_proposals_total",
                  "Proposals taken on this node, by outcome: the HTTP status answered, or "
                  "\"aborted\" (the client went away before the answer).",
                  "raftd_proposal_duration_seconds",
                  "Time from a proposal's request head to its answer (answered ones).");
  render_api_kind(m, a.reads(), "raftd_reads_total",
                  "Reads taken on this node, by outcome: the HTTP status answered, or "
                  "\"aborted\".",
                  "raftd_read_duration_seconds",
                  "Time from a read's request head to its answer (answered ones).");
}

}  // namespace

void render_wal(MetricsText& m, const wal::WalStats& w) {
  m.single("raftd_wal_bytes_written_total", T::kCounter, "Bytes the WAL wrote in durable batches.",
           w.bytes_written);
  m.single("raftd_wal_fsyncs_total", T::kCounter, "fdatasyncs the WAL issued (one per batch).",
           w.syncs);
  m.family("raftd_wal_fsync_duration_seconds", T::kHistogram,
           "Time of one batch's linked write and fdatasync, from submission to completion.");
  m.histogram("raftd_wal_fsync_duration_seconds", {}, w.sync_seconds);
  m.family("raftd_wal_batch_bytes", T::kHistogram, "Size of each durable WAL batch in bytes.");
  m.histogram("raftd_wal_batch_bytes", {}, w.batch_bytes);
  m.single("raftd_wal_segments_created_total", T::kCounter, "WAL segment files created.",
           w.segments_created);
  m.single("raftd_wal_segments_deleted_total", T::kCounter,
           "WAL segment files deleted once no group needed them.", w.segments_deleted);
  m.single("raftd_wal_cache_bytes", T::kGauge, "Bytes of recent entries the WAL keeps in memory.",
           w.cache_bytes);
  m.single("raftd_wal_cache_arena_bytes", T::kGauge,
           "Bytes in use in the WAL's cache ring: cached, not yet durable, and dead ones.",
           w.cache_arena_bytes);
  m.single("raftd_wal_cache_hits_total", T::kCounter,
           "Entry reads (replication, delivery to the app) answered from the WAL's cache.",
           w.cache_hits);
  m.single("raftd_wal_file_reads_total", T::kCounter,
           "Entry reads that missed the cache and read a segment file.", w.file_reads);
}

void render_app(MetricsText& m, const app::AppStats& a) {
  const std::pair<std::string_view, const app::AppStats::Call*> calls[] = {
      {"UpdateEntries", &a.update_entries},
      {"Sync", &a.sync},
      {"LastLogIndex", &a.last_log_index},
      {"GetEntry", &a.get_entry},
      {"PrepareSnapshot", &a.prepare_snapshot},
      {"SaveSnapshot", &a.save_snapshot},
      {"RecoverFromSnapshot", &a.recover_from_snapshot}};
  m.family("raftd_app_call_duration_seconds", T::kHistogram,
           "Time from sending a call to the application to its answer or failure, per call.");
  for (const auto& [name, c] : calls) {
    m.histogram("raftd_app_call_duration_seconds", {{"call", name}}, c->seconds);
  }
  m.family("raftd_app_call_errors_total", T::kCounter,
           "Failed calls to the application (non-2xx or malformed answer, timeout, refused "
           "connection), per call; failed calls other than GetEntry are retried.");
  for (const auto& [name, c] : calls) {
    m.sample("raftd_app_call_errors_total", {{"call", name}}, c->errors);
  }
  m.single("raftd_app_entries_applied_total", T::kCounter,
           "Entries the application acknowledged applying.", a.entries_applied);
}

namespace {

void render_transport(MetricsText& m, const MetricsSources& s) {
  const transport::TransportStats& t = s.transport->stats();
  m.single("raftd_transport_messages_sent_total", T::kCounter,
           "Raft messages encoded into the streams to the peers.", t.messages_sent);
  m.single("raftd_transport_heartbeats_sent_total", T::kCounter,
           "Of the Raft messages sent, heartbeats and their answers.", t.heartbeats_sent);
  m.single("raftd_transport_heartbeats_coalesced_total", T::kCounter,
           "Of the heartbeats sent, those sent as tuples of one list per peer and flush.",
           t.heartbeats_coalesced);
  m.single("raftd_transport_frames_sent_total", T::kCounter,
           "Frames sent on the peer streams (keep-alive pings included).", t.frames_sent);
  m.single("raftd_transport_messages_received_total", T::kCounter,
           "Raft messages received from the peers and delivered.", t.messages_received);
  m.family("raftd_transport_messages_dropped_total", T::kCounter,
           "Raft messages dropped, by reason (raft retries).");
  const std::pair<std::string_view, std::uint64_t> drops[] = {
      {"queue_full", t.drops_queue_full},
      {"no_peer", t.drops_no_peer},
      {"too_large", t.drops_too_large},
      {"stream_failed", t.drops_stream_failed},
      {"unknown_group", t.drops_unknown_group}};
  for (const auto& [reason, n] : drops) {
    m.sample("raftd_transport_messages_dropped_total", {{"reason", reason}}, n);
  }
  m.single("raftd_transport_bytes_sent_total", T::kCounter, "Bytes sent on the peer streams.",
           t.bytes_sent);
  m.single("raftd_transport_bytes_received_total", T::kCounter,
           "Bytes received on the peer streams.", t.bytes_received);
  m.single("raftd_transport_connects_total", T::kCounter,
           "Attempts to open an outbound peer stream.", t.connects);
  if (s.meta == nullptr) return;
  std::vector<std::pair<std::string, transport::PeerStatus>> peers;
  for (const auto& [id, info] : s.meta->nodes()) {
    if (id == s.self) continue;
    peers.emplace_back(std::to_string(id.value()),
                       s.transport->peer_status(id).value_or(transport::PeerStatus{}));
  }
  m.family("raftd_peer_connected", T::kGauge,
           "1 while this node's outbound stream to the peer is accepted and running.");
  for (const auto& [id, st] : peers) {
    m.sample("raftd_peer_connected", {{"peer", id}}, std::uint64_t{st.connected ? 1u : 0u});
  }
  m.family("raftd_peer_inbound_connected", T::kGauge,
           "1 while the peer's stream to this node is open.");
  for (const auto& [id, st] : peers) {
    m.sample("raftd_peer_inbound_connected", {{"peer", id}}, std::uint64_t{st.inbound ? 1u : 0u});
  }
  m.family("raftd_peer_queued_bytes", T::kGauge, "Bytes queued for the peer, not yet sent.");
  for (const auto& [id, st] : peers)
    m.sample("raftd_peer_queued_bytes", {{"peer", id}}, st.queued_bytes);
}

void render_snapshots(MetricsText& m, const SnapshotMetrics& s) {
  m.single("raftd_snapshots_sent_total", T::kCounter,
           "Snapshots this node streamed to a follower that confirmed them durable.", s.sent);
  m.single("raftd_snapshot_send_failures_total", T::kCounter,
           "Snapshots this node failed to send (app, stream or follower error); each is retried.",
           s.send_failed);
  m.single("raftd_snapshot_bytes_sent_total", T::kCounter, "Bytes of the snapshots sent.",
           s.bytes_sent);
  m.single("raftd_snapshots_received_total", T::kCounter,
           "Snapshot streams this node received whole, verified and made durable.", s.received);
  m.single("raftd_snapshot_receive_failures_total", T::kCounter,
           "Snapshot streams accepted that ended without a file (cut, corrupt, failed write).",
           s.receive_failed);
  m.single("raftd_snapshot_bytes_received_total", T::kCounter,
           "Bytes of the snapshots received whole.", s.bytes_received);
  m.single("raftd_snapshots_installed_total", T::kCounter,
           "Snapshots installed in this node's app and log.", s.installed);
  m.single("raftd_snapshot_install_failures_total", T::kCounter,
           "Snapshot installs that failed (the group was taken up again).", s.install_failed);
  m.single("raftd_log_compactions_total", T::kCounter, "Compactions of a group's log here.",
           s.compactions);
}

void render_forwards(MetricsText& m, const ForwardMetrics& f) {
  m.single("raftd_forwarded_proposals_total", T::kCounter,
           "Proposals this node forwarded to their group's leader.", f.proposals);
  m.single("raftd_forward_requests_total", T::kCounter,
           "Requests that carried them (one per leader and reactor turn, batched).", f.requests);
}

void render_http(MetricsText& m, const http::Server& server) {
  const http::ServerStats& h = server.stats();
  m.single("raftd_http_connections", T::kGauge, "Open connections on the client listener.",
           static_cast<std::uint64_t>(server.connection_count()));
  m.single("raftd_http_requests_total", T::kCounter, "Requests on the client listener.",
           h.requests);
  m.single("raftd_http_exchanges_aborted_total", T::kCounter,
           "Client requests abandoned before their answer (client gone, timeout, bad body).",
           h.exchanges_aborted);
}

void render_reactor(MetricsText& m, const io::Reactor& reactor) {
  const io::ReactorStats& r = reactor.stats();
  m.single("raftd_reactor_turns_total", T::kCounter,
           "Turns of the node's event loop (one wait for completions and the work it brought).",
           r.turns);
  m.single("raftd_reactor_completions_total", T::kCounter,
           "io_uring completions the event loop handled.", r.cqes);
  m.single("raftd_reactor_rearms_total", T::kCounter,
           "Multishot accepts and receives the kernel ended and the loop armed again.",
           r.multishot_rearms);
  m.single("raftd_reactor_recv_buffers_exhausted_total", T::kCounter,
           "Of those, receives ended because every receive buffer was in use (the data waits in "
           "the socket until the receive is armed again).",
           r.enobufs);
}

}  // namespace

std::string render_metrics(const MetricsSources& s) {
  MetricsText m;
  render_groups(m, s);
  if (s.api != nullptr) render_api(m, *s.api);
  if (s.wal != nullptr) render_wal(m, s.wal->stats());
  if (s.app != nullptr) render_app(m, s.app->stats());
  if (s.transport != nullptr) render_transport(m, s);
  if (s.snapshots != nullptr) render_snapshots(m, *s.snapshots);
  if (s.forwards != nullptr) render_forwards(m, *s.forwards);
  if (s.client_server != nullptr) render_http(m, *s.client_server);
  if (s.reactor != nullptr) render_reactor(m, *s.reactor);
  return m.text();
}

}  // namespace raftd::node
