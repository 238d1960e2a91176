// libFuzzer target for the server's request path: HeaderGuard + ChunkGuard + RequestParser
// (llhttp strict). Input: byte 0 seeds how the rest is split into pieces; the rest is the raw
// stream a client might send. Checks, for every input:
//  - feeding it whole and feeding it in pieces (with body pauses) gives the same transcript
//    (heads, bodies, ends, and whether it was rejected), so no split can smuggle a request;
//  - nothing the parser accepts carries CR or LF inside a name, value or target;
//  - every accepted target is what the handler routes on: a path (an absolute-form target
//    reduced to its path, after its authority matched Host), or "*" for OPTIONS, never with a
//    fragment;
//  - errors are only the documented answers (400, 413, 431, 501, 505);
//  - the parser never reports consuming more than it was given;
//  - every accepted message ends where a strict reader ends it: its head ends with an empty
//    line, a sized body is exactly Content-Length bytes, a chunked body ends with CRLF CRLF;
//  - its framing fields are unambiguous (one Host, one Content-Length, Transfer-Encoding only
//    as one final chunked in HTTP/1.1);
//  - every accepted message, fed alone to a fresh parser, parses the same and ends exactly at
//    its last byte (so its end does not depend on what follows it);
//  - every accepted message, re-serialized by our serializer and parsed again, gives the same
//    method, target, fields and body (what we accept, we can forward unchanged).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "raftd/http/parser.h"
#include "raftd/http/serializer.h"

namespace {

using raftd::http::BodyEncoder;
using raftd::http::FeedResult;
using raftd::http::Flow;
using raftd::http::Framing;
using raftd::http::Header;
using raftd::http::Headers;
using raftd::http::iequals;
using raftd::http::is_framing_header;
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

struct Message {
  Request request;
  std::string body;
  std::size_t end = 0;  // offset just past the message in the input (whole feeding)
};

struct Recorder : RequestSink {
  std::string text;
  std::vector<Message> messages;
  bool pause = false;
  bool flip = false;
  void on_request_head(Request& r) override {
    check(clean(r.method) && clean(r.target));
    check(r.target.starts_with('/') || (r.target == "*" && r.method == "OPTIONS"));
    check(r.target.find('#') == std::string::npos);
    text += "\nH " + r.method + " " + r.target + (r.keep_alive ? " ka" : " close");
    for (const auto& h : r.headers) {
      check(clean(h.name) && clean(h.value) && !h.name.empty());
      text += "\n" + h.name + ":" + h.value;
    }
    text += "\nB ";
    messages.push_back(Message{r, {}, 0});
  }
  Flow on_request_body(std::string_view chunk) override {
    check(!chunk.empty());
    text.append(chunk);
    messages.back().body.append(chunk);
    flip = !flip;
    return pause && flip ? Flow::kPause : Flow::kContinue;
  }
  void on_request_end() override { text += "\nE"; }
};

ParserLimits fuzz_limits() {
  ParserLimits limits;
  limits.header_bytes_max = 2048;
  limits.header_count_max = 16;
  limits.body_bytes_max = 4096;
  return limits;
}

std::string run(std::string_view input, std::uint32_t seed, bool split, Recorder& rec) {
  rec.pause = split;
  RequestParser parser(rec, fuzz_limits());
  std::uint32_t x = seed | 1;
  std::size_t offset = 0;
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
      offset += r.consumed;
      if (r.event == ParseEvent::kError) {
        const int s = parser.error_status();
        check(s == 400 || s == 413 || s == 431 || s == 501 || s == 505);
        // Which error wins may depend on the split when a header section holds two faults
        // (the guard sees a whole piece before llhttp parses it), so only "rejected" is
        // compared; everything delivered before the rejection must match exactly.
        return rec.text + "\nERROR";
      }
      if (r.event == ParseEvent::kMessageEnd) rec.messages.back().end = offset;
      if (r.event == ParseEvent::kNeedMore) break;
    }
    offset += piece.size();  // only after kNeedMore, which consumed everything
  }
  return rec.text + (parser.mid_message() ? "\nPARTIAL" : "\nOK");
}

