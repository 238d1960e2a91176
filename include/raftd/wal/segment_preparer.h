// SegmentPreparer: the compaction thread. Does the slow file work off the reactor: creates the
// next segments (temporary name, fallocate, zero fill, the segment header, fdatasync, rename,
// directory fsync) and deletes compacted ones (unlink, directory fsync). The header is durable
// before the file has its .wal name, and nothing rewrites it afterwards: recovery treats any
// damage to it as corruption (doc/wal-format.md). Results go back to the
// reactor through Executor::post.
//
// Threading: prepare() and remove() are called on the reactor thread; the work runs on the
// preparer's own std::thread (or inline, for deterministic tests); callbacks run on the
// executor. The destructor stops the thread after the job it is running; queued jobs are
// dropped and their callbacks never run.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "raftd/base/status.h"
#include "raftd/wal/file.h"
#include "raftd/wal/sync_writer.h"

namespace raftd::wal {

struct PreparedSegment {
  uint64_t sequence = 0;
  uint64_t salt = 0;
  uint64_t capacity = 0;
  uint64_t write_bytes_max = 0;  // the header's bound on every write after the first
  std::string path;
  std::unique_ptr<File> file;  // open read-write
};

class SegmentPreparer {
 public:
  // Jobs waiting at once; the Wal queues at most a few prepares plus one delete per segment.
  static constexpr size_t kJobsMax = 1024;
  // Zero fill is written in chunks of this size (one static buffer, no per-job allocation).
  static constexpr size_t kZeroChunkBytes = 1 << 20;

  // threaded = false runs each job inside prepare()/remove() (still delivering the result via
  // the executor), for deterministic tests.
  // write_bytes_max goes into every header: the writer's batch limit (doc/wal-format.md).
  SegmentPreparer(Env& env, std::string dir, uint64_t segment_bytes, uint64_t write_bytes_max,
                  Executor& executor, bool threaded);
  ~SegmentPreparer();
  SegmentPreparer(const SegmentPreparer&) = delete;
  SegmentPreparer& operator=(const SegmentPreparer&) = delete;

  void prepare(uint64_t sequence, std::function<void(Result<PreparedSegment>)> done);
  void remove(std::string path, std::function<void(Status)> done);

 private:
  Result<PreparedSegment> do_prepare(uint64_t sequence);
  Status do_remove(const std::string& path);
  void enqueue(std::function<void()> job);
  void deliver(std::function<void()> fn);
  void loop();

  Env& env_;
  std::string dir_;
  uint64_t segment_bytes_;
  uint64_t write_bytes_max_;
  Executor& executor_;
  bool threaded_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;  // guarded by mu_, <= kJobsMax
  bool stopping_ = false;                   // guarded by mu_
  std::thread thread_;
};

}  // namespace raftd::wal
