// Client to server round trips on one reactor: sized and chunked bodies both ways, pooled
// keep-alive connections, connect and response timeouts.
#include "raftd/http/client.h"

#include <doctest/doctest.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http_test_util.h"
#include "raftd/http/server.h"
#include "test_handler.h"

namespace raftd::http {
namespace {

using namespace std::chrono_literals;

struct Fixture {
  explicit Fixture(const ClientOptions& co = {}, const ServerOptions& so = {}) {
    auto s = Server::start(*reactor, handler, so);
    REQUIRE(s.is_ok());
    server = std::move(s).value();
    client = std::make_unique<Client>(*reactor, co);
  }
  ~Fixture() {
    client->close();
    server->close();
    testing::run_until(*reactor, [&] { return server->closed() && client->closed(); });
    client.reset();
    server.reset();
    reactor->shutdown();
  }

  // Runs one fetch to completion.
  Result<Response> fetch(ClientRequest req) {
    std::optional<Result<Response>> out;
    client->fetch("127.0.0.1", server->port(), std::move(req),
                  [&](Result<Response> r) { out.emplace(std::move(r)); });
    REQUIRE(testing::run_until(*reactor, [&] { return out.has_value(); }));
    return std::move(*out);
  }

  std::unique_ptr<io::Reactor> reactor = testing::make_reactor();
  testing::TestHandler handler;
  std::unique_ptr<Server> server;
  std::unique_ptr<Client> client;
};

ClientRequest make(std::string method, std::string target, std::string body = {}) {
  ClientRequest r;
  r.method = std::move(method);
  r.target = std::move(target);
  r.body = std::move(body);
  return r;
}

// A source producing `total` bytes of a repeating pattern in pieces of at most `piece`.
BodySource pattern_source(std::size_t total, std::size_t piece) {
  auto sent = std::make_shared<std::size_t>(0);
  return [=](std::string& out, std::size_t max_bytes, bool& done) {
    const std::size_t n = std::min({piece, max_bytes, total - *sent});
    for (std::size_t i = 0; i < n; ++i) out.push_back(static_cast<char>('a' + (*sent + i) % 26));
    *sent += n;
    done = *sent == total;
    return Status::ok();
  };
}

std::string pattern(std::size_t total) {
  std::string s;
  for (std::size_t i = 0; i < total; ++i) s.push_back(static_cast<char>('a' + i % 26));
  return s;
}

// A hand-written server for one connection: accepts, reads the request head, then sends what
// the test gives it, without blocking (the test thread also turns the client's reactor).
class ScriptedServer {
 public:
  ScriptedServer() {
    auto l = io::listen_tcp("127.0.0.1", 0);
    REQUIRE(l.is_ok());
    listen_fd_ = l->fd;
    port = l->port;
  }
  ~ScriptedServer() {
    io::close_fd(peer_);
    io::close_fd(listen_fd_);
  }
  // Accepts and reads; true once a whole request head arrived.
  bool poll_request() {
    pollfd pfd{listen_fd_, POLLIN, 0};
    if (peer_ < 0 && ::poll(&pfd, 1, 0) == 1) {
      peer_ = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK);
    }
    char buf[4096];
    const ssize_t n = peer_ < 0 ? -1 : ::recv(peer_, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) request.append(buf, static_cast<std::size_t>(n));
    return request.find("\r\n\r\n") != std::string::npos;
  }
  // Sends what the socket takes now; false once the client closed the connection.
  bool try_send(std::string_view bytes) {
    const ssize_t n = ::send(peer_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    return n >= 0 || errno == EAGAIN || errno == EWOULDBLOCK;
  }

  std::uint16_t port = 0;
  std::string request;

 private:
  int listen_fd_ = -1;
  int peer_ = -1;
};

}  // namespace

TEST_SUITE("http") {
  TEST_CASE("http::Client: sized request, sized and chunked responses") {
    Fixture f;
    auto r = f.fetch(make("POST", "/echo", "hello"));
    REQUIRE(r.is_ok());
    CHECK(r->head.status == 200);
    CHECK(r->head.framing == Framing::kContentLength);
    CHECK(r->body == "POST /echo hello");

    r = f.fetch(make("GET", "/chunked"));
    REQUIRE(r.is_ok());
    CHECK(r->head.framing == Framing::kChunked);
    CHECK(r->body == "first,second,third");
  }

  TEST_CASE("http::Client: request bodies streamed from a source, chunked and sized") {
    Fixture f;
    ClientRequest chunked = make("PUT", "/up");
    chunked.source = pattern_source(300 * 1024 + 7, 10'000);
    auto r = f.fetch(std::move(chunked));
    REQUIRE(r.is_ok());
    CHECK(r->body == "PUT /up " + pattern(300 * 1024 + 7));

    ClientRequest sized = make("PUT", "/sized");
    sized.source = pattern_source(70'000, 4096);
    sized.source_bytes = 70'000;
    r = f.fetch(std::move(sized));
    REQUIRE(r.is_ok());
    CHECK(r->body == "PUT /sized " + pattern(70'000));

    ClientRequest lying = make("PUT", "/lie");  // the source ends early: a caller error
    lying.source = pattern_source(10, 10);
    lying.source_bytes = 20;
    r = f.fetch(std::move(lying));
    CHECK(r.status().code() == Code::kInvalidArgument);
  }

  TEST_CASE("http::Client: a paused response body waits for resume") {
    Fixture f;
    std::string body;
    std::optional<Status> done;
    ResponseCallbacks cb;
    cb.on_body = [&](std::string_view chunk) {
      body.append(chunk);
      return Flow::kPause;  // one piece at a time
    };
    cb.on_done = [&](Status st) { done = std::move(st); };
    const RequestId id =
        f.client->request("127.0.0.1", f.server->port(), make("GET", "/chunked"), std::move(cb));
    REQUIRE(testing::run_until(*f.reactor, [&] { return !body.empty(); }));
    testing::run_for(*f.reactor, 50ms);
    CHECK(body == "first,");
    CHECK_FALSE(done.has_value());
    for (int i = 0; i < 2; ++i) {
      f.client->resume(id);
      const std::size_t before = body.size();
      REQUIRE(testing::run_until(*f.reactor, [&] { return body.size() > before; }));
    }
    f.client->resume(id);
    REQUIRE(testing::run_until(*f.reactor, [&] { return done.has_value(); }));
    CHECK(done->is_ok());
    CHECK(body == "first,second,third");
    CHECK(f.client->idle_connections("127.0.0.1", f.server->port()) == 1);
  }

  TEST_CASE("http::Client: a body paused longer than the response timeout goes on when resumed") {
    ClientOptions co;
    co.response_timeout_ms = 200;
    Fixture f(co);
    std::size_t received = 0;
    bool paused = false;
    std::optional<Status> done;
    ResponseCallbacks cb;
    cb.on_body = [&](std::string_view chunk) {
      received += chunk.size();
      paused = true;
      return Flow::kPause;  // one piece at a time, as a slow consumer takes it
    };
    cb.on_done = [&](Status st) { done = std::move(st); };
    const RequestId id =
        f.client->request("127.0.0.1", f.server->port(), make("GET", "/big"), std::move(cb));
    REQUIRE(testing::run_until(*f.reactor, [&] { return paused; }));
    // Long enough for the server to fill the socket and the client to stop reading.
    testing::run_for(*f.reactor, 600ms);
    CHECK_FALSE(done.has_value());
    // The wait was ours: the timeout counts from the resume, not from the last byte read.
    while (received < 4 * 1024 * 1024 && !done) {
      paused = false;
      f.client->resume(id);
      REQUIRE(testing::run_until(*f.reactor, [&] { return paused || done.has_value(); }));
    }
    CHECK_MESSAGE(!done.has_value(), done->to_string());
    f.client->cancel(id);
  }

  TEST_CASE("http::Client: a source with nothing to send waits for resume_source") {
    Fixture f;
    std::string queued = "part1,";
    bool finished = false;
    ClientRequest req = make("POST", "/stream");
    req.source = [&](std::string& out, std::size_t, bool& done) {
      out.append(queued);
      queued.clear();
      done = finished;
      return Status::ok();
    };
    std::optional<Result<Response>> out;
    const RequestId id = f.client->request(
        "127.0.0.1", f.server->port(), std::move(req),
        ResponseCallbacks{nullptr, nullptr, [&](Status st) {
                            out.emplace(st.is_ok() ? Result<Response>(Response{})
                                                   : Result<Response>(std::move(st)));
                          }});
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.handler.heads.size() == 1; }));
    testing::run_for(*f.reactor, 50ms);
    CHECK(f.handler.ended.empty());
    queued = "part2";
    finished = true;
    f.client->resume_source(id);
    REQUIRE(testing::run_until(*f.reactor, [&] { return out.has_value(); }));
    CHECK(out->is_ok());
    REQUIRE(f.handler.ended.size() == 1);
    CHECK(f.handler.ended[0] == "POST /stream part1,part2");
  }

  TEST_CASE("http::Client: keep-alive connections are pooled and reused") {
    Fixture f;
    for (int i = 0; i < 5; ++i) {
      auto r = f.fetch(make("GET", "/n" + std::to_string(i)));
      REQUIRE(r.is_ok());
      CHECK(r->body == "GET /n" + std::to_string(i) + " ");
    }
    CHECK(f.client->stats().connections_opened == 1);
    CHECK(f.client->stats().connections_reused == 4);
    CHECK(f.client->idle_connections("127.0.0.1", f.server->port()) == 1);
    CHECK(f.server->stats().connections_accepted == 1);

    // HEAD: the declared length is not read as a body, and the connection stays usable.
    auto r = f.fetch(make("HEAD", "/head-len"));
    REQUIRE(r.is_ok());
    CHECK(r->head.content_length == 0);
    CHECK(r->body.empty());
    r = f.fetch(make("GET", "/after-head"));
    REQUIRE(r.is_ok());
    CHECK(r->body == "GET /after-head ");
    CHECK(f.client->stats().connections_opened == 1);
  }

  TEST_CASE("http::Client: concurrent requests open parallel connections, then reuse them") {
    Fixture f;
    int done = 0;
    for (int i = 0; i < 4; ++i) {
      f.client->fetch("127.0.0.1", f.server->port(), make("GET", "/slow"), [&](Result<Response> r) {
        CHECK(r.is_ok());
        ++done;
      });
    }
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.handler.held.size() == 4; }));
    CHECK(f.client->stats().connections_opened == 4);
    for (Exchange* ex : std::vector<Exchange*>(f.handler.held)) ex->respond(200, "ok");
    REQUIRE(testing::run_until(*f.reactor, [&] { return done == 4; }));
    CHECK(f.client->idle_connections("127.0.0.1", f.server->port()) == 4);
  }

  TEST_CASE("http::Client: a pooled connection the server closed is replaced") {
    ServerOptions so;
    so.idle_timeout_ms = 200;
    Fixture f({}, so);
    REQUIRE(f.fetch(make("GET", "/first")).is_ok());
    REQUIRE(testing::run_until(*f.reactor, [&] {
      return f.client->idle_connections("127.0.0.1", f.server->port()) == 0;
    }));
    auto r = f.fetch(make("GET", "/second"));
    REQUIRE(r.is_ok());
    CHECK(r->body == "GET /second ");
    CHECK(f.client->stats().connections_opened == 2);
  }

  TEST_CASE("http::Client: connecting to a port nobody listens on fails") {
    Fixture f;
    auto l = io::listen_tcp("127.0.0.1", 0);
    REQUIRE(l.is_ok());
    const std::uint16_t dead_port = l->port;
    io::close_fd(l->fd);  // nobody listens there now
    std::optional<Result<Response>> out;
    f.client->fetch("127.0.0.1", dead_port, make("GET", "/"),
                    [&](Result<Response> r) { out.emplace(std::move(r)); });
    REQUIRE(testing::run_until(*f.reactor, [&] { return out.has_value(); }));
    CHECK(out->status().code() == Code::kIoError);
    CHECK(out->status().message().find("connect") != std::string::npos);
  }

  TEST_CASE("http::Client: the connect timeout ends a connect that gets no answer") {
    ClientOptions co;
    co.connect_timeout_ms = 300;
    Fixture f(co);
    // A listener that never accepts, with its backlog filled: the kernel drops further SYNs,
    // so the next connect hangs until our timeout.
    auto l = io::listen_tcp("127.0.0.1", 0, /*backlog=*/0);
    REQUIRE(l.is_ok());
    std::vector<std::unique_ptr<testing::RawClient>> fillers;
    fillers.push_back(std::make_unique<testing::RawClient>(l->port));
    std::optional<Result<Response>> out;
    const auto started = io::Reactor::now();
    f.client->fetch("127.0.0.1", l->port, make("GET", "/"),
                    [&](Result<Response> r) { out.emplace(std::move(r)); });
    REQUIRE(testing::run_until(*f.reactor, [&] { return out.has_value(); }));
    CHECK(out->status().code() == Code::kTimeout);
    CHECK(io::Reactor::now() - started >= 300ms);
    fillers.clear();
    io::close_fd(l->fd);
  }

  TEST_CASE("http::Client: the response timeout ends a request the server never answers") {
    ClientOptions co;
    co.response_timeout_ms = 300;
    Fixture f(co);
    auto r = f.fetch(make("GET", "/hang"));
    CHECK(r.status().code() == Code::kTimeout);
    // The client closed its connection; the server notices when it answers, and lets go.
    REQUIRE(f.handler.held.size() == 1);
    f.handler.held[0]->respond(200, "too late");
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.server->connection_count() == 0; }));
  }

  TEST_CASE("http::Client: a request's answer timeout lets the server work after the body") {
    ClientOptions co;
    co.response_timeout_ms = 200;
    Fixture f(co);
    ClientRequest req = make("POST", "/hang", "snapshot bytes");
    req.answer_timeout_ms = 5000;
    std::optional<Result<Response>> out;
    f.client->fetch("127.0.0.1", f.server->port(), std::move(req),
                    [&](Result<Response> r) { out.emplace(std::move(r)); });
    testing::run_for(*f.reactor, 700ms);  // over three response timeouts without an answer
    REQUIRE_FALSE(out.has_value());
    REQUIRE(f.handler.held.size() == 1);
    f.handler.held[0]->respond(200, "installed");
    REQUIRE(testing::run_until(*f.reactor, [&] { return out.has_value(); }));
    REQUIRE(out->is_ok());
    CHECK(out->value().body == "installed");

    // It bounds the wait too.
    ClientRequest again = make("POST", "/hang", "x");
    again.answer_timeout_ms = 600;
    const auto started = io::Reactor::now();
    auto r = f.fetch(std::move(again));
    CHECK(r.status().code() == Code::kTimeout);
    CHECK(io::Reactor::now() - started >= 600ms);
  }

  TEST_CASE("http::Client: the answer timeout does not cover a body the server stops reading") {
    ClientOptions co;
    co.response_timeout_ms = 300;
    Fixture f(co);
    // The server pauses this body: once the socket buffers are full nothing moves, and the usual
    // timeout ends the request long before the answer timeout would.
    ClientRequest req = make("POST", "/pause", std::string(32 << 20, 'x'));
    req.answer_timeout_ms = 20'000;
    const auto started = io::Reactor::now();
    auto r = f.fetch(std::move(req));
    CHECK(r.status().code() == Code::kTimeout);
    CHECK(io::Reactor::now() - started < 10s);
  }

  TEST_CASE("http::Client: an error answer to a bad request is delivered") {
    ServerOptions so;
    so.body_bytes_max = 10;
    Fixture f({}, so);
    auto r = f.fetch(make("POST", "/big", std::string(11, 'x')));
    REQUIRE(r.is_ok());
    CHECK(r->head.status == 413);
    CHECK_FALSE(r->head.keep_alive);
  }

  TEST_CASE("http::Client: a response framed ambiguously fails the request") {
    const char* answers[] = {
        // a bare LF ends the last chunk; a second response follows
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\n"
         "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\nContent-Length: 3\r\n\r\nabc",
    };
    for (const char* answer : answers) {
      INFO(answer);
      Fixture f;
      auto l = io::listen_tcp("127.0.0.1", 0);
      REQUIRE(l.is_ok());
      std::optional<Result<Response>> out;
      f.client->fetch("127.0.0.1", l->port, make("GET", "/"),
                      [&](Result<Response> r) { out.emplace(std::move(r)); });
      // A hand-written server: accept, read the request head, answer with `answer`.
      int peer = -1;
      std::string request;
      REQUIRE(testing::run_until(*f.reactor, [&] {
        pollfd pfd{l->fd, POLLIN, 0};
        if (peer < 0 && ::poll(&pfd, 1, 0) == 1) {
          peer = ::accept4(l->fd, nullptr, nullptr, SOCK_NONBLOCK);
        }
        char buf[4096];
        const ssize_t n = peer < 0 ? -1 : ::recv(peer, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) request.append(buf, static_cast<std::size_t>(n));
        return request.find("\r\n\r\n") != std::string::npos;
      }));
      REQUIRE(::send(peer, answer, std::string_view(answer).size(), MSG_NOSIGNAL) > 0);
      REQUIRE(testing::run_until(*f.reactor, [&] { return out.has_value(); }));
      CHECK(out->status().code() == Code::kCorruption);
      io::close_fd(peer);
      io::close_fd(l->fd);
    }
  }

  TEST_CASE("http::Client: a response body paused on its last byte ends when resumed") {
    // Declared before the fixture: its close() reports to them if the test fails early.
    std::optional<Status> done;
    std::string body;
    Fixture f;
    ResponseCallbacks cb;
    cb.on_body = [&](std::string_view chunk) {
      body.append(chunk);
      return Flow::kPause;
    };
    cb.on_done = [&](Status st) { done = std::move(st); };
    const RequestId id = f.client->request("127.0.0.1", f.server->port(), make("GET", "/x"), cb);
    REQUIRE(testing::run_until(*f.reactor, [&] { return body == "GET /x "; }));
    testing::run_for(*f.reactor, 50ms);
    CHECK_FALSE(done.has_value());
    // The whole response is in; nothing more will arrive. Resuming must end it at once (not at
    // the response timeout, 30 s).
    f.client->resume(id);
    REQUIRE(testing::run_until(
        *f.reactor, [&] { return done.has_value(); }, 5s));
    CHECK(done->is_ok());
    CHECK(f.client->idle_connections("127.0.0.1", f.server->port()) == 1);
  }

  TEST_CASE("http::Client: a request a server could read as two is refused, never sent") {
    auto with_header = [](std::string name, std::string value) {
      ClientRequest r = make("GET", "/");
      r.headers.push_back(Header{std::move(name), std::move(value)});
      return r;
    };
    std::vector<ClientRequest> bad;
    // A target from data carrying a second request.
    bad.push_back(make("GET", "/a HTTP/1.1\r\nHost: x\r\n\r\nGET /smuggled"));
    bad.push_back(make("GET", "/a b"));
    bad.push_back(make("GET", ""));
    bad.push_back(make("GET", "/\x80"));
    bad.push_back(make("GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\nGET", "/"));
    bad.push_back(make("", "/"));
    bad.push_back(with_header("X-Key", "v\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x"));
    bad.push_back(with_header("X-Key", std::string("v\0w", 3)));
    bad.push_back(with_header("X Key", "v"));
    bad.push_back(with_header("", "v"));
    bad.push_back(with_header("Content-Length", "0"));
    bad.push_back(with_header("transfer-encoding", "chunked"));
    bad.push_back(with_header("Host", "elsewhere"));
    Fixture f;
    for (ClientRequest& req : bad) {
      INFO(req.method << " " << req.target);
      auto r = f.fetch(std::move(req));
      CHECK(r.status().code() == Code::kInvalidArgument);
    }
    CHECK(f.client->stats().requests == 0);
    CHECK(f.client->stats().connections_opened == 0);
    testing::run_for(*f.reactor, 50ms);
    CHECK(f.handler.heads.empty());
    // Values may hold HTAB and obs-text; those are written as they are.
    auto ok = f.fetch(with_header("X-Key", "a\tb \x80"));
    REQUIRE(ok.is_ok());
    CHECK(ok->head.status == 200);
  }

  TEST_CASE("http::Client: a response that never ends fails at the caller's body cap") {
    // A body past the cap ends the request at once, whatever its framing, instead of being read
    // (and dropped) for as long as the server keeps sending.
    struct Shape {
      const char* head;
      std::string more;  // sent again and again
    };
    const std::string kib(1024, 'z');
    const Shape shapes[] = {
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "400\r\n" + kib + "\r\n"},
        {"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", kib},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1099511627776\r\n\r\n", kib},
    };
    for (const Shape& shape : shapes) {
      INFO(shape.head);
      std::optional<Result<Response>> out;
      ScriptedServer peer;
      Fixture f;
      f.client->fetch(
          "127.0.0.1", peer.port, make("GET", "/"),
          [&](Result<Response> r) { out.emplace(std::move(r)); }, 64 * 1024);
      REQUIRE(testing::run_until(*f.reactor, [&] { return peer.poll_request(); }));
      REQUIRE(peer.try_send(shape.head));
      bool peer_open = true;
      REQUIRE(testing::run_until(
          *f.reactor,
          [&] {
            if (peer_open) peer_open = peer.try_send(shape.more);
            return out.has_value();
          },
          10s));
      CHECK(out->status().code() == Code::kTooLarge);
      CHECK(testing::run_until(*f.reactor, [&] { return f.client->open_connections() == 0; }));
    }
  }

  TEST_CASE("http::Client: endless interim responses fail the request") {
    std::optional<Result<Response>> out;
    ScriptedServer peer;
    Fixture f;
    f.client->fetch("127.0.0.1", peer.port, make("GET", "/"),
                    [&](Result<Response> r) { out.emplace(std::move(r)); });
    REQUIRE(testing::run_until(*f.reactor, [&] { return peer.poll_request(); }));
    bool peer_open = true;
    REQUIRE(testing::run_until(
        *f.reactor,
        [&] {
          if (peer_open) peer_open = peer.try_send("HTTP/1.1 100 Continue\r\n\r\n");
          return out.has_value();
        },
        10s));
    CHECK(out->status().code() == Code::kCorruption);
    CHECK(testing::run_until(*f.reactor, [&] { return f.client->open_connections() == 0; }));
  }

  TEST_CASE("http::Client: a few interim responses before the final one are skipped") {
    std::optional<Result<Response>> out;
    ScriptedServer peer;
    Fixture f;
    f.client->fetch("127.0.0.1", peer.port, make("GET", "/"),
                    [&](Result<Response> r) { out.emplace(std::move(r)); });
    REQUIRE(testing::run_until(*f.reactor, [&] { return peer.poll_request(); }));
    std::string answer;
    for (std::size_t i = 0; i < kInterimResponsesMax; ++i)
      answer += "HTTP/1.1 103 Early Hints\r\n\r\n";
    answer += "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    REQUIRE(peer.try_send(answer));
    REQUIRE(testing::run_until(*f.reactor, [&] { return out.has_value(); }));
    REQUIRE(out->is_ok());
    CHECK((*out)->body == "ok");
  }

  TEST_CASE("http::Client: cancel abandons a running request and closes its connection") {
    Fixture f;
    bool called = false;
    ResponseCallbacks cb;
    cb.on_head = [&](const ResponseHead&) { called = true; };
    cb.on_done = [&](Status) { called = true; };
    const RequestId id =
        f.client->request("127.0.0.1", f.server->port(), make("GET", "/hang"), std::move(cb));
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.handler.held.size() == 1; }));
    f.client->cancel(id);
    // The server sees the connection end; the client keeps nothing of it.
    REQUIRE(testing::run_until(
        *f.reactor, [&] { return f.handler.aborted == 1 && f.client->open_connections() == 0; }));
    testing::run_for(*f.reactor, 30ms);
    CHECK_FALSE(called);
    CHECK(f.client->idle_connections("127.0.0.1", f.server->port()) == 0);
    f.client->cancel(id);  // ended: a no-op
    auto r = f.fetch(make("GET", "/after"));
    REQUIRE(r.is_ok());
    CHECK(r->body == "GET /after ");
  }

  TEST_CASE("http::Client: cancel from the request's own body callback stops it there") {
    Fixture f;
    std::size_t pieces = 0;
    bool done = false;
    RequestId id = 0;
    ResponseCallbacks cb;
    // The callback's captures must stay valid after it cancels its own request.
    const std::string marker(64, 'm');
    cb.on_body = [&, marker](std::string_view) {
      ++pieces;
      f.client->cancel(id);
      CHECK(marker == std::string(64, 'm'));
      return Flow::kContinue;
    };
    cb.on_done = [&](Status) { done = true; };
    id = f.client->request("127.0.0.1", f.server->port(), make("GET", "/big"), std::move(cb));
    REQUIRE(testing::run_until(*f.reactor, [&] { return pieces > 0; }));
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.client->open_connections() == 0; }));
    testing::run_for(*f.reactor, 30ms);
    CHECK(pieces == 1);
    CHECK_FALSE(done);
  }

  TEST_CASE("http::Client: cancel takes a queued request off the queue, and a due failure") {
    ClientOptions co;
    co.connections_per_target_max = 1;
    Fixture f(co);
    std::vector<std::string> done;
    auto track = [&](std::string name) {
      return ResponseCallbacks{nullptr, nullptr, [&done, name](Status st) {
                                 done.push_back(name + " " + std::string(code_name(st.code())));
                               }};
    };
    f.client->request("127.0.0.1", f.server->port(), make("GET", "/slow"), track("slow"));
    const RequestId queued =
        f.client->request("127.0.0.1", f.server->port(), make("GET", "/queued"), track("queued"));
    f.client->request("127.0.0.1", f.server->port(), make("GET", "/third"), track("third"));
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.handler.held.size() == 1; }));
    f.client->cancel(queued);
    f.handler.held[0]->respond(200, "ok");
    REQUIRE(testing::run_until(*f.reactor, [&] { return done.size() == 2; }));
    testing::run_for(*f.reactor, 30ms);
    CHECK(done == std::vector<std::string>{"slow OK", "third OK"});
    CHECK(f.handler.heads == std::vector<std::string>{"GET /slow", "GET /third"});
    // A request refused at once has its failure due at the turn's end: cancel drops it too.
    const RequestId bad =
        f.client->request("127.0.0.1", f.server->port(), make("GET", "/a b"), track("bad"));
    f.client->cancel(bad);
    testing::run_for(*f.reactor, 30ms);
    CHECK(done.size() == 2);
  }

  TEST_CASE("http::Client: close() cancels queued and running requests") {
    ClientOptions co;
    co.connections_per_target_max = 1;
    Fixture f(co);
    std::vector<Code> codes;
    for (int i = 0; i < 3; ++i) {
      f.client->fetch("127.0.0.1", f.server->port(), make("GET", "/hang"),
                      [&](Result<Response> r) { codes.push_back(r.status().code()); });
    }
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.handler.held.size() == 1; }));
    f.client->close();
    REQUIRE(testing::run_until(*f.reactor, [&] { return codes.size() == 3; }));
    for (Code c : codes) CHECK(c == Code::kCancelled);
  }
}

}  // namespace raftd::http
