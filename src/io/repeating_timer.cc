// RepeatingTimer: a TimerOp re-armed from its own callback at absolute deadlines.
#include <cerrno>

#include "raftd/io/reactor.h"

namespace raftd::io {

RepeatingTimer::RepeatingTimer(Reactor& reactor, Duration period, std::function<void()> fn)
    : reactor_(reactor), period_(period), fn_(std::move(fn)) {
  RAFTD_ASSERT(period_ > Duration::zero(), "io: RepeatingTimer period must be positive");
  op_.set_callback([this](int32_t res) { on_fired(res); });
}

void RepeatingTimer::start() {
  running_ = true;
  if (!op_.active()) {
    reactor_.start_timer(op_, period_);
    return;
  }
  // Still armed: either already running (nothing to do) or a stop() whose cancellation has not
  // completed yet; then on_fired() re-arms when the cancelled run reports.
  if (op_.cancel_requested()) restart_after_cancel_ = true;
}

void RepeatingTimer::stop() {
  running_ = false;
  restart_after_cancel_ = false;
  reactor_.cancel(op_);
}

void RepeatingTimer::on_fired(int32_t res) {
  if (res < 0) {
    // Cancelled (stop(), or the reactor shutting down) or failed: the timer ends, unless
    // start() came after stop() while the cancellation was in flight.
    const bool restart = res == -ECANCELED && restart_after_cancel_ && running_;
    restart_after_cancel_ = false;
    if (!restart) {
      running_ = false;
      return;
    }
    reactor_.start_timer(op_, period_);
    return;
  }
  if (running_ && fn_) fn_();
  if (!running_ || op_.active()) return;  // fn_ stopped it (or restarted it itself)
  TimePoint next = TimePoint(std::chrono::nanoseconds(op_.deadline_ns())) + period_;
  const TimePoint now = Reactor::now();
  if (next <= now) {  // late (a slow turn): skip missed ticks instead of firing a burst
    next += ((now - next) / period_ + 1) * period_;
  }
  reactor_.start_timer_at(op_, next);
}

}  // namespace raftd::io
