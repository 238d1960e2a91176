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
    if (state_ == State::kData) {
      const std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(size_, data.size() - i));
      size_ -= n;
      i += n;
      if (size_ == 0) state_ = State::kDataCr;
      continue;
    }
    const char c = data[i];
    if (state_ >= State::kFieldStart && ++trailer_bytes_ > kTrailerBytesMax) {
      bad(431, "trailer section too large");
      break;
    }
    switch (state_) {
      case State::kSize: {
        const int v = hex_value(c);
        if (v >= 0) {
          if (++digits_ > kChunkSizeDigitsMax) {
            bad(400, "chunk size too long");
            break;
          }
          size_ = (size_ << 4) | static_cast<std::uint64_t>(v);
        } else if (digits_ > 0 && c == ';') {
          state_ = State::kExt;
        } else if (digits_ > 0 && c == '\r') {
          state_ = State::kSizeCr;
        } else {
          bad(400, "invalid chunk size");
        }
        break;
      }
      case State::kExt:
        if (c == '\r') {
          state_ = State::kSizeCr;
        } else if (!is_field_char(c)) {
          bad(400, "invalid character in chunk extension");
        } else if (++ext_bytes_ > kChunkExtBytesMax) {
          bad(400, "chunk extensions too long");
        }
        break;
      case State::kSizeCr:
        if (c != '\n') {
          bad(400, "expected CRLF after chunk size");
        } else {
          state_ = size_ == 0 ? State::kFieldStart : State::kData;
          digits_ = 0;
        }
        break;
      case State::kData: break;  // handled above
      case State::kDataCr:
        if (c == '\r') {
          state_ = State::kDataLf;
        } else {
          bad(400, "expected CRLF after chunk data");
        }
        break;
      case State::kDataLf:
        if (c == '\n') {
          state_ = State::kSize;
        } else {
          bad(400, "expected CRLF after chunk data");
        }
        break;
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
        break;
      case State::kFieldName:
        if (c == ':') {
          state_ = State::kFieldValue;
        } else if (!is_tchar(c)) {
          bad(400, "invalid character in trailer field name");
        }
        break;
      case State::kFieldValue:
        if (c == '\r') {
          state_ = State::kFieldCr;
        } else if (!is_field_char(c)) {
          bad(400, "invalid character in trailer field value");
        }
        break;
      case State::kFieldCr:
        if (c == '\n') {
          state_ = State::kFieldStart;
        } else {
          bad(400, "bare CR in trailer section");
        }
        break;
      case State::kEndCr:
        if (c == '\n') {
          state_ = State::kDone;
        } else {
          bad(400, "expected CRLF to end the chunked body");
        }
        break;
      case State::kDone:
      case State::kBad: break;
    }
    if (state_ != State::kBad) ++i;
  }
  return i;
}

}  // namespace raftd::http
