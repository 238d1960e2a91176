// The SQE shapes and CQE handling of each operation. The reactor (reactor.cc) owns queueing,
// submission and the turn; each op here decides, per CQE, whether it is finished, must be
// re-armed (multishot ended for a transient reason) or resubmitted (short send/write).
#include "raftd/io/op.h"

#include <liburing.h>

#include <algorithm>
#include <cerrno>

#include "raftd/io/reactor.h"

namespace raftd::io {

namespace {

// Linux transfers at most this many bytes per read/write call (MAX_RW_COUNT); larger requests
// are simply short, so ask for no more and let the remainder logic continue.
constexpr size_t kRwChunkBytesMax = 0x7ffff000;

// Results after which a multishot op is re-armed rather than ended.
bool is_transient_accept_error(int32_t res) {
  return res == -ECONNABORTED || res == -EAGAIN || res == -EINTR;
}
bool is_retry(int32_t res) { return res == -EAGAIN || res == -EINTR; }

}  // namespace

Op::~Op() {
  RAFTD_ASSERT(!active(),
               "io::Op destroyed while active: cancel it and wait for its final callback");
}

// ---------------------------------------------------------------- AcceptOp

void AcceptOp::prep(io_uring_sqe** sqes) {
  // addr/addrlen would be shared by every CQE of the multishot request, so ask for none.
  io_uring_prep_multishot_accept(sqes[0], fd_, nullptr, nullptr, SOCK_CLOEXEC);
}

void AcceptOp::on_cqe(int32_t res, uint32_t cqe_flags, unsigned /*link*/) {
  const bool more = (cqe_flags & IORING_CQE_F_MORE) != 0;
  if (res >= 0) {
    if (!more) reactor_->rearm(*this);
    if (cb_) cb_(res);
    return;
  }
  if (is_transient_accept_error(res)) {
    if (!more) reactor_->rearm(*this);
    return;
  }
  if (more) {  // an error the kernel reports without ending the request
    if (cb_) cb_(res);
    return;
  }
  reactor_->finish(*this);
  if (cb_) cb_(res);
}

void AcceptOp::on_abort(int32_t res) {
  if (cb_) cb_(res);
}

// ---------------------------------------------------------------- RecvOp

void RecvOp::prep(io_uring_sqe** sqes) {
  // Multishot recv must have length 0 and buffer selection; MSG_WAITALL is not allowed.
  io_uring_prep_recv_multishot(sqes[0], fd_, nullptr, 0, 0);
  sqes[0]->flags |= IOSQE_BUFFER_SELECT;
  sqes[0]->buf_group = Reactor::kRecvBufferGroup;
}

void RecvOp::on_cqe(int32_t res, uint32_t cqe_flags, unsigned /*link*/) {
  const bool more = (cqe_flags & IORING_CQE_F_MORE) != 0;
  if (res > 0) {
    RAFTD_ASSERT((cqe_flags & IORING_CQE_F_BUFFER) != 0, "recv data CQE without a buffer");
    const auto bid = static_cast<uint16_t>(cqe_flags >> IORING_CQE_BUFFER_SHIFT);
    Reactor* reactor = reactor_;  // the callback may restart this op; keep the reactor at hand
    // Re-arm before the callback (a CQ overflow ends multishot with a data CQE), so a cancel
    // from inside the callback sees the op in flight and the contract "active() == false
    // means final" holds for data callbacks.
    if (!more) reactor->rearm(*this);
    reactor->lend_recv_buffer();
    if (cb_) cb_(res, reactor->recv_buffer(bid, static_cast<size_t>(res)));
    reactor->return_recv_buffer(bid);
    return;
  }
  if (res == -ENOBUFS) {
    // Every buffer is lent out; they all come back by the end of this turn's callbacks, so the
    // re-armed recv (submitted at the start of the next turn) finds them again.
    reactor_->count_enobufs();
    if (!more) reactor_->rearm(*this);
    return;
  }
  if (is_retry(res)) {
    if (!more) reactor_->rearm(*this);
    return;
  }
  reactor_->finish(*this);
  if (cb_) cb_(res, {});
}

void RecvOp::on_abort(int32_t res) {
  if (cb_) cb_(res, {});
}

// ---------------------------------------------------------------- ConnectOp

void ConnectOp::prep(io_uring_sqe** sqes) {
  io_uring_prep_connect(sqes[0], fd_, reinterpret_cast<const sockaddr*>(&addr_), addr_len_);
}

void ConnectOp::on_cqe(int32_t res, uint32_t /*cqe_flags*/, unsigned /*link*/) {
  reactor_->finish(*this);
  if (cb_) cb_(res);
}

void ConnectOp::on_abort(int32_t res) {
  if (cb_) cb_(res);
}

// ---------------------------------------------------------------- SendOp

void SendOp::prep(io_uring_sqe** sqes) {
  const size_t left = iov_count_ - iov_first_;
  if (left == 1) {
    const iovec& v = iov_[iov_first_];
    const size_t n = std::min(v.iov_len, kRwChunkBytesMax);
    io_uring_prep_send(sqes[0], fd_, v.iov_base, n, MSG_NOSIGNAL);
    return;
  }
  msg_ = {};
  msg_.msg_iov = &iov_[iov_first_];
  msg_.msg_iovlen = left;
  io_uring_prep_sendmsg(sqes[0], fd_, &msg_, MSG_NOSIGNAL);
}

void SendOp::on_cqe(int32_t res, uint32_t /*cqe_flags*/, unsigned /*link*/) {
  if (is_retry(res)) {
    reactor_->resubmit(*this);
    return;
  }
  if (res <= 0) {
    reactor_->finish(*this);
    if (cb_) cb_(res == 0 ? -EIO : res);  // 0 bytes for a non-empty send: no progress possible
    return;
  }
  done_ += static_cast<size_t>(res);
  size_t n = static_cast<size_t>(res);
  while (n > 0 && iov_first_ < iov_count_) {  // advance past what went out
    iovec& v = iov_[iov_first_];
    const size_t take = std::min(n, v.iov_len);
    v.iov_base = static_cast<char*>(v.iov_base) + take;
    v.iov_len -= take;
    n -= take;
    if (v.iov_len == 0) ++iov_first_;
  }
  // Never leave an empty piece first: a send of zero bytes would look like "no progress".
  while (iov_first_ < iov_count_ && iov_[iov_first_].iov_len == 0) ++iov_first_;
  if (done_ < total_) {
    reactor_->resubmit(*this);
    return;
  }
  reactor_->finish(*this);
  if (cb_) cb_(static_cast<int32_t>(std::min<size_t>(done_, INT32_MAX)));
}

void SendOp::on_abort(int32_t res) {
  if (cb_) cb_(res);
}

// ---------------------------------------------------------------- TimerOp

static_assert(sizeof(__kernel_timespec) == 16 && alignof(__kernel_timespec) == 8,
              "TimerOp::KernelTimespec must match __kernel_timespec");

void TimerOp::prep(io_uring_sqe** sqes) {
  io_uring_prep_timeout(sqes[0], reinterpret_cast<__kernel_timespec*>(&ts_), 0, IORING_TIMEOUT_ABS);
}

void TimerOp::on_cqe(int32_t res, uint32_t /*cqe_flags*/, unsigned /*link*/) {
  reactor_->finish(*this);
  if (cb_) cb_(res == -ETIME ? 0 : res);
}

void TimerOp::on_abort(int32_t res) {
  if (cb_) cb_(res);
}

// ---------------------------------------------------------------- WriteOp

void WriteOp::prep(io_uring_sqe** sqes) {
  const size_t n = std::min(len_ - done_, kRwChunkBytesMax);
  io_uring_prep_write(sqes[0], fd_, data_ + done_, static_cast<unsigned>(n), offset_ + done_);
}

void WriteOp::on_cqe(int32_t res, uint32_t /*cqe_flags*/, unsigned /*link*/) {
  if (res == -EINTR) {
    reactor_->resubmit(*this);
    return;
  }
  if (res <= 0) {
    reactor_->finish(*this);
    if (cb_) cb_(res == 0 ? -EIO : res);
    return;
  }
  done_ += static_cast<size_t>(res);
  if (done_ < len_) {
    reactor_->resubmit(*this);
    return;
  }
  reactor_->finish(*this);
  if (cb_) cb_(static_cast<int32_t>(std::min<size_t>(done_, INT32_MAX)));
}

void WriteOp::on_abort(int32_t res) {
  if (cb_) cb_(res);
}

// ---------------------------------------------------------------- SyncOp

void SyncOp::prep(io_uring_sqe** sqes) { io_uring_prep_fsync(sqes[0], fd_, IORING_FSYNC_DATASYNC); }

void SyncOp::on_cqe(int32_t res, uint32_t /*cqe_flags*/, unsigned /*link*/) {
  reactor_->finish(*this);
  if (cb_) cb_(res);
}

void SyncOp::on_abort(int32_t res) {
  if (cb_) cb_(res);
}

// ---------------------------------------------------------------- WriteSyncOp

void WriteSyncOp::prep(io_uring_sqe** sqes) {
  // No IOSQE_CQE_SKIP_SUCCESS on the write: with it, a short or failed write is the chain's
  // only CQE and the fdatasync's is omitted. Without it both CQEs always arrive, which keeps
  // the bookkeeping uniform: wait for two, then decide.
  const size_t n = std::min(len_ - done_, kRwChunkBytesMax);
  io_uring_prep_write(sqes[0], fd_, data_ + done_, static_cast<unsigned>(n), offset_ + done_);
  sqes[0]->flags |= IOSQE_IO_LINK;
  io_uring_prep_fsync(sqes[1], fd_, IORING_FSYNC_DATASYNC);
  ++submissions_;
  write_seen_ = false;
  sync_seen_ = false;
}

void WriteSyncOp::on_cqe(int32_t res, uint32_t /*cqe_flags*/, unsigned link) {
  if (link == 0) {
    write_res_ = res;
    write_seen_ = true;
  } else {
    sync_res_ = res;
    sync_seen_ = true;
  }
  if (write_seen_ && sync_seen_) on_chain_done();
}

void WriteSyncOp::on_chain_done() {
  int32_t error = 0;
  if (write_res_ < 0) {
    error = write_res_;
  } else if (write_res_ == 0) {
    error = -EIO;  // no progress: retrying would loop forever
  } else {
    done_ += static_cast<size_t>(write_res_);
    if (done_ < len_) {
      // Short write: the kernel cancelled the linked fdatasync (-ECANCELED). Write the rest
      // and sync again; success is reported only after a sync that follows the last byte.
      reactor_->resubmit(*this);
      return;
    }
    error = sync_res_ < 0 ? sync_res_ : 0;
  }
  reactor_->finish(*this);
  if (cb_) cb_(error < 0 ? error : static_cast<int32_t>(std::min<size_t>(done_, INT32_MAX)));
}

void WriteSyncOp::on_abort(int32_t res) {
  if (cb_) cb_(res);
}

}  // namespace raftd::io
