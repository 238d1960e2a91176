// Pre-scan of a message's header section, run on raw bytes before llhttp sees them.
//
// llhttp 8.1.0 (the version Debian ships) folds a header line that starts with a space or tab
// into the previous header (obs-fold; the CVE-2024-27982 request-smuggling shape), and strict
// mode is needed for a bare CR (CVE-2023-30589). This guard rejects, independently of llhttp:
//   - obs-fold: a header line starting with SP or HTAB,
//   - a CR not followed by LF, and an LF not preceded by CR,
//   - a CTL (other than HTAB, CR, LF) or DEL anywhere in the section (RFC 9110 5.5),
//   - in a request line, a leading space or two spaces in a row (RFC 9112 3: single SPs),
// which RFC 9112 (sections 2.2 and 5.2) lets a server reject with 400.
// Empty lines before the request line are skipped, as RFC 9112 2.2 recommends.
//
// Incremental: feed any split of the bytes; the result does not depend on the split.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "raftd/http/guard_verdict.h"

namespace raftd::http {

class HeaderGuard {
 public:
  // `request`: the first line is a request line (its spaces are checked).
  explicit HeaderGuard(bool request = true) : request_(request) {}

  using Verdict = GuardVerdict;

  // Scans `data` up to the end of the header section. Returns how many bytes were scanned
  // (all of `data` unless the section ended or a bad byte was found inside it).
  std::size_t feed(std::string_view data);
  Verdict verdict() const { return guard_verdict(state_); }
  // Bytes of the header section scanned so far (excluding leading empty lines).
  std::size_t section_bytes() const { return section_bytes_; }
  void reset() { *this = HeaderGuard(request_); }

 private:
  enum class State : std::uint8_t {
    kLeading,    // before the request line; empty lines allowed
    kLeadingCr,  // CR of an empty line before the request line
    kLineStart,  // first byte of a header line
    kInLine,
    kCr,             // CR inside a line: LF must follow
    kCrAtLineStart,  // CR at the start of a line: the section ends if LF follows
    kDone,
    kBad,
  };
  bool request_ = true;
  bool first_line_ = true;
  char prev_ = '\0';
  State state_ = State::kLeading;
  std::size_t section_bytes_ = 0;
};

}  // namespace raftd::http
