// The reactor's ring, queues and turn. See reactor.h for the contract; the op-specific CQE logic
// is in op.cc.
#include "raftd/io/reactor.h"

#include <liburing.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "raftd/base/log.h"

namespace raftd::io {

namespace {

// Low bits of user_data carry the link position inside a submission (ops are 8-aligned).
constexpr uint64_t kLinkMask = 7;
static_assert(alignof(Op) >= 8, "Op addresses must leave the low 3 bits of user_data free");
// How long run() blocks per turn when nothing wakes it; stop() and post() wake it anyway.
constexpr Duration kRunWaitMax = std::chrono::seconds(1);
// While draining for shutdown: wait per turn, and how often the cancel-all is repeated.
constexpr Duration kShutdownTurnWait = std::chrono::milliseconds(50);
constexpr Duration kShutdownCancelEvery = std::chrono::seconds(1);
constexpr size_t kPageBytes = 4096;

uint64_t user_data_of(Op* op, unsigned link) { return reinterpret_cast<uintptr_t>(op) | link; }

bool is_power_of_two(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

}  // namespace

// The eventfd read that post() and wake() complete. Re-armed after every completion.
class Reactor::WakeOp final : public Op {
 public:
  WakeOp() = default;
  ~WakeOp() override = default;

 private:
  friend class Reactor;
  void prep(io_uring_sqe** sqes) override {
    io_uring_prep_read(sqes[0], fd_, &value_, sizeof value_, 0);
  }
  void on_cqe(int32_t res, uint32_t /*cqe_flags*/, unsigned /*link*/) override {
    if (res == -ECANCELED || reactor_->shutting_down_) {
      reactor_->finish(*this);
      return;
    }
    if (res < 0 && res != -EINTR && res != -EAGAIN) {
      log::error("io: reactor wake-up read failed ({}); cross-thread posts now wait up to {} ms",
                 std::strerror(-res),
                 std::chrono::duration_cast<std::chrono::milliseconds>(kRunWaitMax).count());
      reactor_->finish(*this);
      return;
    }
    reactor_->resubmit(*this);
  }
  void on_abort(int32_t /*res*/) override {}
  int fd_ = -1;
  uint64_t value_ = 0;
};

// ---------------------------------------------------------------- creation

Result<std::unique_ptr<Reactor>> Reactor::create(const ReactorOptions& options) {
  if (options.sq_entries < kSqEntriesMin || options.sq_entries > kSqEntriesMax) {
    return Status(Code::kInvalidArgument,
                  fmt::format("io: sq_entries must be in [{}, {}]", kSqEntriesMin, kSqEntriesMax));
  }
  if (!is_power_of_two(options.recv_buffer_count) || options.recv_buffer_count > kRecvBuffersMax) {
    return Status(Code::kInvalidArgument,
                  fmt::format("io: recv_buffer_count must be a power of two <= {}, got {}",
                              kRecvBuffersMax, options.recv_buffer_count));
  }
  if (options.recv_buffer_bytes == 0 || options.recv_buffer_bytes > kRecvBufferBytesMax) {
    return Status(Code::kInvalidArgument,
                  fmt::format("io: recv_buffer_bytes must be in [1, {}]", kRecvBufferBytesMax));
  }
  if (options.post_queue_max == 0) {
    return Status(Code::kInvalidArgument, "io: post_queue_max must be at least 1");
  }
  if (Status s = probe_kernel(); !s.is_ok()) return s;
  std::unique_ptr<Reactor> reactor(new Reactor(options));
  if (Status s = reactor->init(); !s.is_ok()) return s;
  return reactor;
}

Reactor::Reactor(const ReactorOptions& options)
    : options_(options), ring_(std::make_unique<io_uring>()), owner_(std::this_thread::get_id()) {}

Status Reactor::init() {
  io_uring_params p{};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL |
            IORING_SETUP_CQSIZE;
  p.cq_entries = options_.sq_entries * kCqPerSq;
  if (int r = io_uring_queue_init_params(options_.sq_entries, ring_.get(), &p); r < 0) {
    return Status::from_errno(-r, "io: io_uring_queue_init_params(SINGLE_ISSUER|DEFER_TASKRUN)");
  }
  ring_ready_ = true;
  sq_entries_ = p.sq_entries;
  cq_entries_ = p.cq_entries;
  harvested_.resize(cq_entries_);
  // Registering the ring fd saves an fd lookup per io_uring_enter; it is per-thread, which
  // matches SINGLE_ISSUER. Failure only costs speed.
  (void)io_uring_register_ring_fd(ring_.get());
  if (Status s = init_buffer_ring(); !s.is_ok()) return s;

  event_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (event_fd_ < 0) return Status::from_errno(errno, "io: eventfd");
  wake_op_ = std::make_unique<WakeOp>();
  wake_op_->fd_ = event_fd_;
  start(*wake_op_);
  return Status::ok();
}

Status Reactor::init_buffer_ring() {
  const uint32_t count = options_.recv_buffer_count;
  const size_t ring_bytes = std::max(kPageBytes, count * sizeof(io_uring_buf));
  void* ring_mem = nullptr;
  if (int r = posix_memalign(&ring_mem, kPageBytes, ring_bytes); r != 0) {
    return Status::from_errno(r, "io: allocating the provided-buffer ring");
  }
  std::memset(ring_mem, 0, ring_bytes);
  buf_ring_ = static_cast<io_uring_buf_ring*>(ring_mem);
  void* pool = nullptr;
  if (int r = posix_memalign(&pool, kPageBytes, size_t{count} * options_.recv_buffer_bytes);
      r != 0) {
    return Status::from_errno(r, "io: allocating recv buffers");
  }
  buf_pool_ = static_cast<char*>(pool);

  // liburing 2.3 has no io_uring_setup_buf_ring(): register page-aligned memory by hand.
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(buf_ring_);
  reg.ring_entries = count;
  reg.bgid = kRecvBufferGroup;
  if (int r = io_uring_register_buf_ring(ring_.get(), &reg, 0); r < 0) {
    return Status::from_errno(-r, "io: io_uring_register_buf_ring (needs Linux >= 5.19)");
  }
  buf_ring_registered_ = true;
  io_uring_buf_ring_init(buf_ring_);
  const int mask = io_uring_buf_ring_mask(count);
  for (uint32_t i = 0; i < count; ++i) {
    io_uring_buf_ring_add(buf_ring_, buf_pool_ + size_t{i} * options_.recv_buffer_bytes,
                          options_.recv_buffer_bytes, static_cast<unsigned short>(i), mask,
                          static_cast<int>(i));
  }
  io_uring_buf_ring_advance(buf_ring_, static_cast<int>(count));
  return Status::ok();
}

Reactor::~Reactor() {
  if (ring_ready_ && !shut_down_) shutdown();
  if (buf_ring_registered_) (void)io_uring_unregister_buf_ring(ring_.get(), kRecvBufferGroup);
  if (ring_ready_) io_uring_queue_exit(ring_.get());
  if (event_fd_ >= 0) ::close(event_fd_);
  std::free(buf_ring_);
  std::free(buf_pool_);
}

size_t Reactor::active_ops() const {
  return active_count_ - (wake_op_ != nullptr && wake_op_->active() ? 1 : 0);
}

void Reactor::assert_owner_thread() const {
  RAFTD_ASSERT(std::this_thread::get_id() == owner_,
               "io::Reactor used from a thread other than the one that created it");
}

// ---------------------------------------------------------------- starting ops

void Reactor::link_active(Op& op) {
  op.active_prev_ = nullptr;
  op.active_next_ = active_head_;
  if (active_head_ != nullptr) active_head_->active_prev_ = &op;
  active_head_ = &op;
  ++active_count_;
}

void Reactor::unlink_active(Op& op) {
  if (op.active_prev_ != nullptr) {
    op.active_prev_->active_next_ = op.active_next_;
  } else {
    active_head_ = op.active_next_;
  }
  if (op.active_next_ != nullptr) op.active_next_->active_prev_ = op.active_prev_;
  op.active_prev_ = op.active_next_ = nullptr;
  --active_count_;
}

void Reactor::start(Op& op) {
  assert_owner_thread();
  RAFTD_ASSERT(!op.active(), "io: starting an op that is still active");
  RAFTD_ASSERT(!shut_down_, "io: starting an op on a reactor that was shut down");
  op.reactor_ = this;
  op.cancel_requested_ = false;
  op.cancel_wanted_ = false;
  link_active(op);
  if (shutting_down_) {
    op.cancel_requested_ = true;
    defer_final(op, -ECANCELED);
    return;
  }
  submit_or_queue(op);
}

void Reactor::start_deferred(Op& op, int32_t res) {
  assert_owner_thread();
  RAFTD_ASSERT(!op.active(), "io: starting an op that is still active");
  op.reactor_ = this;
  op.cancel_requested_ = false;
  op.cancel_wanted_ = false;
  link_active(op);
  defer_final(op, res);
}

void Reactor::submit_or_queue(Op& op) {
  // Ops queued earlier go first: FIFO order, and a newcomer must not steal the SQEs they wait
  // for.
  if (unqueued_.head == nullptr && try_prep(op)) {
    op.state_ = Op::State::kSubmitted;
    return;
  }
  op.state_ = Op::State::kQueued;
  push_back(unqueued_, op, &Op::queue_next_);
  ++stats_.sq_full_queued;
}

bool Reactor::try_prep(Op& op) {
  const unsigned n = op.sqe_count();
  RAFTD_ASSERT(n >= 1 && n <= 2, "io: an op takes one or two SQEs");
  if (io_uring_sq_space_left(ring_.get()) < n) return false;
  io_uring_sqe* sqes[2] = {nullptr, nullptr};
  for (unsigned i = 0; i < n; ++i) sqes[i] = io_uring_get_sqe(ring_.get());
  op.prep(sqes);
  for (unsigned i = 0; i < n; ++i) io_uring_sqe_set_data64(sqes[i], user_data_of(&op, i));
  return true;
}

void Reactor::resubmit(Op& op) {
  // A cancelled op is not submitted again: its final callback carries -ECANCELED.
  if (op.cancel_requested_ || shutting_down_) {
    defer_final(op, -ECANCELED);
    return;
  }
  submit_or_queue(op);
}

void Reactor::rearm(Op& op) {
  ++stats_.multishot_rearms;
  resubmit(op);
}

void Reactor::finish(Op& op) {
  remove_from_cancels(op);
  op.state_ = Op::State::kIdle;
  unlink_active(op);
}

void Reactor::defer_final(Op& op, int32_t res) {
  remove_from_cancels(op);
  op.state_ = Op::State::kDeferred;
  op.deferred_res_ = res;
  push_back(deferred_, op, &Op::queue_next_);
}

void Reactor::push_back(OpList& list, Op& op, Op* Op::*next) {
  op.*next = nullptr;
  if (list.tail != nullptr) {
    list.tail->*next = &op;
  } else {
    list.head = &op;
  }
  list.tail = &op;
}

// ---------------------------------------------------------------- public op starters

void Reactor::accept(AcceptOp& op, int listen_fd) {
  op.fd_ = listen_fd;
  start(op);
}

void Reactor::recv(RecvOp& op, int fd) {
  op.fd_ = fd;
  start(op);
}

void Reactor::connect(ConnectOp& op, int fd, const sockaddr* addr, socklen_t addr_len) {
  RAFTD_ASSERT(addr_len <= sizeof op.addr_, "io: connect address too long");
  op.fd_ = fd;
  std::memcpy(&op.addr_, addr, addr_len);
  op.addr_len_ = addr_len;
  start(op);
}

void Reactor::send(SendOp& op, int fd, const void* data, size_t len) {
  iovec v{const_cast<void*>(data), len};
  sendv(op, fd, &v, 1);
}

void Reactor::sendv(SendOp& op, int fd, const iovec* iov, size_t iov_count) {
  RAFTD_ASSERT(iov_count >= 1 && iov_count <= SendOp::kIovMax, "io: sendv iov_count out of range");
  RAFTD_ASSERT(!op.active(), "io: starting an op that is still active");
  op.fd_ = fd;
  op.total_ = 0;
  op.done_ = 0;
  op.iov_first_ = 0;
  op.iov_count_ = iov_count;
  for (size_t i = 0; i < iov_count; ++i) {
    op.iov_[i] = iov[i];
    op.total_ += iov[i].iov_len;
  }
  RAFTD_ASSERT(op.total_ <= kOpBytesMax, "io: send larger than kOpBytesMax");
  // Skip leading empty pieces so prep never sends zero bytes while more remain.
  while (op.iov_first_ < op.iov_count_ && op.iov_[op.iov_first_].iov_len == 0) ++op.iov_first_;
  if (op.total_ == 0) {
    start_deferred(op, 0);
    return;
  }
  start(op);
}

void Reactor::start_timer(TimerOp& op, Duration after) { start_timer_at(op, now() + after); }

void Reactor::start_timer_at(TimerOp& op, TimePoint deadline) {
  const int64_t ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
  op.deadline_ns_ = ns < 0 ? 0 : ns;
  op.ts_.tv_sec = op.deadline_ns_ / 1'000'000'000;
  op.ts_.tv_nsec = op.deadline_ns_ % 1'000'000'000;
  start(op);
}

void Reactor::write(WriteOp& op, int fd, const void* data, size_t len, uint64_t offset) {
  RAFTD_ASSERT(len <= kOpBytesMax, "io: write larger than kOpBytesMax");
  op.fd_ = fd;
  op.data_ = static_cast<const char*>(data);
  op.len_ = len;
  op.offset_ = offset;
  op.done_ = 0;
  if (len == 0) {
    start_deferred(op, 0);
    return;
  }
  start(op);
}

void Reactor::fdatasync(SyncOp& op, int fd) {
  op.fd_ = fd;
  start(op);
}

void Reactor::write_fdatasync(WriteSyncOp& op, int fd, const void* data, size_t len,
                              uint64_t offset) {
  RAFTD_ASSERT(len > 0, "io: write_fdatasync of zero bytes (use fdatasync)");
  RAFTD_ASSERT(len <= kOpBytesMax, "io: write larger than kOpBytesMax");
  op.fd_ = fd;
  op.data_ = static_cast<const char*>(data);
  op.len_ = len;
  op.offset_ = offset;
  op.done_ = 0;
  op.submissions_ = 0;
  start(op);
}

// ---------------------------------------------------------------- cancellation

void Reactor::cancel(Op& op) {
  assert_owner_thread();
  if (!op.active() || op.reactor_ != this || op.cancel_requested_) return;
  op.cancel_requested_ = true;
  switch (op.state_) {
    case Op::State::kQueued:
      remove_from_unqueued(op);
      defer_final(op, -ECANCELED);
      return;
    case Op::State::kDeferred:
    case Op::State::kIdle: return;
    case Op::State::kSubmitted: break;
  }
  op.cancel_wanted_ = true;
  // Cancels wait in their own queue, flushed before new work, when the SQ is full.
  if (cancels_.head == nullptr && prep_cancel(op)) return;
  op.in_cancel_list_ = true;
  push_back(cancels_, op, &Op::cancel_next_);
}

bool Reactor::prep_cancel(Op& op) {
  io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
  if (sqe == nullptr) return false;
  // Targets the first SQE of the op's submission; a linked fdatasync goes with its write.
  io_uring_prep_cancel64(sqe, user_data_of(&op, 0), 0);
  io_uring_sqe_set_data64(sqe, 0);  // the cancel's own CQE carries nothing we act on
  op.cancel_wanted_ = false;
  return true;
}

void Reactor::remove_from_cancels(Op& op) {
  if (!op.in_cancel_list_) return;
  Op* prev = nullptr;
  for (Op* it = cancels_.head; it != nullptr; prev = it, it = it->cancel_next_) {
    if (it != &op) continue;
    (prev != nullptr ? prev->cancel_next_ : cancels_.head) = it->cancel_next_;
    if (cancels_.tail == it) cancels_.tail = prev;
    break;
  }
  op.in_cancel_list_ = false;
  op.cancel_next_ = nullptr;
}

void Reactor::remove_from_unqueued(Op& op) {
  Op* prev = nullptr;
  for (Op* it = unqueued_.head; it != nullptr; prev = it, it = it->queue_next_) {
    if (it != &op) continue;
    (prev != nullptr ? prev->queue_next_ : unqueued_.head) = it->queue_next_;
    if (unqueued_.tail == it) unqueued_.tail = prev;
    op.queue_next_ = nullptr;
    return;
  }
  RAFTD_ASSERT(false, "io: queued op missing from the submission queue");
}

void Reactor::flush_cancels() {
  while (Op* op = cancels_.head) {
    if (op->state_ == Op::State::kSubmitted && op->cancel_wanted_) {
      if (!prep_cancel(*op)) return;
    }
    cancels_.head = op->cancel_next_;
    if (cancels_.head == nullptr) cancels_.tail = nullptr;
    op->in_cancel_list_ = false;
    op->cancel_next_ = nullptr;
  }
}

void Reactor::flush_queue() {
  while (Op* op = unqueued_.head) {
    if (!try_prep(*op)) return;  // still full: the rest waits for the next turn
    unqueued_.head = op->queue_next_;
    if (unqueued_.head == nullptr) unqueued_.tail = nullptr;
    op->queue_next_ = nullptr;
    op->state_ = Op::State::kSubmitted;
  }
}

// ---------------------------------------------------------------- the turn

void Reactor::run() {
  while (!stop_requested()) run_once(kRunWaitMax);
  stop_.store(false, std::memory_order_release);
}

void Reactor::stop() {
  stop_.store(true, std::memory_order_release);
  wake();
}

size_t Reactor::run_once(Duration timeout) {
  assert_owner_thread();
  RAFTD_ASSERT(!in_turn_, "io: run_once() called from inside a callback");
  RAFTD_ASSERT(!shut_down_, "io: run_once() on a reactor that was shut down");
  in_turn_ = true;
  ++stats_.turns;
  flush_cancels();
  flush_queue();
  submit_and_wait(timeout);
  const size_t n = harvest();
  size_t ran = dispatch(n);
  ran += run_deferred();
  ran += run_posted();
  if (!shutting_down_) run_turn_end_hooks();
  in_turn_ = false;
  return ran;
}

void Reactor::submit_and_wait(Duration timeout) {
  io_uring* ring = ring_.get();
  // Work already waiting (callbacks to run, CQEs or queued SQEs) means: submit and collect
  // whatever is ready, but do not block.
  const bool busy = deferred_.head != nullptr || unqueued_.head != nullptr ||
                    cancels_.head != nullptr || posted_count_.load(std::memory_order_acquire) > 0 ||
                    io_uring_cq_ready(ring) > 0 || io_uring_cq_has_overflow(ring);
  int r = 0;
  if (busy || timeout <= Duration::zero()) {
    r = io_uring_submit_and_get_events(ring);
  } else {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count();
    __kernel_timespec ts{};
    ts.tv_sec = ns / 1'000'000'000;
    ts.tv_nsec = ns % 1'000'000'000;
    io_uring_cqe* cqe = nullptr;
    r = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, nullptr);
  }
  // -ETIME: timed out; -EINTR: a signal; -EBUSY/-EAGAIN: the CQ is backed up and the kernel
  // wants us to reap first (we do, right now). Anything else is a reactor bug.
  if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY && r != -EAGAIN) {
    log::error("io: io_uring_enter failed: {}", std::strerror(-r));
    RAFTD_ASSERT(false, "io: io_uring_enter failed unexpectedly");
  }
}

