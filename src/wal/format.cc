#include "raftd/wal/format.h"

#include <xxhash.h>

#include <algorithm>

namespace raftd::wal {

std::string_view frame_type_name(FrameType t) {
  switch (t) {
    case FrameType::kInvalid: return "INVALID";
    case FrameType::kEntries: return "ENTRIES";
    case FrameType::kHardState: return "HARD_STATE";
    case FrameType::kTruncate: return "TRUNCATE";
    case FrameType::kSnapshotMark: return "SNAPSHOT_MARK";
    case FrameType::kCheckpoint: return "CHECKPOINT";
  }
  return "UNKNOWN";
}

std::string_view header_error_name(HeaderError e) {
  switch (e) {
    case HeaderError::kOk: return "ok";
    case HeaderError::kShort: return "file shorter than a segment header";
    case HeaderError::kMagic: return "bad magic (not a raftd WAL segment)";
    case HeaderError::kChecksum: return "segment header checksum mismatch";
    case HeaderError::kVersion: return "unsupported format version";
    case HeaderError::kHeaderBytes: return "bad header size";
    case HeaderError::kSalt: return "segment salt is 0";
    case HeaderError::kCapacity: return "segment capacity out of range";
    case HeaderError::kWriteBytes: return "write_bytes_max out of range";
    case HeaderError::kNonZero: return "non-zero byte in the header's zero area";
  }
  return "unknown";
}

uint64_t checksum(std::span<const std::byte> bytes, uint64_t seed) {
  return XXH3_64bits_withSeed(bytes.data(), bytes.size(), seed);
}

void encode_segment_header(const SegmentHeader& h, std::span<std::byte, kSegmentHeaderBytes> out) {
  std::fill(out.begin(), out.end(), std::byte{0});
  std::byte* p = out.data();
  std::memcpy(p, kSegmentMagic, sizeof(kSegmentMagic));
  put_u32(p + 8, kFormatVersion);
  put_u32(p + 12, uint32_t(kSegmentHeaderBytes));
  put_u64(p + 16, h.sequence);
  put_u64(p + 24, h.salt);
  put_u64(p + 32, h.capacity);
  put_u64(p + 40, h.write_bytes_max);
  put_u64(p + 48, checksum({p, kSegmentHeaderFieldBytes}, kSegmentHeaderSeed));
}

HeaderError decode_segment_header(std::span<const std::byte> in, SegmentHeader* out,
                                  uint64_t* bad_byte) {
  if (in.size() < kSegmentHeaderBytes) return HeaderError::kShort;
  const std::byte* p = in.data();
  if (std::memcmp(p, kSegmentMagic, sizeof(kSegmentMagic)) != 0) return HeaderError::kMagic;
  if (get_u64(p + 48) != checksum({p, kSegmentHeaderFieldBytes}, kSegmentHeaderSeed)) {
    return HeaderError::kChecksum;
  }
  if (get_u32(p + 8) != kFormatVersion) return HeaderError::kVersion;
  if (get_u32(p + 12) != kSegmentHeaderBytes) return HeaderError::kHeaderBytes;
  SegmentHeader h;
  h.sequence = get_u64(p + 16);
  h.salt = get_u64(p + 24);
  h.capacity = get_u64(p + 32);
  h.write_bytes_max = get_u64(p + 40);
  if (h.salt == 0) return HeaderError::kSalt;
  if (h.capacity < kSegmentBytesMin || h.capacity > kSegmentBytesMax ||
      h.capacity % kSegmentHeaderBytes != 0) {
    return HeaderError::kCapacity;
  }
  if (h.write_bytes_max < kWriteBytesMin || h.write_bytes_max > h.capacity / 4) {
    return HeaderError::kWriteBytes;
  }
  for (uint64_t i = kSegmentHeaderUsedBytes; i < kSegmentHeaderBytes; ++i) {
    if (p[i] != std::byte{0}) {
      if (bad_byte != nullptr) *bad_byte = i;
      return HeaderError::kNonZero;
    }
  }
  *out = h;
  return HeaderError::kOk;
}

void encode_frame_header(const FrameHeader& h, std::byte* out) {
  put_u64(out, h.header_checksum);
  put_u64(out + 8, h.body_checksum);
  put_u64(out + 16, h.prev_checksum);
  put_u64(out + 24, h.frame_number);
  put_u64(out + 32, h.batch);
  put_u32(out + 40, h.batch_index);
  put_u32(out + 44, h.length);
  put_u16(out + 48, uint16_t(h.type));
  put_u16(out + 50, h.flags);
  put_u32(out + 52, h.item_count);
}

void decode_frame_header(const std::byte* in, FrameHeader* out) {
  out->header_checksum = get_u64(in);
  out->body_checksum = get_u64(in + 8);
  out->prev_checksum = get_u64(in + 16);
  out->frame_number = get_u64(in + 24);
  out->batch = get_u64(in + 32);
  out->batch_index = get_u32(in + 40);
  out->length = get_u32(in + 44);
  out->type = FrameType(get_u16(in + 48));
  out->flags = get_u16(in + 50);
  out->item_count = get_u32(in + 52);
}

uint64_t frame_header_checksum(const std::byte* in, uint64_t salt) {
  return checksum({in + 8, kFrameHeaderBytes - 8}, salt);
}

std::string_view frame_header_rule_error(const FrameHeader& h) {
  if (uint16_t(h.type) == 0 || uint16_t(h.type) > kFrameTypeMax) return "unknown frame type";
  if ((h.flags & ~kFrameFlagsKnown) != 0) return "unknown flag bits set";
  if (h.length % kFrameAlignBytes != 0) return "body length is not a multiple of 8";
  return {};
}

uint64_t encode_frame(FrameHeader& h, std::span<const std::byte> body, uint64_t salt,
                      std::byte* out) {
  h.length = uint32_t(body.size());
  h.body_checksum = checksum(body, salt);
  encode_frame_header(h, out);
  h.header_checksum = frame_header_checksum(out, salt);
  put_u64(out, h.header_checksum);
  if (!body.empty()) std::memcpy(out + kFrameHeaderBytes, body.data(), body.size());
  uint64_t padded = align_up(body.size(), kFrameAlignBytes);
  std::fill(out + kFrameHeaderBytes + body.size(), out + kFrameHeaderBytes + padded, std::byte{0});
  return h.header_checksum;
}

bool is_zero_header(const std::byte* in) {
  for (uint64_t i = 0; i < kFrameHeaderBytes; i += 8) {
    if (get_u64(in + i) != 0) return false;
  }
  return true;
}

}  // namespace raftd::wal
