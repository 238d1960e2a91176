#include "cli/client_commands.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>

#include "cli/cli.h"
#include "cli/client.h"

namespace raftd::cli {

namespace {

using nlohmann::json;

// What a command talks through: the parsed endpoint and a session. Built by open_session().
struct Target {
  const char* name = "";  // "propose", "group create", ... for messages
  Endpoint endpoint;
  std::unique_ptr<ClientSession> session;
};

// Usage error (bad endpoint) or failure (no reactor); else nullopt and `t` ready.
std::optional<int> open_session(const char* name, const std::string& endpoint,
                                const std::string& token, std::uint32_t timeout_ms, Target& t) {
  t.name = name;
  Result<Endpoint> ep = parse_endpoint(endpoint);
  if (!ep) {
    std::fprintf(stderr, "raftd %s: %s\n", name, ep.status().message().c_str());
    return kExitUsage;
  }
  t.endpoint = std::move(ep.value());
  Result<std::unique_ptr<ClientSession>> s = ClientSession::create(token, timeout_ms);
  if (!s) {
    std::fprintf(stderr, "raftd %s: %s\n", name, s.status().message().c_str());
    return kExitFailed;
  }
  t.session = std::move(s.value());
  return std::nullopt;
}

bool is_success(int status) { return status >= 200 && status < 300; }

// "raftd CMD: 503 no_leader: MESSAGE" from a JSON error body, else the status and the body's
// start (an error from something that is not raftd, or an application's answer to a read).
int report_answer_error(const char* name, const Answer& a) {
  constexpr std::size_t kBodyShownMax = 200;
  json j = json::parse(a.body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_string()) {
    std::string line =
        fmt::format("raftd {}: {} {}", name, a.status, j["error"].get<std::string>());
    if (j.contains("message") && j["message"].is_string()) {
      line += ": " + j["message"].get<std::string>();
    }
    std::fprintf(stderr, "%s\n", line.c_str());
  } else {
    std::string shown = a.body.substr(0, kBodyShownMax);
    std::replace(shown.begin(), shown.end(), '\n', ' ');
    std::fprintf(stderr, "raftd %s: %d%s%s\n", name, a.status, shown.empty() ? "" : ": ",
                 shown.c_str());
  }
  return kExitFailed;
}

int report_failure(const char* name, const Status& s) {
  std::fprintf(stderr, "raftd %s: %s\n", name, s.message().c_str());
  return kExitFailed;
}

// Sends a request expecting a 2xx JSON answer. On any failure prints it and returns the exit
// code; else nullopt with `out` parsed.
std::optional<int> call_json(Target& t, std::string_view method, const std::string& target,
                             json& out, std::string body = {}) {
  Result<Answer> a =
      t.session->call(t.endpoint, method, target, std::move(body), "application/json");
  if (!a) return report_failure(t.name, a.status());
  if (!is_success(a->status)) return report_answer_error(t.name, a.value());
  out = json::parse(a->body, nullptr, false);
  if (out.is_discarded()) {
    std::fprintf(stderr, "raftd %s: %s answered %d with a body that is not JSON\n", t.name,
                 t.endpoint.url().c_str(), a->status);
    return kExitFailed;
  }
  return std::nullopt;
}

void print_json(const json& j) { std::printf("%s\n", j.dump(2).c_str()); }

void write_stdout(const std::string& bytes) {
  std::fwrite(bytes.data(), 1, bytes.size(), stdout);
  std::fflush(stdout);
}

// A field as table text: strings without quotes, booleans yes/no, absent "-".
std::string cell(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) return "-";
  const json& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  return v.dump();
}

std::uint64_t number(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number_unsigned()) return 0;
  return j[key].get<std::uint64_t>();
}

using Row = std::vector<std::string>;

