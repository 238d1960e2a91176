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

// The segment being verified, read on demand: a reusable, uninitialised buffer of the file's
// size (zero-initialising it would add a memset of the segment size) filled front to back with
// large preads as the scan advances, so a scan reads only what it checks and checks each chunk
// while it is still in the CPU cache. Bytes at or past filled() are not read yet: every access
// is preceded by fill_to().
class SegmentBuffer {
 public:
  // A few times the L2 size would defeat the cache; far above a page so syscalls do not matter.
  static constexpr uint64_t kReadChunkBytes = 1 << 20;

  Status open(Env& env, const std::string& path, uint64_t* size) {
    file_.reset();
    size_ = 0;
    filled_ = 0;
    auto f = env.open(path, OpenMode::kRead);
    if (!f) return f.status();
    auto n = (*f)->size();
    if (!n) return n.status();
    *size = *n;
    file_ = std::move(*f);
    return Status::ok();
  }
  void resize(uint64_t n) {
    if (n > capacity_) {
      bytes_.reset(new std::byte[n]);
      capacity_ = n;
    }
    size_ = n;
  }
  // Makes bytes [0, min(end, size())) readable, reading at least min_read bytes when it reads
  // at all (kReadChunkBytes while scanning frames, exact for probes). *read_bytes grows by what
  // was read.
  Status fill_to(uint64_t end, uint64_t min_read, uint64_t* read_bytes) {
    end = std::min(end, size_);
    if (end <= filled_) return Status::ok();
    uint64_t to = std::min(size_, std::max(end, filled_ + min_read));
    if (Status s = read_exact(*file_, {bytes_.get() + filled_, to - filled_}, filled_); !s) {
      return s;
    }
    *read_bytes += to - filled_;
    filled_ = to;
    return Status::ok();
  }
  std::byte* data() { return bytes_.get(); }
  const std::byte* data() const { return bytes_.get(); }
  uint64_t size() const { return size_; }
  uint64_t filled() const { return filled_; }
  // The first n bytes (n <= filled()).
  std::span<const std::byte> prefix(uint64_t n) const {
    RAFTD_ASSERT(n <= filled_, "segment bytes used before they were read");
    return {bytes_.get(), n};
  }

