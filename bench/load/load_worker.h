// LoadWorker: one thread of raftd-load. It owns an io_uring reactor and a set of keep-alive
// connections, sends requests rendered by a RequestTemplate on them (several outstanding per
// connection when pipelining), reads the responses with a ResponseReader, and records each
// latency in its own LatencyHistogram; the main thread merges the workers' results at the end.
//
// Phases: connect (every connection tries once; a connection that fails retries every
// kReconnectDelay), load (until the duration ends, the request quota is used up, or stop is
// requested), drain (no new requests; waits up to the request timeout for those in flight,
// which then count as timeouts), done.
//
// Two ways to load (LoadConfig::rate):
//  - closed loop (rate 0): each connection keeps `depth` requests outstanding; a request's
//    latency runs from when it was rendered (in the turn that sends it) to its response.
//  - open loop (rate > 0): requests are due at fixed intervals from the start, whatever the
//    server does. A due request goes to a connection with fewer than `depth` outstanding, or
//    waits in a FIFO backlog until one frees up; its latency runs from when it was DUE, so time
//    spent waiting for a connection (the server falling behind) is counted, not omitted
//    (coordinated omission, Gil Tene).
//
// Errors never stop a run; they are counted by kind (LoadCounters). A connection that errs,
// times out, or is closed by the server is dropped and reopened; its outstanding requests are
// counted as failed (closed loop re-fills it once reopened).
//
// Threading: construct on any thread, then run() on the thread that owns it; request_stop() is
// safe from any thread (an atomic the worker polls every kTick).
#pragma once

#include <netinet/in.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "histogram.h"
#include "raftd/base/status.h"
#include "raftd/io/reactor.h"
#include "request_template.h"
#include "response_reader.h"

namespace raftd::bench {

struct Endpoint {
  std::string host_port;  // "127.0.0.1:8080": the Host header
  sockaddr_in addr{};
};

// Outstanding requests per connection: beyond this, pipelining only fills socket buffers.
inline constexpr unsigned kDepthMax = 1024;
// Connections one run may open (each costs a socket and its buffers).
inline constexpr unsigned kConnectionsMax = 65536;
// Open loop: requests waiting for a connection. Past it the target is hopelessly behind; further
// due requests are counted as backlog_full errors rather than queued without bound.
inline constexpr std::size_t kBacklogMax = 1u << 20;
// Housekeeping period: timeouts, the end of the run and stop requests are checked this often.
inline constexpr std::chrono::milliseconds kTick{5};
// Wait before reopening a connection that failed (no busy loop against a dead target).
inline constexpr std::chrono::milliseconds kReconnectDelay{100};

struct LoadConfig {
  std::vector<Endpoint> endpoints;
  unsigned threads = 1;
  unsigned connections = 16;  // over all threads
  unsigned depth = 1;         // outstanding requests per connection
  double rate = 0;            // requests/s over all threads; 0: closed loop
  double duration_s = 10;     // ignored when requests > 0
  uint64_t requests = 0;      // total to send; 0: run for duration_s
  uint32_t timeout_ms = 5000;
  uint32_t connect_timeout_ms = 2000;
  std::vector<int> ok_statuses;  // besides 2xx, statuses that count as success (404 for reads)
  uint64_t seed = 1;
};

struct LoadCounters {
  uint64_t sent = 0;              // requests written to a connection
  uint64_t responses = 0;         // responses received, any status
  uint64_t ok = 0;                // 2xx and LoadConfig::ok_statuses
  uint64_t connect_errors = 0;    // connect(2) failed (refused, unreachable, ...)
  uint64_t connect_timeouts = 0;  // connect took longer than connect_timeout_ms
  uint64_t timeouts = 0;          // requests without a response within timeout_ms
  uint64_t io_errors = 0;         // requests lost to a reset or closed connection or a failed send
  uint64_t parse_errors = 0;      // requests lost to a response that could not be framed
  uint64_t backlog_full = 0;      // open loop: due requests dropped past kBacklogMax
  uint64_t unsent = 0;            // open loop: due requests still waiting at the end of the drain
  uint64_t reconnects = 0;
  std::array<uint64_t, 600> status{};  // responses by status code (100..599)
  uint64_t status_other = 0;           // codes outside 100..599

