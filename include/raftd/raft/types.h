// Value types of the Raft core: log entries, hard state, configuration, snapshot metadata,
// messages between the replicas of one group, and read states.
//
// All types are plain values (copyable, no hidden sharing). The core never serializes Messages
// itself: the transport owns the wire format. The only byte format owned here is the encoding of
// a ConfChange inside a kConfChange entry's data (encode_conf_change / decode_conf_change), because
// every replica must decode it identically when the entry is applied.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "raftd/base/ids.h"
#include "raftd/base/status.h"

namespace raftd::raft {

inline constexpr NodeId kNoNode{0};

enum class EntryType : uint8_t {
  kNormal = 0,      // application data
  kConfChange = 1,  // data = encode_conf_change(...); applied by the core itself
  kEmpty = 2,       // the leader's no-op on election; never given to the application's data path
};

struct Entry {
  Term term;
  LogIndex index;
  EntryType type = EntryType::kNormal;
  std::string data;

  // Bytes this entry counts for in flow control and size limits (payload plus a fixed overhead
  // for term, index and type, so empty entries still cost something).
  uint64_t size_bytes() const { return data.size() + kOverheadBytes; }
  static constexpr uint64_t kOverheadBytes = 24;

  bool operator==(const Entry&) const = default;
};

// Raft's persistent per-server state (thesis Fig. 3.1) plus the commit index. The whole hard
// state of a Ready must be durable before that Ready's messages_after_persist leave, and never
// before that Ready's entries (raft.h, "Hard state"). `commit` is not a hint: a node restarted
// with an older commit index would use a configuration the group may have left.
struct HardState {
  Term term;
  NodeId vote = kNoNode;  // kNoNode: no vote in `term`
  LogIndex commit;

  bool operator==(const HardState&) const = default;
};

// A group's membership. In a joint configuration (`voters_outgoing` non-empty) every decision
// needs a majority of `voters` AND a majority of `voters_outgoing`. `learners_next` holds voters
// of the outgoing configuration that become learners when the joint configuration is left.
// All lists are sorted and free of duplicates.
struct ConfState {
  std::vector<NodeId> voters;
  std::vector<NodeId> learners;
  std::vector<NodeId> voters_outgoing;
  std::vector<NodeId> learners_next;
  bool auto_leave =
      false;  // leader proposes the leave-joint entry itself once the joint is applied

  bool joint() const { return !voters_outgoing.empty(); }
  bool operator==(const ConfState&) const = default;
};

// What a snapshot covers: every entry up to and including (index, term), and the membership as
// of that index (never a later, possibly uncommitted, one: subtle bug #8).
struct SnapshotMeta {
  LogIndex index;
  Term term;
  ConfState conf_state;

  bool operator==(const SnapshotMeta&) const = default;
};

// A snapshot travelling from a leader to a follower. `data` is opaque to the core; the daemon may
// leave it empty and stream the application's snapshot on its own connection, keyed by
// (group, meta.index).
struct Snapshot {
  SnapshotMeta meta;
  std::string data;

  bool operator==(const Snapshot&) const = default;
};

// Membership change proposals. One change in a ConfChange whose effect on the voter set is at most
// one added or removed voter is a "simple" change (applied directly); anything else goes through a
// joint configuration. An empty `changes` list is the request to leave a joint configuration.
enum class ConfChangeType : uint8_t { kAddVoter = 0, kAddLearner = 1, kRemove = 2 };

struct ConfChangeItem {
  ConfChangeType type = ConfChangeType::kAddVoter;
  NodeId node;

  bool operator==(const ConfChangeItem&) const = default;
};

enum class ConfTransition : uint8_t {
  kAuto = 0,           // simple if possible, else joint with auto_leave
  kJointImplicit = 1,  // always joint, leader leaves it automatically
  kJointExplicit = 2,  // always joint, the application proposes the (empty) leave change
};

struct ConfChange {
  ConfTransition transition = ConfTransition::kAuto;
  std::vector<ConfChangeItem> changes;

