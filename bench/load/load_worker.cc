#include "load_worker.h"

#include <algorithm>
#include <cmath>

#include "raftd/base/assert.h"
#include "raftd/io/socket.h"

namespace raftd::bench {
namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(io::Clock::now().time_since_epoch())
      .count();
}

io::TimePoint time_point_of(int64_t ns) {
  return io::TimePoint(std::chrono::duration_cast<io::Duration>(std::chrono::nanoseconds(ns)));
}

// splitmix64: a fast generator good enough to pick keys and groups.
uint64_t next_random(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// SQ entries for n connections: a recv and a send each, plus timers; a power of two in range.
uint32_t sq_entries_for(std::size_t conns) {
  uint32_t n = 256;
  while (n < 2 * conns + 16 && n < io::Reactor::kSqEntriesMax) n *= 2;
  return n;
}

}  // namespace

void LoadCounters::merge(const LoadCounters& o) {
  sent += o.sent;
  responses += o.responses;
  ok += o.ok;
  connect_errors += o.connect_errors;
  connect_timeouts += o.connect_timeouts;
  timeouts += o.timeouts;
  io_errors += o.io_errors;
  parse_errors += o.parse_errors;
  backlog_full += o.backlog_full;
  unsent += o.unsent;
  reconnects += o.reconnects;
  for (std::size_t i = 0; i < status.size(); ++i) status[i] += o.status[i];
  status_other += o.status_other;
}

// One keep-alive connection: connect, then a multishot recv and at most one send at a time.
// Requests rendered while a send is running wait in next_ and go out in the following send.
class LoadWorker::Conn {
 public:
  enum class State : uint8_t { kIdle, kConnecting, kOpen, kClosing };
  struct Slot {
    int64_t start_ns;  // latency origin: due time (open loop) or render time (closed loop)
    int64_t sent_ns;   // when it was rendered for sending: the timeout origin
  };

  Conn(LoadWorker& w, const Endpoint& ep) : w_(w), ep_(ep), slots_(w.config_.depth) {
    connect_.set_callback([this](int32_t res) { on_connected(res); });
    recv_.set_callback([this](int32_t res, std::string_view data) { on_recv(res, data); });
    send_.set_callback([this](int32_t res) { on_sent(res); });
    retry_.set_callback([this](int32_t res) {
      if (res == 0 && state_ == State::kIdle) open();
    });
  }

  void open() {
    if (w_.phase_ == Phase::kDone) return;
    auto fd = io::make_tcp_socket();
    if (!fd) {
      ++w_.counters_.connect_errors;
      attempted_ = true;
      retry_later();
      return;
    }
    fd_ = fd.value();
    state_ = State::kConnecting;
    connect_timed_out_ = false;
    connect_started_ns_ = now_ns();
    w_.reactor_->connect(connect_, fd_, reinterpret_cast<const sockaddr*>(&ep_.addr),
                         sizeof ep_.addr);
  }

  // Drops the connection; `why` says how its outstanding requests are counted. It is reopened
  // once every op has ended (after kReconnectDelay when something went wrong).
  void close(Loss why) {
    if (state_ == State::kIdle || state_ == State::kClosing) return;
    if (count_ > 0) w_.lose(count_, why == Loss::kNone ? Loss::kIo : why);
    w_.inflight_ -= count_;
    count_ = 0;
    head_ = 0;
    state_ = State::kClosing;
    retry_delay_ = why != Loss::kNone;
    w_.reactor_->cancel(connect_);
    w_.reactor_->cancel(recv_);
    w_.reactor_->cancel(send_);
    maybe_closed();
    w_.check_drained();
  }

  // Renders one request and queues it for the next send (at the end of this turn).
  void issue(int64_t start_ns, int64_t now) {
    RAFTD_ASSERT(state_ == State::kOpen && count_ < slots_.size(), "load: issue without room");
    const uint64_t r = next_random(w_.rng_);
    const uint64_t key = r % w_.tpl_.keyspace();
    const uint64_t group = (r >> 32) % w_.tpl_.group_count();
    w_.tpl_.render(next_, key, group, ep_.host_port);
    slots_[(head_ + count_) % slots_.size()] = Slot{start_ns, now};
    ++count_;
    ++w_.inflight_;
    ++w_.counters_.sent;
    if (!dirty_ && !send_.active()) {
      dirty_ = true;
      w_.dirty_.push_back(this);
    }
  }

