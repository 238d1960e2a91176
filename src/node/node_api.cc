// NodeImpl, continued: the client API (API.md section 2) and proposals forwarded by followers.
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <nlohmann/json.hpp>

#include "node/node_impl.h"
#include "raftd/base/log.h"
#include "raftd/node/metrics.h"

namespace raftd::node {
namespace {

using Json = nlohmann::json;

// Per exchange: the request body as it arrives, and the request id once the exchange waits.
struct ApiContext final : http::ExchangeContext {
  std::string body;
  uint64_t rid = 0;
  bool too_large = false;
};

ApiContext& ctx(http::Exchange& ex) { return *static_cast<ApiContext*>(ex.context()); }

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (j > i) parts.emplace_back(path.substr(i, j - i));
    i = j + 1;
  }
  return parts;
}

const char* role_word(const raft::Group& g, NodeId self) {
  const raft::ConfState& c = g.conf_state();
  if (std::binary_search(c.learners.begin(), c.learners.end(), self)) return "learner";
  switch (g.role()) {
    case raft::Role::kLeader: return "leader";
    case raft::Role::kCandidate:
    case raft::Role::kPreCandidate: return "candidate";
    case raft::Role::kFollower: break;
  }
  return "follower";
}

// Idempotency keys travel in an HTTP header and in the log: visible ASCII only.
bool valid_key(std::string_view k) {
  if (k.empty() || k.size() > kIdempotencyKeyBytesMax) return false;
  for (char c : k) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

constexpr uint64_t kForwardBytesMax = kEnvelopeFixedBytes + 2 + kIdempotencyKeyBytesMax;

}  // namespace

