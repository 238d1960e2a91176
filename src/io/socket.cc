// Socket set-up with plain syscalls; the data path goes through the reactor.
#include "raftd/io/socket.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace raftd::io {

namespace {

Status set_int_option(int fd, int level, int name, const char* what) {
  const int one = 1;
  if (::setsockopt(fd, level, name, &one, sizeof one) != 0) return Status::from_errno(errno, what);
  return Status::ok();
}

}  // namespace

Result<sockaddr_in> make_ipv4_address(std::string_view host, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  const std::string text(host);
  if (::inet_pton(AF_INET, text.c_str(), &sa.sin_addr) != 1) {
    return Status(Code::kInvalidArgument, "not an IPv4 address: '" + text + "'");
  }
  return sa;
}

Result<Listener> listen_tcp(std::string_view host, uint16_t port, int backlog) {
  auto addr = make_ipv4_address(host, port);
  if (!addr.is_ok()) return addr.status();
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::from_errno(errno, "socket");
  const std::string where = std::string(host) + ":" + std::to_string(port);
  Status s = set_int_option(fd, SOL_SOCKET, SO_REUSEADDR, "setsockopt(SO_REUSEADDR)");
  // Accepted sockets inherit TCP_NODELAY from the listener, so no per-connection setsockopt.
  if (s.is_ok()) s = set_int_option(fd, IPPROTO_TCP, TCP_NODELAY, "setsockopt(TCP_NODELAY)");
  if (s.is_ok() &&
      ::bind(fd, reinterpret_cast<const sockaddr*>(&addr.value()), sizeof(sockaddr_in)) != 0) {
    s = Status::from_errno(errno, "bind " + where);
  }
  if (s.is_ok() && ::listen(fd, backlog) != 0) s = Status::from_errno(errno, "listen " + where);
  sockaddr_in bound{};
  socklen_t len = sizeof bound;
  if (s.is_ok() && ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) != 0) {
    s = Status::from_errno(errno, "getsockname");
  }
  if (!s.is_ok()) {
    ::close(fd);
    return s;
  }
  return Listener{fd, ntohs(bound.sin_port)};
}

Result<int> make_tcp_socket() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::from_errno(errno, "socket");
  if (Status s = set_int_option(fd, IPPROTO_TCP, TCP_NODELAY, "setsockopt(TCP_NODELAY)");
      !s.is_ok()) {
    ::close(fd);
    return s;
  }
  return fd;
}

void close_fd(int fd) {
  if (fd >= 0) ::close(fd);
}

}  // namespace raftd::io
