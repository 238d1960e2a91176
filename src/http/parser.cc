#include "raftd/http/parser.h"

#include <algorithm>
#include <cctype>

namespace raftd::http {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::optional<std::string_view> find_header(const Headers& headers, std::string_view name) {
  for (const Header& h : headers) {
    if (iequals(h.name, name)) return std::string_view(h.value);
  }
  return std::nullopt;
}

namespace {

llhttp_settings_t make_settings(llhttp_cb message_begin, llhttp_data_cb url, llhttp_data_cb status,
                                llhttp_data_cb field, llhttp_cb field_complete,
                                llhttp_data_cb value, llhttp_cb headers_complete,
                                llhttp_cb chunk_header, llhttp_data_cb body,
                                llhttp_cb message_complete) {
  llhttp_settings_t s;
  llhttp_settings_init(&s);
  s.on_message_begin = message_begin;
  s.on_url = url;
  s.on_status = status;
  s.on_header_field = field;
  s.on_header_field_complete = field_complete;
  s.on_header_value = value;
  s.on_headers_complete = headers_complete;
  s.on_chunk_header = chunk_header;
  s.on_body = body;
  s.on_message_complete = message_complete;
  return s;
}

void trim_trailing_ows(std::string& s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.pop_back();
}

}  // namespace

const llhttp_settings_t MessageParser::kSettings = make_settings(
    &MessageParser::cb_message_begin, &MessageParser::cb_url, &MessageParser::cb_status,
    &MessageParser::cb_header_field, &MessageParser::cb_header_field_complete,
    &MessageParser::cb_header_value, &MessageParser::cb_headers_complete,
    &MessageParser::cb_chunk_header, &MessageParser::cb_body, &MessageParser::cb_message_complete);

MessageParser::MessageParser(llhttp_type_t type, const ParserLimits& limits) : limits_(limits) {
  llhttp_init(&parser_, type, &kSettings);
  parser_.data = this;
}

int MessageParser::fail(int status, std::string_view reason) {
  if (error_status_ == 0) {
    error_status_ = status;
    error_reason_ = std::string(reason);
  }
  return -1;
}

int MessageParser::cb_message_begin(llhttp_t* p) {
  MessageParser& m = self(p);
  m.headers_.clear();
  m.url_.clear();
  m.reason_.clear();
  m.in_value_ = false;
  m.in_message_ = true;
  m.head_done_ = false;
  m.body_bytes_ = 0;
  return 0;
}

int MessageParser::cb_url(llhttp_t* p, const char* at, std::size_t n) {
  self(p).url_.append(at, n);
  return 0;
}

int MessageParser::cb_status(llhttp_t* p, const char* at, std::size_t n) {
  self(p).reason_.append(at, n);
  return 0;
}

int MessageParser::cb_header_field(llhttp_t* p, const char* at, std::size_t n) {
  MessageParser& m = self(p);
  if (m.head_done_) return 0;
  if (m.headers_.empty() || m.in_value_) {
    if (m.headers_.size() >= m.limits_.header_count_max) {
      return m.fail(431, "too many header fields");
    }
    m.headers_.emplace_back();
    m.in_value_ = false;
  }
  m.headers_.back().name.append(at, n);
  return 0;
}

// A field name is finished when llhttp says so (a value may be empty and get no callback).
// Trailers (after a chunked body) are parsed for framing only and dropped, so they cannot
// smuggle fields into the head.
int MessageParser::cb_header_field_complete(llhttp_t* p) {
  MessageParser& m = self(p);
  if (m.head_done_) return 0;
  // llhttp 8.1 accepts a line starting with ':' (an empty field name, which RFC 9110 5.1 does
  // not allow); its value would otherwise be glued onto the previous field. Found by fuzzing.
  if (m.headers_.empty() || m.in_value_ || m.headers_.back().name.empty()) {
    return m.fail(400, "empty header field name");
  }
  m.in_value_ = true;
  return 0;
}

int MessageParser::cb_header_value(llhttp_t* p, const char* at, std::size_t n) {
  MessageParser& m = self(p);
  if (m.head_done_ || m.headers_.empty()) return 0;
  m.headers_.back().value.append(at, n);
  return 0;
}

int MessageParser::cb_headers_complete(llhttp_t* p) {
  MessageParser& m = self(p);
  m.head_done_ = true;
  for (Header& h : m.headers_) trim_trailing_ows(h.value);
  if (p->http_major != 1) return m.fail(505, "only HTTP/1.x is supported");
  return m.head_complete();
}

// The chunk's size is known before its data: refusing here keeps the body a sink sees within
// the limit, whatever the split.
int MessageParser::cb_chunk_header(llhttp_t* p) {
  MessageParser& m = self(p);
  if (p->content_length > m.limits_.body_bytes_max - m.body_bytes_) {
    return m.fail(413, "body too large");
  }
  return 0;
}

int MessageParser::cb_body(llhttp_t* p, const char* at, std::size_t n) {
  MessageParser& m = self(p);
  if (n == 0) return 0;
  m.body_bytes_ += n;
  if (m.body_bytes_ > m.limits_.body_bytes_max) return m.fail(413, "body too large");
  return m.body(std::string_view(at, n)) == Flow::kPause ? HPE_PAUSED : 0;
}

int MessageParser::cb_message_complete(llhttp_t* p) {
  MessageParser& m = self(p);
  m.message_done_ = true;
  m.message_reported_ = m.message_complete();
  // Pausing here hands each message to the owner one at a time (pipelining) and lets the
  // guard restart at the exact first byte of the next message.
  return HPE_PAUSED;
}

Framing MessageParser::framing_after_head() {
  if (parser_.flags & F_CHUNKED) return Framing::kChunked;
  if (parser_.flags & F_CONTENT_LENGTH) {
    return parser_.content_length > 0 ? Framing::kContentLength : Framing::kNone;
  }
  if (parser_.type == HTTP_RESPONSE && llhttp_message_needs_eof(&parser_)) {
    return Framing::kUntilClose;
  }
  return Framing::kNone;
}

FeedResult MessageParser::feed(std::string_view data) {
  std::size_t total = 0;
  for (;;) {
    FeedResult r = feed_once(data.substr(total));
    total += r.consumed;
    // A message the subclass chose not to report (a 1xx interim response): keep going.
    if (r.event == ParseEvent::kMessageEnd && !message_reported_) {
      if (total < data.size()) continue;
      return {total, ParseEvent::kNeedMore};
    }
    return {total, r.event};
  }
}

FeedResult MessageParser::feed_once(std::string_view data) {
  if (error_status_ != 0) return {0, ParseEvent::kError};
  if (guard_.verdict() != HeaderGuard::Verdict::kDone) {
    guard_.feed(data);
    if (guard_.verdict() == HeaderGuard::Verdict::kBad) {
      fail(400, "malformed header section (obs-fold, bare CR or bare LF)");
      return {0, ParseEvent::kError};
    }
    if (guard_.section_bytes() > limits_.header_bytes_max) {
      fail(431, "header section too large");
      return {0, ParseEvent::kError};
    }
  }
  const llhttp_errno_t err = llhttp_execute(&parser_, data.data(), data.size());
  if (err == HPE_OK) return {data.size(), ParseEvent::kNeedMore};
  if (err == HPE_PAUSED) {
    const auto consumed = static_cast<std::size_t>(llhttp_get_error_pos(&parser_) - data.data());
    llhttp_resume(&parser_);
    if (!message_done_) return {consumed, ParseEvent::kBodyPaused};
    message_done_ = false;
    in_message_ = false;
    head_done_ = false;
    guard_.reset();
    return {consumed, ParseEvent::kMessageEnd};
  }
  fail(400, llhttp_get_error_reason(&parser_));
  return {0, ParseEvent::kError};
}

FeedResult MessageParser::finish_at_eof() {
  if (error_status_ != 0) return {0, ParseEvent::kError};
  if (!mid_message()) return {0, ParseEvent::kNeedMore};
  const llhttp_errno_t err = llhttp_finish(&parser_);
  if ((err == HPE_OK || err == HPE_PAUSED) && message_done_) {
    message_done_ = false;
    in_message_ = false;
    head_done_ = false;
    guard_.reset();
    return {0, ParseEvent::kMessageEnd};
  }
  fail(400, "connection closed before the message ended");
  return {0, ParseEvent::kError};
}

// --- requests ---

RequestParser::RequestParser(RequestSink& sink, const ParserLimits& limits)
    : MessageParser(HTTP_REQUEST, limits), sink_(sink) {}

int RequestParser::head_complete() {
  llhttp_t* p = llhttp();
  if (p->method == HTTP_CONNECT) return fail(400, "CONNECT is not supported");
  // Upgrade requests are served as plain HTTP/1.1 (RFC 9110 7.8 lets a server ignore Upgrade).
  p->upgrade = 0;
  request_.method = llhttp_method_name(static_cast<llhttp_method_t>(p->method));
  request_.target = std::move(url());
  request_.version_minor = p->http_minor;
  request_.headers = std::move(headers());
  request_.framing = framing_after_head();
  request_.content_length = request_.framing == Framing::kContentLength ? p->content_length : 0;
  if (request_.content_length > limits().body_bytes_max) {
    return fail(413, "request body too large");
  }
  request_.keep_alive = llhttp_should_keep_alive(p) != 0;
  const auto expect = request_.header("Expect");
  request_.expect_continue = expect && iequals(*expect, "100-continue");
  sink_.on_request_head(request_);
  return 0;
}

Flow RequestParser::body(std::string_view chunk) { return sink_.on_request_body(chunk); }

bool RequestParser::message_complete() {
  sink_.on_request_end();
  return true;
}

// --- responses ---

ResponseParser::ResponseParser(ResponseSink& sink, const ParserLimits& limits)
    : MessageParser(HTTP_RESPONSE, limits), sink_(sink) {}

int ResponseParser::head_complete() {
  llhttp_t* p = llhttp();
  const int status = p->status_code;
  if (status == 101) return fail(502, "unexpected 101 Switching Protocols");
  p->upgrade = 0;
  if (status >= 100 && status < 200) {
    interim_ = true;  // 100 Continue and friends: skipped, the final response follows
    return 0;
  }
  head_.status = status;
  head_.reason = std::move(status_reason());
  head_.version_minor = p->http_minor;
  head_.headers = std::move(headers());
  // 204 and 304 never have a body, whatever their headers say (RFC 9112 6.3).
  const bool no_body = no_body_ || status == 204 || status == 304;
  if (no_body) {
    p->flags |= F_SKIPBODY;  // llhttp sets it too once we return 1; keep-alive depends on it
    head_.framing = Framing::kNone;
    head_.content_length = 0;
  } else {
    head_.framing = framing_after_head();
    head_.content_length = head_.framing == Framing::kContentLength ? p->content_length : 0;
  }
  if (head_.content_length > limits().body_bytes_max) return fail(502, "response body too large");
  head_.keep_alive = llhttp_should_keep_alive(p) != 0;
  sink_.on_response_head(head_);
  return no_body ? 1 : 0;
}

Flow ResponseParser::body(std::string_view chunk) { return sink_.on_response_body(chunk); }

bool ResponseParser::message_complete() {
  if (interim_) {
    interim_ = false;
    return false;
  }
  no_body_ = false;
  sink_.on_response_end();
  return true;
}

}  // namespace raftd::http