  void flush() {
    dirty_ = false;
    if (state_ != State::kOpen || send_.active() || next_.empty()) return;
    out_.swap(next_);
    next_.clear();
    w_.reactor_->send(send_, fd_, out_.data(), out_.size());
  }

  // The timeout check (from the worker's tick).
  void check(int64_t now) {
    if (state_ == State::kConnecting && !connect_timed_out_ &&
        now - connect_started_ns_ > w_.connect_timeout_ns_) {
      connect_timed_out_ = true;
      w_.reactor_->cancel(connect_);
    } else if (state_ == State::kOpen && count_ > 0 &&
               now - slots_[head_].sent_ns > w_.timeout_ns_) {
      close(Loss::kTimeout);
    }
  }

  // Ends every op for good (the worker is done): nothing reopens.
  void shut() {
    w_.reactor_->cancel(retry_);
    if (state_ == State::kOpen || state_ == State::kConnecting) {
      state_ = State::kClosing;
      retry_delay_ = false;
      w_.reactor_->cancel(connect_);
      w_.reactor_->cancel(recv_);
      w_.reactor_->cancel(send_);
    }
  }
  void close_fd_now() {
    io::close_fd(fd_);
    fd_ = -1;
  }

  bool has_room() const { return state_ == State::kOpen && count_ < slots_.size(); }
  bool attempted() const { return attempted_; }
  std::size_t outstanding() const { return count_; }

 private:
  void retry_later() {
    if (w_.phase_ == Phase::kDone) return;
    w_.reactor_->start_timer(retry_, kReconnectDelay);
  }

  void maybe_closed() {
    if (state_ != State::kClosing || connect_.active() || recv_.active() || send_.active()) return;
    io::close_fd(fd_);
    fd_ = -1;
    state_ = State::kIdle;
    reader_ = ResponseReader();
    pending_.clear();
    next_.clear();
    if (w_.phase_ == Phase::kDone) return;
    ++w_.counters_.reconnects;
    if (retry_delay_) {
      retry_later();
    } else {
      open();
    }
  }

  void on_connected(int32_t res) {
    attempted_ = true;
    if (state_ != State::kConnecting) {
      maybe_closed();
      return;
    }
    if (res < 0) {
      if (connect_timed_out_) {
        ++w_.counters_.connect_timeouts;
      } else {
        ++w_.counters_.connect_errors;
      }
      io::close_fd(fd_);
      fd_ = -1;
      state_ = State::kIdle;
      retry_later();
      return;
    }
    state_ = State::kOpen;
    w_.reactor_->recv(recv_, fd_);
    w_.on_room(*this, now_ns());
  }

  void on_sent(int32_t res) {
    if (state_ != State::kOpen) {
      maybe_closed();
      return;
    }
    if (res < 0) {
      close(Loss::kIo);
      return;
    }
    flush();
  }

  void on_recv(int32_t res, std::string_view data) {
    if (state_ != State::kOpen) {
      if (!recv_.active()) maybe_closed();
      return;
    }
    if (res > 0) {
      consume(data);
      return;
    }
    if (res == 0 && reader_.on_eof() && count_ > 0) respond(now_ns(), /*more=*/false);
    // EOF or error: a server closing an idle connection is no error; losing requests is.
    close(count_ > 0 || reader_.mid_response() || res < 0 ? Loss::kIo : Loss::kNone);
  }

  void consume(std::string_view data) {
    const int64_t now = now_ns();
    std::string_view in = data;
    if (!pending_.empty()) {
      pending_.append(data);
      in = pending_;
    }
    std::size_t off = 0;
    while (off < in.size()) {
      const ResponseReader::Result r = reader_.feed(in.substr(off));
      off += r.consumed;
      if (r.event == ResponseReader::Event::kNeedMore) break;
      if (r.event == ResponseReader::Event::kError || count_ == 0) {
        close(Loss::kParse);  // unframeable, or a response to nothing we sent
        return;
      }
      if (reader_.close_after()) {
        respond(now, /*more=*/false);
        close(Loss::kNone);  // requests pipelined behind it are lost (counted by close)
        return;
      }
      respond(now, /*more=*/true);
      if (state_ != State::kOpen) return;
    }
    if (pending_.empty()) {
      pending_.assign(in.substr(off));
    } else {
      pending_.erase(0, off);
    }
  }

