#include "kv_snapshot.h"

#include <xxhash.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <utility>

#include "raftd/base/assert.h"

namespace raftd::kv {

static_assert(std::endian::native == std::endian::little,
              "the snapshot's integers are written as the host's little-endian bytes");

namespace {

template <typename T>
void put_int(char* out, T v) {
  std::memcpy(out, &v, sizeof(T));
}

template <typename T>
T get_int(const char* in) {
  T v;
  std::memcpy(&v, in, sizeof(T));
  return v;
}

Xxh3State new_hash() {
  Xxh3State s(XXH3_createState());
  RAFTD_ASSERT(s != nullptr, "XXH3_createState: out of memory");
  XXH3_64bits_reset(s.get());
  return s;
}

}  // namespace

void Xxh3Deleter::operator()(XXH3_state_s* state) const { XXH3_freeState(state); }

// ---- SnapshotWriter ----

SnapshotWriter::SnapshotWriter(std::shared_ptr<const SnapshotImage> image)
    : image_(std::move(image)), it_(image_->pairs.begin()), hash_(new_hash()) {}

void SnapshotWriter::emit(std::string& out, std::string_view bytes) {
  out.append(bytes);
  XXH3_64bits_update(hash_.get(), bytes.data(), bytes.size());
  written_ += bytes.size();
}

bool SnapshotWriter::next(std::string& out) {
  const std::size_t start = out.size();
  std::size_t room = kSnapshotPieceBytes;
  while (room > 0 && stage_ != Stage::kDone) {
    switch (stage_) {
      case Stage::kHeader: {
        std::array<char, kSnapshotHeaderBytes> h{};
        std::memcpy(h.data(), kSnapshotMagic.data(), kSnapshotMagic.size());
        put_int<std::uint64_t>(h.data() + 8, image_->group.value());
        put_int<std::uint64_t>(h.data() + 16, image_->index.value());
        put_int<std::uint64_t>(h.data() + 24, image_->pairs.size());
        emit(out, std::string_view(h.data(), h.size()));
        room -= std::min(room, h.size());
        stage_ = Stage::kPairs;
        break;
      }
      case Stage::kPairs: {
        if (it_ == image_->pairs.end()) {
          stage_ = Stage::kTrailer;
          break;
        }
        // The pair's bytes as four segments; give what fits from pair_off_ on.
        char klen[4];
        char vlen[4];
        put_int<std::uint32_t>(klen, static_cast<std::uint32_t>(it_->first.size()));
        put_int<std::uint32_t>(vlen, static_cast<std::uint32_t>(it_->second.size()));
        const std::array<std::string_view, 4> segs{std::string_view(klen, 4), it_->first,
                                                   std::string_view(vlen, 4), it_->second};
        std::size_t skip = pair_off_;
        for (std::string_view seg : segs) {
          if (skip >= seg.size()) {
            skip -= seg.size();
            continue;
          }
          const std::size_t take = std::min(seg.size() - skip, room);
          emit(out, seg.substr(skip, take));
          room -= take;
          pair_off_ += take;
          skip = 0;
          if (room == 0) break;
        }
        if (pair_off_ == 8 + it_->first.size() + it_->second.size()) {
          ++it_;
          pair_off_ = 0;
        }
        break;
      }
      case Stage::kTrailer: {
        if (room < kSnapshotTrailerBytes && out.size() > start) return true;  // next piece
        char count[8];
        put_int<std::uint64_t>(count, image_->pairs.size());
        emit(out, std::string_view(count, 8));
        char sum[8];
        put_int<std::uint64_t>(sum, XXH3_64bits_digest(hash_.get()));
        out.append(sum, 8);
        written_ += 8;
        room = 0;
        stage_ = Stage::kDone;
        break;
      }
      case Stage::kDone: break;
    }
  }
  return out.size() > start;
}

// ---- SnapshotParser ----

SnapshotParser::SnapshotParser(GroupId group, LogIndex index)
    : group_(group), index_(index), hash_(new_hash()) {}

Status SnapshotParser::fail(Code code, std::string message) {
  error_ = Status(code, "snapshot: " + std::move(message));
  return error_;
}

Status SnapshotParser::feed(std::string_view bytes) {
  if (!error_) return error_;
  total_ += bytes.size();
  if (total_ > kSnapshotBytesMax) {
    return fail(Code::kTooLarge,
                "longer than kSnapshotBytesMax (" + std::to_string(kSnapshotBytesMax) + " bytes)");
  }
  while (!bytes.empty()) {
    if (stage_ == Stage::kEnd) return fail(Code::kCorruption, "bytes after the trailer");
    const std::size_t take = std::min(want_ - buf_.size(), bytes.size());
    buf_.append(bytes.substr(0, take));
    bytes.remove_prefix(take);
    if (buf_.size() == want_) {
      if (Status s = take_field(); !s) return s;
    }
  }
  return Status::ok();
}

Status SnapshotParser::take_field() {
  // Every byte before the trailer's checksum is hashed.
  const std::size_t hashed = stage_ == Stage::kTrailer ? 8 : buf_.size();
  XXH3_64bits_update(hash_.get(), buf_.data(), hashed);
  const char* p = buf_.data();
  switch (stage_) {
    case Stage::kHeader: {
      if (std::string_view(p, 8) != kSnapshotMagic) return fail(Code::kCorruption, "bad magic");
      const auto group = get_int<std::uint64_t>(p + 8);
      const auto index = get_int<std::uint64_t>(p + 16);
      count_ = get_int<std::uint64_t>(p + 24);
      if (group != group_.value()) {
        return fail(Code::kCorruption, "of group " + std::to_string(group) + ", not " +
                                           std::to_string(group_.value()));
      }
      if (index != index_.value()) {
        return fail(Code::kCorruption, "at index " + std::to_string(index) + ", not Raftd-Index " +
                                           std::to_string(index_.value()));
      }
      // Each pair takes at least 8 bytes: a larger count cannot fit in kSnapshotBytesMax.
      if (count_ > kSnapshotBytesMax / 8) return fail(Code::kCorruption, "impossible count");
      stage_ = count_ == 0 ? Stage::kTrailer : Stage::kKeyLen;
      want_ = count_ == 0 ? kSnapshotTrailerBytes : 4;
      break;
    }
    case Stage::kKeyLen:
      key_bytes_ = get_int<std::uint32_t>(p);
      if (key_bytes_ > kSnapshotPairBytesMax) return fail(Code::kCorruption, "key too long");
      stage_ = Stage::kKey;
      want_ = key_bytes_;
      break;
    case Stage::kKey:
      key_ = std::move(buf_);
      stage_ = Stage::kValueLen;
      want_ = 4;
      break;
    case Stage::kValueLen: {
      const auto value_bytes = get_int<std::uint32_t>(p);
      if (std::uint64_t{key_bytes_} + value_bytes > kSnapshotPairBytesMax) {
        return fail(Code::kCorruption, "pair too long");
      }
      stage_ = Stage::kValue;
      want_ = value_bytes;
      break;
    }
    case Stage::kValue: {
      if (!pairs_.emplace(std::move(key_), std::move(buf_)).second) {
        return fail(Code::kCorruption, "a key appears twice");
      }
      ++seen_;
      stage_ = seen_ == count_ ? Stage::kTrailer : Stage::kKeyLen;
      want_ = seen_ == count_ ? kSnapshotTrailerBytes : 4;
      break;
    }
    case Stage::kTrailer: {
      if (get_int<std::uint64_t>(p) != count_) {
        return fail(Code::kCorruption, "trailer count differs from the header's");
      }
      if (get_int<std::uint64_t>(p + 8) != XXH3_64bits_digest(hash_.get())) {
        return fail(Code::kCorruption, "checksum mismatch");
      }
      stage_ = Stage::kEnd;
      want_ = 0;
      break;
    }
    case Stage::kEnd: break;
  }
  buf_.clear();
  // A zero-length key or value is complete at once.
  if (want_ == 0 && stage_ != Stage::kEnd) return take_field();
  return Status::ok();
}

Status SnapshotParser::finish() {
  if (!error_) return error_;
  if (stage_ != Stage::kEnd) {
    return fail(Code::kCorruption, "cut short after " + std::to_string(total_) + " bytes");
  }
  return Status::ok();
}

}  // namespace raftd::kv
