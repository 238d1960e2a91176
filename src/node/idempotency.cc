#include "raftd/node/idempotency.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>

#include "raftd/base/assert.h"
#include "raftd/base/log.h"
#include "raftd/node/durable_file.h"
#include "raftd/node/envelope.h"

namespace raftd::node {

// ---- KeyTable ------------------------------------------------------------------------------

void KeyTable::forget(Group& grp, std::map<LogIndex, std::string>::iterator it) {
  auto s = grp.slots.find(it->second);
  if (s != grp.slots.end() && s->second.index == it->first) {
    bytes_ -= it->second.size() + (s->second.result ? s->second.result->size() : 0);
    grp.slots.erase(s);
  }
  grp.by_index.erase(it);
}

void KeyTable::cut(GroupId g, LogIndex first) {
  auto git = groups_.find(g);
  if (git == groups_.end()) return;
  Group& grp = git->second;
  for (auto it = grp.by_index.lower_bound(first); it != grp.by_index.end();) {
    auto next = std::next(it);
    forget(grp, it);
    it = next;
  }
}

void KeyTable::note(GroupId g, LogIndex index, std::string_view key) {
  Group& grp = groups_[g];
  std::string k(key);
  if (grp.slots.contains(k)) return;
  bytes_ += k.size();
  grp.slots.emplace(k, Slot{index, std::nullopt});
  grp.by_index.emplace(index, std::move(k));
}

const KeyTable::Slot* KeyTable::find(GroupId g, std::string_view key) const {
  auto git = groups_.find(g);
  if (git == groups_.end()) return nullptr;
  auto it = git->second.slots.find(std::string(key));
  return it == git->second.slots.end() ? nullptr : &it->second;
}

std::optional<std::string_view> KeyTable::key_at(GroupId g, LogIndex index) const {
  auto git = groups_.find(g);
  if (git == groups_.end()) return std::nullopt;
  auto it = git->second.by_index.find(index);
  if (it == git->second.by_index.end()) return std::nullopt;
  return std::string_view(it->second);
}

bool KeyTable::set_result(GroupId g, LogIndex index, std::string result) {
  auto git = groups_.find(g);
  if (git == groups_.end()) return false;
  auto it = git->second.by_index.find(index);
  if (it == git->second.by_index.end()) return false;
  Slot& slot = git->second.slots.at(it->second);
  if (slot.index != index) return false;
  if (slot.result) bytes_ -= slot.result->size();
  bytes_ += result.size();
  slot.result = std::move(result);
  return true;
}

void KeyTable::trim(GroupId g, LogIndex applied) {
  auto git = groups_.find(g);
  if (git == groups_.end()) return;
  Group& grp = git->second;
  while (grp.by_index.size() > keys_per_group_ && grp.by_index.begin()->first <= applied) {
    forget(grp, grp.by_index.begin());
  }
}

void KeyTable::drop_group(GroupId g) {
  auto git = groups_.find(g);
  if (git == groups_.end()) return;
  while (!git->second.by_index.empty()) forget(git->second, git->second.by_index.begin());
  groups_.erase(git);
}

std::vector<KeyTable::Item> KeyTable::items(GroupId g) const {
  std::vector<Item> out;
  auto git = groups_.find(g);
  if (git == groups_.end()) return out;
  for (const auto& [index, key] : git->second.by_index) {
    const Slot& s = git->second.slots.at(key);
    if (s.index == index) out.push_back(Item{index, key, &s.result});
  }
  return out;
}

std::vector<GroupId> KeyTable::groups() const {
  std::vector<GroupId> out;
  for (const auto& [g, grp] : groups_) out.push_back(g);
  return out;
}

size_t KeyTable::key_count() const {
  size_t n = 0;
  for (const auto& [g, grp] : groups_) n += grp.slots.size();
  return n;
}

// ---- journal records -----------------------------------------------------------------------
//
// Record: u32 body length | body | u64 XXH3-64 (seed 0) of the body, little endian.
// Body: u8 type | u64 group | u64 index, then for kKey: u8 has_result | u16 key length | key |
// [u32 result length | result] (result only when has_result is 1).

namespace {

constexpr uint8_t kTypeKey = 1;
constexpr uint8_t kTypeWatermark = 2;
constexpr size_t kBodyFixedBytes = 1 + 8 + 8;
// A result is what one UpdateEntries answer gave for one entry; bodies larger than this are not
// journal records but damage.
constexpr uint64_t kJournalBodyBytesMax = 256ull << 20;

void put_u16(std::string* o, uint16_t v) {
  o->push_back(static_cast<char>(v));
  o->push_back(static_cast<char>(v >> 8));
}
void put_u32(std::string* o, uint32_t v) {
  for (int i = 0; i < 4; ++i) o->push_back(static_cast<char>(v >> (8 * i)));
}
void put_u64(std::string* o, uint64_t v) {
  for (int i = 0; i < 8; ++i) o->push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t get_le(std::string_view b, size_t at, int bytes) {
  uint64_t x = 0;
  for (int i = bytes - 1; i >= 0; --i) x = x << 8 | static_cast<uint8_t>(b[at + i]);
  return x;
}

std::string frame(std::string body) {
  std::string out;
  out.reserve(4 + body.size() + 8);
  put_u32(&out, static_cast<uint32_t>(body.size()));
  out += body;
  put_u64(&out, XXH3_64bits(body.data(), body.size()));
  return out;
}

std::string body_head(uint8_t type, GroupId g, LogIndex index) {
  std::string b;
  b.push_back(static_cast<char>(type));
  put_u64(&b, g.value());
  put_u64(&b, index.value());
  return b;
}

}  // namespace

std::string encode_journal_key(GroupId g, LogIndex index, std::string_view key,
                               const std::optional<std::string>& result) {
  RAFTD_ASSERT(!key.empty() && key.size() <= kIdempotencyKeyBytesMax, "journal: key size");
  std::string b = body_head(kTypeKey, g, index);
  b.push_back(result ? 1 : 0);
  put_u16(&b, static_cast<uint16_t>(key.size()));
  b += key;
  if (result) {
    put_u32(&b, static_cast<uint32_t>(result->size()));
    b += *result;
  }
  return frame(std::move(b));
}

std::string encode_journal_watermark(GroupId g, LogIndex index) {
  return frame(body_head(kTypeWatermark, g, index));
}

JournalState ResultsJournal::decode(std::string_view bytes) {
  JournalState st;
  size_t at = 0;
  while (true) {
    if (bytes.size() - at < 4) break;
    const uint64_t n = get_le(bytes, at, 4);
    if (n < kBodyFixedBytes || n > kJournalBodyBytesMax || bytes.size() - at - 4 < n + 8) break;
    std::string_view body = bytes.substr(at + 4, n);
    if (XXH3_64bits(body.data(), body.size()) != get_le(bytes, at + 4 + n, 8)) break;
    const uint8_t type = static_cast<uint8_t>(body[0]);
    const GroupId g(get_le(body, 1, 8));
    const LogIndex index(get_le(body, 9, 8));
    if (type == kTypeWatermark) {
      if (n != kBodyFixedBytes) break;
    } else if (type == kTypeKey) {
      size_t p = kBodyFixedBytes;
      if (n < p + 3) break;
      const uint8_t has = static_cast<uint8_t>(body[p]);
      const size_t klen = get_le(body, p + 1, 2);
      p += 3;
      if (has > 1 || klen == 0 || klen > kIdempotencyKeyBytesMax || n < p + klen) break;
      JournalState::KeyRecord r{index, std::string(body.substr(p, klen)), std::nullopt};
      p += klen;
      if (has == 1) {
        if (n < p + 4) break;
        const uint64_t rlen = get_le(body, p, 4);
        p += 4;
        if (n != p + rlen) break;
        r.result = std::string(body.substr(p, rlen));
        p += rlen;
      }
      if (p != n) break;
      st.keys[g].push_back(std::move(r));
    } else {
      break;
    }
    LogIndex& w = st.watermark[g];
    w = std::max(w, index);
    at += 4 + n + 8;
  }
  st.valid_bytes = at;
  st.ignored_bytes = bytes.size() - at;
  return st;
}

Result<JournalState> ResultsJournal::load(const std::string& path) {
  Result<std::string> bytes = read_file(path, UINT64_MAX);
  if (!bytes.is_ok()) {
    if (bytes.status().code() == Code::kNotFound) return JournalState{};
    return bytes.status();
  }
  return decode(bytes.value());
}

ResultsJournal::~ResultsJournal() {
  flush();
  if (fd_ >= 0) ::close(fd_);
}

Status ResultsJournal::rewrite(const KeyTable& table, const Watermarks& watermark) {
  std::vector<std::pair<GroupId, LogIndex>> marks(watermark.begin(), watermark.end());
  std::sort(marks.begin(), marks.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string bytes;
  for (const auto& [g, w] : marks) {
    for (const KeyTable::Item& it : table.items(g)) {
      if (it.index <= w) bytes += encode_journal_key(g, it.index, it.key, *it.result);
    }
  }
  for (const auto& [g, w] : marks) bytes += encode_journal_watermark(g, w);
  if (Status s = replace_file(path_, bytes); !s.is_ok()) return s;
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0) return Status::from_errno(errno, "open " + path_);
  file_bytes_ = bytes.size();
  failed_ = false;
  return Status::ok();
}

void ResultsJournal::add_key(GroupId g, LogIndex index, std::string_view key,
                             const std::optional<std::string>& result) {
  buffer_ += encode_journal_key(g, index, key, result);
}

void ResultsJournal::add_watermark(GroupId g, LogIndex index) {
  buffer_ += encode_journal_watermark(g, index);
}

void ResultsJournal::flush() {
  if (buffer_.empty()) return;
  if (fd_ < 0 || failed_) {
    buffer_.clear();
    return;
  }
  if (Status s = write_all(fd_, buffer_, path_); !s.is_ok()) {
    // A partial record is cut by the next load (its checksum fails); nothing after it is used.
    log::error("idempotency journal: {}; results of later entries will not survive a restart",
               s.to_string());
    failed_ = true;
  } else {
    file_bytes_ += buffer_.size();
  }
  buffer_.clear();
}

}  // namespace raftd::node
