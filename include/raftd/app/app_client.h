// The client of the application contract (API.md section 3): raftd's calls to the application
// at app.url, for every group of the node. doc/app-client.md explains batching, retries and
// health; codec.h has the body formats.
//
// Contract (the node keeps it; everything happens on the reactor thread):
//  - Threading: an AppClient belongs to its reactor's thread. Every call, and every callback,
//    happens there. No callback ever runs inside the call that caused it (enqueue, sync, ...);
//    callbacks run from the reactor's turns, and may call back into the AppClient freely
//    (enqueue, drop_group, even close()).
//  - Per group, the node:
//      1. calls last_log_index(g) once when it takes the group up, and re-delivers every
//         committed entry above the answer;
//      2. hands committed entries to enqueue(g, ...) in log order with no gap (index = the
//         previous enqueued index + 1; the first enqueue of a group may start anywhere). raftd's
//         own entries (leader no-ops, membership changes) are enqueued too, with to_app = false:
//         they are not sent, but Raftd-Last-Index covers them so the app records N;
//      3. gets options.on_applied(g, last_index, results) once per acknowledged batch, in log
//         order: every entry up to last_index is applied by the app (and durable unless
//         options.sync), results holds one Record per to_app entry of the batch;
//      4. with options.sync, calls sync(g) to learn what the app made durable;
//      5. serves reads with get_entry(g, ...) after its ReadIndex wait;
//      6. as a leader sending a snapshot: prepare_snapshot(g) then save_snapshot(g, context)
//         to stream the app's state; as a follower receiving one: recover_from_snapshot(g,
//         index, file), after which its enqueues continue from index + 1;
//      7. calls drop_group(g) when the node stops hosting the group.
//  - Guarantees of API.md 3.1 this class provides: per group, UpdateEntries, Sync,
//    LastLogIndex, PrepareSnapshot and RecoverFromSnapshot are one FIFO with at most one call in
//    flight (each of the last four waits for the UpdateEntries of entries enqueued before it,
//    and later entries wait for it); GetEntry and SaveSnapshot are not in that FIFO and may
//    overlap. Groups never wait for each other. A failed call
//    (non-2xx, malformed answer, timeout, refused or reset connection) is sent again, the same
//    bytes, after an exponential backoff with jitter, until it succeeds or the group is dropped:
//    no committed entry is ever skipped, reordered or split differently on a retry, and the app
//    sees a repeat only as a whole batch sent again. Meanwhile the group is unhealthy
//    (health()); the node reports that and keeps serving its other groups. PrepareSnapshot,
//    SaveSnapshot and GetEntry are not retried: their caller gets the error.
//  - After drop_group(g) no callback for g runs, not even for calls already made. A call in
//    flight cannot be taken back from the app (HTTP has no cancel); if the group is taken up
//    again with the same id, its first serialized call waits until that call has ended, so the
//    app never sees two of them at once.
//  - Memory: a group's entries enqueued and not yet acknowledged are bounded by
//    options.queue_bytes_max: enqueue refuses (kUnavailable, the vector untouched) one that would
//    pass it, unless the group holds nothing. The node keeps refused entries and offers them
//    again after an on_applied of the group (raft's log still has them).
//  - Lifetime: close() ends every call; no callback runs after it, later calls are ignored and
//    enqueue returns kCancelled. Destroy the AppClient once closed() is true (turn the reactor
//    until then) or after the reactor's shutdown().
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "raftd/app/codec.h"
#include "raftd/base/histogram.h"
#include "raftd/base/ids.h"
#include "raftd/base/status.h"
#include "raftd/http/client.h"
#include "raftd/io/reactor.h"

