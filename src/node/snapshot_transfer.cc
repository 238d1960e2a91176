// Snapshot streams between nodes. snapshot_transfer.h states the contract, doc/transport.md
// "Snapshot streams" the wire format:
//
//   POST /raft/v1/snapshot, headers Raftd-Cluster, Raftd-From, Raftd-To, Raftd-Group,
//   Raftd-Index, Raftd-Term (decimal u64); body (chunked):
//     +----------------------+------------+------------+------------------------+
//     | snapshot bytes (N)   | "RDSNAPv1" | u64 N (LE) | u64 XXH3_64bits (LE)   |
//     +----------------------+------------+------------+------------------------+
//   answer 200 {"bytes": N} once the receiver has the bytes on disk, verified and durable.
#include "raftd/node/snapshot_transfer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <system_error>

#include "raftd/base/assert.h"
#include "raftd/base/log.h"

namespace raftd::node {
namespace {

using io::Clock;
using io::TimePoint;
using std::chrono::seconds;

std::optional<uint64_t> parse_u64(std::optional<std::string_view> s) {
  if (!s || s->empty()) return std::nullopt;
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
  if (ec != std::errc() || end != s->data() + s->size()) return std::nullopt;
  return v;
}

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t get_u64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

struct HashFree {
  void operator()(XXH3_state_t* s) const { XXH3_freeState(s); }
};
using HashState = std::unique_ptr<XXH3_state_t, HashFree>;

HashState new_hash() {
  HashState h(XXH3_createState());
  RAFTD_ASSERT(h != nullptr, "snapshot: XXH3_createState failed (out of memory)");
  XXH3_64bits_reset(h.get());
  return h;
}

double mb_per_s(uint64_t bytes, io::Duration d) {
  const double s = std::chrono::duration<double>(d).count();
  return s > 0 ? static_cast<double>(bytes) / 1e6 / s : 0.0;
}

double seconds_of(io::Duration d) { return std::chrono::duration<double>(d).count(); }

std::string error_json(std::string_view code, std::string_view message) {
  return nlohmann::json{{"error", code}, {"message", message}}.dump();
}

std::string name_of(const SnapshotId& id) {
  return fmt::format("group {} index {} term {}", id.group.value(), id.index.value(),
                     id.term.value());
}

// "<group>-<index>-<term><ext>", each a decimal u64.
std::optional<SnapshotId> parse_file_name(std::string_view name, std::string_view ext) {
  if (name.size() <= ext.size() || !name.ends_with(ext)) return std::nullopt;
  name.remove_suffix(ext.size());
  uint64_t v[3];
  for (int i = 0; i < 3; ++i) {
    const size_t dash = i < 2 ? name.find('-') : name.size();
    if (dash == std::string_view::npos) return std::nullopt;
    auto n = parse_u64(name.substr(0, dash));
    if (!n) return std::nullopt;
    v[i] = *n;
    name.remove_prefix(std::min(name.size(), dash + 1));
  }
  return SnapshotId{GroupId(v[0]), LogIndex(v[1]), Term(v[2])};
}

// accept()'s verdict as an HTTP status (ReceiverOptions::accept).
int status_of(Code c) {
  switch (c) {
    case Code::kUnavailable: return 503;
    case Code::kNotFound: return 404;
    case Code::kAborted:
    case Code::kAlreadyExists: return 409;
    default: return 400;
  }
}

Status fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::from_errno(errno, "open " + dir);
  const int r = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (r != 0) return Status::from_errno(err, "fsync " + dir);
  return Status::ok();
}

void unlink_quietly(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    log::warn("snapshot: cannot delete {}: {}", path, std::strerror(errno));
  }
}

}  // namespace

std::string encode_snapshot_footer(uint64_t length, uint64_t hash) {
  std::string out(kSnapshotFooterMagic);
  put_u64(out, length);
  put_u64(out, hash);
  return out;
}

// ======================================= receiving side =======================================

