// Tests of raftd-load: the latency histogram against a brute-force sort, the request templates
// (bodies, lengths, base64 for etcd), the response reader's framing (whole and split at every
// byte), and a LoadWorker against tiny blocking servers on loopback (a server that closes after
// each response, pipelining, a server that never answers).
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "histogram.h"
#include "load_worker.h"
#include "raftd/io/socket.h"
#include "request_template.h"
#include "response_reader.h"

using raftd::bench::LatencyHistogram;
using raftd::bench::RequestTemplate;
using raftd::bench::ResponseReader;
using raftd::bench::TemplateKind;
using raftd::bench::TemplateOptions;

namespace {

// The exact percentile the histogram approximates: the observation of rank ceil(q * n).
uint64_t exact_percentile(std::vector<uint64_t> sorted, double q) {
  std::size_t rank = static_cast<std::size_t>(q * static_cast<double>(sorted.size()));
  if (static_cast<double>(rank) < q * static_cast<double>(sorted.size())) ++rank;
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

void check_against_sort(const std::vector<uint64_t>& values) {
  LatencyHistogram h;
  for (uint64_t v : values) h.record(v);
  std::vector<uint64_t> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  REQUIRE(h.count() == sorted.size());
  CHECK(h.max() == sorted.back());
  CHECK(h.min() == sorted.front());
  for (double q : {0.0001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999, 1.0}) {
    const uint64_t exact = exact_percentile(sorted, q);
    const uint64_t got = h.percentile(q);
    CAPTURE(q);
    CAPTURE(exact);
    CAPTURE(got);
    // Never below the truth, and in the same bucket: at most 1/128 above it.
    CHECK(got >= exact);
    CHECK(static_cast<double>(got - exact) <= static_cast<double>(exact) / 128.0);
    CHECK(LatencyHistogram::bucket_of(got) == LatencyHistogram::bucket_of(exact));
  }
}

// Feeds `bytes` to a reader in pieces of `piece` bytes, keeping unconsumed bytes like a
// connection does; returns the statuses of the responses that ended.
std::vector<int> read_all(const std::string& bytes, std::size_t piece, bool& error) {
  ResponseReader r;
  std::vector<int> statuses;
  std::string pending;
  error = false;
  for (std::size_t at = 0; at < bytes.size(); at += piece) {
    pending += bytes.substr(at, piece);
    std::size_t off = 0;
    while (off < pending.size()) {
      auto res = r.feed(std::string_view(pending).substr(off));
      off += res.consumed;
      if (res.event == ResponseReader::Event::kError) {
        error = true;
        return statuses;
      }
      if (res.event == ResponseReader::Event::kNeedMore) break;
      statuses.push_back(r.status());
    }
    pending.erase(0, off);
  }
  if (r.on_eof()) statuses.push_back(r.status());
  return statuses;
}

}  // namespace

TEST_CASE("bench::LatencyHistogram: percentiles match a brute-force sort of random data") {
  std::mt19937_64 rng(42);
  SUBCASE("log-normal latencies, microseconds to seconds") {
    std::lognormal_distribution<double> d(12.0, 1.5);  // median about 160 us in ns
    std::vector<uint64_t> v(100000);
    for (auto& x : v) x = static_cast<uint64_t>(d(rng));
    check_against_sort(v);
  }
  SUBCASE("uniform over the exact range and just above it") {
    std::uniform_int_distribution<uint64_t> d(0, 1000);
    std::vector<uint64_t> v(5000);
    for (auto& x : v) x = d(rng);
    check_against_sort(v);
  }
  SUBCASE("a few huge values") {
    std::uniform_int_distribution<uint64_t> d(0, UINT64_MAX);
    std::vector<uint64_t> v(777);
    for (auto& x : v) x = d(rng);
    check_against_sort(v);
  }
}

TEST_CASE("bench::LatencyHistogram: buckets tile the whole range without gaps") {
  for (std::size_t b = 0; b + 1 < LatencyHistogram::kBuckets; ++b) {
    REQUIRE(LatencyHistogram::bucket_high(b) + 1 == LatencyHistogram::bucket_low(b + 1));
    REQUIRE(LatencyHistogram::bucket_of(LatencyHistogram::bucket_low(b)) == b);
    REQUIRE(LatencyHistogram::bucket_of(LatencyHistogram::bucket_high(b)) == b);
  }
  CHECK(LatencyHistogram::bucket_of(UINT64_MAX) == LatencyHistogram::kBuckets - 1);
  CHECK(LatencyHistogram::bucket_high(LatencyHistogram::kBuckets - 1) == UINT64_MAX);
}

TEST_CASE("bench::LatencyHistogram: merging equals recording everything in one") {
  LatencyHistogram a, b, all;
  for (uint64_t v = 1; v < 200000; v += 37) {
    ((v / 37) % 2 == 0 ? a : b).record(v * 11);
    all.record(v * 11);
  }
  a.merge(b);
  CHECK(a.count() == all.count());
  CHECK(a.max() == all.max());
  CHECK(a.min() == all.min());
  for (double q : {0.5, 0.9, 0.99, 0.999}) CHECK(a.percentile(q) == all.percentile(q));
  LatencyHistogram empty;
  CHECK(empty.percentile(0.99) == 0);
  CHECK(empty.min() == 0);
}

TEST_CASE("bench::base64_encode: RFC 4648 test vectors") {
  using raftd::bench::base64_encode;
  CHECK(base64_encode("") == "");
  CHECK(base64_encode("f") == "Zg==");
  CHECK(base64_encode("fo") == "Zm8=");
  CHECK(base64_encode("foo") == "Zm9v");
  CHECK(base64_encode("foob") == "Zm9vYg==");
  CHECK(base64_encode("fooba") == "Zm9vYmE=");
  CHECK(base64_encode("foobar") == "Zm9vYmFy");
  CHECK(base64_encode(std::string("\xff\x00\xfe", 3)) == "/wD+");
}

namespace {

// Splits a rendered request into head and body and checks Content-Length against the body.
std::string body_of(const std::string& req) {
  const auto end = req.find("\r\n\r\n");
  REQUIRE(end != std::string::npos);
  const std::string head = req.substr(0, end);
  const std::string body = req.substr(end + 4);
  const auto cl = head.find("Content-Length: ");
  if (cl == std::string::npos) {
    CHECK(body.empty());
    return body;
  }
  CHECK(std::stoul(head.substr(cl + 16)) == body.size());
  return body;
}

}  // namespace

TEST_CASE("bench::RequestTemplate: raftd put and get bodies for the kv example") {
  TemplateOptions o;
  o.kind = TemplateKind::kRaftdPut;
  o.keyspace = 1000;
  o.value_bytes = 5;
  o.group_first = 3;
  o.group_last = 4;
  auto t = RequestTemplate::make(o);
  REQUIRE(t);
  CHECK(t.value().group_count() == 2);
  CHECK(t.value().key_text(42) == "k00000042");
  std::string req;
  t.value().render(req, 42, 1, "127.0.0.1:9");
  CHECK(req.rfind("POST /v1/groups/4/propose HTTP/1.1\r\nHost: 127.0.0.1:9\r\n", 0) == 0);
  const std::string v = t.value().value();
  REQUIRE(v.size() == 5);
  CHECK(std::all_of(v.begin(), v.end(), [](char c) { return c >= 'a' && c <= 'z'; }));
  CHECK(body_of(req) == R"({"op":"put","key":"k00000042","value":")" + v + R"("})");

  o.kind = TemplateKind::kRaftdGet;
  o.stale_reads = true;
  auto g = RequestTemplate::make(o);
  REQUIRE(g);
  req.clear();
  g.value().render(req, 7, 0, "h");
  CHECK(req.rfind("POST /v1/groups/3/read?consistency=stale HTTP/1.1\r\n", 0) == 0);
  CHECK(body_of(req) == R"({"op":"get","key":"k00000007"})");
}

TEST_CASE("bench::RequestTemplate: etcd bodies carry base64 keys and values") {
  TemplateOptions o;
  o.kind = TemplateKind::kEtcdPut;
  o.keyspace = 1000000000;  // ten digits: the key width grows past 8
  o.value_bytes = 16;
  auto t = RequestTemplate::make(o);
  REQUIRE(t);
  std::string req;
  t.value().render(req, 123, 0, "127.0.0.1:2379");
  CHECK(req.rfind("POST /v3/kv/put HTTP/1.1\r\n", 0) == 0);
  const std::string key = "k000000123";
  CHECK(t.value().key_text(123) == key);
  CHECK(body_of(req) == R"({"key":")" + raftd::bench::base64_encode(key) + R"(","value":")" +
                            raftd::bench::base64_encode(t.value().value()) + R"("})");
  // Every rendered request has the same length: Content-Length is computed once.
  std::string a, b;
  t.value().render(a, 0, 0, "x");
  t.value().render(b, 999999999, 0, "x");
  CHECK(a.size() == b.size());
  body_of(a);
  body_of(b);

  o.kind = TemplateKind::kEtcdRange;
  auto r = RequestTemplate::make(o);
  REQUIRE(r);
  req.clear();
  r.value().render(req, 5, 0, "x");
  CHECK(req.rfind("POST /v3/kv/range HTTP/1.1\r\n", 0) == 0);
  CHECK(body_of(req) == R"({"key":")" + raftd::bench::base64_encode("k000000005") + R"("})");
}

