// The WAL writer: staging records into batches, group commit, segment roll-over, durability
// reports, the entry cache, reads and segment release. Format: doc/wal-format.md.
#include "raftd/wal/wal.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "raftd/base/log.h"

namespace raftd::wal {

namespace {

// Order of frame types inside a section of a batch (doc/wal-format.md, "Order inside a batch").
int rank_of(FrameType t) {
  switch (t) {
    case FrameType::kTruncate: return 0;
    case FrameType::kEntries: return 1;
    case FrameType::kHardState: return 2;
    case FrameType::kSnapshotMark: return 3;
    default: break;
  }
  RAFTD_ASSERT(false, "frame type has no rank in a batch");
  return 0;
}
constexpr int kRanks = 4;
// The write buffer is page-aligned so an O_DIRECT mode can use it unchanged.
constexpr uint64_t kBufferAlignBytes = 4096;
// Capacity of frame bodies kept for reuse between batches: two default batches' worth, so a
// steady load reuses its buffers while one large burst does not pin its memory for ever.
constexpr uint64_t kSpareBodyBytesMax = 2 * kBatchBytesDefault;

}  // namespace

// Never erased from groups_ while the Wal lives, so batches and the cache refer to a group by
// pointer: a hash lookup per entry on each path cost more than the rest of the bookkeeping.
struct Wal::GroupState {
  GroupId id;
  GroupLog log;
  bool durable_exists = false;  // some batch holding this group's records is durable
  Durable durable;
  uint64_t staged_batch = 0;   // batch of the last staged record
  uint64_t durable_batch = 0;  // last batch with this group's records that is durable
  uint32_t section = 0;        // section and rank of the last staged record in staged_batch
  int rank = -1;
  uint64_t placed_segment = 0;  // a segment whose `groups` holds this group (skips the insert)
};

struct Wal::Batch {
  struct Frame {
    FrameType type = FrameType::kInvalid;
    uint32_t section = 0;
    int rank = 0;
    uint32_t id = 0;  // creation index; fix-ups refer to it
    uint32_t items = 0;
    std::vector<std::byte> body;
  };
  struct Fixup {
    GroupState* group;
    LogIndex index;
    uint64_t cache_pos;  // the entry's identity (EntryLoc::cache_pos)
    uint32_t frame_id;
    uint32_t payload_offset;
    uint64_t cache_end;
  };
  uint64_t id = 0;
  std::vector<Frame> frames;
  std::array<int, kRanks> current{-1, -1, -1, -1};  // frame per rank in the current section
  uint32_t section = 0;
  uint64_t bytes = 0;   // encoded size of the frames
  bool urgent = false;  // holds a record that is not a lazy hard state
  std::vector<Fixup> fixups;
  std::vector<GroupState*> touched;  // in the order of `reports`
  std::vector<Durable> reports;
};

struct Wal::Segment {
  uint64_t sequence = 0;
  std::string path;
  uint64_t salt = 0;
  uint64_t capacity = 0;
  uint64_t write_bytes_max = 0;  // from the header: every write after the first is at most this
  std::unique_ptr<File> file;
  std::unordered_set<GroupId> groups;  // groups with entries placed in this segment
  // The group that last kept this segment from being released: checked first, so a segment
  // that stays pinned costs one check per batch, not a scan of every group in it.
  std::optional<GroupId> pinned_by;
};

Wal::Wal(Env& env, std::string dir, WalOptions options, Executor& executor, SyncWriter& writer)
    : env_(env),
      dir_(std::move(dir)),
      options_(std::move(options)),
      executor_(executor),
      writer_(writer),
      alive_(std::make_shared<Wal*>(this)) {
  // Room for cache_bytes_max in use (durable cached entries evicted down to it, wal.h) or for two
  // batches not yet durable (one in flight, one filling), whichever is more, plus one lap-end gap
  // and one entry of slack (an entry fits in a batch). More may be staged than the ring holds:
  // an append that would not fit once every durable entry had left gets kUnavailable
  // (ring_fits), and the ring holds at least one batch, so an append fits once all before it are
  // durable. (An entry takes at most entry_max bytes of the ring, an empty one 1: entries are at
  // most kEntryBytesMax and smaller than a batch.) The default ring, 10 MiB, is whole huge pages.
  const uint64_t entry_max = std::min(kEntryBytesMax, options_.batch_bytes_max);
  cache_ = std::make_unique<CacheArena>(
      std::max(options_.cache_bytes_max, 2 * options_.batch_bytes_max) + 2 * entry_max);
  preparer_ = std::make_unique<SegmentPreparer>(env_, dir_, options_.segment_bytes,
                                                options_.batch_bytes_max, executor_,
                                                options_.prepare_on_thread);
}

Wal::~Wal() {
  preparer_.reset();  // joins the compaction thread before anything it reports to goes away
  alive_.reset();
  std::free(buf_);
}

Result<std::unique_ptr<Wal>> Wal::open(Env& env, const std::string& dir, WalOptions options,
                                       Executor& executor, SyncWriter& writer) {
  if (options.segment_bytes < kSegmentBytesMin || options.segment_bytes > kSegmentBytesMax ||
      options.segment_bytes % kSegmentHeaderBytes != 0) {
    return Status(Code::kInvalidArgument,
                  fmt::format("wal segment_bytes {} must be a multiple of 4096 in [{}, {}]",
                              options.segment_bytes, kSegmentBytesMin, kSegmentBytesMax));
  }
  if (options.batch_bytes_max < kWriteBytesMin ||
      options.batch_bytes_max > options.segment_bytes / 4) {
    return Status(Code::kInvalidArgument,
                  fmt::format("wal batch_bytes_max {} must be in [{}, segment_bytes/4 = {}]",
                              options.batch_bytes_max, kWriteBytesMin, options.segment_bytes / 4));
  }
  if (options.ready_segments < 1 || options.ready_segments > 2 || options.queued_batches_max < 1 ||
      !options.on_durable) {
    return Status(Code::kInvalidArgument,
                  "wal ready_segments must be 1 or 2, queued_batches_max >= 1, on_durable set");
  }
  if (Status s = env.create_dir(dir); !s) return s;
  auto recovered = recover_log(env, dir, RecoveryMode::kRepair);
  if (!recovered) return recovered.status();
  std::unique_ptr<Wal> wal(new Wal(env, dir, std::move(options), executor, writer));
  if (Status s = wal->adopt(std::move(*recovered)); !s) return s;
  wal->request_segments();
  return wal;
}

Status Wal::adopt(RecoveredLog&& log) {
  for (auto& [g, l] : log.groups) {
    auto gs = std::make_unique<GroupState>();
    gs->id = g;
    gs->log = std::move(l);
    gs->durable_exists = true;
    ++durable_groups_;
    gs->durable = Durable{g, gs->log.last_index(), gs->log.last_term(), gs->log.hard, gs->log.mark};
    groups_.emplace(g, std::move(gs));
  }
  auto open_segment = [&](const SegmentSummary& s) -> Result<std::unique_ptr<Segment>> {
    auto f = env_.open(s.path, OpenMode::kReadWrite);
    if (!f) return f.status();
    auto seg = std::make_unique<Segment>();
    seg->sequence = s.sequence;
    seg->path = s.path;
    seg->salt = s.header.salt;
    seg->capacity = s.header.capacity;
    seg->write_bytes_max = s.header.write_bytes_max;
    seg->file = std::move(*f);
    next_sequence_ = std::max(next_sequence_, s.sequence + 1);
    return seg;
  };
  for (const SegmentSummary& s : log.written) {
    auto seg = open_segment(s);
    if (!seg) return seg.status();
    written_.push_back(std::move(*seg));
  }
  if (Status s = drop_small_spares(&log.spares); !s) return s;
  for (const SegmentSummary& s : log.spares) {
    auto seg = open_segment(s);
    if (!seg) return seg.status();
    ready_.push_back(std::move(*seg));
  }
  if (!written_.empty()) {
    const uint64_t first_seq = written_.front()->sequence;
    for (auto& [g, gs] : groups_) {
      uint64_t last_seg = 0;
      for (const EntryLoc& loc : gs->log.locs) {
        if (loc.segment == last_seg) continue;
        last_seg = loc.segment;
        written_[loc.segment - first_seq]->groups.insert(g);
      }
    }
    // Recovery ends the log at the end of the last complete batch; the next write starts there
    // and must stay within the reach recovery measures from that point, the header's
    // write_bytes_max. A larger batch limit now would exceed it: continue in a fresh segment.
    const SegmentSummary& last = log.written.back();
    write_offset_ = last.end_offset;
    active_needs_head_ = false;
    if (last.header.write_bytes_max < options_.batch_bytes_max)
      write_offset_ = last.header.capacity;
  }
  next_frame_ = log.next_frame;
  last_checksum_ = log.last_checksum;
  next_batch_ = log.next_batch;
  torn_ = std::move(log.torn);
  return Status::ok();
}

// Spares prepared (by an earlier run) with a smaller write_bytes_max than the current batch
// limit cannot take this run's batches within their headers' bound: delete them, newest first
// so the sequence never has a gap, and prepare new ones with the same sequence numbers.
Status Wal::drop_small_spares(std::vector<SegmentSummary>* spares) {
  auto small = std::find_if(spares->begin(), spares->end(), [&](const SegmentSummary& s) {
    return s.header.write_bytes_max < options_.batch_bytes_max;
  });
  if (small == spares->end()) return Status::ok();
  next_sequence_ = std::max(next_sequence_, small->sequence);
  for (auto it = spares->end(); it != small;) {
    --it;
    if (Status s = env_.remove(it->path); !s) return s;
    log::info("wal: removed spare segment {}: its write_bytes_max {} is below batch_bytes_max {}",
              it->path, it->header.write_bytes_max, options_.batch_bytes_max);
  }
  spares->erase(small, spares->end());
  return env_.sync_dir(dir_);
}

Status Wal::check_open() const {
  if (failed_) return Status(Code::kAborted, "wal stopped after a write or fdatasync failure");
  return Status::ok();
}

Wal::GroupState& Wal::group_state(GroupId g) {
  auto& slot = groups_[g];
  if (!slot) {
    slot = std::make_unique<GroupState>();
    slot->id = g;
  }
  return *slot;
}

bool Wal::open_batch_empty() const { return !open_ || open_->frames.empty(); }

uint64_t Wal::urgent_batch() const {
  if (!open_batch_empty() && open_->urgent) return open_->id;
  return (open_ ? open_->id : next_batch_id_) - 1;  // sealed batches are written in any case
}

uint64_t Wal::staged_batch() const {
  if (!open_batch_empty()) return open_->id;
  // Batch ids are handed out in order, so the newest batch before an empty open one (or before
  // the next one to be created) is the last that holds anything.
  return (open_ ? open_->id : next_batch_id_) - 1;
}

Result<std::vector<std::byte>*> Wal::reserve(GroupState& gs, FrameType t, uint64_t bytes) {
  const int r = rank_of(t);
  auto extra_for = [&](const Batch& b) {
    bool new_section = gs.staged_batch == b.id && gs.section == b.section && r < gs.rank;
    bool reuse = !new_section && b.current[size_t(r)] >= 0;
    return (reuse ? 0 : kFrameHeaderBytes) + bytes;
  };
  if (kFrameHeaderBytes + bytes > options_.batch_bytes_max) {
    return Status(Code::kTooLarge, fmt::format("a {}-byte WAL record exceeds the batch limit {}",
                                               bytes, options_.batch_bytes_max));
  }
  if (!open_) open_ = new_batch();
  if (open_->bytes + extra_for(*open_) > options_.batch_bytes_max) {
    if (queued_.size() >= options_.queued_batches_max) {
      return Status(Code::kUnavailable, "wal batch queue is full; retry after the next sync");
    }
    seal_open_batch();
    open_ = new_batch();
  }
  Batch& b = *open_;
  if (gs.staged_batch == b.id && gs.section == b.section && r < gs.rank) {
    ++b.section;  // this group's records must keep their order: start a new section
    b.current.fill(-1);
  }
  int& cur = b.current[size_t(r)];
  if (cur < 0) {
    cur = int(b.frames.size());
    Batch::Frame f;
    f.type = t;
    f.section = b.section;
    f.rank = r;
    f.id = uint32_t(b.frames.size());
    if (!spare_bodies_.empty()) {
      f.body = std::move(spare_bodies_.back());
      spare_bodies_.pop_back();
      spare_body_bytes_ -= f.body.capacity();
    }
    b.frames.push_back(std::move(f));
    b.bytes += kFrameHeaderBytes;
  }
  b.bytes += bytes;
  if (gs.staged_batch != b.id) b.touched.push_back(&gs);
  gs.staged_batch = b.id;
  gs.section = b.section;
  gs.rank = r;
  Batch::Frame& f = b.frames[size_t(cur)];
  ++f.items;
  last_frame_id_ = f.id;
  return &f.body;
}

void Wal::drop_loc(EntryLoc& loc) {
  if (loc.cached) {
    cache_bytes_ -= loc.length;
    loc.cached = false;
  }
}

Status Wal::append(GroupId g, LogIndex first, std::span<const EntryView> entries) {
  if (Status s = check_open(); !s) return s;
  if (entries.empty()) return Status(Code::kInvalidArgument, "wal append of no entries");
  GroupState& gs = group_state(g);
  GroupLog& l = gs.log;
  if (first <= l.mark.index || first > l.last_index() + 1) {
    return Status(Code::kInvalidArgument,
                  fmt::format("wal append to group {} at {} outside {}..{}", raw(g), raw(first),
                              raw(l.mark.index + 1), raw(l.last_index() + 1)));
  }
  Term prev = first - 1 == l.base_index ? l.base_term : l.at(first - 1)->term;
  uint64_t bytes = kEntriesBlockBytes;
  for (const EntryView& e : entries) {
    if (e.data.size() > kEntryBytesMax) {
      return Status(Code::kTooLarge,
                    fmt::format("wal entry of {} bytes exceeds {}", e.data.size(), kEntryBytesMax));
    }
    if (e.term < prev) {
      return Status(Code::kInvalidArgument,
                    fmt::format("wal append to group {}: term {} after term {}", raw(g),
                                raw(e.term), raw(prev)));
    }
    prev = e.term;
    bytes += kEntryHeaderBytes + align_up(e.data.size(), kFrameAlignBytes);
  }
  if (!ring_fits(entries)) {
    return Status(Code::kUnavailable,
                  "wal cache ring is full of entries not yet durable; retry after the next sync");
  }
  auto body = reserve(gs, FrameType::kEntries, bytes);
  if (!body) return body.status();
  open_->urgent = true;
  Batch& b = *open_;
  const uint32_t frame_id = last_frame_id_;
  l.truncate_from(first, [this](EntryLoc& loc) { drop_loc(loc); });
  BodyWriter w(*body);
  w.entries_block(g, first, uint32_t(entries.size()));
  for (const EntryView& e : entries) {
    uint64_t off = w.entry(e);
    EntryLoc loc;
    loc.term = e.term;
    loc.length = uint32_t(e.data.size());
    loc.type = e.type;
    loc.cached = true;
    make_cache_room(e.data.size());
    loc.cache_pos = cache_->put(e.data);
    cache_bytes_ += loc.length;
    b.fixups.push_back({&gs, l.last_index() + 1, loc.cache_pos, frame_id, uint32_t(off),
                        CacheArena::end_of(loc.cache_pos, loc.length)});
    l.locs.push_back(std::move(loc));
  }
  return Status::ok();
}

Status Wal::set_hard_state(GroupId g, const HardState& hs, Urgency urgency) {
  if (Status s = check_open(); !s) return s;
  GroupState& gs = group_state(g);
  if (hs.term < gs.log.hard.term) {
    return Status(Code::kInvalidArgument, fmt::format("wal hard state of group {}: term {} < {}",
                                                      raw(g), raw(hs.term), raw(gs.log.hard.term)));
  }
  auto body = reserve(gs, FrameType::kHardState, kHardStateRecordBytes);
  if (!body) return body.status();
  if (urgency == Urgency::kNow) open_->urgent = true;
  BodyWriter(*body).hard_state(g, hs);
  gs.log.hard = hs;
  return Status::ok();
}

Status Wal::truncate(GroupId g, LogIndex from) {
  if (Status s = check_open(); !s) return s;
  GroupState& gs = group_state(g);
  GroupLog& l = gs.log;
  if (from <= l.mark.index || from > l.last_index() + 1) {
    return Status(Code::kInvalidArgument,
                  fmt::format("wal truncate of group {} from {} outside {}..{}", raw(g), raw(from),
                              raw(l.mark.index + 1), raw(l.last_index() + 1)));
  }
  auto body = reserve(gs, FrameType::kTruncate, kTruncateRecordBytes);
  if (!body) return body.status();
  open_->urgent = true;
  BodyWriter(*body).truncate(g, from);
  l.truncate_from(from, [this](EntryLoc& loc) { drop_loc(loc); });
  return Status::ok();
}

Status Wal::compact(GroupId g, LogIndex index, Term term) {
  if (Status s = check_open(); !s) return s;
  GroupState& gs = group_state(g);
  GroupLog& l = gs.log;
  if (index < l.mark.index) {
    return Status(Code::kInvalidArgument,
                  fmt::format("wal compact of group {} to {} is behind its mark {}", raw(g),
                              raw(index), raw(l.mark.index)));
  }
  if (const EntryLoc* e = l.at(index); e != nullptr && e->term != term) {
    return Status(Code::kInvalidArgument,
                  fmt::format("wal compact of group {} to {}: term {} but the entry has {}", raw(g),
                              raw(index), raw(term), raw(e->term)));
  }
  if (index == l.mark.index && term != l.mark.term) {
    return Status(Code::kInvalidArgument,
                  fmt::format("wal compact of group {} to its mark {}: term {} but the mark has {}",
                              raw(g), raw(index), raw(term), raw(l.mark.term)));
  }
  if (SnapshotMark{index, term} == l.mark) return Status::ok();
  auto body = reserve(gs, FrameType::kSnapshotMark, kSnapshotMarkRecordBytes);
  if (!body) return body.status();
  open_->urgent = true;
  BodyWriter(*body).snapshot_mark(g, SnapshotMark{index, term});
  l.compact_to(SnapshotMark{index, term}, [this](EntryLoc& loc) { drop_loc(loc); });
  return Status::ok();
}

void Wal::seal_open_batch() {
  Batch& b = *open_;
  for (const GroupState* gs : b.touched) {
    const GroupLog& l = gs->log;
    b.reports.push_back(Durable{gs->id, l.last_index(), l.last_term(), l.hard, l.mark});
  }
  std::stable_sort(b.frames.begin(), b.frames.end(), [](const auto& x, const auto& y) {
    return x.section != y.section ? x.section < y.section : x.rank < y.rank;
  });
  queued_.push_back(std::move(open_));
}

void Wal::flush() { flush_staged(Urgency::kNow); }

bool Wal::flush_lazy() {
  flush_staged(Urgency::kLazy);
  return open_batch_empty();
}

void Wal::flush_staged(Urgency upto) {
  if (failed_ || in_flight_) return;
  if (!open_batch_empty() && (open_->urgent || upto == Urgency::kLazy)) seal_open_batch();
  if (!queued_.empty()) submit_front();
}

// CHECKPOINT frames: every group's durable state, which is the state before this batch (one
// batch in flight, so every earlier batch is durable when this one is encoded). They are the
// first frames of the batch; groups in ascending order, kCheckpointRecordsPerFrame per frame.
void Wal::encode_checkpoint(std::byte* out, uint64_t* pos, uint32_t* batch_index) {
  std::vector<GroupId>& ids = checkpoint_ids_;
  ids.clear();
  for (const auto& [g, gs] : groups_) {
    if (gs->durable_exists) ids.push_back(g);
  }
  RAFTD_ASSERT(ids.size() == durable_groups_, "durable group count matches the groups");
  std::sort(ids.begin(), ids.end());
  const uint64_t salt = written_.back()->salt;
  size_t at = 0;
  do {
    std::vector<std::byte>& body = checkpoint_body_;
    body.clear();
    body.reserve(std::min<uint64_t>(ids.size(), kCheckpointRecordsPerFrame) *
                 kCheckpointRecordBytes);
    BodyWriter w(&body);
    uint32_t items = 0;
    for (; at < ids.size() && items < kCheckpointRecordsPerFrame; ++at, ++items) {
      const Durable& d = groups_.at(ids[at])->durable;
      w.checkpoint(CheckpointRecord{d.group, d.hard, d.mark, d.last_index, d.last_term});
    }
    FrameHeader h;
    h.prev_checksum = last_checksum_;
    h.frame_number = next_frame_++;
    h.batch = next_batch_;
    h.batch_index = (*batch_index)++;
    h.type = FrameType::kCheckpoint;
    h.item_count = items;
    last_checksum_ = encode_frame(h, body, salt, out + *pos);
    *pos += frame_bytes(body.size());
    ++stats_.frames;
  } while (at < ids.size());
}

bool Wal::submit_front() {
  Batch& b = *queued_.front();
  const uint64_t ckpt = checkpoint_bytes(durable_groups_);
  auto fits_active = [&] {
    if (written_.empty()) return false;
    const Segment& s = *written_.back();
    uint64_t start = active_needs_head_ ? kSegmentHeaderBytes : write_offset_;
    uint64_t head = active_needs_head_ ? ckpt : 0;
    return start + head + b.bytes <= s.capacity;
  };
  if (!fits_active()) {
    if (ready_.empty()) {
      if (!waiting_for_segment_) {  // once per stall, not once per turn
        waiting_for_segment_ = true;
        ++stats_.roll_waits;
        log::warn("wal: no prepared segment ready; the batch waits for the compaction thread");
      }
      request_segments();
      return false;
    }
    waiting_for_segment_ = false;
    written_.push_back(std::move(ready_.front()));
    ready_.pop_front();
    write_offset_ = kSegmentHeaderBytes;
    active_needs_head_ = true;
    request_segments();
    if (!fits_active()) {
      fail(EFBIG, kSegmentHeaderBytes, ckpt + b.bytes);
      return false;
    }
  }
  Segment& seg = *written_.back();
  const bool head = active_needs_head_;
  const uint64_t start = head ? kSegmentHeaderBytes : write_offset_;
  const uint64_t total = (head ? ckpt : 0) + b.bytes;
  // Recovery bounds the torn-tail window by these limits (doc/wal-format.md, rule 2).
  RAFTD_ASSERT(total <= (head ? first_write_bytes_max(durable_groups_, seg.write_bytes_max)
                              : seg.write_bytes_max),
               "a WAL write stays within its segment's write_bytes_max");
  if (total > buf_capacity_) {
    std::free(buf_);
    buf_capacity_ = align_up(total, kBufferAlignBytes);
    buf_ = static_cast<std::byte*>(std::aligned_alloc(kBufferAlignBytes, buf_capacity_));
    RAFTD_ASSERT(buf_ != nullptr, "out of memory for the WAL write buffer");
  }
  uint64_t pos = 0;
  uint32_t batch_index = 0;
  if (head) encode_checkpoint(buf_, &pos, &batch_index);
  frame_offsets_.resize(b.frames.size());
  for (size_t i = 0; i < b.frames.size(); ++i) {
    Batch::Frame& f = b.frames[i];
    FrameHeader h;
    h.prev_checksum = last_checksum_;
    h.frame_number = next_frame_++;
    h.batch = next_batch_;
    h.batch_index = batch_index++;
    h.type = f.type;
    h.flags = i + 1 == b.frames.size() ? kFrameFlagBatchEnd : 0;
    h.item_count = f.items;
    last_checksum_ = encode_frame(h, f.body, seg.salt, buf_ + pos);
    frame_offsets_[f.id] = start + pos;
    pos += frame_bytes(f.body.size());
    ++stats_.frames;
  }
  RAFTD_ASSERT(pos == total, "encoded batch size matches its accounting");
  ++next_batch_;
  place_entries(b, seg);
  flight_ = std::move(queued_.front());
  queued_.pop_front();
  in_flight_ = true;
  flight_offset_ = start;
  flight_bytes_ = total;
  stats_.batch_bytes_last = total;
  ++stats_.syncs;
  flight_started_ = std::chrono::steady_clock::now();
  writer_.submit(*seg.file, std::span<const std::byte>(buf_, total), start, this);
  return true;
}

void Wal::place_entries(Batch& b, Segment& seg) {
  for (const Batch::Fixup& fx : b.fixups) {
    GroupState& gs = *fx.group;
    EntryLoc* loc = gs.log.at(fx.index);
    if (loc == nullptr || loc->cache_pos != fx.cache_pos)
      continue;  // replaced before it was written
    loc->segment = seg.sequence;
    loc->frame_offset = uint32_t(frame_offsets_[fx.frame_id]);  // < segment_bytes
    loc->payload_offset = fx.payload_offset;
    if (gs.placed_segment != seg.sequence) {
      seg.groups.insert(gs.id);
      gs.placed_segment = seg.sequence;
    }
  }
}

void Wal::on_synced(int error) {
  in_flight_ = false;
  if (error != 0) {
    fail(error, flight_offset_, flight_bytes_);
    return;
  }
  write_offset_ = flight_offset_ + flight_bytes_;
  active_needs_head_ = false;
  ++stats_.batches;
  stats_.bytes_written += flight_bytes_;
  stats_.sync_seconds.observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - flight_started_).count());
  stats_.batch_bytes.observe(static_cast<double>(flight_bytes_));
  complete_batch();
  release_segments();
  request_segments();
}