// One accepted stream. Owned by the receiver (not the exchange): its write and sync ops must
// outlive their completions, also when the connection is gone.
struct SnapshotReceiver::Stream {
  SnapshotId id;
  NodeId from;
  http::Exchange* ex = nullptr;  // null once the exchange aborted or ended
  Link* link = nullptr;
  std::string part;  // empty once renamed or deleted
  std::string final_path;
  int fd = -1;
  // Received and not yet written. Its last kSnapshotFooterBytes may be the footer, so they stay
  // here until more bytes arrive or the body ends. Stable while a write is in flight (the body
  // is paused, and a failed stream appends nothing).
  std::string buf;
  uint64_t written = 0;   // bytes in the file
  uint64_t synced = 0;    // written bytes an fdatasync covered
  uint64_t received = 0;  // body bytes, footer included
  HashState hash = new_hash();
  io::WriteOp write;
  io::SyncOp sync;
  size_t write_len = 0;   // of the write in flight
  bool paused = false;    // on_body returned kPause; the write's completion resumes the body
  bool end_owed = false;  // the body ended while a write was in flight
  bool ended = false;     // footer verified: final write and fdatasync
  bool failed = false;    // answered with an error (or aborted); waits for its ops to end
  TimePoint started = Clock::now();
  TimePoint last_log = started;
  uint64_t last_log_bytes = 0;

  bool busy() const { return write.active() || sync.active(); }
};

// The exchange's pointer to its stream; either side lets go of the other first.
struct SnapshotReceiver::Link final : http::ExchangeContext {
  Stream* s = nullptr;
  ~Link() override {
    if (s != nullptr) {
      s->link = nullptr;
      s->ex = nullptr;
    }
  }
};

SnapshotReceiver::SnapshotReceiver(io::Reactor& reactor, ReceiverOptions options)
    : reactor_(reactor), options_(std::move(options)) {
  hook_ = reactor_.add_turn_end_hook([this] { retired_.clear(); });
}

Result<std::unique_ptr<SnapshotReceiver>> SnapshotReceiver::open(io::Reactor& reactor,
                                                                 ReceiverOptions options) {
  RAFTD_ASSERT(!options.dir.empty(), "snapshot receiver: dir is empty");
  RAFTD_ASSERT(options.self != NodeId(0), "snapshot receiver: self node id is 0");
  RAFTD_ASSERT(options.concurrent_max > 0, "snapshot receiver: concurrent_max is 0");
  RAFTD_ASSERT(options.sync_interval_bytes > 0, "snapshot receiver: sync_interval_bytes is 0");
  std::unique_ptr<SnapshotReceiver> r(new SnapshotReceiver(reactor, std::move(options)));
  if (Status s = r->scan(); !s) return s;
  return r;
}

