#include "raftd/node/envelope.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using raftd::Code;
using raftd::GroupId;
using raftd::LogIndex;
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

TEST_CASE("node::forwarded batch: entries and answers round-trip, byte-exact") {
  std::string body;
  append_forwarded(&body, GroupId(7), "abc");
  append_forwarded(&body, GroupId(0), "");
  append_forwarded(&body, GroupId(UINT64_MAX), std::string(300, 'z'));
  // u64 group | u32 length | bytes, little endian.
  CHECK(body.substr(0, 15) == std::string("\x07\0\0\0\0\0\0\0\x03\0\0\0abc", 15));
  auto got = decode_forwarded(body);
  REQUIRE(got.is_ok());
  REQUIRE(got->size() == 3);
  CHECK((*got)[0].group == GroupId(7));
  CHECK((*got)[0].entry == "abc");
  CHECK((*got)[1].group == GroupId(0));
  CHECK((*got)[1].entry.empty());
  CHECK((*got)[2].group == GroupId(UINT64_MAX));
  CHECK((*got)[2].entry == std::string(300, 'z'));
  auto none = decode_forwarded("");
  REQUIRE(none.is_ok());
  CHECK(none->empty());

  std::string answers;
  const std::vector<ForwardAnswer> want = {
      {200, false, LogIndex(41)}, {200, true, LogIndex(9)}, {503, false, LogIndex(0)}};
  for (const ForwardAnswer& a : want) append_forward_answer(&answers, a);
  // u16 status | u8 flags | u64 index.
  CHECK(answers.substr(0, 11) == std::string("\xc8\0\0\x29\0\0\0\0\0\0\0", 11));
  auto back = decode_forward_answers(answers, 3);
  REQUIRE(back.is_ok());
  CHECK(*back == want);
}

TEST_CASE("node::forwarded batch: malformed bodies are refused, never over-read") {
  std::string body;
  append_forwarded(&body, GroupId(3), "hello");
  append_forwarded(&body, GroupId(4), "world!");
  // Every cut inside a record is refused; cuts between records decode the records before them.
  for (size_t n = 0; n <= body.size(); ++n) {
    auto r = decode_forwarded(std::string_view(body).substr(0, n));
    if (n == 0 || n == 17 || n == body.size()) {
      REQUIRE(r.is_ok());
      CHECK(r->size() == (n == 0 ? 0u : n == 17 ? 1u : 2u));
    } else {
      CHECK(r.status().code() == Code::kCorruption);
    }
  }
  // A length past the end, even by a huge amount (no overflow in the check).
  std::string lying = body;
  lying[8] = '\xff';
  lying[9] = '\xff';
  lying[10] = '\xff';
  lying[11] = '\xff';
  auto r = decode_forwarded(lying);
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().message().find("record 0 at byte 0") != std::string::npos);
  // Too many records.
  std::string many;
  for (size_t i = 0; i <= kForwardBatchEntriesMax; ++i) append_forwarded(&many, GroupId(1), "");
  CHECK(decode_forwarded(many).status().code() == Code::kTooLarge);
  many.resize(many.size() - kForwardRecordHeaderBytes);
  CHECK(decode_forwarded(many).is_ok());

  std::string answers;
  append_forward_answer(&answers, {200, false, LogIndex(1)});
  append_forward_answer(&answers, {503, false, LogIndex(0)});
  CHECK_FALSE(decode_forward_answers(answers, 1).is_ok());  // one answer too many
  CHECK_FALSE(decode_forward_answers(answers, 3).is_ok());  // one too few
  CHECK_FALSE(decode_forward_answers(answers.substr(0, 21), 2).is_ok());
  std::string flags = answers;
  flags[2] = 2;  // a reserved flag bit
  CHECK_FALSE(decode_forward_answers(flags, 2).is_ok());
  CHECK(decode_forward_answers("", 0).is_ok());
}
