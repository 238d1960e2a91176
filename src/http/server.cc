#include "raftd/http/server.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include "raftd/base/log.h"
#include "raftd/http/parser.h"
#include "raftd/io/socket.h"

namespace raftd::http {

namespace {

using io::Clock;
using io::TimePoint;

// Answer to a connection beyond connections_max; sent without waiting, then the socket closes.
constexpr std::string_view kBusyResponse =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n"
    "Connection: close\r\n\r\ntoo many connections\n";
// Answer to a connection beyond connections_per_peer_max, sent the same way.
constexpr std::string_view kPeerBusyResponse =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 39\r\n"
    "Connection: close\r\n\r\ntoo many connections from this address\n";

std::chrono::milliseconds ms(std::uint32_t v) { return std::chrono::milliseconds(v); }

std::string_view error_code(int status) {
  switch (status) {
    case 413: return "too_large";
    case 431: return "headers_too_large";
    case 501: return "not_implemented";
    default: return "bad_request";
  }
}

// {"error": code, "message": reason} with the reason's quotes, backslashes and control bytes
// escaped (reasons are the parser's own ASCII sentences, but may quote request bytes).
std::string json_error_body(int status, std::string_view reason) {
  std::string out = "{\"error\":\"";
  out += error_code(status);
  out += "\",\"message\":\"";
  for (char c : reason) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u >= 0x7f) {
      out += fmt::format("\\u{:04x}", u);
    } else {
      out += c;
    }
  }
  out += "\"}\n";
  return out;
}

}  // namespace

// One accepted socket: reads requests, hands them to the handler one at a time, writes the
// responses in order. Memory per connection is bounded by kPendingBytesMax of input and about
// 2 * kSendBytesMax of output (the buffer being filled and the one being sent).
class Connection final : public RequestSink {
 public:
  Connection(Server& server, int fd, const PeerKey& peer)
      : peer_(peer),
        server_(server),
        fd_(fd),
        parser_(*this,
                ParserLimits{server.options_.header_bytes_max, server.options_.header_count_max,
                             server.options_.body_bytes_max}),
        ex_(*this) {
    recv_.set_callback([this](int32_t res, std::string_view data) { on_recv(res, data); });
    send_.set_callback([this](int32_t res) { on_sent(res); });
    accepted_at_ = last_progress_ = send_progress_ = idle_since_ = Clock::now();
  }
  ~Connection() override { io::close_fd(fd_); }

  void start() { server_.reactor_.recv(recv_, fd_); }
  void begin_close(bool graceful);
  // Server::close(): ends the connection now, lingering ones included.
  void force_close() {
    begin_close(false);
    if (lingering_ && recv_.active() && !recv_.cancel_requested()) server_.reactor_.cancel(recv_);
  }
  void sweep(TimePoint now);
  void on_turn_end();
  bool retired() const { return retired_; }
  std::size_t buffered_bytes() const {
    return pending_.capacity() + out_.capacity() + inflight_.capacity();
  }

  std::list<std::unique_ptr<Connection>>::iterator self_;
  const PeerKey peer_;  // counted in Server::peers_ until retired
  bool dirty_ = false;

 private:
  friend class Exchange;

  // RequestSink.
  void on_request_head(Request& request) override;
  Flow on_request_body(std::string_view chunk) override;
  void on_request_end() override;

