// The io_uring reactor: one ring per thread, completions harvested first and callbacks run after.
//
// Threading: a Reactor belongs to the thread that created it (the ring is set up with
// IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, which binds it to that thread).
// Every member function must be called on that thread, except post(), wake() and stop(), which
// are safe from any thread.
//
// Operations (op.h) are owned by the objects that issue them; the reactor never allocates per
// I/O. Starting an op never runs a callback inline; callbacks run inside run()/run_once().
//
// One turn of the loop (run_once):
//  1. Fill free SQEs from the cancel queue, then from the software submission queue (ops that
//     found the SQ full earlier, FIFO; a linked chain is never split across submissions).
//  2. io_uring_submit_and_wait_timeout(): submit, run deferred kernel task work, wait for at
//     least one CQE or the timeout (no wait at all when callbacks are already pending).
//  3. Harvest ALL available CQEs into a local array and advance the CQ.
//  4. Dispatch each CQE to its op (callbacks run here; they may start and cancel ops freely,
//     new SQEs go out in the next turn), then run the final callbacks of ops that ended without
//     the kernel (cancelled while queued), then functions queued with post().
//  5. Run the turn-end hooks (add_turn_end_hook). The WAL uses one to turn everything appended
//     during the turn into one write->fdatasync.
//
// Shutdown (shutdown() or the destructor): every active op is cancelled (one
// IORING_ASYNC_CANCEL_ANY) and the loop turns until each has delivered its final callback
// (-ECANCELED, or its real result if it finished first); ops started during shutdown complete
// with -ECANCELED at once; posted functions not yet run are dropped. Then the buffer ring is
// unregistered and the ring closed. Owners of ops must outlive shutdown() (or have their ops
// ended) because their callbacks run during it.
//
// Errors: create() and probe_kernel() return Status with an actionable message (what is missing
// and which sysctl, seccomp rule or kernel version fixes it); per-op errors are -errno in the
// op's callback.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include "raftd/base/status.h"
#include "raftd/io/op.h"
#include "raftd/io/probe.h"

struct io_uring;
struct io_uring_buf_ring;

namespace raftd::io {

// Monotonic clock used by the reactor and its timers (CLOCK_MONOTONIC).
using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = Clock::duration;

struct ReactorOptions {
  // SQ entries (rounded up to a power of two by the kernel). The CQ gets kCqPerSq times as many
  // so bursts of multishot completions rarely overflow it (an overflow ends multishot ops; they
  // are re-armed, but it costs a round trip).
  uint32_t sq_entries = 256;
  // Provided buffers for multishot recv: count must be a power of two (kernel rule), <= 32768.
  // Memory used: recv_buffer_count * recv_buffer_bytes, allocated once at create(), and all of
  // it resident in time (the kernel cycles through the ring). 128 is 2x the most a node under
  // 256 client connections was seen to need (doc/io.md).
  uint32_t recv_buffer_count = 128;
  uint32_t recv_buffer_bytes = 16 * 1024;
  // Bound of the cross-thread post() queue; post() refuses work beyond it.
  size_t post_queue_max = 4096;
};

// Counters for tests and metrics. Monotonic over the reactor's life.
struct ReactorStats {
  uint64_t turns = 0;
  uint64_t cqes = 0;
  uint64_t sq_full_queued = 0;    // submissions that went to the software queue (SQ full)
  uint64_t multishot_rearms = 0;  // accept/recv re-armed after the kernel ended them
  uint64_t enobufs = 0;           // recv ended by an empty buffer ring
  uint64_t posted = 0;            // functions run from post()
};

class Reactor {
 public:
  static constexpr uint32_t kCqPerSq = 4;
  static constexpr uint32_t kSqEntriesMin = 2;        // a linked write->fdatasync takes two SQEs
  static constexpr uint32_t kSqEntriesMax = 4096;     // bounds the harvest array and locked memory
  static constexpr uint32_t kRecvBuffersMax = 32768;  // kernel limit for a provided-buffer ring
  static constexpr uint32_t kRecvBufferBytesMax = 1u << 20;
  // Ops report byte counts in an int32_t result, so one send/write moves at most this much.
  static constexpr size_t kOpBytesMax = INT32_MAX;
  // How long shutdown waits for cancelled ops to report before giving up on them (a running
  // fdatasync cannot be interrupted; this only bounds a wedged device).
  static constexpr std::chrono::seconds kShutdownDrainMax{30};

