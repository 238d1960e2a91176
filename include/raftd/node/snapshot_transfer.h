// Snapshot streams between raftd nodes: the leader's node sends an application's snapshot to a
// follower's node on an HTTP connection of its own (not the raft message stream); the follower
// spools it to disk, verifies it, makes it durable, and only then answers that it has it.
// doc/transport.md "Snapshot streams" is the byte-exact wire format; this header the contract.
//
// The contract (who calls what, in which order, on which thread):
//   - Everything happens on one reactor's thread: construction, every call, every callback.
//   - Sending: start() opens a POST kSnapshotPath to the target (headers name the cluster, both
//     nodes and the snapshot's group, index and term) whose chunked body the producer feeds with
//     push(), then finish(OK). finish() appends the footer (magic, length, XXH3-64 of every byte
//     pushed) and ends the body. `done` runs exactly once (never inside start(), push(), finish()
//     or cancel()): OK only when the receiver answered 200, which it does only after the
//     snapshot is on its disk, verified and durable. A refusal or a failure is the error
//     (statuses in doc/transport.md; kCorruption when the receiver found the length or the
//     checksum wrong). push() returns kPause when more than kSendBufferBytesMax bytes wait: the
//     producer stops until on_drained (called once the buffer fell below kSendBufferLowBytes);
//     bytes pushed anyway are still taken. finish(error) aborts the request (done gets that
//     error); cancel() abandons it (done is not called). push/finish/cancel on a transfer that
//     is over are ignored: a producer may learn of the end only from `done`.
//   - Receiving: the node mounts the SnapshotReceiver (an http::Handler) on its peer listener
//     for POST kSnapshotPath; the listener's ServerOptions must allow a body of any size and no
//     minimum body rate (transport::Transport::adjust_server_options does both), because a
//     snapshot may be many GiB and the receiver pauses the body while it writes. At the head
//     the receiver checks the headers (400), the cluster (403), its own id (421), its stream
//     limit (503) and `accept` (its Status chooses the answer); then it writes the body to
//     `<dir>/<group>-<index>-<term>.part`, holding back the last kSnapshotFooterBytes so the
//     footer never reaches the file. At the end it checks the footer (422 when wrong),
//     fdatasyncs the file, renames it to `<group>-<index>-<term>.snap`, fsyncs the directory,
//     deletes the group's other .snap file, answers 200 {"bytes": N}, and calls on_received.
//     A stream that ends early, is aborted, is corrupt or fails to write leaves no file.
//   - One stream per group at a time: a new accepted stream for a group fails the one in
//     progress (a sender that retries after a broken connection must not wait for the old
//     stream's timeout). One complete .snap per group is kept, until remove() or a newer one.
//
// Durability: a .snap file exists only once its bytes were fdatasynced, and the rename that made
// it is durable (directory fsync) before on_received runs or 200 is answered. A crash leaves
// at most .part files, which open() deletes. Data writes and fdatasyncs go through the reactor
// (io::WriteOp, io::SyncOp); open, rename, unlink and the directory fsync are short blocking
// metadata calls. The file is also fdatasynced every kSyncIntervalBytes while it is written, so
// the final fdatasync (which the sender waits for) stays short whatever the snapshot's size.
//
// Memory: a sender holds at most about kSendBufferBytesMax + one push() plus the HTTP client's
// send buffer (2 * http::kSendBytesMax) per transfer. A receiver holds per stream at most
// kSpoolWriteBytes + kSnapshotFooterBytes + the largest piece the HTTP server hands to on_body
// (one receive buffer, or its pending input, at most http::kPendingBytesMax plus one receive
// buffer): while a write is in flight the body is paused (on_body returns kPause, the write's
// completion resumes it), so the socket's backlog stays in the kernel. Stats::buffered_max
// records the most any stream held.
//
// Timeouts: the HTTP client's response timeout (no byte sent or received for that long) bounds a
// stalled receiver, the server's progress timeout a stalled sender; neither runs while the
// producer has nothing to send or the receiver holds the body paused for a write.
//
// Lifetime: destroy a SnapshotSender once closed() (or after Reactor::shutdown()); destroy a
// SnapshotReceiver after the http::Server that uses it, and only when none of its writes is in
// flight: after Reactor::shutdown(), or once idle() is true.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "raftd/base/ids.h"
#include "raftd/base/status.h"
#include "raftd/http/client.h"
#include "raftd/http/server.h"
#include "raftd/io/reactor.h"

