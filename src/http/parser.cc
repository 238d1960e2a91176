#include "raftd/http/parser.h"

#include <algorithm>
#include <cctype>
#include <vector>

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

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

struct FieldError {
  int status = 0;
  std::string_view reason;
};

// Transfer-Encoding, all its fields joined as one list (RFC 9110 5.3). Only a single, final
// "chunked" is accepted: an empty element, a repeated or non-final chunked, or parameters make
// the body length ambiguous (400, RFC 9112 6.3); another coding is one we do not implement
// (501 for a request, RFC 9112 6.1).
FieldError check_transfer_encoding(const Headers& headers, bool request) {
  std::vector<std::string_view> codings;
  for (const Header& h : headers) {
    if (!iequals(h.name, "Transfer-Encoding")) continue;
    std::string_view v = h.value;
    for (;;) {
      const std::size_t comma = v.find(',');
      codings.push_back(trim_ows(v.substr(0, comma)));
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  for (std::size_t i = 0; i < codings.size(); ++i) {
    const bool last = i + 1 == codings.size();
    if (codings[i].empty()) return {400, "empty Transfer-Encoding element"};
    if (iequals(codings[i], "chunked")) {
      if (!last) return {400, "chunked is not the final transfer coding"};
    } else if (last) {
      return {400, "the final transfer coding is not chunked"};
    } else {
      return {request ? 501 : 400, "transfer coding not implemented"};
    }
  }
  return {};
}

// uri-host [ ":" port ] (RFC 9110 4.2.3, 7.2); empty is allowed (RFC 9112 3.2).
bool valid_host(std::string_view v) {
  std::string_view host = v;
  std::string_view port;
  if (!v.empty() && v.front() == '[') {
    const std::size_t close = v.find(']');
    if (close == std::string_view::npos) return false;
    for (char c : v.substr(1, close - 1)) {
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return false;
    }
    host = {};
    const std::string_view rest = v.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
    }
  } else if (const std::size_t colon = v.find(':'); colon != std::string_view::npos) {
    host = v.substr(0, colon);
    port = v.substr(colon + 1);
    if (host.empty()) return false;
  }
  // reg-name / IPv4address: unreserved, pct-encoded, sub-delims.
  for (std::size_t i = 0; i < host.size(); ++i) {
    const char c = host[i];
    if (std::isalnum(static_cast<unsigned char>(c)) ||
        std::string_view("-._~!$&'()*+,;=").find(c) != std::string_view::npos) {
      continue;
    }
    if (c == '%' && i + 2 < host.size() && std::isxdigit(static_cast<unsigned char>(host[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(host[i + 2]))) {
      i += 2;
      continue;
    }
    return false;
  }
  for (char c : port) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return port.size() <= 5;
}

// The fields that decide where a message ends, checked by us whatever llhttp accepted, so a
// front-end reading them strictly cannot find a different end.
FieldError check_fields(const llhttp_t* p, const Headers& headers) {
  const bool request = p->type == HTTP_REQUEST;
  bool has_te = false;
  std::size_t lengths = 0;
  std::size_t hosts = 0;
  std::string_view host;
  for (const Header& h : headers) {
    if (iequals(h.name, "Transfer-Encoding")) {
      has_te = true;
    } else if (iequals(h.name, "Content-Length")) {
      ++lengths;
      // 1*DIGIT only: no sign, no list ("5, 5"), no spaces inside; 19 digits fit a uint64_t.
      const std::string_view v = h.value;
      if (v.empty() || v.size() > 19 ||
          !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return {400, "invalid Content-Length"};
      }
    } else if (iequals(h.name, "Host")) {
      ++hosts;
      host = h.value;
    }
  }
  if (lengths > 1) return {400, "more than one Content-Length"};
  if (has_te) {
    // RFC 9112 6.1: Transfer-Encoding is HTTP/1.1; in a 1.0 message its framing is unreliable.
    if (p->http_major == 1 && p->http_minor == 0) return {400, "Transfer-Encoding in HTTP/1.0"};
    if (lengths > 0) return {400, "Content-Length with Transfer-Encoding"};
    if (FieldError e = check_transfer_encoding(headers, request); e.status != 0) return e;
  }
  if (request) {
    // RFC 9112 3.2: no Host in HTTP/1.1, more than one, or an invalid one is a 400.
    if (hosts == 0 && p->http_major == 1 && p->http_minor >= 1) return {400, "missing Host"};
    if (hosts > 1) return {400, "more than one Host"};
    if (hosts == 1 && !valid_host(host)) return {400, "invalid Host"};
  }
  return {};
}

// What the handler routes on, from the request-target (RFC 9112 3.2). origin-form is kept as it
// is. absolute-form (sent to proxies, and by clients that treat us as one) is reduced to its
// path and query, after checking that its authority is exactly the Host field: RFC 9112 3.2.2
// has a server ignore Host then, but a reader in front of us that routes by Host would disagree
// with one that routes by the target, so two authorities that differ are refused instead. The
// scheme must be http or https, and userinfo is refused (RFC 9110 4.2.4). asterisk-form is for
// OPTIONS only (RFC 9112 3.2.4). No form has a fragment (RFC 9112 3.2); llhttp accepts one.
FieldError normalize_target(std::string& target, std::string_view method, const Headers& headers) {
  if (target.find('#') != std::string::npos) return {400, "fragment in the request target"};
  if (target.starts_with('/')) return {};
  if (target == "*") {
    if (method == "OPTIONS") return {};
    return {400, "asterisk-form target outside OPTIONS"};
  }
  const std::string_view t = target;
  const std::size_t scheme_end = t.find("://");
  if (scheme_end == std::string_view::npos ||
      !(iequals(t.substr(0, scheme_end), "http") || iequals(t.substr(0, scheme_end), "https"))) {
    return {400, "request target is neither a path nor an http URI"};
  }
  const std::string_view rest = t.substr(scheme_end + 3);
  const std::size_t path_start = rest.find_first_of("/?");
  const std::string_view authority = rest.substr(0, path_start);
  if (authority.empty() || authority.find('@') != std::string_view::npos ||
      !valid_host(authority)) {
    return {400, "invalid authority in the request target"};
  }
  // HTTP/1.1 requests always have exactly one Host here (check_fields); HTTP/1.0 may have none.
  if (const auto host = find_header(headers, "Host"); host && !iequals(*host, authority)) {
    return {400, "Host does not match the authority of the request target"};
  }
  const std::string_view path =
      path_start == std::string_view::npos ? std::string_view() : rest.substr(path_start);
  if (path.empty()) {
    target = method == "OPTIONS" ? "*" : "/";
  } else {
    target = (path.front() == '?' ? "/" : "") + std::string(path);
  }
  return {};
}

}  // namespace

const llhttp_settings_t MessageParser::kSettings = make_settings(
    &MessageParser::cb_message_begin, &MessageParser::cb_url, &MessageParser::cb_status,
    &MessageParser::cb_header_field, &MessageParser::cb_header_field_complete,
    &MessageParser::cb_header_value, &MessageParser::cb_headers_complete,
    &MessageParser::cb_chunk_header, &MessageParser::cb_body, &MessageParser::cb_message_complete);

MessageParser::MessageParser(llhttp_type_t type, const ParserLimits& limits)
    : guard_(type == HTTP_REQUEST), limits_(limits) {
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
  m.header_count_ = 0;  // headers_ keeps its strings for reuse (cb_header_field)
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
  if (m.header_count_ == 0 || m.in_value_) {
    if (m.header_count_ >= m.limits_.header_count_max) {
      return m.fail(431, "too many header fields");
    }
    // A field of an earlier message is reused with its strings' capacity: a steady stream of
    // messages allocates nothing for its headers.
    if (m.header_count_ == m.headers_.size()) {
      m.headers_.emplace_back();
    } else {
      m.headers_[m.header_count_].name.clear();
      m.headers_[m.header_count_].value.clear();
    }
    ++m.header_count_;
    m.in_value_ = false;
  }
  m.headers_[m.header_count_ - 1].name.append(at, n);
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
  if (m.header_count_ == 0 || m.in_value_ || m.headers_[m.header_count_ - 1].name.empty()) {
    return m.fail(400, "empty header field name");
  }
  m.in_value_ = true;
  return 0;
}

int MessageParser::cb_header_value(llhttp_t* p, const char* at, std::size_t n) {
  MessageParser& m = self(p);
  if (m.head_done_ || m.header_count_ == 0) return 0;
  m.headers_[m.header_count_ - 1].value.append(at, n);
  return 0;
}

int MessageParser::cb_headers_complete(llhttp_t* p) {
  MessageParser& m = self(p);
  m.head_done_ = true;
  m.headers_.resize(m.header_count_);  // drops the unused fields of an earlier message
  for (Header& h : m.headers_) trim_trailing_ows(h.value);
  if (p->http_major != 1) return m.fail(505, "only HTTP/1.x is supported");
  if (const FieldError e = check_fields(p, m.headers_); e.status != 0) {
    // A response the client cannot frame is the server's fault: 502 towards our caller.
    return m.fail(p->type == HTTP_REQUEST ? e.status : 502, e.reason);
  }
  const int r = m.head_complete();
  if (r == 0 && (p->flags & F_CHUNKED) && !(p->flags & F_SKIPBODY)) {
    m.chunk_guard_.reset();
    m.chunk_guard_on_ = true;
    m.guarded_ = 0;
  }
  return r;
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
  // An empty feed only finishes a body paused on its last byte (see body_paused()).
  if (data.empty() && !body_paused_) return {0, ParseEvent::kNeedMore};
  std::size_t total = 0;
  for (;;) {
    const FeedResult r = feed_once(data.substr(total));
    total += r.consumed;
    if (r.event == ParseEvent::kNeedMore && total < data.size()) {
      // A stage ended inside `data` (the head, or what the chunk guard passed): go on.
      if (r.consumed > 0) continue;
      fail(400, "parser made no progress");
      return {total, ParseEvent::kError};
    }
    // A message the subclass chose not to report (a 1xx interim response): keep going.
    if (r.event == ParseEvent::kMessageEnd && !message_reported_) {
      if (total < data.size()) continue;
      return {total, ParseEvent::kNeedMore};
    }
    return {total, r.event};
  }
}

void MessageParser::end_message() {
  message_done_ = false;
  in_message_ = false;
  head_done_ = false;
  guard_.reset();
  chunk_guard_on_ = false;
  guarded_ = 0;
}

// llhttp sees only bytes the guards passed: the head alone first (so the body's framing is
// known), then, for a chunked body, no more than the chunk guard has scanned.
FeedResult MessageParser::feed_once(std::string_view data) {
  if (error_status_ != 0) return {0, ParseEvent::kError};
  body_paused_ = false;
  std::size_t limit = data.size();
  const bool guarding = chunk_guard_on_;
  if (guard_.verdict() != HeaderGuard::Verdict::kDone) {
    const std::size_t scanned = guard_.feed(data);
    if (guard_.verdict() == HeaderGuard::Verdict::kBad) {
      fail(400, "malformed header section (obs-fold, bare CR or LF, CTL, or request line)");
      return {0, ParseEvent::kError};
    }
    if (guard_.section_bytes() > limits_.header_bytes_max) {
      fail(431, "header section too large");
      return {0, ParseEvent::kError};
    }
    if (guard_.verdict() == HeaderGuard::Verdict::kDone) limit = scanned;
  } else if (guarding) {
    if (guarded_ < data.size() && chunk_guard_.verdict() == ChunkGuard::Verdict::kMore) {
      guarded_ += chunk_guard_.feed(data.substr(guarded_));
    }
    if (chunk_guard_.verdict() == ChunkGuard::Verdict::kBad && guarded_ == 0) {
      fail(chunk_guard_.error_status(), chunk_guard_.error_reason());
      return {0, ParseEvent::kError};
    }
    limit = std::min(guarded_, data.size());
  }
  // Never a null pointer, even for the empty feed that resumes a paused body.
  const char* at = data.empty() ? "" : data.data();
  const llhttp_errno_t err = llhttp_execute(&parser_, at, limit);
  std::size_t consumed = limit;
  if (err == HPE_PAUSED) {
    consumed = static_cast<std::size_t>(llhttp_get_error_pos(&parser_) - at);
  }
  if (guarding && err != HPE_OK && err != HPE_PAUSED) {
    consumed = 0;
  } else if (guarding) {
    guarded_ -= consumed;
  }
  const bool guard_ended =
      guarding && chunk_guard_.verdict() == ChunkGuard::Verdict::kDone && guarded_ == 0;
  if (err == HPE_OK) {
    // The chunk guard saw the body end here; llhttp must have seen it end too.
    if (guard_ended) {
      fail(400, "chunked body framing is ambiguous");
      return {0, ParseEvent::kError};
    }
    return {limit, ParseEvent::kNeedMore};
  }
  if (err == HPE_PAUSED) {
    llhttp_resume(&parser_);
    if (!message_done_) {
      body_paused_ = true;
      return {consumed, ParseEvent::kBodyPaused};
    }
    if (guarding && !guard_ended) {
      fail(400, "chunked body framing is ambiguous");
      return {0, ParseEvent::kError};
    }
    end_message();
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
    end_message();
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
  // Swapped, not moved: the parser gets the previous message's strings back to reuse.
  request_.target.swap(url());
  if (const FieldError e = normalize_target(request_.target, request_.method, headers());
      e.status != 0) {
    return fail(e.status, e.reason);
  }
  request_.version_minor = p->http_minor;
  request_.headers.swap(headers());
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
  // RFC 9112 4: three digits; 1xx..5xx are the classes RFC 9110 15 defines.
  if (status < 100 || status > 599) return fail(502, "invalid status code");
  if (status < 200) {
    if (++interim_count_ > kInterimResponsesMax) return fail(502, "too many interim responses");
    interim_ = true;  // 100 Continue and friends: skipped, the final response follows
    return 1;         // and never have a body (RFC 9110 15.2)
  }
  interim_count_ = 0;
  head_.status = status;
  head_.reason.swap(status_reason());  // swapped: see RequestParser::head_complete
  head_.version_minor = p->http_minor;
  head_.headers.swap(headers());
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
  if (head_.content_length > limits().body_bytes_max) return fail(413, "response body too large");
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
