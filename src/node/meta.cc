#include "raftd/node/meta.h"

#include <algorithm>
#include <cstring>

namespace raftd::node {
namespace {

constexpr uint8_t kMetaVersion = 1;
enum : uint8_t {
  kOpAddNode = 1,
  kOpRemoveNode = 2,
  kOpCreateGroup = 3,
  kOpDeleteGroup = 4,
  kOpHostGroup = 5,
  kOpUnhostGroup = 6,
};

void put_u8(std::string* out, uint8_t v) { out->push_back(static_cast<char>(v)); }
void put_u16(std::string* out, uint16_t v) {
  for (int i = 0; i < 2; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
void put_u64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
void put_str(std::string* out, const std::string& s) {
  put_u16(out, static_cast<uint16_t>(s.size()));
  out->append(s);
}

// Bounds-checked little-endian reader; every read fails once the input is short.
class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  bool u8(uint8_t* v) {
    if (b_.size() < 1) return false;
    *v = static_cast<uint8_t>(b_[0]);
    b_.remove_prefix(1);
    return true;
  }
  bool u16(uint16_t* v) {
    if (b_.size() < 2) return false;
    *v = static_cast<uint16_t>(static_cast<uint8_t>(b_[0]) | static_cast<uint8_t>(b_[1]) << 8);
    b_.remove_prefix(2);
    return true;
  }
  bool u64(uint64_t* v) {
    if (b_.size() < 8) return false;
    uint64_t x = 0;
    for (int i = 7; i >= 0; --i) x = x << 8 | static_cast<uint8_t>(b_[i]);
    *v = x;
    b_.remove_prefix(8);
    return true;
  }
  bool str(std::string* s, size_t max) {
    uint16_t n = 0;
    if (!u16(&n) || n > max || b_.size() < n) return false;
    s->assign(b_.substr(0, n));
    b_.remove_prefix(n);
    return true;
  }
  bool done() const { return b_.empty(); }

 private:
  std::string_view b_;
};

Status bad(const char* what) {
  return Status(Code::kCorruption, std::string("meta command: ") + what);
}

Result<MetaCommand> decode_add_node(Reader& r) {
  uint64_t id = 0;
  AddNode c;
  if (!r.u64(&id) || !r.str(&c.node.peer, kMetaAddressBytesMax) ||
      !r.str(&c.node.client, kMetaAddressBytesMax)) {
    return bad("add node: truncated or address too long");
  }
  if (id == 0) return bad("add node: node id 0");
  c.node.id = NodeId(id);
  return MetaCommand(std::move(c));
}

Result<MetaCommand> decode_create_group(Reader& r) {
  uint64_t id = 0;
  uint16_t count = 0;
  if (!r.u64(&id) || !r.u16(&count)) return bad("create group: truncated");
  if (id == 0) return bad("create group: group 0 is the meta group");
  if (count == 0 || count > kMetaMembersMax) return bad("create group: member count out of range");
  CreateGroup c{GroupId(id), {}};
  for (uint16_t i = 0; i < count; ++i) {
    uint64_t m = 0;
    if (!r.u64(&m)) return bad("create group: truncated member list");
    if (m == 0) return bad("create group: member id 0");
    if (!c.members.empty() && NodeId(m) <= c.members.back()) {
      return bad("create group: members not sorted and distinct");
    }
    c.members.push_back(NodeId(m));
  }
  return MetaCommand(std::move(c));
}

}  // namespace

std::string encode_meta_command(const MetaCommand& c) {
  std::string out;
  put_u8(&out, kMetaVersion);
  if (const auto* a = std::get_if<AddNode>(&c)) {
    put_u8(&out, kOpAddNode);
    put_u64(&out, a->node.id.value());
    put_str(&out, a->node.peer);
    put_str(&out, a->node.client);
  } else if (const auto* r = std::get_if<RemoveNode>(&c)) {
    put_u8(&out, kOpRemoveNode);
    put_u64(&out, r->id.value());
  } else if (const auto* g = std::get_if<CreateGroup>(&c)) {
    put_u8(&out, kOpCreateGroup);
    put_u64(&out, g->id.value());
    put_u16(&out, static_cast<uint16_t>(g->members.size()));
    for (NodeId m : g->members) put_u64(&out, m.value());
  } else if (const auto* d = std::get_if<DeleteGroup>(&c)) {
    put_u8(&out, kOpDeleteGroup);
    put_u64(&out, d->id.value());
  } else if (const auto* h = std::get_if<HostGroup>(&c)) {
    put_u8(&out, kOpHostGroup);
    put_u64(&out, h->group.value());
    put_u64(&out, h->node.value());
  } else {
    const auto& u = std::get<UnhostGroup>(c);
    put_u8(&out, kOpUnhostGroup);
    put_u64(&out, u.group.value());
    put_u64(&out, u.node.value());
  }
  return out;
}

Result<MetaCommand> decode_meta_command(std::string_view bytes) {
  Reader r(bytes);
  uint8_t version = 0;
  uint8_t op = 0;
  if (!r.u8(&version) || !r.u8(&op)) return bad("truncated");
  if (version != kMetaVersion) return bad("unknown version");
  Result<MetaCommand> c = bad("unknown op");
  uint64_t id = 0;
  switch (op) {
    case kOpAddNode: c = decode_add_node(r); break;
    case kOpRemoveNode:
      if (!r.u64(&id) || id == 0) return bad("remove node: truncated or id 0");
      c = MetaCommand(RemoveNode{NodeId(id)});
      break;
    case kOpCreateGroup: c = decode_create_group(r); break;
    case kOpDeleteGroup:
      if (!r.u64(&id) || id == 0) return bad("delete group: truncated or group 0");
      c = MetaCommand(DeleteGroup{GroupId(id)});
      break;
    case kOpHostGroup:
    case kOpUnhostGroup: {
      uint64_t node = 0;
      if (!r.u64(&id) || id == 0 || !r.u64(&node) || node == 0) {
        return bad("host/unhost group: truncated, group 0 or node 0");
      }
      c = op == kOpHostGroup ? MetaCommand(HostGroup{GroupId(id), NodeId(node)})
                             : MetaCommand(UnhostGroup{GroupId(id), NodeId(node)});
      break;
    }
    default: return c;
  }
  if (c.is_ok() && !r.done()) return bad("trailing bytes");
  return c;
}

const char* meta_outcome_name(MetaOutcome o) {
  switch (o) {
    case MetaOutcome::kOk: return "ok";
    case MetaOutcome::kNodeExists: return "node_exists";
    case MetaOutcome::kUnknownNode: return "unknown_node";
    case MetaOutcome::kNodeInUse: return "node_in_use";
    case MetaOutcome::kGroupExists: return "group_exists";
    case MetaOutcome::kUnknownGroup: return "unknown_group";
    case MetaOutcome::kReservedGroup: return "reserved_group";
    case MetaOutcome::kAddressInUse: return "address_in_use";
  }
  return "unknown";
}

MetaState MetaState::bootstrap(std::vector<NodeInfo> initial) {
  MetaState s;
  for (NodeInfo& n : initial) {
    s.used_nodes_.insert(n.id);
    s.nodes_.emplace(n.id, std::move(n));
  }
  return s;
}

MetaOutcome MetaState::apply(const MetaCommand& c) {
  ++applied_;
  if (const auto* a = std::get_if<AddNode>(&c)) return add_node(*a);
  if (const auto* r = std::get_if<RemoveNode>(&c)) return remove_node(*r);
  if (const auto* g = std::get_if<CreateGroup>(&c)) return create_group(*g);
  if (const auto* h = std::get_if<HostGroup>(&c)) return host_group(*h);
  if (const auto* u = std::get_if<UnhostGroup>(&c)) return unhost_group(*u);
  return delete_group(std::get<DeleteGroup>(c));
}

MetaOutcome MetaState::add_node(const AddNode& c) {
  if (used_nodes_.contains(c.node.id)) return MetaOutcome::kNodeExists;
  for (const auto& [id, n] : nodes_) {
    for (const std::string* a : {&n.peer, &n.client}) {
      if (*a == c.node.peer || *a == c.node.client) return MetaOutcome::kAddressInUse;
    }
  }
  used_nodes_.insert(c.node.id);
  nodes_.emplace(c.node.id, c.node);
  return MetaOutcome::kOk;
}

MetaOutcome MetaState::remove_node(const RemoveNode& c) {
  if (!nodes_.contains(c.id)) return MetaOutcome::kUnknownNode;
  if (!groups_of(c.id).empty()) return MetaOutcome::kNodeInUse;
  nodes_.erase(c.id);
  return MetaOutcome::kOk;
}

MetaOutcome MetaState::create_group(const CreateGroup& c) {
  if (c.id == GroupId(0)) return MetaOutcome::kReservedGroup;
  if (used_groups_.contains(c.id)) return MetaOutcome::kGroupExists;
  for (NodeId m : c.members) {
    if (!nodes_.contains(m)) return MetaOutcome::kUnknownNode;
  }
  used_groups_.insert(c.id);
  groups_.emplace(c.id, GroupInfo{c.id, c.members, c.members, {}});
  return MetaOutcome::kOk;
}

MetaOutcome MetaState::delete_group(const DeleteGroup& c) {
  if (c.id == GroupId(0)) return MetaOutcome::kReservedGroup;
  if (groups_.erase(c.id) == 0) return MetaOutcome::kUnknownGroup;
  return MetaOutcome::kOk;
}

// Hosting changes are idempotent (a leader may record the same change twice, e.g. after a leader
// change): recording what is already so is kOk and changes nothing.
MetaOutcome MetaState::host_group(const HostGroup& c) {
  auto it = groups_.find(c.group);
  if (it == groups_.end()) return MetaOutcome::kUnknownGroup;
  if (!nodes_.contains(c.node)) return MetaOutcome::kUnknownNode;
  std::vector<NodeId>& h = it->second.hosts;
  auto at = std::lower_bound(h.begin(), h.end(), c.node);
  if (at == h.end() || *at != c.node) h.insert(at, c.node);
  return MetaOutcome::kOk;
}

MetaOutcome MetaState::unhost_group(const UnhostGroup& c) {
  auto it = groups_.find(c.group);
  if (it == groups_.end()) return MetaOutcome::kUnknownGroup;
  std::vector<NodeId>& h = it->second.hosts;
  auto at = std::lower_bound(h.begin(), h.end(), c.node);
  if (at != h.end() && *at == c.node) {
    h.erase(at);
    std::vector<NodeId>& l = it->second.left;
    l.insert(std::lower_bound(l.begin(), l.end(), c.node), c.node);
  }
  return MetaOutcome::kOk;
}

const NodeInfo* MetaState::node(NodeId id) const {
  auto it = nodes_.find(id);
  return it == nodes_.end() ? nullptr : &it->second;
}

const GroupInfo* MetaState::group(GroupId id) const {
  auto it = groups_.find(id);
  return it == groups_.end() ? nullptr : &it->second;
}

std::vector<GroupId> MetaState::groups_of(NodeId id) const {
  std::vector<GroupId> out;
  for (const auto& [gid, g] : groups_) {
    if (g.hosted_by(id)) out.push_back(gid);
  }
  return out;
}

}  // namespace raftd::node