TEST_CASE("bench::RequestTemplate: http-get and bad options") {
  TemplateOptions o;
  o.kind = TemplateKind::kHttpGet;
  o.path = "/x?y=1";
  auto t = RequestTemplate::make(o);
  REQUIRE(t);
  std::string req;
  t.value().render(req, 0, 0, "h:1");
  CHECK(req == "GET /x?y=1 HTTP/1.1\r\nHost: h:1\r\n\r\n");

  TemplateOptions bad;
  bad.keyspace = 0;
  CHECK_FALSE(RequestTemplate::make(bad));
  bad = {};
  bad.key_prefix = "a\"b";
  CHECK_FALSE(RequestTemplate::make(bad));
  bad = {};
  bad.group_first = 5;
  bad.group_last = 4;
  CHECK_FALSE(RequestTemplate::make(bad));
  bad = {};
  bad.kind = TemplateKind::kHttpGet;
  bad.path = "no-slash";
  CHECK_FALSE(RequestTemplate::make(bad));
  CHECK(raftd::bench::parse_template_kind("etcd-range"));
  CHECK_FALSE(raftd::bench::parse_template_kind("etcd-get"));
}

TEST_CASE("bench::ResponseReader: framings, whole and split at every byte") {
  const std::string stream =
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: x\r\n\r\n"
      "HTTP/1.1 204 No Content\r\n\r\n"
      "HTTP/1.1 503 Unavailable\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
      "HTTP/1.0 200 OK\r\n\r\nbody to the end";
  for (std::size_t piece : {stream.size(), std::size_t{1}, std::size_t{2}, std::size_t{7}}) {
    CAPTURE(piece);
    bool error = false;
    const auto got = read_all(stream, piece, error);
    CHECK_FALSE(error);
    CHECK(got == std::vector<int>{200, 404, 200, 204, 503, 200});
  }
}

