// Per-peer streams over the HTTP client and server; transport.h states the contract and
// doc/transport.md the handshake and the stream's life.
#include "raftd/transport/transport.h"

#include <algorithm>
#include <charconv>
#include <random>

#include "raftd/base/assert.h"
#include "raftd/base/log.h"

namespace raftd::transport {
namespace {

using io::Clock;
using io::TimePoint;
using std::chrono::milliseconds;

// The receiver's response body is lines of text: "accepted", an empty line per ping answered,
// and why the stream was refused or closed. The last non-empty line is kept for the log, cut
// at this length.
constexpr size_t kReasonBytesMax = 512;

std::optional<uint64_t> parse_u64(std::optional<std::string_view> s) {
  if (!s || s->empty()) return std::nullopt;
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
  if (ec != std::errc() || end != s->data() + s->size()) return std::nullopt;
  return v;
}

uint64_t random_u64() {
  std::random_device rd;
  uint64_t v = (uint64_t(rd()) << 32) ^ rd();
  return v == 0 ? 1 : v;
}

}  // namespace

// ---- per-peer outbound state ----

namespace {

// Capacity a peer's queue and encoded bytes keep once drained. A burst (thousands of groups
// electing at once after their creation or a restart) can grow them to tens of MB, which would
// otherwise stay resident for the process's life: beyond these, a drained buffer is released.
// A busy turn's worth stays, so steady traffic does not reallocate.
constexpr size_t kQueueCapacityKept = 1024;       // messages (sizeof(raft::Message) each)
constexpr size_t kOutCapacityKept = 1024 * 1024;  // bytes

void clear_and_shrink(std::vector<raft::Message>& queue) {
  queue.clear();
  if (queue.capacity() > kQueueCapacityKept) std::vector<raft::Message>().swap(queue);
}

void clear_and_shrink(std::string& out) {
  out.clear();
  if (out.capacity() > kOutCapacityKept) std::string().swap(out);
}

}  // namespace

struct Transport::OutPeer {
  enum class State { kIdle, kConnecting, kStreaming };

  Peer peer;
  State state = State::kIdle;  // kIdle: waiting for retry_at
  uint64_t gen = 0;            // attempt number; callbacks of older attempts are ignored
  http::RequestId req = 0;
  bool attempted = false;
  bool removed = false;
  bool dirty = false;
  std::vector<raft::Message> queue;
  uint64_t queue_bytes = 0;  // encoded size of `queue`
  std::string out;           // encoded, not yet handed to the client
  size_t out_pos = 0;
  uint64_t out_messages = 0;  // messages in `out` not yet wholly handed
  TimePoint retry_at;
  TimePoint attempt_started;
  TimePoint last_ping;
  TimePoint last_heard;  // the receiver's last response bytes
  uint32_t backoff_ms = 0;
  std::optional<bool> reported;  // last reachability reported
  int refused_status = 0;
  std::optional<uint64_t> refused_cluster;  // the peer's Raftd-Cluster in its refusal
  std::string reason;  // the last non-empty line of the receiver's response (bounded)
  std::string line;    // the response line being received (bounded)

  uint64_t pending_bytes() const { return queue_bytes + (out.size() - out_pos); }
};

// ---- per-inbound-stream state, owned by its exchange ----

class Transport::InStream final : public http::ExchangeContext {
 public:
  InStream(Transport& t, http::Exchange& ex, NodeId peer, uint64_t incarnation)
      : t_(t),
        ex_(ex),
        peer_(peer),
        incarnation_(incarnation),
        decoder_(peer, t.options_.self, t.options_.frame_bytes_max_inbound) {}
  ~InStream() override { t_.on_stream_gone(*this); }

  Transport& t_;
  http::Exchange& ex_;
  NodeId peer_;
  uint64_t incarnation_;
  Decoder decoder_;
  bool dead_ = false;  // closed by us; later bytes are dropped
};

class Transport::StreamHandler final : public http::Handler {
 public:
  explicit StreamHandler(Transport& t) : t_(t) {}
  void on_headers(http::Exchange& ex) override { t_.on_stream_headers(ex); }
  http::Flow on_body(http::Exchange& ex, std::string_view chunk) override {
    return t_.on_stream_body(ex, chunk);
  }
  void on_end(http::Exchange& ex) override {
    if (auto* s = static_cast<InStream*>(ex.context())) {
      t_.close_inbound(ex, *s, "the sender ended the stream");
    }
  }
  void on_aborted(http::Exchange& ex) override {
    if (auto* s = static_cast<InStream*>(ex.context())) s->dead_ = true;
  }