// Left-aligned columns two spaces apart, each line prefixed by `indent`.
std::string format_table(const std::vector<Row>& rows, std::string_view indent = "") {
  std::vector<std::size_t> width;
  for (const Row& r : rows) {
    if (width.size() < r.size()) width.resize(r.size(), 0);
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  std::string out;
  for (const Row& r : rows) {
    std::string line(indent);
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line.append(width[i] - r[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string members_text(const json& status) {
  std::string out;
  if (!status.contains("members") || !status["members"].is_array()) return "-";
  for (const json& m : status["members"]) {
    if (!out.empty()) out += ",";
    out += cell(m, "node");
    if (cell(m, "role") != "voter") out += "(" + cell(m, "role") + ")";
  }
  return out;
}

std::string groups_table(const json& groups) {
  std::vector<Row> rows{
      {"GROUP", "ROLE", "LEADER", "TERM", "COMMIT", "APPLIED", "FIRST", "LAST", "MEMBERS"}};
  for (const json& g : groups) {
    rows.push_back({cell(g, "id"), cell(g, "role"), cell(g, "leader"), cell(g, "term"),
                    cell(g, "commit_index"), cell(g, "applied_index"), cell(g, "first_index"),
                    cell(g, "last_index"), members_text(g)});
  }
  return format_table(rows);
}

json groups_of(const json& list) {
  if (list.is_object() && list.contains("groups") && list["groups"].is_array()) {
    return list["groups"];
  }
  return json::array();
}

// Reads all of stdin (for DATA or QUERY given as "-").
Result<std::string> read_stdin() {
  std::string out;
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n == 0) return out;
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::from_errno(errno, "reading standard input");
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
}

// ---- raftd status ------------------------------------------------------------------------

// Everything `raftd status` gathered: the asked node's cluster and groups, and each node's
// GET /v1/groups (or {"error": why not}), keyed by node id.
struct Survey {
  json cluster;
  json groups;  // the asked node's GET /v1/groups
  std::uint64_t this_node = 0;
  std::map<std::uint64_t, json> views;
};

// The asked node: the "node" of its group statuses, else the cluster entry whose client
// address is the endpoint.
std::uint64_t find_this_node(const Survey& s, const Endpoint& ep) {
  json g = groups_of(s.groups);
  if (!g.empty()) return number(g[0], "node");
  for (const json& n : s.cluster.value("nodes", json::array())) {
    Result<Endpoint> c = parse_endpoint(cell(n, "client"));
    if (c && c->host == ep.host && c->port == ep.port) return number(n, "id");
  }
  return 0;
}

// Every other reachable node's view, asked of all of them at once.
void survey_nodes(Target& t, Survey& s) {
  std::vector<std::uint64_t> ids;
  std::vector<Endpoint> eps;
  for (const json& n : s.cluster.value("nodes", json::array())) {
    std::uint64_t id = number(n, "id");
    if (id == s.this_node) {
      s.views[id] = s.groups;
      continue;
    }
    if (!n.value("reachable", false)) {
      s.views[id] = json{{"error", "not reachable from the asked node"}};
      continue;
    }
    Result<Endpoint> ep = parse_endpoint(cell(n, "client"));
    if (!ep) {
      s.views[id] = json{{"error", ep.status().message()}};
      continue;
    }
    ids.push_back(id);
    eps.push_back(ep.value());
  }
  std::vector<Result<Answer>> answers = t.session->get_all(eps, "/v1/groups");
  for (size_t i = 0; i < ids.size(); ++i) {
    Result<Answer>& a = answers[i];
    json body = a ? json::parse(a->body, nullptr, false) : json();
    if (!a) {
      s.views[ids[i]] = json{{"error", a.status().message()}};
    } else if (!is_success(a->status) || !body.is_object()) {
      s.views[ids[i]] =
          json{{"error", fmt::format("GET /v1/groups at {} answered {}: {}", eps[i].url(),
                                     a->status, a->body.substr(0, 200))}};
    } else {
      s.views[ids[i]] = std::move(body);
    }
  }
}

// Node `id`'s status of group `gid`, or null.
json view_of(const Survey& s, std::uint64_t id, std::uint64_t gid) {
  auto it = s.views.find(id);
  if (it == s.views.end()) return nullptr;
  for (const json& g : groups_of(it->second)) {
    if (number(g, "id") == gid) return g;
  }
  return nullptr;
}

// Members of one group with their applied index and lag behind the leader's commit index (the
// leader's own view when it answered, else the highest commit index any member reported).
std::string members_section(const Survey& s, const json& g) {
  std::uint64_t gid = number(g, "id");
  std::uint64_t leader = number(g, "leader");
  json lv = leader != 0 ? view_of(s, leader, gid) : json(nullptr);
  std::uint64_t commit = 0;
  std::string basis = "the leader's commit index";
  if (!lv.is_null()) {
    commit = number(lv, "commit_index");
  } else {
    basis = "the highest commit index seen (the leader's view is not available)";
    for (const json& m : g.value("members", json::array())) {
      json v = view_of(s, number(m, "node"), gid);
      if (!v.is_null()) commit = std::max(commit, number(v, "commit_index"));
    }
  }
  std::vector<Row> rows{{"NODE", "MEMBER", "STATE", "TERM", "COMMIT", "APPLIED", "LAG"}};
  for (const json& m : g.value("members", json::array())) {
    std::uint64_t node = number(m, "node");
    json v = view_of(s, node, gid);
    if (v.is_null()) {
      auto it = s.views.find(node);
      std::string why = it == s.views.end()            ? "not in the cluster list"
                        : it->second.contains("error") ? cell(it->second, "error")
                                                       : "does not host the group";
      rows.push_back({cell(m, "node"), cell(m, "role"), "-", "-", "-", "-", "- (" + why + ")"});
      continue;
    }
    std::uint64_t applied = number(v, "applied_index");
    rows.push_back({cell(m, "node"), cell(m, "role"), cell(v, "role"), cell(v, "term"),
                    cell(v, "commit_index"), cell(v, "applied_index"),
                    std::to_string(commit > applied ? commit - applied : 0)});
  }
  return fmt::format("group {}: leader {}, lag measured from {} ({})\n", gid,
                     leader == 0 ? "none" : std::to_string(leader), basis, commit) +
         format_table(rows, "  ");
}

void print_survey(const Survey& s, const Endpoint& ep) {
  std::printf("endpoint %s (node %s)\n\n", ep.url().c_str(),
              s.this_node == 0 ? "unknown" : std::to_string(s.this_node).c_str());
  std::vector<Row> nodes{{"NODE", "CLIENT", "PEER", "REACHABLE"}};
  for (const json& n : s.cluster.value("nodes", json::array())) {
    nodes.push_back({cell(n, "id"), cell(n, "client"), cell(n, "peer"), cell(n, "reachable")});
  }
  std::fputs(format_table(nodes).c_str(), stdout);
  json groups = groups_of(s.groups);
  if (groups.empty()) {
    std::printf("\nno groups on this node\n");
    return;
  }
  std::printf("\n%s", groups_table(groups).c_str());
  for (const json& g : groups) std::printf("\n%s", members_section(s, g).c_str());
}

}  // namespace

void ClientCommands::add_connection_options(CLI::App* cmd) {
  // The environment is read in run(), not with CLI11's envname: every subcommand binds the same
  // variables, and CLI11 (2.1) would let an unparsed subcommand's env default overwrite the
  // value given on the command line.
  endpoint_options_.push_back(
      cmd->add_option("--endpoint", conn_.endpoint,
                      "Client address of a node, http://A.B.C.D:PORT (IPv4 literal); default "
                      "$RAFTD_ENDPOINT, else http://127.0.0.1:7300"));
  token_options_.push_back(
      cmd->add_option("--token", conn_.token,
                      "Bearer token ([auth].client_token of the node); default $RAFTD_TOKEN"));
  cmd->add_option("--timeout-ms", conn_.timeout_ms,
                  "Connect timeout, and longest wait for progress on an answer")
      ->check(CLI::Range(std::uint32_t{1}, kClientTimeoutMsMax))
      ->capture_default_str();
  cmd->footer(
      "Exit status: 0 success, 1 the server answered an error or the request failed, 2 usage "
      "error.");
}

ClientCommands::ClientCommands(CLI::App& app) {
  status_ = app.add_subcommand(
      "status", "Show the cluster, this node's groups, and each member's applied index and lag");
  status_->add_flag("--json", json_, "Print the collected JSON instead of tables");
  add_connection_options(status_);

  CLI::App* cluster = app.add_subcommand("cluster", "Add a node to the cluster, or remove one");
  cluster->require_subcommand(1);
  add_node_ = cluster->add_subcommand(
      "add-node",
      "Add a node: start a raftd with that id and an empty data_dir, before or after this");
  add_node_->add_option("ID", node_, "Node id (>= 1, never used before)")->required();
  add_node_->add_option("--peer", peer_, "Its [listen].peer address, IPv4:port")->required();
  add_node_->add_option("--client", client_, "Its [listen].client address, IPv4:port")->required();
  add_connection_options(add_node_);
  remove_node_ = cluster->add_subcommand(
      "remove-node", "Remove a node that is a member of no group; its id is never used again");
  remove_node_->add_option("ID", node_, "Node id")->required();
  add_connection_options(remove_node_);

  CLI::App* group = app.add_subcommand(
      "group",
      "Create, delete, list and show groups; change their members and leader; compact a log");
  group->require_subcommand(1);
  create_ = group->add_subcommand("create", "Create a group with the given voters");
  create_->add_option("ID", group_, "Group id (>= 1)")->required();
  create_->add_option("--members", members_, "Node ids of the voters, comma-separated")
      ->required()
      ->delimiter(',');
  add_connection_options(create_);
  delete_ = group->add_subcommand("delete", "Delete a group from all its members");
  delete_->add_option("ID", group_, "Group id")->required();
  add_connection_options(delete_);
  list_ = group->add_subcommand("list", "List the groups this node hosts");
  list_->add_flag("--json", json_, "Print the JSON answer");
  add_connection_options(list_);
  show_ = group->add_subcommand("show", "Show this node's view of a group (JSON)");
  show_->add_option("ID", group_, "Group id")->required();
  add_connection_options(show_);
  transfer_ = group->add_subcommand(
      "transfer-leader", "Hand the group's leadership to a voter; print the group's status");
  transfer_->add_option("ID", group_, "Group id")->required();
  transfer_->add_option("NODE", node_, "Node id of the new leader (a voter of the group)")
      ->required();
  add_connection_options(transfer_);
  add_member_ = group->add_subcommand(
      "add-member", "Add a node to the group as a voter (or learner), or promote a learner");
  add_member_->add_option("ID", group_, "Group id")->required();
  add_member_->add_option("NODE", node_, "Node id")->required();
  add_member_->add_flag("--learner", learner_, "Add it as a learner (no vote)");
  add_connection_options(add_member_);
  remove_member_ = group->add_subcommand("remove-member", "Remove a node from the group");
  remove_member_->add_option("ID", group_, "Group id")->required();
  remove_member_->add_option("NODE", node_, "Node id")->required();
  add_connection_options(remove_member_);
  snapshot_ = group->add_subcommand(
      "snapshot",
      "Compact the group's log on the node asked, up to what its app made durable (no tail)");
  snapshot_->add_option("ID", group_, "Group id")->required();
  add_connection_options(snapshot_);

  propose_ = app.add_subcommand(
      "propose", "Replicate DATA as one entry; print the application's result for it");
  propose_->add_option("GROUP", group_, "Group id")->required();
  propose_->add_option("DATA", data_, "Entry bytes, or - to read them from stdin")
      ->capture_default_str();
  propose_->add_option("--key", key_,
                       "Idempotency-Key: a retry with the same key returns the first result "
                       "instead of appending again");
  add_connection_options(propose_);
  read_ = app.add_subcommand("read", "Linearizable read: print the application's answer");
  read_->add_option("GROUP", group_, "Group id")->required();
  read_->add_option("QUERY", data_, "Query bytes, or - to read them from stdin")
      ->capture_default_str();
  read_->add_flag("--stale", stale_, "Skip the ReadIndex round (may return stale data)");
  add_connection_options(read_);
}

std::optional<int> ClientCommands::run() {
  auto given = [](const std::vector<CLI::Option*>& options) {
    return std::any_of(options.begin(), options.end(),
                       [](const CLI::Option* o) { return o->count() > 0; });
  };
  const char* env_endpoint = std::getenv("RAFTD_ENDPOINT");
  if (!given(endpoint_options_) && env_endpoint != nullptr) conn_.endpoint = env_endpoint;
  const char* env_token = std::getenv("RAFTD_TOKEN");
  if (!given(token_options_) && env_token != nullptr) conn_.token = env_token;
  if (status_->parsed()) return status();
  if (create_->parsed()) return group_create();
  if (delete_->parsed()) return group_delete();
  if (list_->parsed()) return group_list();
  if (show_->parsed()) return group_show();
  if (transfer_->parsed()) return group_transfer_leader();
  if (add_member_->parsed()) return group_member(true);
  if (remove_member_->parsed()) return group_member(false);
  if (snapshot_->parsed()) return group_snapshot();
  if (add_node_->parsed()) return cluster_node(true);
  if (remove_node_->parsed()) return cluster_node(false);
  if (propose_->parsed()) return propose();
  if (read_->parsed()) return read();
  return std::nullopt;
}

int ClientCommands::status() {
  Target t;
  if (auto rc = open_session("status", conn_.endpoint, conn_.token, conn_.timeout_ms, t)) {
    return *rc;
  }
  Survey s;
  if (auto rc = call_json(t, "GET", "/v1/cluster", s.cluster)) return *rc;
  if (auto rc = call_json(t, "GET", "/v1/groups", s.groups)) return *rc;
  s.this_node = find_this_node(s, t.endpoint);
  survey_nodes(t, s);
  if (json_) {
    json views = json::object();
    for (const auto& [id, v] : s.views) views[std::to_string(id)] = v;
    print_json(json{{"endpoint", t.endpoint.url()},
                    {"node", s.this_node},
                    {"cluster", s.cluster},
                    {"groups", s.groups},
                    {"views", views}});
  } else {
    print_survey(s, t.endpoint);
  }
  return kExitOk;
}

int ClientCommands::group_create() {
  Target t;
  if (auto rc = open_session("group create", conn_.endpoint, conn_.token, conn_.timeout_ms, t)) {
    return *rc;
  }
  json out;
  json body{{"id", group_}, {"members", members_}};
  if (auto rc = call_json(t, "POST", "/v1/groups", out, body.dump())) return *rc;
  print_json(out);
  return kExitOk;
}

int ClientCommands::group_delete() {
  Target t;
  if (auto rc = open_session("group delete", conn_.endpoint, conn_.token, conn_.timeout_ms, t)) {
    return *rc;
  }
  Result<Answer> a = t.session->call(t.endpoint, "DELETE", fmt::format("/v1/groups/{}", group_));
  if (!a) return report_failure(t.name, a.status());
  if (!is_success(a->status)) return report_answer_error(t.name, a.value());
  std::printf("deleted group %llu\n", static_cast<unsigned long long>(group_));
  return kExitOk;
}

int ClientCommands::group_list() {
  Target t;
  if (auto rc = open_session("group list", conn_.endpoint, conn_.token, conn_.timeout_ms, t)) {
    return *rc;
  }
  json out;
  if (auto rc = call_json(t, "GET", "/v1/groups", out)) return *rc;
  if (json_) {
    print_json(out);
  } else {
    std::fputs(groups_table(groups_of(out)).c_str(), stdout);
  }
  return kExitOk;
}

int ClientCommands::group_show() {
  Target t;
  if (auto rc = open_session("group show", conn_.endpoint, conn_.token, conn_.timeout_ms, t)) {
    return *rc;
  }
  json out;
  if (auto rc = call_json(t, "GET", fmt::format("/v1/groups/{}", group_), out)) return *rc;
  print_json(out);
  return kExitOk;
}

// One request whose JSON answer is printed indented: the shape of most admin commands.
int ClientCommands::call_and_print(const char* name, std::string_view method,
                                   const std::string& target, std::string body) {
  Target t;
  if (auto rc = open_session(name, conn_.endpoint, conn_.token, conn_.timeout_ms, t)) return *rc;
  json out;
  if (auto rc = call_json(t, method, target, out, std::move(body))) return *rc;
  print_json(out);
  return kExitOk;
}

int ClientCommands::group_transfer_leader() {
  return call_and_print("group transfer-leader", "POST",
                        fmt::format("/v1/groups/{}/transfer-leader", group_),
                        json{{"node", node_}}.dump());
}

int ClientCommands::group_snapshot() {
  return call_and_print("group snapshot", "POST", fmt::format("/v1/groups/{}/snapshot", group_));
}

int ClientCommands::group_member(bool add) {
  if (!add) {
    return call_and_print("group remove-member", "DELETE",
                          fmt::format("/v1/groups/{}/members/{}", group_, node_));
  }
  return call_and_print("group add-member", "POST", fmt::format("/v1/groups/{}/members", group_),
                        json{{"node", node_}, {"role", learner_ ? "learner" : "voter"}}.dump());
}

int ClientCommands::cluster_node(bool add) {
  if (!add) {
    return call_and_print("cluster remove-node", "DELETE",
                          fmt::format("/v1/cluster/nodes/{}", node_));
  }
  return call_and_print("cluster add-node", "POST", "/v1/cluster/nodes",
                        json{{"id", node_}, {"peer", peer_}, {"client", client_}}.dump());
}

int ClientCommands::propose() {
  Target t;
  if (auto rc = open_session("propose", conn_.endpoint, conn_.token, conn_.timeout_ms, t)) {
    return *rc;
  }
  std::string data = data_;
  if (data_ == "-") {
    Result<std::string> in = read_stdin();
    if (!in) return report_failure(t.name, in.status());
    data = std::move(in.value());
  }
  http::Headers extra;
  if (!key_.empty()) extra.push_back({"Idempotency-Key", key_});
  Result<Answer> a =
      t.session->call(t.endpoint, "POST", fmt::format("/v1/groups/{}/propose", group_),
                      std::move(data), "application/octet-stream", std::move(extra));
  if (!a) return report_failure(t.name, a.status());
  if (!is_success(a->status)) return report_answer_error(t.name, a.value());
  write_stdout(a->body);
  // The answer's own headers, for scripts: the entry's index, and whether this is a replay.
  for (const char* h : {"Raftd-Index", "Raftd-Replayed", "Raftd-Result"}) {
    if (auto v = http::find_header(a->headers, h)) {
      std::fprintf(stderr, "%s: %.*s\n", h, static_cast<int>(v->size()), v->data());
    }
  }
  return kExitOk;
}

int ClientCommands::read() {
  Target t;
  if (auto rc = open_session("read", conn_.endpoint, conn_.token, conn_.timeout_ms, t)) {
    return *rc;
  }
  std::string query = data_;
  if (data_ == "-") {
    Result<std::string> in = read_stdin();
    if (!in) return report_failure(t.name, in.status());
    query = std::move(in.value());
  }
  std::string target =
      fmt::format("/v1/groups/{}/read{}", group_, stale_ ? "?consistency=stale" : "");
  Result<Answer> a = t.session->call(t.endpoint, "POST", target, std::move(query));
  if (!a) return report_failure(t.name, a.status());
  // The application's answer is passed through whatever its status: print it either way.
  write_stdout(a->body);
  if (!is_success(a->status)) return report_answer_error(t.name, a.value());
  return kExitOk;
}

}  // namespace raftd::cli
