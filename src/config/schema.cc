// The one table of configuration keys (schema.h). Ranges reference the layers' constants where
// a layer owns the bound; the others are named here with their reason.
#include "raftd/config/schema.h"

#include <fmt/format.h>

#include <array>
#include <limits>

#include "config/values.h"
#include "raftd/transport/codec.h"

namespace raftd::config {

namespace {

constexpr uint64_t kIdMax = uint64_t(std::numeric_limits<int64_t>::max());  // TOML integers
constexpr uint64_t kHourMs = 3'600'000;     // no timeout or backoff beyond an hour makes sense
constexpr uint64_t kTickMsMax = 60'000;     // a tick over a minute means elections take many
constexpr uint64_t kTicksMax = 1'000'000;   // ticks: counters stay far from overflow
constexpr uint64_t kBytesMax = 1ULL << 40;  // 1 TiB: memory bounds beyond it are typos
constexpr uint64_t kAppBatchBytesMin = 4096;
constexpr uint64_t kAppBatchEntriesMax = 1ULL << 20;
constexpr uint64_t kInflightMsgsMax = 1ULL << 16;
// The transport's wire limit for one append message's entries (transport/codec.h).
constexpr uint64_t kMsgBytesMax = transport::kMaxMsgBytesSupported;
constexpr uint64_t kHeaderBytesMin = 1024;  // a request line and a few fields
constexpr uint64_t kConnectionsMax = 1ULL << 20;
constexpr uint64_t kIdempotencyKeysMax = 1ULL << 24;  // 16 Mi keys: GiBs of memory per group

using K = KeyType;
using P = Presence;

// clang-format off
const std::array<KeySpec, 42> kSchema = {{
  {"node", "id", K::kInteger, P::kRequired, "", 1, kIdMax, "",
   "this node's id: unique in the cluster forever, never reused",
   [](Config& c) -> FieldRef { return &c.node.id; }},
  {"node", "data_dir", K::kString, P::kRequired, "", 0, 0, "a path",
   "directory of the WAL, snapshots and metadata (created if missing)",
   [](Config& c) -> FieldRef { return &c.node.data_dir; }},
  {"listen", "client", K::kString, P::kRequired, "", 0, 0, "\"IPv4:port\"",
   "address of the client and admin API",
   [](Config& c) -> FieldRef { return &c.listen.client; }},
  {"listen", "peer", K::kString, P::kRequired, "", 0, 0, "\"IPv4:port\"",
   "address for raftd-to-raftd traffic only",
   [](Config& c) -> FieldRef { return &c.listen.peer; }},
  {"cluster", "initial", K::kArray, P::kDefault, "", 0, 0, "inline tables {id, peer, client}",
   "members to bootstrap with, or to contact when joining; used only with an empty data_dir",
   [](Config& c) -> FieldRef { return &c.cluster.initial; }},
  {"app", "url", K::kString, P::kRequired, "", 0, 0, "\"http://IPv4[:port][/path]\"",
   "base URL of the application",
   [](Config& c) -> FieldRef { return &c.app.url; }},
  {"app", "sync", K::kBoolean, P::kDefault, "", 0, 0, "true or false",
   "true: the app may answer UpdateEntries before durability and raftd calls POST /Sync",
   [](Config& c) -> FieldRef { return &c.app.sync; }},
  {"app", "encoding", K::kString, P::kDefault, "", 0, 0, "\"binary\" or \"json\"",
   "body format of UpdateEntries requests and answers",
   [](Config& c) -> FieldRef { return &c.app.encoding; }},
  {"app", "token", K::kString, P::kUnset, "", 0, 0, "visible ASCII",
   "sent to the app as Authorization: Bearer; unset sends none",
   [](Config& c) -> FieldRef { return &c.app.token; }},
  {"app", "timeout_ms", K::kInteger, P::kDefault, "ms", 1, kHourMs, "",
   "an app call without a complete answer by then fails and is retried",
   [](Config& c) -> FieldRef { return &c.app.timeout_ms; }},
  {"app", "recover_timeout_ms", K::kInteger, P::kDefault, "ms", 1, kHourMs, "",
   "RecoverFromSnapshot: how long the app may take to answer after the snapshot's last byte",
   [](Config& c) -> FieldRef { return &c.app.recover_timeout_ms; }},
  {"app", "retry_min_ms", K::kInteger, P::kDefault, "ms", 1, kHourMs, "",
   "first wait before retrying a failed app call; doubles on each failure",
   [](Config& c) -> FieldRef { return &c.app.retry_min_ms; }},
  {"app", "retry_max_ms", K::kInteger, P::kDefault, "ms", 1, kHourMs, "",
   "longest wait between retries of a failed app call",
   [](Config& c) -> FieldRef { return &c.app.retry_max_ms; }},
  {"app", "batch_bytes_max", K::kInteger, P::kDefault, "bytes", kAppBatchBytesMin, 1ULL << 30, "",
   "entry bytes per UpdateEntries call (one larger entry goes alone)",
   [](Config& c) -> FieldRef { return &c.app.batch_bytes_max; }},
  {"app", "batch_entries_max", K::kInteger, P::kDefault, "entries", 1, kAppBatchEntriesMax, "",
   "entries per UpdateEntries call",
   [](Config& c) -> FieldRef { return &c.app.batch_entries_max; }},
  {"raft", "tick_ms", K::kInteger, P::kDefault, "ms", 1, kTickMsMax, "",
   "length of one Raft tick, the unit of the other raft timings",
   [](Config& c) -> FieldRef { return &c.raft.tick_ms; }},
  {"raft", "election_ticks", K::kInteger, P::kDefault, "ticks", 2, kTicksMax, "",
   "election timeout, drawn from [e, 2e) ticks; 10 heartbeats per the Raft thesis",
   [](Config& c) -> FieldRef { return &c.raft.election_ticks; }},
  {"raft", "heartbeat_ticks", K::kInteger, P::kDefault, "ticks", 1, kTicksMax, "",
   "leader heartbeat interval; must be below election_ticks",
   [](Config& c) -> FieldRef { return &c.raft.heartbeat_ticks; }},
  {"raft", "pre_vote", K::kBoolean, P::kDefault, "", 0, 0, "true or false",
   "PreVote: a partitioned node does not disrupt the leader when it returns",
   [](Config& c) -> FieldRef { return &c.raft.pre_vote; }},
  {"raft", "check_quorum", K::kBoolean, P::kDefault, "", 0, 0, "true or false",
   "a leader that loses contact with a quorum steps down",
   [](Config& c) -> FieldRef { return &c.raft.check_quorum; }},
  {"raft", "quiesce_after_ticks", K::kInteger, P::kDefault, "ticks", 0, kTicksMax, "",
   "an idle group stops heartbeating after this many ticks; 0 never quiesces",
   [](Config& c) -> FieldRef { return &c.raft.quiesce_after_ticks; }},
  {"raft", "max_inflight_msgs", K::kInteger, P::kDefault, "messages", 1, kInflightMsgsMax, "",
   "append messages in flight per follower (pipelining depth)",
   [](Config& c) -> FieldRef { return &c.raft.max_inflight_msgs; }},
  {"raft", "max_msg_bytes", K::kInteger, P::kDefault, "bytes", 1, kMsgBytesMax, "",
   "entry bytes per append message (one larger entry goes alone)",
   [](Config& c) -> FieldRef { return &c.raft.max_msg_bytes; }},
  {"raft", "max_uncommitted_bytes", K::kInteger, P::kDefault, "bytes", 0, kBytesMax, "",
   "uncommitted tail a leader accepts before refusing proposals; 0 is no limit",
   [](Config& c) -> FieldRef { return &c.raft.max_uncommitted_bytes; }},
  {"wal", "segment_bytes", K::kInteger, P::kDefault, "bytes", wal::kSegmentBytesMin,
   wal::kSegmentBytesMax, "",
   "size of each preallocated WAL segment; a multiple of 4096",
   [](Config& c) -> FieldRef { return &c.wal.segment_bytes; }},
  {"wal", "batch_bytes_max", K::kInteger, P::kDefault, "bytes", wal::kWriteBytesMin,
   wal::kSegmentBytesMax / 4, "",
   "bytes per group commit (one write and one fdatasync); at most segment_bytes / 4",
   [](Config& c) -> FieldRef { return &c.wal.batch_bytes_max; }},
  {"wal", "cache_bytes", K::kInteger, P::kDefault, "bytes", 0, kBytesMax, "",
   "memory for entries: recent ones kept for replication and re-delivery to the app, with "
   "those not yet durable (which always fit)",
   [](Config& c) -> FieldRef { return &c.wal.cache_bytes; }},
  {"transport", "queue_bytes_max", K::kInteger, P::kDefault, "bytes", 1, kBytesMax, "",
   "messages queued per peer; beyond it they are dropped and Raft retransmits",
   [](Config& c) -> FieldRef { return &c.transport.queue_bytes_max; }},
  {"transport", "reconnect_min_ms", K::kInteger, P::kDefault, "ms", 1, kHourMs, "",
   "first wait before reconnecting to a peer; doubles on each failure",
   [](Config& c) -> FieldRef { return &c.transport.reconnect_min_ms; }},
  {"transport", "reconnect_max_ms", K::kInteger, P::kDefault, "ms", 1, kHourMs, "",
   "longest wait between reconnection attempts",
   [](Config& c) -> FieldRef { return &c.transport.reconnect_max_ms; }},
  {"transport", "coalesce_heartbeats", K::kBoolean, P::kDefault, "", 0, 0, "true or false",
   "heartbeats of all groups to a peer travel as one compact list per flush",
   [](Config& c) -> FieldRef { return &c.transport.coalesce_heartbeats; }},
  {"limits", "client_body_bytes_max", K::kInteger, P::kDefault, "bytes", 1,
   wal::kSegmentBytesMax / 8, "",
   "largest client request body (propose, read); larger is answered 413",
   [](Config& c) -> FieldRef { return &c.limits.client_body_bytes_max; }},
  {"limits", "header_bytes_max", K::kInteger, P::kDefault, "bytes", kHeaderBytesMin,
   http::kPendingBytesMax, "",
   "largest request head on the client API; larger is answered 431",
   [](Config& c) -> FieldRef { return &c.limits.header_bytes_max; }},
  {"limits", "connections_max", K::kInteger, P::kDefault, "connections", 1, kConnectionsMax, "",
   "open client API connections; beyond it new ones get 503 and are closed",
   [](Config& c) -> FieldRef { return &c.limits.connections_max; }},
  {"limits", "idempotency_keys", K::kInteger, P::kDefault, "keys", 1, kIdempotencyKeysMax, "",
   "Idempotency-Key values remembered per group (the newest; never one not yet applied)",
   [](Config& c) -> FieldRef { return &c.limits.idempotency_keys; }},
  {"snapshot", "entries", K::kInteger, P::kDefault, "entries", 0, kBytesMax, "",
   "compact a group's log when it holds this many app-durable entries past the tail; 0: off",
   [](Config& c) -> FieldRef { return &c.snapshot.entries; }},
  {"snapshot", "bytes", K::kInteger, P::kDefault, "bytes", 0, kBytesMax, "",
   "compact a group's log when this many entry bytes were appended since it last was; 0: off",
   [](Config& c) -> FieldRef { return &c.snapshot.bytes; }},
  {"snapshot", "tail", K::kInteger, P::kDefault, "entries", 0, kBytesMax, "",
   "entries kept behind an automatic compaction point, for followers a little behind",
   [](Config& c) -> FieldRef { return &c.snapshot.tail; }},
  {"snapshot", "sends_max", K::kInteger, P::kDefault, "streams", 1, 1024, "",
   "snapshot streams this node sends at once; more wait",
   [](Config& c) -> FieldRef { return &c.snapshot.sends_max; }},
  {"snapshot", "receives_max", K::kInteger, P::kDefault, "streams", 1, 1024, "",
   "snapshot streams this node receives at once; more are refused with 503 and sent again",
   [](Config& c) -> FieldRef { return &c.snapshot.receives_max; }},
  {"auth", "client_token", K::kString, P::kUnset, "", 0, 0, "visible ASCII",
   "when set, client API requests need Authorization: Bearer with it, else 401",
   [](Config& c) -> FieldRef { return &c.auth.client_token; }},
  {"log", "level", K::kString, P::kDefault, "", 0, 0, "\"debug\", \"info\", \"warn\" or \"error\"",
   "least severe log line written to stderr",
   [](Config& c) -> FieldRef { return &c.log.level; }},
}};
// clang-format on

constexpr std::array<std::string_view, 11> kSections = {"node",     "listen", "cluster",   "app",
                                                        "raft",     "wal",    "transport", "limits",
                                                        "snapshot", "auth",   "log"};

// "67108864 (64 MiB)" for round binary sizes, else the number.
std::string bytes_text(uint64_t n) {
  if (n >= (1ULL << 40) && n % (1ULL << 40) == 0) return fmt::format("{} ({} TiB)", n, n >> 40);
  if (n >= (1ULL << 30) && n % (1ULL << 30) == 0) return fmt::format("{} ({} GiB)", n, n >> 30);
  if (n >= (1ULL << 20) && n % (1ULL << 20) == 0) return fmt::format("{} ({} MiB)", n, n >> 20);
  if (n >= (1ULL << 10) && n % (1ULL << 10) == 0) return fmt::format("{} ({} KiB)", n, n >> 10);
  return std::to_string(n);
}

std::string_view type_word(KeyType t) {
  switch (t) {
    case KeyType::kInteger: return "integer";
    case KeyType::kBoolean: return "boolean";
    case KeyType::kString: return "string";
    case KeyType::kArray: return "array";
  }
  return "?";
}

}  // namespace

std::span<const KeySpec> schema() { return kSchema; }

std::span<const std::string_view> sections() { return kSections; }

std::string value_text(const KeySpec& spec, const Config& cfg) {
  Config copy = cfg;  // field() hands out pointers into a mutable Config
  return field_text(spec.field(copy));
}

std::string summary_line(const KeySpec& spec) {
  std::string s(type_word(spec.type));
  if (!spec.unit.empty()) s += fmt::format(", {}", spec.unit);
  const bool bytes = spec.unit == "bytes";
  switch (spec.presence) {
    case Presence::kRequired: s += "; required"; break;
    case Presence::kUnset: s += "; default unset"; break;
    case Presence::kDefault: {
      Config defaults;
      std::string v = value_text(spec, defaults);
      if (bytes) v = bytes_text(std::stoull(v));
      s += fmt::format("; default {}", v);
      break;
    }
  }
  if (spec.type == KeyType::kInteger) {
    s += bytes ? fmt::format("; range {} to {}", bytes_text(spec.min), bytes_text(spec.max))
               : fmt::format("; range {} to {}", spec.min, spec.max);
  } else {
    s += fmt::format("; {}", spec.values);
  }
  return s;
}

}  // namespace raftd::config