  void on_recv(int32_t res, std::string_view data);
  void on_sent(int32_t res);
  void process(std::string_view fresh);
  // Parsing stops while the answers already queued reach kSendBytesMax: a client that
  // pipelines and never reads would otherwise make us hold every answer it does not read.
  bool can_parse() const {
    return !closing_ && !close_after_flush_ && !body_paused_ && !output_full() &&
           !(ex_.active_ && ex_.request_ended_);
  }
  bool output_full() const { return out_.size() + inflight_.size() >= kSendBytesMax; }
  void on_bad_request();
  void on_peer_eof();
  void check_eof();
  void flush();
  void mark_dirty() { server_.mark_dirty(*this); }
  void maybe_complete();
  void abort_exchange();
  void report_end(int status);
  void maybe_resume_reading();
  void maybe_finalize();
  void timeout_close(bool answer_408);
  bool rate_enforced() const {
    return server_.options_.body_rate_window_ms > 0 && server_.options_.body_rate_min_bytes > 0;
  }
  void credit_body(std::size_t bytes);
  void on_body_resumed();
  bool output_pending() const { return !out_.empty() || send_.active(); }
  bool reading_should_pause() const {
    return pending_.size() > kPendingBytesMax || (output_full() && !pending_.empty());
  }
  bool keep_alive_for_response() const;

  Server& server_;
  int fd_;
  io::RecvOp recv_;
  io::SendOp send_;
  RequestParser parser_;
  Exchange ex_;

  std::string pending_;   // received, not yet parsed (bounded by kPendingBytesMax + one recv)
  std::string out_;       // being filled
  std::string inflight_;  // being sent by send_
  TimePoint accepted_at_;
  TimePoint last_progress_;  // last byte received or sent
  TimePoint send_progress_;  // last send started or completed (a peer that stops reading)
  TimePoint idle_since_;     // last exchange completed (bytes between requests do not count)
  TimePoint request_start_;  // first byte of the request being parsed
  TimePoint linger_until_;
  // The minimum body rate: a body still being read after this is below it (see credit_body).
  TimePoint rate_deadline_;
  TimePoint paused_at_;     // the handler paused the body (kept paused, the time does not count)
  int callback_depth_ = 0;  // > 0 while a handler callback runs
  bool in_process_ = false;
  bool needs_process_ = false;
  bool body_paused_ = false;
  bool reading_paused_ = false;  // recv cancelled for backpressure
  bool peer_eof_ = false;
  bool served_any_ = false;
  bool continue_sent_ = false;
  bool close_after_flush_ = false;
  bool closing_ = false;
  bool lingering_ = false;
  bool retired_ = false;
};

// ---- Exchange ----

void Exchange::reset() {
  request_ = Request();
  status_ = 200;
  headers_.clear();
  length_set_ = false;
  content_length_ = 0;
  head_sent_ = false;
  finished_ = false;
  request_ended_ = false;
  active_ = false;
  blocked_ = false;
  keep_alive_ = true;
  context_.reset();
  encoder_ = BodyEncoder();
}

void Exchange::add_header(std::string name, std::string value) {
  if (!active_) return;  // aborted (or not begun): nothing more is sent
  RAFTD_ASSERT(!head_sent_, "headers added after the response head was sent");
  RAFTD_ASSERT(!is_framing_header(name), "framing headers are the server's");
  // Checked here too (the serializer asserts it later) so the failure points at the handler.
  RAFTD_ASSERT(is_token(name) && is_field_value(value),
               "response header name is not a token, or its value holds CR, LF or another CTL");
  headers_.push_back(Header{std::move(name), std::move(value)});
}

void Exchange::set_content_length(std::uint64_t bytes) {
  if (!active_) return;
  RAFTD_ASSERT(!head_sent_, "content length set after the response head was sent");
  length_set_ = true;
  content_length_ = bytes;
}

void Exchange::send_head(bool chunked) {
  const Framing framing = chunked               ? Framing::kChunked
                          : content_length_ > 0 ? Framing::kContentLength
                                                : Framing::kNone;
  keep_alive_ = conn_.keep_alive_for_response();
  append_response_head(conn_.out_, status_, headers_, framing, content_length_, keep_alive_,
                       request_.version_minor);
  // A response to HEAD carries the head only (RFC 9110 9.3.2); 204/304 never have a body.
  const bool bodiless = request_.method == "HEAD" || status_ == 204 || status_ == 304;
  encoder_ = bodiless ? BodyEncoder() : BodyEncoder(framing, content_length_);
  head_sent_ = true;
  conn_.mark_dirty();
}

