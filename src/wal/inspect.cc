#include "raftd/wal/inspect.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "raftd/wal/recovery.h"

namespace raftd::wal {

namespace {

std::string describe_segment(const SegmentSummary& s, bool spare) {
  if (spare) {
    return fmt::format("segment {} seq {} prepared (unused) capacity {} write_bytes_max {}\n",
                       s.path, s.sequence, s.header.capacity, s.header.write_bytes_max);
  }
  return fmt::format(
      "segment {} seq {} salt {:016x} frames {}..{} batches {}..{} used {} of {} bytes "
      "write_bytes_max {}\n",
      s.path, s.sequence, s.header.salt, s.first_frame, s.last_frame, s.first_batch, s.last_batch,
      s.end_offset, s.header.capacity, s.header.write_bytes_max);
}

// Read-only: says what the next open will do, never that something was cut.
std::string describe_torn(const TornTail& t) {
  return fmt::format(
      "torn tail: {} at offset {}: the last batch ({}) is incomplete ({}; at offset {}); "
      "nothing of a later batch follows, so it can only be the write in flight at a crash, "
      "never acknowledged; the next open cuts it ({} bytes)\n",
      t.path, t.offset, t.batch, t.what, t.damage_offset, t.bytes);
}

class Printer final : public FrameObserver {
 public:
  Printer(bool frames, std::string* out) : frames_(frames), out_(out) {}
  void on_segment(const SegmentSummary& s, bool spare) override {
    segments_ += describe_segment(s, spare);
  }
  void on_frame(const SegmentSummary& s, uint64_t offset, const FrameHeader& h,
                std::span<const std::byte>) override {
    if (!frames_) return;
    *out_ += fmt::format("  {} frame {} @{} batch {}.{} {} items {} length {}{}\n", s.path,
                         h.frame_number, offset, h.batch, h.batch_index, frame_type_name(h.type),
                         h.item_count, h.length, h.batch_end() ? " batch-end" : "");
  }
  std::string segments_;

 private:
  bool frames_;
  std::string* out_;
};

std::string describe_groups(const RecoveredLog& log) {
  std::map<GroupId, const GroupLog*> sorted;
  for (const auto& [g, l] : log.groups) sorted[g] = &l;
  std::string out = fmt::format("groups: {}\n", sorted.size());
  for (const auto& [g, l] : sorted) {
    std::string entries =
        l->locs.empty()
            ? std::string("no entries")
            : fmt::format("entries {}..{} (terms {}..{}) in segments {}..{}",
                          raw(l->base_index + 1), raw(l->last_index()), raw(l->locs.front().term),
                          raw(l->last_term()), l->locs.front().segment, l->locs.back().segment);
    out += fmt::format("  group {}: term {} vote {} commit {} mark {}@{} {}\n", raw(g),
                       raw(l->hard.term), raw(l->hard.vote), raw(l->hard.commit),
                       raw(l->mark.index), raw(l->mark.term), entries);
  }
  return out;
}

// Which groups' live entries are in each segment: segments are deleted oldest first, once no
// group has a live entry in the oldest (a group compacts past them, or copies them forward).
std::string describe_pins(const RecoveredLog& log) {
  std::map<uint64_t, std::map<GroupId, uint64_t>> live;  // segment -> group -> live entries
  for (const auto& [g, l] : log.groups) {
    for (const EntryLoc& loc : l.locs) ++live[loc.segment][g];
  }
  std::string out;
  for (size_t i = 0; i < log.written.size(); ++i) {
    const SegmentSummary& s = log.written[i];
    auto it = live.find(s.sequence);
    std::string who;
    if (it == live.end()) {
      who = "no live entries";
    } else {
      for (const auto& [g, n] : it->second) {
        who += fmt::format("{}group {} ({} entries)", who.empty() ? "" : ", ", raw(g), n);
      }
    }
    out += fmt::format("  segment seq {}{}: {}\n", s.sequence, i == 0 ? " (oldest)" : "", who);
  }
  return "kept by (live entries per segment; the oldest goes once it has none):\n" + out;
}

}  // namespace

Status verify_dir(Env& env, const std::string& dir, std::string* report) {
  auto log = recover_log(env, dir, RecoveryMode::kReadOnly);
  if (!log) return log.status();
  *report = fmt::format("ok: {} segments ({} prepared), {} frames, {} groups, {} bytes checked\n",
                        log->written.size() + log->spares.size(), log->spares.size(), log->frames,
                        log->groups.size(), log->bytes_scanned);
  if (log->torn) *report += "warning: " + describe_torn(*log->torn);
  return Status::ok();
}

Status inspect_dir(Env& env, const std::string& dir, const InspectOptions& options,
                   std::string* report) {
  std::string frames;
  Printer printer(options.frames, &frames);
  auto log = recover_log(env, dir, RecoveryMode::kReadOnly, &printer);
  if (!log) return log.status();
  *report = printer.segments_;
  if (options.frames) *report += frames;
  *report += fmt::format("next frame {} next batch {}\n", log->next_frame, log->next_batch);
  *report += describe_groups(*log);
  *report += describe_pins(*log);
  if (log->torn) *report += describe_torn(*log->torn);
  return Status::ok();
}

}  // namespace raftd::wal
