// Per-peer connection accounting: which addresses count as one peer, and the table's counts.
// Addresses are built in memory (no socket), so IPv6 shapes are covered on an IPv4 listener.
#include "raftd/http/peer_limit.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>

#include <string>

namespace raftd::http {
namespace {

PeerKey v4(const char* text) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(40000);
  REQUIRE(::inet_pton(AF_INET, text, &a.sin_addr) == 1);
  const auto key = peer_key(reinterpret_cast<const sockaddr*>(&a), sizeof a);
  REQUIRE(key.has_value());
  return *key;
}

PeerKey v6(const char* text) {
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(40000);
  REQUIRE(::inet_pton(AF_INET6, text, &a.sin6_addr) == 1);
  const auto key = peer_key(reinterpret_cast<const sockaddr*>(&a), sizeof a);
  REQUIRE(key.has_value());
  return *key;
}

}  // namespace

TEST_SUITE("http") {
  TEST_CASE("http::PeerKey: an IPv4 peer is one key, in either of its spellings") {
    CHECK(v4("10.1.2.3") == v6("::ffff:10.1.2.3"));
    CHECK(v4("10.1.2.3") != v4("10.1.2.4"));
    CHECK(v4("10.1.2.3") != v6("::10.1.2.3"));  // IPv4-compatible is not IPv4-mapped
    CHECK(v4("10.1.2.3").to_string() == "10.1.2.3");
    CHECK(v4("0.0.0.0") != v6("::"));
  }

  TEST_CASE("http::PeerKey: all of loopback is one peer") {
    const PeerKey lo = v4("127.0.0.1");
    CHECK(v4("127.0.0.2") == lo);
    CHECK(v4("127.255.255.254") == lo);
    CHECK(v6("::ffff:127.9.9.9") == lo);
    CHECK(v6("::1") == lo);
    CHECK(v4("128.0.0.1") != lo);
    CHECK(lo.to_string() == "127.0.0.0/8");
  }

  TEST_CASE("http::PeerKey: an IPv6 peer counts by its /64") {
    CHECK(v6("2001:db8:0:1::1") == v6("2001:db8:0:1:ffff:ffff:ffff:ffff"));
    CHECK(v6("2001:db8:0:1::1") != v6("2001:db8:0:2::1"));
    CHECK(v6("2001:db8:0:1::1").to_string() == "2001:db8:0:1::/64");
    CHECK(v6("::ffff:10.1.2.3") != v6("::fffe:10.1.2.3"));
  }

  TEST_CASE("http::PeerKey: other families and short addresses have no key") {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    CHECK_FALSE(peer_key(reinterpret_cast<const sockaddr*>(&a), sizeof a - 1).has_value());
    sockaddr_in6 b{};
    b.sin6_family = AF_INET6;
    CHECK_FALSE(peer_key(reinterpret_cast<const sockaddr*>(&b), sizeof(sockaddr_in)).has_value());
    sockaddr c{};
    c.sa_family = AF_UNIX;
    CHECK_FALSE(peer_key(&c, sizeof c).has_value());
    CHECK_FALSE(peer_key(nullptr, 0).has_value());
    CHECK_FALSE(peer_key_of_socket(-1).has_value());
  }

  TEST_CASE("http::PeerTable: counts up to the limit per key and forgets a key at zero") {
    PeerTable t;
    const PeerKey a = v4("10.0.0.1");
    const PeerKey b = v4("10.0.0.2");
    CHECK(t.add(a, 2));
    CHECK(t.add(a, 2));
    CHECK_FALSE(t.add(a, 2));
    CHECK(t.count(a) == 2);
    CHECK(t.add(b, 2));
    CHECK(t.peers() == 2);
    CHECK_FALSE(t.add(v4("10.0.0.3"), 0));  // a refused key leaves nothing behind
    CHECK(t.peers() == 2);
    t.remove(a);
    CHECK(t.add(a, 2));
    t.remove(a);
    t.remove(a);
    t.remove(b);
    CHECK(t.count(a) == 0);
    CHECK(t.peers() == 0);
  }
}

}  // namespace raftd::http
