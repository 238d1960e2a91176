// The entry-batch codec of the application contract (API.md 3.2): the body of POST
// /UpdateEntries (committed entries) and of its answer (one result per entry), in the two
// encodings an application may choose. raftd's app client and the example applications share
// this code, so both sides of the wire read and write the same bytes.
//
// binary (`application/vnd.raftd.entries`): a sequence of records
//     u64 index | u32 length | `length` bytes          (integers little-endian)
//   in strictly increasing index order, nothing before, between or after the records. The
//   request's Raftd-Last-Index header carries the batch's last index (it is not in the body).
// json (`application/json`):
//   request {"last_index": N, "entries": [{"index": 5, "data": "<base64>"}, ...]}
//   answer  {"results": [{"index": 5, "data": "<base64>"}, ...]}
//   data is standard base64 (RFC 4648 section 4, `+/`, `=` padding, no line breaks); members
//   other than these are ignored; an index is a JSON unsigned integer (no fraction, no sign).
// Answer, both encodings: an empty body means every result is empty; otherwise it holds one
// record per request entry, with the same indexes in the same order (match_results checks).
//
// Decoders accept a body only when it follows every rule above and these:
//   - the body is at most kBatchBytesMax bytes (else kTooLarge);
//   - a record's length is at most kBatchBytesMax (checked before the record is read);
//   - an index is at least 1 (index 0 means "before the first entry");
//   - a json request has last_index >= its last entry's index;
//   - json nesting is at most kJsonDepthMax (the shape above needs 3), so a hostile body cannot
//     make the parser's stack or memory grow with nesting;
//   - at most kRecordsMax records, and a json body holds at most kJsonSeparatorsMax commas
//     outside strings (else kTooLarge): what a decoder allocates per record or per json value
//     stays bounded whatever a 64 MiB body holds.
// Every other failure is kCorruption with a message naming the rule, the record number and,
// for binary, the byte offset. Encoders take well-formed input (indexes >= 1, increasing);
// anything else is a programmer error (RAFTD_ASSERT).
//
// Pure functions, no I/O, no global state: safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "raftd/base/ids.h"
#include "raftd/base/status.h"

namespace raftd::app {

enum class Encoding { kBinary, kJson };

inline constexpr std::string_view kBinaryContentType = "application/vnd.raftd.entries";
inline constexpr std::string_view kJsonContentType = "application/json";

// Largest body of an entry batch or of its answer. Equal to the HTTP layer's default body cap
// (http::kBodyBytesMaxDefault), so a batch the codec accepts also crosses the wire; raftd's own
// batches are far smaller (AppOptions::batch_bytes_max).
inline constexpr std::size_t kBatchBytesMax = 64ull * 1024 * 1024;
// u64 index + u32 length in front of every binary record.
inline constexpr std::size_t kRecordHeaderBytes = 12;
// Object > array > object: the deepest the json shapes go.
inline constexpr std::size_t kJsonDepthMax = 3;
// Records in one batch or answer. raftd sends at most AppOptions::batch_entries_max (default
// 1024) entries per call; 65536 bounds the vector (and, in json, the parsed values) a decoder
// builds from a body of tiny records to a few MiB instead of hundreds.
inline constexpr std::size_t kRecordsMax = 65536;
// A json record is one object with two members: one comma inside, one after it. Four per record
// leaves room for a few members the format does not name.
inline constexpr std::size_t kJsonSeparatorsMax = 4 * kRecordsMax;

// One entry of a request, or one result of an answer.
struct Record {
  LogIndex index;
  std::string data;

  bool operator==(const Record&) const = default;
};

// The body of one UpdateEntries call. last_index is Raftd-Last-Index: at least the last
// entry's index, more when raftd's own entries (not sent) follow it. binary does not carry it
// in the body: decode_entries(kBinary, ...) leaves it 0 and the app reads the header.
struct EntryBatch {
  LogIndex last_index;
  std::vector<Record> entries;

  bool operator==(const EntryBatch&) const = default;
};

std::string_view content_type(Encoding encoding);
// "binary" or "json" (the app.encoding key); anything else is kInvalidArgument.
Result<Encoding> parse_encoding(std::string_view name);
// A decimal u64 with nothing else: no sign, no space, no newline, at most 20 digits, no
// overflow. For the LastLogIndex answer and the Raftd-Last-Index header.
Result<LogIndex> parse_index(std::string_view text);

// Request side.
std::string encode_entries(Encoding encoding, const EntryBatch& batch);
Result<EntryBatch> decode_entries(Encoding encoding, std::string_view body);

// Answer side. encode_results of no records is an empty body. decode_results checks the body
// on its own (an empty body decodes to no records); match_results then pairs it with the
// request: it returns one record per index of `request` (data empty for an empty body), or
// kCorruption when the answer's indexes are not exactly the request's, in order.
std::string encode_results(Encoding encoding, std::span<const Record> results);
Result<std::vector<Record>> decode_results(Encoding encoding, std::string_view body);
Result<std::vector<Record>> match_results(std::span<const LogIndex> request, bool body_empty,
                                          std::vector<Record> decoded);
// decode_results then match_results: what the app client does with an answer.
Result<std::vector<Record>> decode_answer(Encoding encoding, std::string_view body,
                                          std::span<const LogIndex> request);

// Standard base64 with padding (the json data fields). decode rejects a length that is not a
// multiple of 4, characters outside the alphabet, misplaced padding and non-zero pad bits (so
// every byte string has exactly one accepted encoding).
std::string base64_encode(std::string_view bytes);
Result<std::string> base64_decode(std::string_view text);

}  // namespace raftd::app
