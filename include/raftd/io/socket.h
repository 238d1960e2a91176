// Socket helpers for the reactor's users: plain syscalls, used at set-up time (listening) or
// before a ConnectOp (creating the socket). Sockets are blocking and close-on-exec: io_uring
// arms its own poll, and O_NONBLOCK would surface -EAGAIN to callers instead.
//
// Errors are Status values carrying the errno text. Threading: any thread.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <string_view>

#include "raftd/base/status.h"

namespace raftd::io {

// Pending-connection queue of listening sockets (the kernel caps it at net.core.somaxconn).
inline constexpr int kListenBacklog = 1024;

struct Listener {
  int fd = -1;        // owned by the caller (close it, after cancelling its AcceptOp)
  uint16_t port = 0;  // the bound port (the real one when 0 was asked for)
};

// IPv4 address from dotted text ("127.0.0.1") and port.
Result<sockaddr_in> make_ipv4_address(std::string_view host, uint16_t port);

// socket + SO_REUSEADDR + TCP_NODELAY (inherited by accepted sockets) + bind + listen.
// port 0 picks a free port, reported in Listener::port.
Result<Listener> listen_tcp(std::string_view host, uint16_t port, int backlog = kListenBacklog);

// A fresh TCP socket with TCP_NODELAY set, ready for Reactor::connect. Caller owns the fd.
Result<int> make_tcp_socket();

// Closes fd if >= 0 (EINTR is not retried: on Linux the fd is gone either way).
void close_fd(int fd);

}  // namespace raftd::io
