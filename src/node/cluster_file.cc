#include "node/cluster_file.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>

#include "raftd/node/durable_file.h"

namespace raftd::node {
namespace {

constexpr const char* kFileName = "cluster";
// The file is a few lines per member; anything bigger is not ours.
constexpr size_t kClusterFileBytesMax = 1 << 20;

Status corrupt(const std::string& path, const std::string& what) {
  return Status(Code::kCorruption, fmt::format("{}: {}", path, what));
}

bool parse_u64(const std::string& s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

}  // namespace

uint64_t cluster_id_of(const std::vector<NodeInfo>& members) {
  std::vector<NodeInfo> sorted = members;
  std::sort(sorted.begin(), sorted.end(),
            [](const NodeInfo& a, const NodeInfo& b) { return a.id < b.id; });
  std::string canon;
  for (const NodeInfo& m : sorted) canon += fmt::format("{} {}\n", m.id.value(), m.peer);
  return XXH3_64bits(canon.data(), canon.size());
}

std::string encode_cluster_file(const ClusterFile& f) {
  std::string out =
      fmt::format("raftd-cluster 1\ncluster_id {}\nnode {}\n", f.cluster_id, f.node.value());
  for (const NodeInfo& m : f.members) {
    out += fmt::format("member {} {} {}\n", m.id.value(), m.peer, m.client);
  }
  for (const NodeInfo& m : f.contacts) {
    out += fmt::format("contact {} {} {}\n", m.id.value(), m.peer, m.client);
  }
  out += fmt::format("checksum {:016x}\n", XXH3_64bits(out.data(), out.size()));
  return out;
}

Result<ClusterFile> decode_cluster_file(const std::string& text, const std::string& path) {
  size_t sum_at = text.rfind("checksum ");
  if (sum_at == std::string::npos || (sum_at != 0 && text[sum_at - 1] != '\n')) {
    return corrupt(path, "no checksum line");
  }
  std::string want = fmt::format("checksum {:016x}\n", XXH3_64bits(text.data(), sum_at));
  if (text.compare(sum_at, std::string::npos, want) != 0) return corrupt(path, "checksum mismatch");
  std::istringstream in(text.substr(0, sum_at));
  std::string line;
  ClusterFile f;
  int n = 0;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string key, a, b, c, extra;
    ls >> key >> a >> b >> c >> extra;
    uint64_t v = 0;
    if (n == 0) {
      if (line != "raftd-cluster 1") return corrupt(path, "unknown format: " + line);
    } else if (key == "cluster_id" && b.empty() && parse_u64(a, &v)) {
      f.cluster_id = v;
    } else if (key == "node" && b.empty() && parse_u64(a, &v) && v != 0) {
      f.node = NodeId(v);
    } else if ((key == "member" || key == "contact") && extra.empty() && !c.empty() &&
               parse_u64(a, &v) && v != 0) {
      std::vector<NodeInfo>& list = key == "member" ? f.members : f.contacts;
      if ((key == "member" && !f.contacts.empty()) ||
          (!list.empty() && NodeId(v) <= list.back().id)) {
        return corrupt(path, key + "s not sorted by id, or a member after a contact");
      }
      list.push_back(NodeInfo{NodeId(v), b, c});
    } else {
      return corrupt(path, "bad line: " + line);
    }
    ++n;
  }
  if (f.node == NodeId(0) || f.members.empty()) return corrupt(path, "node or members missing");
  if (cluster_id_of(f.members) != f.cluster_id) {
    return corrupt(path, "cluster_id does not match the members");
  }
  return f;
}

Result<ClusterFile> read_cluster_file(const std::string& data_dir) {
  const std::string path = data_dir + "/" + kFileName;
  Result<std::string> text = read_file(path, kClusterFileBytesMax);
  if (!text.is_ok()) {
    if (text.status().code() == Code::kCorruption) return corrupt(path, "too large");
    return text.status();
  }
  return decode_cluster_file(text.value(), path);
}

Status write_cluster_file(const std::string& data_dir, const ClusterFile& f) {
  return replace_file(data_dir + "/" + kFileName, encode_cluster_file(f));
}

// ---- JoinAnswer ----------------------------------------------------------------------------

namespace {

nlohmann::json nodes_json(const std::vector<NodeInfo>& nodes) {
  nlohmann::json out = nlohmann::json::array();
  for (const NodeInfo& n : nodes) {
    out.push_back({{"id", n.id.value()}, {"peer", n.peer}, {"client", n.client}});
  }
  return out;
}

// A sorted, non-empty list of distinct nodes with ids >= 1 and bounded addresses.
bool nodes_from_json(const nlohmann::json& j, std::vector<NodeInfo>* out) {
  if (!j.is_array() || j.empty() || j.size() > kMetaMembersMax * 1024) return false;
  for (const nlohmann::json& n : j) {
    if (!n.is_object() || n.size() != 3 || !n.contains("id") || !n["id"].is_number_unsigned() ||
        !n.contains("peer") || !n["peer"].is_string() || !n.contains("client") ||
        !n["client"].is_string()) {
      return false;
    }
    NodeInfo info{NodeId(n["id"].get<uint64_t>()), n["peer"].get<std::string>(),
                  n["client"].get<std::string>()};
    if (info.id == NodeId(0) || info.peer.empty() || info.client.empty() ||
        info.peer.size() > kMetaAddressBytesMax || info.client.size() > kMetaAddressBytesMax ||
        info.peer.find_first_of(" \n") != std::string::npos ||
        info.client.find_first_of(" \n") != std::string::npos ||
        (!out->empty() && info.id <= out->back().id)) {
      return false;
    }
    out->push_back(std::move(info));
  }
  return true;
}

}  // namespace

std::string encode_join_answer(const JoinAnswer& a) {
  return nlohmann::json{{"cluster_id", a.cluster_id},
                        {"initial", nodes_json(a.initial)},
                        {"nodes", nodes_json(a.nodes)}}
      .dump();
}

Result<JoinAnswer> decode_join_answer(std::string_view body) {
  const nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  JoinAnswer a;
  if (!j.is_object() || j.size() != 3 || !j.contains("cluster_id") ||
      !j["cluster_id"].is_number_unsigned() || !j.contains("initial") || !j.contains("nodes") ||
      !nodes_from_json(j["initial"], &a.initial) || !nodes_from_json(j["nodes"], &a.nodes)) {
    return Status(Code::kCorruption, "join answer: not {cluster_id, initial, nodes} as specified");
  }
  a.cluster_id = j["cluster_id"].get<uint64_t>();
  if (cluster_id_of(a.initial) != a.cluster_id) {
    return Status(Code::kCorruption, "join answer: cluster_id is not the initial members'");
  }
  return a;
}

// ---- ClusterCheck --------------------------------------------------------------------------

bool ClusterCheck::refused(const ClusterFile& c, NodeId peer, uint64_t theirs) {
  if (heard_ || failed() || theirs == c.cluster_id) return false;
  const auto member = std::find_if(c.members.begin(), c.members.end(),
                                   [&](const NodeInfo& m) { return m.id == peer; });
  if (member == c.members.end() || peer == c.node) return false;
  refused_[peer] = theirs;
  const size_t quorum = c.members.size() / 2 + 1;
  if (c.members.size() - refused_.size() >= quorum) return false;
  std::string peers;
  for (const auto& entry : refused_) {
    const auto m = std::find_if(c.members.begin(), c.members.end(),
                                [&](const NodeInfo& n) { return n.id == entry.first; });
    peers += fmt::format("{}node {} at {} is in cluster {}", peers.empty() ? "" : ", ",
                         entry.first.value(), m->peer, entry.second);
  }
  verdict_ = Status(
      Code::kInvalidArgument,
      fmt::format("node {} is in cluster {}, but its peers refused it for another cluster: {}; "
                  "with them it can never reach a quorum of its {} members. Its "
                  "[cluster].initial (or the cluster file in its data_dir) differs from theirs",
                  c.node.value(), c.cluster_id, peers, c.members.size()));
  return true;
}

}  // namespace raftd::node
