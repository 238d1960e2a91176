#include "raftd/node/envelope.h"

#include <fmt/format.h>

#include "raftd/base/assert.h"

namespace raftd::node {
namespace {

constexpr uint8_t kEnvelopeVersion = 1;
constexpr uint8_t kFlagKey = 1;

// Little-endian integers of sizeof(T) bytes.
template <typename T>
void put_le(std::string* out, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
template <typename T>
T get_le(std::string_view b) {
  T x = 0;
  for (size_t i = sizeof(T); i-- > 0;) x = static_cast<T>(x << 8 | static_cast<uint8_t>(b[i]));
  return x;
}
void put_u64(std::string* out, uint64_t v) { put_le(out, v); }
uint64_t get_u64(std::string_view b) { return get_le<uint64_t>(b); }
void put_u32(std::string* out, uint32_t v) { put_le(out, v); }
uint32_t get_u32(std::string_view b) { return get_le<uint32_t>(b); }
Status bad(const char* what) { return Status(Code::kCorruption, std::string("envelope: ") + what); }

}  // namespace

std::string encode_envelope(EntryKind kind, NodeId origin, uint64_t request_id,
                            std::string_view key, std::string_view payload) {
  RAFTD_ASSERT(key.size() <= kIdempotencyKeyBytesMax, "idempotency key over the limit");
  std::string out;
  out.reserve(kEnvelopeFixedBytes + (key.empty() ? 0 : 2 + key.size()) + payload.size());
  out.push_back(static_cast<char>(kEnvelopeVersion));
  out.push_back(static_cast<char>(kind));
  out.push_back(static_cast<char>(key.empty() ? 0 : kFlagKey));
  put_u64(&out, origin.value());
  put_u64(&out, request_id);
  if (!key.empty()) {
    out.push_back(static_cast<char>(key.size() & 0xff));
    out.push_back(static_cast<char>(key.size() >> 8));
    out.append(key);
  }
  out.append(payload);
  return out;
}

Result<EnvelopeView> decode_envelope(std::string_view entry) {
  if (entry.size() < kEnvelopeFixedBytes) return bad("truncated header");
  if (static_cast<uint8_t>(entry[0]) != kEnvelopeVersion) return bad("unknown version");
  auto kind = static_cast<uint8_t>(entry[1]);
  if (kind != static_cast<uint8_t>(EntryKind::kApp) &&
      kind != static_cast<uint8_t>(EntryKind::kMeta)) {
    return bad("unknown kind");
  }
  auto flags = static_cast<uint8_t>(entry[2]);
  if ((flags & ~kFlagKey) != 0) return bad("reserved flag bits set");
  EnvelopeView v;
  v.kind = static_cast<EntryKind>(kind);
  v.origin = NodeId(get_u64(entry.substr(3)));
  v.request_id = get_u64(entry.substr(11));
  entry.remove_prefix(kEnvelopeFixedBytes);
  if (flags & kFlagKey) {
    if (entry.size() < 2) return bad("truncated key length");
    size_t n = static_cast<uint8_t>(entry[0]) | static_cast<size_t>(static_cast<uint8_t>(entry[1]))
                                                    << 8;
    entry.remove_prefix(2);
    if (n == 0 || n > kIdempotencyKeyBytesMax) return bad("key length out of range");
    if (entry.size() < n) return bad("truncated key");
    v.key = entry.substr(0, n);
    entry.remove_prefix(n);
  }
  v.payload = entry;
  return v;
}

void append_forwarded(std::string* body, GroupId group, std::string_view entry) {
  RAFTD_ASSERT(entry.size() <= UINT32_MAX, "forwarded entry over 4 GiB");
  put_u64(body, group.value());
  put_u32(body, static_cast<uint32_t>(entry.size()));
  body->append(entry);
}

Result<std::vector<ForwardedEntry>> decode_forwarded(std::string_view body) {
  std::vector<ForwardedEntry> out;
  size_t at = 0;
  while (at < body.size()) {
    if (out.size() == kForwardBatchEntriesMax) {
      return Status(Code::kTooLarge,
                    fmt::format("forwarded batch: over {} entries", kForwardBatchEntriesMax));
    }
    if (body.size() - at < kForwardRecordHeaderBytes) {
      return Status(
          Code::kCorruption,
          fmt::format("forwarded batch: record {} at byte {}: truncated header", out.size(), at));
    }
    const uint64_t group = get_u64(body.substr(at));
    const uint32_t length = get_u32(body.substr(at + 8));
    if (length > body.size() - at - kForwardRecordHeaderBytes) {
      return Status(Code::kCorruption,
                    fmt::format("forwarded batch: record {} at byte {}: length {} past the end",
                                out.size(), at, length));
    }
    out.push_back({GroupId(group), body.substr(at + kForwardRecordHeaderBytes, length)});
    at += kForwardRecordHeaderBytes + length;
  }
  return out;
}

void append_forward_answer(std::string* body, const ForwardAnswer& a) {
  body->push_back(static_cast<char>(a.status & 0xff));
  body->push_back(static_cast<char>(a.status >> 8));
  body->push_back(static_cast<char>(a.replay ? 1 : 0));
  put_u64(body, a.index.value());
}

Result<std::vector<ForwardAnswer>> decode_forward_answers(std::string_view body, size_t count) {
  if (body.size() != count * kForwardAnswerBytes) {
    return Status(Code::kCorruption,
                  fmt::format("forward answers: {} bytes for {} entries (want {})", body.size(),
                              count, count * kForwardAnswerBytes));
  }
  std::vector<ForwardAnswer> out(count);
  for (size_t i = 0; i < count; ++i) {
    std::string_view r = body.substr(i * kForwardAnswerBytes, kForwardAnswerBytes);
    const uint8_t flags = static_cast<uint8_t>(r[2]);
    if ((flags & ~1u) != 0) {
      return Status(Code::kCorruption,
                    fmt::format("forward answers: answer {}: reserved flag bits {:#x}", i, flags));
    }
    out[i].status = static_cast<uint16_t>(static_cast<uint8_t>(r[0]) |
                                          static_cast<uint16_t>(static_cast<uint8_t>(r[1])) << 8);
    out[i].replay = (flags & 1u) != 0;
    out[i].index = LogIndex(get_u64(r.substr(3)));
  }
  return out;
}

}  // namespace raftd::node
