// HTTP/1.1 message heads as plain values: what a parser produces and a serializer consumes.
// Header names keep the case they arrived with; lookups are case-insensitive (RFC 9110 5.1).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace raftd::http {

struct Header {
  std::string name;
  std::string value;
};
using Headers = std::vector<Header>;

bool iequals(std::string_view a, std::string_view b);

// First value of `name`, or nullopt.
std::optional<std::string_view> find_header(const Headers& headers, std::string_view name);

// How a body is delimited on the wire.
enum class Framing : std::uint8_t {
  kNone,           // no body (Content-Length: 0, HEAD, 1xx/204/304)
  kContentLength,  // exactly content_length bytes
  kChunked,        // Transfer-Encoding: chunked
  kUntilClose,     // responses only: the body ends when the server closes the connection
};

struct Request {
  std::string method;  // as sent, e.g. "GET"
  // Path and query, e.g. "/v1/groups/3?x=1" ("*" for OPTIONS * only). A request sent in
  // absolute-form ("http://host/path?q") arrives reduced to its path and query, its authority
  // checked equal to Host (doc/http.md). The client sends it as it is.
  std::string target;
  std::uint8_t version_minor = 1;
  Headers headers;
  Framing framing = Framing::kNone;
  std::uint64_t content_length = 0;  // meaningful when framing == kContentLength
  bool keep_alive = true;            // false: the client asked to close, or HTTP/1.0 default
  bool expect_continue = false;      // "Expect: 100-continue" was sent

  std::optional<std::string_view> header(std::string_view name) const {
    return find_header(headers, name);
  }
};

struct ResponseHead {
  int status = 0;
  std::string reason;
  std::uint8_t version_minor = 1;
  Headers headers;
  Framing framing = Framing::kNone;
  std::uint64_t content_length = 0;
  bool keep_alive = true;

  std::optional<std::string_view> header(std::string_view name) const {
    return find_header(headers, name);
  }
};

// Whether a body continues or waits: returned by body sinks. kPause stops the parser right
// after the chunk just delivered; the owner resumes by feeding again.
enum class Flow : std::uint8_t { kContinue, kPause };

}  // namespace raftd::http
