// Recovery: reads a WAL directory, verifies every segment and frame (doc/wal-format.md,
// "Recovery rules") and rebuilds every group's state. Used by Wal::open (repair mode: syncs
// first, cuts a torn tail, deletes unfinished .prep files) and by `raftd wal verify|inspect`
// (read-only mode: changes nothing).
//
// Batches are atomic: only complete batches (their BATCH_END frame intact) are applied. At most
// the last batch of the log can be torn (one write in flight at a time), and only when nothing
// of a later batch follows the damage; that batch is cut. Damage anywhere else is corruption.
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
  // End of the last complete batch: where the log ends in this segment and where the writer's
  // next write into it starts. kSegmentHeaderBytes for a spare.
  uint64_t end_offset = kSegmentHeaderBytes;
  uint64_t frames = 0;
  uint64_t first_frame = 0;    // frame number of the first frame (0: none)
  uint64_t last_frame = 0;     // frame number of the last frame (0: none)
  uint64_t last_checksum = 0;  // header checksum of the last frame (chain into the next)
  uint64_t first_batch = 0;    // batch numbers of the first and last batch (0: none)
  uint64_t last_batch = 0;
};

struct TornTail {
  std::string path;
  uint64_t offset = 0;         // start of the incomplete last batch: bytes from here on were cut
  uint64_t bytes = 0;          // length of the non-zero region that was cut
  uint64_t damage_offset = 0;  // where the damage was found (>= offset)
  uint64_t batch = 0;          // number of the batch that was cut
  std::string what;
};

struct RecoveredLog {
  std::vector<SegmentSummary> written;  // segments holding frames, in sequence order
  std::vector<SegmentSummary> spares;   // prepared, never written, after the written ones
  std::unordered_map<GroupId, GroupLog> groups;
  uint64_t next_frame = 1;     // frame number of the next frame to write
  uint64_t last_checksum = 0;  // header checksum of the last valid frame
  uint64_t next_batch = 1;     // batch number of the next batch to write
  std::optional<TornTail> torn;
  uint64_t bytes_scanned = 0;  // bytes read from segment files
  uint64_t frames = 0;
};

// Sees every frame of every complete batch as recovery applies it (for `raftd wal inspect`).
class FrameObserver {
 public:
  virtual ~FrameObserver() = default;
  virtual void on_segment(const SegmentSummary& s, bool spare) = 0;
  virtual void on_frame(const SegmentSummary& s, uint64_t offset, const FrameHeader& h,
                        std::span<const std::byte> body) = 0;
};

enum class RecoveryMode {
  kReadOnly,  // verify/inspect: no writes, no syncs, no warnings logged
  kRepair,    // open: sync files and directory first, cut a torn tail, remove .prep files
};

Result<RecoveredLog> recover_log(Env& env, const std::string& dir, RecoveryMode mode,
                                 FrameObserver* observer = nullptr);

}  // namespace raftd::wal