void Wal::complete_batch() {
  std::unique_ptr<Batch> b = std::move(flight_);
  RAFTD_ASSERT(b->reports.size() == b->touched.size(), "a durable report per touched group");
  for (size_t i = 0; i < b->reports.size(); ++i) {
    const Durable& d = b->reports[i];
    GroupState& gs = *b->touched[i];
    gs.durable = d;
    if (!gs.durable_exists) ++durable_groups_;
    gs.durable_exists = true;
    gs.durable_batch = b->id;
  }
  // One reference per run of a group's entries that lie back to back in the arena (a group's
  // entries in one append, or in appends with no other group's between them), of at most
  // kCacheRunBytesMax so that eviction stays fine-grained: fix-ups are in arena order, and
  // batches become durable in order.
  for (const Batch::Fixup& fx : b->fixups) {
    if (!cache_order_.empty()) {
      CacheRef& last = cache_order_.back();
      if (last.group == fx.group && last.cache_end == fx.cache_pos && fx.index >= last.first &&
          fx.cache_end - cache_run_start_ <= kCacheRunBytesMax) {
        last.cache_end = fx.cache_end;
        continue;
      }
    }
    cache_order_.push_back({fx.group, fx.index, fx.cache_end});
    cache_run_start_ = fx.cache_pos;
  }
  evict_cache();
  durable_batch_id_ = b->id;
  options_.on_durable(b->reports);
  recycle(std::move(b));
}

