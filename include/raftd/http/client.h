// HTTP/1.1 client on the io_uring reactor with a keep-alive connection pool per target
// (host:port). Request bodies are a string or are pulled from a source (known length: sent with
// Content-Length; unknown: chunked); responses (sized, chunked or EOF-delimited) are delivered
// incrementally. Memory per request is bounded (about 2 * kSendBytesMax out, one receive
// buffer in) whatever the body sizes, provided the callbacks consume what they are given.
//
// Timeouts: connect_timeout_ms bounds the TCP connect; response_timeout_ms bounds every wait
// without progress once the request is being sent (no byte sent or received for that long),
// except that a request may allow a longer wait for the answer's first byte once it has been
// sent whole (ClientRequest::answer_timeout_ms).
// Errors arrive as a Status in on_done: kTimeout, kIoError (connect refused, reset, closed
// early), kCorruption (malformed response), kUnavailable (queue full), kCancelled (close()).
//
// A pooled connection that fails before any response byte arrived is retried once on a new
// connection, when the request body is replayable (a string).
//
// Threading: a Client belongs to its reactor's thread; all calls and callbacks happen there.
// Callbacks never run inside request(). Targets are IPv4 literals (raftd's configuration holds
// addresses, not names).
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "raftd/base/status.h"
#include "raftd/http/limits.h"
#include "raftd/http/message.h"
#include "raftd/io/reactor.h"

namespace raftd::http {

struct ClientOptions {
  std::uint32_t connect_timeout_ms = kConnectTimeoutMsDefault;
  std::uint32_t response_timeout_ms = kResponseTimeoutMsDefault;
  std::size_t idle_per_target_max = kPoolIdlePerTargetMax;
  std::size_t connections_per_target_max = kPoolConnectionsPerTargetMax;
  std::size_t queue_max = kPoolQueueMax;
  std::size_t response_header_bytes_max = kResponseHeaderBytesMax;
  std::uint64_t response_body_bytes_max = UINT64_MAX;
};

struct ClientStats {
  std::uint64_t connections_opened = 0;
  std::uint64_t connections_reused = 0;  // requests that went out on a pooled connection
  std::uint64_t retries = 0;
  std::uint64_t requests = 0;
};

// Pulls the next piece of a request body: appends up to max_bytes bytes to `out`, and sets
// `done` with the last piece. Called on the reactor thread whenever the connection can take
// more. Appending nothing without `done` means "nothing yet": the client stops pulling until
// Client::resume_source(id) (a long-lived stream, like the peer transport's). A non-OK Status
// aborts the request with that Status.
using BodySource = std::function<Status(std::string& out, std::size_t max_bytes, bool& done)>;

struct ClientRequest {
  std::string method = "GET";
  std::string target = "/";
  Headers headers;  // no framing headers (Content-Length, Transfer-Encoding, Connection)
  std::string body;
  // When set, the body comes from `source` instead of `body`: with Content-Length
  // source_bytes if that is set (the source must produce exactly that many), else chunked.
  BodySource source;
  std::optional<std::uint64_t> source_bytes;
  // Cap on this response's body (ClientOptions::response_body_bytes_max applies too; the
  // smaller wins). A larger Content-Length, or a chunked or EOF-delimited body growing past it,
  // fails the request with kTooLarge at once and closes the connection: a response that never
  // ends is not read forever.
  std::uint64_t response_body_bytes_max = UINT64_MAX;
  // Above ClientOptions::response_timeout_ms: once the whole request (body included) is sent,
  // the wait for the answer's first byte may last this long (a server that works on the body
  // before it answers, like an application applying a snapshot). 0 or less: the usual timeout.
  std::uint32_t answer_timeout_ms = 0;
};

// Identifies a request for Client::resume, resume_source and cancel.
using RequestId = std::uint64_t;

struct ResponseCallbacks {
  std::function<void(const ResponseHead&)> on_head;
  // Body pieces (never empty; valid during the call only). Return Flow::kPause to stop reading
  // the response until Client::resume(id); the response timeout does not run meanwhile.
  std::function<Flow(std::string_view)> on_body;
  // Exactly once: OK after the whole response, or the error that ended the request.
  std::function<void(Status)> on_done;
};

struct Response {
  ResponseHead head;
  std::string body;
};

class ClientConnection;

class Client {
 public:
  explicit Client(io::Reactor& reactor, const ClientOptions& options = {});
  ~Client();  // requires closed() or a shut-down reactor
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends `request` to host:port on a pooled connection (or a new one).
  RequestId request(std::string_view host, std::uint16_t port, ClientRequest request,
                    ResponseCallbacks callbacks);
  // Continues a response body paused by on_body returning Flow::kPause. No-op for a request
  // that is not running.
  void resume(RequestId id);
  // The request's BodySource has data again after it returned nothing. No-op otherwise.
  void resume_source(RequestId id);
  // Abandons the request now: none of its callbacks runs again (not even on_done, also when
  // its failure was already due), a queued request leaves the queue, and a running one's
  // connection is closed, not pooled (the server sees the connection end). The callbacks and
  // the request (its BodySource) are destroyed later, never while one of them runs, so any of
  // them may call cancel on its own request. No-op for a request that has ended.
  void cancel(RequestId id);
  // The whole response buffered; a body over body_bytes_max fails with kTooLarge as soon as
  // it crosses it (request.response_body_bytes_max lowered to body_bytes_max).
  void fetch(std::string_view host, std::uint16_t port, ClientRequest request,
             std::function<void(Result<Response>)> done,
             std::uint64_t body_bytes_max = 64ull * 1024 * 1024);

  // Fails every queued and running request with kCancelled and closes all connections.
  void close();
  bool closed() const;

  std::size_t idle_connections(std::string_view host, std::uint16_t port) const;
  std::size_t open_connections() const { return connections_.size(); }
  const ClientStats& stats() const { return stats_; }

 private:
  friend class ClientConnection;
  struct Pending {
    ClientRequest request;
    ResponseCallbacks callbacks;
    RequestId id = 0;
    bool retried = false;
  };
  struct Pool {
    std::string key;
    sockaddr_in addr{};
    std::vector<ClientConnection*> idle;
    std::size_t open = 0;
    std::deque<Pending> queue;  // bounded by options_.queue_max
  };

  void dispatch(Pool& pool, Pending pending);
  void open_connection(Pool& pool, Pending pending);
  // A connection finished its exchange and may carry another request.
  void release(ClientConnection& conn);
  void retire(ClientConnection& conn);
  void fail_later(RequestId id, ResponseCallbacks callbacks, Status status);
  void mark_dirty(ClientConnection& conn);
  void on_turn_end();
  void sweep();

  io::Reactor& reactor_;
  ClientOptions options_;
  bool closing_ = false;
  RequestId next_id_ = 1;
  std::unordered_map<std::string, Pool> pools_;
  std::list<std::unique_ptr<ClientConnection>> connections_;
  std::vector<ClientConnection*> dirty_;
  std::vector<std::unique_ptr<ClientConnection>> retired_;
  struct Failed {
    RequestId id;
    ResponseCallbacks callbacks;
    Status status;
  };
  std::deque<Failed> failed_;  // reported at turn end, one at a time (a callback may cancel one)
  std::vector<Pending> cancelled_;  // destroyed at turn end, outside their own callbacks
  std::unique_ptr<io::RepeatingTimer> sweeper_;
  io::Reactor::HookId hook_ = 0;
  ClientStats stats_;
};

}  // namespace raftd::http