namespace raftd::node {

// Identifies one snapshot on the wire and on disk.
struct SnapshotId {
  GroupId group;
  LogIndex index;
  Term term;
  bool operator==(const SnapshotId&) const = default;
};

// ---- wire format (doc/transport.md "Snapshot streams") ----
inline constexpr const char* kSnapshotPath = "/raft/v1/snapshot";
inline constexpr const char* kSnapshotHeaderCluster = "Raftd-Cluster";
inline constexpr const char* kSnapshotHeaderFrom = "Raftd-From";
inline constexpr const char* kSnapshotHeaderTo = "Raftd-To";
inline constexpr const char* kSnapshotHeaderGroup = "Raftd-Group";
inline constexpr const char* kSnapshotHeaderIndex = "Raftd-Index";
inline constexpr const char* kSnapshotHeaderTerm = "Raftd-Term";
// The body is the snapshot's bytes followed by this footer:
//   8 bytes kSnapshotFooterMagic | u64 length LE | u64 XXH3_64bits(bytes, seed 0) LE
inline constexpr std::string_view kSnapshotFooterMagic = "RDSNAPv1";
inline constexpr size_t kSnapshotFooterBytes = 24;
static_assert(kSnapshotFooterMagic.size() == 8);
// The footer of a snapshot of `length` bytes whose XXH3-64 is `hash`.
std::string encode_snapshot_footer(uint64_t length, uint64_t hash);

// ---- limits ----
// The sender's buffer: push() answers kPause above kSendBufferBytesMax and on_drained comes below
// kSendBufferLowBytes. 1 MiB keeps a fast network busy while the producer (the application's
// SaveSnapshot response) refills; the gap between the marks avoids a drained/pause per push.
inline constexpr size_t kSendBufferBytesMax = 1 << 20;
inline constexpr size_t kSendBufferLowBytes = 256 * 1024;
static_assert(kSendBufferLowBytes < kSendBufferBytesMax);
// The receiver starts a write once this much (beyond the held-back footer) is buffered: large
// enough for few, efficient writes, small enough that a stream costs little memory.
inline constexpr size_t kSpoolWriteBytes = 256 * 1024;
// The receiver fdatasyncs the .part file every this many bytes written, so dirty pages never pile
// up into a final fdatasync longer than the sender's response timeout.
inline constexpr uint64_t kSyncIntervalBytes = 64ull << 20;
// Progress lines in the log: at most one per transfer per this many seconds.
inline constexpr int kProgressLogSeconds = 5;
// The receiver's answer body the sender keeps (for its error message).
inline constexpr size_t kAnswerBytesMax = 4096;
// Retry-After (seconds) of a 503 for too many streams at once.
inline constexpr int kRetryAfterSeconds = 1;

// ---- receiving side: mounted by the node on its peer listener for POST kSnapshotPath ----
struct ReceiverOptions {
  std::string dir;          // data_dir/snapshots (created if missing)
  uint64_t cluster_id = 0;  // a stream with another Raftd-Cluster gets 403
  NodeId self;
  size_t concurrent_max = 2;                          // more streams at once get 503 + Retry-After
  uint64_t sync_interval_bytes = kSyncIntervalBytes;  // see kSyncIntervalBytes
  // Called at the stream's head: OK to accept, else the error is answered and nothing is
  // written: kUnavailable -> 503, kNotFound -> 404, kAborted or kAlreadyExists -> 409 (this
  // codebase's "failed precondition": the receiver's state does not allow it now), other -> 400.
  // Optional: without it every stream that passes the checks is accepted.
  std::function<Status(const SnapshotId&, NodeId from)> accept;
  // Called once a stream is complete, verified, fsynced and renamed to its final name (after
  // the 200 is queued). May call remove() or find().
  std::function<void(const SnapshotId&, const std::string& path, uint64_t bytes)> on_received;
};

class SnapshotReceiver final : public http::Handler {
 public:
  struct Stats {
    uint64_t received = 0;      // streams complete (200)
    uint64_t failed = 0;        // accepted streams that ended without a file
    uint64_t refused = 0;       // streams answered with an error at their head
    uint64_t bytes = 0;         // snapshot bytes of the complete streams
    uint64_t buffered_max = 0;  // the most one stream held in memory at once
    uint64_t syncs = 0;         // fdatasyncs of spool files (periodic and final)
  };

  // Creates dir if missing, deletes leftover partial files in it (a crash mid-transfer) and
  // keeps complete ones (of several for one group, the highest index, then term).
  static Result<std::unique_ptr<SnapshotReceiver>> open(io::Reactor& reactor,
                                                        ReceiverOptions options);
  ~SnapshotReceiver() override;  // requires idle() (or a shut-down reactor)
  SnapshotReceiver(const SnapshotReceiver&) = delete;
  SnapshotReceiver& operator=(const SnapshotReceiver&) = delete;