std::unique_ptr<Wal::Batch> Wal::new_batch() {
  std::unique_ptr<Batch> b = spare_batch_ ? std::move(spare_batch_) : std::make_unique<Batch>();
  b->id = next_batch_id_++;
  return b;
}

void Wal::recycle(std::unique_ptr<Batch> b) {
  for (Batch::Frame& f : b->frames) {
    if (spare_body_bytes_ + f.body.capacity() > kSpareBodyBytesMax) break;
    f.body.clear();
    spare_body_bytes_ += f.body.capacity();
    spare_bodies_.push_back(std::move(f.body));
  }
  b->frames.clear();
  b->current.fill(-1);
  b->section = 0;
  b->bytes = 0;
  b->urgent = false;
  b->fixups.clear();
  b->touched.clear();
  b->reports.clear();
  spare_batch_ = std::move(b);
}

// The arena's bytes in use, not only those of live cached entries, are held to cache_bytes_max:
// bytes of entries compacted or replaced stay in the arena until the entries before them leave,
// and counting only live ones let the ring fill with dead bytes and their references (a node
// under a steady load held 245,000 references for 85,000 live entries, bench/etcd/README.md).
void Wal::evict_cache() {
  while (cache_->used() > options_.cache_bytes_max && !cache_order_.empty()) evict_oldest();
  stats_.cache_bytes = cache_bytes_;
  stats_.cache_arena_bytes = cache_->used();
}

