// SyncWriter and Executor on the io_uring reactor: each submission is the reactor's linked
// write->fdatasync (io::WriteSyncOp, which resubmits short writes), and Executor::post is
// Reactor::post. Reactor thread only (except post()).
#pragma once

#include "raftd/io/op.h"
#include "raftd/io/reactor.h"
#include "raftd/wal/sync_writer.h"

namespace raftd::wal {

class ReactorExecutor final : public Executor {
 public:
  explicit ReactorExecutor(io::Reactor& reactor) : reactor_(reactor) {}
  bool post(std::function<void()> fn) override { return reactor_.post(std::move(fn)); }

 private:
  io::Reactor& reactor_;
};

class UringSyncWriter final : public SyncWriter {
 public:
  explicit UringSyncWriter(io::Reactor& reactor);
  // The op must not be in flight (the Wal is idle or stopped) when this is destroyed.
  ~UringSyncWriter() override = default;
  // Precondition: file.fd() >= 0 (a PosixEnv file).
  void submit(File& file, std::span<const std::byte> data, uint64_t offset,
              SyncCompletion* done) override;
  uint64_t syncs() const override { return syncs_; }
  // write->fdatasync submissions including resubmissions after short writes.
  uint64_t submissions() const { return submissions_; }

 private:
  io::Reactor& reactor_;
  io::WriteSyncOp op_;
  SyncCompletion* done_ = nullptr;
  uint64_t syncs_ = 0;
  uint64_t submissions_ = 0;
};

}  // namespace raftd::wal