namespace raftd::app {

// Longest wait without progress on one call (nothing sent or received for that long) before it
// is dropped as a timeout and, for a serialized call, retried. 10 s: an app that fsyncs a 1 MiB
// batch on a slow disk answers well within it, and a retry repeats the work under load, so a busy
// app must not be mistaken for a dead one; a hung app is still noticed within seconds.
inline constexpr std::uint32_t kCallTimeoutMsDefault = 10'000;
// How long an app may take to answer RecoverFromSnapshot after its last byte: writing and
// syncing a state of several GiB can take minutes on a slow disk, and a timeout sends the whole
// snapshot again.
inline constexpr std::uint32_t kRecoverTimeoutMsDefault = 600'000;
// TCP connect to the app: it runs beside raftd, so a connect that takes a second is not coming.
inline constexpr std::uint32_t kConnectTimeoutMsDefault = 1'000;
// First retry delay, doubled per consecutive failure up to the max. 50 ms rides out an app
// restart's refused connections quickly; 5 s caps what a down app costs in calls (one per
// group per 5 s) and how late the first call after it comes back can be.
inline constexpr std::uint32_t kRetryBackoffMinMsDefault = 50;
inline constexpr std::uint32_t kRetryBackoffMaxMsDefault = 5'000;
// One UpdateEntries body: at most this many bytes of entry data (plus kRecordHeaderBytes per
// entry) and this many entries sent to the app. 1 MiB matches the WAL's default batch, so one
// turn's commits of a busy group go out in one call; an entry larger than the limit goes alone.
inline constexpr std::size_t kBatchBytesMaxDefault = 1024 * 1024;
inline constexpr std::size_t kBatchEntriesMaxDefault = 1024;
static_assert(kBatchBytesMaxDefault <= kBatchBytesMax, "a batch must fit the codec's limit");
static_assert(kBatchEntriesMaxDefault <= kRecordsMax, "a batch must fit the codec's limit");
// Entry bytes a group may hold enqueued and unacknowledged: 16 batches, enough to keep the app
// busy while raft commits more, small enough that a thousand groups of a down app stay bounded.
inline constexpr std::size_t kQueueBytesMaxDefault = 16 * kBatchBytesMaxDefault;
// GetEntry answers are passed to the reader whole; bigger ones fail the read with kTooLarge.
inline constexpr std::uint64_t kReadReplyBytesMaxDefault = 64ull * 1024 * 1024;
// A LastLogIndex answer is at most 20 digits; anything longer is not one.
inline constexpr std::uint64_t kIndexReplyBytesMax = 64;
// A Sync answer's body is not used; this bounds what a confused app can make raftd read.
inline constexpr std::uint64_t kSyncReplyBytesMax = 64 * 1024;
// A PrepareSnapshot context: API.md section 3 caps it at 64 KiB (it is small by contract, and
// raftd holds it while the snapshot streams); a larger answer fails the call with kTooLarge.
inline constexpr std::uint64_t kSnapshotContextBytesMax = 64 * 1024;
// RecoverFromSnapshot reads its file at most this much at a time, as the connection takes it
// (the HTTP client asks for less and holds at most about two send buffers), so memory stays
// bounded whatever the snapshot's size.
inline constexpr std::size_t kSnapshotPieceBytes = 256 * 1024;
// The answer to RecoverFromSnapshot is not used; like Sync's, it is bounded.
inline constexpr std::uint64_t kRecoverReplyBytesMax = kSyncReplyBytesMax;
// At most one serialized call per group is in flight, plus reads, all to one target: requests
// past the pool's connections wait in the HTTP client's queue, which must hold one per group of
// a node hosting thousands.
inline constexpr std::size_t kHttpQueueMax = 16384;
// Characters of an app's error answer kept in the health record.
inline constexpr std::size_t kErrorBodyCharsMax = 200;

// One committed entry handed to the client.
struct AppEntry {
  LogIndex index;
  bool to_app = true;  // false: raftd's own entry, covered by Raftd-Last-Index but not sent
  std::string data;
};

// What a group's batch answer delivers: every entry up to last_index is applied; results has one
// Record per to_app entry of the batch, in index order (empty data when the app gave none).
using AppliedFn =
    std::function<void(GroupId group, LogIndex last_index, std::vector<Record> results)>;

// Every call to the app as it ends, for metrics: the path's name ("UpdateEntries", "Sync",
// "LastLogIndex", "GetEntry", "PrepareSnapshot", "SaveSnapshot", "RecoverFromSnapshot"), the
// time from sending to the end (for SaveSnapshot, to the end of the streamed answer), and the
// outcome (OK, or the error that makes the call fail; a GetEntry answered with any status is
// OK). Not called for calls of dropped groups, cancelled saves, or after close().
using CallFn = std::function<void(GroupId group, std::string_view call, io::Duration latency,
                                  const Status& outcome)>;

// app.url taken apart: "http://IPv4[:port][/base/path]".
struct AppUrl {
  std::string host;
  std::uint16_t port = 80;
  std::string base_path;  // "" or "/a/b" (no trailing slash); call paths are appended to it
};
// kInvalidArgument for another scheme, a host that is not an IPv4 literal (the HTTP client
// connects to addresses, not names), a bad port, a query or fragment, or userinfo.
Result<AppUrl> parse_app_url(std::string_view url);

struct AppOptions {
  AppUrl url{"127.0.0.1", 8080, ""};
  Encoding encoding = Encoding::kBinary;
  bool sync = false;  // app.sync: durability comes from POST /Sync, not from each UpdateEntries
  std::string token;  // non-empty: "Authorization: Bearer <token>" on every call
  std::uint32_t call_timeout_ms = kCallTimeoutMsDefault;
  // RecoverFromSnapshot: once the whole snapshot is sent, the app may take this long to answer
  // (replacing its state durably can take a while after the last byte).
  std::uint32_t recover_timeout_ms = kRecoverTimeoutMsDefault;
  std::uint32_t connect_timeout_ms = kConnectTimeoutMsDefault;
  std::uint32_t retry_backoff_min_ms = kRetryBackoffMinMsDefault;
  std::uint32_t retry_backoff_max_ms = kRetryBackoffMaxMsDefault;
  std::size_t batch_bytes_max = kBatchBytesMaxDefault;
  std::size_t batch_entries_max = kBatchEntriesMaxDefault;
  std::size_t queue_bytes_max = kQueueBytesMaxDefault;
  std::uint64_t read_reply_bytes_max = kReadReplyBytesMaxDefault;
  std::uint64_t jitter_seed = 0;  // 0: seeded from std::random_device
  AppliedFn on_applied;           // required
  CallFn on_call;                 // optional
};

// kInvalidArgument naming the field: zero timeouts or limits, min backoff above max, a batch
// limit above kBatchBytesMax, a queue smaller than a batch, no on_applied, a token that cannot
// be a header value.
Status validate(const AppOptions& options);

// A GetEntry answer, passed to the reader as it is.
struct AppReply {
  int status = 0;
  std::string content_type;  // empty when the app sent none
  std::string body;
};

struct GroupHealth {
  bool healthy = true;
  // While unhealthy: the last failed call's error ("UpdateEntries: ..."). OK when healthy.
  Status last_error;
  // When the current state began: the first failure of the streak, or the success ending it
  // (the group's first call for a group that never failed).
  io::TimePoint since;
  std::uint64_t failures = 0;  // consecutive failed calls (0 when healthy)
};

struct AppStats {
  std::uint64_t update_calls = 0;  // UpdateEntries sent, retries included
  std::uint64_t sync_calls = 0;
  std::uint64_t last_index_calls = 0;
  std::uint64_t read_calls = 0;
  std::uint64_t prepare_calls = 0;
  std::uint64_t save_calls = 0;
  std::uint64_t recover_calls = 0;  // RecoverFromSnapshot sent, retries included
  std::uint64_t save_bytes = 0;     // SaveSnapshot answer bytes handed to on_body
  std::uint64_t failures = 0;       // failed serialized calls (each is retried)
  std::uint64_t read_failures = 0;
  std::uint64_t entries_applied = 0;  // to_app entries acknowledged
  // Per kind of call, the calls answered or failed: the time from sending to the answer (or the
  // failure), and the failures among them (a non-2xx or malformed answer, a timeout, a refused
  // connection). For /metrics.
  struct Call {
    std::uint64_t errors = 0;
    Histogram seconds{kSecondsBuckets};
  };
  Call update_entries, sync, last_log_index, get_entry;
  Call prepare_snapshot, save_snapshot, recover_from_snapshot;
};

// What PrepareSnapshot gave: the index the app's state is exactly at, and its opaque context.
struct SnapshotContext {
  LogIndex index;
  std::string context;
};

// Identifies a save_snapshot call for resume_save and cancel_save (never 0).
using SaveId = std::uint64_t;

class AppClient {
 public:
  // kInvalidArgument from validate().
  static Result<std::unique_ptr<AppClient>> create(io::Reactor& reactor, AppOptions options);
  ~AppClient();  // requires closed() or a shut-down reactor
  AppClient(const AppClient&) = delete;
  AppClient& operator=(const AppClient&) = delete;