// Drops the oldest run of durable cached entries and lets the arena reuse its bytes and those of
// every dead entry before it. The run's live entries are the group's entries from `first` on
// whose bytes lie before `cache_end`: an entry that replaced one of them, or came after them, was
// put later, at or past cache_end, and so were all entries above it.
void Wal::evict_oldest() {
  const CacheRef ref = cache_order_.front();
  cache_order_.pop_front();
  cache_->release(ref.cache_end);
  GroupLog& l = ref.group->log;
  for (LogIndex i = std::max(ref.first, l.base_index + 1); i <= l.last_index(); ++i) {
    EntryLoc& loc = *l.at(i);
    if (loc.cache_pos >= ref.cache_end) break;
    if (!loc.cached) continue;
    RAFTD_ASSERT(loc.segment != 0, "a durable cached entry has its place on disk");
    loc.cached = false;
    cache_bytes_ -= loc.length;
  }
}

// Whether `entries`, put after everything in the ring, would fit once every durable entry had left
// it. Entries become durable in the order they were put, so the entries not yet durable are the
// newest, after the end of the last durable run.
bool Wal::ring_fits(std::span<const EntryView> entries) const {
  uint64_t tail = cache_->tail();
  if (!cache_order_.empty()) tail = std::max(tail, cache_order_.back().cache_end);
  uint64_t head = cache_->head();
  for (const EntryView& e : entries) {
    head = CacheArena::end_of(cache_->start_at(head, e.data.size()), e.data.size());
  }
  return head - tail <= cache_->capacity();
}