 private:
  std::unique_ptr<File> file_;
  std::unique_ptr<std::byte[]> bytes_;
  uint64_t size_ = 0;
  uint64_t filled_ = 0;
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
  Status fill(uint64_t end) { return buf_.fill_to(end, 0, &out_.bytes_scanned); }
  Status fill_ahead(uint64_t end) {
    return buf_.fill_to(end, SegmentBuffer::kReadChunkBytes, &out_.bytes_scanned);
  }
  Status scan_written(SegmentSummary& s, bool last_written, FrameScan* scan);
  Status check_zero_tail(const SegmentSummary& s, bool last_written, uint64_t off, FrameScan* scan);
  Status find_last_written(const std::vector<Name>& names);
  bool written_after(size_t i) const { return last_written_ != SIZE_MAX && last_written_ > i; }
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
  SegmentBuffer buf_;  // the current segment, read on demand
  bool in_checkpoint_head_ = false;
  size_t loaded_ = SIZE_MAX;  // index (in the sorted names) of the segment held in buf_
  // Index of the last segment whose header is valid and written (not prepared); SIZE_MAX: none.
  size_t last_written_ = SIZE_MAX;
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

// Opens a segment and reads its header and first frame slot: enough to classify a prepared
// segment (see classify_tail_segments); scanning reads the rest on demand.
Status Recovery::load(const Name& n) {
  loaded_ = SIZE_MAX;
  uint64_t size = 0;
  if (Status s = buf_.open(env_, n.path, &size); !s) return s;
  if (size < kSegmentHeaderBytes || size > kSegmentBytesMax) {
    return corrupt(n.path, 0, fmt::format("file size {} is not a segment size", size));
  }
  buf_.resize(size);
  return fill(kSegmentHeaderBytes + kFrameHeaderBytes);
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

// After the last valid frame of a segment, an all-zero frame header at `off`: the rest must be
// zeros. In an older segment that is checked to the end of the file (usually a short tail: the
// writer rolls over when a batch does not fit, or after a restart, see Wal::open). In the last
// written segment only the bytes a crash could have torn are checked: one write of at most
// write_bytes_max bytes, which starts at the start of the last batch (doc/wal-format.md, "Recovery
// rules", rule 2).
Status Recovery::check_zero_tail(const SegmentSummary& s, bool last_written, uint64_t off,
                                 FrameScan* scan) {
  uint64_t limit = buf_.size();
  if (last_written && s.header.write_bytes_max != 0) {
    limit = std::min(limit, std::max(off, scan->batch_start + s.header.write_bytes_max));
  }
  if (Status st = fill(limit); !st) return st;
  uint64_t nz = nonzero_end(buf_.prefix(limit), off);
  if (nz > off) {
    scan->damaged = true;
    scan->bad_offset = off;
    scan->what = fmt::format("zero frame header followed by data up to {}", nz);
  }
  return Status::ok();
}

// Walks the frames of a written segment, applying each valid one. Stops at the end of the
// written data or at the first bad frame (scan->damaged); a frame that passes its checksums but
// breaks the format's rules is corruption right away.
Status Recovery::scan_written(SegmentSummary& s, bool last_written, FrameScan* scan) {
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
    if (Status st = fill_ahead(off + kFrameHeaderBytes); !st) return st;
    const std::byte* p = buf_.data() + off;
    if (is_zero_header(p)) {
      if (Status st = check_zero_tail(s, last_written, off, scan); !st) return st;
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
    if (Status st = fill_ahead(off + frame_bytes(h.length)); !st) return st;
    p = buf_.data() + off;
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
  // The last write started at batch_start and was at most write_bytes_max long (0: unknown, the
  // whole file): a torn write can only have left bytes before window_end.
  const uint64_t window_end =
      write_bytes_max == 0 ? buf_.size() : std::min(buf_.size(), batch_start + write_bytes_max);
  if (bad_offset >= window_end) {
    return corrupt(
        path, bad_offset,
        fmt::format("damage past the reach of the last write ({}..{})", batch_start, window_end));
  }
  // Damage was found: this rare path reads and checks the whole rest of the file.
  if (Status s = fill(buf_.size()); !s) return s;
  *nz_end = nonzero_end(buf_.prefix(window_end), bad_offset);
  const uint64_t file_nz_end = nonzero_end(buf_.prefix(buf_.size()), bad_offset);
  // Look for valid frames after the damage. One of a later batch means the damaged frame was
  // acknowledged (its batch was synced before the later one was written); one past the window
  // cannot belong to the last write. Either way the damage is in acknowledged data.
  uint64_t first_batch_end = UINT64_MAX;
  uint64_t first_batch_end_off = 0;
  uint64_t max_number = 0;
  uint64_t max_off = 0;
  for (uint64_t y = bad_offset + 8; y + kFrameHeaderBytes <= file_nz_end; y += 8) {
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
    if (y + kFrameHeaderBytes > window_end) {
      return corrupt(path, bad_offset,
                     fmt::format("damaged frame followed by valid frame {} at offset {}, past the "
                                 "reach of the last write ({}..{})",
                                 h.frame_number, y, batch_start, window_end));
    }
  }
  if (first_batch_end != UINT64_MAX && max_number > first_batch_end) {
    return corrupt(path, bad_offset,
                   fmt::format("damaged frame followed by valid frames of a later batch (frame "
                               "{} at offset {} ends a batch, frame {} at offset {} follows)",
                               first_batch_end, first_batch_end_off, max_number, max_off));
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
//
// A spare is recognised from its header and its first frame slot alone (4144 bytes, not the
// whole file): the writer's first write into a segment is one contiguous write starting at
// offset 0 ([header][checkpoint][batch]), so any completed first write changed both, and no
// later write happens before it is durable. Bytes further in could only be left by a torn
// first write whose header and first slot both failed to reach the disk: unacknowledged, never
// reachable by a scan (it follows the hash chain from offset 4096 and stops at the first zero
// slot), overwritten front to back by the next writes, and inside the torn-tail window of
// whatever is written there next, where recovery cuts them (doc/wal-format.md, rules 3 and 4).
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
    HeaderError he = decode_segment_header(buf_.prefix(kSegmentHeaderBytes), &sp.header);
    bool header_ok = he == HeaderError::kOk && sp.header.is_prepared() &&
                     sp.header.sequence == n.sequence && sp.header.capacity == buf_.size();
    bool first_slot_zero = buf_.size() < kSegmentHeaderBytes + kFrameHeaderBytes ||
                           is_zero_header(buf_.data() + kSegmentHeaderBytes);
    if (header_ok && first_slot_zero) {
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
    uint64_t salt = raw_salt(buf_.prefix(kSegmentHeaderBytes));
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

// Finds the last segment with a valid, written (not prepared) header, reading headers only,
// from the newest file back: only the spares at the end are passed over.
Status Recovery::find_last_written(const std::vector<Name>& names) {
  last_written_ = SIZE_MAX;
  for (size_t k = names.size(); k-- > 0;) {
    auto f = env_.open(names[k].path, OpenMode::kRead);
    if (!f) return f.status();
    std::array<std::byte, kSegmentHeaderBytes> hb;
    if (Status s = read_exact(**f, hb, 0); !s) {
      if (s.code() == Code::kCorruption) continue;  // shorter than a header: load() reports it
      return s;
    }
    SegmentHeader h;
    if (decode_segment_header(hb, &h) == HeaderError::kOk && !h.is_prepared()) {
      last_written_ = k;
      return Status::ok();
    }
  }
  return Status::ok();
}

Result<RecoveredLog> Recovery::run() {
  std::vector<Name> names;
  if (Status s = list_segments(&names); !s) return s;
  if (mode_ == RecoveryMode::kRepair) {
    if (Status s = sync_all(names); !s) return s;
  }
  if (Status s = find_last_written(names); !s) return s;
  size_t i = 0;
  for (; i < names.size(); ++i) {
    if (Status s = load(names[i]); !s) return s;
    loaded_ = i;
    SegmentSummary seg;
    seg.sequence = names[i].sequence;
    seg.path = names[i].path;
    HeaderError he = decode_segment_header(buf_.prefix(kSegmentHeaderBytes), &seg.header);
    if (he != HeaderError::kOk) {
      // A damaged header on the segment after the last written one may be a torn header
      // rewrite (classify_tail_segments decides); anywhere else it is corruption.
      if (he == HeaderError::kChecksum && !written_after(i)) break;
      return corrupt(seg.path, 0, std::string(header_error_name(he)));
    }
    if (seg.header.is_prepared()) break;
    if (Status s = check_header_chain(seg); !s) return s;
    const bool last_written = !written_after(i);
    FrameScan scan;
    if (Status s = scan_written(seg, last_written, &scan); !s) return s;
    seg.end_offset = scan.end;
    seg.batch_end_offset = scan.batch_start;
    if (scan.damaged) {
      // Only the last written segment may end in a torn batch; if a later one holds frames,
      // this damage is in acknowledged data.
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
