// HTTP/1.1 server on the io_uring reactor: keep-alive, pipelining (one request handled at a
// time per connection, responses in order), request bodies streamed to the handler, responses
// with Content-Length or streamed chunked, Expect: 100-continue, limits and timeouts
// (doc/http.md lists the answers).
//
// Threading: a Server belongs to its reactor's thread; every call, and every Handler callback,
// happens on that thread.
//
// Lifetime: close() stops accepting and closes every connection (open exchanges get
// Handler::on_aborted); the Server may be destroyed once closed() is true (turn the reactor
// until then), or after Reactor::shutdown(). The Handler must outlive the Server.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "raftd/base/status.h"
#include "raftd/http/limits.h"
#include "raftd/http/message.h"
#include "raftd/http/peer_limit.h"
#include "raftd/http/serializer.h"
#include "raftd/io/reactor.h"

namespace raftd::http {

struct ServerOptions {
  std::string host = "127.0.0.1";  // IPv4 literal
  std::uint16_t port = 0;          // 0: any free port (see Server::port())
  std::size_t header_bytes_max = kHeaderBytesMax;
  std::size_t header_count_max = kHeaderCountMax;
  std::uint64_t body_bytes_max = kBodyBytesMaxDefault;
  std::uint32_t header_timeout_ms = kHeaderTimeoutMsDefault;
  std::uint32_t idle_timeout_ms = kIdleTimeoutMsDefault;
  std::uint32_t progress_timeout_ms = kProgressTimeoutMsDefault;
  std::uint32_t body_rate_window_ms = kBodyRateWindowMsDefault;  // 0: no minimum body rate
  std::size_t body_rate_min_bytes = kBodyRateMinBytesDefault;    // 0: no minimum body rate
  std::size_t connections_max = kConnectionsMaxDefault;
  // Per peer address as peer_limit.h counts them (all of loopback is one peer).
  std::size_t connections_per_peer_max = kConnectionsPerPeerMaxDefault;
  // Answers the server gives by itself (a malformed request, a body or header over its limit)
  // carry a JSON body {"error": "<code>", "message": "<reason>"} instead of plain text, for APIs
  // whose every error is JSON (API.md section 2). Codes: 400 bad_request, 413 too_large,
  // 431 headers_too_large, 501 not_implemented, 505 bad_request.
  bool json_errors = false;
  // What the peer's EOF means while the handler holds a whole request it has not answered yet.
  // false (default): the client is gone (it closed, or its process ended): the exchange is
  // aborted at once (Handler::on_aborted) and the connection closed, so a handler waiting for
  // something (a commit, another server) can let go of it. true: the EOF is a half-close and the
  // answer is still sent when the handler gives it; a client that vanished is then noticed only
  // when the answer is written. HTTP clients rarely half-close (curl, browsers and raftd's own
  // client never do), and the EOF alone cannot tell the two apart.
  bool serve_half_closed = false;
  // Optional: called once for every exchange the handler saw, when it ends: `status` is the
  // status the handler answered once its response is finished and the request read (0: aborted
  // before the handler finished, see Handler::on_aborted), `elapsed` the time since the request
  // head arrived. Read the request only; for metrics (node/metrics.h).
  std::function<void(const Request& request, int status, io::Duration elapsed)> on_exchange_end;
};

struct ServerStats {
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_rejected = 0;            // over connections_max: 503 and closed
  std::uint64_t connections_rejected_per_peer = 0;   // over connections_per_peer_max: 503, closed
  std::uint64_t connections_gone_before_accept = 0;  // reset by the peer while queued: closed
  std::uint64_t requests = 0;
  std::uint64_t bad_requests = 0;  // answered 400/413/431/505 and closed
  std::uint64_t timeouts = 0;      // header, idle, progress timeout or body below the minimum rate
  std::uint64_t exchanges_aborted = 0;  // Handler::on_aborted calls
};

class Exchange;

// Per-exchange state a handler attaches (Exchange::set_context); destroyed with the exchange.
class ExchangeContext {
 public:
  virtual ~ExchangeContext() = default;
};

// The application side of the server. One Handler serves all connections.
class Handler {
 public:
  virtual ~Handler() = default;
  // The request head arrived. Answer now (a remaining body is then read and dropped, or the
  // connection is closed if the client waits for 100 Continue), or wait for the body.
  virtual void on_headers(Exchange& ex) = 0;
  // A piece of the request body (never empty; valid during the call only). Return Flow::kPause
  // to stop reading from the socket until Exchange::resume_body().
  virtual Flow on_body(Exchange& ex, std::string_view chunk) {
    (void)ex;
    (void)chunk;
    return Flow::kContinue;
  }
  // The request body ended (also called when the response was already finished).
  virtual void on_end(Exchange& ex) = 0;
  // After write_body() returned false: the buffered output was handed to the socket, so
  // writing may go on (until write_body() returns false again).
  virtual void on_drained(Exchange& ex) { (void)ex; }
  // The exchange ended before the handler's finish(): the peer closed or reset the connection
  // (also while the handler held a whole request it had not answered, see
  // ServerOptions::serve_half_closed), a timeout, a bad request body, or Server::close(). Called
  // exactly once for such an exchange, as its last callback; never for an exchange the handler
  // finished. During the call request() and context() are still readable, but the response is
  // closed: set_status/add_header/write_body/finish/respond are ignored. The exchange (and its
  // context) is destroyed after the call, so the handler must drop every pointer it keeps to it
  // here (a waiter keyed by a request id, say) and never call it again: a later call is a use
  // after free, not a no-op.
  virtual void on_aborted(Exchange& ex) { (void)ex; }
};

class Connection;

// One request and its response. Owned by the server; valid from Handler::on_headers until the
// exchange is complete (request ended and finish() called) or aborted.
class Exchange {
 public:
  const Request& request() const { return request_; }