// Leftover .part files are transfers a crash interrupted: nobody reported them received, so
// they go. Of the .snap files, one per group is kept (a crash between the rename of a newer one
// and the deletion of the older leaves two).
Status SnapshotReceiver::scan() {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(options_.dir, ec);
  if (ec) {
    return Status(Code::kIoError, "create " + options_.dir + ": " + ec.message());
  }
  std::vector<Complete> found;
  for (fs::directory_iterator it(options_.dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const std::string path = it->path().string();
    if (parse_file_name(name, ".part")) {
      log::info("snapshot: deleting {}, a transfer that did not finish", path);
      unlink_quietly(path);
    } else if (auto id = parse_file_name(name, ".snap")) {
      const uint64_t bytes = fs::file_size(it->path(), ec);
      if (ec) return Status(Code::kIoError, "stat " + path + ": " + ec.message());
      found.push_back(Complete{*id, path, bytes});
    }
  }
  if (ec) return Status(Code::kIoError, "read " + options_.dir + ": " + ec.message());
  for (Complete& c : found) {
    auto [it, fresh] = complete_.try_emplace(c.id.group, c);
    if (fresh) continue;
    Complete& kept = it->second;
    const bool newer = std::pair(c.id.index, c.id.term) > std::pair(kept.id.index, kept.id.term);
    unlink_quietly(newer ? kept.path : c.path);
    if (newer) kept = c;
  }
  return Status::ok();
}

SnapshotReceiver::~SnapshotReceiver() {
  reactor_.remove_turn_end_hook(hook_);
  for (auto& s : streams_) {
    RAFTD_ASSERT(!s->busy(), "snapshot receiver destroyed with a write in flight");
    if (s->link != nullptr) s->link->s = nullptr;
    if (s->fd >= 0) ::close(s->fd);
    if (!s->part.empty()) unlink_quietly(s->part);
  }
}

std::optional<std::pair<std::string, uint64_t>> SnapshotReceiver::find(const SnapshotId& id) const {
  auto it = complete_.find(id.group);
  if (it == complete_.end() || !(it->second.id == id)) return std::nullopt;
  return std::pair(it->second.path, it->second.bytes);
}

void SnapshotReceiver::remove(GroupId group) {
  std::vector<Stream*> doomed;
  for (auto& s : streams_) {
    if (s->id.group == group && !s->failed) doomed.push_back(s.get());
  }
  for (Stream* s : doomed) {
    fail(*s, 409, "removed",
         "the snapshots of group " + std::to_string(group.value()) +
             " were removed on the receiver");
  }
  auto it = complete_.find(group);
  if (it != complete_.end()) {
    unlink_quietly(it->second.path);
    complete_.erase(it);
  }
}

size_t SnapshotReceiver::active() const {
  return static_cast<size_t>(
      std::count_if(streams_.begin(), streams_.end(), [](const auto& s) { return !s->failed; }));
}

bool SnapshotReceiver::idle() const {
  return std::none_of(streams_.begin(), streams_.end(), [](const auto& s) { return s->busy(); });
}

std::string SnapshotReceiver::path_of(const SnapshotId& id, std::string_view ext) const {
  return fmt::format("{}/{}-{}-{}{}", options_.dir, id.group.value(), id.index.value(),
                     id.term.value(), ext);
}

SnapshotReceiver::Stream* SnapshotReceiver::stream_of(http::Exchange& ex) const {
  auto* link = static_cast<Link*>(ex.context());
  return link == nullptr ? nullptr : link->s;
}

void SnapshotReceiver::refuse(http::Exchange& ex, int status, std::string_view code,
                              const std::string& why) {
  ++stats_.refused;
  const http::Request& rq = ex.request();
  log::warn("snapshot: refused a stream from node {} (group {}): {} {}",
            rq.header(kSnapshotHeaderFrom).value_or("?"),
            rq.header(kSnapshotHeaderGroup).value_or("?"), status, why);
  ex.respond(status, error_json(code, why), "application/json");
}

void SnapshotReceiver::on_headers(http::Exchange& ex) {
  const http::Request& rq = ex.request();
  if (rq.target != kSnapshotPath) {
    return refuse(ex, 404, "not_found", "no snapshot stream at " + rq.target);
  }
  if (rq.method != "POST") {
    ex.add_header("Allow", "POST");
    return refuse(ex, 405, "method_not_allowed", "snapshot streams are POSTed");
  }
  const auto cluster = parse_u64(rq.header(kSnapshotHeaderCluster));
  const auto from = parse_u64(rq.header(kSnapshotHeaderFrom));
  const auto to = parse_u64(rq.header(kSnapshotHeaderTo));
  const auto group = parse_u64(rq.header(kSnapshotHeaderGroup));
  const auto index = parse_u64(rq.header(kSnapshotHeaderIndex));
  const auto term = parse_u64(rq.header(kSnapshotHeaderTerm));
  if (!cluster || !from || !to || !group || !index || !term) {
    return refuse(ex, 400, "bad_request", "snapshot headers missing or not decimal numbers");
  }
  if (*cluster != options_.cluster_id) {
    ex.add_header(kSnapshotHeaderCluster, std::to_string(options_.cluster_id));
    return refuse(ex, 403, "other_cluster",
                  "cluster " + std::to_string(*cluster) + " is not this node's cluster " +
                      std::to_string(options_.cluster_id));
  }
  if (NodeId(*to) != options_.self) {
    return refuse(ex, 421, "misdirected",
                  "this is node " + std::to_string(options_.self.value()) + ", not node " +
                      std::to_string(*to));
  }
  if (*from == 0 || NodeId(*from) == options_.self || *index == 0 || *term == 0) {
    return refuse(ex, 400, "bad_request",
                  "Raftd-From, Raftd-Index and Raftd-Term must be "
                  "non-zero, and the sender another node");
  }
  const SnapshotId id{GroupId(*group), LogIndex(*index), Term(*term)};
  Stream* older = nullptr;
  for (auto& s : streams_) {
    if (s->id.group == id.group && !s->failed) older = s.get();
  }
  if (active() - (older != nullptr ? 1 : 0) >= options_.concurrent_max) {
    ex.add_header("Retry-After", std::to_string(kRetryAfterSeconds));
    return refuse(ex, 503, "busy",
                  std::to_string(options_.concurrent_max) + " snapshot streams in progress");
  }
  if (options_.accept) {
    if (Status st = options_.accept(id, NodeId(*from)); !st) {
      const int status = status_of(st.code());
      if (status == 503) ex.add_header("Retry-After", std::to_string(kRetryAfterSeconds));
      return refuse(ex, status, code_name(st.code()), st.message());
    }
  }
  // One stream per group: the newer one wins (the older is most likely a broken connection
  // the server has not noticed yet). Its .part goes before the new one is created.
  if (older != nullptr) fail(*older, 409, "replaced", "replaced by a newer stream for its group");
  const std::string part = path_of(id, ".part");
  const int fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    return refuse(ex, err == ENOSPC ? 507 : 500, err == ENOSPC ? "no_space" : "io_error",
                  Status::from_errno(err, "create " + part).message());
  }
  auto s = std::make_unique<Stream>();
  s->id = id;
  s->from = NodeId(*from);
  s->ex = &ex;
  s->part = part;
  s->final_path = path_of(id, ".snap");
  s->fd = fd;
  Stream* sp = s.get();
  s->write.set_callback([this, sp](int32_t res) { on_written(*sp, res, sp->write_len); });
  s->sync.set_callback([this, sp](int32_t res) { on_synced(*sp, res); });
  auto link = std::make_unique<Link>();
  link->s = sp;
  s->link = link.get();
  streams_.push_back(std::move(s));
  ex.set_context(std::move(link));
  log::info("snapshot: receiving {} from node {}", name_of(id), *from);
}

