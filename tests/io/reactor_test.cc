// The reactor itself: the software submission queue, cross-thread posts, turn-end hooks and
// shutdown with operations outstanding.
#include "raftd/io/reactor.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "io_test_util.h"
#include "raftd/io/socket.h"

namespace raftd::io {
namespace {

using std::chrono::milliseconds;
using testing::make_reactor;
using testing::run_until;
using testing::small_options;

struct ShutdownGuard {
  Reactor& reactor;
  ~ShutdownGuard() { reactor.shutdown(); }
};

ReactorOptions tiny_ring() {
  ReactorOptions o = small_options();
  o.sq_entries = 4;
  return o;
}

TEST_CASE("io::Reactor: a full SQ queues ops in software and every op completes") {
  auto r = make_reactor(tiny_ring());
  REQUIRE(r->sq_entries() == 4);
  char dir[] = "/tmp/raftd-io-sq-XXXXXX";
  REQUIRE(::mkdtemp(dir) != nullptr);
  const std::string path = std::string(dir) + "/f";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  REQUIRE(fd >= 0);

  constexpr int kTimers = 100;
  constexpr int kChains = 20;  // two SQEs each: a chain must never be split across submissions
  constexpr size_t kChunk = 512;
  std::vector<std::unique_ptr<TimerOp>> timers;
  std::vector<std::unique_ptr<WriteSyncOp>> chains;
  std::vector<std::string> chunks;
  int timers_fired = 0, chains_ok = 0;
  for (int i = 0; i < kTimers; ++i) {
    timers.push_back(std::make_unique<TimerOp>([&](int32_t res) { timers_fired += res == 0; }));
  }
  for (int i = 0; i < kChains; ++i) {
    chunks.emplace_back(kChunk, static_cast<char>('a' + i));
    chains.push_back(std::make_unique<WriteSyncOp>(
        [&](int32_t res) { chains_ok += res == static_cast<int32_t>(kChunk); }));
  }
  ShutdownGuard guard{*r};
  for (int i = 0; i < kTimers; ++i) r->start_timer(*timers[i], milliseconds(1));
  for (int i = 0; i < kChains; ++i) {
    r->write_fdatasync(*chains[i], fd, chunks[i].data(), kChunk, i * kChunk);
  }
  CHECK(r->stats().sq_full_queued >= kTimers + kChains - 4);
  REQUIRE(run_until(*r, [&] { return timers_fired + chains_ok == kTimers + kChains; }));
  CHECK(r->active_ops() == 0);
  std::string contents(kChains * kChunk, '\0');
  REQUIRE(::pread(fd, contents.data(), contents.size(), 0) ==
          static_cast<ssize_t>(contents.size()));
  for (int i = 0; i < kChains; ++i) CHECK(contents.substr(i * kChunk, kChunk) == chunks[i]);
  ::close(fd);
  ::unlink(path.c_str());
  ::rmdir(dir);
}

TEST_CASE("io::Reactor: cancelling an op still in the software queue ends it without the kernel") {
  auto r = make_reactor(tiny_ring());
  std::vector<std::unique_ptr<TimerOp>> held;
  std::vector<int32_t> results(6, 1);
  for (int i = 0; i < 6; ++i) {
    held.push_back(std::make_unique<TimerOp>([&, i](int32_t res) { results[i] = res; }));
  }
  ShutdownGuard guard{*r};
  for (int i = 0; i < 6; ++i) r->start_timer(*held[i], std::chrono::hours(1));
  CHECK(r->stats().sq_full_queued >= 2);  // 4 SQEs, 6 timers
  r->cancel(*held[5]);
  CHECK(held[5]->active());  // no callback inside cancel()
  r->run_once(milliseconds(0));
  CHECK_FALSE(held[5]->active());
  CHECK(results[5] == -ECANCELED);
  for (int i = 0; i < 5; ++i) r->cancel(*held[i]);
  REQUIRE(run_until(*r, [&] { return r->active_ops() == 0; }));
  for (int i = 0; i < 5; ++i) CHECK(results[i] == -ECANCELED);
}

TEST_CASE("io::Reactor: post() from other threads runs everything on the reactor thread") {
  auto r = make_reactor();
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2000;
  const std::thread::id reactor_thread = std::this_thread::get_id();
  int count = 0;  // touched only on the reactor thread
  std::atomic<int> wrong_thread{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        auto fn = [&] {
          if (std::this_thread::get_id() != reactor_thread) ++wrong_thread;
          if (++count == kThreads * kPerThread) r->stop();
        };
        while (!r->post(fn)) std::this_thread::yield();  // bounded queue: back off
      }
    });
  }
  r->run();  // returns once the last posted function called stop()
  for (auto& t : threads) t.join();
  CHECK(count == kThreads * kPerThread);
  CHECK(wrong_thread.load() == 0);
  CHECK(r->stats().posted == kThreads * kPerThread);
}

