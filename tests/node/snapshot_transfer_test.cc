// Snapshot streams (node/snapshot_transfer.h): a SnapshotSender and a SnapshotReceiver on one
// reactor, the receiver behind a real http::Server on 127.0.0.1, spooling into a temp dir.
#include "raftd/node/snapshot_transfer.h"

#include <doctest/doctest.h>
#include <stdlib.h>
#include <xxhash.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "../http/http_test_util.h"
#include "raftd/http/client.h"
#include "raftd/http/server.h"
#include "raftd/io/reactor.h"

namespace raftd::node {
namespace {

namespace fs = std::filesystem;
using http::testing::make_reactor;  // skips the test (exit 77) without io_uring
using http::testing::run_until;
using namespace std::chrono_literals;

constexpr uint64_t kCluster = 7;
constexpr NodeId kLeader{1};
constexpr NodeId kFollower{2};

struct TempDir {
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "raftd_snapshot_test.XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::vector<std::string> files() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(path)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }
  std::string path;
};

// Deterministic snapshot bytes: splitmix64 of the 8-byte word's position.
uint64_t word_at(uint64_t i) {
  uint64_t z = i + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
std::string bytes_at(uint64_t offset, size_t n) {
  REQUIRE(offset % 8 == 0);
  std::string out((n + 7) / 8 * 8, '\0');
  for (size_t w = 0; w < out.size() / 8; ++w) {
    const uint64_t v = word_at(offset / 8 + w);
    std::memcpy(out.data() + 8 * w, &v, 8);
  }
  out.resize(n);
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

struct Received {
  SnapshotId id;
  std::string path;
  uint64_t bytes;
};

struct PairConfig {
  size_t concurrent_max = 2;
  std::optional<std::string> dir;  // default: a fresh temp dir
  uint32_t progress_timeout_ms = http::kProgressTimeoutMsDefault;
  uint64_t sync_interval_bytes = kSyncIntervalBytes;
};

// A follower's receiver behind its peer listener, and a leader's sender, on one reactor.
struct Pair {
  explicit Pair(PairConfig c = {}) : config(std::move(c)) {
    reactor = make_reactor();
    dir = config.dir.value_or(tmp.path + "/snapshots");  // created by open()
    open_receiver();
    http::ServerOptions so;
    so.host = "127.0.0.1";
    // What transport::Transport::adjust_server_options does for the node's peer listener.
    so.body_bytes_max = UINT64_MAX;
    so.body_rate_window_ms = 0;
    so.progress_timeout_ms = config.progress_timeout_ms;
    auto s = http::Server::start(*reactor, *this_handler(), so);
    REQUIRE_MESSAGE(s.is_ok(), s.status().to_string());
    server = std::move(s).value();
    sender = std::make_unique<SnapshotSender>(*reactor);
    client = std::make_unique<http::Client>(*reactor);
  }
  ~Pair() {
    sender->close();
    client->close();
    server->close();
    run_until(*reactor, [&] {
      return sender->closed() && client->closed() && server->closed() && receiver->idle();
    });
    sender.reset();
    client.reset();
    server.reset();
    receiver.reset();
    reactor.reset();
  }

  // The server holds a reference to its handler: a forwarding handler lets a test reopen the
  // receiver (a restart) behind the same listener.
  struct Forward final : http::Handler {
    Pair* p;
    explicit Forward(Pair* pair) : p(pair) {}
    void on_headers(http::Exchange& ex) override { p->receiver->on_headers(ex); }
    http::Flow on_body(http::Exchange& ex, std::string_view c) override {
      return p->receiver->on_body(ex, c);
    }
    void on_end(http::Exchange& ex) override { p->receiver->on_end(ex); }
    void on_aborted(http::Exchange& ex) override { p->receiver->on_aborted(ex); }
  };
  http::Handler* this_handler() {
    if (!forward) forward = std::make_unique<Forward>(this);
    return forward.get();
  }

  void open_receiver() {
    ReceiverOptions o;
    o.dir = dir;
    o.cluster_id = kCluster;
    o.self = kFollower;
    o.concurrent_max = config.concurrent_max;
    o.sync_interval_bytes = config.sync_interval_bytes;
    o.accept = [this](const SnapshotId& id, NodeId from) {
      CHECK(from == kLeader);
      return accept ? accept(id, from) : Status::ok();
    };
    o.on_received = [this](const SnapshotId& id, const std::string& path, uint64_t bytes) {
      got.push_back(Received{id, path, bytes});
    };
    auto r = SnapshotReceiver::open(*reactor, o);
    REQUIRE_MESSAGE(r.is_ok(), r.status().to_string());
    receiver = std::move(r).value();
  }

  SendTarget target(uint64_t cluster = kCluster) const {
    return SendTarget{kLeader, kFollower, cluster, "127.0.0.1", server->port()};
  }

  std::vector<std::string> files() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }

  // A whole snapshot through the sender, pushed at once; the transfer's outcome.
  Status send(const SnapshotId& id, const std::string& bytes, uint64_t cluster = kCluster) {
    std::optional<Status> result;
    auto t = sender->start(
        target(cluster), id, [] {}, [&](Status st) { result = st; });
    (void)sender->push(t, bytes);
    sender->finish(t, Status::ok());
    REQUIRE(run_until(*reactor, [&] { return result.has_value(); }));
    return *result;
  }

  // A raw request with hand-made headers and body; the answer.
  http::Response raw(http::Headers headers, std::string body) {
    http::ClientRequest rq;
    rq.method = "POST";
    rq.target = kSnapshotPath;
    rq.headers = std::move(headers);
    rq.body = std::move(body);
    std::optional<Result<http::Response>> answer;
    client->fetch("127.0.0.1", server->port(), std::move(rq),
                  [&](Result<http::Response> r) { answer.emplace(std::move(r)); });
    REQUIRE(run_until(*reactor, [&] { return answer.has_value(); }));
    REQUIRE_MESSAGE(answer->is_ok(), answer->status().to_string());
    return std::move(*answer).value();
  }

  PairConfig config;
  TempDir tmp;
  std::string dir;
  std::unique_ptr<io::Reactor> reactor;
  std::unique_ptr<Forward> forward;
  std::unique_ptr<SnapshotReceiver> receiver;
  std::unique_ptr<http::Server> server;
  std::unique_ptr<SnapshotSender> sender;
  std::unique_ptr<http::Client> client;
  std::function<Status(const SnapshotId&, NodeId)> accept;
  std::vector<Received> got;
};

http::Headers headers_for(const SnapshotId& id, uint64_t cluster = kCluster,
                          NodeId to = kFollower) {
  return {{kSnapshotHeaderCluster, std::to_string(cluster)},
          {kSnapshotHeaderFrom, std::to_string(kLeader.value())},
          {kSnapshotHeaderTo, std::to_string(to.value())},
          {kSnapshotHeaderGroup, std::to_string(id.group.value())},
          {kSnapshotHeaderIndex, std::to_string(id.index.value())},
          {kSnapshotHeaderTerm, std::to_string(id.term.value())}};
}

std::string with_footer(const std::string& bytes) {
  return bytes + encode_snapshot_footer(bytes.size(), XXH3_64bits(bytes.data(), bytes.size()));
}

const SnapshotId kSnap{GroupId(3), LogIndex(100), Term(2)};

TEST_CASE("node::SnapshotTransfer: a 64 MiB stream arrives byte-exact, its file only at the end") {
  Pair p({.sync_interval_bytes = 8 << 20});
  constexpr uint64_t kTotal = 64ull << 20;
  constexpr size_t kPiece = 64 * 1024;
  std::optional<Status> result;
  uint64_t pushed = 0;
  int pauses = 0, drains = 0;
  bool saw_part = false, snap_early = false;
  SnapshotSender::TransferId t = 0;
  // The producer: pushes until kPause, resumes on on_drained, like an app's SaveSnapshot body.
  std::function<void()> produce = [&] {
    while (pushed < kTotal) {
      const std::string piece = bytes_at(pushed, kPiece);
      pushed += piece.size();
      if (p.sender->push(t, piece) == http::Flow::kPause) {
        ++pauses;
        return;
      }
    }
    p.sender->finish(t, Status::ok());
  };
  t = p.sender->start(
      p.target(), kSnap,
      [&] {
        ++drains;
        for (const std::string& f : p.files()) {
          saw_part |= f == "3-100-2.part";
          snap_early |= f.ends_with(".snap");
        }
        produce();
      },
      [&](Status st) { result = st; });
  produce();
  REQUIRE(run_until(*p.reactor, [&] { return result.has_value(); }));
  REQUIRE_MESSAGE(result->is_ok(), result->to_string());
  CHECK(pauses > 0);
  CHECK(drains == pauses);
  CHECK(saw_part);
  CHECK_FALSE(snap_early);

  // On disk: exactly the bytes, under the final name, and nothing else.
  CHECK(p.files() == std::vector<std::string>{"3-100-2.snap"});
  const auto found = p.receiver->find(kSnap);
  REQUIRE(found.has_value());
  CHECK(found->second == kTotal);
  REQUIRE(fs::file_size(found->first) == kTotal);
  std::ifstream f(found->first, std::ios::binary);
  std::string block(1 << 20, '\0');
  uint64_t mismatched_blocks = 0;
  for (uint64_t at = 0; at < kTotal; at += block.size()) {
    REQUIRE(f.read(block.data(), static_cast<std::streamsize>(block.size())));
    if (block != bytes_at(at, block.size())) ++mismatched_blocks;
  }
  CHECK(mismatched_blocks == 0);
  REQUIRE(p.got.size() == 1);
  CHECK(p.got[0].id == kSnap);
  CHECK(p.got[0].path == found->first);
  CHECK(p.got[0].bytes == kTotal);
  CHECK(p.receiver->stats().received == 1);
  CHECK(p.receiver->stats().bytes == kTotal);
  CHECK(p.receiver->stats().syncs >= 8);  // every 8 MiB, with the body paused, and the last
  CHECK(p.sender->stats().sent == 1);
  CHECK(p.receiver->active() == 0);
  CHECK(p.sender->active() == 0);

  // Memory: the receiver paused the body while it wrote, so a stream never held more than one
  // write and one piece the server handed over (the server's input bound plus one receive
  // buffer of the test reactor).
  const uint64_t bound =
      kSpoolWriteBytes + kSnapshotFooterBytes + http::kPendingBytesMax + 64 * 1024;
  MESSAGE("receiver buffered at most " << p.receiver->stats().buffered_max << " bytes");
  CHECK(p.receiver->stats().buffered_max >= kSpoolWriteBytes);
  CHECK(p.receiver->stats().buffered_max <= bound);
  // The sender's buffer: over its limit by at most the push that crossed it.
  CHECK(p.sender->stats().buffered_max > kSendBufferBytesMax);
  CHECK(p.sender->stats().buffered_max <= kSendBufferBytesMax + kPiece);
}

TEST_CASE("node::SnapshotTransfer: a flipped byte is refused with 422 and leaves no file") {
  Pair p;
  std::string bytes = bytes_at(0, 1 << 20);
  const std::string good = with_footer(bytes);
  std::string flipped = good;
  flipped[123456] ^= 0x01;
  http::Response r = p.raw(headers_for(kSnap), flipped);
  CHECK(r.head.status == 422);
  CHECK(nlohmann::json::parse(r.body)["error"] == "corrupt");
  CHECK(p.files().empty());
  CHECK_FALSE(p.receiver->find(kSnap).has_value());
  CHECK(p.got.empty());
  CHECK(p.receiver->stats().failed == 1);

  // A wrong length, a stream shorter than a footer, a missing magic: the same.
  std::string wrong_length =
      bytes + encode_snapshot_footer(bytes.size() + 1, XXH3_64bits(bytes.data(), bytes.size()));
  CHECK(p.raw(headers_for(kSnap), wrong_length).head.status == 422);
  CHECK(p.raw(headers_for(kSnap), "short").head.status == 422);
  std::string no_magic = good;
  no_magic[bytes.size()] = 'X';
  CHECK(p.raw(headers_for(kSnap), no_magic).head.status == 422);
  CHECK(p.files().empty());
  CHECK(p.receiver->stats().failed == 4);

  // The hand-made good one passes: the format is what the doc says.
  http::Response ok = p.raw(headers_for(kSnap), good);
  CHECK(ok.head.status == 200);
  CHECK(nlohmann::json::parse(ok.body)["bytes"] == bytes.size());
  CHECK(p.files() == std::vector<std::string>{"3-100-2.snap"});
  // An empty snapshot is a snapshot too.
  const SnapshotId empty{GroupId(4), LogIndex(1), Term(1)};
  CHECK(p.raw(headers_for(empty), with_footer("")).head.status == 200);
  REQUIRE(p.receiver->find(empty).has_value());
  CHECK(p.receiver->find(empty)->second == 0);
}

TEST_CASE("node::SnapshotReceiver: the example body of doc/transport.md section 5.1") {
  Pair p;
  const std::string body(
      "abc"
      "RDSNAPv1"
      "\x03\0\0\0\0\0\0\0"
      "\x50\x39\x2f\x89\x94\x5f\xaf\x78",
      27);
  CHECK(body.substr(3) == encode_snapshot_footer(3, XXH3_64bits("abc", 3)));
  http::Response r = p.raw(headers_for(kSnap), body);
  CHECK(r.head.status == 200);
  CHECK(r.body == R"({"bytes":3})");
  REQUIRE(p.receiver->find(kSnap).has_value());
  CHECK(read_file(p.receiver->find(kSnap)->first) == "abc");
}

// A receiver that answers 422 at the body's end: what a receiver that found the checksum wrong
// does, seen from the sender.
struct Answer422 final : http::Handler {
  void on_headers(http::Exchange&) override {}
  void on_end(http::Exchange& ex) override {
    ex.respond(422, R"({"error":"corrupt","message":"checksum"})", "application/json");
  }
};

TEST_CASE("node::SnapshotSender: a 422 is kCorruption, other answers their codes") {
  auto reactor = make_reactor();
  Answer422 handler;
  auto s = http::Server::start(*reactor, handler);
  REQUIRE(s.is_ok());
  auto server = std::move(s).value();
  SnapshotSender sender(*reactor);
  std::optional<Status> result;
  auto t = sender.start(
      SendTarget{kLeader, kFollower, kCluster, "127.0.0.1", server->port()}, kSnap, [] {},
      [&](Status st) { result = st; });
  (void)sender.push(t, "bytes");
  sender.finish(t, Status::ok());
  REQUIRE(run_until(*reactor, [&] { return result.has_value(); }));
  CHECK(result->code() == Code::kCorruption);
  CHECK(result->message().find("checksum") != std::string::npos);
  CHECK(sender.stats().failed == 1);
  sender.close();
  server->close();
  run_until(*reactor, [&] { return sender.closed() && server->closed(); });
}

TEST_CASE("node::SnapshotTransfer: a sender that aborts or cancels mid-way leaves no file") {
  Pair p;
  for (bool cancel : {false, true}) {
    CAPTURE(cancel);
    std::optional<Status> result;
    auto t = p.sender->start(
        p.target(), kSnap, [] {}, [&](Status st) { result = st; });
    for (int i = 0; i < 16; ++i) (void)p.sender->push(t, bytes_at(0, 64 * 1024));
    REQUIRE(run_until(*p.reactor, [&] {
      return fs::exists(p.dir + "/3-100-2.part") && fs::file_size(p.dir + "/3-100-2.part") > 0;
    }));
    const uint64_t failed = p.receiver->stats().failed;
    if (cancel) {
      p.sender->cancel(t);
    } else {
      p.sender->finish(t, Status(Code::kIoError, "the application's SaveSnapshot failed"));
    }
    REQUIRE(run_until(*p.reactor, [&] { return p.receiver->stats().failed == failed + 1; }));
    CHECK(p.files().empty());
    CHECK(p.receiver->active() == 0);
    CHECK(p.sender->active() == 0);
    if (cancel) {
      http::testing::run_for(*p.reactor, 100ms);
      CHECK_FALSE(result.has_value());
    } else {
      REQUIRE(run_until(*p.reactor, [&] { return result.has_value(); }));
      CHECK(result->code() == Code::kIoError);
      CHECK(result->message() == "the application's SaveSnapshot failed");
    }
  }
  CHECK(p.got.empty());
}

TEST_CASE("node::SnapshotSender: close() ends every transfer, each done once") {
  Pair p;
  std::vector<Status> a, b;
  auto ta = p.sender->start(
      p.target(), kSnap, [] {}, [&](Status st) { a.push_back(st); });
  (void)p.sender->push(ta, "running");
  const SnapshotId other{GroupId(9), LogIndex(1), Term(1)};
  auto tb = p.sender->start(
      p.target(), other, [] {}, [&](Status st) { b.push_back(st); });
  p.sender->finish(tb, Status(Code::kIoError, "producer failed"));
  p.sender->close();
  REQUIRE(run_until(*p.reactor, [&] { return p.sender->closed(); }));
  http::testing::run_for(*p.reactor, 50ms);
  REQUIRE(a.size() == 1);
  CHECK(a[0].code() == Code::kCancelled);
  REQUIRE(b.size() == 1);
  CHECK(b[0].message() == "producer failed");
  REQUIRE(run_until(*p.reactor, [&] { return p.receiver->active() == 0; }));
  CHECK(p.files().empty());
}

TEST_CASE("node::SnapshotReceiver: a sender that stalls is dropped by the progress timeout") {
  Pair p({.progress_timeout_ms = 300});
  std::optional<Status> result;
  auto t = p.sender->start(
      p.target(), kSnap, [] {}, [&](Status st) { result = st; });
  (void)p.sender->push(t, bytes_at(0, 100 * 1024));
  // The producer never pushes again: the server's no-progress timeout ends the stream.
  REQUIRE(run_until(*p.reactor, [&] { return p.receiver->stats().failed == 1; }));
  CHECK(p.files().empty());
  REQUIRE(run_until(*p.reactor, [&] { return result.has_value(); }));
  CHECK_FALSE(result->is_ok());
}

// Reads the head, then holds the body paused and never answers: a receiver that hangs.
struct NeverAnswers final : http::Handler {
  void on_headers(http::Exchange&) override {}
  http::Flow on_body(http::Exchange&, std::string_view) override { return http::Flow::kPause; }
  void on_end(http::Exchange&) override {}
};

TEST_CASE("node::SnapshotSender: a receiver that stops reading fails with kTimeout") {
  auto reactor = make_reactor();
  NeverAnswers handler;
  auto s = http::Server::start(*reactor, handler);
  REQUIRE(s.is_ok());
  auto server = std::move(s).value();
  http::ClientOptions co;
  co.response_timeout_ms = 300;
  SnapshotSender sender(*reactor, co);
  std::optional<Status> result;
  SnapshotSender::TransferId t = 0;
  uint64_t pushed = 0;
  // A producer that always has more: only the receiver holds it back, once the kernel's socket
  // buffers between the two are full.
  std::function<void()> produce = [&] {
    while (pushed < (1ull << 30) &&
           sender.push(t, bytes_at(0, 256 * 1024)) == http::Flow::kContinue) {
      pushed += 256 * 1024;
    }
  };
  t = sender.start(SendTarget{kLeader, kFollower, kCluster, "127.0.0.1", server->port()}, kSnap,
                   produce, [&](Status st) { result = st; });
  produce();
  REQUIRE(run_until(*reactor, [&] { return result.has_value(); }));
  CHECK(result->code() == Code::kTimeout);
  MESSAGE("the sender pushed " << pushed << " bytes before the timeout");
  CHECK(pushed < (1ull << 30));
  CHECK(sender.stats().buffered_max <= kSendBufferBytesMax + 256 * 1024);
  sender.close();
  server->close();
  run_until(*reactor, [&] { return sender.closed() && server->closed(); });
}

TEST_CASE("node::SnapshotReceiver: a restart deletes .part files and finds .snap files") {
  TempDir tmp;
  const std::string dir = tmp.path + "/snapshots";
  fs::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& content) {
    std::ofstream(dir + "/" + name, std::ios::binary) << content;
  };
  write("3-100-2.part", "half");
  write("3-100-2.snap", "whole");
  write("4-5-1.snap", "old");
  write("4-7-1.snap", "newer");
  write("5-9-1.part", "crashed");
  write("notes.txt", "not ours");
  {
    Pair p({.dir = dir});
    CHECK(p.files() == std::vector<std::string>{"3-100-2.snap", "4-7-1.snap", "notes.txt"});
    auto found = p.receiver->find(kSnap);
    REQUIRE(found.has_value());
    CHECK(found->first == dir + "/3-100-2.snap");
    CHECK(found->second == 5);
    CHECK(p.receiver->find(SnapshotId{GroupId(4), LogIndex(7), Term(1)}).has_value());
    CHECK_FALSE(p.receiver->find(SnapshotId{GroupId(4), LogIndex(5), Term(1)}).has_value());
    CHECK_FALSE(p.receiver->find(SnapshotId{GroupId(3), LogIndex(100), Term(3)}).has_value());

    // A newer snapshot of group 3 replaces the old file; then a restart in the middle of a
    // stream (the receiver reopened on the same dir) keeps the complete one only.
    const SnapshotId newer{GroupId(3), LogIndex(200), Term(2)};
    REQUIRE(p.send(newer, "fresh").is_ok());
    CHECK(p.files() == std::vector<std::string>{"3-200-2.snap", "4-7-1.snap", "notes.txt"});
    CHECK_FALSE(p.receiver->find(kSnap).has_value());
  }
  write("6-1-1.part", "another crash");
  {
    Pair p({.dir = dir});
    CHECK(p.files() == std::vector<std::string>{"3-200-2.snap", "4-7-1.snap", "notes.txt"});
    auto found = p.receiver->find(SnapshotId{GroupId(3), LogIndex(200), Term(2)});
    REQUIRE(found.has_value());
    CHECK(read_file(found->first) == "fresh");
  }
}

TEST_CASE("node::SnapshotReceiver: streams over concurrent_max get 503 with Retry-After") {
  Pair p({.concurrent_max = 1});
  std::optional<Status> first, second;
  auto a = p.sender->start(
      p.target(), kSnap, [] {}, [&](Status st) { first = st; });
  (void)p.sender->push(a, "the first");
  REQUIRE(run_until(*p.reactor, [&] { return p.receiver->active() == 1; }));
  const SnapshotId other{GroupId(9), LogIndex(1), Term(1)};
  auto b = p.sender->start(
      p.target(), other, [] {}, [&](Status st) { second = st; });
  (void)p.sender->push(b, "the second");
  p.sender->finish(b, Status::ok());
  REQUIRE(run_until(*p.reactor, [&] { return second.has_value(); }));
  CHECK(second->code() == Code::kUnavailable);
  http::Response r = p.raw(headers_for(other), with_footer("x"));
  CHECK(r.head.status == 503);
  CHECK(r.head.header("Retry-After") == std::to_string(kRetryAfterSeconds));
  CHECK_FALSE(first.has_value());
  p.sender->finish(a, Status::ok());
  REQUIRE(run_until(*p.reactor, [&] { return first.has_value(); }));
  CHECK(first->is_ok());
  // The slot is free again.
  CHECK(p.send(other, "the second").is_ok());
  CHECK(p.receiver->stats().refused == 2);
}

TEST_CASE("node::SnapshotReceiver: another cluster gets 403, bad headers 400") {
  Pair p;
  Status st = p.send(kSnap, "bytes", kCluster + 1);
  CHECK(st.code() == Code::kInvalidArgument);
  http::Response r = p.raw(headers_for(kSnap, kCluster + 1), with_footer("bytes"));
  CHECK(r.head.status == 403);
  CHECK(r.head.header(kSnapshotHeaderCluster) == std::to_string(kCluster));
  CHECK(p.raw(headers_for(kSnap, kCluster, NodeId(5)), with_footer("b")).head.status == 421);
  http::Headers missing = headers_for(kSnap);
  missing.pop_back();
  CHECK(p.raw(missing, with_footer("b")).head.status == 400);
  http::Headers zero_index = headers_for(SnapshotId{GroupId(3), LogIndex(0), Term(2)});
  CHECK(p.raw(zero_index, with_footer("b")).head.status == 400);
  http::Headers not_a_number = headers_for(kSnap);
  not_a_number[3].value = "3x";
  CHECK(p.raw(not_a_number, with_footer("b")).head.status == 400);
  CHECK(p.files().empty());
  CHECK(p.receiver->stats().refused == 6);
  CHECK(p.receiver->stats().failed == 0);
}

TEST_CASE("node::SnapshotReceiver: accept's errors map to their statuses") {
  Pair p;
  struct Case {
    Code code;
    int status;
    Code sender_sees;
  };
  for (Case c :
       {Case{Code::kUnavailable, 503, Code::kUnavailable},
        Case{Code::kNotFound, 404, Code::kNotFound}, Case{Code::kAborted, 409, Code::kAborted},
        Case{Code::kAlreadyExists, 409, Code::kAborted},
        Case{Code::kInvalidArgument, 400, Code::kInvalidArgument}}) {
    CAPTURE(code_name(c.code));
    p.accept = [&](const SnapshotId& id, NodeId) {
      CHECK(id == kSnap);
      return Status(c.code, "not now");
    };
    http::Response r = p.raw(headers_for(kSnap), with_footer("bytes"));
    CHECK(r.head.status == c.status);
    CHECK(nlohmann::json::parse(r.body)["message"] == "not now");
    Status st = p.send(kSnap, "bytes");
    CHECK(st.code() == c.sender_sees);
    CHECK(st.message().find("not now") != std::string::npos);
  }
  CHECK(p.files().empty());
  p.accept = nullptr;
  CHECK(p.send(kSnap, "bytes").is_ok());
}

TEST_CASE("node::SnapshotReceiver: remove() deletes a group's file and fails its stream") {
  Pair p;
  REQUIRE(p.send(kSnap, "complete").is_ok());
  const SnapshotId other{GroupId(8), LogIndex(4), Term(1)};
  REQUIRE(p.send(other, "kept").is_ok());
  p.receiver->remove(kSnap.group);
  CHECK_FALSE(p.receiver->find(kSnap).has_value());
  CHECK(p.files() == std::vector<std::string>{"8-4-1.snap"});

  std::optional<Status> result;
  const SnapshotId next{GroupId(3), LogIndex(150), Term(2)};
  auto t = p.sender->start(
      p.target(), next, [] {}, [&](Status st) { result = st; });
  (void)p.sender->push(t, bytes_at(0, 512 * 1024));
  REQUIRE(run_until(*p.reactor, [&] { return fs::exists(p.dir + "/3-150-2.part"); }));
  p.receiver->remove(kSnap.group);
  REQUIRE(run_until(*p.reactor, [&] { return result.has_value(); }));
  CHECK(result->code() == Code::kAborted);
  CHECK(p.files() == std::vector<std::string>{"8-4-1.snap"});
  CHECK(p.receiver->find(other).has_value());
}

TEST_CASE("node::SnapshotReceiver: a newer stream for a group replaces the one in progress") {
  Pair p;
  std::optional<Status> first;
  auto a = p.sender->start(
      p.target(), kSnap, [] {}, [&](Status st) { first = st; });
  (void)p.sender->push(a, bytes_at(0, 512 * 1024));
  REQUIRE(run_until(*p.reactor, [&] { return fs::exists(p.dir + "/3-100-2.part"); }));
  const SnapshotId retry{GroupId(3), LogIndex(100), Term(2)};
  CHECK(p.send(retry, "the retry").is_ok());
  REQUIRE(run_until(*p.reactor, [&] { return first.has_value(); }));
  CHECK(first->code() == Code::kAborted);
  CHECK(p.files() == std::vector<std::string>{"3-100-2.snap"});
  CHECK(read_file(p.dir + "/3-100-2.snap") == "the retry");
}

}  // namespace
}  // namespace raftd::node
