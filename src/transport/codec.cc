// The peer stream's wire format; doc/transport.md is the specification and codec.h the summary.
#include "raftd/transport/codec.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "raftd/base/assert.h"

namespace raftd::transport {
namespace {

using raft::ConfState;
using raft::Entry;
using raft::EntryType;
using raft::Message;
using raft::MessageType;

// ---- primitive writers ----

void put_u8(std::string& out, uint8_t v) { out.push_back(static_cast<char>(v)); }

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

size_t varint_bytes(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

uint64_t get_le(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

// ---- primitive reader: fails once, then every read returns zero ----

class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  bool ok() const { return ok_; }
  bool done() const { return pos_ == s_.size(); }
  size_t remaining() const { return s_.size() - pos_; }
  const std::string& error() const { return error_; }
  void fail(std::string why) {
    if (ok_) error_ = std::move(why);
    ok_ = false;
  }

  uint8_t u8() {
    if (!ok_ || pos_ >= s_.size()) {
      fail("truncated");
      return 0;
    }
    return static_cast<uint8_t>(s_[pos_++]);
  }
  uint32_t u32() {
    if (!ok_ || remaining() < 4) {
      fail("truncated");
      return 0;
    }
    uint32_t v = static_cast<uint32_t>(get_le(s_.data() + pos_, 4));
    pos_ += 4;
    return v;
  }
  // LEB128, at most 10 bytes, canonical (no trailing zero groups), no bits beyond 64.
  uint64_t varint() {
    uint64_t v = 0;
    for (int i = 0; i < 10; ++i) {
      uint8_t b = u8();
      if (!ok_) return 0;
      if (i == 9 && b > 1) {
        fail("varint overflows 64 bits");
        return 0;
      }
      v |= uint64_t(b & 0x7f) << (7 * i);
      if (!(b & 0x80)) {
        if (b == 0 && i > 0) {
          fail("varint not in its shortest form");
          return 0;
        }
        return v;
      }
    }
    fail("varint longer than 10 bytes");
    return 0;
  }
  std::string_view bytes(uint64_t n) {
    if (!ok_ || remaining() < n) {
      fail("truncated");
      return {};
    }
    std::string_view v = s_.substr(pos_, n);
    pos_ += n;
    return v;
  }

 private:
  std::string_view s_;
  size_t pos_ = 0;
  bool ok_ = true;
  std::string error_;
};

// ---- messages ----

uint64_t conf_list_bytes(const std::vector<NodeId>& ids) {
  uint64_t n = varint_bytes(ids.size());
  for (NodeId id : ids) n += varint_bytes(id.value());
  return n;
}

void put_conf_list(std::string& out, const std::vector<NodeId>& ids) {
  put_varint(out, ids.size());
  for (NodeId id : ids) put_varint(out, id.value());
}

bool get_conf_list(Reader& r, std::vector<NodeId>& ids) {
  uint64_t n = r.varint();
  if (!r.ok()) return false;
  if (n > kConfNodesMax) {
    r.fail("conf state list longer than kConfNodesMax");
    return false;
  }
  ids.reserve(n);
  for (uint64_t i = 0; i < n && r.ok(); ++i) ids.emplace_back(r.varint());
  return r.ok();
}

uint8_t message_flags(const Message& m) {
  uint8_t f = 0;
  if (m.reject) f |= kMessageFlagReject;
  if (m.transfer) f |= kMessageFlagTransfer;
  if (m.snapshot) f |= kMessageFlagSnapshot;
  return f;
}

void put_message(std::string& out, const Message& m) {
  put_u8(out, static_cast<uint8_t>(m.type));
  put_u8(out, message_flags(m));
  put_varint(out, m.group.value());
  put_varint(out, m.from.value());
  put_varint(out, m.to.value());
  put_varint(out, m.term.value());
  put_varint(out, m.log_term.value());
  put_varint(out, m.index.value());
  put_varint(out, m.commit.value());
  put_varint(out, m.reject_hint.value());
  put_varint(out, m.context);
  put_varint(out, m.transfer_target.value());
  put_varint(out, m.entries.size());
  for (const Entry& e : m.entries) {
    put_u8(out, static_cast<uint8_t>(e.type));
    put_varint(out, e.term.value());
    put_varint(out, e.index.value());
    put_varint(out, e.data.size());
    out.append(e.data);
  }
  if (m.snapshot) {
    const raft::SnapshotMeta& meta = m.snapshot->meta;
    put_varint(out, meta.index.value());
    put_varint(out, meta.term.value());
    put_u8(out, meta.conf_state.auto_leave ? 1 : 0);
    put_conf_list(out, meta.conf_state.voters);
    put_conf_list(out, meta.conf_state.learners);
    put_conf_list(out, meta.conf_state.voters_outgoing);
    put_conf_list(out, meta.conf_state.learners_next);
  }
}

bool get_entries(Reader& r, std::vector<Entry>& entries) {
  uint64_t n = r.varint();
  if (!r.ok()) return false;
  if (n > kEntriesPerMessageMax) {
    r.fail("more than kEntriesPerMessageMax entries");
    return false;
  }
  // Every entry takes at least 4 bytes, so a count the rest of the frame cannot hold is refused
  // before anything is reserved.
  if (n > r.remaining() / 4) {
    r.fail("entry count larger than the frame can hold");
    return false;
  }
  entries.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    Entry e;
    uint8_t type = r.u8();
    if (type > static_cast<uint8_t>(EntryType::kEmpty)) {
      r.fail("unknown entry type");
      return false;
    }
    e.type = static_cast<EntryType>(type);
    e.term = Term(r.varint());
    e.index = LogIndex(r.varint());
    uint64_t len = r.varint();
    if (!r.ok()) return false;
    if (len > kEntryBytesMax) {
      r.fail("entry larger than kEntryBytesMax");
      return false;
    }
    e.data = std::string(r.bytes(len));
    if (!r.ok()) return false;
    entries.push_back(std::move(e));
  }
  return true;
}

bool get_message(Reader& r, Message& m) {
  uint8_t type = r.u8();
  uint8_t flags = r.u8();
  if (!r.ok()) return false;
  if (type > kMessageTypeMax) {
    r.fail("unknown message type " + std::to_string(type));
    return false;
  }
  if (flags & ~kMessageFlagsKnown) {
    r.fail("unknown message flags");
    return false;
  }
  m.type = static_cast<MessageType>(type);
  m.reject = flags & kMessageFlagReject;
  m.transfer = flags & kMessageFlagTransfer;
  m.group = GroupId(r.varint());
  m.from = NodeId(r.varint());
  m.to = NodeId(r.varint());
  m.term = Term(r.varint());
  m.log_term = Term(r.varint());
  m.index = LogIndex(r.varint());
  m.commit = LogIndex(r.varint());
  m.reject_hint = LogIndex(r.varint());
  m.context = r.varint();
  m.transfer_target = NodeId(r.varint());
  if (!r.ok() || !get_entries(r, m.entries)) return false;
  if (flags & kMessageFlagSnapshot) {
    raft::Snapshot snap;
    snap.meta.index = LogIndex(r.varint());
    snap.meta.term = Term(r.varint());
    uint8_t auto_leave = r.u8();
    if (r.ok() && auto_leave > 1) {
      r.fail("auto_leave is neither 0 nor 1");
      return false;
    }
    snap.meta.conf_state.auto_leave = auto_leave == 1;
    ConfState& cs = snap.meta.conf_state;
    if (!get_conf_list(r, cs.voters) || !get_conf_list(r, cs.learners) ||
        !get_conf_list(r, cs.voters_outgoing) || !get_conf_list(r, cs.learners_next)) {
      return false;
    }
    m.snapshot = std::move(snap);
  }
  return r.ok();
}

// ---- heartbeat tuples ----

void put_heartbeat(std::string& out, const Message& m) {
  uint8_t flags = 0;
  if (m.type == MessageType::kHeartbeatResp) flags |= kHeartbeatFlagResponse;
  if (m.reject) flags |= kHeartbeatFlagReject;
  put_u8(out, flags);
  put_varint(out, m.group.value());
  put_varint(out, m.term.value());
  put_varint(out, m.commit.value());
  put_varint(out, m.context);
}

uint64_t heartbeat_bytes(const Message& m) {
  return 1 + varint_bytes(m.group.value()) + varint_bytes(m.term.value()) +
         varint_bytes(m.commit.value()) + varint_bytes(m.context);
}

bool get_heartbeat(Reader& r, NodeId peer, NodeId self, Message& m) {
  uint8_t flags = r.u8();
  if (!r.ok()) return false;
  if (flags & ~kHeartbeatFlagsKnown) {
    r.fail("unknown heartbeat flags");
    return false;
  }
  m.type = (flags & kHeartbeatFlagResponse) ? MessageType::kHeartbeatResp : MessageType::kHeartbeat;
  m.reject = flags & kHeartbeatFlagReject;
  m.from = peer;
  m.to = self;
  m.group = GroupId(r.varint());
  m.term = Term(r.varint());
  m.commit = LogIndex(r.varint());
  m.context = r.varint();
  return r.ok();
}

// ---- frames ----

uint64_t header_seed(const char* header) { return get_le(header, 8); }

// Writes the header of a frame whose body (of `body_bytes`) already follows at out[at + 16].
void seal_frame(std::string& out, size_t at, FrameType type) {
  const uint64_t body_bytes = out.size() - at - kFrameHeaderBytes;
  RAFTD_ASSERT(body_bytes <= kFrameBytesMax, "transport: frame body over kFrameBytesMax");
  char* h = out.data() + at;
  std::string first;
  put_le(first, body_bytes, 4);
  put_u8(first, static_cast<uint8_t>(type));
  put_u8(first, kWireVersion);
  put_le(first, 0, 2);
  std::memcpy(h, first.data(), 8);
  const uint64_t sum =
      XXH3_64bits_withSeed(out.data() + at + kFrameHeaderBytes, body_bytes, header_seed(h));
  std::string s;
  put_le(s, sum, 8);
  std::memcpy(h + 8, s.data(), 8);
}

// Frames under construction: one kind at a time, closed by count or size.
class FrameBuilder {
 public:
  FrameBuilder(std::string& out, FrameType type, uint32_t count_max, uint64_t target,
               EncodeStats& stats)
      : out_(out), type_(type), count_max_(count_max), target_(target), stats_(stats) {}
  ~FrameBuilder() { close(); }