// Where a strict reader ends the message in `raw` (which starts at the message's first byte,
// possibly after empty lines): checked against what the parser did.
void check_strict_end(const Message& m, std::string_view raw) {
  while (raw.starts_with("\r\n")) raw.remove_prefix(2);
  const std::size_t head_end = raw.find("\r\n\r\n");
  check(head_end != std::string_view::npos);
  const std::size_t body_start = head_end + 4;
  switch (m.request.framing) {
    case Framing::kNone: check(raw.size() == body_start && m.body.empty()); break;
    case Framing::kContentLength:
      check(raw.size() == body_start + m.request.content_length);
      check(raw.substr(body_start) == m.body);
      break;
    case Framing::kChunked: check(raw.size() >= body_start + 5 && raw.ends_with("\r\n\r\n")); break;
    case Framing::kUntilClose: check(false); break;
  }
}

// The framing fields of an accepted request say one thing only: at most one Host (exactly one
// in HTTP/1.1), at most one Content-Length, and Transfer-Encoding only as a single "chunked" in
// an HTTP/1.1 message without Content-Length.
void check_framing_fields(const Request& r) {
  std::size_t hosts = 0;
  std::size_t lengths = 0;
  std::size_t codings = 0;
  for (const Header& h : r.headers) {
    if (iequals(h.name, "Host")) ++hosts;
    if (iequals(h.name, "Content-Length")) ++lengths;
    if (iequals(h.name, "Transfer-Encoding")) {
      ++codings;
      check(iequals(h.value, "chunked"));
    }
  }
  check(hosts <= 1 && (r.version_minor == 0 || hosts == 1));
  check(lengths <= 1 && codings <= 1);
  if (codings == 1) check(lengths == 0 && r.version_minor >= 1 && r.framing == Framing::kChunked);
  if (r.framing == Framing::kChunked) check(codings == 1);
}

// The fields a re-serialized request keeps: everything but framing fields and Host (which
// append_request_head writes itself).
Headers plain_fields(const Headers& headers) {
  Headers out;
  for (const Header& h : headers) {
    if (!is_framing_header(h.name) && !iequals(h.name, "Host")) out.push_back(h);
  }
  return out;
}

void check_reserialized(const Message& m) {
  const Request& r = m.request;
  const Headers fields = plain_fields(r.headers);
  const std::string host(r.header("Host").value_or(""));
  const Framing framing = m.body.empty() ? Framing::kNone : Framing::kChunked;
  std::string wire;
  raftd::http::append_request_head(wire, r.method, r.target, host, fields, framing, 0);
  BodyEncoder encoder(framing, 0);
  if (!m.body.empty()) encoder.write(wire, m.body);
  encoder.finish(wire);

  Recorder again;
  // Room for what the serializer adds (framing fields, ": " after each name).
  ParserLimits limits = fuzz_limits();
  limits.header_bytes_max *= 2;
  limits.header_count_max += 2;
  RequestParser parser(again, limits);
  const FeedResult fr = parser.feed(wire);
  check(fr.event == ParseEvent::kMessageEnd && fr.consumed == wire.size());
  check(again.messages.size() == 1);
  const Message& m2 = again.messages[0];
  check(m2.request.method == r.method && m2.request.target == r.target);
  check(m2.body == m.body);
  const Headers fields2 = plain_fields(m2.request.headers);
  check(fields2.size() == fields.size());
  for (std::size_t i = 0; i < fields.size(); ++i) {
    check(fields2[i].name == fields[i].name && fields2[i].value == fields[i].value);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  Recorder whole_rec;
  Recorder split_rec;
  const std::string whole = run(input, data[0], false, whole_rec);
  const std::string pieces = run(input, data[0], true, split_rec);
  check(whole == pieces);

  std::size_t start = 0;
  for (const Message& m : whole_rec.messages) {
    if (m.end == 0) break;  // did not end (partial, or rejected during its body)
    const std::string_view raw = input.substr(start, m.end - start);
    check_strict_end(m, raw);
    check_framing_fields(m.request);
    Recorder alone;
    check(run(raw, 0, false, alone).ends_with("\nOK"));
    check(alone.messages.size() == 1 && alone.messages[0].end == raw.size());
    check(alone.messages[0].body == m.body);
    check_reserialized(m);
    start = m.end;
  }
  return 0;
}
