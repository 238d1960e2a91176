// The peer stream's wire format: round trips of every message type and field, heartbeat
// coalescing, chunk boundaries anywhere, damaged frames, limits, and every validation rule.
#include "raftd/transport/codec.h"

#include <doctest/doctest.h>
#include <xxhash.h>

#include <string>
#include <vector>

namespace raftd::transport {
namespace {

using raft::ConfState;
using raft::Entry;
using raft::EntryType;
using raft::Message;
using raft::MessageType;

constexpr NodeId kPeer{2};
constexpr NodeId kSelf{1};

Message base(MessageType type, uint64_t group = 7) {
  Message m;
  m.type = type;
  m.group = GroupId(group);
  m.from = kPeer;
  m.to = kSelf;
  m.term = Term(5);
  return m;
}

// One message of every type with every field the type uses set to a distinct value, plus some
// with fields at their extremes.
std::vector<Message> every_type() {
  std::vector<Message> v;
  for (uint8_t t = 0; t <= kMessageTypeMax; ++t) {
    Message m = base(static_cast<MessageType>(t), 100 + t);
    m.log_term = Term(4);
    m.index = LogIndex(10);
    m.commit = LogIndex(9);
    m.context = 0xdeadbeefcafeull + t;
    switch (m.type) {
      case MessageType::kAppend:
        m.entries.push_back(Entry{Term(4), LogIndex(11), EntryType::kNormal, "hello"});
        m.entries.push_back(Entry{Term(5), LogIndex(12), EntryType::kEmpty, ""});
        m.entries.push_back(Entry{Term(5), LogIndex(13), EntryType::kConfChange,
                                  raft::encode_conf_change(raft::ConfChange{
                                      raft::ConfTransition::kJointExplicit,
                                      {{raft::ConfChangeType::kAddLearner, NodeId(9)}}})});
        m.entries.push_back(
            Entry{Term(5), LogIndex(14), EntryType::kNormal, std::string(70000, '\x80')});
        break;
      case MessageType::kAppendResp:
        m.reject = true;
        m.reject_hint = LogIndex(8);
        break;
      case MessageType::kVote:
      case MessageType::kPreVote: m.transfer = true; break;
      case MessageType::kSnapshot: {
        raft::Snapshot s;
        s.meta.index = LogIndex(50);
        s.meta.term = Term(3);
        s.meta.conf_state = ConfState{
            {NodeId(1), NodeId(2)}, {NodeId(5)}, {NodeId(1), NodeId(3)}, {NodeId(3)}, true};
        m.snapshot = s;
        break;
      }
      case MessageType::kTransferLeader: m.transfer_target = NodeId(3); break;
      case MessageType::kHeartbeatResp: m.reject = true; break;
      default: break;
    }
    v.push_back(std::move(m));
  }
  Message big = base(MessageType::kVoteResp);
  big.term = Term(kTermIndexMax);
  big.log_term = Term(kTermIndexMax);
  big.commit = LogIndex(kTermIndexMax);
  big.context = UINT64_MAX;
  big.group = GroupId(UINT64_MAX);
  v.push_back(big);
  return v;
}

std::vector<Message> decode_all(std::string_view bytes, Status* status = nullptr) {
  Decoder d(kPeer, kSelf);
  std::vector<Message> out;
  Status st = d.feed(bytes, out);
  if (status)
    *status = st;
  else
    REQUIRE_MESSAGE(st.is_ok(), st.to_string());
  return out;
}

void check_same(const std::vector<Message>& a, const std::vector<Message>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    CHECK(wire_equal(a[i], b[i]));
  }
}

ValidationContext ctx() { return ValidationContext{kPeer, kSelf, {}}; }

TEST_CASE("transport::codec: every message type and field round trips") {
  std::vector<Message> msgs = every_type();
  std::string wire;
  EncodeStats st = encode_batch(msgs, wire);
  CHECK(st.too_large == 0);
  CHECK(st.messages == msgs.size());
  std::vector<Message> got = decode_all(wire);
  // Non-heartbeats keep their order; compactable heartbeats follow in a frame of their own.
  std::vector<Message> expect;
  for (const Message& m : msgs) {
    if (!heartbeat_compactable(m)) expect.push_back(m);
  }
  for (const Message& m : msgs) {
    if (heartbeat_compactable(m)) expect.push_back(m);
  }
  check_same(got, expect);
  for (const Message& m : got) {
    Status v = validate(m, ctx());
    CHECK_MESSAGE(v.is_ok(), v.to_string());
  }
}

TEST_CASE("transport::codec: a snapshot's data is not sent, its metadata is") {
  Message m = every_type()[static_cast<size_t>(MessageType::kSnapshot)];
  m.snapshot->data = std::string(1000, 'x');
  std::string wire;
  (void)encode_batch(std::span(&m, 1), wire);
  CHECK(wire.size() < 200);
  std::vector<Message> got = decode_all(wire);
  REQUIRE(got.size() == 1);
  REQUIRE(got[0].snapshot.has_value());
  CHECK(got[0].snapshot->data.empty());
  CHECK(got[0].snapshot->meta == m.snapshot->meta);
}

TEST_CASE("transport::codec: encoded_message_bytes is exact") {
  for (const Message& m : every_type()) {
    Message copy = m;
    copy.type = MessageType::kAppendResp;  // never compacted, so the frame holds it as a message
    copy.snapshot.reset();
    copy.entries.clear();
    std::string wire;
    (void)encode_batch(std::span(&copy, 1), wire);
    CHECK(wire.size() == kFrameHeaderBytes + 4 + encoded_message_bytes(copy));
  }
}

TEST_CASE("transport::codec: heartbeats of many groups coalesce into one small frame") {
  std::vector<Message> msgs;
  for (uint64_t g = 1; g <= 1000; ++g) {
    Message m = base(g % 2 ? MessageType::kHeartbeat : MessageType::kHeartbeatResp, g);
    m.commit = LogIndex(g * 3);
    m.context = g;
    m.reject = g % 3 == 0;
    msgs.push_back(m);
  }
  std::string wire;
  EncodeStats st = encode_batch(msgs, wire);
  CHECK(st.frames == 1);
  CHECK(st.heartbeats == 1000);
  CHECK(st.coalesced == 1000);
  CHECK(wire.size() < 1000 * 12);  // a tuple is a handful of bytes
  Decoder d(kPeer, kSelf);
  std::vector<Message> got;
  REQUIRE(d.feed(wire, got).is_ok());
  CHECK(d.stats().frames == 1);
  CHECK(d.stats().heartbeat_frames == 1);
  check_same(got, msgs);

  // Not coalesced (transport.coalesce_heartbeats = false): the same messages as kMessages
  // items, in their order, several times the bytes.
  std::string plain;
  EncodeStats ps = encode_batch(msgs, plain, 1ull << 20, false);
  CHECK(ps.messages == 1000);
  CHECK(ps.heartbeats == 1000);
  CHECK(ps.coalesced == 0);
  CHECK(plain.size() > 2 * wire.size());
  Decoder pd(kPeer, kSelf);
  std::vector<Message> plain_got;
  REQUIRE(pd.feed(plain, plain_got).is_ok());
  CHECK(pd.stats().heartbeat_frames == 0);
  CHECK(pd.stats().message_frames == ps.frames);
  check_same(plain_got, msgs);
}

TEST_CASE("transport::codec: a heartbeat with other fields set is not compacted") {
  Message m = base(MessageType::kHeartbeat);
  m.index = LogIndex(3);
  CHECK_FALSE(heartbeat_compactable(m));
  std::string wire;
  EncodeStats st = encode_batch(std::span(&m, 1), wire);
  CHECK(st.heartbeats == 1);
  CHECK(st.coalesced == 0);
  check_same(decode_all(wire), {m});
}

TEST_CASE("transport::codec: frames split at the target size and the item limits") {
  std::vector<Message> msgs;
  for (uint64_t i = 0; i < 100; ++i) {
    Message m = base(MessageType::kAppend);
    m.index = LogIndex(i * 10);
    m.entries.push_back(
        Entry{Term(5), LogIndex(i * 10 + 1), EntryType::kNormal, std::string(1000, 'a')});
    msgs.push_back(m);
  }
  std::string wire;
  EncodeStats st = encode_batch(msgs, wire, 10 * 1024);
  CHECK(st.frames >= 10);
  CHECK(st.frames <= 11);
  check_same(decode_all(wire), msgs);

  std::vector<Message> beats(kHeartbeatsPerFrameMax + 5, base(MessageType::kHeartbeat));
  wire.clear();
  st = encode_batch(beats, wire);
  CHECK(st.frames == 2);
  CHECK(decode_all(wire).size() == beats.size());
}

TEST_CASE("transport::codec: a message over the hard limits is skipped and counted") {
  Message m = base(MessageType::kAppend);
  for (uint64_t i = 0; i < 5; ++i) {
    m.entries.push_back(
        Entry{Term(5), LogIndex(i + 1), EntryType::kNormal, std::string(kEntryBytesMax, 'z')});
  }
  Message ok = base(MessageType::kVote);
  std::vector<Message> msgs{m, ok};
  std::string wire;
  EncodeStats st = encode_batch(msgs, wire);
  CHECK(st.too_large == 1);
  check_same(decode_all(wire), {ok});
}

TEST_CASE("transport::Decoder: bytes split at every boundary decode the same") {
  std::vector<Message> msgs = every_type();
  msgs[static_cast<size_t>(MessageType::kAppend)].entries.back().data.resize(300);
  std::string wire;
  encode_ping(wire);
  (void)encode_batch(msgs, wire);
  encode_ping(wire);
  const std::vector<Message> whole = decode_all(wire);
  for (size_t cut = 0; cut <= wire.size(); ++cut) {
    Decoder d(kPeer, kSelf);
    std::vector<Message> got;
    REQUIRE(d.feed(std::string_view(wire).substr(0, cut), got).is_ok());
    REQUIRE(d.feed(std::string_view(wire).substr(cut), got).is_ok());
    CHECK_FALSE(d.mid_frame());
    CHECK(d.stats().pings == 2);
    REQUIRE(got.size() == whole.size());
    for (size_t i = 0; i < got.size(); ++i) REQUIRE(wire_equal(got[i], whole[i]));
  }
  // And byte by byte.
  Decoder d(kPeer, kSelf);
  std::vector<Message> got;
  for (char c : wire) REQUIRE(d.feed(std::string_view(&c, 1), got).is_ok());
  check_same(got, whole);
}

TEST_CASE("transport::Decoder: any flipped bit is refused and the decoder stays failed") {
  Message m = base(MessageType::kAppend);
  m.entries.push_back(Entry{Term(5), LogIndex(1), EntryType::kNormal, "abc"});
  std::string wire;
  (void)encode_batch(std::span(&m, 1), wire);
  for (size_t i = 0; i < wire.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = wire;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      Decoder d(kPeer, kSelf);
      std::vector<Message> got;
      Status st = d.feed(bad, got);
      // A flip in the length field may only make the frame look incomplete.
      if (st.is_ok()) {
        CHECK(i < 4);
        CHECK(d.mid_frame());
        CHECK(got.empty());
        continue;
      }
      CHECK(got.empty());
      CHECK((st.code() == Code::kCorruption || st.code() == Code::kTooLarge));
      std::string good;
      (void)encode_batch(std::span(&m, 1), good);
      CHECK_FALSE(d.feed(good, got).is_ok());
    }
  }
}

