// raftd-to-raftd transport: one long-lived outbound stream per peer (an HTTP POST whose chunked
// body carries frames of raft messages for all groups, doc/transport.md), and the handler that
// accepts the peers' streams on this node's peer listener.
//
// The contract (who calls what, in which order, on which thread):
//   - Everything happens on the reactor's thread: construction, every call, every callback.
//   - The node constructs one Transport, calls set_peers() (again whenever membership changes),
//     and mounts handler() on its listen.peer http::Server, started with options passed through
//     Transport::adjust_server_options() (the stream is a body that never ends and may idle).
//   - send(m) queues m for the peer m.to. Nothing is written then: at the end of the reactor
//     turn (a turn-end hook), or at flush(), everything queued for a peer goes out as one piece
//     of that peer's stream, heartbeats of all groups in one compact frame. Messages that raft
//     marks "after persist" must only be passed to send() once their Ready is durable; the
//     transport never reorders a peer's messages except that compact heartbeats follow the
//     other messages of the same flush, never a kQuiesce queued after them (it would put a
//     follower to sleep that the late heartbeat then wakes).
//   - Turn-end hooks run in the order they were added, and the transport adds its own (then its
//     HTTP client's) when constructed. A node that calls send() from a turn-end hook must add
//     that hook BEFORE constructing the Transport; otherwise those messages wait for the next
//     turn (flush() does not help: the client's hook has already run).
//   - handler() answers only POST options.path (404 otherwise); a node serving other routes on
//     the same listener dispatches by target before it.
//   - Delivery is best effort, as Raft expects: a message may be dropped (queue over
//     queue_bytes_max, stream failed, peer unknown, over the wire limits); every drop is counted.
//     Raft retries.
//   - Received messages are validated (codec.h validate()) and handed to on_messages, in
//     arrival order, from within the HTTP server's callbacks. A stream that carries a bad frame
//     or an invalid message is closed and logged; messages for groups not hosted here are
//     dropped and counted.
//   - on_peer_state(peer, reachable) reports changes of the outbound stream: true once the
//     peer accepted the stream, false when an attempt or the stream fails, including a peer that
//     stops answering the stream's pings within peer_timeout_ms (the node calls raft's
//     report_unreachable() and wake()s quiesced followers). on_peer_reconnected(peer, restarted)
//     reports an inbound stream from a peer whose previous inbound stream ended or was replaced;
//     restarted is true when the peer is a new process (another incarnation).
//   - on_refused(peer, refusal) reports a peer that answered our handshake with an error, after
//     the on_peer_state(peer, false) of that attempt (the transport retries as for any failure).
//     A refusal for another cluster id carries the peer's cluster id (its 403 answer has
//     Raftd-Cluster, doc/transport.md section 1): what the node does about it is the node's.
//
// Memory: per peer at most queue_bytes_max of queued and encoded messages (plus the HTTP
// client's send buffer, about 2 * http::kSendBytesMax); a peer that does not read makes sends
// drop, not memory grow. Per inbound stream at most one frame (frame_bytes_max_inbound) plus the
// messages of one received piece, and the HTTP server's own input bound.
//
// Lifetime: close() ends every outbound stream and refuses new inbound ones; destroy the
// Transport only once closed() is true (turn the reactor until then) or after
// Reactor::shutdown(), and after the http::Server that uses handler() is destroyed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "raftd/base/ids.h"
#include "raftd/http/client.h"
#include "raftd/http/server.h"
#include "raftd/io/reactor.h"
#include "raftd/raft/types.h"
#include "raftd/transport/codec.h"

