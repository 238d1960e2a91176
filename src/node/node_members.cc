// NodeImpl, continued: membership changes of a group through the client API (API.md section 2,
// doc/node.md "Membership changes"). The group's own log is the source of truth for who is a
// member; the meta group's hosting records follow it, written by the group's leader, so that an
// added node starts the group and a removed one stops it.
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

#include "node/node_impl.h"
#include "raftd/base/log.h"

namespace raftd::node {
namespace {

using Json = nlohmann::json;

// A hosting record the leader proposed is proposed again after this long if the meta state does
// not show it yet (the proposal may have been lost with a meta leader).
constexpr auto kHostingRetry = std::chrono::milliseconds(1000);

bool contains(const std::vector<NodeId>& v, NodeId n) {
  return std::find(v.begin(), v.end(), n) != v.end();
}

// Every node the configuration names (joint configurations included).
std::vector<NodeId> members_of(const raft::ConfState& c) {
  std::vector<NodeId> out = c.voters;
  for (const auto* v : {&c.learners, &c.voters_outgoing, &c.learners_next}) {
    for (NodeId n : *v) {
      if (!contains(out, n)) out.push_back(n);
    }
  }
  return out;
}

}  // namespace

// POST /v1/groups/{g}/members {"node": N, "role": "voter"|"learner"} and
// DELETE /v1/groups/{g}/members/{N}. The change is proposed by the group's leader; another
// member relays the request to the leader's client API and answers once its own replica has
// applied as far as the leader's answer says.
void NodeImpl::api_members(http::Exchange& ex, GroupId g, const std::vector<std::string>& parts,
                           std::string body) {
  const std::string& m = ex.request().method;
  const bool add = parts.size() == 4;
  if (add ? m != "POST" : m != "DELETE") {
    return respond_error(ex, 405, "method_not_allowed", add ? "use POST" : "use DELETE");
  }
  raft::Group* grp = host_->group(g);
  if (g == GroupId(0) || grp == nullptr) {
    return respond_error(ex, 404, "unknown_group", "this node hosts no such group");
  }
  NodeId node;
  bool learner = false;
  if (add) {
    Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
    const bool role_ok =
        !j.is_object() || !j.contains("role") ||
        (j["role"].is_string() && (j["role"] == "voter" || j["role"] == "learner"));
    if (!j.is_object() || !j.contains("node") || !j["node"].is_number_unsigned() || !role_ok ||
        j.size() > 2 || (j.size() == 2 && !j.contains("role"))) {
      return respond_error(ex, 400, "bad_request",
                           "body must be {\"node\": <node id>, \"role\": \"voter\"|\"learner\"}");
    }
    node = NodeId(j["node"].get<uint64_t>());
    learner = j.contains("role") && j["role"] == "learner";
  } else {
    uint64_t id = 0;
    const std::string& s = parts[4];
    auto r = std::from_chars(s.data(), s.data() + s.size(), id);
    if (r.ec != std::errc() || r.ptr != s.data() + s.size() || id == 0) {
      return respond_error(ex, 400, "bad_request", "bad node id");
    }
    node = NodeId(id);
  }
  if (meta_.node(node) == nullptr) {
    return respond_error(ex, 400, "bad_request", fmt::format("unknown node {}", node.value()));
  }
  // A replica that left its group is not taken back (as etcd and dragonboat refuse a removed
  // member's id): the node kept the removed replica's compacted log and its votes, which a new
  // replica must not inherit. doc/node.md "Membership changes" has the way around it.
  if (const GroupInfo* info = meta_.group(g);
      add && info != nullptr && std::binary_search(info->left.begin(), info->left.end(), node)) {
    return respond_error(ex, 409, "conflict",
                         fmt::format("node {} left this group, and a node that left a group "
                                     "cannot rejoin it; add another node",
                                     node.value()));
  }
  const raft::ConfState& conf = grp->conf_state();
  const bool voter = contains(conf.voters, node);
  const bool is_learner = contains(conf.learners, node);
  raft::ConfChange cc;
  if (add && voter) {
    return respond_error(ex, 400, "bad_request",
                         fmt::format("node {} is already a voter", node.value()));
  }
  if (add && learner && is_learner) {
    return respond_error(ex, 400, "bad_request",
                         fmt::format("node {} is already a learner", node.value()));
  }
  if (!add && !voter && !is_learner) {
    return respond_error(ex, 400, "bad_request",
                         fmt::format("node {} is not a member", node.value()));
  }
  if (!add && voter && conf.voters.size() == 1) {
    return respond_error(ex, 400, "bad_request", "cannot remove the last voter");
  }
  cc.changes.push_back(raft::ConfChangeItem{
      add ? (learner ? raft::ConfChangeType::kAddLearner : raft::ConfChangeType::kAddVoter)
          : raft::ConfChangeType::kRemove,
      node});
  if (waiters_.size() + reads_.size() >= kWaitersMax) {
    return respond_error(ex, 503, "unavailable", "too many requests waiting on this node");
  }
  const NodeId leader = grp->leader();
  if (leader == NodeId(0)) return respond_error(ex, 503, "no_leader", "the group has no leader");
  if (leader != self_) return relay_members(ex, g, leader, std::move(body));
  auto r = grp->propose_conf_change(cc);
  if (!r) {
    if (r.status().code() == Code::kInvalidArgument) {
      return respond_error(ex, 400, "bad_request", r.status().message());
    }
    if (grp->role() == raft::Role::kLeader && r.status().code() == Code::kUnavailable) {
      return respond_error(ex, 409, "conflict",
                           "another membership change of the group is pending; retry");
    }
    return respond_error(ex, 503, "no_leader", r.status().message());
  }
  host_->mark_dirty(g);
  const uint64_t rid = next_request_++;
  add_waiter(ex, g, rid);
  conf_waits_[{g, *r}] = {rid, grp->term()};
}

// The leader's answer is relayed; a 200 is held until this node's replica applied as far as the
// leader's status says (the change is then applied here too).
void NodeImpl::relay_members(http::Exchange& ex, GroupId g, NodeId leader, std::string body) {
  const NodeInfo* n = meta_.node(leader);
  size_t colon = n ? n->client.rfind(':') : std::string::npos;
  if (colon == std::string::npos) {
    return respond_error(ex, 503, "no_leader", "the leader's address is unknown");
  }
  http::ClientRequest rq;
  rq.method = ex.request().method;
  rq.target = ex.request().target;
  if (cfg_.auth.client_token) {
    rq.headers.push_back({"Authorization", "Bearer " + *cfg_.auth.client_token});
  }
  if (!body.empty()) rq.headers.push_back({"Content-Type", "application/json"});
  rq.body = std::move(body);
  const uint64_t rid = next_request_++;
  add_waiter(ex, g, rid);
  const std::string host = n->client.substr(0, colon);
  const auto port = static_cast<uint16_t>(std::atoi(n->client.c_str() + colon + 1));
  http_->fetch(
      host, port, std::move(rq),
      [this, rid, g](Result<http::Response> r) {
        auto it = waiters_.find(rid);
        if (it == waiters_.end()) return;
        if (!r) {
          if (r.status().message().rfind("connect to ", 0) == 0) {
            return fail_waiter(rid, 503, "no_leader", "the leader is unreachable");
          }
          return fail_waiter(rid, 504, "timeout", "the leader did not answer; check the status");
        }
        // The leader names the change's log index; this node answers once it applied it.
        uint64_t index = 0;
        if (auto h = http::find_header(r->head.headers, "Raftd-Index");
            r->head.status == 200 && h) {
          auto [p, ec] = std::from_chars(h->data(), h->data() + h->size(), index);
          if (ec != std::errc() || p != h->data() + h->size()) index = 0;
        }
        if (index > 0) {
          it->second.conf_applied = LogIndex(index);
          ++relays_waiting_;
          return finish_relayed(g);
        }
        http::Exchange& client = *it->second.ex;
        erase_waiter(it);
        client.respond(r->head.status, r->body, "application/json");
      },
      64 * 1024);
}

// Relayed changes whose index this node's replica has applied are answered with its status.
void NodeImpl::finish_relayed(GroupId g) {
  const raft::Group* grp = host_->group(g);
  if (grp == nullptr) return;
  std::vector<uint64_t> done;
  for (const auto& [rid, w] : waiters_) {
    if (w.group == g && w.conf_applied > LogIndex(0) && grp->applied_index() >= w.conf_applied) {
      done.push_back(rid);
    }
  }
  for (uint64_t rid : done) {
    auto it = waiters_.find(rid);
    http::Exchange& ex = *it->second.ex;
    ex.add_header("Raftd-Index", std::to_string(it->second.conf_applied.value()));
    erase_waiter(it);
    ex.respond(200, group_status_json(g), "application/json");
  }
}

// A configuration change of g was applied by this replica (the core applied it before handing
// the entry over): its proposer, if waiting here, is answered, and the hosting records follow.
void NodeImpl::on_conf_applied(GroupId g, const raft::Entry& e) {
  auto it = conf_waits_.find({g, e.index});
  if (it != conf_waits_.end()) {
    const auto [rid, term] = it->second;
    conf_waits_.erase(it);
    if (term == e.term) {
      auto w = waiters_.find(rid);
      if (w != waiters_.end()) {
        http::Exchange& ex = *w->second.ex;
        erase_waiter(w);
        ex.add_header("Raftd-Index", std::to_string(e.index.value()));
        ex.respond(200, group_status_json(g), "application/json");
      }
    } else {
      fail_waiter(rid, 503, "no_leader", "the change was lost with its leader; retry");
    }
  }
  hosting_check_.insert(g);
}

// On the group's leader, with its whole log applied (its configuration is then the newest the
// group has): every member is recorded as hosting the group, and no one else. Returns false
// while that is not so yet (checked again at the next tick).
bool NodeImpl::reconcile_hosts(GroupId g) {
  const raft::Group* grp = host_->group(g);
  const GroupInfo* info = meta_.group(g);
  if (grp == nullptr || info == nullptr || grp->role() != raft::Role::kLeader) return true;
  if (grp->applied_index() != grp->last_index()) return false;
  const std::vector<NodeId> members = members_of(grp->conf_state());
  const io::TimePoint now = io::Reactor::now();
  auto propose = [&](NodeId n, MetaCommand cmd) {
    io::TimePoint& last = hosting_sent_[{g, n}];
    if (now - last < kHostingRetry) return;
    last = now;
    propose_meta(std::move(cmd));
  };
  bool settled = true;
  for (NodeId n : members) {
    if (!info->hosted_by(n) && meta_.node(n) != nullptr) {
      settled = false;
      propose(n, HostGroup{g, n});
    }
  }
  for (NodeId n : info->hosts) {
    if (!contains(members, n)) {
      settled = false;
      propose(n, UnhostGroup{g, n});
    }
  }
  return settled;
}

// On the meta group's leader, with its whole log applied: the meta group's own membership
// follows the cluster's nodes (doc/node.md "Joining a running cluster"). Every node of the
// cluster is a member (an added one joins as a learner, so that it receives the meta log); the
// voters stay as many as the initial members were, a learner that caught up taking the place of
// a removed voter; a removed node leaves. One change at a time, the most urgent first.
void NodeImpl::reconcile_meta_members() {
  raft::Group* meta = host_->group(GroupId(0));
  if (meta == nullptr || meta->role() != raft::Role::kLeader ||
      meta->applied_index() != meta->last_index()) {
    return;
  }
  const io::TimePoint now = io::Reactor::now();
  if (now - meta_conf_sent_ < kHostingRetry) return;
  const raft::ConfState& conf = meta->conf_state();
  if (conf.joint()) return;  // the core leaves it by itself
  std::optional<raft::ConfChangeItem> change;
  for (const auto& [id, n] : meta_.nodes()) {
    if (!contains(conf.voters, id) && !contains(conf.learners, id)) {
      change = raft::ConfChangeItem{raft::ConfChangeType::kAddLearner, id};
      break;
    }
  }
  const size_t live_voters = static_cast<size_t>(std::count_if(
      conf.voters.begin(), conf.voters.end(), [&](NodeId v) { return meta_.node(v) != nullptr; }));
  if (!change && live_voters < cluster_.members.size()) {
    for (NodeId l : conf.learners) {
      const auto p = meta->progress(l);
      if (meta_.node(l) != nullptr && p && p->match >= meta->commit_index()) {
        change = raft::ConfChangeItem{raft::ConfChangeType::kAddVoter, l};
        break;
      }
    }
  }
  if (!change) {
    for (NodeId n : members_of(conf)) {
      if (meta_.node(n) == nullptr && !(contains(conf.voters, n) && conf.voters.size() == 1)) {
        change = raft::ConfChangeItem{raft::ConfChangeType::kRemove, n};
        break;
      }
    }
  }
  if (!change) return;
  meta_conf_sent_ = now;
  raft::ConfChange cc;
  cc.changes.push_back(*change);
  const char* what = change->type == raft::ConfChangeType::kAddLearner ? "adds node {} as a learner"
                     : change->type == raft::ConfChangeType::kAddVoter ? "promotes node {} to voter"
                                                                       : "removes node {}";
  if (auto r = meta->propose_conf_change(cc); r) {
    host_->mark_dirty(GroupId(0));
    log::info("meta: the meta group {} (entry {})",
              fmt::format(fmt::runtime(what), change->node.value()), r->value());
  } else {
    log::debug("meta: membership change not proposed: {}", r.status().to_string());
  }
}

// A removed node stays a peer while the meta group's configuration has it (its leader, say,
// goes on until its own removal commits and then hands over); no longer once it is out.
void NodeImpl::prune_departing() {
  const raft::Group* meta = host_->group(GroupId(0));
  const std::vector<NodeId> members =
      meta != nullptr ? members_of(meta->conf_state()) : std::vector<NodeId>{};
  const size_t before = departing_.size();
  std::erase_if(departing_, [&](const auto& d) { return !contains(members, d.first); });
  if (departing_.size() != before && transport_) update_peers();
}

// A meta command raftd proposes on its own (no client waits for it).
void NodeImpl::propose_meta(const MetaCommand& cmd) {
  const raft::Group* meta = host_->group(GroupId(0));
  if (meta == nullptr || meta->leader() == NodeId(0)) return;  // retried by the caller
  std::string entry = encode_envelope(EntryKind::kMeta, self_, 0, "", encode_meta_command(cmd));
  if (meta->leader() == self_) {
    if (auto r = host_->propose(GroupId(0), std::move(entry)); !r) {
      log::debug("meta: {}", r.status().to_string());
    }
    return;
  }
  forward(0, GroupId(0), meta->leader(), std::move(entry), "");
}

// Only groups whose configuration changed, or whose leader is new here, are looked at: an idle
// node with many groups pays nothing per tick.
void NodeImpl::reconcile_all_hosts() {
  for (auto it = hosting_check_.begin(); it != hosting_check_.end();) {
    it = reconcile_hosts(*it) ? hosting_check_.erase(it) : std::next(it);
  }
  for (auto it = hosting_sent_.begin(); it != hosting_sent_.end();) {
    it = io::Reactor::now() - it->second > 10 * kHostingRetry ? hosting_sent_.erase(it)
                                                              : std::next(it);
  }
}

}  // namespace raftd::node
