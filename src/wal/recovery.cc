// Recovery: verify every segment and frame, rebuild group state from complete batches, classify
// damage as a torn tail (cut) or corruption (refuse). The rules are in doc/wal-format.md,
// "Recovery rules"; the rule numbers in comments refer to that section.
#include "raftd/wal/recovery.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>

#include "raftd/base/log.h"
#include "raftd/base/memory.h"

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

// The segment being verified, read on demand: a reusable buffer of the file's size filled
// front to back with large preads as the scan advances, so a scan reads only what it checks and
// checks each chunk while it is still in the CPU cache. Bytes at or past filled() are not read
// yet: every access is preceded by fill_to().
//
// The buffer is anonymous memory, reserved and faulted in only as it fills, on transparent huge
// pages where the kernel allows them (as the WAL's CacheArena). Faulting in 4 KiB pages cost
// more than the scan itself in a VM: a first-time scan of a 64 MiB segment into operator new's
// memory ran at 140-300 MB/s, its checksums slowed by TLB misses on the fresh pages, against
// 420 MB/s on huge pages (bench/wal/README.md, "Recovery scan").
class SegmentBuffer {
 public:
  // A few times the L2 size would defeat the cache; far above a page so syscalls do not matter.
  static constexpr uint64_t kReadChunkBytes = 1 << 20;

  SegmentBuffer() = default;
  ~SegmentBuffer() { unmap(); }
  SegmentBuffer(const SegmentBuffer&) = delete;
  SegmentBuffer& operator=(const SegmentBuffer&) = delete;

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
      unmap();
      bytes_ = map_huge(n, "wal recovery: out of address space for a segment");
      capacity_ = huge_rounded(n);
    }
    size_ = n;
    asan_poison(bytes_, capacity_);  // nothing of this segment is read yet: reads are caught
  }
  // Makes bytes [0, min(end, size())) readable, reading at least min_read bytes when it reads
  // at all (kReadChunkBytes while scanning frames, exact for probes). *read_bytes grows by what
  // was read.
  Status fill_to(uint64_t end, uint64_t min_read, uint64_t* read_bytes) {
    end = std::min(end, size_);
    if (end <= filled_) return Status::ok();
    uint64_t to = std::min(size_, std::max(end, filled_ + min_read));
    asan_unpoison(bytes_ + filled_, to - filled_);
    if (Status s = read_exact(*file_, {bytes_ + filled_, to - filled_}, filled_); !s) {
      return s;
    }
    *read_bytes += to - filled_;
    filled_ = to;
    return Status::ok();
  }
  const std::byte* data() const { return bytes_; }
  uint64_t size() const { return size_; }
  // The first n bytes (n <= filled()).
  std::span<const std::byte> prefix(uint64_t n) const {
    RAFTD_ASSERT(n <= filled_, "segment bytes used before they were read");
    return {bytes_, n};
  }

 private:
  void unmap() {
    asan_unpoison(bytes_, capacity_);
    unmap_huge(bytes_, capacity_);
    bytes_ = nullptr;
    capacity_ = 0;
  }

  std::unique_ptr<File> file_;
  std::byte* bytes_ = nullptr;
  uint64_t size_ = 0;
  uint64_t filled_ = 0;
  uint64_t capacity_ = 0;
};

// Applies frame bodies to the groups' state, checking the group rules of doc/wal-format.md.
class Rebuilder final : public BodyVisitor {
 public:
  explicit Rebuilder(std::unordered_map<GroupId, GroupLog>* groups) : groups_(groups) {}