// Entries leave the arena in the order they entered it, so room is made by evicting the oldest
// durable ones. append() checked that what it puts fits once they have all left (ring_fits).
void Wal::make_cache_room(uint64_t bytes) {
  while (!cache_->room(bytes)) {
    RAFTD_ASSERT(!cache_order_.empty(), "wal cache arena is full of entries not yet durable");
    evict_oldest();
  }
  stats_.cache_bytes = cache_bytes_;
  stats_.cache_arena_bytes = cache_->used();
}

// Deletes the oldest segments whose entries every group has compacted away, oldest first. A
// group with records not yet durable keeps its segments: its durable state may still need them.
void Wal::release_segments() {
  while (written_.size() > 1) {
    Segment& s = *written_.front();
    auto pins = [&](GroupId g) {
      const GroupState& gs = *groups_.at(g);
      if (gs.staged_batch != gs.durable_batch) return true;
      return !gs.log.locs.empty() && gs.log.locs.front().segment != 0 &&
             gs.log.locs.front().segment <= s.sequence;
    };
    if (s.pinned_by && pins(*s.pinned_by)) return;
    for (GroupId g : s.groups) {
      if (pins(g)) {
        s.pinned_by = g;
        return;
      }
    }
    std::string path = s.path;
    written_.pop_front();
    ++stats_.segments_deleted;
    preparer_->remove(path, [path](Status st) {
      if (!st) log::error("wal: deleting {} failed: {}", path, st.to_string());
    });
  }
}

