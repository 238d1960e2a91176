// The WAL writer's I/O seam: "write this one contiguous buffer at this offset, then fdatasync,
// and tell me when both are done". Two implementations: UringSyncWriter (uring_sync_writer.h)
// on the reactor's linked write->fdatasync, and FileSyncWriter below, synchronous over a File
// (tests with FaultEnv, tools). Also the Executor seam: where completions and results from
// the compaction thread run (the reactor thread in production).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>

#include "raftd/wal/file.h"

namespace raftd::wal {

// Runs functions on the owner thread (the reactor). post() is thread-safe.
class Executor {
 public:
  virtual ~Executor() = default;
  // Queues fn to run later on the owner thread, never inside post(). Returns false when the
  // queue is full (the caller retries later); fn is dropped then.
  [[nodiscard]] virtual bool post(std::function<void()> fn) = 0;
};

// An Executor driven by hand: tests call run_pending() where the reactor would run a turn.
class ManualExecutor final : public Executor {
 public:
  bool post(std::function<void()> fn) override;
  // Runs everything queued so far (and what those functions queue). Returns the count run.
  size_t run_pending();
  // Drops queued functions without running them (a simulated crash).
  void clear();
  size_t pending() const;

 private:
  mutable std::mutex mu_;
  std::deque<std::function<void()>> queue_;
};

// The completion of one SyncWriter submission; implemented by its issuer (the Wal), so a
// submission allocates nothing.
class SyncCompletion {
 public:
  // error: 0 when every byte was written and the fdatasync after them returned success;
  // otherwise the errno of the first failure (durability unknown: the caller fail-stops).
  virtual void on_synced(int error) = 0;

 protected:
  ~SyncCompletion() = default;
};

class SyncWriter {
 public:
  virtual ~SyncWriter() = default;
  // Writes all of data at offset of file (short writes are resubmitted internally), then
  // fdatasyncs the file. At most one submission at a time. `done` is called later on the
  // executor/reactor thread, never inside submit(). file and data must stay valid until then.
  virtual void submit(File& file, std::span<const std::byte> data, uint64_t offset,
                      SyncCompletion* done) = 0;
  // fdatasyncs issued so far (for tests and benchmarks: exactly one per batch).
  virtual uint64_t syncs() const = 0;
};

// Synchronous SyncWriter over File: does the writes and the sync inside submit(), then posts
// the completion to the executor. Used with FaultEnv in tests.
class FileSyncWriter final : public SyncWriter {
 public:
  explicit FileSyncWriter(Executor& executor) : executor_(executor) {}
  void submit(File& file, std::span<const std::byte> data, uint64_t offset,
              SyncCompletion* done) override;
  uint64_t syncs() const override { return syncs_; }

 private:
  Executor& executor_;
  uint64_t syncs_ = 0;
};

}  // namespace raftd::wal
