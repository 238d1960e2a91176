// Per-peer connection accounting for the server (ServerOptions::connections_per_peer_max): which
// address an accepted connection counts against, and how many connections each address holds.
//
// The key is chosen so that a client cannot dodge the limit by changing its source address
// within what one host holds:
//   - IPv4 a.b.c.d and the IPv4-mapped IPv6 ::ffff:a.b.c.d are the same key (a dual-stack
//     listener sees IPv4 clients in the mapped form);
//   - all of loopback, 127.0.0.0/8 (any of which a local process may bind) and ::1, is one key;
//   - any other IPv6 address counts by its /64 prefix (RFC 6177: one host is usually given a
//     whole /64, and picks addresses inside it at will).
//
// Threading: plain values; a PeerTable belongs to its server's reactor thread.
#pragma once

#include <sys/socket.h>

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace raftd::http {

// An address as an IPv6 address (IPv4 in the mapped form), reduced as described above.
struct PeerKey {
  std::array<std::uint8_t, 16> bytes{};
  auto operator<=>(const PeerKey&) const = default;
  // For logs: "127.0.0.0/8", "10.1.2.3", "2001:db8:0:1::/64".
  std::string to_string() const;
};

// The key of a peer address (AF_INET or AF_INET6, as getpeername/accept return it); nullopt for
// another family or a truncated address.
std::optional<PeerKey> peer_key(const sockaddr* addr, socklen_t len);

// The key of a connected socket's peer; nullopt when the socket has no peer any more (a client
// that reset the connection while it waited to be accepted: getpeername gives ENOTCONN).
std::optional<PeerKey> peer_key_of_socket(int fd);

// Connections held per key. Every add() that returned true must be matched by one remove().
class PeerTable {
 public:
  // Counts one more connection for `key` unless it already holds `max`; false then.
  bool add(const PeerKey& key, std::size_t max);
  void remove(const PeerKey& key);
  std::size_t count(const PeerKey& key) const;
  // Keys holding at least one connection.
  std::size_t peers() const { return counts_.size(); }

 private:
  std::map<PeerKey, std::size_t> counts_;
};

}  // namespace raftd::http
