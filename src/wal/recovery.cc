// Recovery: verify every segment and frame, rebuild group state, classify damage as a torn tail
// (cut) or corruption (refuse). The rules are in doc/wal-format.md, "Recovery rules".
#include "raftd/wal/recovery.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <memory>
#include <unordered_set>

#include "raftd/base/log.h"

namespace raftd::wal {

std::string segment_file_name(uint64_t sequence) { return fmt::format("{:016x}.wal", sequence); }
std::string prep_file_name(uint64_t sequence) { return fmt::format("{:016x}.prep", sequence); }

namespace {

Status corrupt(const std::string& path, uint64_t offset, const std::string& what) {
  return Status(Code::kCorruption, fmt::format("{} at offset {}: {}", path, offset, what));
}

// Parses "<16 hex>.<ext>".
bool parse_name(const std::string& name, std::string_view ext, uint64_t* seq) {
  if (name.size() != 16 + ext.size() || name.substr(16) != ext) return false;
  uint64_t v = 0;
  for (int i = 0; i < 16; ++i) {
    char c = name[size_t(i)];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return false;
    v = (v << 4) | uint64_t(d);
  }
  *seq = v;
  return v != 0;
}

// End (exclusive) of the last non-zero byte in buf[from, size), or `from` if all zero. Zero
// tails are most of what recovery reads, so whole blocks are compared with a zero block
// (memcmp is vectorized) and only a non-zero block is searched byte by byte.
uint64_t nonzero_end(std::span<const std::byte> buf, uint64_t from) {
  constexpr uint64_t kBlockBytes = 4096;
  static const std::array<std::byte, kBlockBytes> kZeroBlock{};
  uint64_t end = buf.size();
  while (end > from) {
    uint64_t lo = end - from >= kBlockBytes ? end - kBlockBytes : from;
    if (std::memcmp(buf.data() + lo, kZeroBlock.data(), end - lo) != 0) {
      while (buf[end - 1] == std::byte{0}) --end;
      return end;
    }
    end = lo;
  }
  return from;
}

// A reusable, uninitialised byte buffer: a segment is read over it whole, so zero-initialising
// it first (std::vector) would only add a memset of the segment size.
class SegmentBuffer {
 public:
  void resize(uint64_t n) {
    if (n > capacity_) {
      bytes_.reset(new std::byte[n]);
      capacity_ = n;
    }
    size_ = n;
  }
  std::byte* data() { return bytes_.get(); }
  const std::byte* data() const { return bytes_.get(); }
  uint64_t size() const { return size_; }
  std::span<std::byte> span() { return {bytes_.get(), size_}; }
  operator std::span<const std::byte>() const { return {bytes_.get(), size_}; }  // NOLINT

 private:
  std::unique_ptr<std::byte[]> bytes_;
  uint64_t size_ = 0;
  uint64_t capacity_ = 0;
};

// Applies frame bodies to the groups' state, checking the rules of doc/wal-format.md.
class Rebuilder final : public BodyVisitor {
 public:
  explicit Rebuilder(std::unordered_map<GroupId, GroupLog>* groups) : groups_(groups) {}

  void begin_frame(uint64_t segment, uint64_t frame_offset, bool first_segment) {
    segment_ = segment;
    frame_offset_ = frame_offset;
    first_segment_ = first_segment;
  }
  uint64_t checkpointed() const { return checkpointed_.size(); }
  void reset_checkpoint() { checkpointed_.clear(); }