http::Flow SnapshotReceiver::on_body(http::Exchange& ex, std::string_view chunk) {
  Stream* s = stream_of(ex);
  if (s == nullptr || s->failed || s->ended) return http::Flow::kContinue;  // answered: dropped
  s->received += chunk.size();
  s->buf.append(chunk);
  stats_.buffered_max = std::max<uint64_t>(stats_.buffered_max, s->buf.size());
  log_progress(*s);
  if (s->buf.size() < kSpoolWriteBytes + kSnapshotFooterBytes) return http::Flow::kContinue;
  const size_t n = s->buf.size() - kSnapshotFooterBytes;
  XXH3_64bits_update(s->hash.get(), s->buf.data(), n);
  start_write(*s, n);
  s->paused = true;
  return http::Flow::kPause;
}

void SnapshotReceiver::start_write(Stream& s, size_t n) {
  RAFTD_ASSERT(n > 0 && n <= s.buf.size() && !s.busy(), "snapshot: bad write");
  s.write_len = n;
  reactor_.write(s.write, s.fd, s.buf.data(), n, s.written);
}

void SnapshotReceiver::on_written(Stream& s, int32_t res, size_t n) {
  if (s.failed) {
    if (!s.busy()) release(s);
    return;
  }
  if (res < 0) {
    return fail(s, res == -ENOSPC ? 507 : 500, res == -ENOSPC ? "no_space" : "io_error",
                Status::from_errno(-res, "write " + s.part).message());
  }
  s.written += n;
  s.buf.erase(0, n);
  if (s.ended || s.written - s.synced >= options_.sync_interval_bytes) {
    start_sync(s);
    return;
  }
  go_on(s);
}

void SnapshotReceiver::on_synced(Stream& s, int32_t res) {
  if (s.failed) {
    if (!s.busy()) release(s);
    return;
  }
  if (res < 0) {
    return fail(s, 500, "io_error", Status::from_errno(-res, "fdatasync " + s.part).message());
  }
  s.synced = s.written;
  if (s.ended) return complete(s);
  go_on(s);
}

// A write or fdatasync finished with the stream still open: end it if its body ended meanwhile,
// else take the body in again.
void SnapshotReceiver::go_on(Stream& s) {
  if (s.end_owed) {
    s.end_owed = false;
    s.paused = false;
    return end_stream(s);
  }
  if (s.paused) {
    s.paused = false;
    if (s.ex != nullptr) s.ex->resume_body();
  }
}