TEST_CASE("bench::ResponseReader: close after, and unframeable input") {
  ResponseReader r;
  auto res = r.feed("HTTP/1.1 503 X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  CHECK(res.event == ResponseReader::Event::kResponse);
  CHECK(r.close_after());
  res = r.feed("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  CHECK(res.event == ResponseReader::Event::kResponse);
  CHECK_FALSE(r.close_after());
  CHECK_FALSE(r.mid_response());

  for (const char* bad :
       {"SMTP ready\r\n\r\n", "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\naXX"}) {
    CAPTURE(bad);
    bool error = false;
    read_all(bad, 1000, error);
    CHECK(error);
  }
  // A head that never ends is an error once it passes the limit, not a buffer without bound.
  bool error = false;
  std::string huge = "HTTP/1.1 200 OK\r\n" + std::string(raftd::bench::kResponseHeadBytesMax, 'a');
  read_all(huge, huge.size(), error);
  CHECK(error);
}

// ---- LoadWorker against tiny blocking loopback servers ----------------------------------------

namespace {

using raftd::bench::LoadConfig;
using raftd::bench::LoadWorker;

// A server on its own thread: each accepted connection is handed to `serve(fd)`, one at a time.
class TinyServer {
 public:
  template <typename Serve>
  explicit TinyServer(Serve serve) {
    auto l = raftd::io::listen_tcp("127.0.0.1", 0);
    REQUIRE(l);
    fd_ = l.value().fd;
    port_ = l.value().port;
    thread_ = std::thread([this, serve] {
      while (!stop_.load()) {
        pollfd p{fd_, POLLIN, 0};
        if (poll(&p, 1, 20) <= 0) continue;
        const int c = accept(fd_, nullptr, nullptr);
        if (c >= 0) serve(c, stop_);
      }
    });
  }
  ~TinyServer() {
    stop_.store(true);
    thread_.join();
    close(fd_);
  }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Reads one request head (the http-get template has no body); false at EOF or on stop.
bool read_request(int fd, std::string& buf, const std::atomic<bool>& stop) {
  char tmp[4096];
  while (buf.find("\r\n\r\n") == std::string::npos) {
    pollfd p{fd, POLLIN, 0};
    if (stop.load()) return false;
    if (poll(&p, 1, 20) <= 0) continue;
    const ssize_t n = read(fd, tmp, sizeof tmp);
    if (n <= 0) return false;
    buf.append(tmp, static_cast<std::size_t>(n));
  }
  buf.erase(0, buf.find("\r\n\r\n") + 4);
  return true;
}

void write_all(int fd, std::string_view s) {
  while (!s.empty()) {
    const ssize_t n = write(fd, s.data(), s.size());
    if (n <= 0) return;
    s.remove_prefix(static_cast<std::size_t>(n));
  }
}

LoadConfig config_for(uint16_t port) {
  LoadConfig cfg;
  auto addr = raftd::io::make_ipv4_address("127.0.0.1", port);
  REQUIRE(addr);
  cfg.endpoints.push_back({"127.0.0.1:" + std::to_string(port), addr.value()});
  return cfg;
}

RequestTemplate http_get() {
  TemplateOptions o;
  o.kind = TemplateKind::kHttpGet;
  auto t = RequestTemplate::make(o);
  REQUIRE(t);
  return t.value();
}

// Runs a worker; false when this kernel has no usable io_uring (the test then checks nothing).
bool run_worker(LoadWorker& w) {
  const raftd::Status s = w.run();
  if (s.code() == raftd::Code::kUnsupported) {
    MESSAGE("io_uring unavailable: " << s.to_string());
    return false;
  }
  REQUIRE(s.is_ok());
  return true;
}

}  // namespace

TEST_CASE("bench::LoadWorker: a server closing after each response costs no request") {
  TinyServer server([](int fd, const std::atomic<bool>& stop) {
    std::string buf;
    if (read_request(fd, buf, stop)) {
      write_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    }
    close(fd);
  });
  LoadConfig cfg = config_for(server.port());
  cfg.connections = 1;
  cfg.requests = 20;
  const RequestTemplate t = http_get();
  LoadWorker w(cfg, t, 0, {0}, 0, cfg.requests, 0);
  if (!run_worker(w)) return;
  CHECK(w.counters().responses == 20);
  CHECK(w.counters().ok == 20);
  CHECK(w.counters().sent == 20);
  CHECK(w.counters().errors() == 0);
  CHECK(w.counters().reconnects >= 19);
  CHECK(w.histogram().count() == 20);
}

TEST_CASE("bench::LoadWorker: pipelined responses are matched to their requests") {
  // Answers every request of a connection with a status that counts the requests (200, 201,
  // ... then again), in order, several per write when they were pipelined.
  TinyServer server([](int fd, const std::atomic<bool>& stop) {
    std::string buf;
    int n = 0;
    while (read_request(fd, buf, stop)) {
      std::string out;
      do {
        out += "HTTP/1.1 20" + std::to_string(n % 3) + " OK\r\nContent-Length: 0\r\n\r\n";
        ++n;
      } while (buf.find("\r\n\r\n") != std::string::npos && read_request(fd, buf, stop));
      write_all(fd, out);
    }
    close(fd);
  });
  LoadConfig cfg = config_for(server.port());
  cfg.connections = 1;
  cfg.depth = 8;
  cfg.requests = 300;
  const RequestTemplate t = http_get();
  LoadWorker w(cfg, t, 0, {0}, 0, cfg.requests, 0);
  if (!run_worker(w)) return;
  CHECK(w.counters().responses == 300);
  CHECK(w.counters().errors() == 0);
  CHECK(w.counters().status[200] == 100);
  CHECK(w.counters().status[201] == 100);
  CHECK(w.counters().status[202] == 100);
}

TEST_CASE("bench::LoadWorker: a silent server gives timeouts and an open loop counts them") {
  // Accepts and reads, never answers.
  TinyServer server([](int fd, const std::atomic<bool>& stop) {
    std::string buf;
    while (read_request(fd, buf, stop)) {
    }
    close(fd);
  });
  LoadConfig cfg = config_for(server.port());
  cfg.connections = 1;
  cfg.rate = 100;
  cfg.duration_s = 0.2;
  cfg.timeout_ms = 100;
  const RequestTemplate t = http_get();
  LoadWorker w(cfg, t, 0, {0}, cfg.rate, 0, 0);
  if (!run_worker(w)) return;
  const auto& c = w.counters();
  CHECK(c.responses == 0);
  CHECK(c.timeouts >= 1);
  // Every due request is accounted for: sent and timed out, or never sent.
  CHECK(c.timeouts + c.unsent + c.io_errors == 20);
}
