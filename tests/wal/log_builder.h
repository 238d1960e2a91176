// LogBuilder: an independent writer of WAL format version 2, written from doc/wal-format.md
// alone (its own byte packing and XXH3 calls; nothing from format.h's encoders), so the tests
// that recover what it writes check the document as much as the code. It also writes what the
// real writer never would (rule violations, damaged bytes) for the recovery rule tests and the
// fuzz target.
#pragma once

#include <xxhash.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "raftd/base/assert.h"
#include "raftd/wal/fault_env.h"

namespace raftd::wal::testing {

class LogBuilder {
 public:
  // Values from doc/wal-format.md.
  static constexpr uint64_t kHeaderBytes = 4096;
  static constexpr uint64_t kFrameHeader = 56;
  static constexpr uint64_t kHeaderSeed = 0x52414654445741ULL;
  static constexpr uint16_t kEntries = 1, kHardState = 2, kTruncate = 3, kSnapshotMark = 4,
                            kCheckpoint = 5;

  // One frame to write: the builder fills in checksums, numbers and the BATCH_END flag unless
  // told otherwise.
  struct Frame {
    uint16_t type = 0;
    uint32_t items = 0;
    std::vector<std::byte> body;
    uint16_t extra_flags = 0;  // OR-ed into flags (to write unknown flag bits)
    // Overrides (tests of the chain rules); UINT64_MAX: computed.
    uint64_t frame_number = UINT64_MAX;
    uint64_t prev_checksum = UINT64_MAX;
    uint64_t batch = UINT64_MAX;
    uint64_t batch_index = UINT64_MAX;
    bool no_batch_end = false;  // leave BATCH_END off the last frame of the batch
  };

  struct Placed {
    uint64_t sequence;
    uint64_t offset;
    uint64_t bytes;
  };

  LogBuilder(FaultEnv& env, std::string dir, uint64_t capacity = 64 * 1024,
             uint64_t write_bytes_max = 16 * 1024)
      : env_(env), dir_(std::move(dir)), capacity_(capacity), write_bytes_max_(write_bytes_max) {}

  // Starts the next segment file: a header (immutable), then zeros.
  void segment() {
    flush_segment();
    ++sequence_;
    salt_ = 0x9e3779b97f4a7c15ULL * sequence_ + 12345;
    file_.assign(capacity_, std::byte{0});
    std::memcpy(file_.data(), "RAFTDWAL", 8);
    put32(8, 2);
    put32(12, uint32_t(kHeaderBytes));
    put64(16, sequence_);
    put64(24, salt_);
    put64(32, capacity_);
    put64(40, write_bytes_max_);
    put64(48, XXH3_64bits_withSeed(file_.data(), 48, kHeaderSeed));
    off_ = kHeaderBytes;
  }
  // Writes one batch at the end of the current segment; the last frame gets BATCH_END.
  // The batch number is the first frame's override if it has one (the rest follow it).
  Placed batch(const std::vector<Frame>& frames) {
    Placed placed{sequence_, off_, 0};
    if (!frames.empty() && frames.front().batch != UINT64_MAX) next_batch_ = frames.front().batch;
    for (size_t i = 0; i < frames.size(); ++i) {
      const Frame& f = frames[i];
      RAFTD_ASSERT(off_ + kFrameHeader + f.body.size() <= file_.size(), "LogBuilder: frame fits");
      std::byte* h = file_.data() + off_;
      uint16_t flags =
          uint16_t((i + 1 == frames.size() && !f.no_batch_end ? 1 : 0) | f.extra_flags);
      uint64_t number = f.frame_number != UINT64_MAX ? f.frame_number : next_frame_;
      put64(off_ + 8, XXH3_64bits_withSeed(f.body.data(), f.body.size(), salt_));
      put64(off_ + 16, f.prev_checksum != UINT64_MAX ? f.prev_checksum : prev_);
      put64(off_ + 24, number);
      put64(off_ + 32, f.batch != UINT64_MAX ? f.batch : next_batch_);
      put32(off_ + 40, uint32_t(f.batch_index != UINT64_MAX ? f.batch_index : i));
      put32(off_ + 44, uint32_t(f.body.size()));
      put16(off_ + 48, f.type);
      put16(off_ + 50, flags);
      put32(off_ + 52, f.items);
      uint64_t sum = XXH3_64bits_withSeed(h + 8, kFrameHeader - 8, salt_);
      put64(off_, sum);
      if (!f.body.empty()) std::memcpy(h + kFrameHeader, f.body.data(), f.body.size());
      offsets_.push_back({sequence_, off_, kFrameHeader + f.body.size()});
      off_ += kFrameHeader + f.body.size();
      prev_ = sum;
      next_frame_ = number + 1;
    }
    ++next_batch_;
    placed.bytes = off_ - placed.offset;
    return placed;
  }
  // Writes every segment into the directory (durably: synced, directory synced).
  void finish() {
    flush_segment();
    RAFTD_ASSERT(env_.sync_dir(dir_).is_ok(), "LogBuilder: sync_dir");
  }

