// Envelope: what raftd puts around the payload of every normal log entry it proposes.
//
// A proposal carries, besides the client's bytes, who proposed it (the origin node and a request
// id unique on that node, so the node that took the proposal can match the applied entry to the
// waiting client even after a leader change) and an optional Idempotency-Key. The envelope is
// stripped before the application sees the payload: UpdateEntries carries `payload` only.
//
// Byte layout (little endian), doc/node.md "Entry envelope":
//   u8 version (= 1) | u8 kind (1 = application, 2 = meta command) | u8 flags (bit 0: key
//   present; other bits zero) | u64 origin node | u64 request id |
//   [u16 key length (1..kIdempotencyKeyBytesMax) | key bytes]  when bit 0 is set |
//   payload (the rest of the entry)
// decode refuses an unknown version or kind, nonzero reserved flag bits, a truncated header and a
// key of length 0 or over the limit, with kCorruption. Every replica decodes the same bytes the
// same way, so a refused entry is refused everywhere (it is applied as an empty no-op and its
// proposer gets an error).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "raftd/base/ids.h"
#include "raftd/base/status.h"

namespace raftd::node {

// Idempotency keys are client tokens (UUIDs and the like); 128 bytes holds any of them twice.
inline constexpr size_t kIdempotencyKeyBytesMax = 128;
// Header bytes before the key: version, kind, flags, origin, request id.
inline constexpr size_t kEnvelopeFixedBytes = 3 + 8 + 8;

enum class EntryKind : uint8_t { kApp = 1, kMeta = 2 };

struct EnvelopeView {
  EntryKind kind = EntryKind::kApp;
  NodeId origin;
  uint64_t request_id = 0;
  std::string_view key;      // empty: no Idempotency-Key
  std::string_view payload;  // what the application (or the meta state machine) gets
};

std::string encode_envelope(EntryKind kind, NodeId origin, uint64_t request_id,
                            std::string_view key, std::string_view payload);
// The views point into `entry`, which must outlive them.
Result<EnvelopeView> decode_envelope(std::string_view entry);

// Forwarded proposals, batched (doc/node.md "Write path"): a follower sends the entries it took
// for groups another node leads in one POST per leader and reactor turn, and the leader answers
// each in order.
//   request body: records   u64 group | u32 length | `length` bytes (an encoded envelope)
//   answer body:  records   u16 status | u8 flags (bit 0: replay; others zero) | u64 index
// (little endian; nothing before, between or after the records). Status 200: appended at
// `index` (or, with replay, found at `index` under its Idempotency-Key: nothing appended); 503:
// not appended; 400: a malformed entry (the outcome is unknown to the proposer, as for any
// failure that is not an explicit "not appended").
struct ForwardedEntry {
  GroupId group;
  std::string_view entry;  // points into the body
};
struct ForwardAnswer {
  uint16_t status = 0;
  bool replay = false;
  LogIndex index;
  bool operator==(const ForwardAnswer&) const = default;
};
inline constexpr size_t kForwardRecordHeaderBytes = 12;
inline constexpr size_t kForwardAnswerBytes = 11;
// Entries per batch: the follower starts another batch beyond it, the leader refuses more (400).
inline constexpr size_t kForwardBatchEntriesMax = 4096;
void append_forwarded(std::string* body, GroupId group, std::string_view entry);
// kCorruption naming the record and byte offset when the body breaks a rule above, kTooLarge
// beyond kForwardBatchEntriesMax records.
Result<std::vector<ForwardedEntry>> decode_forwarded(std::string_view body);
void append_forward_answer(std::string* body, const ForwardAnswer& a);
// kCorruption unless the body holds exactly `count` well-formed answers.
Result<std::vector<ForwardAnswer>> decode_forward_answers(std::string_view body, size_t count);

}  // namespace raftd::node
