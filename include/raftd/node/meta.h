// MetaState: the state machine of the meta group (group 0), built into raftd. It records which
// nodes and which groups exist; every node applies the same committed commands in the same order
// and so holds the same MetaState.
//
// Who calls what: the node encodes a MetaCommand into a meta entry's payload (encode_meta_command)
// and proposes it in group 0; every replica decodes committed meta entries
// (decode_meta_command) and calls apply() in log order, exactly once per entry (the meta state
// is not durable by itself: a restarted node replays group 0's log from its first entry). The
// outcome of apply() is the same on every replica; the node that took the proposal returns it to
// its client. apply() never fails for a well-formed command: a command that is not allowed
// (a duplicate id, an unknown node) is refused deterministically and changes nothing.
//
// Ids are never reused (API.md): a removed node's id and a deleted group's id stay recorded
// (as tombstones), so adding them again is refused.
//
// Threading: none; a plain value owned by the node's reactor thread.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "raftd/base/ids.h"
#include "raftd/base/status.h"

namespace raftd::node {

// Members of a new group and the ids a meta command may name: bounded so that one command (and
// the group 0 entry carrying it) stays small.
inline constexpr size_t kMetaMembersMax = 64;
// An address ("host:port") is short; the bound keeps a hostile command from growing the state.
inline constexpr size_t kMetaAddressBytesMax = 256;

struct NodeInfo {
  NodeId id;
  std::string peer;    // host:port of its peer listener
  std::string client;  // host:port of its client listener
  bool operator==(const NodeInfo&) const = default;
};

struct AddNode {
  NodeInfo node;
};
struct RemoveNode {
  NodeId id;
};
struct CreateGroup {
  GroupId id;
  std::vector<NodeId> members;  // initial voters, sorted, distinct, at least one
};
struct DeleteGroup {
  GroupId id;
};
// Which nodes host a group follows the group's own configuration (its log is the source of
// truth): the group's leader records a node it added (so that the node starts the group and
// catches up) and one it removed (so that the node stops hosting it).
struct HostGroup {
  GroupId group;
  NodeId node;
};
struct UnhostGroup {
  GroupId group;
  NodeId node;
};
using MetaCommand =
    std::variant<AddNode, RemoveNode, CreateGroup, DeleteGroup, HostGroup, UnhostGroup>;

// Byte layout (little endian), doc/node.md "Meta commands":
//   u8 version (= 1) | u8 op (1 add node, 2 remove node, 3 create group, 4 delete group) |
//   add node:     u64 id | u16 len | peer | u16 len | client
//   remove node:  u64 id
//   create group: u64 id | u16 count | count x u64 member
//   delete group: u64 id
//   host group:   u64 group | u64 node          (op 5)
//   unhost group: u64 group | u64 node          (op 6)
// decode refuses anything else (unknown version or op, trailing bytes, id 0, group 0, a member
// list that is empty, unsorted or over kMetaMembersMax, an address over kMetaAddressBytesMax)
// with kCorruption.
std::string encode_meta_command(const MetaCommand& c);
Result<MetaCommand> decode_meta_command(std::string_view bytes);

// The outcome of one applied command, returned to the client that proposed it.
enum class MetaOutcome : uint8_t {
  kOk = 0,
  kNodeExists,     // the node id exists or was used before (409 conflict)
  kUnknownNode,    // a command names a node that is not a current member (400 / 404)
  kNodeInUse,      // the node is still a member of a group (409 conflict)
  kGroupExists,    // the group id exists or was used before (409 group_exists)
  kUnknownGroup,   // no such live group (404 unknown_group)
  kReservedGroup,  // group 0 cannot be created or deleted (400)
  kAddressInUse,   // a new node's peer or client address is a current node's (400)
};
const char* meta_outcome_name(MetaOutcome o);

struct GroupInfo {
  GroupId id;
  std::vector<NodeId> members;  // the initial voters (the group's own log holds later changes)
  std::vector<NodeId> hosts;    // nodes hosting it: the initial voters, then Host/UnhostGroup
  std::vector<NodeId> left;     // nodes that stopped hosting it (UnhostGroup), sorted
  bool operator==(const GroupInfo&) const = default;
  bool hosted_by(NodeId n) const { return std::binary_search(hosts.begin(), hosts.end(), n); }
};

class MetaState {
 public:
  // The state a new cluster starts from: the nodes of [cluster].initial.
  static MetaState bootstrap(std::vector<NodeInfo> initial);

  MetaOutcome apply(const MetaCommand& c);

  const std::map<NodeId, NodeInfo>& nodes() const { return nodes_; }
  const std::map<GroupId, GroupInfo>& groups() const { return groups_; }
  const NodeInfo* node(NodeId id) const;
  const GroupInfo* group(GroupId id) const;
  // Groups hosted by `id`.
  std::vector<GroupId> groups_of(NodeId id) const;
  bool node_id_used(NodeId id) const { return used_nodes_.contains(id); }
  bool group_id_used(GroupId id) const { return used_groups_.contains(id); }
  // Applied commands so far (every replica that applied the same entries agrees).
  uint64_t applied_commands() const { return applied_; }

  bool operator==(const MetaState&) const = default;

 private:
  MetaOutcome add_node(const AddNode& c);
  MetaOutcome remove_node(const RemoveNode& c);
  MetaOutcome create_group(const CreateGroup& c);
  MetaOutcome delete_group(const DeleteGroup& c);
  MetaOutcome host_group(const HostGroup& c);
  MetaOutcome unhost_group(const UnhostGroup& c);

  std::map<NodeId, NodeInfo> nodes_;
  std::map<GroupId, GroupInfo> groups_;
  std::set<NodeId> used_nodes_;    // every id ever added (tombstones included)
  std::set<GroupId> used_groups_;  // every group id ever created (tombstones included)
  uint64_t applied_ = 0;
};

}  // namespace raftd::node