  // The complete spooled snapshot of `id.group` with exactly this index and term, if there is
  // one: its path and length.
  std::optional<std::pair<std::string, uint64_t>> find(const SnapshotId& id) const;
  // Deletes every spooled file of `group` (the complete one; a stream in progress for it fails
  // with 409).
  void remove(GroupId group);
  const Stats& stats() const { return stats_; }
  // Streams accepted and not over.
  size_t active() const;
  // No write or fdatasync in flight.
  bool idle() const;

  // http::Handler
  void on_headers(http::Exchange& ex) override;
  http::Flow on_body(http::Exchange& ex, std::string_view chunk) override;
  void on_end(http::Exchange& ex) override;
  void on_aborted(http::Exchange& ex) override;

 private:
  struct Stream;
  struct Link;
  struct Complete {
    SnapshotId id;
    std::string path;
    uint64_t bytes = 0;
  };

  SnapshotReceiver(io::Reactor& reactor, ReceiverOptions options);
  Status scan();
  void refuse(http::Exchange& ex, int status, std::string_view code, const std::string& why);
  Stream* stream_of(http::Exchange& ex) const;
  void start_write(Stream& s, size_t n);
  void start_sync(Stream& s);
  void on_written(Stream& s, int32_t res, size_t n);
  void on_synced(Stream& s, int32_t res);
  void go_on(Stream& s);
  void end_stream(Stream& s);
  void complete(Stream& s);
  void fail(Stream& s, int status, std::string_view code, const std::string& why);
  void release(Stream& s);
  void log_progress(Stream& s);
  std::string path_of(const SnapshotId& id, std::string_view ext) const;

  io::Reactor& reactor_;
  ReceiverOptions options_;
  std::vector<std::unique_ptr<Stream>> streams_;  // accepted, or failed with an op in flight
  std::vector<std::unique_ptr<Stream>> retired_;  // freed at turn end (an op's callback ended it)
  std::unordered_map<GroupId, Complete> complete_;
  io::Reactor::HookId hook_ = 0;
  Stats stats_;
};

// ---- sending side ----
struct SendTarget {
  NodeId from, to;
  uint64_t cluster_id = 0;
  std::string host;  // IPv4 literal of the target's listen.peer
  uint16_t port = 0;
};

class SnapshotSender {
 public:
  struct Stats {
    uint64_t started = 0;
    uint64_t sent = 0;          // done with OK
    uint64_t failed = 0;        // done with an error
    uint64_t bytes = 0;         // snapshot bytes of the transfers done with OK
    uint64_t buffered_max = 0;  // the most one transfer's buffer held (pushed, not yet sent)
  };

  explicit SnapshotSender(io::Reactor& reactor, http::ClientOptions options = {});
  ~SnapshotSender();  // requires closed() or a shut-down reactor
  SnapshotSender(const SnapshotSender&) = delete;
  SnapshotSender& operator=(const SnapshotSender&) = delete;

  using TransferId = uint64_t;
  // Opens a POST kSnapshotPath to the target carrying `id` in headers, chunked body fed by
  // push(). Not after close(). done exactly once: OK when the receiver answered 200 (spooled,
  // verified, durable), else the error (see the file comment and doc/transport.md). on_drained:
  // called when the send buffer fell below kSendBufferLowBytes after push() returned kPause.
  TransferId start(const SendTarget& target, const SnapshotId& id, std::function<void()> on_drained,
                   std::function<void(Status)> done);
  // Appends bytes to the stream; kPause when more than kSendBufferBytesMax is waiting: the
  // producer stops until on_drained. Bytes pushed after kPause are still taken.
  http::Flow push(TransferId transfer, std::string_view bytes);
  // The producer is done: OK -> write the footer and end the body; an error -> abort the
  // request (done gets that error).
  void finish(TransferId transfer, Status status);
  // Abandons the transfer: its request is aborted and done is not called.
  void cancel(TransferId transfer);
  // Like http::Client: every transfer not done fails with kCancelled (done is called).
  void close();
  bool closed() const;

  const Stats& stats() const { return stats_; }
  // Transfers started and not done.
  size_t active() const { return transfers_.size(); }

 private:
  struct Transfer;
  Status pull(Transfer& t, std::string& out, size_t max, bool& done);
  void on_done(const std::shared_ptr<Transfer>& t, Status st);
  Status outcome(Transfer& t, const Status& st) const;
  void on_turn_end();

  io::Reactor& reactor_;
  io::Reactor::HookId hook_ = 0;  // added before the client's, so pushes in on_drained go out
  std::unique_ptr<http::Client> client_;
  TransferId next_id_ = 1;
  std::unordered_map<TransferId, std::shared_ptr<Transfer>> transfers_;
  std::vector<TransferId> drained_;                 // on_drained owed, called at turn end
  std::vector<std::shared_ptr<Transfer>> aborted_;  // finish(error): done owed at turn end
  bool closing_ = false;
  Stats stats_;
};

}  // namespace raftd::node
