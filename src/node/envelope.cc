#include "raftd/node/envelope.h"

#include "raftd/base/assert.h"

namespace raftd::node {
namespace {

constexpr uint8_t kEnvelopeVersion = 1;
constexpr uint8_t kFlagKey = 1;

void put_u64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t get_u64(std::string_view b) {
  uint64_t x = 0;
  for (int i = 7; i >= 0; --i) x = x << 8 | static_cast<uint8_t>(b[i]);
  return x;
}
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

}  // namespace raftd::node
