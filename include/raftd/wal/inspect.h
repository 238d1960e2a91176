// Offline tools over a WAL directory, behind `raftd wal verify` and `raftd wal inspect`. Both
// run recovery read-only (recovery.h): they change nothing on disk.
#pragma once

#include <string>

#include "raftd/base/status.h"
#include "raftd/wal/file.h"

namespace raftd::wal {

// Verifies every segment and frame. OK: `report` says what was checked (and names a torn tail
// that open would cut). Error: kCorruption "<file> at offset <n>: <what>", or an I/O error.
Status verify_dir(Env& env, const std::string& dir, std::string* report);

struct InspectOptions {
  bool frames = false;  // list every frame, not only segments and groups
};
// Describes segments, frames and groups (entry ranges, hard state, compaction mark).
Status inspect_dir(Env& env, const std::string& dir, const InspectOptions& options,
                   std::string* report);

}  // namespace raftd::wal
