#include "kv_log.h"

#include <unistd.h>
#include <xxhash.h>

#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "raftd/base/log.h"

namespace raftd::kv {

static_assert(std::endian::native == std::endian::little,
              "the log's integers are written as the host's little-endian bytes");

namespace {

template <typename T>
void put_int(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

void put_bytes(std::string& out, std::string_view s) {
  put_int<std::uint32_t>(out, static_cast<std::uint32_t>(s.size()));
  out.append(s);
}

// Reads a record body; every read is bounds-checked, so a body that lies about its lengths
// fails instead of reading past its end.
class BodyReader {
 public:
  explicit BodyReader(std::string_view body) : rest_(body) {}

  template <typename T>
  bool get_int(T& v) {
    if (rest_.size() < sizeof(T)) return false;
    std::memcpy(&v, rest_.data(), sizeof(T));
    rest_.remove_prefix(sizeof(T));
    return true;
  }
  bool get_bytes(std::string& s) {
    std::uint32_t n = 0;
    if (!get_int(n) || rest_.size() < n) return false;
    s.assign(rest_.substr(0, n));
    rest_.remove_prefix(n);
    return true;
  }
  bool at_end() const { return rest_.empty(); }

 private:
  std::string_view rest_;
};

bool parse_body(std::string_view body, LogRecord& rec) {
  BodyReader r(body);
  std::uint64_t group = 0;
  std::uint64_t last = 0;
  std::uint32_t count = 0;
  if (!r.get_int(group) || !r.get_int(last) || !r.get_int(count)) return false;
  rec.group = GroupId(group);
  rec.last_index = LogIndex(last);
  rec.changes.clear();
  for (std::uint32_t i = 0; i < count; ++i) {
    std::uint8_t kind = 0;
    Change c;
    if (!r.get_int(kind) || !r.get_bytes(c.key)) return false;
    if (kind == static_cast<std::uint8_t>(ChangeKind::kPut)) {
      if (!r.get_bytes(c.value)) return false;
    } else if (kind == static_cast<std::uint8_t>(ChangeKind::kReset)) {
      if (i != 0 || !c.key.empty()) return false;  // first, and carries nothing
    } else if (kind != static_cast<std::uint8_t>(ChangeKind::kDelete)) {
      return false;
    }
    c.kind = static_cast<ChangeKind>(kind);
    rec.changes.push_back(std::move(c));
  }
  // A reset record's state is all puts: a delete after a reset means nothing, so it is not one.
  if (is_reset(rec)) {
    for (std::size_t i = 1; i < rec.changes.size(); ++i) {
      if (rec.changes[i].kind != ChangeKind::kPut) return false;
    }
  }
  return r.at_end();
}

// A record is built in one string: kRecordHeadBytes of room, then the body; seal() fills in
// the head (length and checksum), so a large record is never copied.
std::string start_record(std::size_t body_bytes) {
  std::string out;
  out.reserve(kRecordHeadBytes + body_bytes);
  out.resize(kRecordHeadBytes);
  return out;
}

std::string seal(std::string out) {
  const std::size_t body_bytes = out.size() - kRecordHeadBytes;
  RAFTD_ASSERT(body_bytes <= kRecordBodyBytesMax, "log record over kRecordBodyBytesMax");
  const auto n = static_cast<std::uint32_t>(body_bytes);
  const std::uint64_t sum = XXH3_64bits(out.data() + kRecordHeadBytes, body_bytes);
  std::memcpy(out.data(), &n, 4);
  std::memcpy(out.data() + 4, &sum, 8);
  return out;
}

// Reads exactly n bytes at off, or fewer at end of file. Returns the count, or -errno.
ssize_t read_at(int fd, char* buf, std::size_t n, std::uint64_t off) {
  std::size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd, buf + done, n - done, static_cast<off_t>(off + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -errno;
    if (r == 0) break;
    done += static_cast<std::size_t>(r);
  }
  return static_cast<ssize_t>(done);
}

[[noreturn]] void fail_stop(std::string_view what, std::int32_t res) {
  log::error("raftd-kv: {} failed: {}; stopping (the log's state on disk is unknown)", what,
             std::strerror(-res));
  std::abort();
}

}  // namespace

std::string encode_record(const LogRecord& record) {
  std::string body = start_record(0);
  put_int<std::uint64_t>(body, record.group.value());
  put_int<std::uint64_t>(body, record.last_index.value());
  put_int<std::uint32_t>(body, static_cast<std::uint32_t>(record.changes.size()));
  for (const Change& c : record.changes) {
    put_int<std::uint8_t>(body, static_cast<std::uint8_t>(c.kind));
    put_bytes(body, c.key);
    if (c.kind == ChangeKind::kPut) put_bytes(body, c.value);
  }
  return seal(std::move(body));
}

std::string encode_reset_record(GroupId group, LogIndex last_index,
                                const std::unordered_map<std::string, std::string>& pairs) {
  std::size_t bytes = 8 + 8 + 4 + 5;
  for (const auto& [k, v] : pairs) bytes += 9 + k.size() + v.size();
  RAFTD_ASSERT(pairs.size() < UINT32_MAX, "reset record: more pairs than its u32 count holds");
  std::string body = start_record(bytes);
  put_int<std::uint64_t>(body, group.value());
  put_int<std::uint64_t>(body, last_index.value());
  put_int<std::uint32_t>(body, static_cast<std::uint32_t>(pairs.size() + 1));
  put_int<std::uint8_t>(body, static_cast<std::uint8_t>(ChangeKind::kReset));
  put_bytes(body, "");
  for (const auto& [k, v] : pairs) {
    put_int<std::uint8_t>(body, static_cast<std::uint8_t>(ChangeKind::kPut));
    put_bytes(body, k);
    put_bytes(body, v);
  }
  return seal(std::move(body));
}

Status replay(int fd, const std::function<void(LogRecord&&)>& apply, std::uint64_t& torn_bytes) {
  std::uint64_t off = 0;
  std::string body;
  LogRecord rec;
  // A garbage length at a torn tail must not make replay allocate it: a body longer than what
  // the file still holds is cut off without being read.
  const off_t file_size = ::lseek(fd, 0, SEEK_END);
  if (file_size < 0) return Status::from_errno(errno, "lseek of the kv log");
  for (;;) {
    char head[kRecordHeadBytes];
    const ssize_t h = read_at(fd, head, sizeof(head), off);
    if (h < 0) return Status::from_errno(static_cast<int>(-h), "read of the kv log");
    if (static_cast<std::size_t>(h) < sizeof(head)) break;
    std::uint32_t body_bytes = 0;
    std::uint64_t checksum = 0;
    std::memcpy(&body_bytes, head, 4);
    std::memcpy(&checksum, head + 4, 8);
    if (body_bytes > kRecordBodyBytesMax) break;
    if (off + kRecordHeadBytes + body_bytes > static_cast<std::uint64_t>(file_size)) break;
    body.resize(body_bytes);
    const ssize_t b = read_at(fd, body.data(), body_bytes, off + kRecordHeadBytes);
    if (b < 0) return Status::from_errno(static_cast<int>(-b), "read of the kv log");
    if (static_cast<std::size_t>(b) < body_bytes) break;
    if (XXH3_64bits(body.data(), body.size()) != checksum || !parse_body(body, rec)) break;
    apply(std::move(rec));
    off += kRecordHeadBytes + body_bytes;
  }
  const off_t size = ::lseek(fd, 0, SEEK_END);
  if (size < 0) return Status::from_errno(errno, "lseek of the kv log");
  torn_bytes = static_cast<std::uint64_t>(size) - off;
  if (torn_bytes > 0) {
    if (::ftruncate(fd, static_cast<off_t>(off)) != 0) {
      return Status::from_errno(errno, "ftruncate of the kv log's torn tail");
    }
    if (::fdatasync(fd) != 0) return Status::from_errno(errno, "fdatasync of the kv log");
  }
  return Status::ok();
}

Log::Log(io::Reactor& reactor, int fd, std::uint64_t end, bool durable)
    : reactor_(reactor),
      fd_(fd),
      durable_(durable),
      write_sync_([this](std::int32_t res) { on_written(res, true); }),
      write_([this](std::int32_t res) { on_written(res, false); }),
      sync_([this](std::int32_t res) { on_written(res, true); }),
      appended_end_(end),
      written_end_(end),
      durable_end_(end) {
  hook_ = reactor_.add_turn_end_hook([this] { on_turn_end(); });
}

Log::~Log() {
  RAFTD_ASSERT(idle(), "kv Log destroyed with a write in flight");
  reactor_.remove_turn_end_hook(hook_);
}

void Log::append(std::string_view record) {
  RAFTD_ASSERT(!closed_, "append to a closed kv Log");
  pending_ += record;
  appended_end_ += record.size();
}

void Log::when_written(bool sync, std::function<void()> done) {
  waiters_.push_back(Waiter{appended_end_, sync || durable_, std::move(done)});
}

void Log::close() { closed_ = true; }

bool Log::idle() const {
  return !write_sync_.active() && !write_.active() && !sync_.active() && pending_.empty();
}

// Group commit: everything appended during the turn leaves in one write.
void Log::on_turn_end() {
  run_waiters();
  pump();
}

void Log::pump() {
  if (write_sync_.active() || write_.active() || sync_.active()) return;
  bool want_sync = durable_;
  for (const Waiter& w : waiters_) want_sync = want_sync || (w.sync && w.end > durable_end_);
  if (!pending_.empty()) {
    inflight_.swap(pending_);
    pending_.clear();
    inflight_end_ = written_end_ + inflight_.size();
    inflight_sync_ = want_sync;
    if (want_sync) {
      reactor_.write_fdatasync(write_sync_, fd_, inflight_.data(), inflight_.size(), written_end_);
    } else {
      reactor_.write(write_, fd_, inflight_.data(), inflight_.size(), written_end_);
    }
  } else if (want_sync && durable_end_ < written_end_) {
    inflight_end_ = written_end_;
    inflight_sync_ = true;
    reactor_.fdatasync(sync_, fd_);
  }
}

void Log::on_written(std::int32_t res, bool synced) {
  if (res < 0) fail_stop(synced ? "write+fdatasync of the kv log" : "write of the kv log", res);
  RAFTD_ASSERT(synced == inflight_sync_, "kv Log: completion of an op it did not start");
  written_end_ = inflight_end_;
  if (synced) {
    durable_end_ = written_end_;
    ++syncs_;
  }
  inflight_.clear();
  run_waiters();
  pump();
}

void Log::run_waiters() {
  std::vector<std::function<void()>> ready;
  std::size_t kept = 0;
  for (Waiter& w : waiters_) {
    if ((w.sync ? durable_end_ : written_end_) >= w.end) {
      ready.push_back(std::move(w.done));
    } else {
      waiters_[kept++] = std::move(w);
    }
  }
  waiters_.erase(waiters_.begin() + static_cast<std::ptrdiff_t>(kept), waiters_.end());
  for (auto& done : ready) done();
}

}  // namespace raftd::kv
