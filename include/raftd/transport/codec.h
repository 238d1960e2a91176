// The peer stream's wire format (doc/transport.md is the specification): frames carrying batches
// of raft::Message for any groups, a compact frame for the heartbeats of one tick, and a
// keep-alive frame; an incremental decoder fed arbitrary byte slices; and the validation every
// received message passes before it may reach raft::Group::step.
//
// Frame: [u32 body_bytes][u8 type][u8 version][u16 reserved = 0][u64 checksum][body]
//   checksum = XXH3_64bits_withSeed(body, body_bytes, seed = the header's first 8 bytes read as
//   a little-endian u64). All integers little endian; inside bodies, LEB128 varints.
//
// Who calls what: the sender's Transport encodes what raft produced for one peer with
// encode_batch(); the receiver feeds the stream's bytes to a Decoder made for the handshaken
// (peer, self) pair and runs validate() on every decoded message. Nothing here does I/O or
// keeps global state; every function is safe on any thread for distinct objects.
//
// Errors: Decoder::feed returns kCorruption (checksum, structure, unknown type or version) or
// kTooLarge (a limit below) and stays failed; the stream must then be closed. validate() returns
// kNotFound for a group not hosted here (drop the message, keep the stream) and kCorruption for
// anything else (close the stream).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "raftd/base/ids.h"
#include "raftd/base/status.h"
#include "raftd/raft/types.h"
#include "raftd/wal/format.h"

namespace raftd::transport {

// ---- limits (each with its reason) ----

// Largest raft Config::max_msg_bytes the transport carries. Raft always sends at least one entry,
// so one message's entries weigh at most this plus one entry. The daemon's configuration must
// refuse a larger max_msg_bytes.
inline constexpr uint64_t kMaxMsgBytesSupported = 8ull << 20;
// Largest entry payload. The WAL refuses bigger entries (wal::kEntryBytesMax), so no leader can
// hold one; anything bigger on the wire is garbage.
inline constexpr uint64_t kEntryBytesMax = wal::kEntryBytesMax;
// Entries in one message: raft counts every entry at least Entry::kOverheadBytes against
// max_msg_bytes, plus the one entry it always sends. Bounds the vector a tiny frame of empty
// entries can make the receiver build.
inline constexpr uint64_t kEntriesPerMessageMax =
    kMaxMsgBytesSupported / raft::Entry::kOverheadBytes + 1;
// Frame body, hard limit of the decoder (the sender's TransportOptions::frame_bytes_max is a
// softer target that only a single large message exceeds). One message of the largest size must
// fit, with room for its fixed fields and entry headers.
inline constexpr uint64_t kFrameBytesMax = 16ull << 20;
// Encoded bytes of a message besides its entries and snapshot metadata: type, flags and eleven
// varints of at most 10 bytes.
inline constexpr uint64_t kMessageFixedBytesMax = 2 + 11 * 10;
// Encoded bytes of an entry besides its payload: a type byte, term and index below
// kTermIndexMax (9-byte varints) and a payload length below kEntryBytesMax (4 bytes). Not more
// than raft's own per-entry overhead, so a message's encoding never exceeds entries_bytes() plus
// its fixed fields.
inline constexpr uint64_t kEntryHeaderBytesMax = 1 + 9 + 9 + 4;
static_assert(kEntryHeaderBytesMax <= raft::Entry::kOverheadBytes);
static_assert(kFrameBytesMax >= 4 + kMessageFixedBytesMax + kMaxMsgBytesSupported + kEntryBytesMax +
                                    raft::Entry::kOverheadBytes,
              "the largest message raft may send must fit one frame");
// Messages in one kMessages frame: bounds the receiver's vector of Message structs (about 200
// bytes each) built from one frame whatever its byte size. The encoder starts a new frame there.
inline constexpr uint32_t kMessagesPerFrameMax = 16384;
// Tuples in one kHeartbeats frame: a node hosts up to this many groups with one peer before the
// encoder needs a second frame for one tick. Bounds the expansion of one frame (a tuple is at
// least 5 bytes on the wire, a Message about 200 in memory).
inline constexpr uint32_t kHeartbeatsPerFrameMax = 65536;
// Node ids in each list of a snapshot's ConfState. Far above any real group's membership; bounds
// what a snapshot message can make the receiver allocate (4 lists of 10-byte varints: 40 KiB).
inline constexpr uint32_t kConfNodesMax = 1024;
// Largest term or index accepted: raft's own bound (raft::check_message), the same entity.
using raft::kTermIndexMax;

// ---- frame layout ----

inline constexpr uint8_t kWireVersion = 1;
inline constexpr size_t kFrameHeaderBytes = 16;

enum class FrameType : uint8_t {
  kMessages = 1,    // u32 count, then count encoded messages
  kHeartbeats = 2,  // u32 count, then count heartbeat tuples (from/to implied by the stream)
  kPing = 3,        // empty body: keeps an idle stream alive
};

// Bit flags of a heartbeat tuple.
inline constexpr uint8_t kHeartbeatFlagResponse = 1;  // kHeartbeatResp (else kHeartbeat)
inline constexpr uint8_t kHeartbeatFlagReject = 2;
inline constexpr uint8_t kHeartbeatFlagsKnown = kHeartbeatFlagResponse | kHeartbeatFlagReject;

// Bit flags of an encoded message.
inline constexpr uint8_t kMessageFlagReject = 1;
inline constexpr uint8_t kMessageFlagTransfer = 2;
inline constexpr uint8_t kMessageFlagSnapshot = 4;
inline constexpr uint8_t kMessageFlagsKnown =
    kMessageFlagReject | kMessageFlagTransfer | kMessageFlagSnapshot;

// Highest MessageType value the wire knows.
inline constexpr uint8_t kMessageTypeMax = static_cast<uint8_t>(raft::MessageType::kQuiesce);

// ---- encoding ----

// True when `m` can travel as a heartbeat tuple without losing a field: kHeartbeat or
// kHeartbeatResp with no entries, snapshot, index, log_term, reject_hint, transfer or
// transfer_target set.
bool heartbeat_compactable(const raft::Message& m);

// Exact encoded size of `m` inside a kMessages frame.
uint64_t encoded_message_bytes(const raft::Message& m);

struct EncodeStats {
  uint64_t frames = 0;
  uint64_t messages = 0;
  uint64_t heartbeats = 0;  // kHeartbeat and kHeartbeatResp messages encoded, in either form
  uint64_t coalesced = 0;   // of those, the ones that went into kHeartbeats frames as tuples
  uint64_t too_large = 0;   // messages not encoded: over kFrameBytesMax or kEntriesPerMessageMax
};

// Appends frames carrying `msgs` (all addressed to one peer, all from this node) to `out`:
// compactable heartbeats of every group in kHeartbeats frames (coalesced; with
// `coalesce_heartbeats` false they stay kMessages items like any other), everything else in
// kMessages frames, in order. A frame is closed once adding the next message would take its body
// over `frame_bytes_target` (a single bigger message still gets a frame of its own, up to
// kFrameBytesMax). A snapshot's data is never encoded (only its metadata). Messages over the hard
// limits are skipped and counted in too_large.
EncodeStats encode_batch(std::span<const raft::Message> msgs, std::string& out,
                         uint64_t frame_bytes_target = 1ull << 20, bool coalesce_heartbeats = true);

// Appends one kPing frame to `out`.
void encode_ping(std::string& out);

// ---- decoding ----

struct DecoderStats {
  uint64_t bytes = 0;
  uint64_t frames = 0;
  uint64_t message_frames = 0;
  uint64_t heartbeat_frames = 0;
  uint64_t pings = 0;
  uint64_t messages = 0;  // heartbeat tuples included
};

// Incremental decoder of one stream. Bytes may be split anywhere. Heartbeat tuples are expanded
// into Messages with from = peer and to = self (the handshaken pair). Memory: at most one frame
// body (grown as its bytes arrive, never from the announced length alone) plus the messages of
// one frame.
class Decoder {
 public:
  Decoder(NodeId peer, NodeId self, uint64_t frame_bytes_max = kFrameBytesMax);