void Wal::request_segments() {
  if (failed_ || preparing_ > 0 || ready_.size() >= options_.ready_segments) return;
  if (std::chrono::steady_clock::now() < prepare_retry_at_) return;
  // One preparation at a time, so sequences are created (and used) strictly in order.
  ++preparing_;
  std::weak_ptr<Wal*> alive = alive_;
  preparer_->prepare(next_sequence_, [alive](Result<PreparedSegment> r) {
    if (auto p = alive.lock()) (*p)->on_prepared(std::move(r));
  });
}

void Wal::on_prepared(Result<PreparedSegment> r) {
  --preparing_;
  if (!r) {
    // Retried at the next completion or flush; the log keeps using the segments it has.
    log::error("wal: preparing segment {} failed: {}; retrying in {} ms", next_sequence_,
               r.status().to_string(), options_.prepare_retry_ms);
    prepare_retry_at_ =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.prepare_retry_ms);
    return;
  }
  auto seg = std::make_unique<Segment>();
  seg->sequence = r->sequence;
  seg->path = r->path;
  seg->salt = r->salt;
  seg->capacity = r->capacity;
  seg->write_bytes_max = r->write_bytes_max;
  seg->file = std::move(r->file);
  ready_.push_back(std::move(seg));
  ++next_sequence_;
  ++stats_.segments_created;
  request_segments();
  flush();  // a batch may be waiting for this segment
}