size_t Reactor::harvest() {
  // Copy every ready CQE out and release the CQ before any callback runs, so callbacks can
  // submit freely and never see a half-consumed ring.
  io_uring* ring = ring_.get();
  size_t n = 0;
  unsigned head = 0;
  io_uring_cqe* cqe = nullptr;
  io_uring_for_each_cqe(ring, head, cqe) {
    if (n == harvested_.size()) break;
    harvested_[n++] = Harvested{cqe->user_data, cqe->res, cqe->flags};
  }
  io_uring_cq_advance(ring, static_cast<unsigned>(n));
  stats_.cqes += n;
  return n;
}

size_t Reactor::dispatch(size_t n) {
  size_t ran = 0;
  for (size_t i = 0; i < n; ++i) {
    const Harvested& h = harvested_[i];
    if (h.user_data == 0) continue;  // a cancel's own completion
    Op* op = reinterpret_cast<Op*>(h.user_data & ~kLinkMask);
    RAFTD_ASSERT(op->state_ == Op::State::kSubmitted, "io: CQE for an op not in flight");
    op->on_cqe(h.res, h.flags, static_cast<unsigned>(h.user_data & kLinkMask));
    ++ran;
  }
  return ran;
}

size_t Reactor::run_deferred() {
  // Only the ops deferred before this point: a callback that defers again (e.g. restarts
  // during shutdown) is handled next turn, so this cannot loop forever.
  Op* op = deferred_.head;
  deferred_ = {};
  size_t ran = 0;
  while (op != nullptr) {
    Op* next = op->queue_next_;
    op->queue_next_ = nullptr;
    op->state_ = Op::State::kIdle;
    unlink_active(*op);
    op->on_abort(op->deferred_res_);
    ++ran;
    op = next;
  }
  return ran;
}

