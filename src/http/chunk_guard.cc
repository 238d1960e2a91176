#include "raftd/http/chunk_guard.h"

#include <algorithm>

namespace raftd::http {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// tchar of RFC 9110 5.6.2.
bool is_tchar(char c) {
  const auto u = static_cast<unsigned char>(c);
  if ((u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// field-vchar, SP and HTAB (RFC 9110 5.5): everything but CTLs and DEL.
bool is_field_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u == '\t' || (u >= 0x20 && u != 0x7f);
}

// Hex digits of a chunk size: 16 cover every uint64_t; more (even leading zeros) are refused,
// so no reader can overflow where we do not.
constexpr std::size_t kChunkSizeDigitsMax = 16;

}  // namespace

void ChunkGuard::bad(int status, std::string_view reason) {
  state_ = State::kBad;
  error_status_ = status;
  error_reason_ = reason;
}

std::size_t ChunkGuard::feed(std::string_view data) {
  std::size_t i = 0;
  while (i < data.size() && state_ != State::kDone && state_ != State::kBad) {
    if (state_ == State::kData) {  // data bytes are not looked at, only counted
      const std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(size_, data.size() - i));
      size_ -= n;
      i += n;
      if (size_ == 0) state_ = State::kDataCr;
      continue;
    }
    if (state_ >= State::kFieldStart) {
      if (++trailer_bytes_ > kTrailerBytesMax) {
        bad(431, "trailer section too large");
        break;
      }
      step_trailers(data[i]);
    } else {
      step_chunk_line(data[i]);
    }
    if (state_ != State::kBad) ++i;
  }
  return i;
}

void ChunkGuard::step_chunk_line(char c) {
  switch (state_) {
    case State::kSize: {
      const int v = hex_value(c);
      if (v >= 0) {
        if (++digits_ > kChunkSizeDigitsMax) return bad(400, "chunk size too long");
        size_ = (size_ << 4) | static_cast<std::uint64_t>(v);
      } else if (digits_ > 0 && c == ';') {
        state_ = State::kExt;
      } else if (digits_ > 0 && c == '\r') {
        state_ = State::kSizeCr;
      } else {
        bad(400, "invalid chunk size");
      }
      return;
    }
    case State::kExt:
      if (c == '\r') {
        state_ = State::kSizeCr;
      } else if (!is_field_char(c)) {
        bad(400, "invalid character in chunk extension");
      } else if (++ext_bytes_ > kChunkExtBytesMax) {
        bad(400, "chunk extensions too long");
      }
      return;
    case State::kSizeCr:
      if (c != '\n') return bad(400, "expected CRLF after chunk size");
      state_ = size_ == 0 ? State::kFieldStart : State::kData;
      digits_ = 0;
      return;
    case State::kDataCr:
      if (c != '\r') return bad(400, "expected CRLF after chunk data");
      state_ = State::kDataLf;
      return;
    case State::kDataLf:
      if (c != '\n') return bad(400, "expected CRLF after chunk data");
      state_ = State::kSize;
      return;
    default: return;
  }
}

void ChunkGuard::step_trailers(char c) {
  switch (state_) {
    case State::kFieldStart:
      if (c == '\r') {
        state_ = State::kEndCr;
      } else if (!is_tchar(c)) {
        bad(400, "invalid trailer line (bare LF, obs-fold or bad name)");
      } else if (++trailer_count_ > kTrailerCountMax) {
        bad(431, "too many trailer fields");
      } else {
        state_ = State::kFieldName;
      }
      return;
    case State::kFieldName:
      if (c == ':') {
        state_ = State::kFieldValue;
      } else if (!is_tchar(c)) {
        bad(400, "invalid character in trailer field name");
      }
      return;
    case State::kFieldValue:
      if (c == '\r') {
        state_ = State::kFieldCr;
      } else if (!is_field_char(c)) {
        bad(400, "invalid character in trailer field value");
      }
      return;
    case State::kFieldCr:
      if (c != '\n') return bad(400, "bare CR in trailer section");
      state_ = State::kFieldStart;
      return;
    case State::kEndCr:
      if (c != '\n') return bad(400, "expected CRLF to end the chunked body");
      state_ = State::kDone;
      return;
    default: return;
  }
}

}  // namespace raftd::http