bool Exchange::write_body(std::string_view chunk) {
  if (!active_ || finished_ || conn_.closing_) return true;  // aborted: dropped silently
  if (!head_sent_) send_head(!length_set_);
  if (encoder_.framing() != Framing::kNone) encoder_.write(conn_.out_, chunk);
  conn_.mark_dirty();
  if (conn_.out_.size() >= kSendBytesMax) {
    blocked_ = true;
    return false;
  }
  return true;
}

void Exchange::finish() {
  if (!active_ || finished_) return;
  if (!head_sent_) send_head(false);
  const bool complete = encoder_.finish(conn_.out_);
  finished_ = true;
  if (!complete || !keep_alive_) conn_.close_after_flush_ = true;
  conn_.mark_dirty();
  conn_.maybe_complete();
}

void Exchange::respond(int status, std::string_view body, std::string_view content_type) {
  set_status(status);
  add_header("Content-Type", std::string(content_type));
  set_content_length(body.size());
  write_body(body);
  finish();
}

void Exchange::resume_body() {
  if (!active_ || !conn_.body_paused_) return;
  conn_.on_body_resumed();
  conn_.needs_process_ = true;
  conn_.mark_dirty();
}

// ---- Connection ----

bool Connection::keep_alive_for_response() const {
  if (!ex_.request_.keep_alive || server_.closing_ || peer_eof_ || close_after_flush_) {
    return false;
  }
  // A client waiting for 100 Continue that gets a final answer instead may never send the body
  // it announced; the connection cannot be reused reliably.
  return ex_.request_ended_ || !ex_.request_.expect_continue || continue_sent_;
}

void Connection::on_request_head(Request& request) {
  ex_.reset();
  ex_.active_ = true;
  ex_.started_ = Clock::now();
  ex_.request_ = std::move(request);
  continue_sent_ = false;
  // A body gets one window from its head before it must keep up with the rate. Taken now, not
  // from the last receive: a pipelined request may have waited behind the previous answer.
  if (ex_.request_.framing != Framing::kNone && rate_enforced()) {
    rate_deadline_ = Clock::now() + ms(server_.options_.body_rate_window_ms);
  }
  served_any_ = true;
  ++server_.stats_.requests;
  ++callback_depth_;
  server_.handler_.on_headers(ex_);
  --callback_depth_;
  if (!closing_ && ex_.active_ && !ex_.head_sent_ && ex_.request_.expect_continue) {
    out_.append(kContinue100);
    continue_sent_ = true;
    mark_dirty();
  }
}

Flow Connection::on_request_body(std::string_view chunk) {
  credit_body(chunk.size());
  if (closing_ || !ex_.active_ || ex_.finished_) return Flow::kContinue;  // answered: dropped
  ++callback_depth_;
  const Flow flow = server_.handler_.on_body(ex_, chunk);
  --callback_depth_;
  return flow;
}

void Connection::on_request_end() {
  if (!ex_.active_) return;
  ex_.request_ended_ = true;
  ++callback_depth_;
  server_.handler_.on_end(ex_);
  --callback_depth_;
  maybe_complete();
}

// The exchange is over once the request has ended and the response is finished; the next
// pipelined request may then be parsed.
void Connection::maybe_complete() {
  if (callback_depth_ > 0 || !ex_.active_ || !ex_.finished_ || !ex_.request_ended_) return;
  report_end(ex_.status_);
  ex_.reset();
  idle_since_ = Clock::now();
  if (!pending_.empty() || peer_eof_) {
    needs_process_ = true;
    mark_dirty();
  }
}

// on_aborted runs once per exchange the handler has not finished, as its last callback. The
// exchange is inactive during the call, so anything the handler writes then is dropped instead
// of landing before (or in place of) the server's own answer (400, 408).
void Connection::report_end(int status) {
  if (server_.options_.on_exchange_end) {
    server_.options_.on_exchange_end(ex_.request_, status, Clock::now() - ex_.started_);
  }
}

