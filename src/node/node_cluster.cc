// NodeImpl, continued: nodes joining and leaving the cluster (API.md sections 1 and 2,
// doc/node.md "Joining a running cluster"): POST and DELETE /v1/cluster/nodes, a joining node's
// wait for its addition, and the peer endpoint that answers it. The meta group's own
// membership follows the cluster's nodes (reconcile_meta_members, node_members.cc).
#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "config/values.h"
#include "node/node_impl.h"
#include "raftd/base/log.h"

namespace raftd::node {
namespace {

using Json = nlohmann::json;

// A joining node asks one contact at a time, the next one after each answer or failure, this
// often: an addition is noticed within about a second, and an idle wait costs nothing.
constexpr auto kJoinPoll = std::chrono::milliseconds(500);
// ... and says that it is still waiting this often.
constexpr auto kJoinLogEvery = std::chrono::seconds(10);
// A join answer lists the cluster's nodes: a few hundred bytes each at most.
constexpr size_t kJoinAnswerBytesMax = 4 << 20;

// An address of an added node: "host:port" as the configuration parses it (canonical dotted
// decimal), so that the string recorded is the one the node's own [listen] prints.
std::optional<std::string> canonical_address(const Json& j, std::string* error) {
  config::Address a;
  if (!j.is_string()) {
    *error = "addresses are strings \"host:port\"";
    return std::nullopt;
  }
  if (auto bad = config::parse_address(j.get<std::string>(), &a)) {
    *error = *bad;
    return std::nullopt;
  }
  return a.to_string();
}

}  // namespace

// ---- the joining node ----------------------------------------------------------------------

// A node with an empty data_dir that is not in [cluster].initial: until a contact (a member
// listed in initial) says it was added, it serves only /healthz (200) and 503 for everything
// else, and keeps no state (a crash while waiting leaves nothing behind).
Status NodeImpl::start_joining() {
  if (Status s = open_client_server(); !s.is_ok()) return s;
  http_ = std::make_unique<http::Client>(*reactor_, http::ClientOptions{});
  join_timer_ = std::make_unique<io::RepeatingTimer>(*reactor_, kJoinPoll, [this] { poll_join(); });
  join_timer_->start();
  std::string contacts;
  for (const config::Member& m : cfg_.cluster.initial) {
    contacts +=
        fmt::format("{}{} at {}", contacts.empty() ? "" : ", ", m.id.value(), m.peer.to_string());
  }
  log::info(
      "raftd: node {} is joining a running cluster: it waits to be added "
      "(POST /v1/cluster/nodes on any member); contacts: {}",
      self_.value(), contacts);
  join_logged_ = io::Reactor::now();
  return Status::ok();
}

// Runs the reactor until the node joined (then opens everything else and returns OK with
// joining_ false), was asked to stop (OK, joining_ still true), or cannot join.
Status NodeImpl::run_joining() {
  while (joining_) {
    if (stop_requested_.load()) return stop_joining(Status::ok());
    if (!join_error_.is_ok()) return stop_joining(join_error_);
    if (join_answer_) {
      if (Status s = finish_join(); !s.is_ok()) return stop_joining(s);
      continue;
    }
    reactor_->run_once(std::chrono::milliseconds(50));
  }
  return Status::ok();
}

Status NodeImpl::stop_joining(Status why) {
  if (join_timer_) join_timer_->stop();
  client_server_->close();
  http_->close();
  while (!client_server_->closed() || !http_->closed()) {
    reactor_->run_once(std::chrono::milliseconds(50));
  }
  reactor_->shutdown();
  if (why.is_ok()) log::info("raftd: node {} stopped before it joined", self_.value());
  return why;
}

void NodeImpl::poll_join() {
  if (join_asking_ || join_answer_ || !join_error_.is_ok()) return;
  const std::vector<config::Member>& contacts = cfg_.cluster.initial;
  const config::Member& c = contacts[join_next_++ % contacts.size()];
  http::ClientRequest rq;
  rq.method = "GET";
  rq.target = kJoinPath;
  rq.headers.push_back({transport::kHeaderFrom, std::to_string(self_.value())});
  join_asking_ = true;
  http_->fetch(
      c.peer.host, c.peer.port, std::move(rq),
      [this, id = c.id](Result<http::Response> r) {
        join_asking_ = false;
        on_join_answer(id, std::move(r));
      },
      kJoinAnswerBytesMax);
}

void NodeImpl::on_join_answer(NodeId contact, Result<http::Response> r) {
  const io::TimePoint now = io::Reactor::now();
  const bool log_now = now - join_logged_ >= kJoinLogEvery;
  if (log_now) join_logged_ = now;
  if (!r) {
    if (log_now) {
      log::info("raftd: node {} waits to join; contact {}: {}", self_.value(), contact.value(),
                r.status().to_string());
    }
    return;
  }
  if (r->head.status == 410) {
    join_error_ = Status(Code::kInvalidArgument,
                         fmt::format("node {} was removed from the cluster (contact {} says so); "
                                     "a node id is never used again: give this node a new id",
                                     self_.value(), contact.value()));
    return;
  }
  if (r->head.status != 200) {
    if (log_now) {
      log::info(
          "raftd: node {} waits to be added (POST /v1/cluster/nodes on any member); "
          "contact {} answered {}",
          self_.value(), contact.value(), r->head.status);
    }
    return;
  }
  auto a = decode_join_answer(r->body);
  if (!a) {
    log::warn("raftd: node {}: contact {}: {}", self_.value(), contact.value(),
              a.status().to_string());
    return;
  }
  join_answer_ = std::move(*a);
}

// The contact's answer becomes this node's cluster file; the node then starts as any other
// whose meta group has not caught up yet: its replica of group 0 (voters: the initial members,
// which it is not) receives the meta log from the leader, which added it as a learner.
Status NodeImpl::finish_join() {
  JoinAnswer a = std::move(*join_answer_);
  join_answer_.reset();
  const auto me = std::find_if(a.nodes.begin(), a.nodes.end(),
                               [&](const NodeInfo& n) { return n.id == self_; });
  if (me == a.nodes.end()) {
    return Status(Code::kCorruption, fmt::format("node {}: a contact said it was added, but its "
                                                 "node list lacks it",
                                                 self_.value()));
  }
  if (me->peer != cfg_.listen.peer.to_string() || me->client != cfg_.listen.client.to_string()) {
    return Status(Code::kInvalidArgument,
                  fmt::format("node {} was added with peer {} and client {}, but its [listen] "
                              "has peer {} and client {}: remove the node and add it again with "
                              "a new id, or fix [listen]",
                              self_.value(), me->peer, me->client, cfg_.listen.peer.to_string(),
                              cfg_.listen.client.to_string()));
  }
  cluster_ = ClusterFile{a.cluster_id, self_, std::move(a.initial), std::move(a.nodes)};
  if (Status s = write_cluster_file(cfg_.node.data_dir, cluster_); !s.is_ok()) return s;
  joining_ = false;
  join_timer_->stop();
  log::info("raftd: node {} was added to cluster {:016x}; starting", self_.value(),
            cluster_.cluster_id);
  if (Status s = open_wal(); !s.is_ok()) return s;
  if (Status s = open_snapshots(); !s.is_ok()) return s;
  if (Status s = open_journal(); !s.is_ok()) return s;
  if (Status s = open_network(); !s.is_ok()) return s;
  log::info("raftd: node {} of cluster {:016x} serving clients on {}, peers on {} (joined)",
            self_.value(), cluster_.cluster_id, cfg_.listen.client.to_string(),
            cfg_.listen.peer.to_string());
  return Status::ok();
}

// A node this one talks to: one the meta state lists, one removed from the cluster that the
// meta group's configuration still has (departing_), or, while this node's meta replica has not
// yet replayed its own addition, one its contact listed when it joined.
bool NodeImpl::known_node(NodeId id) const {
  if (meta_.node(id) != nullptr || departing_.contains(id)) return true;
  if (meta_.node_id_used(self_) || meta_.node_id_used(id)) return false;
  return std::any_of(cluster_.contacts.begin(), cluster_.contacts.end(),
                     [&](const NodeInfo& n) { return n.id == id; });
}

// GET /raft/v1/join with Raftd-From: the joining node's id. 404 until its addition is applied
// here (it asks again), 410 once it was removed, else the cluster's identity and nodes.
void NodeImpl::join_request(http::Exchange& ex) {
  uint64_t id = 0;
  auto from = ex.request().header(transport::kHeaderFrom);
  if (ex.request().method != "GET") return respond_error(ex, 405, "method_not_allowed", "use GET");
  if (!from || !parse_id(*from, &id) || id == 0) {
    return respond_error(ex, 400, "bad_request", "Raftd-From must be the joining node's id");
  }
  if (stopping_) return respond_error(ex, 503, "unavailable", "the node is shutting down");
  // A node removed from the cluster no longer follows the meta log: what it knows is stale
  // (a node removed after it would look present). The joining node asks another member.
  if (meta_.node_id_used(self_) && meta_.node(self_) == nullptr) {
    return respond_error(ex, 503, "unavailable",
                         "this node was removed from the cluster; ask another member");
  }
  if (!meta_.node_id_used(NodeId(id))) {
    return respond_error(ex, 404, "not_found",
                         fmt::format("node {} has not been added (yet) as this node knows", id));
  }
  if (meta_.node(NodeId(id)) == nullptr) {
    return respond_error(ex, 410, "gone", fmt::format("node {} was removed from the cluster", id));
  }
  JoinAnswer a{cluster_.cluster_id, cluster_.members, {}};
  for (const auto& [n, info] : meta_.nodes()) a.nodes.push_back(info);
  ex.respond(200, encode_join_answer(a), "application/json");
}

// ---- the API -------------------------------------------------------------------------------

// POST /v1/cluster/nodes {"id", "peer", "client"} and DELETE /v1/cluster/nodes/{id}: meta
// commands, answered once applied on this node (201 with the node's entry; 200).
void NodeImpl::api_cluster_nodes(http::Exchange& ex, const std::vector<std::string>& parts,
                                 std::string body) {
  const std::string& m = ex.request().method;
  if (parts.size() == 3) {
    if (m != "POST") return respond_error(ex, 405, "method_not_allowed", "use POST");
    Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || j.size() != 3 || !j.contains("id") || !j["id"].is_number_unsigned() ||
        j["id"].get<uint64_t>() == 0 || !j.contains("peer") || !j.contains("client")) {
      return respond_error(ex, 400, "bad_request",
                           "body must be {\"id\": <node id>, \"peer\": \"host:port\", "
                           "\"client\": \"host:port\"}");
    }
    std::string error;
    auto peer = canonical_address(j["peer"], &error);
    auto client = peer ? canonical_address(j["client"], &error) : std::nullopt;
    if (!peer || !client) return respond_error(ex, 400, "bad_request", error);
    const NodeInfo n{NodeId(j["id"].get<uint64_t>()), *peer, *client};
    if (meta_.node_id_used(n.id)) {
      return respond_error(ex, 409, "conflict",
                           fmt::format("node id {} exists or was used", n.id.value()));
    }
    for (const auto& [id, other] : meta_.nodes()) {
      for (const std::string* a : {&other.peer, &other.client}) {
        if (*a == n.peer || *a == n.client) {
          return respond_error(ex, 400, "bad_request",
                               fmt::format("address {} is node {}'s", *a, id.value()));
        }
      }
    }
    if (n.peer == n.client) {
      return respond_error(ex, 400, "bad_request", "peer and client must differ");
    }
    return propose_entry(ex, GroupId(0), EntryKind::kMeta, encode_meta_command(AddNode{n}), "");
  }
  if (m != "DELETE") return respond_error(ex, 405, "method_not_allowed", "use DELETE");
  uint64_t id = 0;
  if (!parse_id(parts[3], &id) || id == 0) {
    return respond_error(ex, 400, "bad_request", "bad node id");
  }
  if (meta_.node(NodeId(id)) == nullptr) return respond_error(ex, 404, "not_found", "no such node");
  if (const std::vector<GroupId> gs = meta_.groups_of(NodeId(id)); !gs.empty()) {
    return respond_error(ex, 409, "conflict",
                         fmt::format("node {} is still a member of {} group(s) (group {} first): "
                                     "remove it from them first",
                                     id, gs.size(), gs.front().value()));
  }
  if (meta_.nodes().size() == 1) {
    return respond_error(ex, 400, "bad_request", "cannot remove the cluster's last node");
  }
  propose_entry(ex, GroupId(0), EntryKind::kMeta, encode_meta_command(RemoveNode{NodeId(id)}), "");
}

}  // namespace raftd::node