  // A response ended. `more`: the connection stays open and may take the next request (not
  // when the server closes it after this response: a request sent now would be lost).
  void respond(int64_t now, bool more) {
    const Slot s = slots_[head_];
    head_ = (head_ + 1) % slots_.size();
    --count_;
    --w_.inflight_;
    w_.record_response(reader_.status(), now - s.start_ns);
    if (more && state_ == State::kOpen) w_.on_room(*this, now);
  }

  LoadWorker& w_;
  const Endpoint& ep_;
  int fd_ = -1;
  State state_ = State::kIdle;
  bool attempted_ = false;
  bool connect_timed_out_ = false;
  bool retry_delay_ = false;
  bool dirty_ = false;
  int64_t connect_started_ns_ = 0;
  io::ConnectOp connect_;
  io::RecvOp recv_;
  io::SendOp send_;
  io::TimerOp retry_;
  ResponseReader reader_;
  std::string pending_;      // bytes of a response head or chunk line not complete yet
  std::string out_;          // being sent
  std::string next_;         // rendered while out_ is being sent
  std::vector<Slot> slots_;  // ring of outstanding requests, oldest at head_
  std::size_t head_ = 0;
  std::size_t count_ = 0;
};

LoadWorker::LoadWorker(const LoadConfig& config, const RequestTemplate& tpl, unsigned index,
                       std::vector<unsigned> endpoint_of, double rate, uint64_t requests,
                       int64_t rate_offset_ns)
    : config_(config),
      tpl_(tpl),
      index_(index),
      endpoint_of_(std::move(endpoint_of)),
      rate_(rate),
      quota_(requests),
      rate_offset_ns_(rate_offset_ns),
      timeout_ns_(int64_t{config.timeout_ms} * 1000000),
      connect_timeout_ns_(int64_t{config.connect_timeout_ms} * 1000000),
      rng_(config.seed * 0x2545F4914F6CDD1Dull + index + 1) {}

LoadWorker::~LoadWorker() = default;

Status LoadWorker::run() {
  io::ReactorOptions ro;
  ro.sq_entries = sq_entries_for(endpoint_of_.size());
  auto reactor = io::Reactor::create(ro);
  if (!reactor) return reactor.status();
  reactor_ = std::move(reactor.value());
  const io::Reactor::HookId hook = reactor_->add_turn_end_hook([this] { flush_dirty(); });
  for (unsigned e : endpoint_of_) {
    conns_.push_back(std::make_unique<Conn>(*this, config_.endpoints[e]));
  }
  rate_timer_ = std::make_unique<io::TimerOp>([this](int32_t res) { on_rate_timer(res); });
  ticker_ = std::make_unique<io::RepeatingTimer>(*reactor_, kTick, [this] { on_tick(); });
  ticker_->start();
  connect_started_ns_ = now_ns();
  for (auto& c : conns_) c->open();
  if (conns_.empty()) start_load();

  reactor_->run();

  ticker_->stop();
  reactor_->cancel(*rate_timer_);
  for (auto& c : conns_) c->shut();
  reactor_->shutdown();  // every op delivers its final callback
  for (auto& c : conns_) c->close_fd_now();
  reactor_->remove_turn_end_hook(hook);
  conns_.clear();
  ticker_.reset();
  rate_timer_.reset();
  reactor_.reset();
  return Status::ok();
}

void LoadWorker::on_tick() {
  const int64_t now = now_ns();
  const bool stop = stop_requested_.load(std::memory_order_relaxed);
  switch (phase_) {
    case Phase::kConnect: {
      const bool all =
          std::all_of(conns_.begin(), conns_.end(), [](const auto& c) { return c->attempted(); });
      if (all || stop || now - connect_started_ns_ > connect_timeout_ns_) start_load();
      break;
    }
    case Phase::kLoad:
      if (stop || (quota_ == 0 && now >= deadline_ns_)) begin_drain();
      break;
    case Phase::kDrain:
      if (now >= drain_deadline_ns_) {
        counters_.unsent += backlog_.size();
        backlog_.clear();
        for (auto& c : conns_) {
          if (c->outstanding() > 0) c->close(Loss::kTimeout);
        }
        finish();
        return;
      }
      break;
    case Phase::kDone: return;
  }
  for (auto& c : conns_) c->check(now);
}

