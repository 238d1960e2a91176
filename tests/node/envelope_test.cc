#include "raftd/node/envelope.h"

#include <doctest/doctest.h>

#include <string>

using raftd::NodeId;
using namespace raftd::node;

TEST_CASE("node::Envelope: round trip with and without an idempotency key") {
  std::string e = encode_envelope(EntryKind::kApp, NodeId(3), 42, "", "payload");
  auto v = decode_envelope(e);
  REQUIRE(v.is_ok());
  CHECK(v.value().kind == EntryKind::kApp);
  CHECK(v.value().origin == NodeId(3));
  CHECK(v.value().request_id == 42);
  CHECK(v.value().key.empty());
  CHECK(v.value().payload == "payload");

  std::string k = encode_envelope(EntryKind::kMeta, NodeId(1), 7, "key-1", std::string("\0b", 2));
  auto w = decode_envelope(k);
  REQUIRE(w.is_ok());
  CHECK(w.value().kind == EntryKind::kMeta);
  CHECK(w.value().key == "key-1");
  CHECK(w.value().payload == std::string("\0b", 2));

  auto empty = decode_envelope(encode_envelope(EntryKind::kApp, NodeId(1), 1, "", ""));
  REQUIRE(empty.is_ok());
  CHECK(empty.value().payload.empty());
}

TEST_CASE("node::Envelope: decode refuses malformed headers") {
  std::string k = encode_envelope(EntryKind::kApp, NodeId(1), 7, "abc", "");
  // Every prefix shorter than header + key is refused.
  for (size_t n = 0; n < kEnvelopeFixedBytes + 2 + 3; ++n) {
    CHECK_FALSE(decode_envelope(std::string_view(k).substr(0, n)).is_ok());
  }
  std::string bad = k;
  bad[0] = 9;  // version
  CHECK_FALSE(decode_envelope(bad).is_ok());
  bad = k;
  bad[1] = 3;  // kind
  CHECK_FALSE(decode_envelope(bad).is_ok());
  bad = k;
  bad[2] = 3;  // reserved flag bit
  CHECK_FALSE(decode_envelope(bad).is_ok());
  bad = k;
  bad[kEnvelopeFixedBytes] = 0;  // key length 0
  bad[kEnvelopeFixedBytes + 1] = 0;
  CHECK_FALSE(decode_envelope(bad).is_ok());
  bad = k;
  bad[kEnvelopeFixedBytes] = static_cast<char>(kIdempotencyKeyBytesMax + 1);
  CHECK_FALSE(decode_envelope(bad + std::string(200, 'x')).is_ok());
}