  void merge(const LoadCounters& o);
  uint64_t errors() const {
    return (responses - ok) + connect_errors + connect_timeouts + timeouts + io_errors +
           parse_errors + backlog_full + unsent;
  }
};

class LoadWorker {
 public:
  // `endpoint_of` lists, for each connection of this worker, its index in config.endpoints.
  // `rate` and `requests` are this worker's share; `rate_offset_ns` shifts its schedule so that
  // the workers' requests interleave evenly.
  LoadWorker(const LoadConfig& config, const RequestTemplate& tpl, unsigned index,
             std::vector<unsigned> endpoint_of, double rate, uint64_t requests,
             int64_t rate_offset_ns);
  ~LoadWorker();
  LoadWorker(const LoadWorker&) = delete;
  LoadWorker& operator=(const LoadWorker&) = delete;

  // Runs the whole load on the calling thread. Errors: the reactor could not be created.
  Status run();
  void request_stop() { stop_requested_.store(true, std::memory_order_relaxed); }

  const LatencyHistogram& histogram() const { return hist_; }
  const LoadCounters& counters() const { return counters_; }
  // Nanoseconds from the start of the load phase to the end of the drain.
  int64_t elapsed_ns() const { return end_ns_ - start_ns_; }

 private:
  class Conn;
  friend class Conn;
  enum class Phase : uint8_t { kConnect, kLoad, kDrain, kDone };
  enum class Loss : uint8_t { kNone, kTimeout, kIo, kParse };

  void on_tick();
  void start_load();
  void begin_drain();
  void finish();
  void check_drained();  // the drain ends when nothing is outstanding or waiting
  void on_rate_timer(int32_t res);
  void arm_rate_timer();
  void dispatch_due(int64_t intended_ns, int64_t now_ns);
  // A connection can take another request (connected, or a response arrived).
  void on_room(Conn& conn, int64_t now_ns);
  bool may_issue_closed() const;
  void issue(Conn& conn, int64_t start_ns, int64_t now_ns);
  void record_response(int status, int64_t latency_ns);
  void lose(uint64_t n, Loss why);
  void flush_dirty();

  const LoadConfig& config_;
  const RequestTemplate& tpl_;
  unsigned index_;
  std::vector<unsigned> endpoint_of_;
  double rate_;
  uint64_t quota_;  // 0: no quota
  int64_t rate_offset_ns_;
  int64_t timeout_ns_;
  int64_t connect_timeout_ns_;

  std::unique_ptr<io::Reactor> reactor_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<Conn*> dirty_;
  std::unique_ptr<io::RepeatingTimer> ticker_;
  std::unique_ptr<io::TimerOp> rate_timer_;
  std::deque<int64_t> backlog_;  // open loop: intended times of due requests with no connection
  std::size_t rr_ = 0;           // open loop: next connection to try
  uint64_t rng_;
  std::atomic<bool> stop_requested_{false};

  Phase phase_ = Phase::kConnect;
  int64_t connect_started_ns_ = 0;
  int64_t start_ns_ = 0;
  int64_t end_ns_ = 0;
  int64_t deadline_ns_ = 0;  // end of the load phase (duration mode)
  int64_t drain_deadline_ns_ = 0;
  int64_t interval_ns_ = 0;  // open loop: between two due requests of this worker
  int64_t next_due_ns_ = 0;
  uint64_t issued_ = 0;  // requests rendered (closed loop) or made due (open loop)
  uint64_t inflight_ = 0;

  LatencyHistogram hist_;
  LoadCounters counters_;
};

}  // namespace raftd::bench