 private:
  Transport& t_;
};

// ---- construction ----

Transport::Transport(io::Reactor& reactor, const TransportOptions& options,
                     TransportCallbacks callbacks)
    : reactor_(reactor),
      options_(options),
      callbacks_(std::move(callbacks)),
      handler_(std::make_unique<StreamHandler>(*this)) {
  RAFTD_ASSERT(options_.self != raft::kNoNode, "transport: self node id is 0");
  RAFTD_ASSERT(callbacks_.on_messages != nullptr, "transport: on_messages is required");
  RAFTD_ASSERT(options_.backoff_min_ms > 0 && options_.backoff_min_ms <= options_.backoff_max_ms,
               "transport: backoff_min_ms must be in (0, backoff_max_ms]");
  RAFTD_ASSERT(options_.queue_bytes_max > 0, "transport: queue_bytes_max is 0");
  options_.frame_bytes_max_inbound = std::min(options_.frame_bytes_max_inbound, kFrameBytesMax);
  if (options_.incarnation == 0) options_.incarnation = random_u64();
  timer_ = std::make_unique<io::RepeatingTimer>(reactor_, milliseconds(kTimerPeriodMs),
                                                [this] { on_timer(); });
  timer_->start();
  hook_ = reactor_.add_turn_end_hook([this] { on_turn_end(); });
  client_ = std::make_unique<http::Client>(reactor_, options_.client);
}

Transport::~Transport() {
  if (!closing_) close();
}

http::Handler& Transport::handler() { return *handler_; }

void Transport::adjust_server_options(http::ServerOptions& options) {
  options.body_bytes_max = UINT64_MAX;
  options.body_rate_window_ms = 0;
}

// ---- peers ----

void Transport::set_peers(const std::vector<Peer>& peers) {
  if (closing_) return;
  std::unordered_map<NodeId, const Peer*> wanted;
  for (const Peer& p : peers) {
    if (p.id != options_.self && p.id != raft::kNoNode) wanted[p.id] = &p;
  }
  for (auto it = peers_.begin(); it != peers_.end();) {
    auto w = wanted.find(it->first);
    if (w == wanted.end() || !(*w->second == it->second->peer)) {
      end_stream(*it->second);
      it = peers_.erase(it);
    } else {
      wanted.erase(w);
      ++it;
    }
  }
  for (const auto& [id, peer] : wanted) {
    auto p = std::make_shared<OutPeer>();
    p->peer = *peer;
    p->backoff_ms = options_.backoff_min_ms;
    peers_[id] = p;
    connect(p);
  }
}

// The peer is gone (removed, readdressed, or the transport closes): its queue is dropped and a
// running request is made to end (its source fails at the next pull).
void Transport::end_stream(OutPeer& p) {
  p.removed = true;
  drop_queue(p);
  ++p.gen;
  if (p.state != OutPeer::State::kIdle) client_->resume_source(p.req);
  p.state = OutPeer::State::kIdle;
}

void Transport::drop_queue(OutPeer& p) {
  stats_.drops_stream_failed += p.queue.size() + p.out_messages;
  clear_and_shrink(p.queue);
  p.queue_bytes = 0;
  clear_and_shrink(p.out);
  p.out_pos = 0;
  p.out_messages = 0;
}

// ---- sending ----

void Transport::send(raft::Message&& m) {
  auto it = closing_ ? peers_.end() : peers_.find(m.to);
  if (it == peers_.end()) {
    ++stats_.drops_no_peer;
    return;
  }
  OutPeer& p = *it->second;
  const uint64_t bytes = encoded_message_bytes(m);
  if (bytes + 4 > kFrameBytesMax || m.entries.size() > kEntriesPerMessageMax) {
    ++stats_.drops_too_large;
    return;
  }
  if (p.pending_bytes() + bytes > options_.queue_bytes_max) {
    ++stats_.drops_queue_full;
    return;
  }
  p.queue.push_back(std::move(m));
  p.queue_bytes += bytes;
  if (!p.dirty) {
    p.dirty = true;
    dirty_.push_back(it->second);
  }
}

void Transport::flush() {
  std::vector<std::shared_ptr<OutPeer>> dirty;
  dirty.swap(dirty_);
  for (const auto& p : dirty) {
    p->dirty = false;
    // Until the stream is accepted, messages wait (bounded) in the queue.
    if (p->removed || p->state != OutPeer::State::kStreaming) continue;
    encode_queue(*p);
    client_->resume_source(p->req);
  }
}

void Transport::on_turn_end() {
  if (!dirty_.empty()) flush();
}

void Transport::encode_queue(OutPeer& p) {
  if (p.queue.empty()) return;
  if (p.out_pos > 0) {
    p.out.erase(0, p.out_pos);
    p.out_pos = 0;
  }
  // Compact heartbeats follow the other messages of an encoded batch (codec.h). A kQuiesce must
  // not overtake a heartbeat queued before it: the heartbeat would wake the follower the notice
  // has just put to sleep, which then times out and campaigns against its quiesced leader. So
  // the queue is encoded in pieces, each ending before a kQuiesce.
  const std::span<const raft::Message> q(p.queue);
  size_t start = 0;
  for (size_t i = 1; i <= q.size(); ++i) {
    if (i < q.size() && q[i].type != raft::MessageType::kQuiesce) continue;
    EncodeStats st = encode_batch(q.subspan(start, i - start), p.out, options_.frame_bytes_target,
                                  options_.coalesce_heartbeats);
    stats_.frames_sent += st.frames;
    stats_.messages_sent += st.messages;
    stats_.heartbeats_sent += st.heartbeats;
    stats_.heartbeats_coalesced += st.coalesced;
    stats_.drops_too_large += st.too_large;
    p.out_messages += st.messages;
    start = i;
  }
  clear_and_shrink(p.queue);
  p.queue_bytes = 0;
}

// The HTTP client asks for more of the stream's body.
Status Transport::pull(const std::shared_ptr<OutPeer>& p, uint64_t gen, std::string& out,
                       size_t max) {
  if (closing_ || p->removed || gen != p->gen) {
    return Status(Code::kCancelled, "peer stream abandoned");
  }
  if (p->state != OutPeer::State::kStreaming) return Status::ok();  // not accepted yet
  if (p->out_pos == p->out.size()) encode_queue(*p);
  const size_t n = std::min(max, p->out.size() - p->out_pos);
  if (n == 0) return Status::ok();
  out.append(p->out, p->out_pos, n);
  p->out_pos += n;
  if (p->out_pos == p->out.size()) {
    clear_and_shrink(p->out);
    p->out_pos = 0;
    p->out_messages = 0;
  }
  stats_.bytes_sent += n;
  return Status::ok();
}

// ---- the outbound stream's life ----

void Transport::connect(const std::shared_ptr<OutPeer>& p) {
  ++p->gen;
  ++stats_.connects;
  if (p->attempted) ++stats_.reconnects;
  p->attempted = true;
  p->state = OutPeer::State::kConnecting;
  p->attempt_started = Clock::now();
  p->refused_status = 0;
  p->refused_cluster.reset();
  p->reason.clear();
  p->line.clear();
  const uint64_t gen = p->gen;

  http::ClientRequest req;
  req.method = "POST";
  req.target = options_.path;
  req.headers = {
      {kHeaderCluster, std::to_string(options_.cluster_id)},
      {kHeaderFrom, std::to_string(options_.self.value())},
      {kHeaderTo, std::to_string(p->peer.id.value())},
      {kHeaderIncarnation, std::to_string(options_.incarnation)},
      {kHeaderWireVersion, std::to_string(kWireVersion)},
  };
  req.source = [this, p, gen](std::string& out, size_t max, bool& done) {
    done = false;
    return pull(p, gen, out, max);
  };
  http::ResponseCallbacks cb;
  cb.on_head = [this, p, gen](const http::ResponseHead& head) { on_head(p, gen, head); };
  cb.on_body = [this, p, gen](std::string_view chunk) {
    if (gen == p->gen) on_answer(*p, chunk);
    return http::Flow::kContinue;
  };
  cb.on_done = [this, p, gen](Status st) { on_done(p, gen, st); };
  p->req = client_->request(p->peer.host, p->peer.port, std::move(req), std::move(cb));
}

void Transport::on_head(const std::shared_ptr<OutPeer>& p, uint64_t gen,
                        const http::ResponseHead& head) {
  if (closing_ || p->removed || gen != p->gen) return;
  if (head.status != 200) {
    p->refused_status = head.status;
    if (head.status == 403) p->refused_cluster = parse_u64(head.header(kHeaderCluster));
    ++stats_.refused_by_peer;
    return;  // on_done follows once the answer is read; it logs and schedules the retry
  }
  p->state = OutPeer::State::kStreaming;
  p->backoff_ms = options_.backoff_min_ms;
  p->last_ping = p->last_heard = Clock::now();
  set_reachable(*p, true);
  if (p->removed || gen != p->gen) return;  // the callback changed the peers
  encode_queue(*p);
  client_->resume_source(p->req);
}

// Response bytes: ping answers (empty lines) prove the receiver alive; other lines say why.
void Transport::on_answer(OutPeer& p, std::string_view chunk) {
  p.last_heard = Clock::now();
  for (char c : chunk) {
    if (c == '\n') {
      if (!p.line.empty()) p.reason.swap(p.line);
      p.line.clear();
    } else if (c != '\r' && p.line.size() < kReasonBytesMax) {
      p.line.push_back(c);
    }
  }
}

void Transport::on_done(const std::shared_ptr<OutPeer>& p, uint64_t gen, const Status& st) {
  if (closing_ || p->removed || gen != p->gen) return;
  const std::string reason = p->line.empty() ? p->reason : p->line;
  std::string why;
  std::optional<Refusal> refusal;
  if (p->refused_status != 0) {
    why = "refused with " + std::to_string(p->refused_status) + ": " + reason;
    refusal.emplace();
    refusal->status = p->refused_status;
    refusal->reason = reason;
    // Only a cluster id that differs from ours is a cluster mismatch: a peer that names ours
    // refused for another reason.
    if (p->refused_cluster && *p->refused_cluster != options_.cluster_id) {
      refusal->kind = Refusal::Kind::kOtherCluster;
      refusal->peer_cluster_id = *p->refused_cluster;
    }
  } else if (st.is_ok()) {
    why = "ended by the peer: " + reason;
  } else {
    why = "failed: " + st.to_string();
  }
  const NodeId peer = p->peer.id;
  stream_failed(*p, why);
  if (refusal && !closing_ && callbacks_.on_refused) callbacks_.on_refused(peer, *refusal);
}

void Transport::stream_failed(OutPeer& p, const std::string& why) {
  const bool was_live = p.state != OutPeer::State::kIdle;
  ++p.gen;  // later callbacks of this attempt are ignored; its source fails when pulled
  if (was_live) client_->resume_source(p.req);
  drop_queue(p);
  p.state = OutPeer::State::kIdle;
  // Exponential backoff with jitter: wait in [backoff/2, backoff], then double it.
  thread_local std::minstd_rand rng(static_cast<uint32_t>(random_u64()));
  const uint32_t half = p.backoff_ms / 2;
  const uint32_t delay_ms = half + static_cast<uint32_t>(rng() % (p.backoff_ms - half + 1));
  p.retry_at = Clock::now() + milliseconds(delay_ms);
  p.backoff_ms = std::min(options_.backoff_max_ms, p.backoff_ms * 2);
  // One warning per outage; the retries of a peer known to be down are debug lines.
  if (p.reported == false) {
    log::debug("transport: stream to node {} at {}:{} {}; retry in {} ms", p.peer.id.value(),
               p.peer.host, p.peer.port, why, delay_ms);
  } else {
    log::warn("transport: stream to node {} at {}:{} {}; retry in {} ms", p.peer.id.value(),
              p.peer.host, p.peer.port, why, delay_ms);
  }
  set_reachable(p, false);
}

void Transport::set_reachable(OutPeer& p, bool reachable) {
  if (p.reported == reachable) return;
  p.reported = reachable;
  if (reachable) log::info("transport: stream to node {} accepted", p.peer.id.value());
  if (callbacks_.on_peer_state) callbacks_.on_peer_state(p.peer.id, reachable);
}

void Transport::on_timer() {
  if (closing_) return;
  const TimePoint now = Clock::now();
  // Copies: callbacks (set_reachable) may change the peers.
  std::vector<std::shared_ptr<OutPeer>> peers;
  peers.reserve(peers_.size());
  for (const auto& [id, p] : peers_) peers.push_back(p);
  for (const auto& p : peers) {
    if (p->removed) continue;
    switch (p->state) {
      case OutPeer::State::kIdle:
        if (now >= p->retry_at) connect(p);
        break;
      case OutPeer::State::kConnecting:
        if (now - p->attempt_started > milliseconds(options_.handshake_timeout_ms)) {
          stream_failed(
              *p, "not answered within " + std::to_string(options_.handshake_timeout_ms) + " ms");
        }
        break;
      case OutPeer::State::kStreaming:
        if (now - p->last_heard > milliseconds(options_.peer_timeout_ms)) {
          stream_failed(
              *p, "no answer to pings for " + std::to_string(options_.peer_timeout_ms) + " ms");
        } else if (now - p->last_ping >= milliseconds(options_.keepalive_ms)) {
          // Frames are appended whole, so a ping may follow whatever waits in `out`.
          encode_ping(p->out);
          ++stats_.frames_sent;
          p->last_ping = now;
          client_->resume_source(p->req);
        }
        break;
    }
  }
}

// ---- inbound streams ----

void Transport::on_stream_headers(http::Exchange& ex) {
  const http::Request& rq = ex.request();
  auto refuse = [&](int status, const std::string& why) {
    ++stats_.inbound_refused;
    log::warn("transport: refused a peer stream ({} {}, from {}): {}", rq.method, rq.target,
              rq.header(kHeaderFrom).value_or("?"), why);
    ex.respond(status, why + "\n");
  };
  if (closing_) return refuse(503, "transport closing");
  if (rq.method != "POST" || rq.target != options_.path) {
    return refuse(404, "no peer stream at " + rq.method + " " + rq.target);
  }
  const auto cluster = parse_u64(rq.header(kHeaderCluster));
  const auto from = parse_u64(rq.header(kHeaderFrom));
  const auto to = parse_u64(rq.header(kHeaderTo));
  const auto incarnation = parse_u64(rq.header(kHeaderIncarnation));
  const auto version = parse_u64(rq.header(kHeaderWireVersion));
  if (!cluster || !from || !to || !incarnation || !version) {
    return refuse(400, "handshake headers missing or not decimal numbers");
  }
  if (*cluster != options_.cluster_id) {
    // The refusal names this node's cluster, so the sender can tell a cluster mismatch from
    // other refusals (and report both ids).
    ex.add_header(kHeaderCluster, std::to_string(options_.cluster_id));
    return refuse(403, "cluster " + std::to_string(*cluster) + " is not this node's cluster " +
                           std::to_string(options_.cluster_id));
  }
  if (NodeId(*to) != options_.self) {
    return refuse(421, "this is node " + std::to_string(options_.self.value()) + ", not node " +
                           std::to_string(*to));
  }
  if (*version != kWireVersion) {
    return refuse(400, "wire version " + std::to_string(*version) +
                           " not supported (this node: " + std::to_string(kWireVersion) + ")");
  }
  const NodeId peer(*from);
  const bool known = peer != raft::kNoNode && peer != options_.self &&
                     (callbacks_.known_peer ? callbacks_.known_peer(peer) : peers_.contains(peer));
  if (!known) return refuse(403, "node " + std::to_string(*from) + " is not a known peer");

  ++stats_.inbound_streams;
  auto [it, first] = inbound_.try_emplace(peer);
  InboundPeer& ib = it->second;
  if (ib.stream) close_inbound(ib.stream->ex_, *ib.stream, "replaced by a newer stream");
  const bool restarted = !first && ib.incarnation != *incarnation;
  auto s = std::make_unique<InStream>(*this, ex, peer, *incarnation);
  ib.stream = s.get();
  ib.incarnation = *incarnation;
  ex.set_context(std::move(s));
  ex.set_status(200);
  ex.add_header("Content-Type", "text/plain");
  (void)ex.write_body("accepted\n");
  if (!first && callbacks_.on_peer_reconnected) callbacks_.on_peer_reconnected(peer, restarted);
}

http::Flow Transport::on_stream_body(http::Exchange& ex, std::string_view chunk) {
  auto* s = static_cast<InStream*>(ex.context());
  if (s == nullptr || s->dead_ || closing_) return http::Flow::kContinue;
  stats_.bytes_received += chunk.size();
  std::vector<raft::Message> batch;
  batch.swap(received_);
  batch.clear();
  const uint64_t frames_before = s->decoder_.stats().frames;
  const uint64_t pings_before = s->decoder_.stats().pings;
  Status st = s->decoder_.feed(chunk, batch);
  stats_.frames_received += s->decoder_.stats().frames - frames_before;
  // One empty line answers all the pings of this piece: the sender only needs to hear from us.
  if (s->decoder_.stats().pings != pings_before) (void)ex.write_body("\n");
  // Keep the messages that pass validation, in order, up to the first one that does not.
  const ValidationContext vc{s->peer_, options_.self, callbacks_.hosts_group};
  size_t kept = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    Status v = validate(batch[i], vc);
    if (v.code() == Code::kNotFound) {
      ++stats_.drops_unknown_group;
      continue;
    }
    if (!v) {
      st = v;
      break;
    }
    if (kept != i) batch[kept] = std::move(batch[i]);
    ++kept;
  }
  batch.resize(kept);
  const NodeId peer = s->peer_;
  if (!st) {
    ++stats_.inbound_bad;
    log::warn("transport: closing the stream from node {}: {}", peer.value(), st.to_string());
    close_inbound(ex, *s, st.to_string());
  }
  if (!batch.empty()) {
    stats_.messages_received += batch.size();
    callbacks_.on_messages(std::span(batch));
  }
  batch.clear();
  received_.swap(batch);
  return http::Flow::kContinue;
}

