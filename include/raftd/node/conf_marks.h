// ConfMarks: the file data_dir/conf-marks, the membership of each group at its compaction points.
//
// The WAL's compaction mark holds an index and a term only; a replica restarting from a compacted
// log also needs the group's configuration as of that index (raft.h BootState:
// snapshot.conf_state). Configurations change rarely, so the node writes a record only when the
// configuration at a new compaction point differs from what the file already says for that index:
//   - record() is called BEFORE the WAL mark is staged, and returns once the record is durable, so
//     a durable mark always finds its configuration here (or, with no record at or below it, the
//     group's initial members apply, which every replica boots from).
//   - Every record is a fact about the group's committed log ("as of index i the configuration is
//     C"): compaction points and installed snapshots are committed state. A record written for a
//     mark that never became durable (a crash in between) is therefore still true, and harmless.
//   - The file is rewritten whole (replace_file: temporary file, fsync, rename, directory fsync).
//     doc/node.md "Configuration marks" has the layout:
//       raftd-conf-marks 1
//       mark <group> <index> <term> <voters> <learners> <voters_outgoing> <learners_next>
//       <auto_leave> checksum <16 hex digits: XXH3-64 of every byte before this line>
//     where each list is "-" (empty) or node ids joined by ",", and auto_leave is 0 or 1.
// Threading: one thread (the reactor's).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "raftd/base/ids.h"
#include "raftd/base/status.h"
#include "raftd/raft/types.h"

namespace raftd::node {

// The file holds a few records per group that ever changed membership; this bounds what load()
// accepts (64 MiB: over 100,000 records).
inline constexpr uint64_t kConfMarksBytesMax = 64ull << 20;

struct ConfMark {
  LogIndex index;
  Term term;
  raft::ConfState conf;
  bool operator==(const ConfMark&) const = default;
};

std::string encode_conf_marks(const std::map<GroupId, std::vector<ConfMark>>& marks);
// kCorruption naming the line and `path`.
Result<std::map<GroupId, std::vector<ConfMark>>> decode_conf_marks(const std::string& text,
                                                                   const std::string& path);

class ConfMarks {
 public:
  // Loads `path` (a missing file is an empty one). kCorruption for a damaged file: the node
  // refuses to start rather than guess a group's membership.
  static Result<std::unique_ptr<ConfMarks>> open(const std::string& path);

  // The configuration of g as of index: the newest record at or below it, or nullopt (no record:
  // the group's initial configuration).
  std::optional<raft::ConfState> at(GroupId g, LogIndex index) const;

  // Makes meta.conf_state durable as g's configuration as of meta.index, unless at(g, meta.index)
  // (or `initial` when there is none) already equals it: then nothing is written.
  Status record(GroupId g, const raft::SnapshotMeta& meta, const raft::ConfState& initial);

  // Keeps, for each group in `marks` (its durable compaction index), the newest record at or below
  // it and every record above it; drops every other record and every group not in `marks`.
  // Rewrites the file when that changed anything.
  Status prune(const std::map<GroupId, LogIndex>& marks);

  const std::map<GroupId, std::vector<ConfMark>>& records() const { return marks_; }
  uint64_t writes() const { return writes_; }

 private:
  explicit ConfMarks(std::string path) : path_(std::move(path)) {}
  Status write();

  std::string path_;
  std::map<GroupId, std::vector<ConfMark>> marks_;  // per group, by increasing index
  uint64_t writes_ = 0;
};

}  // namespace raftd::node
