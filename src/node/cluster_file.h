// The cluster file (data_dir/cluster): the identity of the cluster this data directory belongs
// to and its initial members, written once when the node bootstraps. doc/node.md "Cluster file"
// has the layout:
//   raftd-cluster 1
//   cluster_id <decimal u64>
//   node <this node's id>
//   member <id> <peer host:port> <client host:port>     (one line per initial member, by id)
//   checksum <16 hex digits: XXH3-64 of every byte before this line>
// The cluster id is XXH3-64 of the canonical member list ("<id> <peer>\n" per member, by id), so
// nodes started from the same [cluster].initial agree on it without talking, and a node started
// with a different list has another id: the transport's handshake refuses it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "raftd/base/status.h"
#include "raftd/node/meta.h"

namespace raftd::node {

struct ClusterFile {
  uint64_t cluster_id = 0;
  NodeId node;
  std::vector<NodeInfo> members;  // sorted by id

  bool operator==(const ClusterFile&) const = default;
};

uint64_t cluster_id_of(const std::vector<NodeInfo>& members);
std::string encode_cluster_file(const ClusterFile& f);
// kCorruption naming what is wrong (and `path`).
Result<ClusterFile> decode_cluster_file(const std::string& text, const std::string& path);

// Reads data_dir/cluster: kNotFound when it does not exist.
Result<ClusterFile> read_cluster_file(const std::string& data_dir);
// Writes it durably: a temporary file, fsync, rename, fsync of the directory.
Status write_cluster_file(const std::string& data_dir, const ClusterFile& f);

}  // namespace raftd::node