  // ---- response ----
  // Before the first write_body()/finish(): status (default 200) and headers. Framing headers
  // (Content-Length, Transfer-Encoding, Connection) are the server's: use set_content_length.
  void set_status(int status) { status_ = status; }
  void add_header(std::string name, std::string value);
  // Declares the body length: the response is sent with Content-Length instead of chunked.
  void set_content_length(std::uint64_t bytes);
  // Appends body bytes (copied). Sends the head first if it is not out yet. Returns false when
  // kSendBytesMax bytes wait in the send buffer: stop writing until Handler::on_drained. Data
  // written anyway is still buffered (the limit is the handler's duty). After abort: ignored.
  bool write_body(std::string_view chunk);
  // Ends the response. A declared Content-Length not reached closes the connection after it.
  void finish();
  // Whole response in one call: status, Content-Type, body, finish().
  void respond(int status, std::string_view body, std::string_view content_type = "text/plain");
  bool response_started() const { return head_sent_; }
  bool finished() const { return finished_; }

  // ---- request body flow control ----
  void resume_body();

  void set_context(std::unique_ptr<ExchangeContext> context) { context_ = std::move(context); }
  ExchangeContext* context() const { return context_.get(); }

 private:
  friend class Connection;
  explicit Exchange(Connection& conn) : conn_(conn) {}
  void reset();
  void send_head(bool chunked);

  Connection& conn_;
  Request request_;
  int status_ = 200;
  Headers headers_;
  bool length_set_ = false;
  std::uint64_t content_length_ = 0;
  bool head_sent_ = false;
  bool finished_ = false;
  bool request_ended_ = false;
  bool active_ = false;
  bool blocked_ = false;     // write_body returned false; on_drained is owed
  bool keep_alive_ = true;   // decided when the head is written
  io::TimePoint started_{};  // the request head arrived
  std::unique_ptr<ExchangeContext> context_;
  BodyEncoder encoder_;
};

class Server {
 public:
  // Binds, listens and starts accepting on `reactor`.
  static Result<std::unique_ptr<Server>> start(io::Reactor& reactor, Handler& handler,
                                               const ServerOptions& options = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  std::uint16_t port() const { return port_; }
  std::size_t connection_count() const { return connections_.size(); }
  const ServerStats& stats() const { return stats_; }
  const ServerOptions& options() const { return options_; }
  // Connections held per peer address (every open connection is counted once).
  const PeerTable& peers() const { return peers_; }
  // Memory the open connections hold in their buffers (input not parsed yet, output not sent
  // yet). Bounded per connection by about kPendingBytesMax + 2 * kSendBytesMax.
  std::size_t buffered_bytes() const;

  // Stops accepting and closes every connection. Idempotent.
  void close();
  // close() was called and every operation of the server has ended.
  bool closed() const;

 private:
  friend class Connection;
  Server(io::Reactor& reactor, Handler& handler, const ServerOptions& options);
  void on_accept(int32_t res);
  void reject(int fd, std::string_view response);
  void sweep();
  void on_turn_end();
  void mark_dirty(Connection& conn);
  void retire(Connection& conn);

  io::Reactor& reactor_;
  Handler& handler_;
  ServerOptions options_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  bool closing_ = false;
  io::AcceptOp accept_;
  std::unique_ptr<io::RepeatingTimer> sweeper_;
  io::Reactor::HookId hook_ = 0;
  std::list<std::unique_ptr<Connection>> connections_;
  PeerTable peers_;                                   // what connections_ holds, per peer address
  std::vector<Connection*> dirty_;                    // output or input to process at turn end
  std::vector<std::unique_ptr<Connection>> retired_;  // closed; freed at turn end
  ServerStats stats_;
};

}  // namespace raftd::http