  // GET /LastLogIndex: `done` gets the app's answer (a bare decimal; anything else is a failed
  // call). Retried until it succeeds; never called after drop_group. In the group's FIFO.
  void last_log_index(GroupId group, std::function<void(LogIndex)> done);

  // Entries to apply, in log order, continuing the group's previous enqueue (RAFTD_ASSERT).
  // kUnavailable when the group's queue would pass options.queue_bytes_max (see the file
  // comment), kCancelled after close(): `entries` is then left as it was (even when the caller
  // wrote std::move), so the caller still holds them. OK: they are moved out (`entries` is left
  // empty) and are the client's until on_applied.
  Status enqueue(GroupId group, std::vector<AppEntry>&& entries);

  // POST /Sync, once every entry enqueued before this call is acknowledged; `done` gets the
  // last index the app has now made durable (the last index acknowledged before the Sync, or
  // the LastLogIndex answer if larger). Retried until it succeeds. Requires options.sync.
  void sync(GroupId group, std::function<void(LogIndex durable)> done);

  // GET /GetEntry with `query` as the body: the app's status, Content-Type and body, whatever
  // the status. Not retried: a timeout, a refused connection or an answer over
  // read_reply_bytes_max is a non-OK Status (the reader's client sees an error and may retry).
  void get_entry(GroupId group, std::string query, std::function<void(Result<AppReply>)> done);

