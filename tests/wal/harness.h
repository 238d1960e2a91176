// Test harness: a Wal on FaultEnv with a hand-driven executor, the synchronous FileSyncWriter
// and an inline segment preparer, so every run is deterministic.
#pragma once

#include <doctest/doctest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "raftd/wal/fault_env.h"
#include "raftd/wal/recovery.h"
#include "raftd/wal/sync_writer.h"
#include "raftd/wal/wal.h"

namespace raftd::wal::testing {

inline std::vector<std::byte> bytes_of(const std::string& s) {
  std::vector<std::byte> out(s.size());
  if (!s.empty()) std::memcpy(out.data(), s.data(), s.size());
  return out;
}

struct Harness {
  static constexpr const char* kDir = "/wal";
  // Bounds the settle loop: a WAL that keeps producing work is a bug, not a slow test.
  static constexpr int kSettleRoundsMax = 10000;
  static constexpr uint32_t kPrepareRetryMs = 2;

  FaultEnv env;
  ManualExecutor exec;
  FileSyncWriter writer{exec};
  std::unique_ptr<Wal> wal;
  std::vector<Durable> durable;  // every report, in order
  std::optional<FailStopInfo> failed;
  uint64_t segment_bytes = kSegmentBytesMin;
  uint64_t batch_bytes_max = 16 * 1024;
  uint64_t cache_bytes_max = kCacheBytesDefault;

  WalOptions options() {
    WalOptions o;
    o.segment_bytes = segment_bytes;
    o.batch_bytes_max = batch_bytes_max;
    o.cache_bytes_max = cache_bytes_max;
    o.prepare_on_thread = false;
    o.prepare_retry_ms = kPrepareRetryMs;
    o.on_durable = [this](std::span<const Durable> ds) {
      durable.insert(durable.end(), ds.begin(), ds.end());
    };
    o.fail_stop = [this](const FailStopInfo& info) { failed = info; };
    return o;
  }
  Status open() {
    wal.reset();
    failed.reset();
    durable.clear();
    auto w = Wal::open(env, kDir, options(), exec, writer);
    if (!w) return w.status();
    wal = std::move(*w);
    settle();
    return Status::ok();
  }
  // Runs reactor turns until nothing is left to do: callbacks, then the turn-end flush.
  void settle() {
    for (int i = 0; i < kSettleRoundsMax; ++i) {
      size_t ran = exec.run_pending();
      if (wal) wal->flush();
      if (ran == 0 && exec.pending() == 0) return;
    }
    FAIL("the WAL did not settle");
  }
  // Power loss: the process dies (queued callbacks are lost), then the machine.
  void crash(uint64_t keep_unsynced_bytes = 0) {
    exec.clear();
    wal.reset();
    env.crash(keep_unsynced_bytes);
  }
  std::string segment_path(uint64_t seq) const { return join_path(kDir, segment_file_name(seq)); }
};

inline Status append_one(Wal& wal, GroupId g, LogIndex i, Term t, const std::string& data) {
  std::vector<std::byte> b = bytes_of(data);
  EntryView e{t, 0, b};
  return wal.append(g, i, std::span(&e, 1));
}

// What recovery rebuilt for one group, comparable.
struct GroupView {
  HardState hard;
  SnapshotMark mark;
  LogIndex last_index;
  Term last_term;
  bool operator==(const GroupView&) const = default;
};
using LogView = std::map<uint64_t, GroupView>;

inline LogView view_of(const RecoveredLog& log) {
  LogView v;
  for (const auto& [g, l] : log.groups) {
    v[g.value()] = GroupView{l.hard, l.mark, l.last_index(), l.last_term()};
  }
  return v;
}
inline LogView view_of(const Wal& wal) {
  LogView v;
  for (GroupId g : wal.groups()) {
    auto i = wal.group(g);
    v[g.value()] = GroupView{i->hard, i->mark, i->last_index, i->last_term};
  }
  return v;
}

// Every frame of the complete batches, as recovery applies them.
struct FrameAt {
  std::string path;
  uint64_t offset;
  FrameHeader header;
};
class FrameLister final : public FrameObserver {
 public:
  void on_segment(const SegmentSummary&, bool) override {}
  void on_frame(const SegmentSummary& s, uint64_t offset, const FrameHeader& h,
                std::span<const std::byte>) override {
    frames.push_back({s.path, offset, h});
  }
  std::vector<FrameAt> frames;
};
inline std::vector<FrameAt> list_frames(Env& env, const std::string& dir) {
  FrameLister l;
  auto log = recover_log(env, dir, RecoveryMode::kReadOnly, &l);
  REQUIRE_MESSAGE(log.is_ok(), log.status().to_string());
  return l.frames;
}

// Rewrites the frame at `offset` of `path` after `edit` changed its header fields or body, with
// both checksums recomputed: a frame the writer could have written (an intact frame).
template <typename Edit>
void reseal_frame(FaultEnv& env, const std::string& path, uint64_t offset, Edit edit) {
  std::vector<std::byte> raw = env.read_raw(path);
  SegmentHeader sh;
  REQUIRE(decode_segment_header(raw, &sh) == HeaderError::kOk);
  FrameHeader h;
  decode_frame_header(raw.data() + offset, &h);
  std::vector<std::byte> body(raw.begin() + long(offset + kFrameHeaderBytes),
                              raw.begin() + long(offset + kFrameHeaderBytes + h.length));
  h.length = uint32_t(body.size());
  edit(h, body);  // may change the length field too
  std::vector<std::byte> out(kFrameHeaderBytes + body.size());
  h.body_checksum = checksum(body, sh.salt);
  encode_frame_header(h, out.data());
  put_u64(out.data(), frame_header_checksum(out.data(), sh.salt));
  std::memcpy(out.data() + kFrameHeaderBytes, body.data(), body.size());
  env.write_raw(path, offset, out);
}

}  // namespace raftd::wal::testing