  Status on_entries_block(GroupId g, LogIndex first, uint32_t) override {
    GroupLog& l = (*groups_)[g];
    if (first <= l.mark.index || first > l.last_index() + 1) {
      return bad(fmt::format("ENTRIES of group {} start at {} but its log holds {}..{}", raw(g),
                             raw(first), raw(l.mark.index + 1), raw(l.last_index())));
    }
    l.truncate_from(first, [](EntryLoc&) {});
    return Status::ok();
  }
  Status on_entry(GroupId g, LogIndex index, Term term, uint16_t type,
                  std::span<const std::byte> data, uint64_t payload_offset) override {
    GroupLog& l = (*groups_)[g];
    RAFTD_ASSERT(index == l.last_index() + 1, "entries of a block are consecutive");
    Term prev = l.last_term();
    if (prev != kTermUnknown && term < prev) {
      return bad(fmt::format("group {} entry {} has term {} below the previous term {}", raw(g),
                             raw(index), raw(term), raw(prev)));
    }
    EntryLoc loc;
    loc.term = term;
    loc.segment = segment_;
    loc.frame_offset = frame_offset_;
    loc.payload_offset = uint32_t(payload_offset);
    loc.length = uint32_t(data.size());
    loc.type = type;
    l.locs.push_back(std::move(loc));
    return Status::ok();
  }
  Status on_hard_state(GroupId g, const HardState& hs) override {
    GroupLog& l = (*groups_)[g];
    if (hs.term < l.hard.term) {
      return bad(fmt::format("group {} hard state term {} below {}", raw(g), raw(hs.term),
                             raw(l.hard.term)));
    }
    l.hard = hs;
    return Status::ok();
  }
  Status on_truncate(GroupId g, LogIndex from) override {
    GroupLog& l = (*groups_)[g];
    if (from <= l.mark.index || from > l.last_index() + 1) {
      return bad(fmt::format("TRUNCATE of group {} from {} outside its log {}..{}", raw(g),
                             raw(from), raw(l.mark.index + 1), raw(l.last_index())));
    }
    l.truncate_from(from, [](EntryLoc&) {});
    return Status::ok();
  }
  Status on_snapshot_mark(GroupId g, const SnapshotMark& m) override {
    GroupLog& l = (*groups_)[g];
    if (m.index < l.mark.index) {
      return bad(fmt::format("SNAPSHOT_MARK of group {} moves back from {} to {}", raw(g),
                             raw(l.mark.index), raw(m.index)));
    }
    if (const EntryLoc* e = l.at(m.index); e != nullptr && e->term != m.term) {
      return bad(fmt::format("SNAPSHOT_MARK of group {} at {} has term {}, the entry has {}",
                             raw(g), raw(m.index), raw(m.term), raw(e->term)));
    }
    l.compact_to(m, [](EntryLoc&) {});
    return Status::ok();
  }
  Status on_checkpoint(const CheckpointRecord& c) override {
    if (!checkpointed_.insert(c.group).second) {
      return bad(fmt::format("group {} appears twice in the checkpoint", raw(c.group)));
    }
    auto it = groups_->find(c.group);
    if (it == groups_->end()) {
      if (!first_segment_)
        return bad(fmt::format("checkpoint names unknown group {}", raw(c.group)));
      GroupLog& l = (*groups_)[c.group];
      l.hard = c.hard;
      l.mark = c.mark;
      l.base_index = c.last_index;
      l.base_term = c.last_term;
      return Status::ok();
    }
    const GroupLog& l = it->second;
    Term last_term = l.last_term();
    if (l.hard != c.hard || l.mark != c.mark || l.last_index() != c.last_index ||
        (last_term != kTermUnknown && last_term != c.last_term)) {
      return bad(fmt::format(
          "checkpoint of group {} (term {} vote {} commit {} mark {} last {}@{}) disagrees with "
          "the log (term {} vote {} commit {} mark {} last {}@{})",
          raw(c.group), raw(c.hard.term), raw(c.hard.vote), raw(c.hard.commit), raw(c.mark.index),
          raw(c.last_index), raw(c.last_term), raw(l.hard.term), raw(l.hard.vote),
          raw(l.hard.commit), raw(l.mark.index), raw(l.last_index()), raw(last_term)));
    }
    return Status::ok();
  }