void SnapshotReceiver::on_end(http::Exchange& ex) {
  Stream* s = stream_of(ex);
  if (s == nullptr || s->failed || s->ended) return;
  // The server does not end a body it holds paused, but a write in flight must finish first
  // whatever the order.
  if (s->busy()) {
    s->end_owed = true;
    return;
  }
  end_stream(*s);
}

// The body ended: what is held back must be exactly the footer, and it must describe the bytes.
void SnapshotReceiver::end_stream(Stream& s) {
  if (s.buf.size() < kSnapshotFooterBytes) {
    return fail(
        s, 422, "corrupt",
        "the stream ended after " + std::to_string(s.received) + " bytes, before a whole footer");
  }
  const size_t n = s.buf.size() - kSnapshotFooterBytes;
  XXH3_64bits_update(s.hash.get(), s.buf.data(), n);
  const char* footer = s.buf.data() + n;
  const uint64_t total = s.written + n;
  const uint64_t length = get_u64(footer + 8);
  const uint64_t hash = get_u64(footer + 16);
  if (std::string_view(footer, kSnapshotFooterMagic.size()) != kSnapshotFooterMagic) {
    return fail(s, 422, "corrupt", "the stream does not end with a snapshot footer");
  }
  if (length != total) {
    return fail(s, 422, "corrupt",
                "the footer says " + std::to_string(length) + " bytes, the stream carried " +
                    std::to_string(total));
  }
  if (hash != XXH3_64bits_digest(s.hash.get())) {
    return fail(s, 422, "corrupt", "the snapshot's checksum does not match its bytes");
  }
  s.ended = true;
  s.buf.resize(n);
  if (n > 0) return start_write(s, n);
  start_sync(s);
}

void SnapshotReceiver::start_sync(Stream& s) {
  ++stats_.syncs;
  reactor_.fdatasync(s.sync, s.fd);
}

// The bytes are durable in the .part file: give it its final name, durably, then answer.
void SnapshotReceiver::complete(Stream& s) {
  ::close(s.fd);
  s.fd = -1;
  if (::rename(s.part.c_str(), s.final_path.c_str()) != 0) {
    return fail(s, 500, "io_error",
                Status::from_errno(errno, "rename " + s.part + " to " + s.final_path).message());
  }
  s.part.clear();
  if (Status st = fsync_dir(options_.dir); !st) {
    unlink_quietly(s.final_path);
    return fail(s, 500, "io_error", st.message());
  }
  auto it = complete_.find(s.id.group);
  if (it != complete_.end() && it->second.path != s.final_path) unlink_quietly(it->second.path);
  complete_[s.id.group] = Complete{s.id, s.final_path, s.written};
  ++stats_.received;
  stats_.bytes += s.written;
  const io::Duration took = Clock::now() - s.started;
  log::info("snapshot: received {} from node {}: {} bytes in {:.1f} s ({:.1f} MB/s), durable at {}",
            name_of(s.id), s.from.value(), s.written, seconds_of(took), mb_per_s(s.written, took),
            s.final_path);
  const SnapshotId id = s.id;
  const std::string path = s.final_path;
  const uint64_t bytes = s.written;
  http::Exchange* ex = s.ex;
  release(s);
  if (ex != nullptr) {
    ex->respond(200, nlohmann::json{{"bytes", bytes}}.dump(), "application/json");
  }
  if (options_.on_received) options_.on_received(id, path, bytes);
}

// Ends a stream without a file: its .part goes, the sender gets `status` (when the exchange is
// still there), and the stream is freed once no op of it is in flight.
void SnapshotReceiver::fail(Stream& s, int status, std::string_view code, const std::string& why) {
  if (s.failed) return;
  s.failed = true;
  ++stats_.failed;
  log::warn("snapshot: receiving {} from node {} failed after {} bytes: {}", name_of(s.id),
            s.from.value(), s.received, why);
  if (!s.part.empty()) {
    unlink_quietly(s.part);
    s.part.clear();
  }
  if (http::Exchange* ex = s.ex; ex != nullptr && status != 0) {
    ex->respond(status, error_json(code, why), "application/json");
  }
  // The rest of the body (if any) is read and dropped; the buffer is not touched any more, so a
  // write still in flight keeps its bytes.
  if (s.paused && s.ex != nullptr) {
    s.paused = false;
    s.ex->resume_body();
  }
  if (!s.busy()) release(s);
}