  // ---- bodies (doc/wal-format.md, "Frame types and bodies") ----
  struct EntrySpec {
    uint64_t term;
    std::string data;
    uint16_t type = 0;
  };
  static void entries_block(std::vector<std::byte>& b, uint64_t g, uint64_t first,
                            const std::vector<EntrySpec>& es) {
    u64(b, g);
    u64(b, first);
    u32(b, uint32_t(es.size()));
    u32(b, 0);
    for (const EntrySpec& e : es) {
      u64(b, e.term);
      u32(b, uint32_t(e.data.size()));
      u16(b, e.type);
      u16(b, 0);
      for (char c : e.data) b.push_back(std::byte(c));
      while (b.size() % 8 != 0) b.push_back(std::byte{0});
    }
  }
  static Frame entries(uint64_t g, uint64_t first, const std::vector<EntrySpec>& es) {
    Frame f{kEntries, 1, {}};
    entries_block(f.body, g, first, es);
    return f;
  }
  static Frame hard_state(uint64_t g, uint64_t term, uint64_t vote, uint64_t commit) {
    Frame f{kHardState, 1, {}};
    u64(f.body, g);
    u64(f.body, term);
    u64(f.body, vote);
    u64(f.body, commit);
    return f;
  }
  static Frame truncate(uint64_t g, uint64_t from) {
    Frame f{kTruncate, 1, {}};
    u64(f.body, g);
    u64(f.body, from);
    return f;
  }
  static Frame snapshot_mark(uint64_t g, uint64_t index, uint64_t term) {
    Frame f{kSnapshotMark, 1, {}};
    u64(f.body, g);
    u64(f.body, index);
    u64(f.body, term);
    return f;
  }
  struct CheckpointSpec {
    uint64_t group, term, vote, commit, mark_index, mark_term, last_index, last_term;
  };
  static Frame checkpoint(const std::vector<CheckpointSpec>& cs) {
    Frame f{kCheckpoint, uint32_t(cs.size()), {}};
    for (const CheckpointSpec& c : cs) {
      for (uint64_t v : {c.group, c.term, c.vote, c.commit, c.mark_index, c.mark_term, c.last_index,
                         c.last_term}) {
        u64(f.body, v);
      }
    }
    return f;
  }

  const std::vector<Placed>& frames() const { return offsets_; }
  uint64_t salt() const { return salt_; }
  uint64_t offset() const { return off_; }
  uint64_t next_batch() const { return next_batch_; }
  std::string path(uint64_t seq) const {
    char name[32];
    std::snprintf(name, sizeof name, "%016llx.wal", static_cast<unsigned long long>(seq));
    return dir_ + "/" + name;
  }
  // Raw access to the segment being built (before finish()).
  std::vector<std::byte>& bytes() { return file_; }

 private:
  static void u16(std::vector<std::byte>& b, uint16_t v) {
    for (int i = 0; i < 2; ++i) b.push_back(std::byte(v >> (8 * i)));
  }
  static void u32(std::vector<std::byte>& b, uint32_t v) {
    for (int i = 0; i < 4; ++i) b.push_back(std::byte(v >> (8 * i)));
  }
  static void u64(std::vector<std::byte>& b, uint64_t v) {
    for (int i = 0; i < 8; ++i) b.push_back(std::byte(v >> (8 * i)));
  }
  void put16(uint64_t at, uint16_t v) {
    for (int i = 0; i < 2; ++i) file_[at + i] = std::byte(v >> (8 * i));
  }
  void put32(uint64_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) file_[at + i] = std::byte(v >> (8 * i));
  }
  void put64(uint64_t at, uint64_t v) {
    for (int i = 0; i < 8; ++i) file_[at + i] = std::byte(v >> (8 * i));
  }
  void flush_segment() {
    if (sequence_ == 0 || file_.empty()) return;
    RAFTD_ASSERT(env_.create_dir(dir_).is_ok(), "LogBuilder: create_dir");
    std::string p = path(sequence_);
    if (env_.exists(p)) RAFTD_ASSERT(env_.remove(p).is_ok(), "LogBuilder: remove");
    auto f = env_.open(p, OpenMode::kCreate);
    RAFTD_ASSERT(f.is_ok(), "LogBuilder: create");
    RAFTD_ASSERT(write_all(**f, file_, 0).is_ok(), "LogBuilder: write");
    RAFTD_ASSERT((*f)->sync_data().is_ok(), "LogBuilder: sync");
    file_.clear();
  }

  FaultEnv& env_;
  std::string dir_;
  uint64_t capacity_;
  uint64_t write_bytes_max_;
  uint64_t sequence_ = 0;
  uint64_t salt_ = 0;
  std::vector<std::byte> file_;
  uint64_t off_ = kHeaderBytes;
  uint64_t next_frame_ = 1;
  uint64_t prev_ = 0;
  uint64_t next_batch_ = 1;
  std::vector<Placed> offsets_;
};

}  // namespace raftd::wal::testing