void Wal::fail(int error, uint64_t offset, uint64_t bytes) {
  failed_ = true;
  FailStopInfo info{written_.empty() ? dir_ : written_.back()->path, offset, bytes, error};
  log::error(
      "wal: write+fdatasync of {} bytes at offset {} of {} failed: {} (errno {}); "
      "stopping: the WAL is recovered from disk on restart",
      bytes, offset, info.path, std::strerror(error), error);
  if (options_.fail_stop) {
    options_.fail_stop(info);
    return;
  }
  std::abort();
}

Result<std::vector<Entry>> Wal::read(GroupId g, LogIndex lo, LogIndex hi, uint64_t max_bytes) {
  auto it = groups_.find(g);
  if (it == groups_.end()) return Status(Code::kNotFound, fmt::format("wal: no group {}", raw(g)));
  const GroupLog& l = it->second->log;
  if (lo <= l.mark.index) {
    return Status(Code::kNotFound, fmt::format("wal: group {} entry {} is compacted (mark {})",
                                               raw(g), raw(lo), raw(l.mark.index)));
  }
  if (lo >= hi || hi > l.last_index() + 1) {
    return Status(Code::kInvalidArgument,
                  fmt::format("wal: group {} read [{}, {}) outside ..{}", raw(g), raw(lo), raw(hi),
                              raw(l.last_index())));
  }
  std::vector<Entry> out;
  uint64_t bytes = 0;
  for (LogIndex i = lo; i < hi && (out.empty() || bytes < max_bytes); ++i) {
    const EntryLoc& loc = *l.at(i);
    Entry e{i, loc.term, loc.type, {}};
    if (loc.cached) {
      e.data.assign(reinterpret_cast<const char*>(cache_->at(loc.cache_pos)), loc.length);
      ++stats_.cache_hits;
    } else {
      auto payload = read_payload(loc);
      if (!payload) return payload.status();
      e.data = std::move(*payload);
    }
    bytes += e.data.size();
    out.push_back(std::move(e));
  }
  return out;
}

