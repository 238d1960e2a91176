// Transports between nodes in one process, each node with its own reactor, HTTP server and
// Transport on 127.0.0.1; the test thread turns every reactor in round robin.
#include "raftd/transport/transport.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../http/http_test_util.h"
#include "raftd/http/client.h"
#include "raftd/http/server.h"
#include "raftd/io/reactor.h"
#include "raftd/io/socket.h"

namespace raftd::transport {
namespace {

using namespace std::chrono_literals;
using raft::Entry;
using raft::EntryType;
using raft::Message;
using raft::MessageType;

constexpr uint64_t kCluster = 77;
constexpr auto kWaitMax = 30s;

using http::testing::make_reactor;  // skips the test (exit 77) without io_uring

// One raftd node's transport side: reactor, peer server, Transport, and what it observed.
struct Node {
  explicit Node(NodeId node_id, uint64_t cluster = kCluster, TransportOptions extra = {})
      : id(node_id) {
    reactor = make_reactor();
    TransportOptions o = extra;
    o.cluster_id = cluster;
    o.self = id;
    TransportCallbacks cb;
    cb.on_messages = [this](std::span<Message> ms) {
      for (Message& m : ms) got.push_back(std::move(m));
    };
    cb.hosts_group = [this](GroupId g) { return g.value() < hosted_below; };
    cb.on_peer_state = [this](NodeId p, bool up) { states.emplace_back(p, up); };
    cb.on_peer_reconnected = [this](NodeId p, bool restarted) {
      reconnects.emplace_back(p, restarted);
    };
    cb.on_refused = [this](NodeId p, const Refusal& r) { refusals.emplace_back(p, r); };
    transport = std::make_unique<Transport>(*reactor, o, std::move(cb));
    start_server(0);
  }
  ~Node() {
    if (server) server->close();
    transport->close();
    for (int i = 0; i < 2000 && !((!server || server->closed()) && transport->closed()); ++i) {
      reactor->run_once(1ms);
    }
    server.reset();
    transport.reset();
    reactor.reset();
  }
  void start_server(uint16_t at) {
    http::ServerOptions so;
    so.host = "127.0.0.1";
    so.port = at;
    Transport::adjust_server_options(so);
    auto s = http::Server::start(*reactor, transport->handler(), so);
    REQUIRE_MESSAGE(s.is_ok(), s.status().to_string());
    server = std::move(s).value();
    port = server->port();
  }
  Peer peer() const { return Peer{id, "127.0.0.1", port}; }
  bool state_is(NodeId p, bool up) const {
    for (auto it = states.rbegin(); it != states.rend(); ++it) {
      if (it->first == p) return it->second == up;
    }
    return false;
  }

