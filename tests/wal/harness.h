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
#include "raftd/wal/sync_writer.h"
#include "raftd/wal/wal.h"

namespace raftd::wal::testing {

inline std::vector<std::byte> bytes_of(const std::string& s) {
  std::vector<std::byte> out(s.size());
  std::memcpy(out.data(), s.data(), s.size());
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

}  // namespace raftd::wal::testing