// A frame with a valid checksum around an arbitrary body.
std::string frame(FrameType type, const std::string& body, uint8_t version = kWireVersion) {
  std::string out;
  encode_ping(out);  // a valid header shape; rewritten below
  out.resize(kFrameHeaderBytes);
  uint32_t n = static_cast<uint32_t>(body.size());
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>(n >> (8 * i));
  out[4] = static_cast<char>(type);
  out[5] = static_cast<char>(version);
  uint64_t seed = 0;
  for (int i = 0; i < 8; ++i) seed |= uint64_t(static_cast<uint8_t>(out[i])) << (8 * i);
  uint64_t sum = XXH3_64bits_withSeed(body.data(), body.size(), seed);
  for (int i = 0; i < 8; ++i) out[8 + i] = static_cast<char>(sum >> (8 * i));
  return out + body;
}

std::string le32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

Status decode_status(const std::string& wire) {
  Status st;
  (void)decode_all(wire, &st);
  return st;
}

TEST_CASE("transport::Decoder: structural damage under a valid checksum is refused") {
  Message m = base(MessageType::kAppendResp);
  std::string good;
  (void)encode_batch(std::span(&m, 1), good);
  std::string body = good.substr(kFrameHeaderBytes);
  CHECK(decode_status(frame(FrameType::kMessages, body)).is_ok());

  SUBCASE("unknown version") {
    CHECK(decode_status(frame(FrameType::kMessages, body, 2)).code() == Code::kCorruption);
  }
  SUBCASE("unknown frame type") {
    CHECK(decode_status(frame(static_cast<FrameType>(9), body)).code() == Code::kCorruption);
  }
  SUBCASE("trailing bytes") {
    CHECK(decode_status(frame(FrameType::kMessages, body + "x")).code() == Code::kCorruption);
  }
  SUBCASE("truncated item") {
    CHECK(decode_status(frame(FrameType::kMessages, body.substr(0, body.size() - 1))).code() ==
          Code::kCorruption);
  }
  SUBCASE("unknown message type") {
    std::string b = body;
    b[4] = static_cast<char>(kMessageTypeMax + 1);
    CHECK(decode_status(frame(FrameType::kMessages, b)).code() == Code::kCorruption);
  }
  SUBCASE("unknown message flags") {
    std::string b = body;
    b[5] = static_cast<char>(0x80);
    CHECK(decode_status(frame(FrameType::kMessages, b)).code() == Code::kCorruption);
  }
  SUBCASE("overlong varint") {
    std::string b = body;
    b[6] = static_cast<char>(0x87);  // group 7 as two bytes: 0x87 0x00
    b.insert(7, 1, '\0');
    CHECK(decode_status(frame(FrameType::kMessages, b)).code() == Code::kCorruption);
  }
  SUBCASE("empty frame") {
    CHECK(decode_status(frame(FrameType::kMessages, le32(0))).code() == Code::kCorruption);
  }
  SUBCASE("item count over the limit") {
    CHECK(decode_status(frame(FrameType::kMessages, le32(kMessagesPerFrameMax + 1))).code() ==
          Code::kTooLarge);
  }
  SUBCASE("item count the body cannot hold") {
    CHECK(decode_status(frame(FrameType::kHeartbeats, le32(1000) + "abc")).code() ==
          Code::kCorruption);
  }
  SUBCASE("ping with a body") {
    CHECK(decode_status(frame(FrameType::kPing, "x")).code() == Code::kCorruption);
  }
  SUBCASE("unknown heartbeat flags") {
    CHECK(decode_status(
              frame(FrameType::kHeartbeats, le32(1) + std::string("\x04\x01\x01\x01\x01", 5)))
              .code() == Code::kCorruption);
  }
}

