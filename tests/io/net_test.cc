// Sockets through the reactor: accept, multishot recv with provided buffers, send, connect,
// cancellation, buffer exhaustion and CQ overflow.
#include <doctest/doctest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "io_test_util.h"
#include "raftd/io/reactor.h"
#include "raftd/io/socket.h"

namespace raftd::io {
namespace {

using testing::make_reactor;
using testing::run_until;
using testing::small_options;

// Declared after the objects that own ops: its destructor runs first and ends every op.
struct ShutdownGuard {
  Reactor& reactor;
  ~ShutdownGuard() { reactor.shutdown(); }
};

// Server side of an echo connection: everything received is sent back.
class EchoConn {
 public:
  EchoConn(Reactor& r, int fd) : r_(r), fd_(fd) {
    recv_.set_callback([this](int32_t res, std::string_view d) { on_recv(res, d); });
    send_.set_callback([this](int32_t res) { on_sent(res); });
    r_.recv(recv_, fd_);
  }
  ~EchoConn() { close_fd(fd_); }
  bool finished() const { return eof_ && !send_.active(); }

 private:
  void on_recv(int32_t res, std::string_view data) {
    if (res <= 0) {
      eof_ = true;
      return;
    }
    pending_.append(data);
    maybe_send();
  }
  void maybe_send() {
    if (send_.active() || pending_.empty()) return;
    inflight_.swap(pending_);
    pending_.clear();
    r_.send(send_, fd_, inflight_.data(), inflight_.size());
  }
  void on_sent(int32_t res) {
    CHECK(res == static_cast<int32_t>(inflight_.size()));
    inflight_.clear();
    maybe_send();
  }
  Reactor& r_;
  int fd_;
  RecvOp recv_;
  SendOp send_;
  std::string pending_, inflight_;
  bool eof_ = false;
};

class EchoServer {
 public:
  explicit EchoServer(Reactor& r) : r_(r) {
    auto l = listen_tcp("127.0.0.1", 0);
    REQUIRE(l.is_ok());
    listener_ = l.value();
    accept_.set_callback([this](int32_t fd) {
      if (fd < 0) {  // -ECANCELED at shutdown
        CHECK(fd == -ECANCELED);
        return;
      }
      conns_.push_back(std::make_unique<EchoConn>(r_, fd));
    });
    r_.accept(accept_, listener_.fd);
  }
  ~EchoServer() { close_fd(listener_.fd); }
  uint16_t port() const { return listener_.port; }
  size_t connections() const { return conns_.size(); }

 private:
  Reactor& r_;
  Listener listener_;
  AcceptOp accept_;
  std::vector<std::unique_ptr<EchoConn>> conns_;
};

// Client: connect, send `out`, read until the same number of bytes came back.
class EchoClient {
 public:
  EchoClient(Reactor& r, uint16_t port, std::string out) : r_(r), out_(std::move(out)) {
    auto fd = make_tcp_socket();
    REQUIRE(fd.is_ok());
    fd_ = fd.value();
    auto addr = make_ipv4_address("127.0.0.1", port);
    REQUIRE(addr.is_ok());
    connect_.set_callback([this](int32_t res) { on_connected(res); });
    send_.set_callback([this](int32_t res) { sent_ = res; });
    recv_.set_callback([this](int32_t res, std::string_view d) {
      if (res > 0) got_.append(d);
      if (got_.size() >= out_.size() && recv_.active()) r_.cancel(recv_);
    });
    r_.connect(connect_, fd_, reinterpret_cast<const sockaddr*>(&addr.value()),
               sizeof(sockaddr_in));
  }
  ~EchoClient() { close_fd(fd_); }
  bool done() const { return got_.size() >= out_.size() && !recv_.active(); }
  bool echoed() const { return got_ == out_ && sent_ == static_cast<int32_t>(out_.size()); }

 private:
  void on_connected(int32_t res) {
    CHECK(res == 0);
    if (res != 0) return;
    r_.recv(recv_, fd_);
    r_.send(send_, fd_, out_.data(), out_.size());
  }
  Reactor& r_;
  int fd_ = -1;
  std::string out_, got_;
  int32_t sent_ = -1;
  ConnectOp connect_;
  SendOp send_;
  RecvOp recv_;
};

std::string pattern(size_t n, size_t seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + seed * 13) % 26);
  return s;
}