void Connection::abort_exchange() {
  if (!ex_.active_) return;
  const bool owed = !ex_.finished_;
  ex_.active_ = false;
  if (owed) {
    ++server_.stats_.exchanges_aborted;
    ++callback_depth_;
    server_.handler_.on_aborted(ex_);
    --callback_depth_;
  }
  // An exchange answered before its request body ended (then cut) counts as answered.
  report_end(owed ? 0 : ex_.status_);
  ex_.reset();
}

void Connection::on_recv(int32_t res, std::string_view data) {
  if (res > 0) {
    last_progress_ = Clock::now();
    if (!closing_) process(data);  // while closing (lingering) input is dropped
  }
  if (recv_.active()) return;
  // Final callback of the multishot recv.
  if (closing_) {
    maybe_finalize();
  } else if (res == 0) {
    on_peer_eof();
  } else if (res == -ECANCELED && reading_paused_) {
    maybe_resume_reading();
  } else if (res < 0) {
    begin_close(false);
  }
}

void Connection::process(std::string_view fresh) {
  if (in_process_) {
    pending_.append(fresh);
    return;
  }
  in_process_ = true;
  const bool from_pending = !pending_.empty();
  if (from_pending) pending_.append(fresh);
  std::string_view input = from_pending ? std::string_view(pending_) : fresh;
  const std::size_t before = input.size();
  // A body paused on its last byte ends with an empty feed: no input needs to wait for it.
  while ((!input.empty() || parser_.body_paused()) && can_parse()) {
    if (!ex_.active_ && !parser_.mid_message()) request_start_ = Clock::now();
    const FeedResult r = parser_.feed(input);
    input.remove_prefix(r.consumed);
    if (r.event == ParseEvent::kError) {
      on_bad_request();
      break;
    }
    if (r.event == ParseEvent::kBodyPaused) {
      body_paused_ = true;
      paused_at_ = Clock::now();
    }
  }
  if (from_pending) {
    pending_.erase(0, before - input.size());
  } else if (!input.empty() && !closing_) {
    pending_.assign(input);
  }
  in_process_ = false;
  if (closing_) return;
  // A fast sender, or a peer that does not read its answers: stop receiving until the backlog
  // is parsed and the answers are sent, so the kernel's socket buffers push back on the peer.
  if (reading_should_pause() && recv_.active() && !recv_.cancel_requested()) {
    reading_paused_ = true;
    server_.reactor_.cancel(recv_);
  }
  maybe_resume_reading();
  check_eof();
}

void Connection::maybe_resume_reading() {
  if (!reading_paused_ || recv_.active() || closing_ || pending_.size() > kPendingBytesMax / 2 ||
      output_full()) {
    return;
  }
  reading_paused_ = false;
  server_.reactor_.recv(recv_, fd_);
}

void Connection::on_bad_request() {
  ++server_.stats_.bad_requests;
  const bool can_answer = !ex_.active_ || !ex_.head_sent_;
  abort_exchange();
  close_after_flush_ = true;
  if (can_answer) {
    const bool json = server_.options_.json_errors;
    const std::string body = json ? json_error_body(parser_.error_status(), parser_.error_reason())
                                  : std::string(parser_.error_reason()) + "\n";
    append_response_head(out_, parser_.error_status(),
                         {{"Content-Type", json ? "application/json" : "text/plain"}},
                         Framing::kContentLength, body.size(), false);
    out_.append(body);
  }
  pending_.clear();
  mark_dirty();
}

void Connection::on_peer_eof() {
  peer_eof_ = true;
  check_eof();
}