  // Room is made for an item of `bytes`; returns the buffer to append it to.
  std::string& begin_item(uint64_t bytes) {
    if (open_ && (count_ == count_max_ || body_bytes() + bytes > target_)) close();
    if (!open_) {
      at_ = out_.size();
      out_.append(kFrameHeaderBytes + 4, '\0');
      open_ = true;
    }
    ++count_;
    return out_;
  }
  void close() {
    if (!open_) return;
    std::string c;
    put_le(c, count_, 4);
    std::memcpy(out_.data() + at_ + kFrameHeaderBytes, c.data(), 4);
    seal_frame(out_, at_, type_);
    ++stats_.frames;
    open_ = false;
    count_ = 0;
  }

 private:
  uint64_t body_bytes() const { return out_.size() - at_ - kFrameHeaderBytes; }
  std::string& out_;
  FrameType type_;
  uint32_t count_max_;
  uint64_t target_;
  EncodeStats& stats_;
  bool open_ = false;
  size_t at_ = 0;
  uint32_t count_ = 0;
};

Status corrupt(std::string why) { return Status(Code::kCorruption, "peer frame: " + why); }

}  // namespace

bool heartbeat_compactable(const Message& m) {
  return (m.type == MessageType::kHeartbeat || m.type == MessageType::kHeartbeatResp) &&
         m.entries.empty() && !m.snapshot && m.index == LogIndex(0) && m.log_term == Term(0) &&
         m.reject_hint == LogIndex(0) && !m.transfer && m.transfer_target == raft::kNoNode;
}

uint64_t encoded_message_bytes(const Message& m) {
  uint64_t n = 2 + varint_bytes(m.group.value()) + varint_bytes(m.from.value()) +
               varint_bytes(m.to.value()) + varint_bytes(m.term.value()) +
               varint_bytes(m.log_term.value()) + varint_bytes(m.index.value()) +
               varint_bytes(m.commit.value()) + varint_bytes(m.reject_hint.value()) +
               varint_bytes(m.context) + varint_bytes(m.transfer_target.value()) +
               varint_bytes(m.entries.size());
  for (const Entry& e : m.entries) {
    n += 1 + varint_bytes(e.term.value()) + varint_bytes(e.index.value()) +
         varint_bytes(e.data.size()) + e.data.size();
  }
  if (m.snapshot) {
    const raft::SnapshotMeta& meta = m.snapshot->meta;
    const ConfState& cs = meta.conf_state;
    n += varint_bytes(meta.index.value()) + varint_bytes(meta.term.value()) + 1 +
         conf_list_bytes(cs.voters) + conf_list_bytes(cs.learners) +
         conf_list_bytes(cs.voters_outgoing) + conf_list_bytes(cs.learners_next);
  }
  return n;
}

EncodeStats encode_batch(std::span<const Message> msgs, std::string& out,
                         uint64_t frame_bytes_target, bool coalesce_heartbeats) {
  EncodeStats stats;
  const uint64_t target = std::clamp<uint64_t>(frame_bytes_target, 64, kFrameBytesMax);
  const auto coalesced = [&](const Message& m) {
    return coalesce_heartbeats && heartbeat_compactable(m);
  };
  {
    FrameBuilder frames(out, FrameType::kMessages, kMessagesPerFrameMax, target, stats);
    for (const Message& m : msgs) {
      if (coalesced(m)) continue;
      const uint64_t bytes = encoded_message_bytes(m);
      if (bytes + 4 > kFrameBytesMax || m.entries.size() > kEntriesPerMessageMax) {
        ++stats.too_large;
        continue;
      }
      put_message(frames.begin_item(bytes), m);
      ++stats.messages;
      if (m.type == MessageType::kHeartbeat || m.type == MessageType::kHeartbeatResp) {
        ++stats.heartbeats;
      }
    }
  }
  FrameBuilder beats(out, FrameType::kHeartbeats, kHeartbeatsPerFrameMax, kFrameBytesMax, stats);
  for (const Message& m : msgs) {
    if (!coalesced(m)) continue;
    put_heartbeat(beats.begin_item(heartbeat_bytes(m)), m);
    ++stats.messages;
    ++stats.heartbeats;
    ++stats.coalesced;
  }
  return stats;
}

void encode_ping(std::string& out) {
  const size_t at = out.size();
  out.append(kFrameHeaderBytes, '\0');
  seal_frame(out, at, FrameType::kPing);
}

Status decode_frame_body(FrameType type, std::string_view body, NodeId peer, NodeId self,
                         std::vector<Message>& out) {
  Reader r(body);
  uint32_t count = r.u32();
  if (!r.ok()) return corrupt("no item count");
  const uint32_t count_max =
      type == FrameType::kMessages ? kMessagesPerFrameMax : kHeartbeatsPerFrameMax;
  if (count > count_max) {
    return Status(Code::kTooLarge, "peer frame: " + std::to_string(count) + " items, over " +
                                       std::to_string(count_max));
  }
  if (count == 0) return corrupt("empty frame");
  // Every item takes at least 5 bytes; refuse a count the body cannot hold before reserving.
  if (count > r.remaining() / 5) return corrupt("item count larger than the frame can hold");
  const size_t first = out.size();
  out.reserve(first + count);
  for (uint32_t i = 0; i < count; ++i) {
    Message m;
    bool ok = type == FrameType::kMessages ? get_message(r, m) : get_heartbeat(r, peer, self, m);
    if (!ok) {
      out.resize(first);
      return corrupt(r.error());
    }
    out.push_back(std::move(m));
  }
  if (!r.done()) {
    out.resize(first);
    return corrupt("bytes after the last item");
  }
  return Status::ok();
}

Decoder::Decoder(NodeId peer, NodeId self, uint64_t frame_bytes_max)
    : peer_(peer), self_(self), frame_bytes_max_(std::min(frame_bytes_max, kFrameBytesMax)) {}

Status Decoder::feed(std::string_view bytes, std::vector<Message>& out) {
  if (!status_) return status_;
  stats_.bytes += bytes.size();
  while (!bytes.empty()) {
    const size_t want = need_ == 0 ? kFrameHeaderBytes : need_;
    const size_t take = std::min(bytes.size(), want - buf_.size());
    buf_.append(bytes.data(), take);
    bytes.remove_prefix(take);
    if (buf_.size() < want) break;
    if (need_ == 0) {
      const uint64_t body_bytes = get_le(buf_.data(), 4);
      const uint8_t type = static_cast<uint8_t>(buf_[4]);
      const uint8_t version = static_cast<uint8_t>(buf_[5]);
      if (version != kWireVersion) {
        status_ = corrupt("wire version " + std::to_string(version) + ", expected " +
                          std::to_string(kWireVersion));
        return status_;
      }
      if (type < static_cast<uint8_t>(FrameType::kMessages) ||
          type > static_cast<uint8_t>(FrameType::kPing)) {
        status_ = corrupt("unknown frame type " + std::to_string(type));
        return status_;
      }
      if (get_le(buf_.data() + 6, 2) != 0) {
        status_ = corrupt("reserved header bytes not zero");
        return status_;
      }
      if (body_bytes > frame_bytes_max_) {
        status_ = Status(Code::kTooLarge, "peer frame: body of " + std::to_string(body_bytes) +
                                              " bytes, over " + std::to_string(frame_bytes_max_));
        return status_;
      }
      need_ = kFrameHeaderBytes + body_bytes;
      if (buf_.size() < need_) continue;
    }
    std::string_view header(buf_.data(), kFrameHeaderBytes);
    std::string_view body(buf_.data() + kFrameHeaderBytes, buf_.size() - kFrameHeaderBytes);
    status_ = parse_frame(header, body, out);
    if (!status_) return status_;
    buf_.clear();
    need_ = 0;
    // A frame far larger than usual does not keep its buffer for the rest of the stream.
    if (buf_.capacity() > (1u << 20)) buf_.shrink_to_fit();
  }
  return Status::ok();
}

Status Decoder::parse_frame(std::string_view header, std::string_view body,
                            std::vector<Message>& out) {
  const uint64_t sum = get_le(header.data() + 8, 8);
  if (XXH3_64bits_withSeed(body.data(), body.size(), header_seed(header.data())) != sum) {
    return corrupt("checksum mismatch");
  }
  const auto type = static_cast<FrameType>(header[4]);
  ++stats_.frames;
  if (type == FrameType::kPing) {
    if (!body.empty()) return corrupt("ping frame with a body");
    ++stats_.pings;
    return Status::ok();
  }
  const size_t before = out.size();
  Status st = decode_frame_body(type, body, peer_, self_, out);
  if (!st) return st;
  stats_.messages += out.size() - before;
  ++(type == FrameType::kMessages ? stats_.message_frames : stats_.heartbeat_frames);
  return Status::ok();
}

// ---- validation ----

Status validate(const Message& m, const ValidationContext& ctx) {
  if (static_cast<uint8_t>(m.type) > kMessageTypeMax) return corrupt("unknown message type");
  if (m.from != ctx.peer) {
    return corrupt("message from node " + std::to_string(m.from.value()) + " on the stream of " +
                   std::to_string(ctx.peer.value()));
  }
  if (m.to != ctx.self) {
    return corrupt("message to node " + std::to_string(m.to.value()) + " received by " +
                   std::to_string(ctx.self.value()));
  }
  // What the wire bounds beyond the protocol's own rules.
  if (m.entries.size() > kEntriesPerMessageMax) return corrupt("too many entries");
  for (const Entry& e : m.entries) {
    if (e.data.size() > kEntryBytesMax) return corrupt("entry over kEntryBytesMax");
  }
  // The shape every honest replica's message has (raft::check_message, which Group::step
  // applies again): one list of rules for the transport and the core.
  if (Status st = raft::check_message(m); !st) return corrupt(st.message());
  if (ctx.hosts_group && !ctx.hosts_group(m.group)) {
    return Status(Code::kNotFound,
                  "peer message for group " + std::to_string(m.group.value()) + " not hosted here");
  }
  return Status::ok();
}

bool wire_equal(const Message& a, const Message& b) {
  if (a.type != b.type || a.group != b.group || a.from != b.from || a.to != b.to ||
      a.term != b.term || a.log_term != b.log_term || a.index != b.index ||
      a.entries != b.entries || a.commit != b.commit || a.reject != b.reject ||
      a.reject_hint != b.reject_hint || a.context != b.context || a.transfer != b.transfer ||
      a.transfer_target != b.transfer_target || a.snapshot.has_value() != b.snapshot.has_value()) {
    return false;
  }
  return !a.snapshot || a.snapshot->meta == b.snapshot->meta;
}

}  // namespace raftd::transport
