#include "raftd/wal/format.h"

#include <doctest/doctest.h>

#include <vector>

#include "raftd/wal/records.h"

namespace raftd::wal {
namespace {

TEST_CASE("wal::format: a segment header round-trips and its checksum covers every field") {
  SegmentHeader h{7, 0x1234567890abcdefULL, 42, 0xfeed, 1 << 20, 4 << 20};
  std::vector<std::byte> buf(kSegmentHeaderBytes);
  std::span<std::byte, kSegmentHeaderBytes> out(buf.data(), buf.size());
  encode_segment_header(h, out);
  SegmentHeader d;
  REQUIRE(decode_segment_header(buf, &d) == HeaderError::kOk);
  CHECK(d.sequence == 7);
  CHECK(d.salt == h.salt);
  CHECK(d.first_frame == 42);
  CHECK(d.prev_checksum == 0xfeed);
  CHECK(d.capacity == 1 << 20);
  CHECK(d.write_bytes_max == 4 << 20);
  for (size_t byte : {8, 16, 24, 32, 40, 48, 56, 64}) {
    std::vector<std::byte> bad = buf;
    bad[byte] ^= std::byte{0x10};
    CHECK(decode_segment_header(bad, &d) != HeaderError::kOk);
  }
  std::vector<std::byte> wrong = buf;
  wrong[0] = std::byte{'X'};
  CHECK(decode_segment_header(wrong, &d) == HeaderError::kMagic);
}

TEST_CASE("wal::format: frame checksums depend on the salt and cover header and body") {
  std::vector<std::byte> body(20, std::byte{7});
  std::vector<std::byte> out(frame_bytes(body.size()));
  CHECK(out.size() == 48 + 24);
  FrameHeader h;
  h.prev_checksum = 99;
  h.frame_number = 5;
  h.type = FrameType::kHardState;
  h.item_count = 0;
  uint64_t sum = encode_frame(h, body, 111, out.data());
  FrameHeader d;
  decode_frame_header(out.data(), &d);
  CHECK(d.header_checksum == sum);
  CHECK(frame_header_checksum(out.data(), 111) == sum);
  CHECK(frame_header_checksum(out.data(), 112) != sum);  // another salt: a stale frame
  CHECK(d.body_checksum == checksum(std::span(out).subspan(48, 20), 111));
  CHECK(d.frame_number == 5);
  CHECK(d.length == 20);
  CHECK(out[48 + 20] == std::byte{0});  // padding is zero
  CHECK_FALSE(is_zero_header(out.data()));
  std::vector<std::byte> zeros(48);
  CHECK(is_zero_header(zeros.data()));
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