// After the peer's EOF: a request cut short by it is dropped. A response still owed means the
// client is gone (it closed while the handler held its request): the exchange is aborted so the
// handler can let go of what it holds for it, unless serve_half_closed says that an EOF after a
// whole request is only a half-close; the exchange in progress is then answered first. A
// response already finished is still sent, then the connection closes.
void Connection::check_eof() {
  if (!peer_eof_ || closing_ || recv_.active()) return;
  if (ex_.active_ && ex_.request_ended_ && !ex_.finished_) {
    if (server_.options_.serve_half_closed) return;
    begin_close(false);
    return;
  }
  if (ex_.active_ && ex_.request_ended_) return;  // finished, completes at the end of the callback
  // A pipelined request is still to be served (once the answers before it are sent).
  if (!pending_.empty() && (can_parse() || output_full())) return;
  if (parser_.mid_message() || (ex_.active_ && !ex_.request_ended_)) {
    begin_close(false);
    return;
  }
  close_after_flush_ = true;
  mark_dirty();
}

void Connection::flush() {
  if (closing_) return;
  if (!send_.active() && !out_.empty()) {
    inflight_.swap(out_);
    out_.clear();
    send_progress_ = Clock::now();
    server_.reactor_.send(send_, fd_, inflight_.data(), inflight_.size());
    if (ex_.blocked_ && ex_.active_) {
      ex_.blocked_ = false;
      ++callback_depth_;
      server_.handler_.on_drained(ex_);
      --callback_depth_;
      maybe_complete();
    }
  }
  if (close_after_flush_ && !output_pending() && !closing_) begin_close(true);
}

void Connection::on_sent(int32_t res) {
  inflight_.clear();
  if (res < 0) {
    if (!closing_) begin_close(false);
    maybe_finalize();
    return;
  }
  last_progress_ = send_progress_ = Clock::now();
  if (closing_) {
    maybe_finalize();
    return;
  }
  // Room in the output again: parse what waits (parsing stopped at kSendBytesMax) and resume
  // receiving.
  if (!pending_.empty() || reading_paused_) {
    needs_process_ = true;
    mark_dirty();
  }
  flush();
}

void Connection::on_turn_end() {
  dirty_ = false;
  if (closing_) return;
  if (needs_process_) {
    needs_process_ = false;
    process({});
  }
  flush();
}

// graceful: the answer is out; half-close and drain the peer's input for up to kLingerMs so the
// kernel does not turn our close into a reset that destroys the answer in flight.
void Connection::begin_close(bool graceful) {
  if (closing_) return;
  abort_exchange();
  closing_ = true;
  pending_.clear();
  if (graceful && !peer_eof_) {
    lingering_ = true;
    linger_until_ = Clock::now() + ms(kLingerMs);
    ::shutdown(fd_, SHUT_WR);
    if (!recv_.active()) server_.reactor_.recv(recv_, fd_);
  } else if (recv_.active() && !recv_.cancel_requested()) {
    server_.reactor_.cancel(recv_);
  }
  if (send_.active()) server_.reactor_.cancel(send_);
  maybe_finalize();
}

void Connection::maybe_finalize() {
  if (!closing_ || retired_ || recv_.active() || send_.active()) return;
  retired_ = true;
  server_.retire(*this);
}

void Connection::timeout_close(bool answer_408) {
  ++server_.stats_.timeouts;
  if (answer_408 && !output_pending()) {
    abort_exchange();
    close_after_flush_ = true;
    append_response_head(out_, 408, {}, Framing::kNone, 0, false);
    mark_dirty();
    return;
  }
  begin_close(false);
}