void Reactor::run_turn_end_hooks() {
  // Index loop: a hook may add hooks (they run from the next turn on) or remove hooks (their
  // function is cleared and the entry erased below).
  const size_t n = hooks_.size();
  for (size_t i = 0; i < n && i < hooks_.size(); ++i) {
    if (hooks_[i].fn) hooks_[i].fn();
  }
  std::erase_if(hooks_, [](const Hook& h) { return !h.fn; });
}

Reactor::HookId Reactor::add_turn_end_hook(std::function<void()> hook) {
  assert_owner_thread();
  RAFTD_ASSERT(static_cast<bool>(hook), "io: empty turn-end hook");
  const HookId id = next_hook_id_++;
  hooks_.push_back(Hook{id, std::move(hook)});
  return id;
}

void Reactor::remove_turn_end_hook(HookId id) {
  assert_owner_thread();
  for (auto it = hooks_.begin(); it != hooks_.end(); ++it) {
    if (it->id != id) continue;
    if (in_turn_) {
      it->fn = nullptr;  // erased later; hooks_ may be iterated right now
    } else {
      hooks_.erase(it);
    }
    return;
  }
}

// ---------------------------------------------------------------- cross-thread

bool Reactor::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(post_mu_);
    if (post_closed_ || posted_.size() >= options_.post_queue_max) return false;
    posted_.push_back(std::move(fn));
    posted_count_.store(posted_.size(), std::memory_order_release);
  }
  wake();
  return true;
}

