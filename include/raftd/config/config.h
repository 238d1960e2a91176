// raftd::config: the daemon's configuration file (TOML), its schema, loading and validation.
//
// Contract:
//   - load_config(path) reads the file (at most kConfigBytesMax bytes) and calls parse_config.
//     parse_config(text, source_name) parses TOML with toml++, checks every key against the one
//     schema table (schema.h: name, type, default, unit, range, reason), fills a Config whose
//     every field holds either the file's value or its default, then checks the rules that tie
//     keys together (heartbeat_ticks < election_ticks, wal.batch_bytes_max <= segment_bytes/4,
//     cluster.initial entries unique and matching [listen] for this node, ...). raftd.toml(5)
//     documents every key and rule; a test keeps the man page and the schema table in step.
//   - Errors are Status kInvalidArgument (kIoError/kNotFound when the file cannot be read, and
//     kTooLarge when it is over kConfigBytesMax) whose message is exactly ONE line:
//         FILE:LINE: key 'section.key': what is wrong
//     LINE comes from toml++'s source regions: the key's line for an unknown key, the value's
//     line for a wrong type or an out-of-range value, the table's line (or 1 when the table is
//     absent) for a missing required key. Syntax errors read "FILE:LINE: TOML syntax error:
//     ...". Unknown tables, unknown keys (also inside cluster.initial entries), wrong types and
//     values outside the documented range are all errors; nothing is silently ignored. Only one
//     error is reported: the one on the earliest line; the rules between keys are checked once
//     every key is valid. Before toml++ parses, a scan refuses the few malformed inputs toml++
//     3.3 mishandles (config.cc, toml_precheck); none can appear in a valid raftd.toml.
//   - Environment: RAFT_SYNC=1 (or "true") turns app.sync on whatever the file says; unset,
//     empty, "0" or "false" leave the file's value; any other value is an error naming
//     app.sync. parse_config and load_config read the process environment; the overloads taking
//     a ConfigEnv read only what it holds (tests, the fuzzer).
//   - emit_config(cfg) writes a Config back as TOML with every key; for any Config that
//     parse_config accepted, parse_config(emit_config(cfg)) yields an equal Config (the fuzz
//     target checks this on every accepted input).
//   - Threading: pure functions; call them from any thread. load_config does blocking file I/O:
//     call it at start-up, never from the reactor.
//   - What the config does not decide: whether cluster.initial is needed. A node whose data_dir
//     is empty needs it (bootstrap or join, API.md section 1); a node with state ignores it. That
//     is `raftd serve`'s check, at start-up, since it depends on the data directory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "raftd/base/ids.h"
#include "raftd/base/log.h"
#include "raftd/base/status.h"
#include "raftd/http/limits.h"
#include "raftd/raft/raft.h"
#include "raftd/wal/format.h"
#include "raftd/wal/wal.h"

