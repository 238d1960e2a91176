#include "raftd/http/peer_limit.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "raftd/base/assert.h"

namespace raftd::http {

namespace {

constexpr std::array<std::uint8_t, 12> kMappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

PeerKey from_ipv4(const std::uint8_t* a) {
  PeerKey key;
  std::copy(kMappedPrefix.begin(), kMappedPrefix.end(), key.bytes.begin());
  if (a[0] == 127) {
    key.bytes[12] = 127;  // 127.0.0.0/8: every loopback address is the same peer
  } else {
    std::copy(a, a + 4, key.bytes.begin() + 12);
  }
  return key;
}

bool is_mapped(const PeerKey& key) {
  return std::equal(kMappedPrefix.begin(), kMappedPrefix.end(), key.bytes.begin());
}

}  // namespace

std::optional<PeerKey> peer_key(const sockaddr* addr, socklen_t len) {
  if (addr == nullptr) return std::nullopt;
  if (addr->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    sockaddr_in in;
    std::memcpy(&in, addr, sizeof in);
    std::uint8_t a[4];
    std::memcpy(a, &in.sin_addr.s_addr, 4);  // network order: a[0] is the first octet
    return from_ipv4(a);
  }
  if (addr->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    sockaddr_in6 in6;
    std::memcpy(&in6, addr, sizeof in6);
    PeerKey key;
    std::memcpy(key.bytes.data(), &in6.sin6_addr, 16);
    if (is_mapped(key)) return from_ipv4(key.bytes.data() + 12);
    if (IN6_IS_ADDR_LOOPBACK(&in6.sin6_addr)) {
      return from_ipv4(std::array<std::uint8_t, 4>{127, 0, 0, 1}.data());
    }
    std::fill(key.bytes.begin() + 8, key.bytes.end(), 0);  // the /64
    return key;
  }
  return std::nullopt;
}

std::optional<PeerKey> peer_key_of_socket(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return std::nullopt;
  return peer_key(reinterpret_cast<const sockaddr*>(&ss), len);
}

std::string PeerKey::to_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  if (is_mapped(*this)) {
    ::inet_ntop(AF_INET, bytes.data() + 12, text, sizeof text);
    return bytes[12] == 127 ? "127.0.0.0/8" : std::string(text);
  }
  ::inet_ntop(AF_INET6, bytes.data(), text, sizeof text);
  return std::string(text) + "/64";
}

bool PeerTable::add(const PeerKey& key, std::size_t max) {
  std::size_t& n = counts_[key];
  if (n >= max) {
    if (n == 0) counts_.erase(key);
    return false;
  }
  ++n;
  return true;
}

void PeerTable::remove(const PeerKey& key) {
  const auto it = counts_.find(key);
  RAFTD_ASSERT(it != counts_.end() && it->second > 0, "peer connection count would go negative");
  if (--it->second == 0) counts_.erase(it);
}

std::size_t PeerTable::count(const PeerKey& key) const {
  const auto it = counts_.find(key);
  return it == counts_.end() ? 0 : it->second;
}

}  // namespace raftd::http