namespace raftd::transport {

// ---- defaults and limits, each with its reason ----

// Queued and encoded bytes per peer. Raft's own window (max_inflight_bytes, 32 MiB per group by
// default) bounds what a healthy leader has in flight; a few full-size appends of several groups
// fit, and a peer that falls further behind is better served by drops and raft's retries than by
// a growing queue.
inline constexpr uint64_t kQueueBytesMaxDefault = 16ull << 20;
static_assert(kQueueBytesMaxDefault >= kFrameBytesMax, "one maximal message must fit the queue");
// Reconnect backoff: the first retry comes soon (a peer restarting is back in well under a
// second), later ones at most every few seconds, below raft's election timeout scale of ~1 s.
inline constexpr uint32_t kBackoffMinMsDefault = 50;
inline constexpr uint32_t kBackoffMaxMsDefault = 2000;
// Frame body size the encoder aims for: big enough that headers vanish, small enough that a
// receiver starts on the first messages of a large flush early.
inline constexpr uint64_t kFrameBytesTargetDefault = 1ull << 20;
// Every stream carries a ping this often and the receiver answers each with a byte of its
// response; a stream with no answer for kPeerTimeoutMsDefault is declared dead. Sends into a
// peer that is stopped or cut off succeed into the kernel's buffers for minutes, so without this
// a dead peer (e.g. a quiesced group's leader) would look reachable. Pings also keep an idle
// stream under the HTTP server's progress timeout (http::kProgressTimeoutMsDefault).
inline constexpr uint32_t kKeepaliveMsDefault = 1000;
inline constexpr uint32_t kPeerTimeoutMsDefault = 4000;
static_assert(kPeerTimeoutMsDefault >= 3 * kKeepaliveMsDefault, "tolerate two lost answers");
static_assert(kKeepaliveMsDefault * 4 <= http::kProgressTimeoutMsDefault);
// A stream whose handshake is not answered within this time is abandoned and retried (a peer
// that accepts connections but is stopped never answers).
inline constexpr uint32_t kHandshakeTimeoutMsDefault = 5000;
// How often the transport's timer looks at reconnect deadlines, handshakes and keep-alives.
inline constexpr uint32_t kTimerPeriodMs = 10;

inline constexpr const char* kStreamPathDefault = "/raft/v1/stream";
// Handshake request headers (decimal u64 values).
inline constexpr const char* kHeaderCluster = "Raftd-Cluster";
inline constexpr const char* kHeaderFrom = "Raftd-From";
inline constexpr const char* kHeaderTo = "Raftd-To";
inline constexpr const char* kHeaderIncarnation = "Raftd-Incarnation";
inline constexpr const char* kHeaderWireVersion = "Raftd-Wire-Version";

struct TransportOptions {
  uint64_t cluster_id = 0;
  NodeId self;
  // This process's incarnation, sent in the handshake; 0: a random one is drawn.
  uint64_t incarnation = 0;
  uint64_t queue_bytes_max = kQueueBytesMaxDefault;  // below kFrameBytesMax: big messages drop
  uint32_t backoff_min_ms = kBackoffMinMsDefault;
  uint32_t backoff_max_ms = kBackoffMaxMsDefault;
  uint64_t frame_bytes_target = kFrameBytesTargetDefault;  // outbound frames
  uint64_t frame_bytes_max_inbound = kFrameBytesMax;       // inbound hard limit (<= kFrameBytesMax)
  // Heartbeats of all groups to one peer in one flush travel as one kHeartbeats frame of small
  // tuples (codec.h); false sends each as a full kMessages item (for comparison runs).
  bool coalesce_heartbeats = true;
  uint32_t keepalive_ms = kKeepaliveMsDefault;
  uint32_t peer_timeout_ms = kPeerTimeoutMsDefault;  // no answer to pings: the stream is dead
  uint32_t handshake_timeout_ms = kHandshakeTimeoutMsDefault;
  std::string path = kStreamPathDefault;
  http::ClientOptions client;  // connect and response (no progress) timeouts
};

struct Peer {
  NodeId id;
  std::string host;  // IPv4 literal
  uint16_t port = 0;

