// The cluster file (data_dir/cluster): the identity of the cluster this data directory belongs
// to and its initial members, written once when the node bootstraps. doc/node.md "Cluster file"
// has the layout:
//   raftd-cluster 1
//   cluster_id <decimal u64>
//   node <this node's id>
//   member <id> <peer host:port> <client host:port>     (one line per initial member, by id)
//   contact <id> <peer host:port> <client host:port>    (a joined node only: the cluster's
//                                                         nodes when it joined, by id)
//   checksum <16 hex digits: XXH3-64 of every byte before this line>
// The cluster id is XXH3-64 of the canonical member list ("<id> <peer>\n" per member, by id), so
// nodes started from the same [cluster].initial agree on it without talking, and a node started
// with a different list has another id: the transport's handshake refuses it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "raftd/base/status.h"
#include "raftd/node/meta.h"

namespace raftd::node {

struct ClusterFile {
  uint64_t cluster_id = 0;
  NodeId node;
  std::vector<NodeInfo> members;  // sorted by id
  // A node that joined a running cluster: the cluster's nodes as its contact listed them then
  // (sorted by id; empty for a node that bootstrapped). They are its peers until its replica of
  // the meta group has caught up far enough to know them itself.
  std::vector<NodeInfo> contacts;

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

// What a member's peer listener answers a joining node that has been added (GET /raft/v1/join,
// doc/node.md "Joining a running cluster"): the cluster's identity and initial members (from
// which the meta group's log is replayed) and its nodes now. JSON:
//   {"cluster_id": <u64>, "initial": [<node>, ...], "nodes": [<node>, ...]}
//   <node> = {"id": <u64>, "peer": "host:port", "client": "host:port"}
struct JoinAnswer {
  uint64_t cluster_id = 0;
  std::vector<NodeInfo> initial;  // sorted by id
  std::vector<NodeInfo> nodes;    // sorted by id
  bool operator==(const JoinAnswer&) const = default;
};
std::string encode_join_answer(const JoinAnswer& a);
// kCorruption for anything else: bad JSON, missing or extra keys, ids 0 or unsorted, addresses
// over kMetaAddressBytesMax, an empty list, or a cluster id that is not the initial members'.
Result<JoinAnswer> decode_join_answer(std::string_view body);

// Start-up check that this node's peers are of its cluster (doc/node.md "A node of another
// cluster"). Until this process has heard from a peer of its own cluster (a peer accepted its
// stream, or it accepted a peer's), each peer that refuses its handshake for another cluster id
// is recorded. When the members that did not refuse it (itself included) are fewer than a quorum
// of its members, it can never elect a meta leader with them: the check fails, with one message
// naming each refusing peer, its cluster id and this node's. Once it has heard from its cluster,
// refusals change nothing (a stray node of another cluster does not stop an established one).
class ClusterCheck {
 public:
  void heard_from_cluster() { heard_ = true; }
  // `peer` refused this node's handshake; it is in cluster `theirs`. True when the check failed
  // with this refusal (once; failed() stays true).
  bool refused(const ClusterFile& c, NodeId peer, uint64_t theirs);
  bool failed() const { return !verdict_.is_ok(); }
  // kInvalidArgument (the configuration does not fit the cluster) once failed; OK before.
  const Status& verdict() const { return verdict_; }

 private:
  bool heard_ = false;
  std::map<NodeId, uint64_t> refused_;  // peer -> its cluster id
  Status verdict_;
};

}  // namespace raftd::node
