// Operations of the io_uring reactor (raftd::io::Reactor, reactor.h).
//
// The object issuing an I/O owns its completion: every operation is one of the Op types below,
// embedded in the object that issues it (a connection holds a RecvOp and a SendOp, the WAL holds
// a WriteSyncOp). The Op's address is the io_uring user_data, so issuing an I/O allocates
// nothing. An Op is reusable: start it, wait for its final callback, start it again.
//
// Lifecycle and contract (all ops):
//  - An op is "active" from the Reactor call that starts it until its final callback. Starting
//    an active op, destroying an active op, or moving/copying any op is a programmer error
//    (RAFTD_ASSERT): the kernel holds its address. To get rid of an active op, cancel it and wait
//    for the final callback.
//  - Callbacks run only on the reactor thread, from Reactor::run()/run_once(), never from inside
//    the call that starts or cancels an op. A callback may start, cancel or restart any op,
//    including its own (once it is no longer active).
//  - Inside a callback, active() == false means "this is the final callback": the op may now be
//    restarted or destroyed. Single-shot ops get exactly one callback. Multishot ops (AcceptOp,
//    RecvOp) get one callback per event and are re-armed by the reactor whenever the kernel ends
//    them for a transient reason (IORING_CQE_F_MORE missing after a CQ overflow, -ENOBUFS,
//    -EAGAIN, -EINTR), so they stay active until EOF, an error, or cancellation.
//  - Results are res >= 0 on success and -errno on failure, as io_uring reports them.
//  - Reactor::cancel(op): the op still completes, with -ECANCELED, unless it had already
//    finished (then the final callback carries its real result). Memory an op points at (send
//    buffers, write buffers) must stay valid until the final callback, also after cancel.
//  - Callbacks are std::function set once (constructor or set_callback()); starting an op does
//    not allocate.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>

#include "raftd/base/assert.h"

struct io_uring_sqe;

namespace raftd::io {

class Reactor;

// Called with res >= 0 on success (meaning depends on the op) or -errno.
using Callback = std::function<void(int32_t res)>;

// Base of every operation. Not for subclassing outside raftd::io: the reactor relies on the
// exact SQE shapes of the ops below.
class Op {
 public:
  Op(const Op&) = delete;
  Op& operator=(const Op&) = delete;

  // True from start until the final callback (see the file comment).
  bool active() const { return state_ != State::kIdle; }
  // True once Reactor::cancel() was called for the current run of the op.
  bool cancel_requested() const { return cancel_requested_; }

 protected:
  Op() = default;
  virtual ~Op();
  Reactor* reactor_ = nullptr;  // set when started; ops call back into it to re-arm or finish

 private:
  friend class Reactor;
  enum class State : uint8_t {
    kIdle,       // not started, or final callback delivered
    kQueued,     // waiting in the reactor's software submission queue (SQ was full)
    kSubmitted,  // SQE(s) handed to the kernel
    kDeferred,   // final result decided without the kernel; callback runs in the next turn
  };
  // How many SQEs one submission of this op takes (a linked chain is submitted whole).
  virtual unsigned sqe_count() const { return 1; }
  // Fill `sqes` (sqe_count() of them); the reactor sets user_data afterwards.
  virtual void prep(io_uring_sqe** sqes) = 0;
  // One CQE for this op. `link` is 0 for the first SQE of a submission, 1 for the second.
  virtual void on_cqe(int32_t res, uint32_t cqe_flags, unsigned link) = 0;
  // The op ends without the kernel (cancelled before submission, or reactor shut down).
  virtual void on_abort(int32_t res) = 0;

  State state_ = State::kIdle;
  bool cancel_requested_ = false;
  bool cancel_wanted_ = false;   // a cancel SQE for this run is still to be issued
  bool in_cancel_list_ = false;  // linked into the reactor's cancel queue (cancel_next_)
  int32_t deferred_res_ = 0;     // result delivered by the deferred final callback
  Op* queue_next_ = nullptr;     // software SQ or deferred list link
  Op* cancel_next_ = nullptr;
  Op* active_prev_ = nullptr;  // intrusive list of all active ops (used by shutdown)
  Op* active_next_ = nullptr;
};

// The callback of an op, set once: at construction or with set_callback() before the op is
// started.
template <typename Cb>
class CallbackOp : public Op {
 public:
  CallbackOp() = default;
  explicit CallbackOp(Cb cb) : cb_(std::move(cb)) {}
  void set_callback(Cb cb) { cb_ = std::move(cb); }