  // Probes the kernel (probe_kernel()) and sets the ring up. Must be called on the thread that
  // will run the reactor. Errors: kUnsupported with the probe's message, kInvalidArgument for
  // bad options, kIoError for resource failures (eventfd, memory, buffer ring registration).
  static Result<std::unique_ptr<Reactor>> create(const ReactorOptions& options = {});

  ~Reactor();  // shutdown(), then frees everything
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  // ---- loop ----
  // Turns until stop() is called. Returns after the turn in which stop was noticed.
  void run();
  // One turn; waits at most `timeout` for the first completion (0: do not block). Returns the
  // number of callbacks run (CQE dispatches + deferred completions + posted functions).
  size_t run_once(Duration timeout);
  // Ends run() after the current turn. Thread-safe and async-signal-safe (an atomic store and
  // one write(2)), so a SIGTERM handler may call it.
  void stop();
  bool stop_requested() const { return stop_.load(std::memory_order_acquire); }
  // Cancels everything and waits for every op's final callback (see the file comment).
  // Idempotent; the reactor accepts no real work afterwards.
  void shutdown();

  // ---- cross-thread ----
  // Queues `fn` to run on the reactor thread in a coming turn and wakes the loop. Thread-safe.
  // Returns false (and drops fn) when post_queue_max functions are already waiting or the
  // reactor is shut down: the caller applies backpressure.
  [[nodiscard]] bool post(std::function<void()> fn);
  // Makes a blocked run()/run_once() return soon. Thread-safe and async-signal-safe.
  void wake();

  // ---- turn-end hooks ----
  using HookId = uint64_t;
  // `hook` runs at the end of every turn, after all callbacks, in registration order. It may
  // start ops (submitted at the start of the next turn). Returns an id for remove.
  HookId add_turn_end_hook(std::function<void()> hook);
  void remove_turn_end_hook(HookId id);

  // ---- operations (op.h). Precondition for all: the op is not active. ----
  void accept(AcceptOp& op, int listen_fd);
  void recv(RecvOp& op, int fd);
  void connect(ConnectOp& op, int fd, const sockaddr* addr, socklen_t addr_len);
  void send(SendOp& op, int fd, const void* data, size_t len);
  // iov_count in [1, SendOp::kIovMax]; the iovec array is copied, the bytes are not.
  void sendv(SendOp& op, int fd, const iovec* iov, size_t iov_count);
  void start_timer(TimerOp& op, Duration after);
  void start_timer_at(TimerOp& op, TimePoint deadline);
  void write(WriteOp& op, int fd, const void* data, size_t len, uint64_t offset);
  void fdatasync(SyncOp& op, int fd);
  // len > 0 (for nothing to write, use fdatasync()).
  void write_fdatasync(WriteSyncOp& op, int fd, const void* data, size_t len, uint64_t offset);
  // Requests cancellation of an active op (no-op if it is not active). See op.h for the result.
  void cancel(Op& op);

  // ---- introspection ----
  static TimePoint now() { return Clock::now(); }
  const ReactorStats& stats() const { return stats_; }
  // Active ops started by users (the reactor's internal wake-up read is not counted).
  size_t active_ops() const;
  uint32_t sq_entries() const { return sq_entries_; }
  uint32_t cq_entries() const { return cq_entries_; }
  // Provided buffers not held by a recv callback. Each buffer goes back to the ring right after
  // its callback, so between turns this equals ReactorOptions::recv_buffer_count.
  uint32_t recv_buffers_in_ring() const { return options_.recv_buffer_count - bufs_out_; }

 private:
  friend class AcceptOp;
  friend class RecvOp;
  friend class ConnectOp;
  friend class SendOp;
  friend class TimerOp;
  friend class WriteOp;
  friend class SyncOp;
  friend class WriteSyncOp;
  class WakeOp;

  static constexpr uint16_t kRecvBufferGroup = 1;  // the one provided-buffer group (bgid)

  explicit Reactor(const ReactorOptions& options);
  Status init();
  Status init_buffer_ring();
  void assert_owner_thread() const;