void SnapshotReceiver::release(Stream& s) {
  RAFTD_ASSERT(!s.busy(), "snapshot: stream released with an op in flight");
  if (s.link != nullptr) s.link->s = nullptr;
  s.link = nullptr;
  s.ex = nullptr;
  if (s.fd >= 0) ::close(s.fd);
  s.fd = -1;
  auto it =
      std::find_if(streams_.begin(), streams_.end(), [&](const auto& p) { return p.get() == &s; });
  RAFTD_ASSERT(it != streams_.end(), "snapshot: releasing an unknown stream");
  // Freed at turn end: this may run inside the stream's own op callback.
  retired_.push_back(std::move(*it));
  streams_.erase(it);
}

void SnapshotReceiver::on_aborted(http::Exchange& ex) {
  Stream* s = stream_of(ex);
  if (s == nullptr) return;
  s->ex = nullptr;
  fail(*s, 0, "", "the sender's connection ended before the stream did");
}

void SnapshotReceiver::log_progress(Stream& s) {
  const TimePoint now = Clock::now();
  if (now - s.last_log < seconds(kProgressLogSeconds)) return;
  log::info("snapshot: receiving {} from node {}: {} bytes so far ({:.1f} MB/s)", name_of(s.id),
            s.from.value(), s.received, mb_per_s(s.received - s.last_log_bytes, now - s.last_log));
  s.last_log = now;
  s.last_log_bytes = s.received;
}

// ======================================== sending side ========================================

struct SnapshotSender::Transfer {
  TransferId id = 0;
  SendTarget target;
  SnapshotId snap;
  std::function<void()> on_drained;
  std::function<void(Status)> done;
  http::RequestId req = 0;
  std::string buf;  // pushed, not yet handed to the connection: buf[pos, size)
  size_t pos = 0;
  uint64_t pushed = 0;
  uint64_t sent = 0;  // handed to the connection, footer included
  HashState hash = new_hash();
  bool finishing = false;  // finish() was called
  Status abort;            // finish(error): the source fails with it
  bool cancelled = false;
  bool owe_drained = false;  // push() answered kPause
  bool drained_queued = false;
  int status = 0;  // of the answer
  std::string answer;
  TimePoint started = Clock::now();
  TimePoint last_log = started;
  uint64_t last_log_bytes = 0;

  size_t pending() const { return buf.size() - pos; }
};

SnapshotSender::SnapshotSender(io::Reactor& reactor, http::ClientOptions options)
    : reactor_(reactor) {
  hook_ = reactor_.add_turn_end_hook([this] { on_turn_end(); });
  client_ = std::make_unique<http::Client>(reactor_, options);
}

SnapshotSender::~SnapshotSender() {
  if (!closing_) close();
}

SnapshotSender::TransferId SnapshotSender::start(const SendTarget& target, const SnapshotId& id,
                                                 std::function<void()> on_drained,
                                                 std::function<void(Status)> done) {
  RAFTD_ASSERT(!closing_, "snapshot sender: start() after close()");
  RAFTD_ASSERT(target.from != NodeId(0) && target.to != NodeId(0),
               "snapshot sender: node ids must be non-zero");
  auto t = std::make_shared<Transfer>();
  t->id = next_id_++;
  t->target = target;
  t->snap = id;
  t->on_drained = std::move(on_drained);
  t->done = std::move(done);

  http::ClientRequest req;
  req.method = "POST";
  req.target = kSnapshotPath;
  req.headers = {
      {kSnapshotHeaderCluster, std::to_string(target.cluster_id)},
      {kSnapshotHeaderFrom, std::to_string(target.from.value())},
      {kSnapshotHeaderTo, std::to_string(target.to.value())},
      {kSnapshotHeaderGroup, std::to_string(id.group.value())},
      {kSnapshotHeaderIndex, std::to_string(id.index.value())},
      {kSnapshotHeaderTerm, std::to_string(id.term.value())},
      {"Content-Type", "application/octet-stream"},
  };
  req.source = [this, t](std::string& out, size_t max, bool& body_done) {
    return pull(*t, out, max, body_done);
  };
  // An answer longer than this is not a receiver's: the request fails with kTooLarge.
  req.response_body_bytes_max = 16 * kAnswerBytesMax;
  http::ResponseCallbacks cb;
  cb.on_head = [t](const http::ResponseHead& head) { t->status = head.status; };
  cb.on_body = [t](std::string_view chunk) {
    t->answer.append(
        chunk.substr(0, kAnswerBytesMax - std::min(kAnswerBytesMax, t->answer.size())));
    return http::Flow::kContinue;
  };
  cb.on_done = [this, t](Status st) { on_done(t, std::move(st)); };
  transfers_[t->id] = t;
  ++stats_.started;
  log::info("snapshot: sending {} to node {} at {}:{}", name_of(id), target.to.value(), target.host,
            target.port);
  t->req = client_->request(target.host, target.port, std::move(req), std::move(cb));
  return t->id;
}

