#include "response_reader.h"

#include <cstring>

namespace raftd::bench {
namespace {

bool iequals(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower[i]) return false;
  }
  return true;
}

// True when the comma-separated header value holds `token` (case-insensitive).
bool has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    std::size_t comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

// Decimal (base 10) or hex (base 16) number, the whole of `s`; false on anything else or > 2^60.
bool parse_number(std::string_view s, unsigned base, uint64_t& out) {
  if (s.empty()) return false;
  uint64_t v = 0;
  for (char c : s) {
    unsigned d;
    if (c >= '0' && c <= '9') {
      d = static_cast<unsigned>(c - '0');
    } else if (base == 16 && c >= 'a' && c <= 'f') {
      d = static_cast<unsigned>(c - 'a' + 10);
    } else if (base == 16 && c >= 'A' && c <= 'F') {
      d = static_cast<unsigned>(c - 'A' + 10);
    } else {
      return false;
    }
    if (v > (uint64_t{1} << 60)) return false;
    v = v * base + d;
  }
  out = v;
  return true;
}

}  // namespace

ResponseReader::Result ResponseReader::parse_head(std::string_view data) {
  const std::size_t end = data.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (data.size() > kResponseHeadBytesMax) return {Event::kError, 0};
    head_partial_ = !data.empty();
    return {Event::kNeedMore, 0};
  }
  head_partial_ = false;
  if (end + 4 > kResponseHeadBytesMax) return {Event::kError, 0};
  std::string_view head = data.substr(0, end + 2);  // every line ends with CRLF
  // Status line: HTTP/1.x SP 3DIGIT SP reason
  if (head.size() < 12 || head.substr(0, 7) != "HTTP/1." || head[8] != ' ') {
    return {Event::kError, 0};
  }
  int code = 0;
  for (std::size_t i = 9; i < 12; ++i) {
    if (head[i] < '0' || head[i] > '9') return {Event::kError, 0};
    code = code * 10 + (head[i] - '0');
  }
  status_ = code;
  close_ = head[7] == '0';  // HTTP/1.0 closes unless it says keep-alive
  bool chunked = false;
  bool have_length = false;
  uint64_t length = 0;
  std::size_t pos = head.find("\r\n") + 2;
  while (pos < head.size()) {
    const std::size_t eol = head.find("\r\n", pos);
    std::string_view line = head.substr(pos, eol - pos);
    pos = eol + 2;
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return {Event::kError, 0};
    std::string_view name = line.substr(0, colon);
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (iequals(name, "content-length")) {
      if (!parse_number(value, 10, length)) return {Event::kError, 0};
      have_length = true;
    } else if (iequals(name, "transfer-encoding")) {
      chunked = has_token(value, "chunked");
    } else if (iequals(name, "connection")) {
      if (has_token(value, "close")) close_ = true;
      if (has_token(value, "keep-alive")) close_ = false;
    }
  }
  const std::size_t consumed = end + 4;
  if (code < 200) {  // 1xx: an interim response; the real one follows
    state_ = State::kHead;
    return {Event::kNeedMore, consumed};
  }
  if (code == 204 || code == 304) return {Event::kResponse, consumed};
  if (chunked) {
    state_ = State::kChunkLine;
  } else if (have_length) {
    if (length == 0) return {Event::kResponse, consumed};
    state_ = State::kBody;
    remaining_ = length;
  } else {
    state_ = State::kToEof;
    close_ = true;
  }
  return {Event::kNeedMore, consumed};
}

ResponseReader::Result ResponseReader::feed(std::string_view data) {
  std::size_t used = 0;
  for (;;) {
    std::string_view rest = data.substr(used);
    switch (state_) {
      case State::kHead: {
        if (rest.empty()) return {Event::kNeedMore, used};
        Result r = parse_head(rest);
        if (r.event == Event::kError) return r;
        used += r.consumed;
        if (r.event == Event::kResponse) return {Event::kResponse, used};
        if (r.consumed == 0) return {Event::kNeedMore, used};  // the head is incomplete
        break;  // a body follows, or a 1xx was skipped and the real head comes next
      }
      case State::kBody:
      case State::kChunkData:
      case State::kChunkEnd: {
        const uint64_t take = remaining_ < rest.size() ? remaining_ : rest.size();
        static constexpr char kCrlf[] = "\r\n";
        if (state_ == State::kChunkEnd && take > 0 &&
            std::memcmp(rest.data(), &kCrlf[2 - remaining_], take) != 0) {
          return {Event::kError, used};
        }
        used += take;
        remaining_ -= take;
        if (remaining_ > 0) return {Event::kNeedMore, used};
        if (state_ == State::kBody || state_ == State::kChunkEnd) {
          if (state_ == State::kBody) {
            state_ = State::kHead;
            return {Event::kResponse, used};
          }
          state_ = State::kChunkLine;
        } else {
          state_ = State::kChunkEnd;
          remaining_ = 2;
        }
        break;
      }
      case State::kChunkLine: {
        const std::size_t eol = rest.find("\r\n");
        if (eol == std::string_view::npos) {
          if (rest.size() > kChunkLineBytesMax) return {Event::kError, used};
          return {Event::kNeedMore, used};
        }
        std::string_view size_text = rest.substr(0, eol);
        size_text = size_text.substr(0, size_text.find(';'));
        while (!size_text.empty() && size_text.back() == ' ') size_text.remove_suffix(1);
        uint64_t size = 0;
        if (!parse_number(size_text, 16, size)) return {Event::kError, used};
        used += eol + 2;
        if (size == 0) {
          state_ = State::kTrailer;
        } else {
          state_ = State::kChunkData;
          remaining_ = size;
        }
        break;
      }
      case State::kTrailer: {
        const std::size_t eol = rest.find("\r\n");
        if (eol == std::string_view::npos) {
          if (rest.size() > kResponseHeadBytesMax) return {Event::kError, used};
          return {Event::kNeedMore, used};
        }
        used += eol + 2;
        if (eol == 0) {
          state_ = State::kHead;
          return {Event::kResponse, used};
        }
        break;
      }
      case State::kToEof: return {Event::kNeedMore, data.size()};
    }
  }
}

bool ResponseReader::on_eof() {
  if (state_ != State::kToEof) return false;
  state_ = State::kHead;
  return true;
}

}  // namespace raftd::bench
