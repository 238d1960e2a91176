// Helpers for the HTTP tests: a reactor (skip with 77 when io_uring is unavailable), bounded
// loops, a raw non-blocking TCP client for hand-written bytes, and RSS readings.
#pragma once

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <string>

#include "raftd/io/reactor.h"
#include "raftd/io/socket.h"

namespace raftd::http::testing {

// Generous: the machine is shared by several compilers and test runs at once.
inline constexpr auto kWaitMax = std::chrono::seconds(60);

inline std::unique_ptr<io::Reactor> make_reactor() {
  io::ReactorOptions o;
  o.sq_entries = 256;
  o.recv_buffer_count = 64;
  o.recv_buffer_bytes = 64 * 1024;
  auto r = io::Reactor::create(o);
  if (!r.is_ok()) {
    if (r.status().code() == Code::kUnsupported) {
      std::fprintf(stderr, "SKIP: %s\n", r.status().to_string().c_str());
      std::exit(77);
    }
    FAIL("Reactor::create: " << r.status().to_string());
  }
  return std::move(r).value();
}

inline bool run_until(io::Reactor& r, const std::function<bool()>& pred,
                      std::chrono::milliseconds limit = kWaitMax) {
  const auto give_up = io::Reactor::now() + limit;
  while (!pred() && io::Reactor::now() < give_up) r.run_once(std::chrono::milliseconds(10));
  return pred();
}

// Runs the reactor for a while regardless of conditions.
inline void run_for(io::Reactor& r, std::chrono::milliseconds d) {
  const auto until = io::Reactor::now() + d;
  while (io::Reactor::now() < until) r.run_once(std::chrono::milliseconds(5));
}

// A plain TCP client whose bytes the test writes by hand. Non-blocking reads, so the test thread
// can keep turning the reactor that serves it.
class RawClient {
 public:
  // `source`: the local address to connect from (any of 127.0.0.0/8 is loopback on Linux).
  explicit RawClient(std::uint16_t port, std::string_view source = {}) {
    auto fd = io::make_tcp_socket();
    REQUIRE(fd.is_ok());
    fd_ = fd.value();
    if (!source.empty()) {
      auto local = io::make_ipv4_address(source, 0);
      REQUIRE(local.is_ok());
      REQUIRE(::bind(fd_, reinterpret_cast<const sockaddr*>(&local.value()), sizeof(sockaddr_in)) ==
              0);
    }
    auto addr = io::make_ipv4_address("127.0.0.1", port);
    REQUIRE(addr.is_ok());
    // Loopback connect completes in the kernel's backlog without the server's accept running.
    REQUIRE(::connect(fd_, reinterpret_cast<const sockaddr*>(&addr.value()), sizeof(sockaddr_in)) ==
            0);
  }
  ~RawClient() { io::close_fd(fd_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  void send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      REQUIRE(n > 0);
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }
  // Closes with a reset (SO_LINGER 0) instead of a FIN.
  void reset() {
    const ::linger abort{1, 0};
    REQUIRE(::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &abort, sizeof abort) == 0);
    io::close_fd(fd_);
    fd_ = -1;
    closed = true;
  }
  // Sends what the socket takes without blocking; returns the bytes taken (0 when full, or
  // after the peer closed).
  std::size_t try_send(std::string_view bytes) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    return n > 0 ? static_cast<std::size_t>(n) : 0;
  }

  // Reads whatever is available; returns false once the peer closed (EOF or reset).
  bool poll() {
    char buf[65536];
    for (;;) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) {
        received.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) closed = true;
      return !closed;
    }
  }
  // Turns the reactor until `received` holds `count` complete responses (counted by the
  // status lines) or the peer closed.
  bool wait_for(io::Reactor& r, const std::function<bool(const std::string&)>& pred) {
    return run_until(r,
                     [&] {
                       poll();
                       return pred(received) || closed;
                     }) &&
           pred(received);
  }
  bool wait_closed(io::Reactor& r, std::chrono::milliseconds limit = kWaitMax) {
    return run_until(
        r, [&] { return !poll(); }, limit);
  }

  // Reads (and drops) until the connection ends: 0 for an orderly EOF, the errno of a reset,
  // -1 if it is still open after `limit`. Does not turn any reactor.
  int drain_to_end(std::chrono::milliseconds limit = kWaitMax) {
    const auto give_up = std::chrono::steady_clock::now() + limit;
    char buf[65536];
    while (std::chrono::steady_clock::now() < give_up) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0) return 0;
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return errno;
      if (n < 0) ::usleep(1000);
    }
    return -1;
  }

  std::string received;
  bool closed = false;

 private:
  int fd_ = -1;
};

inline std::size_t count_of(const std::string& s, std::string_view needle) {
  std::size_t n = 0;
  for (std::size_t at = s.find(needle); at != std::string::npos; at = s.find(needle, at + 1)) ++n;
  return n;
}

// Resident set size of this process, from /proc/self/statm.
inline std::size_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  std::size_t pages_total = 0, pages_resident = 0;
  f >> pages_total >> pages_resident;
  return pages_resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace raftd::http::testing