void Reactor::wake() {
  const uint64_t one = 1;
  // Can only fail if the counter would overflow (2^64 - 2 unread wake-ups): ignore.
  (void)!::write(event_fd_, &one, sizeof one);
}

size_t Reactor::run_posted() {
  if (posted_count_.load(std::memory_order_acquire) == 0) return 0;
  {
    std::lock_guard<std::mutex> lock(post_mu_);
    for (auto& fn : posted_) posted_local_.push_back(std::move(fn));
    posted_.clear();
    posted_count_.store(0, std::memory_order_release);
  }
  size_t ran = 0;
  for (auto& fn : posted_local_) {
    if (fn) fn();
    ++ran;
  }
  posted_local_.clear();
  stats_.posted += ran;
  return ran;
}

// ---------------------------------------------------------------- recv buffers

std::string_view Reactor::recv_buffer(uint16_t bid, size_t len) const {
  RAFTD_ASSERT(bid < options_.recv_buffer_count && len <= options_.recv_buffer_bytes,
               "io: provided buffer id or length out of range");
  return {buf_pool_ + size_t{bid} * options_.recv_buffer_bytes, len};
}

void Reactor::return_recv_buffer(uint16_t bid) {
  io_uring_buf_ring_add(buf_ring_, buf_pool_ + size_t{bid} * options_.recv_buffer_bytes,
                        options_.recv_buffer_bytes, bid,
                        io_uring_buf_ring_mask(options_.recv_buffer_count), 0);
  io_uring_buf_ring_advance(buf_ring_, 1);
  --bufs_out_;
}

