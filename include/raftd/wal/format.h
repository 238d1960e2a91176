// The WAL's on-disk byte layout, format version 2. doc/wal-format.md is the specification; this
// header is the one place that knows offsets, sizes and checksums, shared by the writer,
// recovery and the tools.
//
// Segment file: [header 4096 B][frame][frame]...[zeros to capacity]
//   header  0 magic "RAFTDWAL" | 8 u32 version | 12 u32 header_bytes | 16 u64 sequence
//          24 u64 salt | 32 u64 capacity | 40 u64 write_bytes_max
//          48 u64 XXH3(bytes[0,48), kSegmentHeaderSeed) | 56..4095 zero
//          Written once by the segment preparer and synced before the segment is used; never
//          rewritten.
//   frame   0 u64 header_checksum = XXH3(header[8,56), salt) | 8 u64 body_checksum
//          16 u64 prev_checksum | 24 u64 frame_number | 32 u64 batch | 40 u32 batch_index
//          44 u32 length (a multiple of 8) | 48 u16 type | 50 u16 flags | 52 u32 item_count
//          body of `length` bytes
// All integers little-endian. Pure functions, no I/O; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

namespace raftd::wal {

inline constexpr char kSegmentMagic[8] = {'R', 'A', 'F', 'T', 'D', 'W', 'A', 'L'};
// 2: immutable segment headers, batch numbers in every frame, atomic batches.
inline constexpr uint32_t kFormatVersion = 2;
// One page, so the first frame starts page-aligned (an O_DIRECT mode can be added later).
inline constexpr uint64_t kSegmentHeaderBytes = 4096;
// Bytes of the header covered by its checksum; the checksum follows them, then zeros.
inline constexpr uint64_t kSegmentHeaderFieldBytes = 48;
inline constexpr uint64_t kSegmentHeaderUsedBytes = kSegmentHeaderFieldBytes + 8;
inline constexpr uint64_t kSegmentHeaderSeed = 0x52414654445741ULL;
inline constexpr uint64_t kFrameHeaderBytes = 56;
// Frames start at multiples of 8 so a frame header never straddles a word (etcd's rule). Every
// record is a multiple of 8 bytes, so every body length is too and frames need no padding.
inline constexpr uint64_t kFrameAlignBytes = 8;
// Smallest segment: header + a checkpoint for a few groups + a small batch. Tests use this.
inline constexpr uint64_t kSegmentBytesMin = 64 * 1024;
// Largest segment: keeps a whole-segment read buffer and u32 frame lengths comfortable.
inline constexpr uint64_t kSegmentBytesMax = 1ULL << 30;
inline constexpr uint64_t kSegmentBytesDefault = 64ULL << 20;
// Largest entry payload the format allows. The writer also needs the entry's ENTRIES frame to
// fit one batch (doc/wal-format.md, "Limits"): with the default 1 MiB batch limit entries are
// smaller than this.
inline constexpr uint64_t kEntryBytesMax = 4ULL << 20;
// Smallest write_bytes_max (and batch limit): one page.
inline constexpr uint64_t kWriteBytesMin = 4096;
// Groups per CHECKPOINT frame (64 B each: 1 MiB bodies). Part of the format: recovery computes
// the size of a segment's first write from it.
inline constexpr uint64_t kCheckpointRecordsPerFrame = 16384;

// Frame flag: the last frame of a batch (one write + one fdatasync).
inline constexpr uint16_t kFrameFlagBatchEnd = 1;
inline constexpr uint16_t kFrameFlagsKnown = kFrameFlagBatchEnd;

enum class FrameType : uint16_t {
  kInvalid = 0,  // an all-zero header: end of the written part of a segment
  kEntries = 1,
  kHardState = 2,
  kTruncate = 3,
  kSnapshotMark = 4,
  kCheckpoint = 5,
};
inline constexpr uint16_t kFrameTypeMax = 5;
std::string_view frame_type_name(FrameType t);

// Fixed record sizes (bytes) of each body type; see doc/wal-format.md.
inline constexpr uint64_t kEntriesBlockBytes = 24;  // group, first_index, count, reserved
inline constexpr uint64_t kEntryHeaderBytes = 16;   // term, length, entry_type, reserved
inline constexpr uint64_t kHardStateRecordBytes = 32;
inline constexpr uint64_t kTruncateRecordBytes = 16;
inline constexpr uint64_t kSnapshotMarkRecordBytes = 24;
inline constexpr uint64_t kCheckpointRecordBytes = 64;

constexpr uint64_t align_up(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }
// Bytes a frame occupies in the file: header + body (a body length is a multiple of 8).
constexpr uint64_t frame_bytes(uint64_t body_length) {
  return kFrameHeaderBytes + align_up(body_length, kFrameAlignBytes);
}
// CHECKPOINT frames that list `groups` groups: full frames of kCheckpointRecordsPerFrame, the
// last one partial; one empty frame when there is no group.
constexpr uint64_t checkpoint_frames(uint64_t groups) {
  return groups == 0 ? 1 : (groups + kCheckpointRecordsPerFrame - 1) / kCheckpointRecordsPerFrame;
}
constexpr uint64_t checkpoint_bytes(uint64_t groups) {
  return checkpoint_frames(groups) * kFrameHeaderBytes + groups * kCheckpointRecordBytes;
}
// The largest first write into a segment (its CHECKPOINT frames, then one batch of records)
// when `groups` groups are checkpointed; every later write is at most write_bytes_max.
constexpr uint64_t first_write_bytes_max(uint64_t groups, uint64_t write_bytes_max) {
  return checkpoint_bytes(groups) + write_bytes_max;
}

inline void put_u16(std::byte* p, uint16_t v) {
  for (int i = 0; i < 2; ++i) p[i] = std::byte(v >> (8 * i));
}
inline void put_u32(std::byte* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = std::byte(v >> (8 * i));
}
inline void put_u64(std::byte* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = std::byte(v >> (8 * i));
}
inline uint16_t get_u16(const std::byte* p) {
  return uint16_t(uint16_t(p[0]) | uint16_t(p[1]) << 8);
}
inline uint32_t get_u32(const std::byte* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | uint32_t(p[i]);
  return v;
}
inline uint64_t get_u64(const std::byte* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | uint64_t(p[i]);
  return v;
}

uint64_t checksum(std::span<const std::byte> bytes, uint64_t seed);

// The segment header. Immutable: written by the preparer, synced before the segment is used.
struct SegmentHeader {
  uint64_t sequence = 0;
  uint64_t salt = 0;
  uint64_t capacity = 0;
  // The largest write into this segment after its first (the writer's batch limit when the
  // segment was prepared); the first write adds the CHECKPOINT frames (first_write_bytes_max).
  uint64_t write_bytes_max = 0;
  bool operator==(const SegmentHeader&) const = default;
};

// Writes the full kSegmentHeaderBytes (fields, checksum, zeros) into out.
void encode_segment_header(const SegmentHeader& h, std::span<std::byte, kSegmentHeaderBytes> out);

enum class HeaderError {
  kOk,
  kShort,        // fewer than kSegmentHeaderBytes bytes
  kMagic,        // not "RAFTDWAL"
  kChecksum,     // checksum over bytes [0,48) does not match
  kVersion,      // not kFormatVersion
  kHeaderBytes,  // header_bytes is not 4096
  kSalt,         // salt is 0
  kCapacity,     // not a multiple of 4096 in [kSegmentBytesMin, kSegmentBytesMax]
  kWriteBytes,   // write_bytes_max not in [kWriteBytesMin, capacity / 4]
  kNonZero,      // a byte of 56..4095 is not zero
};
std::string_view header_error_name(HeaderError e);
// Decodes and validates the first kSegmentHeaderBytes of a segment. On kNonZero, *bad_byte (if
// given) is the offset of the first non-zero byte of the zero area.
HeaderError decode_segment_header(std::span<const std::byte> in, SegmentHeader* out,
                                  uint64_t* bad_byte = nullptr);

struct FrameHeader {
  uint64_t header_checksum = 0;
  uint64_t body_checksum = 0;
  uint64_t prev_checksum = 0;
  uint64_t frame_number = 0;
  uint64_t batch = 0;        // batch number: node-wide, +1 per batch (one write + fdatasync)
  uint32_t batch_index = 0;  // position in the batch: 0 for its first frame
  uint32_t length = 0;       // body bytes, a multiple of 8
  FrameType type = FrameType::kInvalid;
  uint16_t flags = 0;
  uint32_t item_count = 0;
  bool batch_end() const { return (flags & kFrameFlagBatchEnd) != 0; }
  bool operator==(const FrameHeader&) const = default;
};

// Fills in both checksums of h from the body and writes header + body to out, which must hold
// frame_bytes(body.size()) bytes. body.size() must be a multiple of 8. Returns h.header_checksum.
uint64_t encode_frame(FrameHeader& h, std::span<const std::byte> body, uint64_t salt,
                      std::byte* out);
// Encodes the frame header fields (checksums included as given) into kFrameHeaderBytes.
void encode_frame_header(const FrameHeader& h, std::byte* out);
void decode_frame_header(const std::byte* in, FrameHeader* out);
// True when the kFrameHeaderBytes header bytes are all zero (the end of a segment's frames).
bool is_zero_header(const std::byte* in);
// The header checksum of the header bytes as stored (over bytes [8, kFrameHeaderBytes)).
uint64_t frame_header_checksum(const std::byte* in, uint64_t salt);
// True when the stored header checksum matches (a frame header written with this salt).
inline bool frame_header_valid(const std::byte* in, uint64_t salt) {
  return get_u64(in) == frame_header_checksum(in, salt) && !is_zero_header(in);
}
// The rules a frame header must follow whatever its place in the log: a known type, no unknown
// flag bits, a body length that is a multiple of 8. Returns an empty view when they hold, else
// what is wrong.
std::string_view frame_header_rule_error(const FrameHeader& h);

}  // namespace raftd::wal
