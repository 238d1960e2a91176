#include "raftd/wal/format.h"

#include <doctest/doctest.h>

#include <vector>

#include "raftd/wal/records.h"

namespace raftd::wal {
namespace {

TEST_CASE("wal::format: a segment header round-trips and its checksum covers every field") {
  SegmentHeader h{7, 0x1234567890abcdefULL, 1 << 20, 64 << 10};
  std::vector<std::byte> buf(kSegmentHeaderBytes);
  std::span<std::byte, kSegmentHeaderBytes> out(buf.data(), buf.size());
  encode_segment_header(h, out);
  SegmentHeader d;
  REQUIRE(decode_segment_header(buf, &d) == HeaderError::kOk);
  CHECK(d == h);
  // Every bit of the fields and of the checksum matters.
  for (size_t byte = 0; byte < kSegmentHeaderUsedBytes; ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::vector<std::byte> bad = buf;
      bad[byte] ^= std::byte(1 << bit);
      CHECK(decode_segment_header(bad, &d) != HeaderError::kOk);
    }
  }
  std::vector<std::byte> wrong = buf;
  wrong[0] = std::byte{'X'};
  CHECK(decode_segment_header(wrong, &d) == HeaderError::kMagic);
  CHECK(decode_segment_header(std::span(buf).first(100), &d) == HeaderError::kShort);
}

TEST_CASE("wal::format: header bytes 56..4095 must be zero (the checksum does not cover them)") {
  SegmentHeader h{1, 99, kSegmentBytesMin, 4096};
  std::vector<std::byte> buf(kSegmentHeaderBytes);
  encode_segment_header(h, std::span<std::byte, kSegmentHeaderBytes>(buf.data(), buf.size()));
  for (uint64_t at : {kSegmentHeaderUsedBytes, uint64_t(72), uint64_t(511), uint64_t(4095)}) {
    std::vector<std::byte> bad = buf;
    bad[at] = std::byte{0x80};
    SegmentHeader d;
    uint64_t where = 0;
    CHECK(decode_segment_header(bad, &d, &where) == HeaderError::kNonZero);
    CHECK(where == at);
  }
}

TEST_CASE("wal::format: header fields out of range are refused even with a valid checksum") {
  auto decode = [](SegmentHeader h) {
    std::vector<std::byte> buf(kSegmentHeaderBytes);
    encode_segment_header(h, std::span<std::byte, kSegmentHeaderBytes>(buf.data(), buf.size()));
    SegmentHeader d;
    return decode_segment_header(buf, &d);
  };
  CHECK(decode({1, 5, kSegmentBytesMin, 4096}) == HeaderError::kOk);
  CHECK(decode({1, 0, kSegmentBytesMin, 4096}) == HeaderError::kSalt);
  CHECK(decode({1, 5, kSegmentBytesMin + 8, 4096}) == HeaderError::kCapacity);
  CHECK(decode({1, 5, kSegmentBytesMin / 2, 4096}) == HeaderError::kCapacity);
  CHECK(decode({1, 5, kSegmentBytesMin, 4095}) == HeaderError::kWriteBytes);
  CHECK(decode({1, 5, kSegmentBytesMin, kSegmentBytesMin / 4 + 8}) == HeaderError::kWriteBytes);
}

TEST_CASE("wal::format: frame checksums depend on the salt and cover header and body") {
  std::vector<std::byte> body(24, std::byte{7});
  std::vector<std::byte> out(frame_bytes(body.size()));
  CHECK(out.size() == 56 + 24);
  FrameHeader h;
  h.prev_checksum = 99;
  h.frame_number = 5;
  h.batch = 3;
  h.batch_index = 2;
  h.type = FrameType::kHardState;
  h.flags = kFrameFlagBatchEnd;
  h.item_count = 0;
  uint64_t sum = encode_frame(h, body, 111, out.data());
  FrameHeader d;
  decode_frame_header(out.data(), &d);
  CHECK(d == h);
  CHECK(d.header_checksum == sum);
  CHECK(frame_header_checksum(out.data(), 111) == sum);
  CHECK(frame_header_valid(out.data(), 111));
  CHECK_FALSE(frame_header_valid(out.data(), 112));  // another salt: a stale frame
  CHECK(d.body_checksum == checksum(std::span(out).subspan(56, 24), 111));
  CHECK(d.batch == 3);
  CHECK(d.batch_index == 2);
  CHECK(d.batch_end());
  CHECK(d.length == 24);
  // Every header bit is covered by the header checksum.
  for (size_t byte = 0; byte < kFrameHeaderBytes; ++byte) {
    std::vector<std::byte> bad = out;
    bad[byte] ^= std::byte{0x20};
    CHECK_FALSE(frame_header_valid(bad.data(), 111));
  }
  CHECK_FALSE(is_zero_header(out.data()));
  std::vector<std::byte> zeros(kFrameHeaderBytes);
  CHECK(is_zero_header(zeros.data()));
  CHECK_FALSE(frame_header_valid(zeros.data(), 111));
}

TEST_CASE("wal::format: frame header rules: known type, no unknown flag bits, length % 8 == 0") {
  FrameHeader h;
  h.type = FrameType::kEntries;
  h.length = 16;
  CHECK(frame_header_rule_error(h).empty());
  h.flags = kFrameFlagBatchEnd;
  CHECK(frame_header_rule_error(h).empty());
  h.flags = 2;
  CHECK(frame_header_rule_error(h) == "unknown flag bits set");
  h.flags = 0;
  h.length = 12;
  CHECK_FALSE(frame_header_rule_error(h).empty());
  h.length = 16;
  h.type = FrameType(6);
  CHECK(frame_header_rule_error(h) == "unknown frame type");
  h.type = FrameType::kInvalid;
  CHECK(frame_header_rule_error(h) == "unknown frame type");
}

TEST_CASE("wal::format: checkpoint sizes: 16384 groups per frame, one empty frame for none") {
  CHECK(checkpoint_frames(0) == 1);
  CHECK(checkpoint_bytes(0) == kFrameHeaderBytes);
  CHECK(checkpoint_frames(1) == 1);
  CHECK(checkpoint_frames(16384) == 1);
  CHECK(checkpoint_frames(16385) == 2);
  CHECK(checkpoint_bytes(16385) == 2 * kFrameHeaderBytes + 16385 * kCheckpointRecordBytes);
  CHECK(first_write_bytes_max(3, 4096) == checkpoint_bytes(3) + 4096);
}

class Collect final : public BodyVisitor {
 public:
  Status on_entry(GroupId, LogIndex i, Term t, uint16_t type, std::span<const std::byte> d,
                  uint64_t) override {
    entries.push_back({i, t, type, std::string(reinterpret_cast<const char*>(d.data()), d.size())});
    return Status::ok();
  }
  Status on_entries_block(GroupId g, LogIndex, uint32_t) override {
    groups.push_back(g);
    return Status::ok();
  }
  Status on_hard_state(GroupId, const HardState& hs) override {
    hard.push_back(hs);
    return Status::ok();
  }
  Status on_truncate(GroupId, LogIndex) override { return Status::ok(); }
  Status on_snapshot_mark(GroupId, const SnapshotMark&) override { return Status::ok(); }
  Status on_checkpoint(const CheckpointRecord&) override { return Status::ok(); }
  std::vector<Entry> entries;
  std::vector<GroupId> groups;
  std::vector<HardState> hard;
};

TEST_CASE("wal::records: entries of several groups in one body decode in order") {
  std::vector<std::byte> body;
  BodyWriter w(&body);
  std::string a = "alpha", b = "bravo-longer-than-eight";
  w.entries_block(GroupId(1), LogIndex(10), 2);
  w.entry(EntryView{Term(3), 1, std::as_bytes(std::span(a))});
  w.entry(EntryView{Term(4), 2, std::as_bytes(std::span(b))});
  w.entries_block(GroupId(2), LogIndex(1), 1);
  w.entry(EntryView{Term(1), 0, {}});
  CHECK(body.size() % 8 == 0);
  Collect c;
  REQUIRE(decode_body(FrameType::kEntries, 2, body, c).is_ok());
  REQUIRE(c.entries.size() == 3);
  CHECK(c.entries[0] == Entry{LogIndex(10), Term(3), 1, a});
  CHECK(c.entries[1] == Entry{LogIndex(11), Term(4), 2, b});
  CHECK(c.entries[2] == Entry{LogIndex(1), Term(1), 0, ""});
  CHECK(c.groups == std::vector<GroupId>{GroupId(1), GroupId(2)});
  // A body cut short, or with bytes after the last record, is corruption.
  Collect c2;
  CHECK(decode_body(FrameType::kEntries, 2, std::span(body).first(body.size() - 8), c2).code() ==
        Code::kCorruption);
  std::vector<std::byte> longer = body;
  longer.resize(body.size() + 8);
  Collect c3;
  CHECK(decode_body(FrameType::kEntries, 2, longer, c3).code() == Code::kCorruption);
}

TEST_CASE("wal::records: fixed-size records must match the item count exactly") {
  std::vector<std::byte> body;
  BodyWriter w(&body);
  w.hard_state(GroupId(3), HardState{Term(5), NodeId(2), LogIndex(9)});
  Collect c;
  REQUIRE(decode_body(FrameType::kHardState, 1, body, c).is_ok());
  CHECK(c.hard.at(0) == HardState{Term(5), NodeId(2), LogIndex(9)});
  CHECK(decode_body(FrameType::kHardState, 2, body, c).code() == Code::kCorruption);
  CHECK(decode_body(FrameType(77), 1, body, c).code() == Code::kCorruption);
}

}  // namespace
}  // namespace raftd::wal

