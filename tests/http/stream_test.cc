// 1 GiB through client and server in both directions at once, with RSS measured: the client
// streams a chunked request body from a source, the server echoes every piece into a chunked
// response (pausing the request body while its send buffer is full), and the client checks
// every byte it gets back. Memory must stay bounded by the layer's buffers, not the body.
#include <doctest/doctest.h>

#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "http_test_util.h"
#include "raftd/http/client.h"
#include "raftd/http/server.h"

namespace raftd::http {
namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t kStreamBytes = 1ull << 30;
constexpr std::size_t kPatternPeriod = 251;  // prime: pieces never line up with it
constexpr std::size_t kPieceBytes = 64 * 1024;
// Growth allowed over the warmed-up baseline. The layer holds well under 4 MiB per direction;
// buffering the body whole would cost 1 GiB. Sanitizer builds limit the allocator's quarantine
// (see tests/http/meson.build) so freed buffers do not count as growth.
constexpr std::size_t kRssGrowthMax = 64u << 20;
constexpr std::uint64_t kWarmupBytes = 32u << 20;

const std::string& pattern_buffer() {
  static const std::string buf = [] {
    std::string s(kPieceBytes + kPatternPeriod, '\0');
    for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>(i % kPatternPeriod);
    return s;
  }();
  return buf;
}

std::string_view pattern_at(std::uint64_t offset, std::size_t n) {
  return std::string_view(pattern_buffer()).substr(offset % kPatternPeriod, n);
}

// Echoes the request body into a chunked response, with backpressure both ways.
class EchoHandler : public Handler {
 public:
  void on_headers(Exchange& ex) override {
    ex.add_header("Content-Type", "application/octet-stream");
  }
  Flow on_body(Exchange& ex, std::string_view chunk) override {
    echoed += chunk.size();
    if (ex.write_body(chunk)) return Flow::kContinue;
    ++pauses;
    return Flow::kPause;  // resumed from on_drained
  }
  void on_drained(Exchange& ex) override { ex.resume_body(); }
  void on_end(Exchange& ex) override { ex.finish(); }
  std::uint64_t echoed = 0;
  std::uint64_t pauses = 0;
};

}  // namespace

TEST_SUITE("http") {
  TEST_CASE("http::stream: 1 GiB chunked both ways through client and server, RSS bounded") {
    auto reactor = testing::make_reactor();
    EchoHandler handler;
    ServerOptions so;
    so.body_bytes_max = UINT64_MAX;
    auto started = Server::start(*reactor, handler, so);
    REQUIRE(started.is_ok());
    auto server = std::move(started).value();
    Client client(*reactor);

    std::uint64_t sent = 0;
    std::uint64_t received = 0;
    bool mismatch = false;
    std::size_t baseline = 0;
    std::size_t peak = 0;
    std::uint64_t next_sample = kWarmupBytes;
    std::optional<Status> done;

    ClientRequest req;
    req.method = "POST";
    req.target = "/echo";
    req.source = [&](std::string& out, std::size_t max_bytes, bool& finished) {
      const std::size_t n = static_cast<std::size_t>(
          std::min<std::uint64_t>({kPieceBytes, max_bytes, kStreamBytes - sent}));
      out.append(pattern_at(sent, n));
      sent += n;
      finished = sent == kStreamBytes;
      return Status::ok();
    };
    ResponseCallbacks cb;
    cb.on_head = [&](const ResponseHead& head) {
      CHECK(head.status == 200);
      CHECK(head.framing == Framing::kChunked);
    };
    RequestId id = 0;
    std::uint64_t pieces = 0;
    std::uint64_t client_pauses = 0;
    cb.on_body = [&](std::string_view chunk) {
      if (chunk != pattern_at(received, chunk.size())) mismatch = true;
      received += chunk.size();
      // Now and then the consumer is "busy": it pauses the response and resumes a turn later.
      if (++pieces % 64 == 0) {
        ++client_pauses;
        REQUIRE(reactor->post([&] { client.resume(id); }));
        return Flow::kPause;
      }
      if (received >= next_sample) {
        const std::size_t rss = testing::rss_bytes();
        if (baseline == 0) baseline = rss;
        peak = std::max(peak, rss);
        next_sample += 16u << 20;
      }
      return Flow::kContinue;
    };
    cb.on_done = [&](Status st) { done = std::move(st); };
    id = client.request("127.0.0.1", server->port(), std::move(req), std::move(cb));

    REQUIRE(testing::run_until(
        *reactor, [&] { return done.has_value(); }, 900s));
    CHECK_MESSAGE(done->is_ok(), done->to_string());
    CHECK(sent == kStreamBytes);
    CHECK(handler.echoed == kStreamBytes);
    CHECK(received == kStreamBytes);
    CHECK_FALSE(mismatch);
    MESSAGE("RSS baseline " << (baseline >> 20) << " MiB, peak " << (peak >> 20)
                            << " MiB, server body pauses " << handler.pauses
                            << ", client body pauses " << client_pauses);
    CHECK(handler.pauses > 0);
    CHECK(client_pauses > 0);
    REQUIRE(baseline > 0);
    CHECK(peak - baseline < kRssGrowthMax);

    client.close();
    server->close();
    testing::run_until(*reactor, [&] { return client.closed() && server->closed(); });
    server.reset();
    reactor->shutdown();
  }
}

}  // namespace raftd::http