void LoadWorker::start_load() {
  phase_ = Phase::kLoad;
  start_ns_ = now_ns();
  deadline_ns_ = start_ns_ + static_cast<int64_t>(config_.duration_s * 1e9);
  if (rate_ > 0) {
    interval_ns_ = std::max<int64_t>(1, static_cast<int64_t>(std::llround(1e9 / rate_)));
    next_due_ns_ = start_ns_ + rate_offset_ns_;
    arm_rate_timer();
    return;
  }
  const int64_t now = now_ns();
  for (auto& c : conns_) on_room(*c, now);
}

void LoadWorker::begin_drain() {
  if (phase_ != Phase::kLoad) return;
  phase_ = Phase::kDrain;
  drain_deadline_ns_ = now_ns() + timeout_ns_;
  reactor_->cancel(*rate_timer_);
  if (inflight_ == 0 && backlog_.empty()) finish();
}

void LoadWorker::finish() {
  if (phase_ == Phase::kDone) return;
  phase_ = Phase::kDone;
  end_ns_ = now_ns();
  reactor_->stop();
}

void LoadWorker::arm_rate_timer() {
  reactor_->start_timer_at(*rate_timer_, time_point_of(next_due_ns_));
}

void LoadWorker::on_rate_timer(int32_t res) {
  if (res != 0 || phase_ != Phase::kLoad) return;
  const int64_t now = now_ns();
  while (next_due_ns_ <= now) {
    if ((quota_ > 0 && issued_ >= quota_) || (quota_ == 0 && next_due_ns_ >= deadline_ns_)) {
      begin_drain();
      return;
    }
    ++issued_;
    dispatch_due(next_due_ns_, now);
    next_due_ns_ += interval_ns_;
  }
  arm_rate_timer();
}

void LoadWorker::dispatch_due(int64_t intended_ns, int64_t now) {
  // With a backlog, every connection is full: FIFO order keeps the oldest requests first.
  if (backlog_.empty()) {
    for (std::size_t i = 0; i < conns_.size(); ++i) {
      Conn& c = *conns_[rr_];
      rr_ = (rr_ + 1) % conns_.size();
      if (c.has_room()) {
        c.issue(intended_ns, now);
        return;
      }
    }
  }
  if (backlog_.size() >= kBacklogMax) {
    ++counters_.backlog_full;
    return;
  }
  backlog_.push_back(intended_ns);
}

bool LoadWorker::may_issue_closed() const {
  if (phase_ != Phase::kLoad) return false;
  return quota_ == 0 || issued_ < quota_;
}

void LoadWorker::on_room(Conn& conn, int64_t now) {
  if (rate_ > 0) {
    while (!backlog_.empty() && conn.has_room()) {
      conn.issue(backlog_.front(), now);
      backlog_.pop_front();
    }
  } else {
    while (conn.has_room() && may_issue_closed()) {
      ++issued_;
      conn.issue(now, now);
    }
  }
  check_drained();
  if (rate_ == 0 && phase_ == Phase::kLoad && quota_ > 0 && issued_ >= quota_) begin_drain();
}

void LoadWorker::check_drained() {
  if (phase_ == Phase::kDrain && inflight_ == 0 && backlog_.empty()) finish();
}

void LoadWorker::record_response(int status, int64_t latency_ns) {
  ++counters_.responses;
  hist_.record(static_cast<uint64_t>(std::max<int64_t>(latency_ns, 0)));
  bool ok = status >= 200 && status < 300;
  if (!ok) {
    ok = std::find(config_.ok_statuses.begin(), config_.ok_statuses.end(), status) !=
         config_.ok_statuses.end();
  }
  if (ok) ++counters_.ok;
  if (status >= 100 && status < 600) {
    ++counters_.status[static_cast<std::size_t>(status)];
  } else {
    ++counters_.status_other;
  }
}

void LoadWorker::lose(uint64_t n, Loss why) {
  switch (why) {
    case Loss::kTimeout: counters_.timeouts += n; break;
    case Loss::kParse: counters_.parse_errors += n; break;
    case Loss::kNone:
    case Loss::kIo: counters_.io_errors += n; break;
  }
}

void LoadWorker::flush_dirty() {
  for (Conn* c : dirty_) c->flush();
  dirty_.clear();
}

}  // namespace raftd::bench