  NodeId id;
  uint16_t port = 0;
  uint64_t hosted_below = UINT64_MAX;
  std::unique_ptr<io::Reactor> reactor;
  std::unique_ptr<Transport> transport;
  std::unique_ptr<http::Server> server;
  std::vector<Message> got;
  std::vector<std::pair<NodeId, bool>> states;
  std::vector<std::pair<NodeId, bool>> reconnects;
  std::vector<std::pair<NodeId, Refusal>> refusals;
};

// Turns every reactor until `pred` holds or the wait limit passes.
bool run_until(const std::vector<io::Reactor*>& rs, const std::function<bool()>& pred,
               std::chrono::milliseconds limit = kWaitMax) {
  const auto give_up = io::Reactor::now() + limit;
  while (!pred() && io::Reactor::now() < give_up) {
    for (io::Reactor* r : rs) r->run_once(1ms);
  }
  return pred();
}

void run_for(const std::vector<io::Reactor*>& rs, std::chrono::milliseconds d) {
  (void)run_until(
      rs, [] { return false; }, d);
}

std::vector<io::Reactor*> reactors(std::initializer_list<Node*> nodes) {
  std::vector<io::Reactor*> v;
  for (Node* n : nodes) v.push_back(n->reactor.get());
  return v;
}

void connect_all(std::initializer_list<Node*> nodes) {
  std::vector<Peer> peers;
  for (Node* n : nodes) peers.push_back(n->peer());
  for (Node* n : nodes) n->transport->set_peers(peers);
}

Message msg(MessageType type, NodeId from, NodeId to, uint64_t group) {
  Message m;
  m.type = type;
  m.group = GroupId(group);
  m.from = from;
  m.to = to;
  m.term = Term(3);
  return m;
}

Message append(NodeId from, NodeId to, uint64_t group, uint64_t index, size_t bytes) {
  Message m = msg(MessageType::kAppend, from, to, group);
  m.index = LogIndex(index);
  m.log_term = Term(3);
  m.commit = LogIndex(index);
  m.entries.push_back(Entry{Term(3), LogIndex(index + 1), EntryType::kNormal,
                            std::string(bytes, static_cast<char>('a' + index % 26))});
  return m;
}

TEST_CASE("transport::Transport: messages of many groups flow between three nodes") {
  Node a(NodeId(1)), b(NodeId(2)), c(NodeId(3));
  auto rs = reactors({&a, &b, &c});
  connect_all({&a, &b, &c});
  REQUIRE(run_until(rs, [&] {
    return a.state_is(b.id, true) && a.state_is(c.id, true) && b.state_is(a.id, true);
  }));
  std::vector<Message> to_b;
  for (uint64_t g = 1; g <= 50; ++g) to_b.push_back(append(a.id, b.id, g, g * 10, 100 + g));
  Message vote = msg(MessageType::kVote, a.id, b.id, 7);
  vote.index = LogIndex(4);
  vote.log_term = Term(2);
  vote.transfer = true;
  to_b.push_back(vote);
  for (const Message& m : to_b) a.transport->send(Message(m));
  a.transport->send(append(a.id, c.id, 9, 1, 10));
  b.transport->send(msg(MessageType::kAppendResp, b.id, a.id, 9));
  REQUIRE(run_until(rs, [&] { return b.got.size() == to_b.size() && c.got.size() == 1; }));
  for (size_t i = 0; i < to_b.size(); ++i) CHECK(wire_equal(b.got[i], to_b[i]));
  REQUIRE(run_until(rs, [&] { return a.got.size() == 1; }));
  CHECK(a.got[0].type == MessageType::kAppendResp);
  // What is sent during a turn is handed to the HTTP client at the end of that very turn, not
  // when some later completion wakes the reactor.
  run_for(rs, 20ms);
  const uint64_t sent_before = a.transport->stats().bytes_sent;
  a.transport->send(msg(MessageType::kVote, a.id, b.id, 3));
  a.reactor->run_once(0ms);
  CHECK(a.transport->stats().bytes_sent > sent_before);
  CHECK(a.transport->stats().messages_sent == to_b.size() + 2);
  CHECK(b.transport->stats().messages_received == to_b.size());
  CHECK(a.transport->peer_status(b.id)->connected);
  CHECK(b.transport->peer_status(a.id)->inbound);
}

// A heartbeat of group g from `from` to `to`, with commit g and context 7g.
Message heartbeat(NodeId from, NodeId to, uint64_t g) {
  Message hb = msg(MessageType::kHeartbeat, from, to, g);
  hb.commit = LogIndex(g);
  hb.context = g * 7;
  return hb;
}

TEST_CASE("transport::Transport: the heartbeats of one turn to one peer go in one frame") {
  Node a(NodeId(1)), b(NodeId(2));
  auto rs = reactors({&a, &b});
  connect_all({&a, &b});
  REQUIRE(run_until(rs, [&] { return a.state_is(b.id, true); }));
  const uint64_t frames_before = a.transport->stats().frames_sent;
  const uint64_t received_before = b.transport->stats().frames_received;
  for (uint64_t g = 1; g <= 500; ++g) a.transport->send(heartbeat(a.id, b.id, g));
  a.transport->flush();
  CHECK(a.transport->stats().frames_sent == frames_before + 1);
  CHECK(a.transport->stats().heartbeats_sent == 500);
  CHECK(a.transport->stats().heartbeats_coalesced == 500);
  REQUIRE(run_until(rs, [&] { return b.got.size() == 500; }));
  CHECK(b.transport->stats().frames_received == received_before + 1);
  for (uint64_t g = 1; g <= 500; ++g) {
    const Message& m = b.got[g - 1];
    CHECK(m.type == MessageType::kHeartbeat);
    CHECK(m.group == GroupId(g));
    CHECK(m.commit == LogIndex(g));
    CHECK(m.context == g * 7);
    CHECK(m.from == a.id);
    CHECK(m.to == b.id);
  }
}

TEST_CASE("transport::Transport: with coalesce_heartbeats off, heartbeats go as full messages") {
  TransportOptions plain;
  plain.coalesce_heartbeats = false;
  Node a(NodeId(1), kCluster, plain), b(NodeId(2));
  auto rs = reactors({&a, &b});
  connect_all({&a, &b});
  REQUIRE(run_until(rs, [&] { return a.state_is(b.id, true) && b.state_is(a.id, true); }));
  const uint64_t bytes_before = a.transport->stats().bytes_sent;
  for (uint64_t g = 1; g <= 500; ++g) {
    a.transport->send(heartbeat(a.id, b.id, g));
    b.transport->send(msg(MessageType::kHeartbeatResp, b.id, a.id, g));
  }
  REQUIRE(run_until(rs, [&] { return b.got.size() == 500 && a.got.size() == 500; }));
  CHECK(a.transport->stats().heartbeats_sent == 500);
  CHECK(a.transport->stats().heartbeats_coalesced == 0);
  CHECK(b.transport->stats().heartbeats_coalesced == 500);  // b keeps the default
  // A full message is several times a tuple: 500 of them take far more than 500 tuples would.
  CHECK(a.transport->stats().bytes_sent - bytes_before > 500 * 10);
  for (uint64_t g = 1; g <= 500; ++g) {
    CHECK(b.got[g - 1].group == GroupId(g));
    CHECK(b.got[g - 1].context == g * 7);
    CHECK(a.got[g - 1].type == MessageType::kHeartbeatResp);
  }
}

TEST_CASE("transport::Transport: a peer's buffers are released once a burst has drained") {
  Node a(NodeId(1)), b(NodeId(2));
  auto rs = reactors({&a, &b});
  connect_all({&a, &b});
  REQUIRE(run_until(rs, [&] { return a.state_is(b.id, true); }));
  // A burst such as thousands of groups electing at once: 5,000 messages in one turn, 2.5 MB
  // once encoded.
  constexpr uint64_t kBurst = 5000;
  for (uint64_t g = 1; g <= kBurst; ++g) a.transport->send(append(a.id, b.id, g, 1, 500));
  const uint64_t peak = a.transport->peer_status(b.id)->reserved_bytes;
  CHECK(peak >= kBurst * sizeof(Message));
  REQUIRE(run_until(rs, [&] { return b.got.size() == kBurst; }));
  REQUIRE(run_until(rs, [&] { return a.transport->peer_status(b.id)->queued_bytes == 0; }));
  // Drained: what is kept is at most a busy turn's worth, far below the burst.
  const uint64_t kept = a.transport->peer_status(b.id)->reserved_bytes;
  CHECK(kept <= 1024 * sizeof(Message) + 1024 * 1024);
  CHECK(kept < peak / 2);
  // A small turn afterwards keeps what it uses (no release and regrowth per turn).
  for (uint64_t g = 1; g <= 10; ++g) a.transport->send(append(a.id, b.id, g, 2, 10));
  REQUIRE(run_until(rs, [&] { return b.got.size() == kBurst + 10; }));
  CHECK(a.transport->peer_status(b.id)->reserved_bytes >= 10 * sizeof(Message));
}

TEST_CASE("transport::Transport: a kQuiesce does not overtake a heartbeat queued before it") {
  // Compact heartbeats go after the other messages of a batch; a heartbeat arriving after the
  // quiesce notice would wake the follower the notice just put to sleep.
  Node a(NodeId(1)), b(NodeId(2));
  auto rs = reactors({&a, &b});
  connect_all({&a, &b});
  REQUIRE(run_until(rs, [&] { return a.state_is(b.id, true); }));
  Message q = msg(MessageType::kQuiesce, a.id, b.id, 1);
  q.index = LogIndex(5);
  q.log_term = Term(3);
  q.commit = LogIndex(5);
  Message hb = msg(MessageType::kHeartbeat, a.id, b.id, 1);
  hb.commit = LogIndex(5);
  a.transport->send(msg(MessageType::kHeartbeat, a.id, b.id, 2));
  a.transport->send(std::move(hb));
  a.transport->send(std::move(q));
  a.transport->send(msg(MessageType::kHeartbeat, a.id, b.id, 3));
  a.transport->flush();
  REQUIRE(run_until(rs, [&] { return b.got.size() == 4; }));
  std::vector<std::pair<MessageType, uint64_t>> order;
  for (const Message& m : b.got) order.emplace_back(m.type, m.group.value());
  const std::vector<std::pair<MessageType, uint64_t>> want = {{MessageType::kHeartbeat, 2},
                                                              {MessageType::kHeartbeat, 1},
                                                              {MessageType::kQuiesce, 1},
                                                              {MessageType::kHeartbeat, 3}};
  CHECK(order == want);
}

TEST_CASE(
    "transport::Transport: handshakes are refused for another cluster, an unknown node "
    "or the wrong receiver") {
  Node b(NodeId(2));
  SUBCASE("another cluster") {
    Node a(NodeId(1), kCluster + 1);
    auto rs = reactors({&a, &b});
    connect_all({&a, &b});
    REQUIRE(run_until(rs, [&] { return b.transport->stats().inbound_refused >= 2; }));
    CHECK(a.state_is(b.id, false));
    CHECK(a.transport->stats().refused_by_peer >= 1);
    CHECK(a.transport->stats().reconnects >= 1);
    // The refusal reaches the node as a cluster mismatch naming the receiver's cluster id.
    REQUIRE(!a.refusals.empty());
    CHECK(a.refusals[0].first == b.id);
    CHECK(a.refusals[0].second.kind == Refusal::Kind::kOtherCluster);
    CHECK(a.refusals[0].second.status == 403);
    CHECK(a.refusals[0].second.peer_cluster_id == kCluster);
    CHECK(a.refusals[0].second.reason.find("is not this node's cluster") != std::string::npos);
  }
  SUBCASE("unknown node") {
    Node a(NodeId(1));
    auto rs = reactors({&a, &b});
    a.transport->set_peers({a.peer(), b.peer()});
    b.transport->set_peers({b.peer()});  // b does not know node 1
    REQUIRE(run_until(rs, [&] { return b.transport->stats().inbound_refused >= 2; }));
    CHECK(a.state_is(b.id, false));
    CHECK(a.transport->stats().refused_by_peer >= 1);
    REQUIRE(!a.refusals.empty());  // a 403 of the same cluster is no cluster mismatch
    CHECK(a.refusals[0].second.kind == Refusal::Kind::kOther);
    CHECK(a.refusals[0].second.status == 403);
  }
  SUBCASE("wrong receiver") {
    Node a(NodeId(1));
    auto rs = reactors({&a, &b});
    b.transport->set_peers({a.peer(), b.peer()});
    a.transport->set_peers({Peer{NodeId(3), "127.0.0.1", b.port}});  // node 3 is not at b's address
    REQUIRE(run_until(rs, [&] { return b.transport->stats().inbound_refused >= 2; }));
    CHECK(a.state_is(NodeId(3), false));
    a.transport->send(msg(MessageType::kVote, a.id, NodeId(3), 1));
    run_for(rs, 100ms);
    CHECK(b.got.empty());
    REQUIRE(!a.refusals.empty());
    CHECK(a.refusals[0].first == NodeId(3));
    CHECK(a.refusals[0].second.kind == Refusal::Kind::kOther);
    CHECK(a.refusals[0].second.status == 421);
  }
  CHECK(b.transport->stats().inbound_streams == 0);
  CHECK(b.got.empty());
}

TEST_CASE("transport::Transport: reconnects after the receiver's server closes and reopens") {
  TransportOptions o;
  o.backoff_min_ms = 20;
  o.backoff_max_ms = 100;
  Node a(NodeId(1), kCluster, o), b(NodeId(2), kCluster, o);
  auto rs = reactors({&a, &b});
  connect_all({&a, &b});
  REQUIRE(run_until(rs, [&] { return a.state_is(b.id, true); }));
  a.transport->send(append(a.id, b.id, 1, 1, 10));
  REQUIRE(run_until(rs, [&] { return b.got.size() == 1; }));

  const uint16_t port = b.port;
  b.server->close();
  REQUIRE(run_until(rs, [&] { return b.server->closed(); }));
  b.server.reset();
  REQUIRE(run_until(rs, [&] { return a.state_is(b.id, false); }));
  const uint64_t connects = a.transport->stats().connects;
  run_for(rs, 300ms);
  CHECK(a.transport->stats().connects > connects + 1);  // retried with backoff meanwhile

  b.start_server(port);
  REQUIRE(run_until(rs, [&] { return a.state_is(b.id, true); }));
  a.transport->send(append(a.id, b.id, 1, 2, 10));
  REQUIRE(run_until(rs, [&] { return b.got.size() == 2; }));
  CHECK(b.got[1].index == LogIndex(2));
  // b saw node 1's stream come back; node 1 did not restart.
  REQUIRE(run_until(rs, [&] { return !b.reconnects.empty(); }));
  CHECK(b.reconnects.back() == std::make_pair(a.id, false));
}

TEST_CASE("transport::Transport: a restarted peer is reported as restarted") {
  Node b(NodeId(2));
  auto a = std::make_unique<Node>(NodeId(1));
  connect_all({a.get(), &b});
  REQUIRE(
      run_until(reactors({a.get(), &b}), [&] { return b.transport->peer_status(a->id)->inbound; }));
  const uint16_t a_port = a->port;
  a.reset();
  a = std::make_unique<Node>(NodeId(1));
  (void)a_port;
  a->transport->set_peers({a->peer(), b.peer()});
  auto rs = reactors({a.get(), &b});
  REQUIRE(run_until(rs, [&] { return !b.reconnects.empty(); }));
  CHECK(b.reconnects.back() == std::make_pair(NodeId(1), true));
  a->transport->send(msg(MessageType::kHeartbeatResp, a->id, b.id, 5));
  REQUIRE(run_until(rs, [&] { return b.got.size() == 1; }));
}

TEST_CASE("transport::Transport: a dead peer costs bounded memory and counts its drops") {
  // A port nothing listens on: bind, read the port, close.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const uint16_t dead_port = ntohs(addr.sin_port);
  ::close(fd);

  TransportOptions o;
  o.queue_bytes_max = 1 << 20;
  o.backoff_min_ms = 10;
  o.backoff_max_ms = 40;
  Node a(NodeId(1), kCluster, o);
  auto rs = reactors({&a});
  a.transport->set_peers({a.peer(), Peer{NodeId(2), "127.0.0.1", dead_port}});
  uint64_t max_queued = 0;
  for (int round = 0; round < 10; ++round) {
    for (uint64_t i = 0; i < 40; ++i) a.transport->send(append(a.id, NodeId(2), 1, i, 64 * 1024));
    max_queued = std::max(max_queued, a.transport->peer_status(NodeId(2))->queued_bytes);
    run_for(rs, 5ms);
  }
  CHECK(max_queued <= o.queue_bytes_max);
  CHECK(max_queued > o.queue_bytes_max / 2);
  const TransportStats& st = a.transport->stats();
  CHECK(st.drops_queue_full > 0);
  CHECK(st.drops_stream_failed > 0);
  CHECK(st.messages_sent == 0);
  CHECK(a.state_is(NodeId(2), false));
  CHECK(st.reconnects > 0);
}

// A receiver that accepts the stream and then never reads: the sender's queue stays bounded and
// the excess is dropped, however much raft tries to send.
class StalledReceiver final : public http::Handler {
 public:
  void on_headers(http::Exchange& ex) override { (void)ex.write_body("accepted\n"); }
  http::Flow on_body(http::Exchange& ex, std::string_view chunk) override {
    (void)ex;
    received += chunk.size();
    return http::Flow::kPause;  // and never resume
  }
  void on_end(http::Exchange& ex) override { ex.finish(); }
  uint64_t received = 0;
};

TEST_CASE("transport::Transport: a receiver that stops reading does not grow the sender") {
  TransportOptions o;
  o.queue_bytes_max = 1 << 20;
  Node a(NodeId(1), kCluster, o);
  auto slow_reactor = make_reactor();
  StalledReceiver handler;
  http::ServerOptions so;
  Transport::adjust_server_options(so);
  auto srv = http::Server::start(*slow_reactor, handler, so);
  REQUIRE(srv.is_ok());
  std::unique_ptr<http::Server> server = std::move(srv).value();
  std::vector<io::Reactor*> rs{a.reactor.get(), slow_reactor.get()};
  a.transport->set_peers({a.peer(), Peer{NodeId(2), "127.0.0.1", server->port()}});
  REQUIRE(run_until(rs, [&] { return a.state_is(NodeId(2), true); }));

  constexpr uint64_t kOffered = 128ull << 20;  // 128 times the queue bound
  uint64_t offered = 0;
  uint64_t max_queued = 0;
  const auto give_up = io::Reactor::now() + kWaitMax;
  while (offered < kOffered && io::Reactor::now() < give_up) {
    for (int i = 0; i < 8; ++i) {
      a.transport->send(append(a.id, NodeId(2), 1, offered, 64 * 1024));
      offered += 64 * 1024;
    }
    max_queued = std::max(max_queued, a.transport->peer_status(NodeId(2))->queued_bytes);
    for (io::Reactor* r : rs) r->run_once(0ms);
  }
  const TransportStats& st = a.transport->stats();
  CHECK(max_queued <= o.queue_bytes_max);
  CHECK(st.drops_queue_full > 0);
  // What left the queue is what the socket buffers and the receiver's bounded input took.
  CHECK(st.bytes_sent < 48ull << 20);
  CHECK(handler.received <= http::kPendingBytesMax + 1024 * 1024);
  server->close();
  run_until(
      rs, [&] { return server->closed(); }, 5s);
  server.reset();
  slow_reactor.reset();
}

// Hand-written streams into a node's transport: the raw bytes of a frame, after a valid
// handshake, through a plain HTTP client.
struct RawStream {
  RawStream(Node& target, NodeId from, std::string body) : node(target) {
    http::ClientRequest req;
    req.method = "POST";
    req.target = kStreamPathDefault;
    req.headers = {{kHeaderCluster, std::to_string(kCluster)},
                   {kHeaderFrom, std::to_string(from.value())},
                   {kHeaderTo, std::to_string(target.id.value())},
                   {kHeaderIncarnation, "5"},
                   {kHeaderWireVersion, "1"}};
    req.source = [this, b = std::move(body)](std::string& out, size_t, bool& last) {
      last = false;
      if (!sent) out = b;
      sent = true;
      return Status::ok();
    };
    http::ResponseCallbacks cb;
    cb.on_head = [this](const http::ResponseHead& h) { status = h.status; };
    cb.on_body = [this](std::string_view s) {
      response.append(s);
      return http::Flow::kContinue;
    };
    cb.on_done = [this](Status st) {
      done = true;
      result = st;
    };
    client.request("127.0.0.1", target.port, std::move(req), std::move(cb));
  }
  ~RawStream() {
    client.close();
    for (int i = 0; i < 1000 && !client.closed(); ++i) node.reactor->run_once(1ms);
  }
  Node& node;
  http::Client client{*node.reactor};
  bool sent = false;
  bool done = false;
  int status = 0;
  Status result;
  std::string response;
};

std::string frames_of(const std::vector<Message>& ms) {
  std::string out;
  (void)encode_batch(ms, out);
  return out;
}

TEST_CASE("transport::Transport: a bad frame or an invalid message closes the inbound stream") {
  Node b(NodeId(2));
  b.transport->set_peers({b.peer(), Peer{NodeId(1), "127.0.0.1", 1}});
  auto rs = reactors({&b});
  const NodeId a(1);
  Message good = append(a, b.id, 1, 1, 10);

  SUBCASE("damaged checksum") {
    std::string wire = frames_of({good, good});
    wire.back() ^= 1;
    RawStream s(b, a, wire);
    REQUIRE(run_until(rs, [&] { return s.done; }));
    CHECK(s.status == 200);
    CHECK(s.response.find("closed: Corruption") != std::string::npos);
    CHECK(b.got.empty());
  }
  SUBCASE("message from another node than the handshaken one") {
    Message forged = good;
    forged.from = NodeId(3);
    RawStream s(b, a, frames_of({good}) + frames_of({forged}) + frames_of({good}));
    REQUIRE(run_until(rs, [&] { return s.done; }));
    CHECK(s.response.find("closed:") != std::string::npos);
    CHECK(b.got.size() == 1);  // the frame before the bad one was fine
  }
  SUBCASE("entries not contiguous") {
    Message bad = good;
    bad.entries[0].index = LogIndex(5);
    RawStream s(b, a, frames_of({bad}));
    REQUIRE(run_until(rs, [&] { return s.done; }));
    CHECK(b.got.empty());
  }
  SUBCASE("a group not hosted here is dropped, the stream stays") {
    b.hosted_below = 10;
    Message other = append(a, b.id, 12, 1, 10);
    RawStream s(b, a, frames_of({other, good}));
    REQUIRE(run_until(rs, [&] { return b.got.size() == 1; }));
    run_for(rs, 50ms);
    CHECK_FALSE(s.done);
    CHECK(b.transport->stats().drops_unknown_group == 1);
    CHECK(b.transport->stats().inbound_bad == 0);
    return;
  }
  CHECK(b.transport->stats().inbound_bad == 1);
  CHECK_FALSE(b.transport->peer_status(a)->inbound);
}

TEST_CASE("transport::Transport: an idle stream sends pings and stays up while they are answered") {
  TransportOptions o;
  o.keepalive_ms = 30;
  o.peer_timeout_ms = 150;
  Node a(NodeId(1), kCluster, o), b(NodeId(2), kCluster, o);
  auto rs = reactors({&a, &b});
  connect_all({&a, &b});
  REQUIRE(run_until(rs, [&] { return a.state_is(b.id, true); }));
  const uint64_t before = b.transport->stats().frames_received;
  run_for(rs, 500ms);
  CHECK(b.transport->stats().frames_received >= before + 5);
  CHECK(b.got.empty());
  CHECK(a.states.size() == 1);  // never reported unreachable
  CHECK(a.transport->stats().connects == 1);
}

TEST_CASE("transport::Transport: a peer that stops answering pings is reported unreachable") {
  TransportOptions o;
  o.keepalive_ms = 20;
  o.peer_timeout_ms = 200;
  Node a(NodeId(1), kCluster, o);
  auto stalled_reactor = make_reactor();
  StalledReceiver handler;
  http::ServerOptions so;
  Transport::adjust_server_options(so);
  auto srv = http::Server::start(*stalled_reactor, handler, so);
  REQUIRE(srv.is_ok());
  std::unique_ptr<http::Server> server = std::move(srv).value();
  std::vector<io::Reactor*> rs{a.reactor.get(), stalled_reactor.get()};
  a.transport->set_peers({a.peer(), Peer{NodeId(2), "127.0.0.1", server->port()}});
  REQUIRE(run_until(rs, [&] { return a.state_is(NodeId(2), true); }));
  const auto up_at = io::Reactor::now();
  REQUIRE(run_until(rs, [&] { return a.state_is(NodeId(2), false); }));
  CHECK(io::Reactor::now() - up_at >= 150ms);
  CHECK(handler.received > 0);
  server->close();
  run_until(
      rs, [&] { return server->closed(); }, 5s);
  server.reset();
  stalled_reactor.reset();
}

TEST_CASE("transport::Transport: a removed peer's stream ends and its messages are dropped") {
  Node a(NodeId(1)), b(NodeId(2));
  auto rs = reactors({&a, &b});
  connect_all({&a, &b});
  REQUIRE(run_until(rs, [&] { return b.transport->peer_status(a.id)->inbound; }));
  a.transport->set_peers({a.peer()});
  CHECK_FALSE(a.transport->peer_status(b.id).has_value());
  a.transport->send(msg(MessageType::kVote, a.id, b.id, 1));
  CHECK(a.transport->stats().drops_no_peer == 1);
  REQUIRE(run_until(rs, [&] { return !b.transport->peer_status(a.id)->inbound; }));
}

}  // namespace
}  // namespace raftd::transport