void Transport::close_inbound(http::Exchange& ex, InStream& s, const std::string& why) {
  if (s.dead_) return;
  s.dead_ = true;
  auto it = inbound_.find(s.peer_);
  if (it != inbound_.end() && it->second.stream == &s) it->second.stream = nullptr;
  (void)ex.write_body("closed: " + why + "\n");
  ex.finish();
}

void Transport::on_stream_gone(InStream& s) {
  auto it = inbound_.find(s.peer_);
  if (it != inbound_.end() && it->second.stream == &s) it->second.stream = nullptr;
}

// ---- status and shutdown ----

std::optional<PeerStatus> Transport::peer_status(NodeId peer) const {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return std::nullopt;
  const OutPeer& p = *it->second;
  PeerStatus s;
  s.connected = p.state == OutPeer::State::kStreaming;
  auto in = inbound_.find(peer);
  s.inbound = in != inbound_.end() && in->second.stream != nullptr;
  s.queued_bytes = p.pending_bytes();
  s.queued_messages = p.queue.size() + p.out_messages;
  s.backoff_ms = p.backoff_ms;
  s.reserved_bytes = p.queue.capacity() * sizeof(raft::Message) + p.out.capacity();
  return s;
}

void Transport::close() {
  if (closing_) return;
  for (auto& [id, p] : peers_) end_stream(*p);
  closing_ = true;
  peers_.clear();
  dirty_.clear();
  client_->close();
  timer_->stop();
  if (hook_ != 0) reactor_.remove_turn_end_hook(hook_);
  hook_ = 0;
  std::vector<InStream*> streams;
  for (auto& [id, ib] : inbound_) {
    if (ib.stream) streams.push_back(ib.stream);
  }
  for (InStream* s : streams) close_inbound(s->ex_, *s, "the node is closing its transport");
}

bool Transport::closed() const { return closing_ && client_->closed() && !timer_->active(); }

}  // namespace raftd::transport