  // A new segment: its CHECKPOINT frames start over. In the first segment of the directory
  // they define the groups; in every later one they must agree with the rebuilt state.
  void begin_segment(bool first_segment) {
    first_segment_ = first_segment;
    checkpointed_ = 0;
    last_checkpointed_.reset();
  }
  void begin_frame(uint64_t segment, uint64_t frame_offset) {
    segment_ = segment;
    frame_offset_ = frame_offset;
  }
  uint64_t checkpointed() const { return checkpointed_; }

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
    loc.frame_offset =
        uint32_t(frame_offset_);  // < kSegmentBytesMax: the segment's size was checked
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
                             raw(from), raw(l.mark.index + 1), raw(l.last_index() + 1)));
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
    if (m.index == l.mark.index && m.term != l.mark.term) {
      return bad(fmt::format("SNAPSHOT_MARK of group {} at {} changes its term from {} to {}",
                             raw(g), raw(m.index), raw(l.mark.term), raw(m.term)));
    }
    if (const EntryLoc* e = l.at(m.index); e != nullptr && e->term != m.term) {
      return bad(fmt::format("SNAPSHOT_MARK of group {} at {} has term {}, the entry has {}",
                             raw(g), raw(m.index), raw(m.term), raw(e->term)));
    }
    l.compact_to(m, [](EntryLoc&) {});
    return Status::ok();
  }
  Status on_checkpoint(const CheckpointRecord& c) override {
    if (last_checkpointed_ && c.group <= *last_checkpointed_) {
      return bad(
          fmt::format("checkpoint lists group {} after group {} (each group once, in "
                      "ascending order)",
                      raw(c.group), raw(*last_checkpointed_)));
    }
    last_checkpointed_ = c.group;
    ++checkpointed_;
    auto it = groups_->find(c.group);
    if (it == groups_->end()) {
      if (!first_segment_) {
        return bad(fmt::format("checkpoint names unknown group {}", raw(c.group)));
      }
      if (c.mark.index > c.last_index ||
          (c.mark.index == c.last_index && c.mark.term != c.last_term)) {
        return bad(
            fmt::format("checkpoint of group {}: mark {}@{} does not fit its log ending "
                        "at {}@{}",
                        raw(c.group), raw(c.mark.index), raw(c.mark.term), raw(c.last_index),
                        raw(c.last_term)));
      }
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
  uint64_t checkpointed_ = 0;
  std::optional<GroupId> last_checkpointed_;
  uint64_t segment_ = 0;
  uint64_t frame_offset_ = 0;
  bool first_segment_ = false;
};

// Where the log stands after the last complete batch.
struct Chain {
  bool started = false;  // a complete batch has been applied
  uint64_t next_frame = 1;
  uint64_t last_checksum = 0;
  uint64_t last_batch = 0;
};

// An intact frame of the batch being read, applied when the batch is complete.
struct PendingFrame {
  uint64_t offset;
  FrameHeader header;
};

struct FrameScan {
  uint64_t end = kSegmentHeaderBytes;  // end of the last complete batch
  bool damaged = false;  // stopped at a damaged frame, an incomplete batch, or a dirty zero tail
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
  Status load(const std::vector<Name>& names, size_t i, SegmentHeader* header);
  Status fill(uint64_t end) { return buf_.fill_to(end, 0, &out_.bytes_scanned); }
  Status fill_ahead(uint64_t end) {
    return buf_.fill_to(end, SegmentBuffer::kReadChunkBytes, &out_.bytes_scanned);
  }
  Status find_last_written(const std::vector<Name>& names);
  Status scan_segment(SegmentSummary& s, bool last_written, FrameScan* scan);
  Status check_frame_header(const SegmentSummary& s, uint64_t off, const FrameHeader& h);
  Status apply_batch(SegmentSummary& s);
  Status apply_frame(SegmentSummary& s, uint64_t off, const FrameHeader& h);
  Status check_checkpoint_complete(const SegmentSummary& s);
  uint64_t damaged_batch() const;
  uint64_t find_later_batch(uint64_t salt, uint64_t from, uint64_t batch, FrameHeader* found);
  Status classify_last(const std::vector<Name>& names, size_t i, SegmentSummary& s,
                       const FrameScan& scan);
  Status check_first_spare(const std::vector<Name>& names, size_t i);
  Status cut(const std::string& path, uint64_t from, uint64_t to);
  void note_torn(TornTail t);
  Status finish_groups();

  Env& env_;
  std::string dir_;
  RecoveryMode mode_;
  FrameObserver* observer_;
  RecoveredLog out_;
  Rebuilder rebuild_;
  SegmentBuffer buf_;         // the current segment, read on demand
  size_t loaded_ = SIZE_MAX;  // index (in the sorted names) of the segment held in buf_
  // Index of the last segment whose first frame slot is not zero; SIZE_MAX: none.
  size_t last_written_ = SIZE_MAX;
  std::vector<SegmentHeader> headers_;  // validated headers, by index in the sorted names
  Chain chain_;
  std::vector<PendingFrame> pending_;  // intact frames of the batch being read
  bool in_checkpoint_head_ = false;
  uint64_t checkpoint_frames_ = 0;      // CHECKPOINT frames seen in this segment's head
  uint64_t checkpoint_last_items_ = 0;  // records in the last of them
  uint64_t groups_before_segment_ = 0;  // groups known when the current segment's scan began
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
                     fmt::format("gap in the segment sequence: {} is missing ({} follows {})",
                                 segment_file_name((*names)[i - 1].sequence + 1),
                                 segment_file_name((*names)[i].sequence),
                                 segment_file_name((*names)[i - 1].sequence)));
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

// Opens segment i, reads its header and first frame slot and validates the header (rule 1).
// Header errors name offset 0: the header is written once and synced before the segment is
// used, so any damage to it is damage to durable data.
Status Recovery::load(const std::vector<Name>& names, size_t i, SegmentHeader* header) {
  const Name& n = names[i];
  loaded_ = SIZE_MAX;
  uint64_t size = 0;
  if (Status s = buf_.open(env_, n.path, &size); !s) return s;
  if (size < kSegmentHeaderBytes || size > kSegmentBytesMax) {
    return corrupt(n.path, 0, fmt::format("file size {} is not a segment size", size));
  }
  buf_.resize(size);
  if (Status s = fill(kSegmentHeaderBytes + kFrameHeaderBytes); !s) return s;
  uint64_t bad_byte = 0;
  HeaderError he = decode_segment_header(buf_.prefix(kSegmentHeaderBytes), header, &bad_byte);
  if (he == HeaderError::kNonZero) {
    return corrupt(n.path, 0, fmt::format("{} (byte {})", header_error_name(he), bad_byte));
  }
  if (he != HeaderError::kOk) return corrupt(n.path, 0, std::string(header_error_name(he)));
  if (header->sequence != n.sequence) {
    return corrupt(
        n.path, 0,
        fmt::format("header says sequence {} (stale or misnamed file)", header->sequence));
  }
  if (header->capacity != size) {
    return corrupt(
        n.path, 0,
        fmt::format("header capacity {} but the file has {} bytes", header->capacity, size));
  }
  loaded_ = i;
  return Status::ok();
}

// Finds the last segment whose first frame slot is not zero, reading headers and first slots
// from the newest file back; the segments passed over are spares (their headers are validated
// here, rule 1; their first slot is zero, rule 3).
Status Recovery::find_last_written(const std::vector<Name>& names) {
  last_written_ = SIZE_MAX;
  headers_.assign(names.size(), SegmentHeader{});
  for (size_t k = names.size(); k-- > 0;) {
    if (Status s = load(names, k, &headers_[k]); !s) return s;
    if (!is_zero_header(buf_.data() + kSegmentHeaderBytes)) {
      last_written_ = k;
      return Status::ok();
    }
  }
  return Status::ok();
}

// Rules for an intact frame header (its checksum matched, so the writer wrote it this way):
// breaking one is corruption wherever the frame is, never a torn write (rule 2).
Status Recovery::check_frame_header(const SegmentSummary& s, uint64_t off, const FrameHeader& h) {
  auto bad = [&](std::string what) {
    return corrupt(s.path, off, fmt::format("frame {}: {}", h.frame_number, what));
  };
  if (std::string_view e = frame_header_rule_error(h); !e.empty()) {
    return bad(fmt::format("{} (type {}, flags {:#x}, length {})", e, uint16_t(h.type), h.flags,
                           h.length));
  }
  if (h.length > buf_.size() - off - kFrameHeaderBytes) {
    return bad(fmt::format("length {} runs past the end of the segment", h.length));
  }
  const bool first_of_log = pending_.empty() && !chain_.started;
  if (first_of_log) {
    // The first frame of the oldest segment: nothing before it to chain to.
    if (h.batch_index != 0 || h.batch == 0 || h.batch > h.frame_number ||
        (h.frame_number == 1 && (h.prev_checksum != 0 || h.batch != 1))) {
      return bad(fmt::format("not a valid first frame of the log (batch {} index {} prev {:016x})",
                             h.batch, h.batch_index, h.prev_checksum));
    }
    return Status::ok();
  }
  const FrameHeader* prev = pending_.empty() ? nullptr : &pending_.back().header;
  const uint64_t want_number = prev ? prev->frame_number + 1 : chain_.next_frame;
  const uint64_t want_prev = prev ? prev->header_checksum : chain_.last_checksum;
  const uint64_t want_batch = prev ? prev->batch : chain_.last_batch + 1;
  const uint64_t want_index = pending_.size();
  if (h.frame_number != want_number) {
    return bad(fmt::format("broken chain: frame number {} where {} was expected", h.frame_number,
                           want_number));
  }
  if (h.prev_checksum != want_prev) {
    return bad(
        fmt::format("broken chain: prev_checksum {:016x} but the previous frame's checksum "
                    "is {:016x}",
                    h.prev_checksum, want_prev));
  }
  if (h.batch != want_batch || h.batch_index != want_index) {
    return bad(fmt::format("batch {} index {} where batch {} index {} was expected", h.batch,
                           h.batch_index, want_batch, want_index));
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
  if (h.type == FrameType::kCheckpoint) {
    if (!in_checkpoint_head_) {
      return corrupt(s.path, off,
                     "CHECKPOINT frame after the head of the segment (only the first frames of a "
                     "segment's first batch are CHECKPOINT frames)");
    }
    if (h.item_count > kCheckpointRecordsPerFrame ||
        (checkpoint_frames_ > 0 &&
         (checkpoint_last_items_ < kCheckpointRecordsPerFrame || h.item_count == 0))) {
      return corrupt(s.path, off,
                     fmt::format("CHECKPOINT frame of {} groups after {} frame(s) (every "
                                 "CHECKPOINT frame but the last lists {} groups, the last at "
                                 "least 1 unless it is the only one)",
                                 h.item_count, checkpoint_frames_, kCheckpointRecordsPerFrame));
    }
    ++checkpoint_frames_;
    checkpoint_last_items_ = h.item_count;
  } else if (Status st = check_checkpoint_complete(s); !st) {
    return st;
  }
  std::span<const std::byte> body(buf_.data() + off + kFrameHeaderBytes, h.length);
  rebuild_.begin_frame(s.sequence, off);
  if (Status st = decode_body(h.type, h.item_count, body, rebuild_); !st) {
    return corrupt(
        s.path, off,
        fmt::format("{} frame {}: {}", frame_type_name(h.type), h.frame_number, st.message()));
  }
  if (observer_ != nullptr) observer_->on_frame(s, off, h, body);
  return Status::ok();
}

// A BATCH_END frame arrived intact: the batch is complete, so its frames are applied (batches
// are atomic) and the chain advances past it.
Status Recovery::apply_batch(SegmentSummary& s) {
  for (const PendingFrame& f : pending_) {
    if (Status st = apply_frame(s, f.offset, f.header); !st) return st;
    ++s.frames;
    ++out_.frames;
    if (s.first_frame == 0) {
      s.first_frame = f.header.frame_number;
      s.first_batch = f.header.batch;
    }
  }
  // The checkpoint head is the start of the segment's first batch and ends with it.
  if (Status st = check_checkpoint_complete(s); !st) return st;
  const FrameHeader& last = pending_.back().header;
  s.last_frame = last.frame_number;
  s.last_checksum = last.header_checksum;
  s.last_batch = last.batch;
  chain_ = Chain{true, last.frame_number + 1, last.header_checksum, last.batch};
  pending_.clear();
  return Status::ok();
}

// Walks the frames of a written segment, applying each complete batch. Stops at the end of the
// written data, or at damage (scan->damaged): a frame whose header or body checksum does not
// match, a batch without its BATCH_END frame, or non-zero bytes after the all-zero header that
// ends the frames (rule 2). An intact frame that breaks a rule is corruption right away.
Status Recovery::scan_segment(SegmentSummary& s, bool last_written, FrameScan* scan) {
  const uint64_t salt = s.header.salt;
  uint64_t off = kSegmentHeaderBytes;
  pending_.clear();
  in_checkpoint_head_ = true;
  checkpoint_frames_ = 0;
  checkpoint_last_items_ = 0;
  groups_before_segment_ = out_.groups.size();
  rebuild_.begin_segment(out_.written.empty());
  auto damage = [&](std::string what) {
    scan->damaged = true;
    scan->bad_offset = off;
    scan->what = std::move(what);
  };
  bool zero_header = false;
  while (off + kFrameHeaderBytes <= buf_.size()) {
    if (Status st = fill_ahead(off + kFrameHeaderBytes); !st) return st;
    const std::byte* p = buf_.data() + off;
    if (is_zero_header(p)) {
      zero_header = true;
      break;
    }
    if (!frame_header_valid(p, salt)) {
      damage("frame header checksum mismatch (damaged, or written with another salt)");
      break;
    }
    FrameHeader h;
    decode_frame_header(p, &h);
    if (Status st = check_frame_header(s, off, h); !st) return st;
    if (Status st = fill_ahead(off + frame_bytes(h.length)); !st) return st;
    p = buf_.data() + off;
    if (checksum({p + kFrameHeaderBytes, h.length}, salt) != h.body_checksum) {
      damage(fmt::format("frame {} body checksum mismatch", h.frame_number));
      break;
    }
    pending_.push_back({off, h});
    off += frame_bytes(h.length);
    if (h.batch_end()) {
      if (Status st = apply_batch(s); !st) return st;
      scan->end = off;
    }
  }
  if (scan->damaged) return Status::ok();
  if (!pending_.empty()) {
    damage(fmt::format("batch {} ends without its BATCH_END frame (incomplete)",
                       pending_.front().header.batch));
    return Status::ok();
  }
  if (!zero_header) return Status::ok();  // frames fill the segment to its end
  // After the all-zero header the rest must be zeros: to the end of an older segment; in the
  // last written segment as far as the next write could reach (rule 2).
  uint64_t limit = buf_.size();
  if (last_written) limit = std::min(limit, std::max(off, scan->end + s.header.write_bytes_max));
  if (Status st = fill(limit); !st) return st;
  if (uint64_t nz = nonzero_end(buf_.prefix(limit), off); nz > off) {
    damage(fmt::format("all-zero frame header followed by data up to offset {}", nz));
  }
  return Status::ok();
}

// The number of the batch the damage is in: the batch of the intact frames read before it, or
// the one after the last complete batch (1 when the log holds none).
uint64_t Recovery::damaged_batch() const {
  if (!pending_.empty()) return pending_.front().header.batch;
  return chain_.last_batch + 1;
}

// Looks in the loaded segment, from `from` on, for an intact frame header (checksum matches with
// `salt`) of a batch after `batch`. Returns its offset (*found: the header) or UINT64_MAX. Its
// batch was written after `batch` was durable: one batch is in flight at a time, and batch
// numbers only grow (a cut batch's number is reused, never a higher one).
uint64_t Recovery::find_later_batch(uint64_t salt, uint64_t from, uint64_t batch,
                                    FrameHeader* found) {
  const uint64_t end = nonzero_end(buf_.prefix(buf_.size()), from);
  // A header may end in zero bytes (item_count 0), so it may reach past the last non-zero byte.
  for (uint64_t y = align_up(from, kFrameAlignBytes);
       y < end && y + kFrameHeaderBytes <= buf_.size(); y += kFrameAlignBytes) {
    const std::byte* p = buf_.data() + y;
    if (get_u64(p) == 0 || !frame_header_valid(p, salt)) continue;
    decode_frame_header(p, found);
    if (found->batch > batch) return y;
  }
  return UINT64_MAX;
}

Status Recovery::cut(const std::string& path, uint64_t from, uint64_t to) {
  if (mode_ != RecoveryMode::kRepair) return Status::ok();
  // Zero what was cut (etcd's ZeroToEnd): stale bytes after the new end could otherwise look
  // like valid frames once new frames are written before them.
  auto f = env_.open(path, OpenMode::kReadWrite);
  if (!f) return f.status();
  if (to > from) {
    std::vector<std::byte> zeros(to - from);
    if (Status s = write_all(**f, zeros, from); !s) return s;
  }
  return (*f)->sync_data();
}

void Recovery::note_torn(TornTail t) {
  if (mode_ == RecoveryMode::kRepair) {
    log::warn(
        "wal: torn tail in {} at offset {}: batch {} is incomplete ({}; damage at offset "
        "{}); cutting {} bytes",
        t.path, t.offset, t.batch, t.what, t.damage_offset, t.bytes);
  }
  out_.torn = std::move(t);
}

// Damage in the last written segment (rule 4): a torn tail when it lies within the reach of the
// last write and nothing of a later batch follows it, in this segment or in the next file;
// otherwise corruption. A torn tail is the incomplete last batch, cut whole.
Status Recovery::classify_last(const std::vector<Name>& names, size_t i, SegmentSummary& s,
                               const FrameScan& scan) {
  const uint64_t start = scan.end;  // where the incomplete batch starts
  const uint64_t batch = damaged_batch();
  const uint64_t reach =
      start == kSegmentHeaderBytes
          ? first_write_bytes_max(groups_before_segment_, s.header.write_bytes_max)
          : s.header.write_bytes_max;
  const uint64_t window_end = std::min(buf_.size(), start + reach);
  if (scan.bad_offset >= window_end) {
    return corrupt(s.path, scan.bad_offset,
                   fmt::format("{}; this is past the reach of the last write ({}..{}), so it is "
                               "not a torn write",
                               scan.what, start, window_end));
  }
  // Damage was found: this rare path reads the whole rest of the file, and the next one.
  if (Status st = fill(buf_.size()); !st) return st;
  FrameHeader later;
  if (uint64_t y = find_later_batch(s.header.salt, scan.bad_offset, batch, &later);
      y != UINT64_MAX) {
    return corrupt(s.path, scan.bad_offset,
                   fmt::format("{}; frame {} of the later batch {} follows at offset {}, so "
                               "batch {} was acknowledged",
                               scan.what, later.frame_number, later.batch, y, batch));
  }
  const uint64_t nz_end = nonzero_end(buf_.prefix(window_end), start);
  if (i + 1 < names.size()) {
    SegmentHeader next;
    if (Status st = load(names, i + 1, &next); !st) return st;
    if (Status st = fill(buf_.size()); !st) return st;
    if (uint64_t y = find_later_batch(next.salt, kSegmentHeaderBytes, batch, &later);
        y != UINT64_MAX) {
      return corrupt(
          s.path, scan.bad_offset,
          fmt::format("{}; frame {} of the later batch {} follows in {} at offset {}, "
                      "so batch {} was acknowledged",
                      scan.what, later.frame_number, later.batch, names[i + 1].path, y, batch));
    }
    // The write in flight was this segment's, so nothing was written into the next one since
    // the last repair zeroed the reach of its first write (rule 3): data there is a second
    // damaged place, and at most one can be a torn write.
    const uint64_t next_end =
        std::min(buf_.size(), kSegmentHeaderBytes +
                                  first_write_bytes_max(out_.groups.size(), next.write_bytes_max));
    if (uint64_t nz = nonzero_end(buf_.prefix(next_end), kSegmentHeaderBytes);
        nz > kSegmentHeaderBytes) {
      return corrupt(s.path, scan.bad_offset,
                     fmt::format("{}; {} holds data up to offset {} where its first write would "
                                 "go: two damaged places, at most one of them a torn write",
                                 scan.what, names[i + 1].path, nz));
    }
  }
  note_torn(TornTail{s.path, start, nz_end - start, scan.bad_offset, batch, scan.what});
  return cut(s.path, start, nz_end);
}

// The first spare after the last written segment is where the next write goes when the last
// batch did not fit the segment before it. Its first frame slot is zero, so any first write
// into it did not complete; bytes that write left further in are cut like any torn tail, so that
// no stale bytes carrying this segment's salt remain when it is written later (rule 3).
Status Recovery::check_first_spare(const std::vector<Name>& names, size_t i) {
  SegmentHeader h;
  if (loaded_ != i) {
    if (Status st = load(names, i, &h); !st) return st;
  }
  h = headers_[i];
  const uint64_t window_end =
      std::min(buf_.size(),
               kSegmentHeaderBytes + first_write_bytes_max(out_.groups.size(), h.write_bytes_max));
  if (Status st = fill(window_end); !st) return st;
  const uint64_t nz_end = nonzero_end(buf_.prefix(window_end), kSegmentHeaderBytes);
  if (nz_end == kSegmentHeaderBytes) return Status::ok();
  const uint64_t batch = chain_.last_batch + 1;
  const std::string what = fmt::format(
      "first frame slot is zero but the reach of the segment's first write holds data up to "
      "offset {}",
      nz_end);
  if (Status st = fill(buf_.size()); !st) return st;
  FrameHeader later;
  if (uint64_t y = find_later_batch(h.salt, kSegmentHeaderBytes, batch, &later); y != UINT64_MAX) {
    return corrupt(names[i].path, kSegmentHeaderBytes,
                   fmt::format("{}; frame {} of batch {} at offset {} was written after the last "
                               "complete batch {}, so this segment's first frame was lost",
                               what, later.frame_number, later.batch, y, batch - 1));
  }
  note_torn(TornTail{names[i].path, kSegmentHeaderBytes, nz_end - kSegmentHeaderBytes,
                     kSegmentHeaderBytes, batch, what});
  return cut(names[i].path, kSegmentHeaderBytes, nz_end);
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

Result<RecoveredLog> Recovery::run() {
  std::vector<Name> names;
  if (Status s = list_segments(&names); !s) return s;
  if (mode_ == RecoveryMode::kRepair) {
    if (Status s = sync_all(names); !s) return s;
  }
  if (Status s = find_last_written(names); !s) return s;
  std::vector<SegmentSummary> spares;
  const size_t written_end = last_written_ == SIZE_MAX ? 0 : last_written_ + 1;
  for (size_t i = 0; i < written_end; ++i) {
    SegmentSummary seg;
    seg.sequence = names[i].sequence;
    seg.path = names[i].path;
    if (loaded_ != i) {
      if (Status s = load(names, i, &headers_[i]); !s) return s;
    }
    seg.header = headers_[i];
    const bool last = i == last_written_;
    if (!last && is_zero_header(buf_.data() + kSegmentHeaderBytes)) {
      // Rule 3: a segment is written front to back, from its first frame slot, and only after
      // the one before it; a later segment holding frames means this one was written too.
      return corrupt(seg.path, kSegmentHeaderBytes,
                     fmt::format("the first frame slot is zero (a prepared, never written "
                                 "segment) but {} after it holds frames",
                                 names[last_written_].path));
    }
    FrameScan scan;
    if (Status s = scan_segment(seg, last, &scan); !s) return s;
    if (scan.damaged) {
      if (!last) {
        return corrupt(seg.path, scan.bad_offset,
                       fmt::format("{}; {} after it holds frames, so every batch of this "
                                   "segment was acknowledged",
                                   scan.what, names[last_written_].path));
      }
      if (Status s = classify_last(names, i, seg, scan); !s) return s;
    }
    seg.end_offset = scan.end;
    if (seg.frames == 0) {
      spares.push_back(seg);  // its only batch was cut: a spare again
      continue;
    }
    if (observer_ != nullptr) observer_->on_segment(seg, false);
    out_.written.push_back(std::move(seg));
  }
  for (size_t i = written_end; i < names.size(); ++i) {
    SegmentSummary sp;
    sp.sequence = names[i].sequence;
    sp.path = names[i].path;
    sp.header = headers_[i];
    spares.push_back(std::move(sp));
  }
  if (!out_.torn && written_end < names.size()) {
    if (Status s = check_first_spare(names, written_end); !s) return s;
  }
  for (SegmentSummary& sp : spares) {
    if (observer_ != nullptr) observer_->on_segment(sp, true);
    out_.spares.push_back(std::move(sp));
  }
  out_.next_frame = chain_.next_frame;
  out_.last_checksum = chain_.last_checksum;
  out_.next_batch = chain_.last_batch + 1;
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
