// Names, size helpers, Config validation and the ConfChange byte encoding.
#include "raftd/raft/types.h"

#include <fmt/format.h>

#include <algorithm>

#include "conf_change.h"
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

namespace {

Status refuse(const char* rule) {
  return Status(Code::kCorruption, std::string("raft message: ") + rule);
}

Status check_entries(const Message& m) {
  if (m.index.value() > kTermIndexMax - std::min<uint64_t>(m.entries.size(), kTermIndexMax)) {
    return refuse("entries beyond kTermIndexMax");
  }
  Term prev = m.log_term;
  for (size_t i = 0; i < m.entries.size(); ++i) {
    const Entry& e = m.entries[i];
    if (e.index != m.index + (i + 1)) return refuse("entries not contiguous after index");
    if (e.term < prev) return refuse("entry terms decrease (or are below log_term)");
    if (e.term > m.term) return refuse("entry term above the message term");
    if (static_cast<uint8_t>(e.type) > static_cast<uint8_t>(EntryType::kEmpty)) {
      return refuse("unknown entry type");
    }
    if (e.type == EntryType::kConfChange && !decode_conf_change(e.data)) {
      return refuse("undecodable conf change entry");
    }
    if (e.type == EntryType::kEmpty && !e.data.empty()) return refuse("empty entry with data");
    prev = e.term;
  }
  return Status::ok();
}

Status check_snapshot(const Message& m) {
  const SnapshotMeta& meta = m.snapshot->meta;
  if (meta.index == LogIndex(0) || meta.term == Term(0)) return refuse("snapshot at 0");
  if (meta.index > LogIndex(kTermIndexMax)) return refuse("snapshot index above kTermIndexMax");
  if (meta.term > m.term) return refuse("snapshot term above the message term");
  if (Status st = validate_conf_state(meta.conf_state); !st) {
    return Status(Code::kCorruption, "raft message: snapshot " + st.message());
  }
  if (meta.conf_state.voters.empty()) return refuse("snapshot configuration without a voter");
  return Status::ok();
}

}  // namespace

Status check_message(const Message& m) {
  if (static_cast<uint8_t>(m.type) > static_cast<uint8_t>(MessageType::kQuiesce)) {
    return refuse("unknown message type");
  }
  if (m.from == kNoNode) return refuse("from node 0");
  for (uint64_t v : {m.term.value(), m.log_term.value(), m.index.value(), m.commit.value(),
                     m.reject_hint.value()}) {
    if (v > kTermIndexMax) return refuse("term or index above kTermIndexMax");
  }
  const bool vote_req = m.type == MessageType::kVote || m.type == MessageType::kPreVote;
  const bool from_leader = m.type == MessageType::kAppend || m.type == MessageType::kHeartbeat ||
                           m.type == MessageType::kSnapshot || m.type == MessageType::kQuiesce ||
                           m.type == MessageType::kTimeoutNow;
  if ((vote_req || from_leader) && m.term == Term(0)) return refuse("term 0");
  if (!m.entries.empty() && m.type != MessageType::kAppend) {
    return refuse("entries on a message that carries none");
  }
  if (m.snapshot.has_value() != (m.type == MessageType::kSnapshot)) {
    return refuse("snapshot present on a message other than kSnapshot, or missing on one");
  }
  if (m.transfer && !vote_req) return refuse("transfer flag on a message other than a vote");
  switch (m.type) {
    case MessageType::kAppend:
      if (m.log_term > m.term) return refuse("log_term above term");
      return check_entries(m);
    case MessageType::kVote:
    case MessageType::kPreVote:
    case MessageType::kVoteResp:
    case MessageType::kPreVoteResp:
    case MessageType::kQuiesce:
      if (m.log_term > m.term) return refuse("log_term above term");
      return Status::ok();
    case MessageType::kAppendResp:
      if (m.log_term > m.term) return refuse("log_term above term");
      if (m.reject && m.reject_hint > m.index) return refuse("reject_hint above index");
      return Status::ok();
    case MessageType::kSnapshot: return check_snapshot(m);
    case MessageType::kTransferLeader:
      if (m.transfer_target == kNoNode) return refuse("transfer to no node");
      return Status::ok();
    default: return Status::ok();
  }
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