TEST_CASE("transport::Decoder: a frame over the size limit is refused from its header") {
  std::string head = frame(FrameType::kMessages, "").substr(0, kFrameHeaderBytes);
  uint32_t n = kFrameBytesMax + 1;
  for (int i = 0; i < 4; ++i) head[i] = static_cast<char>(n >> (8 * i));
  Decoder d(kPeer, kSelf);
  std::vector<Message> out;
  CHECK(d.feed(head, out).code() == Code::kTooLarge);
  CHECK(d.buffered_bytes() <= kFrameHeaderBytes);

  Decoder small(kPeer, kSelf, 1000);
  Message m = base(MessageType::kAppend);
  m.entries.push_back(Entry{Term(5), LogIndex(1), EntryType::kNormal, std::string(2000, 'q')});
  std::string wire;
  (void)encode_batch(std::span(&m, 1), wire);
  CHECK(small.feed(wire, out).code() == Code::kTooLarge);
}

TEST_CASE("transport::Decoder: entry limits") {
  SUBCASE("entry count over kEntriesPerMessageMax") {
    Message m = base(MessageType::kAppend);
    std::string wire;
    (void)encode_batch(std::span(&m, 1), wire);
    std::string body = wire.substr(kFrameHeaderBytes);
    // The entry count is the message's last byte (no entries): replace it by a huge varint.
    body.pop_back();
    uint64_t n = kEntriesPerMessageMax + 1;
    while (n >= 0x80) {
      body.push_back(static_cast<char>((n & 0x7f) | 0x80));
      n >>= 7;
    }
    body.push_back(static_cast<char>(n));
    CHECK(decode_status(frame(FrameType::kMessages, body)).code() == Code::kCorruption);
  }
  SUBCASE("entry payload over kEntryBytesMax") {
    Message m = base(MessageType::kAppend);
    m.entries.push_back(Entry{Term(5), LogIndex(1), EntryType::kNormal, ""});
    std::string wire;
    (void)encode_batch(std::span(&m, 1), wire);
    std::string body = wire.substr(kFrameHeaderBytes);
    body.pop_back();  // the zero payload length
    uint64_t n = kEntryBytesMax + 1;
    while (n >= 0x80) {
      body.push_back(static_cast<char>((n & 0x7f) | 0x80));
      n >>= 7;
    }
    body.push_back(static_cast<char>(n));
    CHECK(decode_status(frame(FrameType::kMessages, body)).code() == Code::kCorruption);
  }
}