bool parse_id(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

void respond_error(http::Exchange& ex, int status, std::string_view code,
                   std::string_view message) {
  if (status == 503) ex.add_header("Retry-After", "1");
  Json j{{"error", code}, {"message", message}};
  ex.respond(status, j.dump(), "application/json");
}

// ---- client API ----------------------------------------------------------------------------

void NodeImpl::on_headers(http::Exchange& ex) {
  ex.set_context(std::make_unique<ApiContext>());
  // Probes need no token (raftd.toml(5)): a load balancer or systemd check has none.
  const std::string& target = ex.request().target;
  const bool probe = target == "/healthz" || target == "/readyz";
  if (const auto& token = cfg_.auth.client_token; token && !probe) {
    auto auth = ex.request().header("Authorization");
    if (!auth || *auth != "Bearer " + *token) {
      ex.add_header("WWW-Authenticate", "Bearer");
      return respond_error(ex, 401, "unauthorized", "missing or wrong bearer token");
    }
  }
}

http::Flow NodeImpl::on_body(http::Exchange& ex, std::string_view chunk) {
  if (!ex.finished()) ctx(ex).body.append(chunk);
  return http::Flow::kContinue;
}

void NodeImpl::on_end(http::Exchange& ex) {
  if (ex.finished()) return;
  if (stopping_) return respond_error(ex, 503, "unavailable", "the node is shutting down");
  dispatch(ex);
}

void NodeImpl::on_aborted(http::Exchange& ex) {
  auto* c = static_cast<ApiContext*>(ex.context());
  if (c == nullptr || c->rid == 0) return;
  if (auto it = waiters_.find(c->rid); it != waiters_.end()) erase_waiter(it);
  reads_.erase(c->rid);
}

void NodeImpl::dispatch(http::Exchange& ex) {
  const http::Request& rq = ex.request();
  std::string_view target = rq.target;
  std::string_view path = target.substr(0, target.find('?'));
  const std::string& m = rq.method;
  if (path == "/healthz") {
    if (m != "GET") return respond_error(ex, 405, "method_not_allowed", "use GET");
    return ex.respond(200, "{\"status\":\"ok\"}", "application/json");
  }
  if (joining_) {
    return respond_error(ex, 503, "unavailable",
                         fmt::format("node {} is joining: it waits for a member to add it "
                                     "(POST /v1/cluster/nodes)",
                                     self_.value()));
  }
  if (path == "/readyz") {
    if (m != "GET") return respond_error(ex, 405, "method_not_allowed", "use GET");
    const raft::Group* meta = host_->group(GroupId(0));
    if (meta != nullptr && meta->leader() != NodeId(0)) {
      return ex.respond(200, "{\"status\":\"ready\"}", "application/json");
    }
    return respond_error(ex, 503, "unavailable", "the meta group has no leader yet");
  }
  std::vector<std::string> parts = split_path(path);
  if (parts.size() >= 2 && parts[0] == "v1" && parts[1] == "groups") return api_groups(ex, parts);
  if (parts.size() == 2 && parts[0] == "v1" && parts[1] == "cluster") {
    if (m != "GET") return respond_error(ex, 405, "method_not_allowed", "use GET");
    return api_cluster(ex);
  }
  if (path == "/metrics") {
    if (m != "GET") return respond_error(ex, 405, "method_not_allowed", "use GET");
    const SnapshotMetrics snaps = snapshot_metrics();
    const MetricsSources sources{self_,      host_.get(),          &applied_,
                                 &meta_,     wal_.get(),           transport_.get(),
                                 app_.get(), client_server_.get(), &api_metrics(),
                                 &snaps,     &forward_metrics_,    reactor_.get()};
    return ex.respond(200, render_metrics(sources), kMetricsContentType);
  }
  if ((parts.size() == 3 || parts.size() == 4) && parts[0] == "v1" && parts[1] == "cluster" &&
      parts[2] == "nodes") {
    return api_cluster_nodes(ex, parts, std::move(ctx(ex).body));
  }
  respond_error(ex, 404, "not_found", "no such endpoint");
}

void NodeImpl::api_groups(http::Exchange& ex, const std::vector<std::string>& parts) {
  const std::string& m = ex.request().method;
  if (parts.size() == 2) {
    if (m == "POST") return api_create_group(ex);
    if (m != "GET") return respond_error(ex, 405, "method_not_allowed", "use GET or POST");
    std::string body = "{\"groups\":[";
    bool first = true;
    for (GroupId g : host_->group_ids()) {
      if (g == GroupId(0)) continue;
      if (!first) body += ',';
      first = false;
      body += group_status_json(g);
    }
    body += "]}";
    return ex.respond(200, body, "application/json");
  }
  uint64_t id = 0;
  if (!parse_id(parts[2], &id)) return respond_error(ex, 400, "bad_request", "bad group id");
  const GroupId g(id);
  if (parts.size() == 3) {
    if (m == "DELETE") return api_delete_group(ex, g);
    if (m != "GET") return respond_error(ex, 405, "method_not_allowed", "use GET or DELETE");
    if (g == GroupId(0) || !host_->hosts(g)) {
      return respond_error(ex, 404, "unknown_group", "this node hosts no such group");
    }
    return ex.respond(200, group_status_json(g), "application/json");
  }
  const std::string& op = parts[3];
  if (parts.size() == 4 && (op == "propose" || op == "read")) {
    if (m != "POST") return respond_error(ex, 405, "method_not_allowed", "use POST");
    if (g == GroupId(0) || !host_->hosts(g)) {
      return respond_error(ex, 404, "unknown_group", "this node hosts no such group");
    }
    return op == "propose" ? api_propose(ex, g) : api_read(ex, g);
  }
  if (parts.size() == 4 && op == "transfer-leader") {
    if (m != "POST") return respond_error(ex, 405, "method_not_allowed", "use POST");
    if (g == GroupId(0) || !host_->hosts(g)) {
      return respond_error(ex, 404, "unknown_group", "this node hosts no such group");
    }
    return api_transfer_leader(ex, g);
  }
  if (op == "members" && (parts.size() == 4 || parts.size() == 5)) {
    return api_members(ex, g, parts, std::move(ctx(ex).body));
  }
  if (parts.size() == 4 && op == "snapshot") return api_snapshot(ex, g);
  respond_error(ex, 404, "not_found", "no such endpoint");
}

void NodeImpl::api_create_group(http::Exchange& ex) {
  Json j = Json::parse(ctx(ex).body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("id") || !j["id"].is_number_unsigned() ||
      !j.contains("members") || !j["members"].is_array() || j.size() != 2) {
    return respond_error(ex, 400, "bad_request",
                         "body must be {\"id\": <group id>, \"members\": [<node id>, ...]}");
  }
  CreateGroup c{GroupId(j["id"].get<uint64_t>()), {}};
  if (c.id == GroupId(0)) return respond_error(ex, 400, "bad_request", "group 0 is reserved");
  for (const Json& n : j["members"]) {
    if (!n.is_number_unsigned() || n.get<uint64_t>() == 0) {
      return respond_error(ex, 400, "bad_request", "members are node ids (>= 1)");
    }
    c.members.push_back(NodeId(n.get<uint64_t>()));
  }
  std::sort(c.members.begin(), c.members.end());
  if (c.members.empty() || c.members.size() > kMetaMembersMax ||
      std::adjacent_find(c.members.begin(), c.members.end()) != c.members.end()) {
    return respond_error(ex, 400, "bad_request",
                         fmt::format("1 to {} distinct members", kMetaMembersMax));
  }
  for (NodeId n : c.members) {
    if (meta_.node(n) == nullptr) {
      return respond_error(ex, 400, "bad_request", fmt::format("unknown node {}", n.value()));
    }
  }
  if (meta_.group_id_used(c.id)) {
    return respond_error(ex, 409, "group_exists", "the group id exists or was used");
  }
  propose_entry(ex, GroupId(0), EntryKind::kMeta, encode_meta_command(c), "");
}

void NodeImpl::api_delete_group(http::Exchange& ex, GroupId g) {
  if (g == GroupId(0) || meta_.group(g) == nullptr) {
    return respond_error(ex, 404, "unknown_group", "no such group");
  }
  propose_entry(ex, GroupId(0), EntryKind::kMeta, encode_meta_command(DeleteGroup{g}), "");
}

void NodeImpl::api_propose(http::Exchange& ex, GroupId g) {
  std::string key;
  if (auto k = ex.request().header("Idempotency-Key")) {
    if (!valid_key(*k)) {
      return respond_error(ex, 400, "bad_request",
                           fmt::format("Idempotency-Key must be 1 to {} visible ASCII characters",
                                       kIdempotencyKeyBytesMax));
    }
    key.assign(*k);
    // In this node's log already: answered from that entry, nothing appended.
    if (const KeyTable::Slot* slot = keys_.find(g, key)) {
      if (waiters_.size() + reads_.size() >= kWaitersMax) {
        return respond_error(ex, 503, "unavailable", "too many requests waiting on this node");
      }
      const uint64_t rid = next_request_++;
      add_waiter(ex, g, rid);
      return await_keyed(rid, g, slot->index, std::move(key));
    }
  }
  propose_entry(ex, g, EntryKind::kApp, std::move(ctx(ex).body), std::move(key));
}

void NodeImpl::add_waiter(http::Exchange& ex, GroupId g, uint64_t rid) {
  ctx(ex).rid = rid;
  waiters_[rid] = Waiter{&ex, g, io::Reactor::now() + std::chrono::milliseconds(kProposeTimeoutMs)};
}

void NodeImpl::propose_entry(http::Exchange& ex, GroupId g, EntryKind kind, std::string payload,
                             std::string key) {
  if (waiters_.size() + reads_.size() >= kWaitersMax) {
    return respond_error(ex, 503, "unavailable", "too many requests waiting on this node");
  }
  raft::Group* grp = host_->group(g);
  if (grp == nullptr) return respond_error(ex, 404, "unknown_group", "no such group here");
  const NodeId leader = grp->leader();
  if (leader == NodeId(0)) return respond_error(ex, 503, "no_leader", "the group has no leader");
  const uint64_t rid = next_request_++;
  std::string entry = encode_envelope(kind, self_, rid, key, payload);
  if (leader == self_) {
    auto r = host_->propose(g, std::move(entry));
    if (!r) {
      if (r.status().code() == Code::kTooLarge) {
        return respond_error(ex, 503, "unavailable", "the group's uncommitted log is full");
      }
      return respond_error(ex, 503, "no_leader", r.status().message());
    }
    if (!key.empty()) keys_.note(g, *r, key);
  }
  add_waiter(ex, g, rid);
  if (leader != self_) forward(rid, g, leader, std::move(entry), std::move(key));
}

// The follower hands the encoded entry to the leader's peer listener; the leader appends it
// (or answers 503: not appended). The follower then waits for the entry to be applied here,
// matched by (origin, request id) in its envelope. Any other failure leaves the outcome unknown:
// the client waits for the apply or its 504.
void NodeImpl::forward(uint64_t rid, GroupId g, NodeId leader, std::string entry, std::string key) {
  Forward f{rid, g, std::move(entry), std::move(key)};
  if (forward_singly_.contains(leader)) return forward_one(leader, std::move(f));
  forwards_[leader].push_back(std::move(f));
}

namespace {

// The peer address of `leader` as host and port, or nullopt when it is unknown.
std::optional<std::pair<std::string, uint16_t>> peer_address(const MetaState& meta, NodeId leader) {
  const NodeInfo* n = meta.node(leader);
  const size_t colon = n ? n->peer.rfind(':') : std::string::npos;
  if (colon == std::string::npos) return std::nullopt;
  return std::pair{n->peer.substr(0, colon),
                   static_cast<uint16_t>(std::atoi(n->peer.c_str() + colon + 1))};
}

http::ClientRequest forward_request(std::string target, uint64_t cluster_id, NodeId self) {
  http::ClientRequest rq;
  rq.method = "POST";
  rq.target = std::move(target);
  rq.headers.push_back({transport::kHeaderCluster, std::to_string(cluster_id)});
  rq.headers.push_back({transport::kHeaderFrom, std::to_string(self.value())});
  return rq;
}

// A batch's body stops growing past this (one entry may take it over).
constexpr size_t kForwardBatchBytes = 1 << 20;

}  // namespace

// Every proposal this turn for groups another node leads goes to that leader in one request:
// one exchange over the peer connection per leader and turn instead of one per proposal (with
// followers taking two thirds of a cluster's writes, the single exchanges were a third of the
// loopback traffic per write, bench/etcd/README.md "Forwarding").
void NodeImpl::flush_forwards() {
  for (auto& [leader, queue] : forwards_) {
    if (queue.empty()) continue;
    std::vector<Forward> batch;
    size_t bytes = 0;
    for (Forward& f : queue) {
      if (!batch.empty() && (bytes + f.entry.size() > kForwardBatchBytes ||
                             batch.size() == kForwardBatchEntriesMax)) {
        send_forwards(leader, std::move(batch));
        batch.clear();
        bytes = 0;
      }
      bytes += kForwardRecordHeaderBytes + f.entry.size();
      batch.push_back(std::move(f));
    }
    send_forwards(leader, std::move(batch));
    queue.clear();
  }
}

void NodeImpl::send_forwards(NodeId leader, std::vector<Forward> batch) {
  auto addr = peer_address(meta_, leader);
  if (!addr) {
    for (const Forward& f : batch) {
      fail_waiter(f.rid, 503, "no_leader", "the leader's address is unknown");
    }
    return;
  }
  http::ClientRequest rq = forward_request(kForwardBatchPath, cluster_.cluster_id, self_);
  size_t bytes = 0;
  for (const Forward& f : batch) bytes += kForwardRecordHeaderBytes + f.entry.size();
  rq.body.reserve(bytes);
  for (const Forward& f : batch) append_forwarded(&rq.body, f.group, f.entry);
  const size_t answer_bytes = batch.size() * kForwardAnswerBytes + 4096;  // or a JSON error
  ++forward_metrics_.requests;
  forward_metrics_.proposals += batch.size();
  http_->fetch(
      addr->first, addr->second, std::move(rq),
      [this, leader, batch = std::move(batch)](Result<http::Response> r) mutable {
        if (!r) {
          // A connection that was never made carried nothing: nothing was appended. Any other
          // failure may have reached the leader, so the outcomes stay unknown (504).
          if (r.status().message().rfind("connect to ", 0) == 0) {
            for (const Forward& f : batch) {
              fail_waiter(f.rid, 503, "no_leader", "the leader is unreachable");
            }
          } else {
            log::debug("forward of {} proposals: {}", batch.size(), r.status().to_string());
          }
          return;
        }
        const int status = r->head.status;
        if (status == 404) {
          // A leader of an earlier version, without the batch path: nothing was appended.
          // Proposals to it go one by one from now on.
          log::info("forward: node {} takes no batches; forwarding to it one by one",
                    leader.value());
          forward_singly_.insert(leader);
          for (Forward& f : batch) forward_one(leader, std::move(f));
          return;
        }
        if (status == 503 || status == 413) {
          for (const Forward& f : batch) {
            fail_waiter(f.rid, status, status == 503 ? "no_leader" : "too_large", "not appended");
          }
          return;
        }
        auto answers = status == 200 ? decode_forward_answers(r->body, batch.size())
                                     : Result<std::vector<ForwardAnswer>>(Status(
                                           Code::kIoError, fmt::format("status {}", status)));
        if (!answers) {
          log::warn("forward of {} proposals to node {}: {}", batch.size(), leader.value(),
                    answers.status().to_string());
          return;
        }
        for (size_t i = 0; i < batch.size(); ++i) on_forward_answer(batch[i], (*answers)[i]);
      },
      answer_bytes);
}

void NodeImpl::on_forward_answer(const Forward& f, const ForwardAnswer& a) {
  if (a.status == 503) return fail_waiter(f.rid, 503, "no_leader", "not appended");
  if (a.status == 413) return fail_waiter(f.rid, 413, "too_large", "not appended");
  // The leader's log holds the key already: nothing was appended; the answer is that entry's,
  // once it is applied here.
  if (a.status == 200 && a.replay && !f.key.empty()) await_keyed(f.rid, f.group, a.index, f.key);
}

void NodeImpl::forward_one(NodeId leader, Forward f) {
  auto addr = peer_address(meta_, leader);
  if (!addr) return fail_waiter(f.rid, 503, "no_leader", "the leader's address is unknown");
  http::ClientRequest rq = forward_request(fmt::format("{}{}", kForwardPath, f.group.value()),
                                           cluster_.cluster_id, self_);
  rq.body = std::move(f.entry);
  ++forward_metrics_.requests;
  ++forward_metrics_.proposals;
  http_->fetch(
      addr->first, addr->second, std::move(rq),
      [this, rid = f.rid, g = f.group, key = std::move(f.key)](Result<http::Response> r) mutable {
        if (!r) {
          if (r.status().message().rfind("connect to ", 0) == 0) {
            return fail_waiter(rid, 503, "no_leader", "the leader is unreachable");
          }
          log::debug("forward {}: {}", rid, r.status().to_string());
          return;
        }
        if (r->head.status == 503) return fail_waiter(rid, 503, "no_leader", "not appended");
        if (r->head.status == 413) return fail_waiter(rid, 413, "too_large", "not appended");
        Json j = Json::parse(r->body, nullptr, /*allow_exceptions=*/false);
        if (r->head.status == 200 && !key.empty() && j.is_object() && j.value("replay", false) &&
            j.contains("index") && j["index"].is_number_unsigned()) {
          await_keyed(rid, g, LogIndex(j["index"].get<uint64_t>()), std::move(key));
        }
      },
      4096);
}

void NodeImpl::api_read(http::Exchange& ex, GroupId g) {
  const bool stale = ex.request().target.find("consistency=stale") != std::string::npos;
  if (waiters_.size() + reads_.size() >= kWaitersMax) {
    return respond_error(ex, 503, "unavailable", "too many requests waiting on this node");
  }
  const uint64_t rid = next_request_++;
  ctx(ex).rid = rid;
  reads_[rid] =
      ReadWait{&ex,   g,           std::move(ctx(ex).body),
               stale, LogIndex(0), io::Reactor::now() + std::chrono::milliseconds(kReadTimeoutMs)};
  if (stale) return serve_ready_reads(g);
  if (Status s = host_->read_index(g, rid); !s.is_ok()) {
    fail_waiter(rid, 503, "no_leader", s.message());
  }
}

void NodeImpl::serve_ready_reads(GroupId g) {
  std::vector<uint64_t> ready;
  for (auto& [rid, r] : reads_) {
    if (r.group == g && r.has_index && r.ex != nullptr && applied_[g] >= r.index) {
      ready.push_back(rid);
    }
  }
  for (uint64_t rid : ready) {
    ReadWait& r = reads_.at(rid);
    r.has_index = false;  // now in the app; not served twice
    app_->get_entry(g, std::move(r.query), [this, rid](Result<app::AppReply> reply) {
      auto it = reads_.find(rid);
      if (it == reads_.end()) return;
      http::Exchange& ex = *it->second.ex;
      ctx(ex).rid = 0;
      reads_.erase(it);
      if (!reply) return respond_error(ex, 503, "unavailable", reply.status().message());
      ex.respond(reply->status, reply->body,
                 reply->content_type.empty() ? "application/octet-stream" : reply->content_type);
    });
  }
}

// The core hands leadership over (a follower's request is forwarded to the leader by the core);
// the answer comes when this node sees the new leader, or 504 after two election timeouts
// (leadership may still move later).
void NodeImpl::api_transfer_leader(http::Exchange& ex, GroupId g) {
  Json j = Json::parse(ctx(ex).body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || j.size() != 1 || !j.contains("node") || !j["node"].is_number_unsigned()) {
    return respond_error(ex, 400, "bad_request", "body must be {\"node\": <node id>}");
  }
  const NodeId to(j["node"].get<uint64_t>());
  raft::Group* grp = host_->group(g);
  const raft::ConfState& conf = grp->conf_state();
  if (!std::binary_search(conf.voters.begin(), conf.voters.end(), to)) {
    return respond_error(ex, 400, "bad_request",
                         fmt::format("node {} is not a voter of group {}", to.value(), g.value()));
  }
  if (grp->leader() == to) return ex.respond(200, group_status_json(g), "application/json");
  if (grp->leader() == NodeId(0)) return respond_error(ex, 503, "no_leader", "no leader known");
  if (waiters_.size() + reads_.size() >= kWaitersMax) {
    return respond_error(ex, 503, "unavailable", "too many requests waiting on this node");
  }
  if (Status s = grp->transfer_leader(to); !s.is_ok()) {
    return respond_error(ex, 503, "no_leader", s.message());
  }
  host_->mark_dirty(g);
  const uint64_t rid = next_request_++;
  add_waiter(ex, g, rid);
  Waiter& w = waiters_.at(rid);
  w.transfer_to = to;
  w.deadline = io::Reactor::now() +
               std::chrono::milliseconds(2 * cfg_.raft.election_ticks * cfg_.raft.tick_ms);
}

void NodeImpl::finish_transfers(GroupId g, NodeId leader) {
  std::vector<uint64_t> done;
  for (const auto& [rid, w] : waiters_) {
    if (w.group == g && w.transfer_to == leader) done.push_back(rid);
  }
  for (uint64_t rid : done) {
    auto it = waiters_.find(rid);
    http::Exchange& ex = *it->second.ex;
    erase_waiter(it);
    ctx(ex).rid = 0;
    ex.respond(200, group_status_json(g), "application/json");
  }
}

std::string node_json(const NodeInfo& n, bool reachable) {
  return Json{
      {"id", n.id.value()}, {"peer", n.peer}, {"client", n.client}, {"reachable", reachable}}
      .dump();
}

void NodeImpl::api_cluster(http::Exchange& ex) {
  std::string body = "{\"nodes\":[";
  for (const auto& [id, n] : meta_.nodes()) {
    bool reachable = id == self_;
    if (!reachable) {
      auto st = transport_->peer_status(id);
      reachable = st && st->connected;
    }
    if (body.back() != '[') body += ',';
    body += node_json(n, reachable);
  }
  body += "]}";
  ex.respond(200, body, "application/json");
}

std::string NodeImpl::group_status_json(GroupId g) const {
  const raft::Group* grp = host_->group(g);
  if (grp == nullptr) {
    // Not started here (this node is not a member, or the group was deleted meanwhile): the
    // same fields, as a node that has seen none of the group's log.
    Json members = Json::array();
    if (const GroupInfo* info = meta_.group(g)) {
      for (NodeId n : info->members) members.push_back({{"node", n.value()}, {"role", "voter"}});
    }
    return Json{
        {"id", g.value()}, {"node", self_.value()}, {"role", "follower"}, {"leader", 0},
        {"term", 0},       {"commit_index", 0},     {"applied_index", 0}, {"first_index", 1},
        {"last_index", 0}, {"members", members}}
        .dump();
  }
  Json members = Json::array();
  const raft::ConfState& c = grp->conf_state();
  for (NodeId n : c.voters) members.push_back({{"node", n.value()}, {"role", "voter"}});
  for (NodeId n : c.learners) members.push_back({{"node", n.value()}, {"role", "learner"}});
  auto it = applied_.find(g);
  const LogIndex applied = it == applied_.end() ? LogIndex(0) : it->second;
  auto info = wal_->group(g);
  Json j{{"id", g.value()},
         {"node", self_.value()},
         {"role", role_word(*grp, self_)},
         {"leader", grp->leader().value()},
         {"term", grp->term().value()},
         {"commit_index", grp->commit_index().value()},
         {"applied_index", applied.value()},
         {"first_index", info ? info->mark.index.value() + 1 : 1},
         {"last_index", grp->last_index().value()},
         {"members", members}};
  return j.dump();
}

// ---- answering waiting clients -------------------------------------------------------------

void NodeImpl::finish_waiter(uint64_t rid, int status, std::string body, std::string content_type,
                             LogIndex index) {
  auto it = waiters_.find(rid);
  if (it == waiters_.end()) return;
  http::Exchange& ex = *it->second.ex;
  erase_waiter(it);
  ctx(ex).rid = 0;
  ex.add_header("Raftd-Index", std::to_string(index.value()));
  ex.respond(status, body, content_type);
}

void NodeImpl::fail_waiter(uint64_t rid, int status, std::string_view code,
                           std::string_view message) {
  http::Exchange* ex = nullptr;
  if (auto it = waiters_.find(rid); it != waiters_.end()) {
    ex = it->second.ex;
    erase_waiter(it);
  } else if (auto r = reads_.find(rid); r != reads_.end()) {
    ex = r->second.ex;
    reads_.erase(r);
  }
  if (ex == nullptr) return;
  ctx(*ex).rid = 0;
  respond_error(*ex, status, code, message);
}

void NodeImpl::sweep_timeouts() {
  const io::TimePoint now = io::Reactor::now();
  std::vector<uint64_t> late;
  std::vector<uint64_t> late_transfers;
  for (const auto& [rid, w] : waiters_) {
    if (w.deadline <= now) (w.transfer_to == NodeId(0) ? late : late_transfers).push_back(rid);
  }
  for (const auto& [rid, r] : reads_) {
    if (r.deadline <= now) late.push_back(rid);
  }
  for (uint64_t rid : late) {
    fail_waiter(rid, 504, "timeout", "not applied in time; the outcome is unknown");
  }
  for (uint64_t rid : late_transfers) {
    fail_waiter(rid, 504, "timeout",
                "the new leader was not seen within two election timeouts; leadership may "
                "still move");
  }
}

// ---- forwarded proposals (peer listener) ---------------------------------------------------

void NodeImpl::forward_headers(http::Exchange& ex) {
  ex.set_context(std::make_unique<ApiContext>());
  const http::Request& rq = ex.request();
  auto cluster = rq.header(transport::kHeaderCluster);
  auto from = rq.header(transport::kHeaderFrom);
  uint64_t from_id = 0;
  if (rq.method != "POST" || !cluster || *cluster != std::to_string(cluster_.cluster_id) || !from ||
      !parse_id(*from, &from_id) || meta_.node(NodeId(from_id)) == nullptr) {
    log::warn("peer: refused a forwarded proposal (wrong cluster or unknown node)");
    return respond_error(ex, 403, "forbidden", "not a member of this cluster");
  }
}

http::Flow NodeImpl::forward_body(http::Exchange& ex, std::string_view chunk) {
  if (ex.finished()) return http::Flow::kContinue;
  ApiContext& c = ctx(ex);
  // One entry, or a batch of them that stopped growing past kForwardBatchBytes.
  const uint64_t one = cfg_.limits.client_body_bytes_max + kForwardBytesMax;
  const uint64_t limit = ex.request().target == kForwardBatchPath
                             ? kForwardBatchBytes + kForwardRecordHeaderBytes + one
                             : one;
  if (c.body.size() + chunk.size() > limit) {
    c.too_large = true;
    respond_error(ex, 413, "too_large", "forwarded entry over the limit");
    return http::Flow::kContinue;
  }
  c.body.append(chunk);
  return http::Flow::kContinue;
}

ForwardAnswer NodeImpl::accept_forward(GroupId g, NodeId from, std::string entry,
                                       std::string* why) {
  auto env = decode_envelope(entry);
  const bool meta = g == GroupId(0);
  if (!env || env->origin != from || env->kind != (meta ? EntryKind::kMeta : EntryKind::kApp) ||
      (meta && !decode_meta_command(env->payload))) {
    if (why) *why = "malformed forwarded entry";
    return {400, false, LogIndex(0)};
  }
  raft::Group* grp = host_->group(g);
  if (grp == nullptr || grp->role() != raft::Role::kLeader || stopping_) {
    if (why) *why = "not the leader";
    return {503, false, LogIndex(0)};
  }
  const std::string key(env->key);
  if (!key.empty()) {
    if (const KeyTable::Slot* slot = keys_.find(g, key)) return {200, true, slot->index};
  }
  auto r = host_->propose(g, std::move(entry));
  if (!r) {
    if (why) *why = r.status().message();
    return {503, false, LogIndex(0)};
  }
  if (!key.empty()) keys_.note(g, *r, key);
  return {200, false, *r};
}

void NodeImpl::forward_end(http::Exchange& ex) {
  if (ex.finished()) return;
  uint64_t from = 0;
  parse_id(*ex.request().header(transport::kHeaderFrom), &from);
  std::string& body = ctx(ex).body;
  if (ex.request().target == kForwardBatchPath) {
    auto records = decode_forwarded(body);
    if (!records) {
      return respond_error(ex, records.status().code() == Code::kTooLarge ? 413 : 400,
                           records.status().code() == Code::kTooLarge ? "too_large" : "bad_request",
                           records.status().message());
    }
    std::string answers;
    answers.reserve(records->size() * kForwardAnswerBytes);
    for (const ForwardedEntry& r : *records) {
      append_forward_answer(&answers,
                            accept_forward(r.group, NodeId(from), std::string(r.entry), nullptr));
    }
    return ex.respond(200, std::move(answers), "application/octet-stream");
  }
  std::string_view rest = std::string_view(ex.request().target).substr(strlen(kForwardPath));
  uint64_t g = 0;
  if (!parse_id(rest, &g)) return respond_error(ex, 400, "bad_request", "bad group id");
  std::string why;
  const ForwardAnswer a = accept_forward(GroupId(g), NodeId(from), std::move(body), &why);
  if (a.status == 400) return respond_error(ex, 400, "bad_request", why);
  if (a.status == 503) return respond_error(ex, 503, "no_leader", why);
  ex.respond(200,
             a.replay ? fmt::format("{{\"index\":{},\"replay\":true}}", a.index.value())
                      : fmt::format("{{\"index\":{}}}", a.index.value()),
             "application/json");
}

}  // namespace raftd::node
