#include "raftd/http/client.h"

#include <algorithm>
#include <cerrno>

#include "raftd/http/parser.h"
#include "raftd/http/serializer.h"
#include "raftd/io/socket.h"

namespace raftd::http {

namespace {

using io::Clock;
using io::TimePoint;

// Largest piece asked from a BodySource at once: big enough that framing and per-call costs
// vanish, small enough to keep the send buffer near kSendBytesMax.
constexpr std::size_t kSourcePieceBytes = 64 * 1024;
static_assert(kSourcePieceBytes <= kSendBytesMax);

std::string target_key(std::string_view host, std::uint16_t port) {
  return std::string(host) + ":" + std::to_string(port);
}

}  // namespace

// One TCP connection of the pool: carries one request at a time.
class ClientConnection final : public ResponseSink {
 public:
  ClientConnection(Client& client, Client::Pool& pool, int fd)
      : client_(client),
        pool_(pool),
        fd_(fd),
        parser_(*this, ParserLimits{client.options_.response_header_bytes_max, kHeaderCountMax,
                                    client.options_.response_body_bytes_max}) {
    connect_.set_callback([this](int32_t res) { on_connected(res); });
    recv_.set_callback([this](int32_t res, std::string_view data) { on_recv(res, data); });
    send_.set_callback([this](int32_t res) { on_sent(res); });
  }
  ~ClientConnection() override { io::close_fd(fd_); }

  void connect(Client::Pending pending) {
    current_ = std::move(pending);
    busy_ = true;
    started_ = Clock::now();
    client_.reactor_.connect(connect_, fd_, reinterpret_cast<const sockaddr*>(&pool_.addr),
                             sizeof pool_.addr);
  }
  // A request on an idle, connected connection.
  void start(Client::Pending pending) {
    current_ = std::move(pending);
    busy_ = true;
    reused_ = true;
    write_request();
  }
  void fail(Status status);
  void begin_close();
  void sweep(TimePoint now);
  void on_turn_end();
  bool usable() const { return !closing_ && connected_ && !busy_; }
  bool carries(RequestId id) const { return busy_ && current_.id == id; }
  // The body source has data again (it returned nothing earlier).
  void resume_source() {
    if (!source_waiting_) return;
    source_waiting_ = false;
    last_progress_ = Clock::now();
    client_.mark_dirty(*this);
  }
  // The response body consumer asked for more (after returning Flow::kPause).
  void resume() {
    if (!body_paused_) return;
    body_paused_ = false;
    // The pause was the consumer's wait, not the peer's: the no-progress clock restarts here,
    // or a pause longer than the timeout would end the request before the next read.
    last_progress_ = Clock::now();
    needs_process_ = true;
    client_.mark_dirty(*this);
  }
  // Client::cancel: the exchange ends here without a callback; the connection closes. The
  // request and its callbacks stay in current_ (one of them may be running) until the
  // connection is destroyed, at a turn end; busy_ false keeps every path from using them.
  void abandon() {
    busy_ = false;
    begin_close();
  }
  bool retired() const { return retired_; }
  Client::Pool& pool() { return pool_; }

  std::list<std::unique_ptr<ClientConnection>>::iterator self_;
  bool dirty_ = false;

 private:
  // busy_ is false here only for an exchange abandoned (Client::cancel) in the middle of a feed.
  void on_response_head(ResponseHead& head) override {
    keep_alive_ = head.keep_alive;
    if (busy_ && current_.callbacks.on_head) current_.callbacks.on_head(head);
  }
  Flow on_response_body(std::string_view chunk) override {
    return busy_ && current_.callbacks.on_body ? current_.callbacks.on_body(chunk)
                                               : Flow::kContinue;
  }
  void on_response_end() override { response_done_ = true; }

  void on_connected(int32_t res);
  void on_recv(int32_t res, std::string_view data);
  void on_sent(int32_t res);
  void on_eof();
  void consume(std::string_view data);
  void process_backlog();
  void maybe_resume_reading();
  void write_request();
  void pull_body();
  void flush();
  void maybe_complete();
  void maybe_finalize();
  void reset_exchange();