  bool leave_joint() const { return changes.empty(); }
  bool operator==(const ConfChange&) const = default;
};

// Byte layout (little endian): u8 version (=1), u8 transition, u32 count, then per change
// u8 type + u64 node. decode rejects anything else with kCorruption.
std::string encode_conf_change(const ConfChange& cc);
Result<ConfChange> decode_conf_change(const std::string& data);

enum class MessageType : uint8_t {
  kVote = 0,        // candidate -> voter: index/log_term = candidate's last entry; transfer flag
  kVoteResp,        // reject = not granted; commit/log_term = the voter's commit index and its
                    // term (a candidate whose log matches there learns that commit)
  kPreVote,         // like kVote, term = the term the candidate would use; changes no state
  kPreVoteResp,     // term = the request's term when granted; commit/log_term as kVoteResp
  kAppend,          // index/log_term = previous entry; entries; commit
  kAppendResp,      // index = last index known to match; on reject see reject_hint/log_term;
                    // context = the follower's wake epoch (doc/raft.md, "Quiescing")
  kHeartbeat,       // commit = min(follower's match, leader commit); context = read round
  kHeartbeatResp,   // context echoes the read round; reject = a refused kQuiesce (wakes a
                    // quiesced leader), and then context = the follower's wake epoch
  kSnapshot,        // snapshot = the snapshot to install (leader -> follower)
  kTimeoutNow,      // leader -> transfer target: campaign now, bypassing PreVote and the lease
  kReadIndex,       // follower -> leader: context = the follower's request id
  kReadIndexResp,   // leader -> follower: index = read index; context = request id; reject
  kTransferLeader,  // any node -> leader: transfer leadership to transfer_target
  kQuiesce,         // leader -> follower: the group is idle; stop counting election ticks;
                    // index/log_term = last entry; commit; context = the follower's wake
                    // epoch as the leader last heard it
};

const char* message_type_name(MessageType t);

struct Message {
  MessageType type = MessageType::kAppend;
  GroupId group;
  NodeId from;
  NodeId to;
  Term term;  // sender's term (kPreVote: the term it would campaign in)

  Term log_term;   // kAppend: term of entry `index`; votes: candidate's last term;
                   // vote responses: term of entry `commit`;
                   // rejected kAppendResp: term of the follower's entry at reject_hint
  LogIndex index;  // kAppend: previous entry's index; votes: candidate's last index;
                   // kAppendResp: last matching index (or the rejected index when reject)
  std::vector<Entry> entries;
  LogIndex commit;  // kAppend / kHeartbeat / kQuiesce: the leader's commit index for this
                    // follower; vote responses: the voter's commit index

  bool reject = false;
  LogIndex reject_hint;  // rejected kAppendResp: follower's guess of the last matching index

  uint64_t context = 0;   // kHeartbeat(Resp): read round; kReadIndex(Resp): request id;
                          // kAppendResp, kQuiesce, rejected kHeartbeatResp: wake epoch
  bool transfer = false;  // kVote / kPreVote sent because of a leader transfer (bypass lease)
  NodeId transfer_target = kNoNode;  // kTransferLeader: who should lead

  std::optional<Snapshot> snapshot;  // kSnapshot only

  // Bytes this message counts for in the max_msg_bytes limit (entries only).
  uint64_t entries_bytes() const;
};

// Largest term or index a message from a peer may carry. The core adds small numbers to both
// (index + 1, index + entries.size(), term + 1); keeping them below 2^62 makes every such sum
// exact. No group reaches it (2^62 entries at a million per second is 146,000 years).
inline constexpr uint64_t kTermIndexMax = 1ull << 62;

// The shape every message an honest replica sends has, checkable from the message alone
// (doc/raft.md, "Messages no honest peer sends"): a known type, a sender, terms and indexes at
// most kTermIndexMax; leader and candidate messages at term >= 1; entries only on kAppend, each
// at index + 1 + i, of a known type, with terms in [log_term, term] that never decrease, a
// conf-change entry whose data decodes and an empty entry without data; a snapshot exactly on
// kSnapshot, at index and term >= 1, term <= the message's, with a valid configuration that has a
// voter; log_term <= term on the messages that carry one; reject_hint <= index on a rejection;
// the transfer flag only on vote requests; a transfer target on kTransferLeader.
// Group::step drops a message from another node that fails it (counted in refused_messages());
// the transport runs it on every received message (transport::validate). kCorruption names the
// rule broken.
Status check_message(const Message& m);

// The answer to a read_index() request: once the local state machine has applied `index`, a
// read that started before read_index() was called is linearizable. ok = false: the request was
// dropped (leadership lost, no leader known); the caller retries.
struct ReadState {
  uint64_t request_id = 0;
  LogIndex index;
  bool ok = true;

  bool operator==(const ReadState&) const = default;
};

enum class Role : uint8_t { kFollower = 0, kPreCandidate, kCandidate, kLeader };
const char* role_name(Role r);

// Volatile state worth telling the daemon about (routing proposals, metrics).
struct SoftState {
  NodeId leader = kNoNode;
  Role role = Role::kFollower;
  bool quiesced = false;

  bool operator==(const SoftState&) const = default;
};

}  // namespace raftd::raft