namespace raftd::config {

// A config file is a few KiB; 1 MiB bounds what a wrong path (a log file, a WAL segment) makes
// the loader read and parse.
inline constexpr uint64_t kConfigBytesMax = 1ULL << 20;

// Defaults of keys no lower layer has a constant for yet, each with its reason.
// One Raft tick: 100 ms with 10 election ticks gives etcd's defaults (100 ms heartbeat, 1 s
// election timeout), comfortable on a LAN and on a loaded 2-core machine.
inline constexpr uint32_t kTickMsDefault = 100;
// The app is retried from 100 ms, doubling to 10 s: fast recovery from a restart of the app,
// at most one call per 10 s against an app that stays down.
inline constexpr uint32_t kAppRetryMinMsDefault = 100;
inline constexpr uint32_t kAppRetryMaxMsDefault = 10'000;
// The app's answer to RecoverFromSnapshot may take 10 minutes after the last byte (the app
// client's kRecoverTimeoutMsDefault and its reason: a state of several GiB written and synced).
inline constexpr uint32_t kAppRecoverTimeoutMsDefault = 600'000;
// One UpdateEntries call carries at most what one Ready hands out for a group, so one Ready is
// one call; 1024 entries bounds the per-entry result bookkeeping of a call.
inline constexpr uint64_t kAppBatchBytesMaxDefault = raft::kDefaultMaxCommittedBytesPerReady;
inline constexpr uint32_t kAppBatchEntriesMaxDefault = 1024;
// Bytes queued for one peer while its connection is slow or down: sixteen full append messages;
// beyond it messages to that peer are dropped (Raft retransmits), never buffered without bound.
inline constexpr uint64_t kPeerQueueBytesMaxDefault = 16 * raft::kDefaultMaxMsgBytes;
// Reconnecting to a peer: from 100 ms (a restart) doubling to 5 s (a node that is down costs a
// connect attempt per peer every 5 s).
inline constexpr uint32_t kReconnectMinMsDefault = 100;
inline constexpr uint32_t kReconnectMaxMsDefault = 5'000;
// Client request bodies (propose, read): a proposal, raftd's envelope and its WAL frame headers
// must fit one WAL batch, so the cap is half of the default batch (config rule:
// limits.client_body_bytes_max <= wal.batch_bytes_max / 2).
inline constexpr uint64_t kClientBodyBytesMaxDefault = wal::kBatchBytesDefault / 2;
// Idempotency-Key values remembered per group on each node: a retry within the newest 10,000
// keyed proposals of its group is recognised (about 1.5 MiB per busy group with 128-byte keys and
// small results; groups that never use keys cost nothing).
inline constexpr uint32_t kIdempotencyKeysDefault = 10'000;
// Automatic compaction (doc/node.md "Compaction"): a group's log is compacted once this many
// entries its app made durable are in it beyond the tail, or once this many bytes of entries were
// appended since its last compaction. 10,000 entries or 64 MiB: a restart replays little, a
// thousand active groups hold about a GiB of log at most, and a compaction (a few bytes staged in
// the WAL) is rare enough to cost nothing.
inline constexpr uint64_t kSnapshotEntriesDefault = 10'000;
inline constexpr uint64_t kSnapshotBytesDefault = 64ull << 20;
// Entries kept behind the compaction point for followers a little behind (a restart, a short
// partition): they catch up from the log instead of by a snapshot.
inline constexpr uint64_t kSnapshotTailDefault = 1'000;
// Snapshot streams at once: sent by this node (its app's SaveSnapshot calls, its uplink) and
// received (spooling to its disk). Two keeps a node that lost many groups' followers from
// saturating its disk and app while still overlapping one slow transfer.
inline constexpr uint32_t kSnapshotSendsDefault = 2;
inline constexpr uint32_t kSnapshotReceivesDefault = 2;
// Members listed in cluster.initial; a config with more is a mistake, not a cluster.
inline constexpr uint32_t kInitialMembersMax = 1024;
// Tokens go into an HTTP header: visible ASCII, at most this long (well under the header limit).
inline constexpr uint32_t kTokenBytesMax = 4096;
// data_dir: at most PATH_MAX - 1 bytes.
inline constexpr uint32_t kPathBytesMax = 4095;

// "host:port" where host is an IPv4 literal in dotted-decimal form (no names, no IPv6: the
// socket layer binds and connects IPv4 only, and no name is resolved at run time) and port is
// 1..65535. Listen addresses may use 0.0.0.0 (every interface); addresses others connect to
// (cluster.initial) may not.
struct Address {
  std::string host;  // canonical dotted decimal, e.g. "127.0.0.1"
  uint16_t port = 0;

  std::string to_string() const;  // "host:port"
  bool operator==(const Address&) const = default;
};

// "http://host[:port][/base/path]": host as in Address, port 80 when omitted. raftd calls
// base_path + "/UpdateEntries" etc. https is refused (raftd speaks plain HTTP to its app).
struct AppUrl {
  std::string host;
  uint16_t port = 0;
  std::string base_path;  // "" or "/seg[/seg...]", never ending in '/'