  bool operator==(const Peer&) const = default;
};

// Why a peer refused our stream's handshake.
struct Refusal {
  enum class Kind {
    kOtherCluster,  // the peer belongs to another cluster (its id is peer_cluster_id)
    kOther,         // any other refusal (status and reason say which)
  };
  Kind kind = Kind::kOther;
  int status = 0;                // the HTTP status of the answer
  uint64_t peer_cluster_id = 0;  // kOtherCluster only
  std::string reason;            // the peer's reason line (bounded)
};

struct TransportCallbacks {
  // Validated messages of one received piece, in order. Required.
  std::function<void(std::span<raft::Message>)> on_messages;
  // Whether `node` may open a stream to us. Unset: the nodes of the last set_peers().
  std::function<bool(NodeId)> known_peer;
  // Whether this node hosts `group`. Unset: every group.
  std::function<bool(GroupId)> hosts_group;
  std::function<void(NodeId, bool reachable)> on_peer_state;
  std::function<void(NodeId, bool restarted)> on_peer_reconnected;
  std::function<void(NodeId, const Refusal&)> on_refused;
};

struct TransportStats {
  uint64_t bytes_sent = 0;  // handed to the HTTP client for a stream
  uint64_t frames_sent = 0;
  uint64_t messages_sent = 0;         // encoded into a stream
  uint64_t heartbeats_sent = 0;       // of those, kHeartbeat and kHeartbeatResp
  uint64_t heartbeats_coalesced = 0;  // of those, sent as kHeartbeats tuples
  uint64_t bytes_received = 0;
  uint64_t frames_received = 0;
  uint64_t messages_received = 0;    // delivered to on_messages
  uint64_t drops_queue_full = 0;     // send() over queue_bytes_max
  uint64_t drops_no_peer = 0;        // send() to a node not in set_peers()
  uint64_t drops_too_large = 0;      // over the wire limits (codec.h)
  uint64_t drops_stream_failed = 0;  // queued, never sent: the stream failed
  uint64_t drops_unknown_group = 0;  // received for a group not hosted here
  uint64_t connects = 0;             // outbound stream attempts
  uint64_t reconnects = 0;           // attempts after a failed or ended stream
  uint64_t refused_by_peer = 0;      // our handshakes answered with an error
  uint64_t inbound_streams = 0;      // accepted
  uint64_t inbound_refused = 0;      // handshakes we refused
  uint64_t inbound_bad = 0;          // inbound streams closed for a bad frame or message
};

struct PeerStatus {
  bool connected = false;     // the outbound stream is accepted and running
  bool inbound = false;       // the peer's stream to us is open
  uint64_t queued_bytes = 0;  // queued and encoded, not yet handed to the HTTP client
  uint64_t queued_messages = 0;
  uint32_t backoff_ms = 0;  // the current reconnect delay
  // Memory the queue and the encoded bytes hold, used or not: their capacity. Released down to
  // a turn's worth once a burst has drained (transport.cc, kQueueCapacityKept).
  uint64_t reserved_bytes = 0;
};

class Transport {
 public:
  Transport(io::Reactor& reactor, const TransportOptions& options, TransportCallbacks callbacks);
  ~Transport();  // requires closed() or a shut-down reactor
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Sets the peers streams go to (this node is skipped). New peers are connected at once;
  // removed ones have their stream ended and queue dropped; a changed address reconnects.
  void set_peers(const std::vector<Peer>& peers);
  // Queues `m` for m.to (bounded; see the file comment).
  void send(raft::Message&& m);
  // Encodes what is queued now instead of at the turn end.
  void flush();

  // The handler to mount on the peer listener (method POST, target options.path).
  http::Handler& handler();
  // What the peer listener's server needs: an unbounded body (the stream never ends) and no
  // minimum body rate (an idle stream carries only pings).
  static void adjust_server_options(http::ServerOptions& options);

  void close();
  bool closed() const;

  const TransportStats& stats() const { return stats_; }
  std::optional<PeerStatus> peer_status(NodeId peer) const;
  uint64_t incarnation() const { return options_.incarnation; }
  const TransportOptions& options() const { return options_; }

 private:
  struct OutPeer;
  class InStream;
  class StreamHandler;

  void connect(const std::shared_ptr<OutPeer>& p);
  Status pull(const std::shared_ptr<OutPeer>& p, uint64_t gen, std::string& out, size_t max);
  void on_head(const std::shared_ptr<OutPeer>& p, uint64_t gen, const http::ResponseHead& head);
  void on_answer(OutPeer& p, std::string_view chunk);
  void on_done(const std::shared_ptr<OutPeer>& p, uint64_t gen, const Status& st);
  void stream_failed(OutPeer& p, const std::string& why);
  void set_reachable(OutPeer& p, bool reachable);
  void encode_queue(OutPeer& p);
  void drop_queue(OutPeer& p);
  void on_timer();
  void on_turn_end();
  void end_stream(OutPeer& p);

  // Inbound side (StreamHandler).
  void on_stream_headers(http::Exchange& ex);
  http::Flow on_stream_body(http::Exchange& ex, std::string_view chunk);
  void on_stream_gone(InStream& s);
  void close_inbound(http::Exchange& ex, InStream& s, const std::string& why);

  io::Reactor& reactor_;
  TransportOptions options_;
  TransportCallbacks callbacks_;
  // Constructed after the turn-end hook is added, so that hook runs before the client's: what
  // flush() hands the client at the turn end goes out in the same turn end.
  std::unique_ptr<http::Client> client_;
  std::unique_ptr<StreamHandler> handler_;
  std::unique_ptr<io::RepeatingTimer> timer_;
  io::Reactor::HookId hook_ = 0;
  bool closing_ = false;
  std::unordered_map<NodeId, std::shared_ptr<OutPeer>> peers_;
  std::vector<std::shared_ptr<OutPeer>> dirty_;  // queued since the last flush
  struct InboundPeer {
    InStream* stream = nullptr;  // the current stream, or null
    uint64_t incarnation = 0;
  };
  std::unordered_map<NodeId, InboundPeer> inbound_;
  std::vector<raft::Message> received_;  // reused per received piece
  TransportStats stats_;
};

}  // namespace raftd::transport