void Connection::sweep(TimePoint now) {
  const ServerOptions& o = server_.options_;
  if (closing_) {
    if (lingering_ && now > linger_until_ && recv_.active() && !recv_.cancel_requested()) {
      server_.reactor_.cancel(recv_);
    }
    return;
  }
  // Output that does not drain: a client that stopped reading (also after the exchange). Timed
  // from the last send, not the last byte received: a peer that keeps sending but never reads
  // must not keep the connection.
  if (output_pending() && now - send_progress_ > ms(o.progress_timeout_ms)) {
    // Reset, not FIN: the kernel would otherwise keep the unread answer (up to the socket's
    // send buffer) of a closed connection, retrying for minutes, for a peer that never reads.
    const ::linger reset{1, 0};
    (void)::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    timeout_close(false);
    return;
  }
  if (close_after_flush_) return;
  if (!ex_.active_) {
    if (parser_.mid_message()) {
      if (now - request_start_ > ms(o.header_timeout_ms)) timeout_close(true);
    } else if (!output_pending()) {
      // A connection that never sent a request gets the header timeout (slowloris).
      const auto limit = served_any_ ? ms(o.idle_timeout_ms) : ms(o.header_timeout_ms);
      // Timed from the last exchange: empty lines between requests do not reset it.
      if (now - (served_any_ ? idle_since_ : accepted_at_) > limit) timeout_close(false);
    }
    return;
  }
  const bool reading_body = !ex_.request_ended_ && !body_paused_;
  if (reading_body && now - last_progress_ > ms(o.progress_timeout_ms)) {
    timeout_close(false);
    return;
  }
  if (reading_body && rate_enforced() && now > rate_deadline_) timeout_close(true);
}

// The minimum body rate as a deadline that the body pushes back: every body_rate_min_bytes
// received buy one more body_rate_window_ms, and the deadline never runs more than
// kBodyRateCreditWindowsMax windows ahead of now. So what is measured is the average rate since
// the head, not the bytes of each fixed window: an upload arriving in bursts with pauses
// between them passes as long as it keeps above the rate on average (a fixed window that
// happens to hold one burst too few would otherwise kill it), while a trickle falls behind
// whatever its pattern, and a burst cannot buy more than a bounded silence.
void Connection::credit_body(std::size_t bytes) {
  if (!rate_enforced()) return;
  const ServerOptions& o = server_.options_;
  const TimePoint now = Clock::now();
  const auto window = ms(o.body_rate_window_ms);
  const TimePoint cap = now + window * kBodyRateCreditWindowsMax;
  // In windows, bounded before converting so the duration cannot overflow.
  const double windows =
      std::min(static_cast<double>(bytes) / static_cast<double>(o.body_rate_min_bytes),
               2.0 * kBodyRateCreditWindowsMax);
  const auto credit =
      std::chrono::duration_cast<io::Duration>(std::chrono::duration<double, std::milli>(
          windows * static_cast<double>(o.body_rate_window_ms)));
  rate_deadline_ = std::min(cap, rate_deadline_ + credit);
}

// The time the handler kept the body paused is not the client's: the deadline moves by it.
void Connection::on_body_resumed() {
  body_paused_ = false;
  rate_deadline_ += Clock::now() - paused_at_;
}

// ---- Server ----

Server::Server(io::Reactor& reactor, Handler& handler, const ServerOptions& options)
    : reactor_(reactor), handler_(handler), options_(options) {}

Result<std::unique_ptr<Server>> Server::start(io::Reactor& reactor, Handler& handler,
                                              const ServerOptions& options) {
  if (options.connections_max == 0 || options.connections_per_peer_max == 0 ||
      options.header_bytes_max == 0) {
    return Status(Code::kInvalidArgument,
                  "http server: connections_max, connections_per_peer_max and header_bytes_max "
                  "must be positive");
  }
  auto listener = io::listen_tcp(options.host, options.port);
  if (!listener) return listener.status();
  std::unique_ptr<Server> s(new Server(reactor, handler, options));
  s->listen_fd_ = listener->fd;
  s->port_ = listener->port;
  s->accept_.set_callback([raw = s.get()](int32_t res) { raw->on_accept(res); });
  reactor.accept(s->accept_, s->listen_fd_);
  std::uint32_t shortest =
      std::min({options.header_timeout_ms, options.idle_timeout_ms, options.progress_timeout_ms});
  if (options.body_rate_window_ms > 0) shortest = std::min(shortest, options.body_rate_window_ms);
  const auto period = std::chrono::milliseconds(std::clamp<std::uint32_t>(shortest / 4, 5, 1000));
  s->sweeper_ =
      std::make_unique<io::RepeatingTimer>(reactor, period, [raw = s.get()] { raw->sweep(); });
  s->sweeper_->start();
  s->hook_ = reactor.add_turn_end_hook([raw = s.get()] { raw->on_turn_end(); });
  return s;
}

