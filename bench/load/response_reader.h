// ResponseReader: the minimal HTTP/1.1 response framing raftd-load needs, sans-I/O: feed it the
// bytes of one connection in whatever pieces they arrived and it reports each response's end,
// status code and whether the server closes the connection after it. Bodies are skipped, never
// copied. Framing: Content-Length, chunked (sizes and trailers read, extensions ignored), no
// body for 1xx (skipped whole), 204 and 304, else the body runs to EOF (on_eof() ends it).
//
// It is a load generator's reader, not a validating one (the server-side parser of src/http is
// that): it checks what framing needs (status line, the numbers it reads, header and chunk-line
// size limits) and reports anything else it cannot frame as an error, after which the
// connection must be dropped.
//
// Threading: one per connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace raftd::bench {

// A response head larger than this is an error (raftd's own limit is far below it).
inline constexpr std::size_t kResponseHeadBytesMax = 64 * 1024;
// A chunk-size line (hex size, extensions) longer than this is an error.
inline constexpr std::size_t kChunkLineBytesMax = 1024;

class ResponseReader {
 public:
  enum class Event : uint8_t {
    kNeedMore,  // every byte given was used, or the rest is an incomplete head/line: keep it
                // (consumed says how much to drop) and feed it again with what follows
    kResponse,  // a response ended after `consumed` bytes: status(), close_after()
    kError,     // unframeable bytes; drop the connection
  };
  struct Result {
    Event event = Event::kNeedMore;
    std::size_t consumed = 0;
  };

  // Consumes a prefix of `data`, stopping after the first response that ends.
  Result feed(std::string_view data);
  // The peer closed: true if that ended an EOF-delimited body (a response then ended).
  bool on_eof();
  // Inside a response (some of it read): an EOF now loses it.
  bool mid_response() const { return state_ != State::kHead || head_partial_; }

  int status() const { return status_; }
  bool close_after() const { return close_; }

 private:
  enum class State : uint8_t { kHead, kBody, kChunkLine, kChunkData, kChunkEnd, kTrailer, kToEof };
  Result parse_head(std::string_view data);

  State state_ = State::kHead;
  bool head_partial_ = false;
  int status_ = 0;
  bool close_ = false;
  uint64_t remaining_ = 0;  // body or chunk bytes still to skip
};

}  // namespace raftd::bench