http::Flow SnapshotSender::push(TransferId transfer, std::string_view bytes) {
  auto it = transfers_.find(transfer);
  if (it == transfers_.end()) return http::Flow::kContinue;  // over: the bytes go nowhere
  Transfer& t = *it->second;
  RAFTD_ASSERT(!t.finishing, "snapshot sender: push() after finish()");
  XXH3_64bits_update(t.hash.get(), bytes.data(), bytes.size());
  t.pushed += bytes.size();
  // Drop what the connection took once it is at least half the buffer: each byte moves at most
  // once more, and the buffer never holds much more than what is pending.
  if (t.pos > 0 && t.pos >= t.buf.size() / 2) {
    t.buf.erase(0, t.pos);
    t.pos = 0;
  }
  t.buf.append(bytes);
  stats_.buffered_max = std::max<uint64_t>(stats_.buffered_max, t.pending());
  client_->resume_source(t.req);
  if (t.pending() > kSendBufferBytesMax) {
    t.owe_drained = true;
    return http::Flow::kPause;
  }
  return http::Flow::kContinue;
}

void SnapshotSender::finish(TransferId transfer, Status status) {
  auto it = transfers_.find(transfer);
  if (it == transfers_.end() || it->second->finishing) return;
  Transfer& t = *it->second;
  t.finishing = true;
  t.owe_drained = false;
  if (status.is_ok()) {
    t.buf.append(encode_snapshot_footer(t.pushed, XXH3_64bits_digest(t.hash.get())));
    client_->resume_source(t.req);
    return;
  }
  // The connection is closed at once (the receiver deletes its .part when it sees that), not
  // after what is buffered drained; done gets the producer's error at turn end.
  t.abort = std::move(status);
  client_->cancel(t.req);
  aborted_.push_back(it->second);
  reactor_.wake();
}

void SnapshotSender::cancel(TransferId transfer) {
  auto it = transfers_.find(transfer);
  if (it == transfers_.end()) return;
  std::shared_ptr<Transfer> t = it->second;
  transfers_.erase(it);
  t->cancelled = true;
  log::info("snapshot: sending {} to node {} cancelled after {} bytes", name_of(t->snap),
            t->target.to.value(), t->sent);
  client_->cancel(t->req);
}

// The HTTP client asks for more of the body.
Status SnapshotSender::pull(Transfer& t, std::string& out, size_t max, bool& body_done) {
  body_done = false;
  // A cancelled or aborted request was abandoned (Client::cancel): its source is not pulled
  // again. Should it be, the request fails instead of sending more.
  if (t.cancelled) return Status(Code::kCancelled, "snapshot transfer cancelled");
  if (!t.abort.is_ok()) return t.abort;
  const size_t n = std::min(max, t.pending());
  out.append(t.buf, t.pos, n);
  t.pos += n;
  t.sent += n;
  if (t.pos == t.buf.size()) {
    t.buf.clear();
    t.pos = 0;
  }
  body_done = t.finishing && t.pending() == 0;
  if (t.owe_drained && !t.drained_queued && t.pending() < kSendBufferLowBytes) {
    t.drained_queued = true;
    drained_.push_back(t.id);
    reactor_.wake();  // the turn-end hook may have run this turn already
  }
  const TimePoint now = Clock::now();
  if (now - t.last_log >= seconds(kProgressLogSeconds)) {
    log::info("snapshot: sending {} to node {}: {} bytes sent ({:.1f} MB/s)", name_of(t.snap),
              t.target.to.value(), t.sent, mb_per_s(t.sent - t.last_log_bytes, now - t.last_log));
    t.last_log = now;
    t.last_log_bytes = t.sent;
  }
  return Status::ok();
}