  std::string to_string() const;  // canonical form: "http://host:port" + base_path
  bool operator==(const AppUrl&) const = default;
};

enum class AppEncoding { kBinary, kJson };

struct Member {
  NodeId id;
  Address peer;
  Address client;
  bool operator==(const Member&) const = default;
};

struct NodeSection {
  NodeId id;             // required, >= 1
  std::string data_dir;  // required; relative paths are relative to the working directory
  bool operator==(const NodeSection&) const = default;
};

struct ListenSection {
  Address client;  // required
  Address peer;    // required
  bool operator==(const ListenSection&) const = default;
};

struct ClusterSection {
  std::vector<Member> initial;  // may be empty (a node with state ignores it)
  bool operator==(const ClusterSection&) const = default;
};

struct AppSection {
  AppUrl url;  // required
  bool sync = false;
  AppEncoding encoding = AppEncoding::kBinary;
  std::optional<std::string> token;  // Authorization: Bearer <token> on every app call
  uint32_t timeout_ms = http::kResponseTimeoutMsDefault;
  uint32_t recover_timeout_ms = kAppRecoverTimeoutMsDefault;  // RecoverFromSnapshot's answer
  uint32_t retry_min_ms = kAppRetryMinMsDefault;
  uint32_t retry_max_ms = kAppRetryMaxMsDefault;  // >= retry_min_ms
  uint64_t batch_bytes_max = kAppBatchBytesMaxDefault;
  uint32_t batch_entries_max = kAppBatchEntriesMaxDefault;
  bool operator==(const AppSection&) const = default;
};

struct RaftSection {
  uint32_t tick_ms = kTickMsDefault;
  uint32_t election_ticks = raft::kDefaultElectionTicks;
  uint32_t heartbeat_ticks = raft::kDefaultHeartbeatTicks;  // < election_ticks
  bool pre_vote = raft::Config{}.pre_vote;
  bool check_quorum = raft::Config{}.check_quorum;
  uint32_t quiesce_after_ticks = raft::Config{}.quiesce_after_ticks;  // 0 = never
  uint32_t max_inflight_msgs = raft::kDefaultMaxInflightMsgs;
  uint64_t max_msg_bytes = raft::kDefaultMaxMsgBytes;
  uint64_t max_uncommitted_bytes = raft::kDefaultMaxUncommittedBytes;  // 0 = no limit
  bool operator==(const RaftSection&) const = default;
};

struct WalSection {
  uint64_t segment_bytes = wal::kSegmentBytesDefault;  // multiple of 4096
  uint64_t batch_bytes_max = wal::kBatchBytesDefault;  // <= segment_bytes / 4
  uint64_t cache_bytes = wal::kCacheBytesDefault;
  bool operator==(const WalSection&) const = default;
};

struct TransportSection {
  uint64_t queue_bytes_max = kPeerQueueBytesMaxDefault;  // per peer, >= raft.max_msg_bytes
  uint32_t reconnect_min_ms = kReconnectMinMsDefault;
  uint32_t reconnect_max_ms = kReconnectMaxMsDefault;  // >= reconnect_min_ms
  bool coalesce_heartbeats = true;  // transport::TransportOptions::coalesce_heartbeats
  bool operator==(const TransportSection&) const = default;
};

struct LimitsSection {
  uint64_t client_body_bytes_max = kClientBodyBytesMaxDefault;  // <= wal.batch_bytes_max / 2
  uint32_t header_bytes_max = http::kHeaderBytesMax;
  uint32_t connections_max = http::kConnectionsMaxDefault;
  // Idempotency-Key values each node remembers per group (include/raftd/node/idempotency.h).
  uint32_t idempotency_keys = kIdempotencyKeysDefault;
  bool operator==(const LimitsSection&) const = default;
};

struct SnapshotSection {
  uint64_t entries = kSnapshotEntriesDefault;  // 0: no compaction by entry count
  uint64_t bytes = kSnapshotBytesDefault;      // 0: no compaction by bytes
  uint64_t tail = kSnapshotTailDefault;
  uint32_t sends_max = kSnapshotSendsDefault;
  uint32_t receives_max = kSnapshotReceivesDefault;
  bool operator==(const SnapshotSection&) const = default;
};

struct AuthSection {
  // When set, client API requests without "Authorization: Bearer <token>" get 401.
  std::optional<std::string> client_token;
  bool operator==(const AuthSection&) const = default;
};

struct LogSection {
  raftd::log::Level level = raftd::log::Level::kInfo;
  bool operator==(const LogSection&) const = default;
};

struct Config {
  NodeSection node;
  ListenSection listen;
  ClusterSection cluster;
  AppSection app;
  RaftSection raft;
  WalSection wal;
  TransportSection transport;
  LimitsSection limits;
  SnapshotSection snapshot;
  AuthSection auth;
  LogSection log;
  bool operator==(const Config&) const = default;
};

// What the loader reads from the environment. from_process() reads getenv("RAFT_SYNC").
struct ConfigEnv {
  std::optional<std::string> raft_sync;
  static ConfigEnv from_process();
};

Result<Config> load_config(const std::string& path);
Result<Config> load_config(const std::string& path, const ConfigEnv& env);
// source_name is what error messages call the file (its path, or e.g. "<test>").
Result<Config> parse_config(std::string_view text, std::string_view source_name);
Result<Config> parse_config(std::string_view text, std::string_view source_name,
                            const ConfigEnv& env);

// The Config as TOML, every key written (defaults included), tokens included: the output is as
// secret as the file it came from.
std::string emit_config(const Config& cfg);

std::string_view encoding_name(AppEncoding e);     // "binary", "json"
std::string_view level_name(raftd::log::Level l);  // "debug", "info", "warn", "error"

}  // namespace raftd::config