 protected:
  Cb cb_;
};

// Callback of RecvOp: (res, data); see RecvOp.
using RecvCallback = std::function<void(int32_t res, std::string_view data)>;

// Multishot accept on a listening socket. Callback res: a new connected socket fd (>= 0,
// blocking, close-on-exec; the callback owns it) or -errno. Re-armed automatically; transient
// errors (-ECONNABORTED, -EAGAIN, -EINTR) are swallowed. Final on cancel (-ECANCELED) and on
// any other error (-EMFILE, -ENFILE, -EBADF, -EINVAL, ...): restart it later, e.g. from a timer,
// when the cause is fd exhaustion.
class AcceptOp final : public CallbackOp<Callback> {
 public:
  using CallbackOp::CallbackOp;

 private:
  friend class Reactor;
  void prep(io_uring_sqe** sqes) override;
  void on_cqe(int32_t res, uint32_t cqe_flags, unsigned link) override;
  void on_abort(int32_t res) override;
  int fd_ = -1;
};

// Multishot recv into the reactor's provided-buffer ring (ReactorOptions::recv_buffer_*).
// Callback (res, data):
//  - res > 0: `data` holds res bytes. The view is valid only during the callback: the buffer is
//    returned to the ring right after it (copy out what you keep). The op stays active.
//  - res == 0: end of stream (peer closed its write side). Final.
//  - res < 0: -ECANCELED after cancel, or another error (-ECONNRESET, ...). Final.
// Buffer-ring exhaustion (-ENOBUFS), CQ overflow, -EAGAIN and -EINTR re-arm internally and are
// never delivered. Backpressure: cancel the recv when the consumer is full; start it again later.
class RecvOp final : public CallbackOp<RecvCallback> {
 public:
  using CallbackOp::CallbackOp;

 private:
  friend class Reactor;
  void prep(io_uring_sqe** sqes) override;
  void on_cqe(int32_t res, uint32_t cqe_flags, unsigned link) override;
  void on_abort(int32_t res) override;
  int fd_ = -1;
};

// connect(2) through the ring. Callback res: 0 (connected) or -errno (-ECONNREFUSED, ...).
// The address is copied into the op. For a deadline, run a TimerOp beside it and cancel the
// connect when the timer fires.
class ConnectOp final : public CallbackOp<Callback> {
 public:
  using CallbackOp::CallbackOp;

 private:
  friend class Reactor;
  void prep(io_uring_sqe** sqes) override;
  void on_cqe(int32_t res, uint32_t cqe_flags, unsigned link) override;
  void on_abort(int32_t res) override;
  int fd_ = -1;
  sockaddr_storage addr_{};
  socklen_t addr_len_ = 0;
};

// Sends all bytes: a short send is resubmitted from where it stopped, and the callback runs once,
// with res == total bytes, or -errno (-EPIPE, -ECONNRESET, -ECANCELED; bytes_done() then says how
// many bytes went out before the error). MSG_NOSIGNAL is always set. The caller's data (and, for
// sendv, the iovec array is copied but not the bytes it points at) must stay valid until the
// callback.
class SendOp final : public CallbackOp<Callback> {
 public:
  static constexpr size_t kIovMax = 8;  // enough for header + body pieces of one HTTP message
  using CallbackOp::CallbackOp;
  // Bytes sent so far in the current (or last) run.
  size_t bytes_done() const { return done_; }

