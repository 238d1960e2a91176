#include "raftd/http/serializer.h"

#include <algorithm>
#include <charconv>
#include <ctime>

#include "raftd/base/assert.h"

namespace raftd::http {

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

bool is_framing_header(std::string_view name) {
  return iequals(name, "Content-Length") || iequals(name, "Transfer-Encoding") ||
         iequals(name, "Connection");
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

bool is_field_value(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u == '\t' || (u >= 0x20 && u != 0x7f);
  });
}

bool is_request_target(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f;
  });
}

namespace {

void append_uint(std::string& out, std::uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;
  out.append(buf, end);
}

// The Date header value (RFC 9110 5.6.7), formatted at most once a second per thread.
std::string_view http_date() {
  thread_local std::time_t cached_at = 0;
  thread_local char buf[64];
  thread_local std::size_t len = 0;
  const std::time_t now = std::time(nullptr);
  if (now != cached_at) {
    std::tm tm{};
    gmtime_r(&now, &tm);
    len = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached_at = now;
  }
  return {buf, len};
}

// A caller's field. A name or value a reader could split differently (a CR or LF inside, a
// space in the name) would let the caller's data add fields or end the head early.
void append_field(std::string& out, const Header& h) {
  RAFTD_ASSERT(!is_framing_header(h.name), "framing headers are written by the serializer");
  RAFTD_ASSERT(is_token(h.name) && is_field_value(h.value),
               "header field name is not a token, or its value holds a CTL (CR, LF, NUL)");
  out.append(h.name).append(": ").append(h.value).append("\r\n");
}

void append_fields(std::string& out, const Headers& headers, Framing framing,
                   std::uint64_t content_length) {
  for (const Header& h : headers) append_field(out, h);
  if (framing == Framing::kChunked) {
    out.append("Transfer-Encoding: chunked\r\n");
  } else {
    RAFTD_ASSERT(framing != Framing::kUntilClose, "raftd never sends close-delimited bodies");
    out.append("Content-Length: ");
    append_uint(out, framing == Framing::kContentLength ? content_length : 0);
    out.append("\r\n");
  }
}

}  // namespace

void append_response_head(std::string& out, int status, const Headers& headers, Framing framing,
                          std::uint64_t content_length, bool keep_alive,
                          std::uint8_t request_minor) {
  RAFTD_ASSERT(status >= 200 && status <= 999, "final responses only");
  out.append("HTTP/1.1 ");
  append_uint(out, static_cast<std::uint64_t>(status));
  out.push_back(' ');
  out.append(reason_phrase(status)).append("\r\nDate: ").append(http_date()).append("\r\n");
  // 204 and 304 never carry a body or framing headers (RFC 9110 8.6, 15.3.5).
  if (status == 204 || status == 304) {
    for (const Header& h : headers) append_field(out, h);
  } else {
    append_fields(out, headers, framing, content_length);
  }
  if (!keep_alive) {
    out.append("Connection: close\r\n");
  } else if (request_minor == 0) {
    out.append("Connection: keep-alive\r\n");
  }
  out.append("\r\n");
}

void append_request_head(std::string& out, std::string_view method, std::string_view target,
                         std::string_view host, const Headers& headers, Framing framing,
                         std::uint64_t content_length) {
  RAFTD_ASSERT(is_token(method) && is_request_target(target) && is_field_value(host),
               "request method is not a token or the target is not visible ASCII");
  out.append(method).push_back(' ');
  out.append(target).append(" HTTP/1.1\r\nHost: ").append(host).append("\r\n");
  if (framing == Framing::kNone && (method == "GET" || method == "HEAD")) {
    for (const Header& h : headers) append_field(out, h);
  } else {
    append_fields(out, headers, framing, content_length);
  }
  out.append("\r\n");
}

void BodyEncoder::write(std::string& out, std::string_view data) {
  if (data.empty()) return;
  switch (framing_) {
    case Framing::kChunked: {
      char hex[20];
      auto [end, ec] = std::to_chars(hex, hex + sizeof hex, data.size(), 16);
      (void)ec;
      out.append(hex, end).append("\r\n").append(data).append("\r\n");
      break;
    }
    case Framing::kContentLength:
      RAFTD_ASSERT(data.size() <= remaining_, "body longer than its Content-Length");
      remaining_ -= data.size();
      out.append(data);
      break;
    case Framing::kNone:
    case Framing::kUntilClose: RAFTD_ASSERT(false, "body data written to a message without body");
  }
}

bool BodyEncoder::finish(std::string& out) {
  if (framing_ == Framing::kChunked) out.append(kLastChunk);
  const bool complete = remaining_ == 0;
  framing_ = Framing::kNone;
  return complete;
}

}  // namespace raftd::http