namespace raftd::wal {
namespace {

Status decode_one(FrameType t, uint32_t items, const std::vector<std::byte>& body) {
  class Null final : public BodyVisitor {
   public:
    Status on_entry(GroupId, LogIndex, Term, uint16_t, std::span<const std::byte>,
                    uint64_t) override {
      return Status::ok();
    }
    Status on_entries_block(GroupId, LogIndex, uint32_t) override { return Status::ok(); }
    Status on_hard_state(GroupId, const HardState&) override { return Status::ok(); }
    Status on_truncate(GroupId, LogIndex) override { return Status::ok(); }
    Status on_snapshot_mark(GroupId, const SnapshotMark&) override { return Status::ok(); }
    Status on_checkpoint(const CheckpointRecord&) override { return Status::ok(); }
  } v;
  return decode_body(t, items, body, v);
}

TEST_CASE("wal::records: reserved fields, entry padding and empty blocks are refused") {
  std::vector<std::byte> body;
  BodyWriter w(&body);
  std::string a = "abc";  // 5 bytes of padding
  w.entries_block(GroupId(1), LogIndex(1), 1);
  w.entry(EntryView{Term(1), 0, std::as_bytes(std::span(a))});
  REQUIRE(decode_one(FrameType::kEntries, 1, body).is_ok());
  auto with = [&](size_t at, std::byte v) {
    std::vector<std::byte> b = body;
    b[at] = v;
    return decode_one(FrameType::kEntries, 1, b);
  };
  Status block_reserved = with(20, std::byte{1});
  CHECK(block_reserved.code() == Code::kCorruption);
  CHECK(block_reserved.message().find("reserved") != std::string::npos);
  Status entry_reserved = with(kEntriesBlockBytes + 14, std::byte{1});
  CHECK(entry_reserved.message().find("reserved") != std::string::npos);
  for (size_t pad = 3; pad < 8; ++pad) {
    Status padding = with(kEntriesBlockBytes + kEntryHeaderBytes + pad, std::byte{1});
    CHECK(padding.message().find("padding") != std::string::npos);
  }
  std::vector<std::byte> empty;
  BodyWriter(&empty).entries_block(GroupId(1), LogIndex(1), 0);
  CHECK(decode_one(FrameType::kEntries, 1, empty).message().find("no entry") != std::string::npos);
  // item_count counts group blocks; only a CHECKPOINT frame may hold no record.
  CHECK(decode_one(FrameType::kHardState, 0, {}).code() == Code::kCorruption);
  CHECK(decode_one(FrameType::kCheckpoint, 0, {}).is_ok());
}

TEST_CASE("wal::records: an entry above kEntryBytesMax is reported as over the limit") {
  std::vector<std::byte> body;
  BodyWriter w(&body);
  w.entries_block(GroupId(4), LogIndex(9), 1);
  std::vector<std::byte> big(kEntryBytesMax + 8, std::byte{1});
  w.entry(EntryView{Term(1), 0, big});
  Status s = decode_one(FrameType::kEntries, 1, body);
  REQUIRE(s.code() == Code::kCorruption);
  CHECK(s.message().find("over the limit") != std::string::npos);
  CHECK(s.message().find(std::to_string(kEntryBytesMax + 8)) != std::string::npos);
  // Exactly at the limit is fine.
  std::vector<std::byte> ok;
  BodyWriter w2(&ok);
  w2.entries_block(GroupId(4), LogIndex(9), 1);
  big.resize(kEntryBytesMax);
  w2.entry(EntryView{Term(1), 0, big});
  CHECK(decode_one(FrameType::kEntries, 1, ok).is_ok());
}

}  // namespace
}  // namespace raftd::wal