  // Consumes all of `bytes`; every message of every frame completed by them is appended to
  // `out`. On error nothing more is decoded (every later call returns the same error); messages
  // of frames completed before the bad one are in `out`.
  [[nodiscard]] Status feed(std::string_view bytes, std::vector<raft::Message>& out);

  // Bytes of an incomplete frame held.
  size_t buffered_bytes() const { return buf_.size(); }
  // A frame has started and not completed (the stream ended mid-frame if it ends now).
  bool mid_frame() const { return !buf_.empty(); }
  const DecoderStats& stats() const { return stats_; }
  const Status& status() const { return status_; }

 private:
  Status parse_frame(std::string_view header, std::string_view body,
                     std::vector<raft::Message>& out);

  NodeId peer_;
  NodeId self_;
  uint64_t frame_bytes_max_;
  std::string buf_;    // header, then body, of the frame in progress
  uint64_t need_ = 0;  // total bytes (header + body) of the frame in progress, once known
  Status status_;
  DecoderStats stats_;
};

// Decodes one complete kMessages or kHeartbeats frame body (no header) into `out`. Used by the
// Decoder and by tests; kCorruption/kTooLarge on anything malformed.
[[nodiscard]] Status decode_frame_body(FrameType type, std::string_view body, NodeId peer,
                                       NodeId self, std::vector<raft::Message>& out);

// ---- validation ----

struct ValidationContext {
  NodeId peer;  // the handshaken sender: every message's `from`
  NodeId self;  // this node: every message's `to`
  // Whether this node hosts the group. Unset: every group is hosted.
  std::function<bool(GroupId)> hosts_group;
};

// Checks that `m` is safe to give to raft::Group::step: from/to, known group, the wire's limits
// and raft::check_message(), the shape every honest replica's message has (doc/transport.md,
// "Validation"). kNotFound: group not hosted here; kCorruption: anything else, with the rule in
// the message.
[[nodiscard]] Status validate(const raft::Message& m, const ValidationContext& ctx);

// Field-by-field equality of two messages as the wire carries them (a snapshot's data is not
// compared: it never travels on the stream).
bool wire_equal(const raft::Message& a, const raft::Message& b);

}  // namespace raftd::transport
