#include "raftd/wal/sync_writer.h"

#include <cerrno>

#include "raftd/base/assert.h"

namespace raftd::wal {

bool ManualExecutor::post(std::function<void()> fn) {
  std::lock_guard lock(mu_);
  queue_.push_back(std::move(fn));
  return true;
}

size_t ManualExecutor::run_pending() {
  size_t n = 0;
  for (;;) {
    std::function<void()> fn;
    {
      std::lock_guard lock(mu_);
      if (queue_.empty()) return n;
      fn = std::move(queue_.front());
      queue_.pop_front();
    }
    fn();
    ++n;
  }
}

void ManualExecutor::clear() {
  std::lock_guard lock(mu_);
  queue_.clear();
}

size_t ManualExecutor::pending() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

namespace {
// errno carried by a Status from File (from_errno keeps only the code); map back coarsely.
int errno_of(const Status& s) {
  switch (s.code()) {
    case Code::kNoSpace: return ENOSPC;
    case Code::kCancelled: return ECANCELED;
    default: return EIO;
  }
}
}  // namespace

void FileSyncWriter::submit(File& file, std::span<const std::byte> data, uint64_t offset,
                            SyncCompletion* done) {
  int err = 0;
  if (Status s = write_all(file, data, offset); !s) {
    err = errno_of(s);
  } else {
    ++syncs_;
    if (Status s2 = file.sync_data(); !s2) err = errno_of(s2);
  }
  bool posted = executor_.post([done, err] { done->on_synced(err); });
  RAFTD_ASSERT(posted, "the WAL's executor refused a completion");
}

}  // namespace raftd::wal