TEST_CASE("io::Reactor: post() is bounded and wake() ends a blocking wait") {
  ReactorOptions o = small_options();
  o.post_queue_max = 3;
  auto r = make_reactor(o);
  int ran = 0;
  for (int i = 0; i < 3; ++i) CHECK(r->post([&] { ++ran; }));
  CHECK_FALSE(r->post([&] { ++ran; }));  // full: refused, caller applies backpressure
  r->run_once(milliseconds(0));
  CHECK(ran == 3);
  CHECK(r->post([&] { ++ran; }));
  // A thread wakes the reactor out of a long wait.
  std::thread waker([&] {
    std::this_thread::sleep_for(milliseconds(50));
    r->wake();
  });
  const TimePoint before = Reactor::now();
  r->run_once(milliseconds(0));  // runs the 4th post
  CHECK(ran == 4);
  r->run_once(std::chrono::seconds(60));
  CHECK(Reactor::now() - before < std::chrono::seconds(50));
  waker.join();
}

TEST_CASE("io::Reactor: turn-end hooks run after the turn's callbacks and can be removed") {
  auto r = make_reactor();
  std::vector<std::string> events;
  TimerOp t([&](int32_t) { events.push_back("timer"); });
  const auto id = r->add_turn_end_hook([&] { events.push_back("hook"); });
  ShutdownGuard guard{*r};
  r->start_timer(t, milliseconds(1));
  REQUIRE(run_until(*r, [&] { return !t.active(); }));
  // The timer's callback is followed by the hook in the same turn.
  REQUIRE(events.size() >= 2);
  CHECK(events[events.size() - 2] == "timer");
  CHECK(events.back() == "hook");
  r->remove_turn_end_hook(id);
  const size_t n = events.size();
  r->run_once(milliseconds(0));
  CHECK(events.size() == n);
}

TEST_CASE("io::Reactor: shutdown with ops outstanding ends each with exactly one final callback") {
  // Ops outlive the reactor here: the destructor's shutdown must end them all.
  AcceptOp accept;
  RecvOp recv;
  TimerOp timer, restarted;
  std::vector<std::unique_ptr<TimerOp>> queued;
  int32_t accept_res = 1, recv_res = 1, timer_res = 1, restarted_res = 1;
  int finals = 0, queued_cancelled = 0;
  auto posted_state = std::make_shared<int>(0);
  int sv[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  auto l = listen_tcp("127.0.0.1", 0);
  REQUIRE(l.is_ok());
  {
    auto r = make_reactor(tiny_ring());
    accept.set_callback([&](int32_t res) {
      accept_res = res;
      finals += !accept.active();
    });
    recv.set_callback([&](int32_t res, std::string_view) {
      recv_res = res;
      finals += !recv.active();
    });
    restarted.set_callback([&](int32_t res) { restarted_res = res; });
    timer.set_callback([&](int32_t res) {
      timer_res = res;
      ++finals;
      r->start_timer(restarted, milliseconds(1));  // refused during shutdown: -ECANCELED
    });
    r->accept(accept, l.value().fd);
    r->recv(recv, sv[0]);
    r->start_timer(timer, std::chrono::hours(1));
    for (int i = 0; i < 8; ++i) {  // more than the SQ holds: some stay in the software queue
      queued.push_back(
          std::make_unique<TimerOp>([&](int32_t res) { queued_cancelled += res == -ECANCELED; }));
      r->start_timer(*queued.back(), std::chrono::hours(1));
    }
    r->run_once(milliseconds(0));
    CHECK(r->post([posted_state] { ++*posted_state; }));
    CHECK(posted_state.use_count() == 2);
  }  // ~Reactor: shutdown
  CHECK(accept_res == -ECANCELED);
  CHECK(recv_res == -ECANCELED);
  CHECK(timer_res == -ECANCELED);
  CHECK(restarted_res == -ECANCELED);
  CHECK(finals == 3);
  CHECK(queued_cancelled == 8);
  CHECK_FALSE(accept.active());
  CHECK_FALSE(restarted.active());
  // The posted function was dropped, not run, and its captures were released (no leak).
  CHECK(*posted_state == 0);
  CHECK(posted_state.use_count() == 1);
  close_fd(sv[0]);
  close_fd(sv[1]);
  close_fd(l.value().fd);
}

}  // namespace
}  // namespace raftd::io