  // POST /PrepareSnapshot in the group's FIFO (after every entry enqueued before this call is
  // acknowledged, and later entries wait for it), header Raftd-Index: N where N is the last
  // index the app acknowledged (or the LastLogIndex answer if larger), no body. done gets {N,
  // body} on 2xx with a body of at most kSnapshotContextBytesMax; a failure (non-2xx, too large,
  // timeout, refused) is NOT retried: done gets the error and the FIFO goes on. The group's
  // health is left as it is. Never called after drop_group.
  void prepare_snapshot(GroupId group, std::function<void(Result<SnapshotContext>)> done);

  // POST /SaveSnapshot with the context as the body. Not in the FIFO (it may overlap
  // UpdateEntries, API.md 3.1). The app's answer (chunked or Content-Length, any size: no body
  // limit) is streamed: on_body gets each piece (never empty, valid during the call) and
  // returns http::Flow::kPause to stop reading until resume_save(id); the no-progress timeout
  // does not run while paused (it restarts at the resume), and the client then holds what it had
  // read: at most the HTTP client's kPendingBytesMax plus what the reactor's receive ring had
  // already taken in; the rest waits in the socket. done exactly once: OK after the whole 2xx body,
  // else the error (a non-2xx answer is kUnavailable with the status and the first bytes of the
  // app's body in the message). Not retried; the group's health is left as it is. Not called after
  // drop_group/close (which end the call, as cancel_save does). on_body and done may call
  // resume_save, cancel_save, drop_group or close.
  SaveId save_snapshot(GroupId group, std::string context,
                       std::function<http::Flow(std::string_view)> on_body,
                       std::function<void(Status)> done);
  // Reading goes on after on_body returned kPause. No-op for a save that is not paused or has
  // ended.
  void resume_save(SaveId id);
  // Ends the call now: done is NOT called afterwards; its connection is closed. No-op if
  // finished.
  void cancel_save(SaveId id);

