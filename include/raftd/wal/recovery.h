// Recovery: reads a WAL directory, verifies every segment and frame (doc/wal-format.md,
// "Recovery rules") and rebuilds every group's state. Used by Wal::open (repair mode: syncs
// first, cuts a torn tail, deletes unfinished .prep files) and by `raftd wal verify|inspect`
// (read-only mode: changes nothing).
//
// Errors: kCorruption with "<file> at offset <n>: <what is wrong>" for damage that recovery must
// not repair; kIoError etc. for failing I/O. A torn tail is not an error: it is reported in
// RecoveredLog::torn (and cut in repair mode, with a warning logged).
// Threading: a pure function of the directory; call it before the writer starts.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "raftd/base/status.h"
#include "raftd/wal/file.h"
#include "raftd/wal/format.h"
#include "raftd/wal/group_log.h"

namespace raftd::wal {

// "0000000000000001.wal" / ".prep" for a sequence number.
std::string segment_file_name(uint64_t sequence);
std::string prep_file_name(uint64_t sequence);

struct SegmentSummary {
  uint64_t sequence = 0;
  std::string path;
  SegmentHeader header;
  uint64_t end_offset = kSegmentHeaderBytes;  // end of the last valid frame
  // End of the last valid BATCH_END frame (kSegmentHeaderBytes: none). Less than end_offset
  // when the last batch was torn after some of its frames: the writer must not continue that
  // segment then, or its next write would start outside the torn-tail window (doc/wal-format.md,
  // recovery rule 2).
  uint64_t batch_end_offset = kSegmentHeaderBytes;
  uint64_t frames = 0;
  uint64_t last_frame = 0;     // frame number of the last frame (0: none)
  uint64_t last_checksum = 0;  // header checksum of the last frame (chain into the next)
};

struct TornTail {
  std::string path;
  uint64_t offset = 0;  // where valid data ends; bytes from here on were cut
  uint64_t bytes = 0;   // length of the non-zero region that was cut
  std::string what;
};

struct RecoveredLog {
  std::vector<SegmentSummary> written;  // segments holding frames, in sequence order
  std::vector<SegmentSummary> spares;   // prepared, never written, after the written ones
  std::unordered_map<GroupId, GroupLog> groups;
  uint64_t next_frame = 1;     // frame number of the next frame to write
  uint64_t last_checksum = 0;  // header checksum of the last valid frame
  std::optional<TornTail> torn;
  uint64_t bytes_scanned = 0;  // bytes read from segment files
  uint64_t frames = 0;
};

// Sees every valid frame as recovery applies it (for `raftd wal inspect`).
class FrameObserver {
 public:
  virtual ~FrameObserver() = default;
  virtual void on_segment(const SegmentSummary& s, bool spare) = 0;
  virtual void on_frame(const SegmentSummary& s, uint64_t offset, const FrameHeader& h,
                        std::span<const std::byte> body) = 0;
};

enum class RecoveryMode {
  kReadOnly,  // verify/inspect: no writes, no syncs
  kRepair,    // open: sync files and directory first, cut a torn tail, remove .prep files
};

Result<RecoveredLog> recover_log(Env& env, const std::string& dir, RecoveryMode mode,
                                 FrameObserver* observer = nullptr);

}  // namespace raftd::wal
