// Sans-I/O HTTP/1.1 parsers over llhttp (strict mode) for requests (server side) and responses
// (client side). They never read a socket: the owner feeds bytes in whatever pieces arrived and
// gets events back; the result does not depend on how the bytes were split.
//
// Defenses against request smuggling (see doc/http.md): llhttp built with LLHTTP_STRICT_MODE
// (bare CR), a HeaderGuard pre-scan of every header section (obs-fold, bare CR, bare LF, CTLs,
// extra spaces in the request line), a ChunkGuard pre-scan of every chunked body (bare LF,
// obs-fold in trailers, limits) whose end llhttp must agree with, our own checks of the
// framing fields (Transfer-Encoding, Content-Length, Host; check_fields in parser.cc) and all
// lenient flags off. Any error is final: the owner answers error_status() and closes.
//
// Threading: one parser per connection, used by one thread. Not movable (llhttp keeps a
// pointer to it). Callbacks into the sink run inside feed().
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "raftd/http/chunk_guard.h"
#include "raftd/http/header_guard.h"
#include "raftd/http/limits.h"
#include "raftd/http/message.h"

namespace raftd::http {

struct ParserLimits {
  std::size_t header_bytes_max = kHeaderBytesMax;
  std::size_t header_count_max = kHeaderCountMax;
  std::uint64_t body_bytes_max = kBodyBytesMaxDefault;
};

// What one call of feed() ended with.
enum class ParseEvent : std::uint8_t {
  kNeedMore,    // all bytes consumed; the message (if any) continues in later bytes
  kBodyPaused,  // the sink returned Flow::kPause; feed the unconsumed rest later
  kMessageEnd,  // a message ended; bytes after `consumed` belong to the next message
  kError,       // malformed or over a limit; see error_status()/error_reason()
};

struct FeedResult {
  std::size_t consumed = 0;
  ParseEvent event = ParseEvent::kNeedMore;
};

// Shared machinery: llhttp, the guard, header accumulation, limits.
class MessageParser {
 public:
  MessageParser(const MessageParser&) = delete;
  MessageParser& operator=(const MessageParser&) = delete;

  // Consumes a prefix of `data` (see ParseEvent). After kMessageEnd, the next call starts the
  // next message. After kError every call returns kError.
  FeedResult feed(std::string_view data);
  // The last feed() returned kBodyPaused. The body may have been paused on its very last byte:
  // its end is then reported by the next feed(), which may be empty (the owner must make that
  // call on resume even when no input waits, or the message never ends).
  bool body_paused() const { return body_paused_; }

  // The status code to answer with (400, 413, 431, 501, 505; 502 for responses) and a short
  // reason; 0 if no error.
  int error_status() const { return error_status_; }
  std::string_view error_reason() const { return error_reason_; }
  // Bytes of a message that has not ended were consumed (an EOF now truncates a message).
  bool mid_message() const { return in_message_ || guard_.section_bytes() > 0; }
  // The header section of the current message is complete (its body may still be arriving).
  bool head_done() const { return head_done_; }

  // The body cap for the message being parsed; may be raised by the owner while handling its
  // head (for example, for a streaming endpoint).
  void set_body_bytes_max(std::uint64_t bytes) { limits_.body_bytes_max = bytes; }

 protected:
  MessageParser(llhttp_type_t type, const ParserLimits& limits);
  virtual ~MessageParser() = default;

  // Called when the head is complete. Returns 0, 1 (no body follows: HEAD responses), or -1
  // after fail().
  virtual int head_complete() = 0;
  virtual Flow body(std::string_view chunk) = 0;
  // The message ended. Returns true to report kMessageEnd, false to skip it silently (1xx).
  virtual bool message_complete() = 0;

  int fail(int status, std::string_view reason);
  llhttp_t* llhttp() { return &parser_; }
  Headers& headers() { return headers_; }
  std::string& url() { return url_; }
  std::uint64_t body_bytes() const { return body_bytes_; }
  const ParserLimits& limits() const { return limits_; }
  Framing framing_after_head();

  FeedResult finish_at_eof();

