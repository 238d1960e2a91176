#include "raftd/http/header_guard.h"

namespace raftd::http {

std::size_t HeaderGuard::feed(std::string_view data) {
  std::size_t i = 0;
  for (; i < data.size() && state_ != State::kDone && state_ != State::kBad; ++i) {
    const char c = data[i];
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t' && c != '\r' && c != '\n') || u == 0x7f) {
      state_ = State::kBad;
      break;
    }
    if (request_ && first_line_ && c == ' ' && (prev_ == ' ' || state_ == State::kLeading)) {
      state_ = State::kBad;
      break;
    }
    prev_ = c;
    if (state_ != State::kLeading && state_ != State::kLeadingCr) ++section_bytes_;
    switch (state_) {
      case State::kLeading:
        if (c == '\r') {
          state_ = State::kLeadingCr;
        } else if (c == '\n') {
          state_ = State::kBad;
        } else {
          ++section_bytes_;
          state_ = State::kInLine;
        }
        break;
      case State::kLeadingCr: state_ = c == '\n' ? State::kLeading : State::kBad; break;
      case State::kLineStart:
        if (c == '\r') {
          state_ = State::kCrAtLineStart;
        } else if (c == ' ' || c == '\t' || c == '\n') {
          state_ = State::kBad;  // obs-fold, or a bare LF
        } else {
          state_ = State::kInLine;
        }
        break;
      case State::kInLine:
        if (c == '\r') {
          state_ = State::kCr;
        } else if (c == '\n') {
          state_ = State::kBad;
        }
        break;
      case State::kCr:
        state_ = c == '\n' ? State::kLineStart : State::kBad;
        first_line_ = false;
        break;
      case State::kCrAtLineStart: state_ = c == '\n' ? State::kDone : State::kBad; break;
      case State::kDone:
      case State::kBad: break;
    }
  }
  return i;
}

}  // namespace raftd::http