 private:
  friend class Reactor;
  void prep(io_uring_sqe** sqes) override;
  void on_cqe(int32_t res, uint32_t cqe_flags, unsigned link) override;
  void on_abort(int32_t res) override;
  int fd_ = -1;
  std::array<iovec, kIovMax> iov_{};
  size_t iov_count_ = 0;
  size_t iov_first_ = 0;  // first iovec not yet fully sent (iov_ is advanced in place)
  size_t total_ = 0;
  size_t done_ = 0;
  msghdr msg_{};
};

// One-shot timer on CLOCK_MONOTONIC (an io_uring timeout SQE with an absolute deadline).
// Callback res: 0 when it fired, -ECANCELED when cancelled first. Timers due in the same turn
// fire in deadline order.
class TimerOp final : public CallbackOp<Callback> {
 public:
  using CallbackOp::CallbackOp;
  // Absolute CLOCK_MONOTONIC deadline of the current (or last) run, in nanoseconds.
  int64_t deadline_ns() const { return deadline_ns_; }

 private:
  friend class Reactor;
  void prep(io_uring_sqe** sqes) override;
  void on_cqe(int32_t res, uint32_t cqe_flags, unsigned link) override;
  void on_abort(int32_t res) override;
  int64_t deadline_ns_ = 0;
  struct KernelTimespec {  // layout of __kernel_timespec; the kernel reads it at submission
    int64_t tv_sec;
    long long tv_nsec;
  } ts_{};
};

// pwrite of a whole buffer at `offset`: a short write is resubmitted for the remainder. Callback
// res: total bytes written, or -errno (bytes_done() says how far it got). A write that makes no
// progress (res 0) is reported as -EIO rather than retried forever.
class WriteOp final : public CallbackOp<Callback> {
 public:
  using CallbackOp::CallbackOp;
  size_t bytes_done() const { return done_; }

 private:
  friend class Reactor;
  void prep(io_uring_sqe** sqes) override;
  void on_cqe(int32_t res, uint32_t cqe_flags, unsigned link) override;
  void on_abort(int32_t res) override;
  int fd_ = -1;
  const char* data_ = nullptr;
  size_t len_ = 0;
  uint64_t offset_ = 0;
  size_t done_ = 0;
};

// fdatasync(2) through the ring. Callback res: 0 or -errno. An fsync error is never retried here
// (Linux may drop the dirty pages after reporting it): the WAL treats it as fatal.
class SyncOp final : public CallbackOp<Callback> {
 public:
  using CallbackOp::CallbackOp;

 private:
  friend class Reactor;
  void prep(io_uring_sqe** sqes) override;
  void on_cqe(int32_t res, uint32_t cqe_flags, unsigned link) override;
  void on_abort(int32_t res) override;
  int fd_ = -1;
};

// The WAL's group commit: pwrite(buffer, offset) linked (IOSQE_IO_LINK) to
// fsync(IORING_FSYNC_DATASYNC), one submission, both CQEs reaped. A short write breaks the chain
// (the kernel cancels the fdatasync): the op then submits remainder -> fdatasync again, and so
// on. Callback res: total bytes written, delivered only after every byte was written AND the
// fdatasync that followed the last write returned 0; otherwise the first -errno seen (write
// error, fdatasync error, -ECANCELED after cancel, -EIO for a write that made no progress).
// The caller must treat any error as durability-ambiguous (fail-stop); this op never retries a
// failed fdatasync. Cancel reaches only a write not yet started; a running fdatasync finishes.
class WriteSyncOp final : public CallbackOp<Callback> {
 public:
  using CallbackOp::CallbackOp;
  // Bytes written so far in the current (or last) run; not yet known durable until the callback.
  size_t bytes_done() const { return done_; }
  // Number of write->fdatasync submissions in the current (or last) run (> 1 after short writes).
  unsigned submissions() const { return submissions_; }

 private:
  friend class Reactor;
  unsigned sqe_count() const override { return 2; }
  void prep(io_uring_sqe** sqes) override;
  void on_cqe(int32_t res, uint32_t cqe_flags, unsigned link) override;
  void on_abort(int32_t res) override;
  void on_chain_done();
  int fd_ = -1;
  const char* data_ = nullptr;
  size_t len_ = 0;
  uint64_t offset_ = 0;
  size_t done_ = 0;
  unsigned submissions_ = 0;
  int32_t write_res_ = 0;  // CQE results of the chain in flight
  int32_t sync_res_ = 0;
  bool write_seen_ = false;
  bool sync_seen_ = false;
};

}  // namespace raftd::io