// ---------------------------------------------------------------- shutdown

void Reactor::shutdown() {
  if (shut_down_) return;
  assert_owner_thread();
  RAFTD_ASSERT(!in_turn_, "io: shutdown() called from inside a callback");
  shutting_down_ = true;
  std::deque<std::function<void()>> dropped;
  {
    std::lock_guard<std::mutex> lock(post_mu_);
    post_closed_ = true;
    dropped.swap(posted_);
    posted_count_.store(0, std::memory_order_release);
  }
  dropped.clear();  // outside the lock: destructors of captured state may post
  // Ops still waiting for SQEs never reached the kernel: they end here, with -ECANCELED.
  while (Op* op = unqueued_.head) {
    unqueued_.head = op->queue_next_;
    op->cancel_requested_ = true;
    defer_final(*op, -ECANCELED);
  }
  unqueued_ = {};
  drain_for_shutdown();
  shut_down_ = true;
}

void Reactor::drain_for_shutdown() {
  for (Op* op = active_head_; op != nullptr; op = op->active_next_) op->cancel_requested_ = true;
  const TimePoint give_up = now() + kShutdownDrainMax;
  TimePoint next_cancel = now();
  while (active_count_ > 0 && now() < give_up) {
    if (now() >= next_cancel) {
      // One SQE cancels every request on the ring (IORING_ASYNC_CANCEL_ANY, Linux 5.19).
      io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
      if (sqe == nullptr) {
        (void)io_uring_submit(ring_.get());
        sqe = io_uring_get_sqe(ring_.get());
      }
      if (sqe != nullptr) {
        io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
        io_uring_sqe_set_data64(sqe, 0);
      }
      next_cancel = now() + kShutdownCancelEvery;
    }
    run_once(kShutdownTurnWait);
  }
  if (active_count_ == 0) return;
  // Only a device that never answers gets here. io_uring_queue_exit() below makes the kernel
  // cancel and wait for them itself; their owners get no callback.
  log::error("io: {} operations did not finish within {} s of shutdown", active_count_,
             kShutdownDrainMax.count());
  while (Op* op = active_head_) {
    op->state_ = Op::State::kIdle;
    unlink_active(*op);
  }
}

}  // namespace raftd::io