 private:
  static Status bad(std::string what) { return Status(Code::kCorruption, std::move(what)); }

  std::unordered_map<GroupId, GroupLog>* groups_;
  std::unordered_set<GroupId> checkpointed_;
  uint64_t segment_ = 0;
  uint64_t frame_offset_ = 0;
  bool first_segment_ = false;
};

struct FrameScan {
  uint64_t end = kSegmentHeaderBytes;          // end of the last valid frame
  uint64_t batch_start = kSegmentHeaderBytes;  // end of the last valid BATCH_END frame
  bool damaged = false;  // stopped at a bad frame, or at a zero header with bytes after it
  uint64_t bad_offset = 0;
  std::string what;
};

class Recovery {
 public:
  Recovery(Env& env, std::string dir, RecoveryMode mode, FrameObserver* observer)
      : env_(env), dir_(std::move(dir)), mode_(mode), observer_(observer), rebuild_(&out_.groups) {}

  Result<RecoveredLog> run();

 private:
  struct Name {
    uint64_t sequence;
    std::string path;
  };
  Status list_segments(std::vector<Name>* names);
  Status sync_all(const std::vector<Name>& names);
  Status load(const Name& n);
  Status scan_written(SegmentSummary& s, FrameScan* scan);
  Result<bool> later_written(const std::vector<Name>& names, size_t i);
  Status check_header_chain(const SegmentSummary& s);
  Status apply_frame(SegmentSummary& s, uint64_t off, const FrameHeader& h);
  Status check_checkpoint_complete(const SegmentSummary& s);
  Status analyze_torn(const std::string& path, uint64_t salt, uint64_t bad_offset,
                      uint64_t batch_start, uint64_t last_number, uint64_t write_bytes_max,
                      uint64_t* nz_end);
  Status cut(const std::string& path, uint64_t from, uint64_t to, const SegmentHeader* reprepare);
  Status classify_tail_segments(const std::vector<Name>& names, size_t first, bool allow_torn);
  Status finish_groups();