Server::~Server() {
  RAFTD_ASSERT(!accept_.active(), "Server destroyed while accepting: close() it first");
  reactor_.remove_turn_end_hook(hook_);
  retired_.clear();
  connections_.clear();
  io::close_fd(listen_fd_);
}

void Server::on_accept(int32_t res) {
  if (res < 0) {
    // Final: fd exhaustion or a listener error. The sweeper re-arms accept later.
    if (res != -ECANCELED) log::warn("http server: accept failed: {}", res);
    return;
  }
  if (closing_) {
    io::close_fd(res);
    return;
  }
  // A client that reset the connection while it waited in the listen queue: the socket has no
  // peer left to serve or to count (getpeername gives ENOTCONN). Nothing was counted for it yet,
  // so closing it is all there is to do.
  const std::optional<PeerKey> peer = peer_key_of_socket(res);
  if (!peer) {
    ++stats_.connections_gone_before_accept;
    io::close_fd(res);
    return;
  }
  if (connections_.size() >= options_.connections_max) {
    ++stats_.connections_rejected;
    reject(res, kBusyResponse);
    return;
  }
  // Counted from here until retire(): the only place a connection leaves connections_.
  if (!peers_.add(*peer, options_.connections_per_peer_max)) {
    ++stats_.connections_rejected_per_peer;
    reject(res, kPeerBusyResponse);
    return;
  }
  ++stats_.connections_accepted;
  auto conn = std::make_unique<Connection>(*this, res, *peer);
  Connection* raw = conn.get();
  connections_.push_front(std::move(conn));
  raw->self_ = connections_.begin();
  raw->start();
}

// Over connections_max or connections_per_peer_max: a best-effort 503 without waiting (the
// socket buffer of a fresh connection has room), then close. A client that already sent a
// request may see a reset.
void Server::reject(int fd, std::string_view response) {
  (void)::send(fd, response.data(), response.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  ::shutdown(fd, SHUT_WR);
  io::close_fd(fd);
}

void Server::sweep() {
  if (!closing_ && !accept_.active()) reactor_.accept(accept_, listen_fd_);
  const TimePoint now = Clock::now();
  for (auto& conn : connections_) {
    if (!conn->retired()) conn->sweep(now);
  }
}

void Server::mark_dirty(Connection& conn) {
  if (conn.dirty_) return;
  conn.dirty_ = true;
  dirty_.push_back(&conn);
}

// Everything written during the turn goes out as one send per connection.
void Server::on_turn_end() {
  while (!dirty_.empty()) {
    std::vector<Connection*> batch;
    batch.swap(dirty_);
    for (Connection* conn : batch) {
      if (!conn->retired()) conn->on_turn_end();
    }
  }
  retired_.clear();
}

void Server::retire(Connection& conn) {
  peers_.remove(conn.peer_);
  retired_.push_back(std::move(*conn.self_));
  connections_.erase(conn.self_);
}

void Server::close() {
  if (closing_) return;
  closing_ = true;
  if (accept_.active()) reactor_.cancel(accept_);
  sweeper_->stop();
  std::vector<Connection*> all;
  for (auto& conn : connections_) all.push_back(conn.get());
  for (Connection* conn : all) conn->force_close();
}

std::size_t Server::buffered_bytes() const {
  std::size_t total = 0;
  for (const auto& conn : connections_) total += conn->buffered_bytes();
  return total;
}

bool Server::closed() const {
  return closing_ && !accept_.active() && connections_.empty() && !sweeper_->active();
}

}  // namespace raftd::http
