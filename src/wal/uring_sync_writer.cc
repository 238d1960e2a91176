#include "raftd/wal/uring_sync_writer.h"

namespace raftd::wal {

UringSyncWriter::UringSyncWriter(io::Reactor& reactor) : reactor_(reactor) {
  op_.set_callback([this](int32_t res) {
    submissions_ += op_.submissions();
    SyncCompletion* done = done_;
    done_ = nullptr;
    done->on_synced(res < 0 ? -res : 0);
  });
}

void UringSyncWriter::submit(File& file, std::span<const std::byte> data, uint64_t offset,
                             SyncCompletion* done) {
  RAFTD_ASSERT(file.fd() >= 0, "the io_uring writer needs a kernel file");
  RAFTD_ASSERT(done_ == nullptr && !op_.active(), "one WAL batch in flight at a time");
  done_ = done;
  ++syncs_;
  reactor_.write_fdatasync(op_, file.fd(), data.data(), data.size(), offset);
}

}  // namespace raftd::wal