// Reads (and verifies) the frame holding loc, reusing the last frame read.
Result<std::string> Wal::read_payload(const EntryLoc& loc) {
  RAFTD_ASSERT(loc.segment != 0 && !written_.empty(), "uncached entry has a place on disk");
  const uint64_t first_seq = written_.front()->sequence;
  RAFTD_ASSERT(loc.segment >= first_seq, "live entry in a released segment");
  Segment& seg = *written_[loc.segment - first_seq];
  if (read_buf_segment_ != loc.segment || read_buf_offset_ != loc.frame_offset) {
    ++stats_.file_reads;
    read_buf_offset_ = UINT64_MAX;
    read_buf_.resize(kFrameHeaderBytes);
    if (Status s = read_exact(*seg.file, read_buf_, loc.frame_offset); !s) return s;
    FrameHeader h;
    decode_frame_header(read_buf_.data(), &h);
    auto bad = [&](const char* what) {
      return Status(Code::kCorruption,
                    fmt::format("{} at offset {}: {}", seg.path, loc.frame_offset, what));
    };
    if (frame_header_checksum(read_buf_.data(), seg.salt) != h.header_checksum) {
      return bad("frame header checksum mismatch on read");
    }
    if (loc.frame_offset + frame_bytes(h.length) > seg.capacity) return bad("frame too long");
    read_buf_.resize(kFrameHeaderBytes + h.length);
    if (Status s = read_exact(*seg.file, std::span(read_buf_).subspan(kFrameHeaderBytes),
                              loc.frame_offset + kFrameHeaderBytes);
        !s) {
      return s;
    }
    if (checksum(std::span(read_buf_).subspan(kFrameHeaderBytes), seg.salt) != h.body_checksum) {
      return bad("frame body checksum mismatch on read");
    }
    read_buf_segment_ = loc.segment;
    read_buf_offset_ = loc.frame_offset;
  }
  uint64_t at = kFrameHeaderBytes + loc.payload_offset;
  RAFTD_ASSERT(at + loc.length <= read_buf_.size(), "entry lies inside its frame");
  return std::string(reinterpret_cast<const char*>(read_buf_.data() + at), loc.length);
}

std::optional<Wal::GroupInfo> Wal::group(GroupId g) const {
  auto it = groups_.find(g);
  if (it == groups_.end()) return std::nullopt;
  const GroupLog& l = it->second->log;
  return GroupInfo{l.hard, l.mark, l.last_index(), l.last_term()};
}

std::optional<Term> Wal::term(GroupId g, LogIndex i) const {
  auto it = groups_.find(g);
  if (it == groups_.end()) return std::nullopt;
  const GroupLog& l = it->second->log;
  if (i == l.base_index && l.base_term != kTermUnknown) return l.base_term;
  const EntryLoc* loc = l.at(i);
  if (loc == nullptr) return std::nullopt;
  return loc->term;
}

std::vector<GroupId> Wal::groups() const {
  std::vector<GroupId> ids;
  for (const auto& [g, gs] : groups_) ids.push_back(g);
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::vector<PinningGroup> Wal::pinning_groups() const {
  std::vector<PinningGroup> out;
  if (written_.size() < 2) return out;
  const Segment& s = *written_.front();
  for (GroupId g : s.groups) {
    const GroupLog& l = groups_.at(g)->log;
    if (!l.locs.empty() && l.locs.front().segment != 0 && l.locs.front().segment <= s.sequence) {
      out.push_back({g, s.sequence, l.base_index + 1});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const PinningGroup& a, const PinningGroup& b) { return a.group < b.group; });
  return out;
}

std::vector<uint64_t> Wal::segment_sequences() const {
  std::vector<uint64_t> out;
  for (const auto& s : written_) out.push_back(s->sequence);
  return out;
}

}  // namespace raftd::wal
