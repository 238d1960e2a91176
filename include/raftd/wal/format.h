// The WAL's on-disk byte layout. doc/wal-format.md is the specification; this header is the one
// place that knows offsets, sizes and checksums, shared by the writer, recovery and the tools.
//
// Segment file: [header 4096 B][frame][frame]...[zeros to capacity]
//   header  0 magic "RAFTDWAL" | 8 u32 version | 12 u32 header_bytes | 16 u64 sequence
//          24 u64 salt | 32 u64 first_frame (0 = prepared) | 40 u64 prev_checksum
//          48 u64 capacity | 56 u64 write_bytes_max | 64 u64 XXH3(bytes[0,64), kSegmentHeaderSeed)
//   frame   0 u64 header_checksum = XXH3(header[8,48), salt) | 8 u64 body_checksum
//          16 u64 prev_checksum | 24 u64 frame_number | 32 u32 length | 36 u16 type
//          38 u16 flags | 40 u32 item_count | 44 u32 reserved | body, zero-padded to 8
// All integers little-endian. Pure functions, no I/O; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

namespace raftd::wal {

inline constexpr char kSegmentMagic[8] = {'R', 'A', 'F', 'T', 'D', 'W', 'A', 'L'};
inline constexpr uint32_t kFormatVersion = 1;
// One page, so the first frame starts page-aligned (an O_DIRECT mode can be added later).
inline constexpr uint64_t kSegmentHeaderBytes = 4096;
// Bytes of the header covered by its checksum; the checksum follows them in the same sector.
inline constexpr uint64_t kSegmentHeaderFieldBytes = 64;
inline constexpr uint64_t kSegmentHeaderSeed = 0x52414654445741ULL;
inline constexpr uint64_t kFrameHeaderBytes = 48;
// Frames start at multiples of 8 so a frame header never straddles a word (etcd's rule).
inline constexpr uint64_t kFrameAlignBytes = 8;
// Smallest segment: header + a checkpoint for a few groups + a small batch. Tests use this.
inline constexpr uint64_t kSegmentBytesMin = 64 * 1024;
// Largest segment: keeps a whole-segment read buffer and u32 frame lengths comfortable.
inline constexpr uint64_t kSegmentBytesMax = 1ULL << 30;
inline constexpr uint64_t kSegmentBytesDefault = 64ULL << 20;
// One entry's payload must fit in one batch of the smallest useful size.
inline constexpr uint64_t kEntryBytesMax = 4ULL << 20;

// Frame flag: the last frame of a batch (one write + one fdatasync). Recovery uses it to tell a
// torn last batch from damage followed by later, acknowledged batches.
inline constexpr uint16_t kFrameFlagBatchEnd = 1;

enum class FrameType : uint16_t {
  kInvalid = 0,  // an all-zero header: end of the written part of a segment
  kEntries = 1,
  kHardState = 2,
  kTruncate = 3,
  kSnapshotMark = 4,
  kCheckpoint = 5,
};
std::string_view frame_type_name(FrameType t);

// Fixed record sizes (bytes) of each body type; see doc/wal-format.md.
inline constexpr uint64_t kEntriesBlockBytes = 24;  // group, first_index, count, reserved
inline constexpr uint64_t kEntryHeaderBytes = 16;   // term, length, entry_type, reserved
inline constexpr uint64_t kHardStateRecordBytes = 32;
inline constexpr uint64_t kTruncateRecordBytes = 16;
inline constexpr uint64_t kSnapshotMarkRecordBytes = 24;
inline constexpr uint64_t kCheckpointRecordBytes = 64;

constexpr uint64_t align_up(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }
// Bytes a frame occupies in the file: header + body + padding.
constexpr uint64_t frame_bytes(uint64_t body_length) {
  return kFrameHeaderBytes + align_up(body_length, kFrameAlignBytes);
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

struct SegmentHeader {
  uint64_t sequence = 0;
  uint64_t salt = 0;
  uint64_t first_frame = 0;  // 0: prepared, no frame written yet
  uint64_t prev_checksum = 0;
  uint64_t capacity = 0;
  uint64_t write_bytes_max = 0;  // largest single write into this segment; 0 while prepared

  bool is_prepared() const { return first_frame == 0; }
};

// Writes the full kSegmentHeaderBytes (fields, checksum, zeros) into out.
void encode_segment_header(const SegmentHeader& h, std::span<std::byte, kSegmentHeaderBytes> out);

enum class HeaderError { kOk, kMagic, kVersion, kHeaderBytes, kChecksum };
std::string_view header_error_name(HeaderError e);
// Decodes and validates the first kSegmentHeaderBytes of a segment.
HeaderError decode_segment_header(std::span<const std::byte> in, SegmentHeader* out);
// The salt field read without validation (to test frames behind a torn header).
inline uint64_t raw_salt(std::span<const std::byte> in) { return get_u64(in.data() + 24); }

struct FrameHeader {
  uint64_t header_checksum = 0;
  uint64_t body_checksum = 0;
  uint64_t prev_checksum = 0;
  uint64_t frame_number = 0;
  uint32_t length = 0;
  FrameType type = FrameType::kInvalid;
  uint16_t flags = 0;
  uint32_t item_count = 0;
};

// Fills in both checksums of h from the body and writes header + body + zero padding to out,
// which must hold frame_bytes(body.size()) bytes. Returns h.header_checksum.
uint64_t encode_frame(FrameHeader& h, std::span<const std::byte> body, uint64_t salt,
                      std::byte* out);
// Encodes the frame header fields (checksums included as given) into 48 bytes.
void encode_frame_header(const FrameHeader& h, std::byte* out);
void decode_frame_header(const std::byte* in, FrameHeader* out);
// True when the 48 header bytes are all zero (the end of a segment's written data).
bool is_zero_header(const std::byte* in);
// The header checksum of the 48 header bytes as stored (over bytes [8,48)).
uint64_t frame_header_checksum(const std::byte* in, uint64_t salt);

}  // namespace raftd::wal