void SnapshotSender::on_turn_end() {
  while (!aborted_.empty()) {
    std::shared_ptr<Transfer> t = std::move(aborted_.back());
    aborted_.pop_back();
    on_done(t, t->abort);
  }
  if (drained_.empty()) return;
  std::vector<TransferId> ids;
  ids.swap(drained_);
  for (TransferId id : ids) {
    auto it = transfers_.find(id);
    if (it == transfers_.end()) continue;
    std::shared_ptr<Transfer> t = it->second;  // on_drained may end the transfer
    t->drained_queued = false;
    if (!t->owe_drained || t->pending() >= kSendBufferLowBytes) continue;
    t->owe_drained = false;
    if (t->on_drained) t->on_drained();
  }
}

void SnapshotSender::on_done(const std::shared_ptr<Transfer>& t, Status st) {
  auto it = transfers_.find(t->id);
  if (it == transfers_.end() || it->second != t) return;  // cancelled
  transfers_.erase(it);
  Status result = outcome(*t, st);
  const io::Duration took = Clock::now() - t->started;
  if (result.is_ok()) {
    ++stats_.sent;
    stats_.bytes += t->pushed;
    log::info("snapshot: sent {} to node {}: {} bytes in {:.1f} s ({:.1f} MB/s)", name_of(t->snap),
              t->target.to.value(), t->pushed, seconds_of(took), mb_per_s(t->pushed, took));
  } else {
    ++stats_.failed;
    log::warn("snapshot: sending {} to node {} failed after {} bytes: {}", name_of(t->snap),
              t->target.to.value(), t->sent, result.to_string());
  }
  if (t->done) {
    auto done = std::move(t->done);
    done(std::move(result));
  }
}

// What the request's end means for the producer.
Status SnapshotSender::outcome(Transfer& t, const Status& st) const {
  if (!t.abort.is_ok()) return t.abort;
  const std::string peer = "node " + std::to_string(t.target.to.value());
  if (!st.is_ok()) return Status(st.code(), "snapshot stream to " + peer + ": " + st.message());
  std::string reason = t.answer;
  std::optional<uint64_t> bytes;
  auto j = nlohmann::json::parse(t.answer, nullptr, false);
  if (j.is_object()) {
    if (auto m = j.find("message"); m != j.end() && m->is_string()) reason = m->get<std::string>();
    if (auto b = j.find("bytes"); b != j.end() && b->is_number_unsigned()) {
      bytes = b->get<uint64_t>();
    }
  }
  const std::string what = peer + " answered " + std::to_string(t.status) + ": " + reason;
  switch (t.status) {
    case 200:
      if (!t.finishing || t.pending() != 0 || bytes != t.pushed) {
        return Status(Code::kCorruption,
                      peer + " answered 200 for a stream it cannot have whole: " + t.answer);
      }
      return Status::ok();
    case 404: return Status(Code::kNotFound, what);
    case 409: return Status(Code::kAborted, what);
    case 422: return Status(Code::kCorruption, what);
    case 500: return Status(Code::kIoError, what);
    case 507: return Status(Code::kNoSpace, what);
    case 400:
    case 403:
    case 405:
    case 421: return Status(Code::kInvalidArgument, what);
    default: return Status(Code::kUnavailable, what);
  }
}

void SnapshotSender::close() {
  if (closing_) return;
  closing_ = true;
  client_->close();  // every running transfer's done gets kCancelled
  reactor_.remove_turn_end_hook(hook_);
  hook_ = 0;
  // Transfers the producer aborted wait for the hook, which is gone: their done runs now.
  std::vector<std::shared_ptr<Transfer>> aborted;
  aborted.swap(aborted_);
  for (const auto& t : aborted) on_done(t, t->abort);
}

bool SnapshotSender::closed() const { return closing_ && client_->closed(); }

}  // namespace raftd::node