 private:
  static const llhttp_settings_t kSettings;
  static MessageParser& self(llhttp_t* p) { return *static_cast<MessageParser*>(p->data); }
  static int cb_message_begin(llhttp_t* p);
  static int cb_url(llhttp_t* p, const char* at, std::size_t n);
  static int cb_status(llhttp_t* p, const char* at, std::size_t n);
  static int cb_header_field(llhttp_t* p, const char* at, std::size_t n);
  static int cb_header_field_complete(llhttp_t* p);
  static int cb_header_value(llhttp_t* p, const char* at, std::size_t n);
  static int cb_headers_complete(llhttp_t* p);
  static int cb_chunk_header(llhttp_t* p);
  static int cb_body(llhttp_t* p, const char* at, std::size_t n);
  static int cb_message_complete(llhttp_t* p);
  FeedResult feed_once(std::string_view data);
  void end_message();

  llhttp_t parser_;
  HeaderGuard guard_;
  ChunkGuard chunk_guard_;
  bool chunk_guard_on_ = false;  // the current message has a chunked body
  // Bytes from llhttp's position on that chunk_guard_ has scanned and passed: llhttp is given
  // no more than these.
  std::size_t guarded_ = 0;
  ParserLimits limits_;
  // The current message's fields are headers_[0, header_count_); until its head is complete the
  // rest are an earlier message's, kept for their strings' capacity.
  Headers headers_;
  std::size_t header_count_ = 0;
  std::string url_;
  std::string reason_;
  bool in_value_ = false;
  bool in_message_ = false;
  bool head_done_ = false;
  bool message_done_ = false;
  bool message_reported_ = false;
  bool body_paused_ = false;  // the last feed_once() returned kBodyPaused
  std::uint64_t body_bytes_ = 0;
  int error_status_ = 0;
  std::string error_reason_;

 protected:
  std::string& status_reason() { return reason_; }
};

// Receives one request's pieces, in order: head, body chunks (never empty), end.
class RequestSink {
 public:
  // The request's head. The sink may move from `request`.
  virtual void on_request_head(Request& request) = 0;
  virtual Flow on_request_body(std::string_view chunk) = 0;
  virtual void on_request_end() = 0;

 public:
  virtual ~RequestSink() = default;
};

class RequestParser final : public MessageParser {
 public:
  RequestParser(RequestSink& sink, const ParserLimits& limits = {});

 private:
  int head_complete() override;
  Flow body(std::string_view chunk) override;
  bool message_complete() override;

  RequestSink& sink_;
  Request request_;
};

class ResponseSink {
 public:
  virtual void on_response_head(ResponseHead& head) = 0;
  virtual Flow on_response_body(std::string_view chunk) = 0;
  virtual void on_response_end() = 0;

 public:
  virtual ~ResponseSink() = default;
};

// Parses responses; 1xx interim responses (100 Continue) are skipped, at most
// kInterimResponsesMax before each final one (502 beyond). A 101 is an error: raftd never asks
// to switch protocols. A body over the body limit is a 413 (the caller's cap, not the server's
// fault).
class ResponseParser final : public MessageParser {
 public:
  explicit ResponseParser(ResponseSink& sink, const ParserLimits& limits = response_limits());

  static ParserLimits response_limits() {
    return ParserLimits{kResponseHeaderBytesMax, kHeaderCountMax, UINT64_MAX};
  }
  // The next response answers a HEAD request: it has no body whatever its headers say.
  void expect_no_body(bool no_body) { no_body_ = no_body; }
  // The peer closed the connection. Ends an EOF-delimited body (kMessageEnd), or reports a
  // truncated message (kError), or nothing (kNeedMore) between messages.
  FeedResult finish() { return finish_at_eof(); }

 private:
  int head_complete() override;
  Flow body(std::string_view chunk) override;
  bool message_complete() override;

  ResponseSink& sink_;
  ResponseHead head_;
  bool no_body_ = false;
  bool interim_ = false;
  std::size_t interim_count_ = 0;  // interim responses before the current final one
};

}  // namespace raftd::http