  // Op plumbing (ops call these from on_cqe).
  void start(Op& op);                        // first submission of an op
  void start_deferred(Op& op, int32_t res);  // start an op that ends at once with res
  void resubmit(Op& op);                     // same op again (short send/write remainder)
  void rearm(Op& op);                        // multishot op ended by the kernel: submit it again
  void finish(Op& op);                       // final CQE seen: op becomes idle before its callback
  void defer_final(Op& op, int32_t res);     // end without the kernel; callback later this turn
  bool try_prep(Op& op);                     // take SQEs and prep; false when the SQ is full
  void submit_or_queue(Op& op);
  void flush_queue();
  void flush_cancels();
  bool prep_cancel(Op& op);
  void link_active(Op& op);
  void unlink_active(Op& op);
  void remove_from_cancels(Op& op);
  void remove_from_unqueued(Op& op);

  // Turn steps.
  void submit_and_wait(Duration timeout);
  size_t harvest();
  size_t dispatch(size_t n);
  size_t run_deferred();
  size_t run_posted();
  void run_turn_end_hooks();
  void drain_for_shutdown();

  // Provided-buffer ring.
  std::string_view recv_buffer(uint16_t bid, size_t len) const;
  void lend_recv_buffer() { ++bufs_out_; }
  void return_recv_buffer(uint16_t bid);
  void count_enobufs() { ++stats_.enobufs; }

  ReactorOptions options_;
  std::unique_ptr<io_uring> ring_;
  bool ring_ready_ = false;
  uint32_t sq_entries_ = 0;
  uint32_t cq_entries_ = 0;
  std::thread::id owner_;
  bool shutting_down_ = false;
  bool in_turn_ = false;
  bool shut_down_ = false;
  std::atomic<bool> stop_{false};

  struct Harvested {
    uint64_t user_data;
    int32_t res;
    uint32_t flags;
  };
  std::vector<Harvested> harvested_;

  // Intrusive FIFOs through Op::queue_next_ / Op::cancel_next_.
  struct OpList {
    Op* head = nullptr;
    Op* tail = nullptr;
  };
  // Appends `op` to `list`, linking through the member `next` (queue_next_ or cancel_next_).
  static void push_back(OpList& list, Op& op, Op* Op::*next);
  OpList unqueued_;  // waiting for SQEs (queue_next_)
  OpList deferred_;  // final callbacks decided without the kernel (queue_next_)
  OpList cancels_;   // cancel SQEs waiting for SQ space (cancel_next_)
  Op* active_head_ = nullptr;
  size_t active_count_ = 0;

  // Provided-buffer ring.
  io_uring_buf_ring* buf_ring_ = nullptr;
  char* buf_pool_ = nullptr;
  bool buf_ring_registered_ = false;
  uint32_t bufs_out_ = 0;  // buffers taken by the kernel and not yet returned

  // Cross-thread queue and wake-up (eventfd read re-armed on each completion).
  int event_fd_ = -1;
  std::unique_ptr<WakeOp> wake_op_;
  std::mutex post_mu_;
  std::deque<std::function<void()>> posted_;  // guarded by post_mu_; <= post_queue_max
  bool post_closed_ = false;                  // guarded by post_mu_
  std::atomic<size_t> posted_count_{0};       // posted_.size(), readable without the lock
  std::vector<std::function<void()>> posted_local_;

  struct Hook {
    HookId id;
    std::function<void()> fn;
  };
  std::vector<Hook> hooks_;
  HookId next_hook_id_ = 1;

  ReactorStats stats_;
};

// Re-arming timer built on TimerOp: runs `fn` every `period` (absolute deadlines, so lateness of
// one tick does not shift the next ones; missed ticks are skipped, not burst). stop() cancels
// it; fn is not called after stop(). Like any op it must outlive its final callback: after
// stop(), let the reactor turn until active() is false (or call Reactor::shutdown()) before
// destroying it. Reactor thread only.
class RepeatingTimer {
 public:
  RepeatingTimer(Reactor& reactor, Duration period, std::function<void()> fn);
  ~RepeatingTimer() = default;
  RepeatingTimer(const RepeatingTimer&) = delete;
  RepeatingTimer& operator=(const RepeatingTimer&) = delete;

  void start();
  void stop();
  bool running() const { return running_; }
  bool active() const { return op_.active(); }

 private:
  void on_fired(int32_t res);
  Reactor& reactor_;
  Duration period_;
  std::function<void()> fn_;
  TimerOp op_;
  bool running_ = false;
  bool restart_after_cancel_ = false;
};

}  // namespace raftd::io
