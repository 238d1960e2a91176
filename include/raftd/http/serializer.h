// Serialization of HTTP/1.1 heads and body framing into a caller's buffer (sans-I/O; the
// server and client append to their send buffers).
//
// Framing headers (Content-Length, Transfer-Encoding, Connection) are written from the
// arguments, never from the caller's header list: a caller's list containing them is a
// programmer error (asserted), so a handler cannot produce a message whose framing disagrees
// with its body.
//
// Chunked bodies: hex(len) CRLF data CRLF ... "0" CRLF CRLF. An empty write emits nothing (a
// zero-length chunk would end the body early).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "raftd/http/message.h"

namespace raftd::http {

inline constexpr std::string_view kLastChunk = "0\r\n\r\n";
inline constexpr std::string_view kContinue100 = "HTTP/1.1 100 Continue\r\n\r\n";

// "OK", "Not Found", ...; "Unknown" for codes without a registered phrase.
std::string_view reason_phrase(int status);

// True for a header the serializer owns (Content-Length, Transfer-Encoding, Connection).
bool is_framing_header(std::string_view name);

// What the serializer may write without a reader finding a different message: a method or
// field name must be a token (RFC 9110 5.6.2), a field value must hold no CTL but HTAB (no CR,
// LF or NUL that would end the line or the head early; RFC 9110 5.5), a request-target must be
// visible ASCII and not empty (no SP that would end it early; RFC 9112 3.2). The serializer
// asserts these; callers that take them from data (Client::request) check them first.
bool is_token(std::string_view s);
bool is_field_value(std::string_view s);
bool is_request_target(std::string_view s);

// Status line, Date, the caller's headers, framing headers, blank line. `framing` is kNone,
// kContentLength or kChunked. `keep_alive` false adds "Connection: close"; true, towards an
// HTTP/1.0 client (request_minor 0), adds "Connection: keep-alive", which 1.0 needs.
void append_response_head(std::string& out, int status, const Headers& headers, Framing framing,
                          std::uint64_t content_length, bool keep_alive,
                          std::uint8_t request_minor = 1);

// Request line, Host, the caller's headers, framing headers, blank line.
void append_request_head(std::string& out, std::string_view method, std::string_view target,
                         std::string_view host, const Headers& headers, Framing framing,
                         std::uint64_t content_length);

// Tracks one outgoing body and frames what is written into it.
class BodyEncoder {
 public:
  BodyEncoder() = default;
  BodyEncoder(Framing framing, std::uint64_t content_length)
      : framing_(framing), remaining_(framing == Framing::kContentLength ? content_length : 0) {}

  // Appends `data` framed. Writing past a declared Content-Length, or any data into a
  // kNone body, is a programmer error.
  void write(std::string& out, std::string_view data);
  // Ends the body (the last chunk for chunked). Returns false when a declared Content-Length
  // was not reached: the message is truncated and the connection must be closed.
  bool finish(std::string& out);
  std::uint64_t remaining_bytes() const { return remaining_; }
  Framing framing() const { return framing_; }

 private:
  Framing framing_ = Framing::kNone;
  std::uint64_t remaining_ = 0;
};

}  // namespace raftd::http