  // POST /RecoverFromSnapshot in the group's FIFO, header Raftd-Index: index, the body read from
  // the file at `path` (Content-Length = its size at this call), streamed from the file with
  // bounded memory (kSnapshotPieceBytes at a time at most, as the connection takes it). Retried
  // with backoff like UpdateEntries, and the group's health follows it the same way, until the
  // app answers 2xx or the group is dropped. The file is reopened per try; a file that cannot
  // be opened or read, or whose size changed, fails the call: done gets that error and the
  // FIFO goes on, no retry. On success the group's acknowledged index becomes `index` (a later
  // Sync or PrepareSnapshot reports at least that). From this call on, the group's next enqueue
  // must continue from index + 1; index must not be below the last index enqueued before it
  // (RAFTD_ASSERT: a snapshot older than entries already handed over would be applied after
  // them). done gets OK or the file's error; never called after drop_group.
  void recover_from_snapshot(GroupId group, LogIndex index, std::string path,
                             std::function<void(Status)> done);

  // Forgets the group: queued entries, pending Sync, LastLogIndex, PrepareSnapshot and
  // RecoverFromSnapshot calls and their callbacks, retries and read callbacks; its running
  // saves end as with cancel_save. A no-op for an unknown group.
  void drop_group(GroupId group);

  // Healthy for a group the client does not know.
  GroupHealth health(GroupId group) const;
  // Entry bytes enqueued and not yet acknowledged (0 for an unknown group).
  std::size_t queued_bytes(GroupId group) const;
  const AppStats& stats() const { return stats_; }
  const AppOptions& options() const { return options_; }

  void close();
  bool closed() const;

 private:
  struct Barrier;
  struct Call;
  struct FileBody;
  struct Group;
  struct Save;

  AppClient(io::Reactor& reactor, AppOptions options);
  Group& group_state(GroupId id);
  Group* find(GroupId id, std::uint64_t epoch);
  void pump(Group& g);
  bool start_batch(Group& g);
  void send(Group& g);
  void on_call_done(GroupId id, std::uint64_t epoch, io::TimePoint sent, Result<http::Response> r);
  Status check_answer(const Call& call, Result<http::Response>& r, std::vector<Record>* results,
                      LogIndex* index, std::string* context) const;
  void on_call_failed(Group& g, Status error);
  void end_barrier_with_error(Group& g, Status error);
  void fail_soon(Group& g);
  void on_save_head(SaveId id, const http::ResponseHead& head);
  http::Flow on_save_body(SaveId id, std::string_view piece);
  void on_save_done(SaveId id, Status status);
  void on_call_ok(Group& g, std::vector<Record> results, LogIndex index, std::string context);
  void schedule_retry(Group& g);
  void arm_timer();
  void on_timer(int32_t res);
  http::ClientRequest make_request(GroupId id, std::string method, std::string_view path) const;

  io::Reactor& reactor_;
  AppOptions options_;
  std::unique_ptr<http::Client> http_;
  std::unordered_map<GroupId, std::unique_ptr<Group>> groups_;
  // Serialized calls still in flight for groups that were dropped, by group id (see the file
  // comment: a group taken up again waits for them).
  std::unordered_map<GroupId, std::size_t> orphans_;
  std::uint64_t next_epoch_ = 1;
  // Retries due, by deadline; one timer serves them all.
  std::multimap<io::TimePoint, std::pair<GroupId, std::uint64_t>> retries_;
  io::TimerOp timer_;
  io::TimePoint timer_deadline_;
  bool rearm_after_cancel_ = false;  // we cancelled timer_ to arm it for an earlier deadline
  std::mt19937_64 rng_;
  // Running SaveSnapshot calls.
  std::unordered_map<SaveId, std::unique_ptr<Save>> saves_;
  SaveId next_save_id_ = 1;
  bool closing_ = false;
  AppStats stats_;
};

}  // namespace raftd::app
