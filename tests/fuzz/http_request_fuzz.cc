// libFuzzer target for the server's request path: HeaderGuard + RequestParser (llhttp strict).
// Input: byte 0 seeds how the rest is split into pieces; the rest is the raw stream a client
// might send. Checks, for every input:
//  - feeding it whole and feeding it in pieces (with body pauses) gives the same transcript
//    (heads, bodies, ends, and whether it was rejected), so no split can smuggle a request;
//  - nothing the parser accepts carries CR or LF inside a name, value or target;
//  - errors are only the documented answers (400, 413, 431, 505);
//  - the parser never reports consuming more than it was given.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "raftd/http/parser.h"

namespace {

using raftd::http::FeedResult;
using raftd::http::Flow;
using raftd::http::ParseEvent;
using raftd::http::ParserLimits;
using raftd::http::Request;
using raftd::http::RequestParser;
using raftd::http::RequestSink;

void check(bool ok) {
  if (!ok) std::abort();
}

bool clean(std::string_view s) {
  return s.find('\r') == std::string_view::npos && s.find('\n') == std::string_view::npos;
}

struct Recorder : RequestSink {
  std::string text;
  bool pause = false;
  bool flip = false;
  void on_request_head(Request& r) override {
    check(clean(r.method) && clean(r.target));
    text += "\nH " + r.method + " " + r.target + (r.keep_alive ? " ka" : " close");
    for (const auto& h : r.headers) {
      check(clean(h.name) && clean(h.value) && !h.name.empty());
      text += "\n" + h.name + ":" + h.value;
    }
    text += "\nB ";
  }
  Flow on_request_body(std::string_view chunk) override {
    check(!chunk.empty());
    text.append(chunk);
    flip = !flip;
    return pause && flip ? Flow::kPause : Flow::kContinue;
  }
  void on_request_end() override { text += "\nE"; }
};

std::string run(std::string_view input, std::uint32_t seed, bool split) {
  Recorder rec;
  rec.pause = split;
  ParserLimits limits;
  limits.header_bytes_max = 2048;
  limits.header_count_max = 16;
  limits.body_bytes_max = 4096;
  RequestParser parser(rec, limits);
  std::uint32_t x = seed | 1;
  while (!input.empty()) {
    std::size_t n = input.size();
    if (split) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      n = std::min<std::size_t>(n, 1 + x % 17);
    }
    std::string_view piece = input.substr(0, n);
    input.remove_prefix(n);
    for (;;) {
      const FeedResult r = parser.feed(piece);
      check(r.consumed <= piece.size());
      piece.remove_prefix(r.consumed);
      if (r.event == ParseEvent::kError) {
        const int s = parser.error_status();
        check(s == 400 || s == 413 || s == 431 || s == 505);
        // Which error wins may depend on the split when a header section holds two faults
        // (the guard sees a whole piece before llhttp parses it), so only "rejected" is
        // compared; everything delivered before the rejection must match exactly.
        return rec.text + "\nERROR";
      }
      if (r.event == ParseEvent::kNeedMore) break;
    }
  }
  return rec.text + (parser.mid_message() ? "\nPARTIAL" : "\nOK");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::string whole = run(input, data[0], false);
  const std::string pieces = run(input, data[0], true);
  check(whole == pieces);
  return 0;
}
