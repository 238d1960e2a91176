// raftd-kv's snapshot of one group: the bytes SaveSnapshot streams and RecoverFromSnapshot reads
// (API.md section 3; examples/kv/README.md describes the format for other readers).
//
// Byte layout (integers little-endian):
//   snapshot := header | pair{count} | trailer
//   header   := magic "RKVSNAP1" (8 bytes) | u64 group | u64 index | u64 count
//   pair     := u32 key_bytes | key | u32 value_bytes | value        (no key twice)
//   trailer  := u64 count | u64 checksum      checksum = XXH3_64bits of every byte before it
// The count is in the header (so the reader knows where the pairs end) and again in the trailer
// (so a snapshot cut right after a pair cannot pass); the checksum covers the whole stream. A
// reader checks the group and index against the call's Raftd-Group and Raftd-Index, every
// length against the limits below, and that nothing follows the trailer.
//
// SnapshotImage is the point-in-time state PrepareSnapshot takes: a copy of the group's map
// (the simplest thing for an example: it costs the group's size in memory and a copy at
// Prepare time; a production store would pin an immutable version instead). SnapshotWriter
// turns an image into bytes piece by piece, SnapshotParser takes bytes in pieces of any size:
// neither ever holds the whole snapshot's bytes.
//
// Threading: none; each object is used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "raftd/app/codec.h"
#include "raftd/base/ids.h"
#include "raftd/base/status.h"

struct XXH3_state_s;

namespace raftd::kv {

inline constexpr std::string_view kSnapshotMagic = "RKVSNAP1";
inline constexpr std::size_t kSnapshotHeaderBytes = 32;
inline constexpr std::size_t kSnapshotTrailerBytes = 16;
// The largest snapshot raftd-kv reads (and so the largest group it can recover): it holds a
// recovered state in memory and writes it as one log record (kv_log.h), which bounds it.
inline constexpr std::uint64_t kSnapshotBytesMax = 1024ull * 1024 * 1024;
// A pair came from one entry, which is no longer than a batch: key and value together are at
// most app::kBatchBytesMax; a longer length is not a pair raftd-kv wrote.
inline constexpr std::uint64_t kSnapshotPairBytesMax = app::kBatchBytesMax;
// SnapshotWriter::next gives at most this many bytes at a time: small enough to keep the HTTP
// server's send buffer (http::kSendBytesMax) bounded, large enough to keep calls few.
inline constexpr std::size_t kSnapshotPieceBytes = 64 * 1024;

using KvMap = std::unordered_map<std::string, std::string>;

struct SnapshotImage {
  GroupId group;
  LogIndex index;
  KvMap pairs;
};

// The streaming hash state, freed with XXH3_freeState.
struct Xxh3Deleter {
  void operator()(XXH3_state_s* state) const;
};
using Xxh3State = std::unique_ptr<XXH3_state_s, Xxh3Deleter>;

class SnapshotWriter {
 public:
  explicit SnapshotWriter(std::shared_ptr<const SnapshotImage> image);

  // Appends the next piece (1 to kSnapshotPieceBytes bytes) to `out`. Returns false, appending
  // nothing, once the whole snapshot, trailer included, has been given.
  bool next(std::string& out);
  std::uint64_t bytes_written() const { return written_; }

 private:
  enum class Stage { kHeader, kPairs, kTrailer, kDone };
  void emit(std::string& out, std::string_view bytes);

  std::shared_ptr<const SnapshotImage> image_;
  KvMap::const_iterator it_;
  std::size_t pair_off_ = 0;  // bytes of *it_'s pair already given
  Stage stage_ = Stage::kHeader;
  std::uint64_t written_ = 0;
  Xxh3State hash_;
};

class SnapshotParser {
 public:
  // Expects a snapshot of `group` at `index`.
  SnapshotParser(GroupId group, LogIndex index);

  // The next bytes of the snapshot. The first error (kCorruption: not a snapshot, or not of this
  // group and index; kTooLarge: over a limit) is returned and sticks: later calls return it.
  Status feed(std::string_view bytes);
  // The snapshot ended here: ok when it is complete (trailer read, count and checksum right).
  Status finish();
  // The pairs read so far; all of them once finish() is ok.
  KvMap& pairs() { return pairs_; }
  std::uint64_t bytes_read() const { return total_; }

 private:
  enum class Stage { kHeader, kKeyLen, kKey, kValueLen, kValue, kTrailer, kEnd };
  Status fail(Code code, std::string message);
  Status take_field();  // buf_ holds the whole field of stage_: process it

  GroupId group_;
  LogIndex index_;
  Stage stage_ = Stage::kHeader;
  std::string buf_;  // the field being read
  std::size_t want_ = kSnapshotHeaderBytes;
  std::string key_;
  std::uint32_t key_bytes_ = 0;
  std::uint64_t count_ = 0;
  std::uint64_t seen_ = 0;
  std::uint64_t total_ = 0;
  Status error_;
  KvMap pairs_;
  Xxh3State hash_;
};

}  // namespace raftd::kv
