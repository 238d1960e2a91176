// Strict pre-scan of a chunked body (RFC 9112 7.1), run on raw bytes before llhttp parses them.
//
// llhttp 8.1.0 ends a chunked body at "0\r\n\n" (a bare LF after the last chunk or after a
// trailer line) and folds a trailer line that starts with a space into the previous one; a
// front-end that reads those bytes differently disagrees with us about where the next request
// starts. This guard accepts only the strict grammar:
//   chunk      = 1*HEXDIG [ ";" ext-bytes ] CRLF  data CRLF
//   last-chunk = 1*"0"    [ ";" ext-bytes ] CRLF
//   trailers   = *( field-name ":" field-value CRLF ) CRLF
// (no whitespace around the size, no bare CR or LF anywhere, no obs-fold, no CTL in extensions
// or trailer values, field names are tokens) and bounds what llhttp would otherwise parse
// without limit: extension bytes, trailer bytes and trailer fields (limits.h).
//
// Incremental: feed any split of the bytes; the verdict does not depend on the split. The
// parser gives llhttp only bytes this guard has passed, and requires llhttp to end the body
// exactly where the guard did.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "raftd/http/guard_verdict.h"
#include "raftd/http/limits.h"

namespace raftd::http {

class ChunkGuard {
 public:
  using Verdict = GuardVerdict;

  // Scans `data` up to the end of the body. Returns how many bytes were scanned: all of `data`,
  // or up to and including the body's final LF (kDone), or up to but excluding the first bad
  // byte (kBad).
  std::size_t feed(std::string_view data);
  Verdict verdict() const { return guard_verdict(state_); }
  // For kBad: 400 (malformed, or extensions over kChunkExtBytesMax) or 431 (trailers over
  // kTrailerBytesMax or kTrailerCountMax), and a short reason.
  int error_status() const { return error_status_; }
  std::string_view error_reason() const { return error_reason_; }
  void reset() { *this = ChunkGuard(); }

 private:
  enum class State : std::uint8_t {
    kSize,        // hex digits of the chunk size
    kExt,         // after ';' on the size line
    kSizeCr,      // CR ending the size line: LF must follow
    kData,        // size_ bytes of chunk data
    kDataCr,      // CR after the data
    kDataLf,      // LF after the data
    kFieldStart,  // first byte of a trailer line, or CR of the final empty line
    kFieldName,
    kFieldValue,
    kFieldCr,  // CR ending a trailer line
    kEndCr,    // CR of the final empty line: LF must follow
    kDone,
    kBad,
  };
  void bad(int status, std::string_view reason);
  void step_chunk_line(char c);  // states before the last chunk's CRLF
  void step_trailers(char c);    // states of the trailer section

  State state_ = State::kSize;
  std::uint64_t size_ = 0;
  std::size_t digits_ = 0;
  std::size_t ext_bytes_ = 0;
  std::size_t trailer_bytes_ = 0;
  std::size_t trailer_count_ = 0;
  int error_status_ = 0;
  std::string_view error_reason_;
};

}  // namespace raftd::http
