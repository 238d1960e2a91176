// Names, size helpers, Config validation and the ConfChange byte encoding.
#include "raftd/raft/types.h"

#include <fmt/format.h>

#include "raftd/raft/raft.h"

namespace raftd::raft {
namespace {

constexpr uint8_t kConfChangeVersion = 1;
// A ConfChange touches few nodes; the bound keeps a corrupt count from allocating gigabytes.
constexpr uint32_t kConfChangeItemsMax = 1024;

void put_u8(std::string* out, uint8_t v) { out->push_back(static_cast<char>(v)); }
void put_le(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t get_le(const std::string& s, size_t pos, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t(static_cast<uint8_t>(s[pos + i])) << (8 * i);
  return v;
}

}  // namespace

std::string encode_conf_change(const ConfChange& cc) {
  std::string out;
  out.reserve(6 + cc.changes.size() * 9);
  put_u8(&out, kConfChangeVersion);
  put_u8(&out, static_cast<uint8_t>(cc.transition));
  put_le(&out, cc.changes.size(), 4);
  for (const ConfChangeItem& item : cc.changes) {
    put_u8(&out, static_cast<uint8_t>(item.type));
    put_le(&out, item.node.value(), 8);
  }
  return out;
}

Result<ConfChange> decode_conf_change(const std::string& data) {
  if (data.size() < 6) return Status(Code::kCorruption, "conf change: short header");
  if (static_cast<uint8_t>(data[0]) != kConfChangeVersion) {
    return Status(Code::kCorruption, "conf change: unknown version");
  }
  uint8_t transition = static_cast<uint8_t>(data[1]);
  if (transition > static_cast<uint8_t>(ConfTransition::kJointExplicit)) {
    return Status(Code::kCorruption, "conf change: bad transition");
  }
  uint64_t count = get_le(data, 2, 4);
  if (count > kConfChangeItemsMax || data.size() != 6 + count * 9) {
    return Status(Code::kCorruption, "conf change: bad length");
  }
  ConfChange cc;
  cc.transition = static_cast<ConfTransition>(transition);
  for (uint64_t i = 0; i < count; ++i) {
    size_t pos = 6 + i * 9;
    uint8_t type = static_cast<uint8_t>(data[pos]);
    if (type > static_cast<uint8_t>(ConfChangeType::kRemove)) {
      return Status(Code::kCorruption, "conf change: bad change type");
    }
    NodeId node(get_le(data, pos + 1, 8));
    if (node == kNoNode) return Status(Code::kCorruption, "conf change: node 0");
    cc.changes.push_back({static_cast<ConfChangeType>(type), node});
  }
  return cc;
}

const char* message_type_name(MessageType t) {
  switch (t) {
    case MessageType::kVote: return "Vote";
    case MessageType::kVoteResp: return "VoteResp";
    case MessageType::kPreVote: return "PreVote";
    case MessageType::kPreVoteResp: return "PreVoteResp";
    case MessageType::kAppend: return "Append";
    case MessageType::kAppendResp: return "AppendResp";
    case MessageType::kHeartbeat: return "Heartbeat";
    case MessageType::kHeartbeatResp: return "HeartbeatResp";
    case MessageType::kSnapshot: return "Snapshot";
    case MessageType::kTimeoutNow: return "TimeoutNow";
    case MessageType::kReadIndex: return "ReadIndex";
    case MessageType::kReadIndexResp: return "ReadIndexResp";
    case MessageType::kTransferLeader: return "TransferLeader";
    case MessageType::kQuiesce: return "Quiesce";
  }
  return "?";
}

const char* role_name(Role r) {
  switch (r) {
    case Role::kFollower: return "follower";
    case Role::kPreCandidate: return "pre-candidate";
    case Role::kCandidate: return "candidate";
    case Role::kLeader: return "leader";
  }
  return "?";
}

const char* progress_state_name(ProgressState s) {
  switch (s) {
    case ProgressState::kProbe: return "probe";
    case ProgressState::kReplicate: return "replicate";
    case ProgressState::kSnapshot: return "snapshot";
  }
  return "?";
}

uint64_t Message::entries_bytes() const {
  uint64_t n = 0;
  for (const Entry& e : entries) n += e.size_bytes();
  return n;
}

bool Ready::empty() const {
  return !must_persist() && messages.empty() && messages_after_persist.empty() &&
         committed_entries.empty() && read_states.empty() && snapshot_requests.empty() &&
         !soft_state;
}

Status Config::validate() const {
  if (id == kNoNode) return Status(Code::kInvalidArgument, "raft config: id must be >= 1");
  if (heartbeat_tick == 0) {
    return Status(Code::kInvalidArgument, "raft config: heartbeat_tick must be >= 1");
  }
  if (election_tick <= heartbeat_tick) {
    return Status(Code::kInvalidArgument,
                  fmt::format("raft config: election_tick ({}) must exceed heartbeat_tick ({})",
                              election_tick, heartbeat_tick));
  }
  if (max_inflight_msgs == 0) {
    return Status(Code::kInvalidArgument, "raft config: max_inflight_msgs must be >= 1");
  }
  if (max_msg_bytes == 0) {
    return Status(Code::kInvalidArgument, "raft config: max_msg_bytes must be >= 1");
  }
  if (max_committed_bytes_per_ready == 0) {
    return Status(Code::kInvalidArgument,
                  "raft config: max_committed_bytes_per_ready must be >= 1");
  }
  return Status::ok();
}

}  // namespace raftd::raft