// ---- validation ----

Message valid_append() {
  Message m = base(MessageType::kAppend);
  m.index = LogIndex(10);
  m.log_term = Term(3);
  m.commit = LogIndex(10);
  m.entries.push_back(Entry{Term(3), LogIndex(11), EntryType::kNormal, "a"});
  m.entries.push_back(Entry{Term(5), LogIndex(12), EntryType::kNormal, "b"});
  return m;
}

void refused(const Message& m, const char* why) {
  CAPTURE(why);
  Status st = validate(m, ctx());
  CHECK(st.code() == Code::kCorruption);
}

TEST_CASE("transport::validate: each rule refuses") {
  REQUIRE(validate(valid_append(), ctx()).is_ok());
  Message m;

  m = valid_append(), m.from = NodeId(3), refused(m, "from another node than the peer");
  m = valid_append(), m.to = NodeId(3), refused(m, "to another node than this one");
  m = valid_append(), m.type = static_cast<MessageType>(kMessageTypeMax + 1),
  refused(m, "unknown type");
  m = valid_append(), m.entries[1].index = LogIndex(13), refused(m, "entries not contiguous");
  m = valid_append(), m.entries[0].index = LogIndex(10), refused(m, "first entry not index+1");
  m = valid_append(), m.entries[0].term = Term(6), m.entries[1].term = Term(5),
  refused(m, "terms decreasing");
  m = valid_append(), m.entries[0].term = Term(2), refused(m, "entry term below log_term");
  m = valid_append(), m.entries[1].term = Term(6), refused(m, "entry term above term");
  m = valid_append(), m.log_term = Term(6), m.entries.clear(), refused(m, "log_term above term");
  m = valid_append(), m.term = Term(0), refused(m, "append at term 0");
  m = valid_append(), m.entries[0].type = EntryType::kConfChange,
  refused(m, "undecodable conf change");
  m = valid_append(), m.entries[0].type = EntryType::kEmpty, refused(m, "empty entry with data");
  m = valid_append(), m.entries[0].type = static_cast<EntryType>(3), refused(m, "entry type");
  m = valid_append(), m.commit = LogIndex(kTermIndexMax + 1), refused(m, "commit beyond max");
  m = valid_append(), m.index = LogIndex(kTermIndexMax - 1),
  m.entries[0].index = LogIndex(kTermIndexMax), m.entries[1].index = LogIndex(kTermIndexMax + 1),
  refused(m, "entries beyond max");
  m = valid_append(), m.type = MessageType::kAppendResp, refused(m, "entries on a response");

  m = base(MessageType::kVote), m.log_term = Term(6), refused(m, "vote log_term above term");
  m = base(MessageType::kPreVote), m.term = Term(0), refused(m, "pre-vote at term 0");
  m = base(MessageType::kVoteResp), m.log_term = Term(6), refused(m, "vote resp log_term");
  m = base(MessageType::kHeartbeat), m.transfer = true, refused(m, "transfer on a heartbeat");
  m = base(MessageType::kHeartbeat), m.term = Term(0), refused(m, "heartbeat at term 0");
  m = base(MessageType::kAppendResp), m.reject = true, m.index = LogIndex(3),
  m.reject_hint = LogIndex(4), refused(m, "reject_hint above index");
  m = base(MessageType::kTransferLeader), refused(m, "transfer to nobody");
  m = base(MessageType::kSnapshot), refused(m, "snapshot message without a snapshot");
  m = base(MessageType::kVote), m.snapshot = raft::Snapshot{}, refused(m, "stray snapshot");

  Message snap = every_type()[static_cast<size_t>(MessageType::kSnapshot)];
  snap.from = kPeer;
  REQUIRE(validate(snap, ctx()).is_ok());
  m = snap, m.snapshot->meta.term = Term(6), refused(m, "snapshot term above term");
  m = snap, m.snapshot->meta.index = LogIndex(0), refused(m, "snapshot at index 0");
  m = snap, m.snapshot->meta.conf_state.voters = {NodeId(2), NodeId(1)},
  refused(m, "voters unsorted");
  m = snap, m.snapshot->meta.conf_state.voters = {NodeId(0), NodeId(1)}, refused(m, "node 0");
  m = snap, m.snapshot->meta.conf_state.learners = {NodeId(2)}, refused(m, "voter and learner");
  m = snap, m.snapshot->meta.conf_state.learners_next = {NodeId(4)},
  refused(m, "learners_next not outgoing");
  m = snap, m.snapshot->meta.conf_state.voters.clear(), refused(m, "no voter");
  m = snap, m.snapshot->meta.conf_state.voters_outgoing.clear(),
  m.snapshot->meta.conf_state.learners_next.clear(), refused(m, "auto_leave outside joint");
}

TEST_CASE("transport::validate: a group not hosted here is kNotFound") {
  ValidationContext c = ctx();
  c.hosts_group = [](GroupId g) { return g == GroupId(7); };
  CHECK(validate(valid_append(), c).is_ok());
  Message m = valid_append();
  m.group = GroupId(8);
  CHECK(validate(m, c).code() == Code::kNotFound);
}

}  // namespace
}  // namespace raftd::transport
