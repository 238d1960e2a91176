#include "raftd/wal/records.h"

#include <fmt/format.h>

#include <algorithm>

namespace raftd::wal {

std::byte* BodyWriter::grow(uint64_t n) {
  size_t at = out_->size();
  out_->resize(at + n);
  return out_->data() + at;
}

void BodyWriter::entries_block(GroupId g, LogIndex first, uint32_t count) {
  std::byte* p = grow(kEntriesBlockBytes);
  put_u64(p, g.value());
  put_u64(p + 8, first.value());
  put_u32(p + 16, count);
  put_u32(p + 20, 0);
}

uint64_t BodyWriter::entry(const EntryView& e) {
  uint64_t len = e.data.size();
  std::byte* p = grow(kEntryHeaderBytes + align_up(len, kFrameAlignBytes));
  put_u64(p, e.term.value());
  put_u32(p + 8, uint32_t(len));
  put_u16(p + 12, e.type);
  put_u16(p + 14, 0);
  if (len > 0) std::memcpy(p + kEntryHeaderBytes, e.data.data(), len);
  std::fill(p + kEntryHeaderBytes + len, p + kEntryHeaderBytes + align_up(len, kFrameAlignBytes),
            std::byte{0});
  return uint64_t(p + kEntryHeaderBytes - out_->data());
}

void BodyWriter::hard_state(GroupId g, const HardState& hs) {
  std::byte* p = grow(kHardStateRecordBytes);
  put_u64(p, g.value());
  put_u64(p + 8, hs.term.value());
  put_u64(p + 16, hs.vote.value());
  put_u64(p + 24, hs.commit.value());
}

void BodyWriter::truncate(GroupId g, LogIndex from) {
  std::byte* p = grow(kTruncateRecordBytes);
  put_u64(p, g.value());
  put_u64(p + 8, from.value());
}

void BodyWriter::snapshot_mark(GroupId g, const SnapshotMark& m) {
  std::byte* p = grow(kSnapshotMarkRecordBytes);
  put_u64(p, g.value());
  put_u64(p + 8, m.index.value());
  put_u64(p + 16, m.term.value());
}

void BodyWriter::checkpoint(const CheckpointRecord& c) {
  std::byte* p = grow(kCheckpointRecordBytes);
  put_u64(p, c.group.value());
  put_u64(p + 8, c.hard.term.value());
  put_u64(p + 16, c.hard.vote.value());
  put_u64(p + 24, c.hard.commit.value());
  put_u64(p + 32, c.mark.index.value());
  put_u64(p + 40, c.mark.term.value());
  put_u64(p + 48, c.last_index.value());
  put_u64(p + 56, c.last_term.value());
}

namespace {

Status bad(std::string what) { return Status(Code::kCorruption, std::move(what)); }

bool all_zero(std::span<const std::byte> b) {
  return std::all_of(b.begin(), b.end(), [](std::byte x) { return x == std::byte{0}; });
}

// item_count counts group blocks, not entries (doc/wal-format.md, ENTRIES).
Status decode_entries(uint32_t items, std::span<const std::byte> body, BodyVisitor& v) {
  uint64_t off = 0;
  for (uint32_t i = 0; i < items; ++i) {
    if (body.size() - off < kEntriesBlockBytes) return bad("ENTRIES block header past body end");
    const std::byte* p = body.data() + off;
    GroupId g(get_u64(p));
    LogIndex first(get_u64(p + 8));
    uint32_t count = get_u32(p + 16);
    if (first.value() == 0) return bad(fmt::format("ENTRIES block of group {} at index 0", raw(g)));
    if (count == 0) return bad(fmt::format("ENTRIES block of group {} holds no entry", raw(g)));
    if (get_u32(p + 20) != 0) {
      return bad(fmt::format("ENTRIES block of group {}: reserved field is not 0", raw(g)));
    }
    off += kEntriesBlockBytes;
    if (Status s = v.on_entries_block(g, first, count); !s) return s;
    for (uint32_t k = 0; k < count; ++k) {
      if (body.size() - off < kEntryHeaderBytes) return bad("entry header past body end");
      const std::byte* e = body.data() + off;
      uint64_t len = get_u32(e + 8);
      if (len > kEntryBytesMax) {
        return bad(fmt::format("group {} entry {} is {} bytes, over the limit of {}", raw(g),
                               raw(first + k), len, kEntryBytesMax));
      }
      if (get_u16(e + 14) != 0) {
        return bad(
            fmt::format("group {} entry {}: reserved field is not 0", raw(g), raw(first + k)));
      }
      uint64_t payload = off + kEntryHeaderBytes;
      uint64_t padded = align_up(len, kFrameAlignBytes);
      if (body.size() - payload < padded) {
        return bad(fmt::format("group {} entry {} of {} bytes runs past the body end", raw(g),
                               raw(first + k), len));
      }
      if (!all_zero(body.subspan(payload + len, padded - len))) {
        return bad(fmt::format("group {} entry {}: padding is not zero", raw(g), raw(first + k)));
      }
      if (Status s = v.on_entry(g, first + k, Term(get_u64(e)), get_u16(e + 12),
                                body.subspan(payload, len), payload);
          !s) {
        return s;
      }
      off = payload + padded;
    }
  }
  if (off != body.size()) return bad("trailing bytes after the last ENTRIES block");
  return Status::ok();
}

template <typename Fn>
Status decode_fixed(uint32_t items, std::span<const std::byte> body, uint64_t record_bytes, Fn fn) {
  if (body.size() != uint64_t(items) * record_bytes) {
    return bad(fmt::format("body length {} is not {} records of {} bytes", body.size(), items,
                           record_bytes));
  }
  for (uint32_t i = 0; i < items; ++i) {
    if (Status s = fn(body.data() + uint64_t(i) * record_bytes); !s) return s;
  }
  return Status::ok();
}

}  // namespace

Status decode_body(FrameType type, uint32_t items, std::span<const std::byte> body,
                   BodyVisitor& v) {
  auto u = [](const std::byte* p, int k) { return get_u64(p + 8 * k); };
  if (items == 0 && type != FrameType::kCheckpoint) {
    return bad(fmt::format("{} frame holds no record", frame_type_name(type)));
  }
  switch (type) {
    case FrameType::kEntries: return decode_entries(items, body, v);
    case FrameType::kHardState:
      return decode_fixed(items, body, kHardStateRecordBytes, [&](const std::byte* p) {
        return v.on_hard_state(GroupId(u(p, 0)),
                               HardState{Term(u(p, 1)), NodeId(u(p, 2)), LogIndex(u(p, 3))});
      });
    case FrameType::kTruncate:
      return decode_fixed(items, body, kTruncateRecordBytes, [&](const std::byte* p) {
        return v.on_truncate(GroupId(u(p, 0)), LogIndex(u(p, 1)));
      });
    case FrameType::kSnapshotMark:
      return decode_fixed(items, body, kSnapshotMarkRecordBytes, [&](const std::byte* p) {
        return v.on_snapshot_mark(GroupId(u(p, 0)), SnapshotMark{LogIndex(u(p, 1)), Term(u(p, 2))});
      });
    case FrameType::kCheckpoint:
      return decode_fixed(items, body, kCheckpointRecordBytes, [&](const std::byte* p) {
        CheckpointRecord c{
            GroupId(u(p, 0)), HardState{Term(u(p, 1)), NodeId(u(p, 2)), LogIndex(u(p, 3))},
            SnapshotMark{LogIndex(u(p, 4)), Term(u(p, 5))}, LogIndex(u(p, 6)), Term(u(p, 7))};
        return v.on_checkpoint(c);
      });
    case FrameType::kInvalid: break;
  }
  return bad(fmt::format("unknown frame type {}", uint16_t(type)));
}

}  // namespace raftd::wal