  Client& client_;
  Client::Pool& pool_;
  int fd_;
  io::ConnectOp connect_;
  io::RecvOp recv_;
  io::SendOp send_;
  ResponseParser parser_;
  Client::Pending current_;
  BodyEncoder encoder_;
  std::string out_;
  std::string inflight_;
  std::string piece_;
  // Response bytes received while the consumer paused the body; past kPendingBytesMax the recv
  // is cancelled, so a paused consumer stops the socket instead of growing this.
  std::string backlog_;
  TimePoint started_;
  TimePoint last_progress_;
  bool busy_ = false;
  bool reused_ = false;
  bool connected_ = false;
  bool timed_out_ = false;
  bool body_done_ = false;  // the whole body is in out_/inflight_
  bool response_done_ = false;
  bool got_response_bytes_ = false;
  bool keep_alive_ = false;
  bool closing_ = false;
  bool retired_ = false;
  bool body_paused_ = false;
  bool reading_paused_ = false;
  bool needs_process_ = false;
  bool eof_seen_ = false;        // EOF arrived while a paused body still had backlog
  bool source_waiting_ = false;  // the body source had nothing; waiting for resume_source()
};

void ClientConnection::on_connected(int32_t res) {
  if (closing_) {
    maybe_finalize();
    return;
  }
  if (res < 0) {
    Status st = timed_out_ ? Status(Code::kTimeout, "connect to " + pool_.key + " timed out")
                           : Status::from_errno(-res, "connect to " + pool_.key);
    fail(std::move(st));
    return;
  }
  connected_ = true;
  client_.reactor_.recv(recv_, fd_);
  write_request();
}

void ClientConnection::write_request() {
  const ClientRequest& req = current_.request;
  ++client_.stats_.requests;
  last_progress_ = Clock::now();
  Framing framing = Framing::kNone;
  std::uint64_t length = 0;
  if (req.source) {
    framing = req.source_bytes ? Framing::kContentLength : Framing::kChunked;
    length = req.source_bytes.value_or(0);
    if (framing == Framing::kContentLength && length == 0) framing = Framing::kNone;
  } else if (!req.body.empty()) {
    framing = Framing::kContentLength;
    length = req.body.size();
  } else if (req.method != "GET" && req.method != "HEAD") {
    framing = Framing::kNone;  // an explicit "Content-Length: 0"
  }
  append_request_head(out_, req.method, req.target, pool_.key, req.headers, framing, length);
  parser_.expect_no_body(req.method == "HEAD");
  parser_.set_body_bytes_max(
      std::min(client_.options_.response_body_bytes_max, req.response_body_bytes_max));
  encoder_ = BodyEncoder(framing, length);
  if (!req.source) {
    if (framing != Framing::kNone) encoder_.write(out_, req.body);
    body_done_ = true;
  } else if (framing == Framing::kNone) {
    body_done_ = true;
  }
  pull_body();
  client_.mark_dirty(*this);
}

// Pulls from the source until kSendBytesMax bytes wait: the send completion pulls again, so a
// slow network slows the source down instead of growing the buffer.
void ClientConnection::pull_body() {
  const BodySource& source = current_.request.source;
  while (!body_done_ && !closing_ && !source_waiting_ && out_.size() < kSendBytesMax) {
    piece_.clear();
    bool done = false;
    Status st = source(piece_, kSourcePieceBytes, done);
    if (!st) {
      fail(std::move(st));
      return;
    }
    if (encoder_.framing() == Framing::kContentLength &&
        piece_.size() > encoder_.remaining_bytes()) {
      fail(Status(Code::kInvalidArgument, "request body source produced more than source_bytes"));
      return;
    }
    encoder_.write(out_, piece_);
    if (done) {
      if (!encoder_.finish(out_)) {
        fail(Status(Code::kInvalidArgument,
                    "request body source ended before source_bytes were produced"));
        return;
      }
      body_done_ = true;
    } else if (piece_.empty()) {
      source_waiting_ = true;  // nothing available now; Client::resume_source() pulls again
      break;
    }
  }
}

void ClientConnection::flush() {
  if (closing_ || !connected_ || send_.active() || out_.empty()) return;
  inflight_.swap(out_);
  out_.clear();
  client_.reactor_.send(send_, fd_, inflight_.data(), inflight_.size());
}

void ClientConnection::on_sent(int32_t res) {
  inflight_.clear();
  if (closing_) {
    maybe_finalize();
    return;
  }
  if (res < 0) {
    fail(Status::from_errno(-res, "send to " + pool_.key));
    return;
  }
  last_progress_ = Clock::now();
  if (!busy_) return;
  pull_body();
  flush();
  maybe_complete();
}

void ClientConnection::on_recv(int32_t res, std::string_view data) {
  if (res > 0 && !closing_) {
    last_progress_ = Clock::now();
    if (!busy_) {  // bytes nobody asked for: the connection is out of sync
      begin_close();
      return;
    }
    got_response_bytes_ = true;
    if (body_paused_ || !backlog_.empty()) {
      backlog_.append(data);
      if (backlog_.size() > kPendingBytesMax && recv_.active() && !recv_.cancel_requested()) {
        reading_paused_ = true;
        client_.reactor_.cancel(recv_);
      }
    } else {
      consume(data);
    }
  }
  if (recv_.active()) return;
  if (closing_) {
    maybe_finalize();
  } else if (res == 0) {
    if (body_paused_ || !backlog_.empty()) {
      eof_seen_ = true;  // handled once the backlog is consumed
    } else {
      on_eof();
    }
  } else if (res == -ECANCELED && reading_paused_) {
    maybe_resume_reading();  // stopped for backpressure; the backlog may be gone already
  } else if (res < 0) {
    fail(Status::from_errno(-res, "recv from " + pool_.key));
    begin_close();
  }
}

// Feeds response bytes to the parser; what a paused body leaves goes to the backlog.
void ClientConnection::consume(std::string_view data) {
  const FeedResult r = parser_.feed(data);
  if (r.event == ParseEvent::kError) {
    // 413: the body is over the caller's cap; anything else is a malformed response.
    const Code code = parser_.error_status() == 413 ? Code::kTooLarge : Code::kCorruption;
    fail(Status(code,
                "bad response from " + pool_.key + ": " + std::string(parser_.error_reason())));
    return;
  }
  if (r.event == ParseEvent::kBodyPaused) {
    body_paused_ = true;
    backlog_.append(data.substr(r.consumed));
    return;
  }
  if (r.event == ParseEvent::kMessageEnd && r.consumed < data.size()) keep_alive_ = false;
  maybe_complete();
}

void ClientConnection::process_backlog() {
  // A body paused on its last byte ends with an empty feed, with nothing in the backlog.
  while ((!backlog_.empty() || parser_.body_paused()) && !body_paused_ && busy_ && !closing_) {
    std::string input;
    input.swap(backlog_);
    consume(input);
    if (!busy_) {
      // The response ended inside the backlog; bytes after it cannot be a response.
      backlog_.clear();
    }
  }
  if (closing_ || body_paused_) return;
  if (eof_seen_ && backlog_.empty()) {
    eof_seen_ = false;
    on_eof();
    return;
  }
  maybe_resume_reading();
}

void ClientConnection::maybe_resume_reading() {
  if (!reading_paused_ || recv_.active() || closing_ || body_paused_ ||
      backlog_.size() > kPendingBytesMax / 2) {
    return;
  }
  reading_paused_ = false;
  client_.reactor_.recv(recv_, fd_);
}

void ClientConnection::on_eof() {
  keep_alive_ = false;
  if (busy_ && !response_done_) {
    const FeedResult r = parser_.finish();  // an EOF-delimited body ends here
    if (r.event != ParseEvent::kMessageEnd) {
      fail(Status(Code::kIoError, "connection to " + pool_.key +
                                      " closed before the response "
                                      "ended"));
      return;
    }
  }
  maybe_complete();
  begin_close();
}

// The response is complete: report it, and pool the connection if it can carry another
// request. A response that arrived before our body was fully sent (an early error answer)
// ends the exchange too; the connection is then closed.
void ClientConnection::maybe_complete() {
  if (!busy_ || !response_done_) return;
  const bool request_sent = body_done_ && out_.empty() && !send_.active();
  const bool reusable = keep_alive_ && request_sent && !closing_;
  ResponseCallbacks callbacks = std::move(current_.callbacks);
  reset_exchange();
  if (reusable) {
    client_.release(*this);
  } else {
    begin_close();
  }
  if (callbacks.on_done) callbacks.on_done(Status::ok());
}

void ClientConnection::reset_exchange() {
  current_ = Client::Pending();
  body_paused_ = false;
  source_waiting_ = false;
  busy_ = false;
  body_done_ = false;
  response_done_ = false;
  got_response_bytes_ = false;
  keep_alive_ = false;
}

void ClientConnection::fail(Status status) {
  if (!busy_) {
    begin_close();
    return;
  }
  const bool retry = reused_ && !got_response_bytes_ && !current_.retried &&
                     !current_.request.source && status.code() != Code::kTimeout &&
                     !client_.closing_;
  Client::Pending pending = std::move(current_);
  reset_exchange();
  begin_close();
  if (retry) {
    // The server closed a pooled connection as we reused it: the request never reached it.
    ++client_.stats_.retries;
    pending.retried = true;
    client_.dispatch(pool_, std::move(pending));
    return;
  }
  // Reported at the end of the turn: fail() can run inside request() (a source that fails at
  // once), and callbacks never run inside request().
  client_.fail_later(pending.id, std::move(pending.callbacks), std::move(status));
}

void ClientConnection::begin_close() {
  if (closing_) return;
  closing_ = true;
  for (io::Op* op : {static_cast<io::Op*>(&connect_), static_cast<io::Op*>(&recv_),
                     static_cast<io::Op*>(&send_)}) {
    if (op->active() && !op->cancel_requested()) client_.reactor_.cancel(*op);
  }
  maybe_finalize();
}

void ClientConnection::maybe_finalize() {
  if (!closing_ || retired_ || connect_.active() || recv_.active() || send_.active()) return;
  retired_ = true;
  client_.retire(*this);
}

void ClientConnection::sweep(TimePoint now) {
  if (closing_ || !busy_) return;
  const ClientOptions& o = client_.options_;
  if (!connected_) {
    if (now - started_ > std::chrono::milliseconds(o.connect_timeout_ms) && connect_.active() &&
        !connect_.cancel_requested()) {
      timed_out_ = true;
      client_.reactor_.cancel(connect_);
    }
    return;
  }
  // A consumer holding the response, or a source with nothing to send, is our delay, not the
  // peer's.
  if (body_paused_ || source_waiting_) return;
  std::uint32_t limit = o.response_timeout_ms;
  const bool awaiting_answer =
      body_done_ && out_.empty() && !send_.active() && !got_response_bytes_;
  if (awaiting_answer) limit = std::max(limit, current_.request.answer_timeout_ms);
  if (now - last_progress_ > std::chrono::milliseconds(limit)) {
    fail(Status(Code::kTimeout, "no response progress from " + pool_.key + " for " +
                                    std::to_string(limit) + " ms"));
  }
}

void ClientConnection::on_turn_end() {
  dirty_ = false;
  if (closing_ || !busy_) return;
  if (needs_process_) {
    needs_process_ = false;
    process_backlog();
    if (closing_ || !busy_) return;
  }
  pull_body();
  flush();
}

// ---- Client ----

Client::Client(io::Reactor& reactor, const ClientOptions& options)
    : reactor_(reactor), options_(options) {
  const std::uint32_t shortest = std::min(options.connect_timeout_ms, options.response_timeout_ms);
  const auto period = std::chrono::milliseconds(std::clamp<std::uint32_t>(shortest / 4, 5, 1000));
  sweeper_ = std::make_unique<io::RepeatingTimer>(reactor, period, [this] { sweep(); });
  sweeper_->start();
  hook_ = reactor.add_turn_end_hook([this] { on_turn_end(); });
}

Client::~Client() {
  reactor_.remove_turn_end_hook(hook_);
  retired_.clear();
  connections_.clear();
}

namespace {

// The request the serializer would write is one every reader ends at the same byte: the
// method, target and fields may come from data (a key in a URL, a forwarded value), and a CR,
// LF or space in them would add fields or a second request for the server to read. Framing
// fields and Host are the client's own.
Status check_request(const ClientRequest& request) {
  if (!is_token(request.method)) {
    return Status(Code::kInvalidArgument, "http request: method is not a token");
  }
  if (!is_request_target(request.target)) {
    return Status(Code::kInvalidArgument,
                  "http request: target is empty or holds a space, CTL or non-ASCII byte");
  }
  for (const Header& h : request.headers) {
    if (!is_token(h.name) || !is_field_value(h.value)) {
      return Status(Code::kInvalidArgument,
                    "http request: header name is not a token, or its value holds a CTL");
    }
    if (is_framing_header(h.name) || iequals(h.name, "Host")) {
      return Status(Code::kInvalidArgument,
                    "http request: framing headers and Host are written by the client");
    }
  }
  return Status::ok();
}

}  // namespace

RequestId Client::request(std::string_view host, std::uint16_t port, ClientRequest request,
                          ResponseCallbacks callbacks) {
  const RequestId id = next_id_++;
  if (closing_) {
    fail_later(id, std::move(callbacks), Status(Code::kCancelled, "http client is closed"));
    return id;
  }
  if (Status st = check_request(request); !st) {
    fail_later(id, std::move(callbacks), std::move(st));
    return id;
  }
  std::string key = target_key(host, port);
  auto it = pools_.find(key);
  if (it == pools_.end()) {
    auto addr = io::make_ipv4_address(host, port);
    if (!addr) {
      fail_later(id, std::move(callbacks), addr.status());
      return id;
    }
    it = pools_.emplace(key, Pool{}).first;
    it->second.key = key;
    it->second.addr = *addr;
  }
  dispatch(it->second, Pending{std::move(request), std::move(callbacks), id});
  return id;
}

void Client::resume(RequestId id) {
  for (auto& conn : connections_) {
    if (conn->carries(id)) {
      conn->resume();
      return;
    }
  }
}

void Client::resume_source(RequestId id) {
  for (auto& conn : connections_) {
    if (conn->carries(id)) {
      conn->resume_source();
      return;
    }
  }
}

void Client::cancel(RequestId id) {
  for (auto& conn : connections_) {
    if (conn->carries(id)) {
      conn->abandon();
      return;
    }
  }
  for (auto& [key, pool] : pools_) {
    for (auto it = pool.queue.begin(); it != pool.queue.end(); ++it) {
      if (it->id == id) {
        cancelled_.push_back(std::move(*it));
        pool.queue.erase(it);
        return;
      }
    }
  }
  for (auto it = failed_.begin(); it != failed_.end(); ++it) {
    if (it->id == id) {
      failed_.erase(it);
      return;
    }
  }
}

void Client::dispatch(Pool& pool, Pending pending) {
  while (!pool.idle.empty()) {
    ClientConnection* conn = pool.idle.back();
    pool.idle.pop_back();
    if (conn->usable()) {
      ++stats_.connections_reused;
      conn->start(std::move(pending));
      return;
    }
  }
  if (pool.open < options_.connections_per_target_max) {
    open_connection(pool, std::move(pending));
  } else if (pool.queue.size() < options_.queue_max) {
    pool.queue.push_back(std::move(pending));
  } else {
    fail_later(pending.id, std::move(pending.callbacks),
               Status(Code::kUnavailable, "too many requests queued for " + pool.key));
  }
}

void Client::open_connection(Pool& pool, Pending pending) {
  auto fd = io::make_tcp_socket();
  if (!fd) {
    fail_later(pending.id, std::move(pending.callbacks), fd.status());
    return;
  }
  auto conn = std::make_unique<ClientConnection>(*this, pool, *fd);
  ClientConnection* raw = conn.get();
  connections_.push_front(std::move(conn));
  raw->self_ = connections_.begin();
  ++pool.open;
  ++stats_.connections_opened;
  raw->connect(std::move(pending));
}

void Client::release(ClientConnection& conn) {
  Pool& pool = conn.pool();
  if (!pool.queue.empty()) {
    Pending next = std::move(pool.queue.front());
    pool.queue.pop_front();
    ++stats_.connections_reused;
    conn.start(std::move(next));
  } else if (pool.idle.size() < options_.idle_per_target_max && !closing_) {
    pool.idle.push_back(&conn);
  } else {
    conn.begin_close();
  }
}

void Client::retire(ClientConnection& conn) {
  Pool& pool = conn.pool();
  --pool.open;
  pool.idle.erase(std::remove(pool.idle.begin(), pool.idle.end(), &conn), pool.idle.end());
  retired_.push_back(std::move(*conn.self_));
  connections_.erase(conn.self_);
  if (!closing_ && !pool.queue.empty() && pool.open < options_.connections_per_target_max) {
    Pending next = std::move(pool.queue.front());
    pool.queue.pop_front();
    open_connection(pool, std::move(next));
  }
}

void Client::fail_later(RequestId id, ResponseCallbacks callbacks, Status status) {
  failed_.push_back(Failed{id, std::move(callbacks), std::move(status)});
}

void Client::mark_dirty(ClientConnection& conn) {
  if (conn.dirty_) return;
  conn.dirty_ = true;
  dirty_.push_back(&conn);
}

void Client::on_turn_end() {
  while (!dirty_.empty() || !failed_.empty()) {
    std::vector<ClientConnection*> batch;
    batch.swap(dirty_);
    for (ClientConnection* conn : batch) {
      if (!conn->retired()) conn->on_turn_end();
    }
    // One at a time: a callback may cancel a request whose failure is due after it.
    while (!failed_.empty()) {
      Failed f = std::move(failed_.front());
      failed_.pop_front();
      if (f.callbacks.on_done) f.callbacks.on_done(std::move(f.status));
    }
  }
  retired_.clear();
  cancelled_.clear();
}

void Client::sweep() {
  const TimePoint now = Clock::now();
  std::vector<ClientConnection*> all;
  for (auto& conn : connections_) all.push_back(conn.get());
  for (ClientConnection* conn : all) {
    if (!conn->retired()) conn->sweep(now);
  }
}

void Client::close() {
  if (closing_) return;
  closing_ = true;
  sweeper_->stop();
  for (auto& [key, pool] : pools_) {
    while (!pool.queue.empty()) {
      fail_later(pool.queue.front().id, std::move(pool.queue.front().callbacks),
                 Status(Code::kCancelled, "http client closed"));
      pool.queue.pop_front();
    }
    pool.idle.clear();
  }
  std::vector<ClientConnection*> all;
  for (auto& conn : connections_) all.push_back(conn.get());
  for (ClientConnection* conn : all) conn->fail(Status(Code::kCancelled, "http client closed"));
}

bool Client::closed() const {
  return closing_ && connections_.empty() && !sweeper_->active() && failed_.empty();
}

std::size_t Client::idle_connections(std::string_view host, std::uint16_t port) const {
  auto it = pools_.find(target_key(host, port));
  return it == pools_.end() ? 0 : it->second.idle.size();
}

void Client::fetch(std::string_view host, std::uint16_t port, ClientRequest request,
                   std::function<void(Result<Response>)> done, std::uint64_t body_bytes_max) {
  // The parser enforces the cap: a body crossing it ends the request (kTooLarge) there, instead
  // of being read and dropped until the server stops, which might be never.
  request.response_body_bytes_max = std::min(request.response_body_bytes_max, body_bytes_max);
  auto response = std::make_shared<Response>();
  ResponseCallbacks cb;
  cb.on_head = [response](const ResponseHead& head) { response->head = head; };
  cb.on_body = [response](std::string_view chunk) {
    response->body.append(chunk);
    return Flow::kContinue;
  };
  cb.on_done = [response, done = std::move(done)](Status st) {
    if (!st) {
      done(std::move(st));
    } else {
      done(std::move(*response));
    }
  };
  this->request(host, port, std::move(request), std::move(cb));
}

}  // namespace raftd::http
