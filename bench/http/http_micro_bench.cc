// Micro benchmarks of the sans-I/O HTTP core: request parsing (the server's hot path) and
// response serialization. Bytes/s are reported so runs with different inputs compare.
#include <benchmark/benchmark.h>

#include <string>

#include "raftd/http/parser.h"
#include "raftd/http/serializer.h"

namespace raftd::http {
namespace {

// What wrk sends by default.
constexpr std::string_view kWrkGet = "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
// A browser-like request with a dozen headers.
constexpr std::string_view kBrowserGet =
    "GET /v1/groups/42/entries?from=100&to=200 HTTP/1.1\r\n"
    "Host: raftd.example:7000\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: session=0123456789abcdef0123456789abcdef; theme=dark\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "Cache-Control: max-age=0\r\n"
    "X-Request-Id: 7f9c2ba4-e88f-11ee-8c3a-0242ac120002\r\n"
    "\r\n";

struct CountingSink : RequestSink {
  std::size_t heads = 0;
  std::size_t body_bytes = 0;
  void on_request_head(Request& r) override {
    benchmark::DoNotOptimize(r.target.data());
    ++heads;
  }
  Flow on_request_body(std::string_view chunk) override {
    body_bytes += chunk.size();
    return Flow::kContinue;
  }
  void on_request_end() override {}
};

// Parses `wire` (any number of pipelined requests) once per iteration.
void parse_loop(benchmark::State& state, std::string_view wire) {
  CountingSink sink;
  RequestParser parser(sink);
  for (auto _ : state) {
    std::string_view rest = wire;
    while (!rest.empty()) {
      const FeedResult r = parser.feed(rest);
      rest.remove_prefix(r.consumed);
      if (r.event == ParseEvent::kError) state.SkipWithError("parse error");
    }
  }
  benchmark::DoNotOptimize(sink.heads);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * wire.size()));
  state.SetItemsProcessed(static_cast<int64_t>(sink.heads));
}

void BM_ParseWrkGet(benchmark::State& state) { parse_loop(state, kWrkGet); }
BENCHMARK(BM_ParseWrkGet);

void BM_ParseBrowserGet(benchmark::State& state) { parse_loop(state, kBrowserGet); }
BENCHMARK(BM_ParseBrowserGet);

void BM_ParsePipelined16(benchmark::State& state) {
  std::string wire;
  for (int i = 0; i < 16; ++i) wire += kWrkGet;
  parse_loop(state, wire);
}
BENCHMARK(BM_ParsePipelined16);

void BM_ParseChunkedBody(benchmark::State& state) {
  const std::size_t chunk = static_cast<std::size_t>(state.range(0));
  std::string wire = "POST /stream HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  BodyEncoder enc(Framing::kChunked, 0);
  const std::string piece(chunk, 'x');
  for (int i = 0; i < 16; ++i) enc.write(wire, piece);
  (void)enc.finish(wire);
  parse_loop(state, wire);
}
BENCHMARK(BM_ParseChunkedBody)->Arg(256)->Arg(16 * 1024);

void BM_SerializeSmallResponse(benchmark::State& state) {
  std::string out;
  const Headers headers = {{"Content-Type", "text/plain"}};
  constexpr std::string_view kBody = "Hello, World!\n";
  for (auto _ : state) {
    out.clear();
    append_response_head(out, 200, headers, Framing::kContentLength, kBody.size(), true);
    out.append(kBody);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * out.size()));
}
BENCHMARK(BM_SerializeSmallResponse);

void BM_SerializeChunked(benchmark::State& state) {
  const std::string piece(static_cast<std::size_t>(state.range(0)), 'y');
  std::string out;
  for (auto _ : state) {
    out.clear();
    BodyEncoder enc(Framing::kChunked, 0);
    for (int i = 0; i < 16; ++i) enc.write(out, piece);
    (void)enc.finish(out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * out.size()));
}
BENCHMARK(BM_SerializeChunked)->Arg(256)->Arg(16 * 1024);

}  // namespace
}  // namespace raftd::http

BENCHMARK_MAIN();
