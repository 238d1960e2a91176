#include <doctest/doctest.h>

#include <cerrno>
#include <vector>

#include "io_test_util.h"
#include "raftd/io/reactor.h"

namespace raftd::io {
namespace {

using std::chrono::milliseconds;
using testing::make_reactor;
using testing::run_until;

struct ShutdownGuard {
  Reactor& reactor;
  ~ShutdownGuard() { reactor.shutdown(); }
};

TEST_CASE("io::TimerOp: timers fire in deadline order and cancelled timers never fire") {
  auto r = make_reactor();
  constexpr int kTimers = 6;
  std::vector<int> fired;
  std::vector<int32_t> results(kTimers, 1);
  std::vector<std::unique_ptr<TimerOp>> timers;
  for (int i = 0; i < kTimers; ++i) {
    timers.push_back(std::make_unique<TimerOp>([&, i](int32_t res) {
      results[i] = res;
      if (res == 0) fired.push_back(i);
    }));
  }
  ShutdownGuard guard{*r};
  const TimePoint base = Reactor::now();
  // Started in reverse deadline order: timer i is due at base + 20ms * (i + 1).
  for (int i = kTimers - 1; i >= 0; --i)
    r->start_timer_at(*timers[i], base + milliseconds(20 * (i + 1)));
  r->cancel(*timers[1]);
  r->cancel(*timers[4]);
  REQUIRE(run_until(*r, [&] {
    for (auto& t : timers) {
      if (t->active()) return false;
    }
    return true;
  }));
  CHECK(fired == std::vector<int>{0, 2, 3, 5});
  CHECK(results[1] == -ECANCELED);
  CHECK(results[4] == -ECANCELED);
  // A timer never fires early.
  CHECK(Reactor::now() >= base + milliseconds(20 * kTimers));
}

TEST_CASE("io::TimerOp: a timer can be restarted from its own callback") {
  auto r = make_reactor();
  int ticks = 0;
  TimerOp t;
  t.set_callback([&](int32_t res) {
    CHECK(res == 0);
    CHECK_FALSE(t.active());  // final callback: restarting is allowed
    if (++ticks < 3) r->start_timer(t, milliseconds(1));
  });
  ShutdownGuard guard{*r};
  r->start_timer(t, milliseconds(1));
  REQUIRE(run_until(*r, [&] { return ticks == 3 && !t.active(); }));
}

TEST_CASE("io::RepeatingTimer: ticks until stopped and not after") {
  auto r = make_reactor();
  int ticks = 0;
  RepeatingTimer timer(*r, milliseconds(5), [&] { ++ticks; });
  ShutdownGuard guard{*r};
  timer.start();
  REQUIRE(run_until(*r, [&] { return ticks >= 4; }));
  timer.stop();
  const int at_stop = ticks;
  REQUIRE(run_until(*r, [&] { return !timer.active(); }));
  r->run_once(milliseconds(30));
  CHECK(ticks == at_stop);
  CHECK_FALSE(timer.running());
  // stop() then start() before the cancellation completed: the timer keeps going.
  timer.start();
  timer.stop();
  timer.start();
  REQUIRE(run_until(*r, [&] { return ticks >= at_stop + 2; }));
  CHECK(timer.running());
}

}  // namespace
}  // namespace raftd::io