TEST_CASE("io::Reactor: loopback echo through accept, connect, recv and send") {
  auto r = make_reactor();
  EchoServer server(*r);
  EchoClient client(*r, server.port(), pattern(100'000, 1));
  ShutdownGuard guard{*r};
  REQUIRE(run_until(*r, [&] { return client.done(); }));
  CHECK(client.echoed());
  CHECK(server.connections() == 1);
}

TEST_CASE("io::Reactor: 200 concurrent connections echo their own data") {
  constexpr size_t kClients = 200;
  ReactorOptions o = small_options();
  o.recv_buffer_count = 256;
  auto r = make_reactor(o);
  EchoServer server(*r);
  std::vector<std::unique_ptr<EchoClient>> clients;
  for (size_t i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<EchoClient>(*r, server.port(), pattern(20'000 + i, i)));
  }
  ShutdownGuard guard{*r};
  REQUIRE(run_until(*r, [&] {
    for (auto& c : clients) {
      if (!c->done()) return false;
    }
    return true;
  }));
  for (auto& c : clients) CHECK(c->echoed());
  CHECK(server.connections() == kClients);
  // 400 sockets started ops in one turn through a 64-entry SQ.
  CHECK(r->stats().sq_full_queued > 0);
}

TEST_CASE(
    "io::Reactor: cancelling a pending recv and a pending accept completes them with ECANCELED") {
  auto r = make_reactor();
  int sv[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  auto l = listen_tcp("127.0.0.1", 0);
  REQUIRE(l.is_ok());
  int32_t recv_res = 1, accept_res = 1;
  int recv_calls = 0, accept_calls = 0;
  RecvOp recv([&](int32_t res, std::string_view) {
    recv_res = res;
    ++recv_calls;
  });
  AcceptOp accept([&](int32_t res) {
    accept_res = res;
    ++accept_calls;
  });
  ShutdownGuard guard{*r};
  r->recv(recv, sv[0]);
  r->accept(accept, l.value().fd);
  r->run_once(std::chrono::milliseconds(0));  // both are now in the kernel, waiting
  CHECK(recv.active());
  CHECK(accept.active());
  r->cancel(recv);
  r->cancel(accept);
  CHECK(recv.active());  // the op ends only with its final callback
  REQUIRE(run_until(*r, [&] { return !recv.active() && !accept.active(); }));
  CHECK(recv_res == -ECANCELED);
  CHECK(accept_res == -ECANCELED);
  CHECK(recv_calls == 1);
  CHECK(accept_calls == 1);
  CHECK(r->active_ops() == 0);
  close_fd(sv[0]);
  close_fd(sv[1]);
  close_fd(l.value().fd);
}

TEST_CASE("io::Reactor: recv re-arms after the buffer ring runs dry (ENOBUFS)") {
  ReactorOptions o = small_options();
  o.recv_buffer_count = 2;
  o.recv_buffer_bytes = 64;
  auto r = make_reactor(o);
  int sv[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  const std::string sent = pattern(4096, 3);
  REQUIRE(::write(sv[1], sent.data(), sent.size()) == static_cast<ssize_t>(sent.size()));
  std::string got;
  int32_t final_res = 1;
  RecvOp recv([&](int32_t res, std::string_view d) {
    if (res <= 0) {  // the final callback
      final_res = res;
      return;
    }
    CHECK(d.size() <= 64);
    got.append(d);
  });
  ShutdownGuard guard{*r};
  r->recv(recv, sv[0]);
  REQUIRE(run_until(*r, [&] { return got.size() == sent.size(); }));
  CHECK(got == sent);
  CHECK(r->stats().enobufs > 0);
  CHECK(r->stats().multishot_rearms > 0);
  CHECK(recv.active());  // still armed for more data
  CHECK(r->recv_buffers_in_ring() == 2);
  close_fd(sv[1]);  // EOF ends the recv
  REQUIRE(run_until(*r, [&] { return !recv.active(); }));
  CHECK(final_res == 0);
  close_fd(sv[0]);
}

TEST_CASE("io::Reactor: recv re-arms after a CQ overflow ends it") {
  ReactorOptions o = small_options();
  o.sq_entries = 2;  // CQ of 8 entries
  o.recv_buffer_count = 64;
  o.recv_buffer_bytes = 64;
  auto r = make_reactor(o);
  REQUIRE(r->cq_entries() == 8);
  int sv[2];
  // SEQPACKET keeps message boundaries: one CQE per message, 40 CQEs for one recv.
  REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
  constexpr int kMessages = 40;
  std::string expected;
  for (int i = 0; i < kMessages; ++i) {
    const std::string m = "msg" + std::to_string(100 + i);
    expected += m;
    REQUIRE(::send(sv[1], m.data(), m.size(), 0) == static_cast<ssize_t>(m.size()));
  }
  std::string got;
  int messages = 0;
  RecvOp recv([&](int32_t res, std::string_view d) {
    if (res <= 0) return;  // -ECANCELED at shutdown
    got.append(d);
    ++messages;
  });
  ShutdownGuard guard{*r};
  r->recv(recv, sv[0]);
  REQUIRE(run_until(*r, [&] { return messages == kMessages; }));
  CHECK(got == expected);
  CHECK(r->stats().multishot_rearms > 0);
  CHECK(recv.active());
  close_fd(sv[0]);
  close_fd(sv[1]);
}

TEST_CASE("io::SendOp: a large send completes whole through short sends; sendv joins pieces") {
  auto r = make_reactor();
  int sv[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  const int small = 4096;
  REQUIRE(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
  const std::string big = pattern(4 << 20, 5);
  const std::string a = "head:", b = "body", c = ":tail";
  std::string received;
  std::thread reader([&] {
    char buf[65536];
    while (received.size() < big.size() + a.size() + b.size() + c.size()) {
      const ssize_t n = ::recv(sv[1], buf, sizeof buf, 0);
      if (n <= 0) break;
      received.append(buf, static_cast<size_t>(n));
    }
  });
  int32_t big_res = 0, v_res = 0;
  SendOp send([&](int32_t res) { big_res = res; });
  SendOp sendv([&](int32_t res) { v_res = res; });
  ShutdownGuard guard{*r};
  r->send(send, sv[0], big.data(), big.size());
  REQUIRE(run_until(*r, [&] { return !send.active(); }));
  CHECK(big_res == static_cast<int32_t>(big.size()));
  CHECK(send.bytes_done() == big.size());
  iovec iov[3] = {{const_cast<char*>(a.data()), a.size()},
                  {const_cast<char*>(b.data()), b.size()},
                  {const_cast<char*>(c.data()), c.size()}};
  r->sendv(sendv, sv[0], iov, 3);
  REQUIRE(run_until(*r, [&] { return !sendv.active(); }));
  CHECK(v_res == static_cast<int32_t>(a.size() + b.size() + c.size()));
  reader.join();
  CHECK(received == big + a + b + c);
  close_fd(sv[0]);
  close_fd(sv[1]);
}

TEST_CASE("io::SendOp: sending to a closed peer reports the error") {
  auto r = make_reactor();
  int sv[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  close_fd(sv[1]);
  int32_t res = 0;
  SendOp send([&](int32_t x) { res = x; });
  ShutdownGuard guard{*r};
  const std::string data = "x";
  r->send(send, sv[0], data.data(), data.size());  // MSG_NOSIGNAL: no SIGPIPE
  REQUIRE(run_until(*r, [&] { return !send.active(); }));
  CHECK(res == -EPIPE);
  close_fd(sv[0]);
}

TEST_CASE("io::ConnectOp: a refused connection reports ECONNREFUSED") {
  auto r = make_reactor();
  // A port that was just free: bind, note it, close, connect.
  auto l = listen_tcp("127.0.0.1", 0);
  REQUIRE(l.is_ok());
  const uint16_t port = l.value().port;
  close_fd(l.value().fd);
  auto fd = make_tcp_socket();
  REQUIRE(fd.is_ok());
  auto addr = make_ipv4_address("127.0.0.1", port);
  REQUIRE(addr.is_ok());
  int32_t res = 0;
  ConnectOp connect([&](int32_t x) { res = x; });
  ShutdownGuard guard{*r};
  r->connect(connect, fd.value(), reinterpret_cast<const sockaddr*>(&addr.value()),
             sizeof(sockaddr_in));
  REQUIRE(run_until(*r, [&] { return !connect.active(); }));
  CHECK(res == -ECONNREFUSED);
  close_fd(fd.value());
}

TEST_CASE("io::socket: helpers validate input and report the bound port") {
  CHECK(make_ipv4_address("not-an-ip", 1).status().code() == Code::kInvalidArgument);
  auto l = listen_tcp("127.0.0.1", 0);
  REQUIRE(l.is_ok());
  CHECK(l.value().port != 0);
  // The port is taken now: a second listener without SO_REUSEPORT must fail with EADDRINUSE.
  auto again = listen_tcp("127.0.0.1", l.value().port);
  CHECK_FALSE(again.is_ok());
  CHECK(again.status().message().find("bind 127.0.0.1:") != std::string::npos);
  close_fd(l.value().fd);
}

}  // namespace
}  // namespace raftd::io