  Env& env_;
  std::string dir_;
  RecoveryMode mode_;
  FrameObserver* observer_;
  RecoveredLog out_;
  Rebuilder rebuild_;
  SegmentBuffer buf_;  // the whole current segment
  bool in_checkpoint_head_ = false;
  size_t loaded_ = SIZE_MAX;  // index (in the sorted names) of the segment held in buf_
};

Status Recovery::list_segments(std::vector<Name>* names) {
  auto listed = env_.list(dir_);
  if (!listed) return listed.status();
  for (const std::string& n : *listed) {
    uint64_t seq = 0;
    if (parse_name(n, ".wal", &seq)) {
      names->push_back({seq, join_path(dir_, n)});
    } else if (parse_name(n, ".prep", &seq)) {
      // An unfinished preparation: never renamed, so never part of the log.
      if (mode_ == RecoveryMode::kRepair) {
        if (Status s = env_.remove(join_path(dir_, n)); !s) return s;
        log::info("wal: removed unfinished segment {}", join_path(dir_, n));
      }
    }
  }
  std::sort(names->begin(), names->end(),
            [](const Name& a, const Name& b) { return a.sequence < b.sequence; });
  for (size_t i = 1; i < names->size(); ++i) {
    if ((*names)[i].sequence != (*names)[i - 1].sequence + 1) {
      return corrupt((*names)[i].path, 0,
                     fmt::format("gap in the segment sequence: {} follows {} ({} missing)",
                                 segment_file_name((*names)[i].sequence),
                                 segment_file_name((*names)[i - 1].sequence),
                                 segment_file_name((*names)[i - 1].sequence + 1)));
    }
  }
  return Status::ok();
}

Status Recovery::sync_all(const std::vector<Name>& names) {
  // Data read back must be durable data: a page that is only in the cache could vanish in a
  // crash after we acted on it (TigerBeetle syncs before reading for the same reason).
  for (const Name& n : names) {
    auto f = env_.open(n.path, OpenMode::kReadWrite);
    if (!f) return f.status();
    if (Status s = (*f)->sync_data(); !s) return s;
  }
  return env_.sync_dir(dir_);
}

Status Recovery::load(const Name& n) {
  loaded_ = SIZE_MAX;
  auto f = env_.open(n.path, OpenMode::kRead);
  if (!f) return f.status();
  auto size = (*f)->size();
  if (!size) return size.status();
  if (*size < kSegmentHeaderBytes || *size > kSegmentBytesMax) {
    return corrupt(n.path, 0, fmt::format("file size {} is not a segment size", *size));
  }
  buf_.resize(*size);
  if (Status s = read_exact(**f, buf_.span(), 0); !s) return s;
  out_.bytes_scanned += *size;
  return Status::ok();
}

Status Recovery::check_header_chain(const SegmentSummary& s) {
  const SegmentHeader& h = s.header;
  if (h.sequence != s.sequence) {
    return corrupt(s.path, 16,
                   fmt::format("header says sequence {} (stale or misnamed file)", h.sequence));
  }
  if (h.capacity != buf_.size()) {
    return corrupt(
        s.path, 48,
        fmt::format("header capacity {} but the file has {} bytes", h.capacity, buf_.size()));
  }
  if (out_.written.empty()) {
    if (h.first_frame == 1 && h.prev_checksum != 0) {
      return corrupt(s.path, 40, "first segment of the log chains to a previous one");
    }
    return Status::ok();
  }
  if (h.first_frame != out_.next_frame || h.prev_checksum != out_.last_checksum) {
    return corrupt(
        s.path, 32,
        fmt::format("broken chain: header starts at frame {} chained to {:016x}, the "
                    "previous segment ends before frame {} with checksum {:016x}",
                    h.first_frame, h.prev_checksum, out_.next_frame, out_.last_checksum));
  }
  return Status::ok();
}

Status Recovery::check_checkpoint_complete(const SegmentSummary& s) {
  if (!in_checkpoint_head_) return Status::ok();
  in_checkpoint_head_ = false;
  if (rebuild_.checkpointed() != out_.groups.size()) {
    return corrupt(s.path, kSegmentHeaderBytes,
                   fmt::format("checkpoint lists {} groups, the log has {}",
                               rebuild_.checkpointed(), out_.groups.size()));
  }
  return Status::ok();
}

Status Recovery::apply_frame(SegmentSummary& s, uint64_t off, const FrameHeader& h) {
  if (s.frames == 0 && h.type != FrameType::kCheckpoint) {
    return corrupt(s.path, off, "the first frame of a segment is not a CHECKPOINT");
  }
  if (h.type != FrameType::kCheckpoint) {
    if (Status st = check_checkpoint_complete(s); !st) return st;
  } else if (!in_checkpoint_head_) {
    return corrupt(s.path, off, "CHECKPOINT frame after the head of the segment");
  }
  std::span<const std::byte> body(buf_.data() + off + kFrameHeaderBytes, h.length);
  rebuild_.begin_frame(s.sequence, off, out_.written.empty());
  if (Status st = decode_body(h.type, h.item_count, body, rebuild_); !st) {
    return corrupt(
        s.path, off,
        fmt::format("{} frame {}: {}", frame_type_name(h.type), h.frame_number, st.message()));
  }
  if (observer_ != nullptr) observer_->on_frame(s, off, h, body);
  return Status::ok();
}

// Walks the frames of a written segment, applying each valid one. Stops at the end of the
// written data or at the first bad frame (scan->damaged); a frame that passes its checksums but
// breaks the format's rules is corruption right away.
Status Recovery::scan_written(SegmentSummary& s, FrameScan* scan) {
  const uint64_t salt = s.header.salt;
  uint64_t off = kSegmentHeaderBytes;
  uint64_t expect = s.header.first_frame;
  uint64_t prev = s.header.prev_checksum;
  in_checkpoint_head_ = true;
  rebuild_.reset_checkpoint();
  auto fail = [&](std::string what) {
    scan->damaged = true;
    scan->bad_offset = off;
    scan->what = std::move(what);
    return Status::ok();
  };
  while (off + kFrameHeaderBytes <= buf_.size()) {
    const std::byte* p = buf_.data() + off;
    if (is_zero_header(p)) {
      uint64_t nz = nonzero_end(buf_, off);
      if (nz > off) return fail(fmt::format("zero frame header followed by data up to {}", nz));
      break;
    }
    FrameHeader h;
    decode_frame_header(p, &h);
    if (frame_header_checksum(p, salt) != h.header_checksum) {
      return fail("frame header checksum mismatch (damaged, or written with another salt)");
    }
    if (h.frame_number != expect) {
      return fail(fmt::format("frame number {} where {} was expected", h.frame_number, expect));
    }
    if (h.prev_checksum != prev) return fail("broken hash chain (prev_checksum mismatch)");
    if (h.length > buf_.size() - off - kFrameHeaderBytes ||
        off + frame_bytes(h.length) > buf_.size()) {
      return fail(fmt::format("frame length {} runs past the end of the segment", h.length));
    }
    if (checksum({p + kFrameHeaderBytes, h.length}, salt) != h.body_checksum) {
      return fail("frame body checksum mismatch");
    }
    if (Status st = apply_frame(s, off, h); !st) return st;
    prev = h.header_checksum;
    ++expect;
    ++s.frames;
    ++out_.frames;
    s.last_frame = h.frame_number;
    s.last_checksum = h.header_checksum;
    off += frame_bytes(h.length);
    scan->end = off;
    if (h.flags & kFrameFlagBatchEnd) scan->batch_start = off;
  }
  if (!scan->damaged && s.frames > 0) {
    if (Status st = check_checkpoint_complete(s); !st) return st;
  }
  return Status::ok();
}

// A bad frame at bad_offset in the last written segment: torn (OK) or corruption.
Status Recovery::analyze_torn(const std::string& path, uint64_t salt, uint64_t bad_offset,
                              uint64_t batch_start, uint64_t last_number, uint64_t write_bytes_max,
                              uint64_t* nz_end) {
  *nz_end = nonzero_end(buf_, bad_offset);
  // Look for valid frames after the damage: if one of a later batch exists, the damaged frame
  // was acknowledged (its batch was synced before the later one was written): corruption.
  uint64_t first_batch_end = UINT64_MAX;
  uint64_t first_batch_end_off = 0;
  uint64_t max_number = 0;
  uint64_t max_off = 0;
  for (uint64_t y = bad_offset + 8; y + kFrameHeaderBytes <= *nz_end; y += 8) {
    const std::byte* p = buf_.data() + y;
    if (get_u64(p) == 0 || frame_header_checksum(p, salt) != get_u64(p)) continue;
    FrameHeader h;
    decode_frame_header(p, &h);
    if (h.frame_number <= last_number) continue;
    if ((h.flags & kFrameFlagBatchEnd) && h.frame_number < first_batch_end) {
      first_batch_end = h.frame_number;
      first_batch_end_off = y;
    }
    if (h.frame_number > max_number) {
      max_number = h.frame_number;
      max_off = y;
    }
  }
  if (first_batch_end != UINT64_MAX && max_number > first_batch_end) {
    return corrupt(path, bad_offset,
                   fmt::format("damaged frame followed by valid frames of a later batch (frame "
                               "{} at offset {} ends a batch, frame {} at offset {} follows)",
                               first_batch_end, first_batch_end_off, max_number, max_off));
  }
  if (write_bytes_max != 0 && *nz_end - batch_start > write_bytes_max) {
    return corrupt(path, bad_offset,
                   fmt::format("damaged region {}..{} is longer than one write ({} bytes)",
                               batch_start, *nz_end, write_bytes_max));
  }
  return Status::ok();
}

Status Recovery::cut(const std::string& path, uint64_t from, uint64_t to,
                     const SegmentHeader* reprepare) {
  if (mode_ != RecoveryMode::kRepair) return Status::ok();
  // Zero what was cut (etcd's ZeroToEnd): stale bytes after the new end could otherwise look
  // like valid frames once new frames are written before them.
  auto f = env_.open(path, OpenMode::kReadWrite);
  if (!f) return f.status();
  if (to > from) {
    std::vector<std::byte> zeros(to - from);
    if (Status s = write_all(**f, zeros, from); !s) return s;
  }
  if (reprepare != nullptr) {
    std::array<std::byte, kSegmentHeaderBytes> hdr;
    encode_segment_header(*reprepare, hdr);
    if (Status s = write_all(**f, hdr, 0); !s) return s;
  }
  return (*f)->sync_data();
}

// Segments after the last written one must be prepared spares; the first of them may instead
// hold a torn first batch (its header rewrite did not complete), which is cut.
Status Recovery::classify_tail_segments(const std::vector<Name>& names, size_t first,
                                        bool allow_torn) {
  for (size_t i = first; i < names.size(); ++i) {
    const Name& n = names[i];
    if (loaded_ != i) {
      if (Status s = load(n); !s) return s;
    }
    SegmentSummary sp;
    sp.sequence = n.sequence;
    sp.path = n.path;
    HeaderError he = decode_segment_header(buf_, &sp.header);
    uint64_t nz = nonzero_end(buf_, kSegmentHeaderBytes);
    bool header_ok = he == HeaderError::kOk && sp.header.is_prepared() &&
                     sp.header.sequence == n.sequence && sp.header.capacity == buf_.size();
    if (header_ok && nz == kSegmentHeaderBytes) {
      out_.spares.push_back(sp);
      if (observer_ != nullptr) observer_->on_segment(sp, true);
      continue;
    }
    bool torn_candidate = allow_torn && i == first && (he == HeaderError::kChecksum || header_ok);
    if (!torn_candidate) {
      if (he != HeaderError::kOk) return corrupt(n.path, 0, std::string(header_error_name(he)));
      return corrupt(n.path, header_ok ? kSegmentHeaderBytes : 0,
                     "segment after the last written one is not a clean prepared segment");
    }
    uint64_t salt = raw_salt(buf_);
    uint64_t nz_end = 0;
    if (Status s = analyze_torn(n.path, salt, kSegmentHeaderBytes - 8, 0, 0, 0, &nz_end); !s) {
      return s;
    }
    out_.torn = TornTail{n.path, 0, nz_end,
                         "segment header rewrite of an unacknowledged first "
                         "batch did not complete"};
    log::warn("wal: torn tail in {} at offset 0 ({} bytes): {}; cut", n.path, nz_end,
              out_.torn->what);
    SegmentHeader prepared{n.sequence, salt, 0, 0, buf_.size(), 0};
    if (Status s =
            cut(n.path, kSegmentHeaderBytes, std::max(nz_end, kSegmentHeaderBytes), &prepared);
        !s) {
      return s;
    }
    sp.header = prepared;
    out_.spares.push_back(sp);
    if (observer_ != nullptr) observer_->on_segment(sp, true);
  }
  return Status::ok();
}

Status Recovery::finish_groups() {
  for (const auto& [g, l] : out_.groups) {
    if (l.base_index != l.mark.index) {
      std::string path = out_.written.empty() ? dir_ : out_.written.front().path;
      return corrupt(path, kSegmentHeaderBytes,
                     fmt::format("group {}: entries {}..{} are missing (their segment is gone "
                                 "but the group never compacted them)",
                                 raw(g), raw(l.mark.index + 1), raw(l.base_index)));
    }
  }
  return Status::ok();
}

// True when a segment at or after index `from` has a valid, written (not prepared) header.
Result<bool> Recovery::later_written(const std::vector<Name>& names, size_t from) {
  for (size_t k = from; k < names.size(); ++k) {
    auto f = env_.open(names[k].path, OpenMode::kRead);
    if (!f) return f.status();
    std::array<std::byte, kSegmentHeaderBytes> hb;
    if (Status s = read_exact(**f, hb, 0); !s) return s;
    SegmentHeader h;
    if (decode_segment_header(hb, &h) == HeaderError::kOk && !h.is_prepared()) return true;
  }
  return false;
}

Result<RecoveredLog> Recovery::run() {
  std::vector<Name> names;
  if (Status s = list_segments(&names); !s) return s;
  if (mode_ == RecoveryMode::kRepair) {
    if (Status s = sync_all(names); !s) return s;
  }
  size_t i = 0;
  for (; i < names.size(); ++i) {
    if (Status s = load(names[i]); !s) return s;
    loaded_ = i;
    SegmentSummary seg;
    seg.sequence = names[i].sequence;
    seg.path = names[i].path;
    HeaderError he = decode_segment_header(buf_, &seg.header);
    if (he != HeaderError::kOk) {
      auto later = later_written(names, i + 1);
      if (!later) return later.status();
      // A damaged header on the segment after the last written one may be a torn header
      // rewrite (classify_tail_segments decides); anywhere else it is corruption.
      if (he == HeaderError::kChecksum && !*later) break;
      return corrupt(seg.path, 0, std::string(header_error_name(he)));
    }
    if (seg.header.is_prepared()) break;
    if (Status s = check_header_chain(seg); !s) return s;
    FrameScan scan;
    if (Status s = scan_written(seg, &scan); !s) return s;
    seg.end_offset = scan.end;
    bool last_written = true;
    if (scan.damaged) {
      // Only the last written segment may end in a torn batch; if a later one holds frames,
      // this damage is in acknowledged data.
      auto later = later_written(names, i + 1);
      if (!later) return later.status();
      last_written = !*later;
      if (!last_written) return corrupt(seg.path, scan.bad_offset, scan.what);
      uint64_t nz_end = 0;
      uint64_t last_number = seg.frames ? seg.last_frame : seg.header.first_frame - 1;
      if (Status s = analyze_torn(seg.path, seg.header.salt, scan.bad_offset, scan.batch_start,
                                  last_number, seg.header.write_bytes_max, &nz_end);
          !s) {
        return corrupt(seg.path, scan.bad_offset, scan.what + "; " + s.message());
      }
      out_.torn = TornTail{seg.path, scan.bad_offset, nz_end - scan.bad_offset, scan.what};
      log::warn("wal: torn tail in {} at offset {} ({} bytes): {}; cut", seg.path, scan.bad_offset,
                nz_end - scan.bad_offset, scan.what);
      if (Status s = cut(seg.path, scan.bad_offset, nz_end, nullptr); !s) return s;
    }
    if (seg.frames > 0) {
      out_.next_frame = seg.last_frame + 1;
      out_.last_checksum = seg.last_checksum;
    } else {
      out_.next_frame = seg.header.first_frame;
      out_.last_checksum = seg.header.prev_checksum;
    }
    if (observer_ != nullptr) observer_->on_segment(seg, false);
    out_.written.push_back(std::move(seg));
    if (scan.damaged) {
      ++i;
      break;
    }
  }
  if (Status s = classify_tail_segments(names, i, !out_.torn.has_value()); !s) return s;
  if (Status s = finish_groups(); !s) return s;
  return std::move(out_);
}

}  // namespace

Result<RecoveredLog> recover_log(Env& env, const std::string& dir, RecoveryMode mode,
                                 FrameObserver* observer) {
  Recovery r(env, dir, mode, observer);
  return r.run();
}

}  // namespace raftd::wal
