// The server on a real reactor, driven by hand-written bytes: keep-alive, pipelining,
// smuggling shapes, limits, timeouts, 100-continue.
#include "raftd/http/server.h"

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "http_test_util.h"
#include "test_handler.h"

namespace raftd::http {
namespace {

using namespace std::chrono_literals;
using testing::count_of;
using testing::RawClient;

struct ServerFixture {
  explicit ServerFixture(const ServerOptions& options = {}) {
    auto s = Server::start(*reactor, handler, options);
    REQUIRE(s.is_ok());
    server = std::move(s).value();
  }
  ~ServerFixture() {
    server->close();
    testing::run_until(*reactor, [&] { return server->closed(); });
    server.reset();
    reactor->shutdown();
  }
  std::uint16_t port() const { return server->port(); }

  std::unique_ptr<io::Reactor> reactor = testing::make_reactor();
  testing::TestHandler handler;
  std::unique_ptr<Server> server;
};

auto responses(std::size_t n) {
  return [n](const std::string& s) { return count_of(s, "HTTP/1.1 ") >= n; };
}

// True once a full response with this body suffix has arrived.
auto ends_with(std::string suffix) {
  return [suffix](const std::string& s) { return s.ends_with(suffix); };
}

}  // namespace

TEST_SUITE("http") {
  TEST_CASE("http::Server: keep-alive serves several requests on one connection") {
    ServerFixture f;
    RawClient c(f.port());
    c.send("GET /one HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(c.wait_for(*f.reactor, ends_with("GET /one ")));
    c.send("POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
    REQUIRE(c.wait_for(*f.reactor, ends_with("POST /two abc")));
    CHECK(count_of(c.received, "HTTP/1.1 200 OK\r\n") == 2);
    CHECK(count_of(c.received, "Content-Length: 9\r\n") == 1);
    CHECK(c.received.find("Connection: close") == std::string::npos);
    CHECK_FALSE(c.closed);
    CHECK(f.server->stats().connections_accepted == 1);
  }

  TEST_CASE("http::Server: pipelined requests are answered in order, one at a time") {
    ServerFixture f;
    RawClient c(f.port());
    c.send(
        "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
        "POST /2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        "GET /3 HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.handler.held.size() == 1; }));
    testing::run_for(*f.reactor, 100ms);
    c.poll();
    CHECK(c.received.empty());           // /slow is not answered yet, so nothing may be
    CHECK(f.handler.heads.size() == 1);  // and the next request is not even parsed
    f.handler.held[0]->respond(200, "slow done");
    REQUIRE(c.wait_for(*f.reactor, responses(3)));
    REQUIRE(c.wait_for(*f.reactor, ends_with("GET /3 ")));
    const auto a = c.received.find("slow done");
    const auto b = c.received.find("POST /2 abc");
    const auto d = c.received.find("GET /3 ");
    CHECK(a < b);
    CHECK(b < d);
    CHECK(f.server->stats().requests == 3);
  }

  TEST_CASE("http::Server: each smuggling shape gets 400 and close; others keep being served") {
    const char* shapes[] = {
        "GET / HTTP/1.1\r\nHost: a\r\nX-Abc: \rxTransfer-Encoding: chunked\r\n\r\n",  // bare CR
        "GET / HTTP/1.1\r\nHost: a\r\nX-Abc: y\r\n Content-Length: 5\r\n\r\nhello",   // obs-fold
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
         "0\r\n\r\n"),  // CL + TE
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        // a bare LF ends the last chunk, then a second request (llhttp alone would serve it)
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\n"
         "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\r\n\n"
         "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"),
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\nContent-Length: 3\r\n\r\nabc",
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    };
    ServerFixture f;
    RawClient good(f.port());
    int round = 0;
    for (const char* shape : shapes) {
      INFO(shape);
      RawClient bad(f.port());
      bad.send(shape);
      REQUIRE(bad.wait_closed(*f.reactor));
      CHECK(bad.received.starts_with("HTTP/1.1 400 Bad Request\r\n"));
      CHECK(bad.received.find("\r\nConnection: close\r\n") != std::string::npos);
      ++round;
      const std::string target = "/alive" + std::to_string(round);
      good.send("GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n");
      REQUIRE(good.wait_for(*f.reactor, ends_with("GET " + target + " ")));
    }
    CHECK_FALSE(good.closed);
    CHECK(f.server->stats().bad_requests == std::size(shapes));
    CHECK(f.handler.ended.size() == std::size(shapes));  // only the good requests got through
  }

  TEST_CASE("http::Server: an unknown transfer coding gets 501 and close") {
    ServerFixture f;
    RawClient c(f.port());
    c.send(
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
        "GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
    REQUIRE(c.wait_closed(*f.reactor));
    CHECK(c.received.starts_with("HTTP/1.1 501 Not Implemented\r\n"));
    CHECK(c.received.find("\r\nConnection: close\r\n") != std::string::npos);
    CHECK(count_of(c.received, "HTTP/1.1 ") == 1);
    CHECK(f.handler.heads.empty());
  }

  TEST_CASE("http::Server: a header section over the limit gets 431") {
    ServerOptions o;
    o.header_bytes_max = 1024;
    ServerFixture f(o);
    RawClient c(f.port());
    c.send("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n");
    REQUIRE(c.wait_closed(*f.reactor));
    CHECK(c.received.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
    CHECK(f.handler.heads.empty());
  }

  TEST_CASE("http::Server: a body over the limit gets 413, sized or chunked") {
    ServerOptions o;
    o.body_bytes_max = 100;
    ServerFixture f(o);
    RawClient sized(f.port());
    sized.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n");
    REQUIRE(sized.wait_closed(*f.reactor));
    CHECK(sized.received.starts_with("HTTP/1.1 413 Content Too Large\r\n"));
    CHECK(f.handler.heads.empty());  // refused before the handler saw it

    RawClient chunked(f.port());
    chunked.send("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n50\r\n" +
                 std::string(80, 'a') + "\r\n50\r\n" + std::string(80, 'b') + "\r\n0\r\n\r\n");
    REQUIRE(chunked.wait_closed(*f.reactor));
    CHECK(chunked.received.starts_with("HTTP/1.1 413 Content Too Large\r\n"));
    CHECK(f.handler.aborted == 1);  // the handler had the head; the exchange was aborted
  }

  TEST_CASE("http::Server: with json_errors its own answers are JSON error bodies") {
    ServerOptions o;
    o.body_bytes_max = 100;
    o.header_bytes_max = 1024;
    o.json_errors = true;
    ServerFixture f(o);
    RawClient big(f.port());
    big.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n");
    REQUIRE(big.wait_closed(*f.reactor));
    CHECK(big.received.starts_with("HTTP/1.1 413 Content Too Large\r\n"));
    CHECK(big.received.find("Content-Type: application/json\r\n") != std::string::npos);
    CHECK(big.received.find("\r\n\r\n{\"error\":\"too_large\",\"message\":\"") !=
          std::string::npos);
    RawClient headers(f.port());
    headers.send("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n");
    REQUIRE(headers.wait_closed(*f.reactor));
    CHECK(headers.received.find("{\"error\":\"headers_too_large\"") != std::string::npos);
    RawClient bad(f.port());
    bad.send("GET / HTTP/1.1\r\nHost: x\r\nBad\"Header: 1\r\n\r\n");
    REQUIRE(bad.wait_closed(*f.reactor));
    CHECK(bad.received.starts_with("HTTP/1.1 400 "));
    const size_t body = bad.received.find("\r\n\r\n");
    REQUIRE(body != std::string::npos);
    CHECK(bad.received.substr(body + 4).starts_with("{\"error\":\"bad_request\",\"message\":\""));
    CHECK(bad.received.ends_with("\"}\n"));
  }

  TEST_CASE("http::Server: the header timeout drops slow and silent clients") {
    ServerOptions o;
    o.header_timeout_ms = 300;
    ServerFixture f(o);
    RawClient slow(f.port());
    RawClient silent(f.port());
    slow.send("GET / HTTP/1.1\r\nHo");
    REQUIRE(slow.wait_closed(*f.reactor));
    CHECK(slow.received.starts_with("HTTP/1.1 408 Request Timeout\r\n"));
    REQUIRE(silent.wait_closed(*f.reactor));
    CHECK(silent.received.empty());
    CHECK(f.server->stats().timeouts == 2);
    // The 408 connection lingers (draining the client) for at most kLingerMs.
    CHECK(testing::run_until(*f.reactor, [&] { return f.server->connection_count() == 0; }));
  }

  TEST_CASE("http::Server: the idle timeout closes a quiet keep-alive connection") {
    ServerOptions o;
    o.idle_timeout_ms = 300;
    ServerFixture f(o);
    RawClient c(f.port());
    c.send("GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(c.wait_for(*f.reactor, ends_with("GET /x ")));
    REQUIRE(c.wait_closed(*f.reactor));
    CHECK(f.server->stats().timeouts == 1);
  }

  TEST_CASE("http::Server: the progress timeout drops a stalled body and a reader that stops") {
    ServerOptions o;
    o.progress_timeout_ms = 300;
    ServerFixture f(o);
    RawClient stalled(f.port());
    stalled.send("POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789");
    REQUIRE(stalled.wait_closed(*f.reactor));
    CHECK(f.handler.aborted == 1);

    RawClient deaf(f.port());  // asks for 64 MiB and never reads
    deaf.send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.handler.aborted == 2; }));
    CHECK(f.server->stats().timeouts == 2);
    // Only what the socket buffers took was produced: the server did not buffer the rest.
    CHECK(f.handler.big_pieces_written < 1024);
    MESSAGE("pieces of 64 KiB written before the reader stalled: " << f.handler.big_pieces_written);
  }

  TEST_CASE("http::Server: a reader that stops is reset, its unread answer not left queued") {
    ServerOptions o;
    o.progress_timeout_ms = 300;
    ServerFixture f(o);
    RawClient deaf(f.port());  // asks for 64 MiB and reads nothing until it is dropped
    deaf.send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.handler.aborted == 1; }));
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.server->connection_count() == 0; }));
    // A plain close would leave the answer queued in the kernel, still being delivered (ending
    // in an orderly EOF) to a peer that may never read it; a reset drops it.
    CHECK(deaf.drain_to_end() == ECONNRESET);
  }

  TEST_CASE("http::Server: a client that pipelines and never reads is bounded, then dropped") {
    ServerOptions o;
    o.progress_timeout_ms = 3000;  // longer than the burst below: it must outlive it
    ServerFixture f(o);
    RawClient deaf(f.port());
    std::string burst;
    for (int i = 0; i < 512; ++i) burst += "GET /p HTTP/1.1\r\nHost: x\r\n\r\n";
    std::size_t sent = 0;
    std::size_t held_max = 0;
    std::size_t at = 0;
    // Pipelines as fast as the socket takes it, for a while, reading nothing.
    const auto until = io::Reactor::now() + 1500ms;
    while (io::Reactor::now() < until) {
      const std::size_t n = deaf.try_send(std::string_view(burst).substr(at));
      sent += n;
      at = (at + n) % burst.size();
      f.reactor->run_once(1ms);
      held_max = std::max(held_max, f.server->buffered_bytes());
    }
    MESSAGE("bytes pipelined: " << sent << ", most held by the server: " << held_max);
    // Input waiting to be parsed, the answers being filled and the ones being sent, plus the
    // allocator's rounding: without the bound this grows with every request sent.
    CHECK(held_max <= kPendingBytesMax + 2 * kSendBytesMax + 128 * 1024);
    CHECK(f.server->connection_count() == 1);

    // Another client is served promptly meanwhile.
    RawClient other(f.port());
    const auto asked = io::Reactor::now();
    other.send("GET /other HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(other.wait_for(*f.reactor, ends_with("GET /other ")));
    CHECK(io::Reactor::now() - asked < 1000ms);

    // The deaf client keeps trying to send; the send-progress timeout drops it anyway.
    bool dropped = false;
    const auto give_up = io::Reactor::now() + testing::kWaitMax;
    while (!dropped && io::Reactor::now() < give_up) {
      const std::size_t n = deaf.try_send(std::string_view(burst).substr(at));
      at = (at + n) % burst.size();
      f.reactor->run_once(5ms);
      dropped = f.server->connection_count() == 1;  // only `other` is left
    }
    CHECK(dropped);
    CHECK(f.server->stats().timeouts >= 1);
  }

  TEST_CASE("http::Server: a body below the minimum rate gets 408 and close") {
    ServerOptions o;
    o.body_rate_window_ms = 300;
    o.body_rate_min_bytes = 64;
    ServerFixture f(o);
    RawClient trickle(f.port());
    RawClient steady(f.port());
    trickle.send("POST /t HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n");
    steady.send("POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n");
    // One byte every 50 ms (well inside the progress timeout) against 40 bytes every 50 ms.
    std::size_t trickled = 0;
    std::size_t sent = 0;
    const auto give_up = io::Reactor::now() + testing::kWaitMax;
    while (!trickle.closed && io::Reactor::now() < give_up) {
      if (trickled < 200) trickled += trickle.try_send("t");
      if (sent < 200) sent += steady.try_send(std::string(40, 's'));
      testing::run_for(*f.reactor, 50ms);
      trickle.poll();
    }
    REQUIRE(trickle.closed);
    CHECK(trickled < 200);
    CHECK(trickle.received.starts_with("HTTP/1.1 408 Request Timeout\r\n"));
    REQUIRE(steady.wait_for(*f.reactor, ends_with("POST /s " + std::string(200, 's'))));
    CHECK(f.handler.aborted == 1);
    CHECK(f.server->stats().timeouts == 1);
  }

  TEST_CASE("http::Server: empty lines between requests do not keep an idle connection") {
    ServerOptions o;
    o.idle_timeout_ms = 300;
    ServerFixture f(o);
    RawClient c(f.port());
    c.send("GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(c.wait_for(*f.reactor, ends_with("GET /x ")));
    const auto served = io::Reactor::now();
    const auto give_up = served + 5s;
    while (!c.closed && io::Reactor::now() < give_up) {
      c.try_send("\r\n");
      testing::run_for(*f.reactor, 50ms);
      c.poll();
    }
    CHECK(c.closed);
    CHECK(io::Reactor::now() - served < 3s);
    CHECK(f.server->stats().timeouts == 1);
  }

  TEST_CASE("http::Server: connections beyond connections_max get 503 and close") {
    ServerOptions o;
    o.connections_max = 2;
    ServerFixture f(o);
    auto a = std::make_unique<RawClient>(f.port());
    RawClient b(f.port());
    a->send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    b.send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(a->wait_for(*f.reactor, ends_with("GET /a ")));
    REQUIRE(b.wait_for(*f.reactor, ends_with("GET /b ")));
    RawClient third(f.port());
    REQUIRE(third.wait_closed(*f.reactor));
    CHECK(third.received.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
    CHECK(f.server->stats().connections_rejected == 1);
    a.reset();  // frees a slot
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.server->connection_count() == 1; }));
    RawClient fourth(f.port());
    fourth.send("GET /d HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(fourth.wait_for(*f.reactor, ends_with("GET /d ")));
  }

  TEST_CASE("http::Server: one address holds at most connections_per_peer_max connections") {
    ServerOptions o;
    o.connections_per_peer_max = 2;
    ServerFixture f(o);
    auto a = std::make_unique<RawClient>(f.port());
    RawClient b(f.port());
    a->send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    b.send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(a->wait_for(*f.reactor, ends_with("GET /a ")));
    REQUIRE(b.wait_for(*f.reactor, ends_with("GET /b ")));
    RawClient third(f.port());
    REQUIRE(third.wait_closed(*f.reactor));
    CHECK(third.received.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
    CHECK(third.received.ends_with("\r\n\r\ntoo many connections from this address\n"));
    // Another loopback address is the same peer: 127.0.0.0/8 cannot be walked to get more.
    RawClient other_source(f.port(), "127.0.0.2");
    REQUIRE(other_source.wait_closed(*f.reactor));
    CHECK(other_source.received.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
    CHECK(f.server->stats().connections_rejected_per_peer == 2);
    CHECK(f.server->stats().connections_rejected == 0);  // the global limit was not reached
    CHECK(f.server->connection_count() == 2);
    REQUIRE(f.server->peers().peers() == 1);
    a.reset();  // frees a share of this address
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.server->connection_count() == 1; }));
    RawClient fourth(f.port(), "127.0.0.3");
    fourth.send("GET /d HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(fourth.wait_for(*f.reactor, ends_with("GET /d ")));
    CHECK_FALSE(b.closed);
  }

  TEST_CASE("http::Server: a connection refused by connections_max uses no share of its peer") {
    ServerOptions o;
    o.connections_max = 2;
    o.connections_per_peer_max = 2;
    ServerFixture f(o);
    auto a = std::make_unique<RawClient>(f.port());
    RawClient b(f.port());
    a->send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    b.send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(a->wait_for(*f.reactor, ends_with("GET /a ")));
    REQUIRE(b.wait_for(*f.reactor, ends_with("GET /b ")));
    for (int i = 0; i < 3; ++i) {
      RawClient refused(f.port());
      REQUIRE(refused.wait_closed(*f.reactor));
      CHECK(refused.received.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
    }
    CHECK(f.server->stats().connections_rejected == 3);
    a.reset();
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.server->connection_count() == 1; }));
    // The address holds one connection (b), so it may open one more.
    RawClient c(f.port());
    c.send("GET /c HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(c.wait_for(*f.reactor, ends_with("GET /c ")));
    CHECK(f.server->stats().connections_rejected_per_peer == 0);
  }

  TEST_CASE("http::Server: a connection reset before it was accepted is closed and not counted") {
    ServerOptions o;
    o.connections_per_peer_max = 2;
    ServerFixture f(o);
    // The reactor does not turn while these connect and reset, so they wait in the listen
    // queue and are accepted already reset (the kernel keeps them queued).
    for (int i = 0; i < 3; ++i) {
      RawClient gone(f.port());
      gone.send("GET /gone HTTP/1.1\r\nHost: x\r\n\r\n");
      gone.reset();
    }
    REQUIRE(testing::run_until(*f.reactor, [&] {
      const ServerStats& s = f.server->stats();
      return s.connections_gone_before_accept + s.connections_accepted == 3 &&
             f.server->connection_count() == 0;
    }));
    MESSAGE("gone before accept: " << f.server->stats().connections_gone_before_accept
                                   << ", accepted then reset: "
                                   << f.server->stats().connections_accepted);
    CHECK(f.server->peers().peers() == 0);
    CHECK(f.handler.ended.empty());
    // The address's whole share is still there.
    RawClient a(f.port());
    RawClient b(f.port());
    a.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    b.send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(a.wait_for(*f.reactor, ends_with("GET /a ")));
    REQUIRE(b.wait_for(*f.reactor, ends_with("GET /b ")));
    CHECK(f.server->stats().connections_rejected_per_peer == 0);
  }

  TEST_CASE("http::Server: every way a connection ends gives its peer's share back") {
    ServerOptions o;
    o.connections_per_peer_max = 3;
    o.header_timeout_ms = 200;
    ServerFixture f(o);
    {
      RawClient bad(f.port());     // 400, then the lingering close
      RawClient silent(f.port());  // header timeout
      RawClient quits(f.port());   // orderly close by the client
      bad.send("GET / HTTP/1.1\r\nHost: a b\r\n\r\n");
      quits.send("GET /q HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      REQUIRE(bad.wait_closed(*f.reactor));
      REQUIRE(silent.wait_closed(*f.reactor));
      REQUIRE(quits.wait_closed(*f.reactor));
    }
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.server->connection_count() == 0; }));
    CHECK(f.server->peers().peers() == 0);
    RawClient a(f.port());
    RawClient b(f.port());
    RawClient c(f.port());
    for (RawClient* client : {&a, &b, &c}) client->send("GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
    for (RawClient* client : {&a, &b, &c}) {
      REQUIRE(client->wait_for(*f.reactor, ends_with("GET /x ")));
    }
    CHECK(f.server->stats().connections_rejected_per_peer == 0);
  }

  TEST_CASE("http::Server: connections_per_peer_max 0 is refused at start") {
    std::unique_ptr<io::Reactor> reactor = testing::make_reactor();
    testing::TestHandler handler;
    ServerOptions o;
    o.connections_per_peer_max = 0;
    const auto s = Server::start(*reactor, handler, o);
    CHECK(s.status().code() == Code::kInvalidArgument);
    reactor->shutdown();
  }

  TEST_CASE("http::Server: an upload in bursts above the minimum rate is served") {
    // Each burst is under the minimum for a window but they come often enough to be above the
    // rate on average: 900 bytes every 400 ms against 1000 bytes per 500 ms (12.5% above).
    ServerOptions o;
    o.body_rate_window_ms = 500;
    o.body_rate_min_bytes = 1000;
    ServerFixture f(o);
    constexpr int kBursts = 10;
    constexpr std::size_t kBurstBytes = 900;
    RawClient c(f.port());
    c.send("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: " +
           std::to_string(kBursts * kBurstBytes) + "\r\n\r\n");
    const auto start = io::Reactor::now();
    std::string body;
    for (int i = 0; i < kBursts && !c.closed; ++i) {
      // On a schedule, so one late turn of this loop does not delay every later burst.
      testing::run_until(*f.reactor, [&] { return io::Reactor::now() >= start + i * 400ms; });
      const std::string burst(kBurstBytes, static_cast<char>('a' + i));
      c.send(burst);
      body += burst;
      c.poll();
    }
    REQUIRE(c.wait_for(*f.reactor, ends_with("POST /up " + body)));
    CHECK(c.received.starts_with("HTTP/1.1 200 OK\r\n"));
    CHECK(f.server->stats().timeouts == 0);
    CHECK(f.handler.aborted == 0);
  }

  TEST_CASE("http::Server: time the handler keeps a body paused does not count against its rate") {
    ServerOptions o;
    o.body_rate_window_ms = 500;
    o.body_rate_min_bytes = 64;
    ServerFixture f(o);
    RawClient c(f.port());
    c.send("POST /pause HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n0123456789");
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.handler.paused.size() == 1; }));
    testing::run_for(*f.reactor, 1500ms);  // paused for three windows: the client waits
    f.handler.paused[0]->resume_body();
    std::size_t resumed = 1;
    // The client takes a moment to send the rest (sweeps run meanwhile, the body being read).
    testing::run_for(*f.reactor, 300ms);
    REQUIRE(c.poll());  // still open: no 408 while the rest is on its way
    c.send("abcdefghij");
    REQUIRE(c.wait_for(*f.reactor, [&](const std::string& s) {
      while (resumed < f.handler.paused.size()) f.handler.paused[resumed++]->resume_body();
      return s.ends_with("POST /pause 0123456789abcdefghij");
    }));
    CHECK(f.server->stats().timeouts == 0);
  }

  TEST_CASE("http::Server: a trickled body gets 408 even when the handler pauses each piece") {
    // A handler that pauses the body for a moment at every piece (waiting on a slower sink)
    // must not give a trickle fresh windows.
    ServerOptions o;
    o.body_rate_window_ms = 300;
    o.body_rate_min_bytes = 64;
    ServerFixture f(o);
    RawClient trickle(f.port());
    trickle.send("POST /pause HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n");
    std::size_t trickled = 0;
    std::size_t resumed = 0;
    const auto give_up = io::Reactor::now() + 5s;  // 200 bytes would take 10 s
    while (!trickle.closed && io::Reactor::now() < give_up) {
      trickled += trickle.try_send("t");
      testing::run_for(*f.reactor, 30ms);  // the piece arrives and stays paused meanwhile
      while (resumed < f.handler.paused.size()) f.handler.paused[resumed++]->resume_body();
      testing::run_for(*f.reactor, 20ms);
      trickle.poll();
    }
    REQUIRE(trickle.closed);
    CHECK(trickled < 200);
    CHECK(trickle.received.starts_with("HTTP/1.1 408 Request Timeout\r\n"));
    CHECK(f.server->stats().timeouts == 1);
  }

  TEST_CASE("http::Server: an absolute-form target is routed by its path if it names the Host") {
    ServerFixture f;
    RawClient good(f.port());
    good.send("GET http://a.example:8080/x?y=1 HTTP/1.1\r\nHost: A.example:8080\r\n\r\n");
    REQUIRE(good.wait_for(*f.reactor, ends_with("GET /x?y=1 ")));
    CHECK_FALSE(good.closed);
    // Another authority than Host: refused, and the request pipelined behind it is not served.
    RawClient bad(f.port());
    bad.send(
        "GET http://admin.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n"
        "GET /after HTTP/1.1\r\nHost: a.example\r\n\r\n");
    REQUIRE(bad.wait_closed(*f.reactor));
    CHECK(bad.received.starts_with("HTTP/1.1 400 Bad Request\r\n"));
    CHECK(count_of(bad.received, "HTTP/1.1 ") == 1);
    CHECK(f.handler.heads == std::vector<std::string>{"GET /x?y=1"});
  }

  TEST_CASE("http::Server: Expect 100-continue gets 100 before the body, or a final answer") {
    ServerFixture f;
    RawClient c(f.port());
    c.send("PUT /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    REQUIRE(c.wait_for(*f.reactor, ends_with("HTTP/1.1 100 Continue\r\n\r\n")));
    CHECK(f.handler.ended.empty());
    c.send("hello");
    REQUIRE(c.wait_for(*f.reactor, ends_with("PUT /e hello")));
    CHECK(c.received.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"));

    // Answered from the head: no 100, and the connection closes since the client may never
    // send the body it announced.
    RawClient r(f.port());
    r.send("PUT /reject HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    REQUIRE(r.wait_closed(*f.reactor));
    CHECK(r.received.starts_with("HTTP/1.1 403 Forbidden\r\n"));
    CHECK(r.received.find("100 Continue") == std::string::npos);
    CHECK(r.received.find("Connection: close\r\n") != std::string::npos);
  }

  TEST_CASE("http::Server: chunked responses, HEAD, and Connection: close") {
    ServerFixture f;
    RawClient c(f.port());
    c.send("GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(c.wait_for(*f.reactor, ends_with("0\r\n\r\n")));
    CHECK(c.received.find("Transfer-Encoding: chunked\r\n") != std::string::npos);
    CHECK(c.received.ends_with("\r\n\r\n6\r\nfirst,\r\n7\r\nsecond,\r\n5\r\nthird\r\n0\r\n\r\n"));
    c.received.clear();
    c.send("HEAD /head-len HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(c.wait_for(*f.reactor, ends_with("\r\n\r\n")));
    CHECK(c.received.find("Content-Length: 5\r\n") != std::string::npos);
    c.received.clear();
    c.send("GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    REQUIRE(c.wait_closed(*f.reactor));
    CHECK(c.received.find("Connection: close\r\n") != std::string::npos);
    CHECK(c.received.ends_with("GET /last "));  // the HEAD response carried no body
  }

  TEST_CASE("http::Server: HTTP/1.0 clients get keep-alive only when they ask for it") {
    ServerFixture f;
    RawClient ka(f.port());
    ka.send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    REQUIRE(ka.wait_for(*f.reactor, ends_with("GET /a ")));
    CHECK(ka.received.find("Connection: keep-alive\r\n") != std::string::npos);
    ka.send("GET /b HTTP/1.0\r\n\r\n");
    REQUIRE(ka.wait_closed(*f.reactor));
    CHECK(ka.received.ends_with("GET /b "));
    CHECK(count_of(ka.received, "Connection: close\r\n") == 1);
  }

  TEST_CASE("http::Server: with serve_half_closed a half-closed client still gets the answer") {
    ServerOptions o;
    o.serve_half_closed = true;
    ServerFixture f(o);
    RawClient c(f.port());
    c.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    c.shutdown_write();
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.handler.held.size() == 1; }));
    testing::run_for(*f.reactor, 50ms);
    f.handler.held[0]->respond(200, "late");
    REQUIRE(c.wait_closed(*f.reactor));
    CHECK(c.received.ends_with("late"));
  }

  TEST_CASE("http::Server: a body paused on its last byte ends when resumed") {
    // The progress timeout would end a request that is never completed; keep it short so a
    // request stuck after resume_body() shows as a closed connection, not a slow test.
    ServerOptions o;
    o.progress_timeout_ms = 3000;
    ServerFixture f(o);
    RawClient c(f.port());
    c.send("POST /pause HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.handler.paused.size() == 1; }));
    testing::run_for(*f.reactor, 50ms);
    CHECK(f.handler.ended.empty());
    // The client sends nothing more: it waits for the answer.
    f.handler.paused[0]->resume_body();
    REQUIRE(c.wait_for(*f.reactor, ends_with("POST /pause abc")));
    CHECK_FALSE(c.closed);
    CHECK(f.handler.ended.size() == 1);
    CHECK(f.handler.paused.size() == 1);  // the whole body came in one piece
  }

  TEST_CASE("http::Server: a client that closes while its answer is held aborts the exchange") {
    ServerFixture f;
    {
      RawClient c(f.port());
      c.send("GET /hang HTTP/1.1\r\nHost: x\r\n\r\n");
      REQUIRE(testing::run_until(*f.reactor, [&] { return f.handler.held.size() == 1; }));
    }  // closed (FIN) without reading: the process that asked is gone
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.handler.aborted == 1; }));
    CHECK(f.handler.held.empty());
    CHECK(f.handler.aborted_targets == std::vector<std::string>{"/hang"});
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.server->connection_count() == 0; }));
    CHECK(f.server->stats().exchanges_aborted == 1);
    testing::run_for(*f.reactor, 50ms);
    CHECK(f.handler.aborted == 1);  // once
  }

  TEST_CASE("http::Server: a client that resets while its answer is held aborts the exchange") {
    ServerFixture f;
    RawClient c(f.port());
    c.send("POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab");
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.handler.held.size() == 1; }));
    c.reset();
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.handler.aborted == 1; }));
    CHECK(f.handler.held.empty());
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.server->connection_count() == 0; }));
    testing::run_for(*f.reactor, 50ms);
    CHECK(f.handler.aborted == 1);
  }

  TEST_CASE("http::Server: the abort of a held exchange does not touch the other connections") {
    ServerFixture f;
    RawClient stays(f.port());
    stays.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    {
      RawClient goes(f.port());
      goes.send("GET /hang HTTP/1.1\r\nHost: x\r\n\r\n");
      REQUIRE(testing::run_until(*f.reactor, [&] { return f.handler.held.size() == 2; }));
    }
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.handler.aborted == 1; }));
    REQUIRE(f.handler.held.size() == 1);
    CHECK(f.handler.held[0]->request().target == "/slow");
    f.handler.held[0]->respond(200, "still here");
    REQUIRE(stays.wait_for(*f.reactor, ends_with("still here")));
    CHECK_FALSE(stays.closed);
  }

  TEST_CASE("http::Server: an answer written from on_aborted is dropped, not sent") {
    ServerFixture f;
    RawClient c(f.port());
    // The chunked body goes bad after the head: the server answers 400 and aborts the exchange,
    // whose handler answers 500 from on_aborted. Only the 400 may reach the client.
    c.send("POST /respond-on-abort HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.handler.heads.size() == 1; }));
    c.send("zz\r\n");
    REQUIRE(c.wait_closed(*f.reactor));
    CHECK(f.handler.aborted == 1);
    CHECK(c.received.starts_with("HTTP/1.1 400 "));
    CHECK(count_of(c.received, "HTTP/1.1 ") == 1);
    CHECK(c.received.find("answered after the abort") == std::string::npos);
  }

  TEST_CASE("http::Server: an exchange the handler finished is never aborted") {
    ServerFixture f;
    RawClient c(f.port());
    c.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.handler.held.size() == 1; }));
    f.handler.held[0]->respond(200, "done");
    f.handler.held.clear();
    c.reset();  // in the same turn as the answer: the server may see the reset before sending
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.server->connection_count() == 0; }));
    CHECK(f.handler.aborted == 0);
  }

  TEST_CASE("http::Server: on_exchange_end reports every exchange once, an aborted one as 0") {
    std::vector<std::pair<std::string, int>> ended;
    ServerOptions o;
    o.on_exchange_end = [&](const Request& rq, int status, io::Duration elapsed) {
      CHECK(elapsed >= io::Duration::zero());
      ended.emplace_back(rq.target, status);
    };
    ServerFixture f(o);
    RawClient c(f.port());
    c.send("GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /reject HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(c.wait_for(*f.reactor, responses(2)));
    {
      RawClient gone(f.port());
      gone.send("GET /hang HTTP/1.1\r\nHost: x\r\n\r\n");
      REQUIRE(testing::run_until(*f.reactor, [&] { return f.handler.held.size() == 1; }));
    }
    REQUIRE(testing::run_until(*f.reactor, [&] { return ended.size() == 3; }));
    testing::run_for(*f.reactor, 50ms);
    const std::vector<std::pair<std::string, int>> want = {
        {"/one", 200}, {"/reject", 403}, {"/hang", 0}};
    CHECK(ended == want);
  }

  TEST_CASE("http::Server: close() aborts open exchanges") {
    ServerFixture f;
    RawClient c(f.port());
    c.send("GET /hang HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.handler.held.size() == 1; }));
    f.server->close();
    REQUIRE(testing::run_until(*f.reactor, [&] { return f.server->closed(); }));
    CHECK(f.handler.aborted == 1);
    CHECK(c.wait_closed(*f.reactor));
  }
}

}  // namespace raftd::http
