// The application client (include/raftd/app/app_client.h has the contract; doc/app-client.md
// the batching, retry and health rules).
#include "raftd/app/app_client.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <utility>

#include "raftd/base/lazy_deque.h"
#include "raftd/io/socket.h"

namespace raftd::app {

enum class CallKind { kUpdate, kSync, kLastIndex, kPrepare, kRecover };

// A call other than UpdateEntries waiting in the group's FIFO: it goes out once every entry
// enqueued before it (index <= after) is acknowledged, and entries after it wait for it.
struct AppClient::Barrier {
  CallKind kind;
  LogIndex after;
  std::function<void(LogIndex)> done;                     // kSync, kLastIndex
  std::function<void(Result<SnapshotContext>)> prepared;  // kPrepare
  std::function<void(Status)> recovered;                  // kRecover
  // kRecover: Raftd-Index, the snapshot file and its size when recover_from_snapshot was
  // called (file_error: it could not be looked at then).
  LogIndex index;
  std::string path;
  std::uint64_t size = 0;
  Status file_error;
};

// One try's view of a RecoverFromSnapshot file: opened for the try, read as the connection
// takes the body. `error` is set on the first failure of the file itself (open, size, read),
// which ends the call without a retry; the request's other failures are the app's or the
// network's, and are retried.
struct AppClient::FileBody {
  int fd = -1;
  std::string path;
  std::uint64_t size = 0;
  std::uint64_t offset = 0;
  Status error;

  FileBody() = default;
  FileBody(const FileBody&) = delete;
  FileBody& operator=(const FileBody&) = delete;
  ~FileBody() {
    if (fd >= 0) ::close(fd);
  }
  Status fail(Status s) {
    error = s;
    return s;
  }
  // Opens the file and checks it still has the size it had at the call.
  Status open() {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(Status::from_errno(errno, "open snapshot " + path));
    struct stat st {};
    if (::fstat(fd, &st) != 0) return fail(Status::from_errno(errno, "stat snapshot " + path));
    if (static_cast<std::uint64_t>(st.st_size) != size) {
      return fail(Status(Code::kIoError,
                         fmt::format("snapshot {} is {} bytes, was {}", path, st.st_size, size)));
    }
    return Status::ok();
  }
  // The HTTP client's BodySource: the next piece, at most max_bytes (and kSnapshotPieceBytes).
  Status read(std::string& out, std::size_t max_bytes, bool& done) {
    const std::uint64_t want =
        std::min<std::uint64_t>({max_bytes, kSnapshotPieceBytes, size - offset});
    const std::size_t at = out.size();
    out.resize(at + want);
    std::uint64_t got = 0;
    while (got < want) {
      const ssize_t n = ::pread(fd, out.data() + at + got, want - got, off_t(offset + got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return fail(Status::from_errno(errno, "read snapshot " + path));
      if (n == 0) {
        return fail(
            Status(Code::kIoError, fmt::format("snapshot {} ended at {} of {} bytes: it shrank",
                                               path, offset + got, size)));
      }
      got += static_cast<std::uint64_t>(n);
    }
    offset += got;
    done = offset == size;
    if (done) {
      struct stat st {};
      if (::fstat(fd, &st) != 0 || static_cast<std::uint64_t>(st.st_size) != size) {
        return fail(Status(Code::kIoError,
                           fmt::format("snapshot {} changed size while it was sent", path)));
      }
    }
    return Status::ok();
  }
};

// A running SaveSnapshot call.
struct AppClient::Save {
  GroupId group;
  std::uint64_t epoch = 0;
  http::RequestId request = 0;
  // Shared so that a piece being delivered keeps it alive when on_body cancels its own save.
  std::shared_ptr<std::function<http::Flow(std::string_view)>> on_body;
  std::function<void(Status)> done;
  io::TimePoint sent;
  int status = 0;          // the answer's status, once its head arrived
  std::string error_body;  // the first bytes of a non-2xx answer
};

// The group's serialized call, in flight or waiting for its retry. A retry sends `body` again:
// the same entries, the same Raftd-Last-Index.
struct AppClient::Call {
  CallKind kind = CallKind::kUpdate;
  std::string body;
  std::vector<LogIndex> indexes;   // the to_app entries sent, for matching the answer
  LogIndex last_index;             // Raftd-Last-Index; kPrepare: the Raftd-Index sent
  std::size_t entry_bytes = 0;     // released from queued_bytes once acknowledged
  std::shared_ptr<FileBody> file;  // kRecover: this try's file
  Status file_error;               // kRecover: the file failed before the try could be sent
};

struct AppClient::Group {
  GroupId id;
  std::uint64_t epoch = 0;    // distinguishes a group taken up again after drop_group
  LazyDeque<AppEntry> queue;  // nothing allocated while empty (most groups, most of the time)
  LazyDeque<Barrier> barriers;
  std::size_t queued_bytes = 0;  // queue plus the call's entries
  LogIndex last_enqueued;        // 0: nothing enqueued yet
  LogIndex durable;              // last index acknowledged (or reported by LastLogIndex)
  // The call in flight or waiting for its retry; on the heap, as the app calls' other buffers
  // are, so that thousands of idle groups do not each carry an empty one inline.
  std::unique_ptr<Call> call;
  bool in_flight = false;      // call is at the app
  bool retry_pending = false;  // call waits for its retry deadline
  GroupHealth health;
};

namespace {

void record_call(AppStats::Call& stats, io::TimePoint sent, bool ok) {
  stats.seconds.observe(std::chrono::duration<double>(io::Reactor::now() - sent).count());
  if (!ok) ++stats.errors;
}

std::string_view call_name(CallKind kind) {
  switch (kind) {
    case CallKind::kUpdate: return "UpdateEntries";
    case CallKind::kSync: return "Sync";
    case CallKind::kLastIndex: return "LastLogIndex";
    case CallKind::kPrepare: return "PrepareSnapshot";
    case CallKind::kRecover: return "RecoverFromSnapshot";
  }
  return "?";
}

AppStats::Call& call_stats(AppStats& stats, CallKind kind) {
  switch (kind) {
    case CallKind::kUpdate: return stats.update_entries;
    case CallKind::kSync: return stats.sync;
    case CallKind::kLastIndex: return stats.last_log_index;
    case CallKind::kPrepare: return stats.prepare_snapshot;
    case CallKind::kRecover: return stats.recover_from_snapshot;
  }
  return stats.update_entries;
}

bool is_2xx(int status) { return status >= 200 && status <= 299; }

bool is_header_value(std::string_view v) {
  return std::none_of(v.begin(), v.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u < 0x20 && u != '\t') || u == 0x7f;
  });
}

std::string excerpt(std::string_view body) {
  std::string out(body.substr(0, kErrorBodyCharsMax));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) == 0x7f) c = ' ';
  }
  if (body.size() > kErrorBodyCharsMax) out += "...";
  return out;
}

}  // namespace

Result<AppUrl> parse_app_url(std::string_view url) {
  auto bad = [&](std::string_view why) {
    return Status(Code::kInvalidArgument, fmt::format("app url \"{}\": {}", url, why));
  };
  constexpr std::string_view kScheme = "http://";
  if (url.size() < kScheme.size() || !http::iequals(url.substr(0, kScheme.size()), kScheme)) {
    return bad("must start with http://");
  }
  std::string_view rest = url.substr(kScheme.size());
  if (rest.find_first_of("?#") != std::string_view::npos) return bad("no query or fragment");
  const std::size_t slash = rest.find('/');
  const std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash);
  if (authority.find('@') != std::string_view::npos) return bad("no user info");
  AppUrl out;
  const std::size_t colon = authority.find(':');
  out.host = std::string(authority.substr(0, colon));
  if (colon != std::string_view::npos) {
    Result<LogIndex> port = parse_index(authority.substr(colon + 1));
    if (!port || port->value() == 0 || port->value() > 65535) return bad("port must be 1-65535");
    out.port = static_cast<std::uint16_t>(port->value());
  }
  if (!io::make_ipv4_address(out.host, out.port).is_ok()) {
    return bad("host must be an IPv4 address");
  }
  for (char c : path) {
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return bad("the path holds a space or a control or non-ASCII byte");
    }
  }
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  out.base_path = std::string(path);
  return out;
}

Status validate(const AppOptions& o) {
  auto bad = [](std::string_view why) {
    return Status(Code::kInvalidArgument, fmt::format("app options: {}", why));
  };
  if (o.url.host.empty() || !io::make_ipv4_address(o.url.host, o.url.port).is_ok()) {
    return bad("url.host must be an IPv4 address");
  }
  if (o.url.port == 0) return bad("url.port must be 1-65535");
  if (!o.url.base_path.empty() &&
      (o.url.base_path.front() != '/' || o.url.base_path.back() == '/')) {
    return bad("url.base_path must be empty or start with / and not end with /");
  }
  if (o.call_timeout_ms == 0 || o.connect_timeout_ms == 0 || o.recover_timeout_ms == 0) {
    return bad("timeouts must be > 0");
  }
  if (o.retry_backoff_min_ms == 0 || o.retry_backoff_min_ms > o.retry_backoff_max_ms) {
    return bad("retry backoff must be 0 < min <= max");
  }
  if (o.batch_entries_max == 0 || o.batch_entries_max > kRecordsMax) {
    return bad(fmt::format("batch_entries_max must be 1-{}", kRecordsMax));
  }
  if (o.batch_bytes_max == 0 || o.batch_bytes_max > kBatchBytesMax) {
    return bad(fmt::format("batch_bytes_max must be 1-{}", kBatchBytesMax));
  }
  if (o.queue_bytes_max < o.batch_bytes_max) return bad("queue_bytes_max below batch_bytes_max");
  if (o.read_reply_bytes_max == 0) return bad("read_reply_bytes_max must be > 0");
  if (!is_header_value(o.token)) return bad("the token holds a control character");
  if (!o.on_applied) return bad("on_applied is required");
  return Status::ok();
}

Result<std::unique_ptr<AppClient>> AppClient::create(io::Reactor& reactor, AppOptions options) {
  if (Status s = validate(options); !s) return s;
  return std::unique_ptr<AppClient>(new AppClient(reactor, std::move(options)));
}

AppClient::AppClient(io::Reactor& reactor, AppOptions options)
    : reactor_(reactor),
      options_(std::move(options)),
      timer_([this](int32_t res) { on_timer(res); }),
      rng_(options_.jitter_seed != 0 ? options_.jitter_seed : std::random_device{}()) {
  http::ClientOptions co;
  co.connect_timeout_ms = options_.connect_timeout_ms;
  co.response_timeout_ms = options_.call_timeout_ms;
  co.queue_max = kHttpQueueMax;
  http_ = std::make_unique<http::Client>(reactor_, co);
}

AppClient::~AppClient() = default;

AppClient::Group& AppClient::group_state(GroupId id) {
  auto [it, inserted] = groups_.try_emplace(id);
  if (inserted) {
    it->second = std::make_unique<Group>();
    it->second->id = id;
    it->second->epoch = next_epoch_++;
    it->second->health.since = io::Reactor::now();
  }
  return *it->second;
}

AppClient::Group* AppClient::find(GroupId id, std::uint64_t epoch) {
  auto it = groups_.find(id);
  return it != groups_.end() && it->second->epoch == epoch ? it->second.get() : nullptr;
}

void AppClient::last_log_index(GroupId group, std::function<void(LogIndex)> done) {
  if (closing_) return;
  Group& g = group_state(group);
  g.barriers.push_back(Barrier{CallKind::kLastIndex, g.last_enqueued, std::move(done)});
  pump(g);
}

void AppClient::sync(GroupId group, std::function<void(LogIndex)> done) {
  RAFTD_ASSERT(options_.sync, "AppClient::sync without options.sync");
  if (closing_) return;
  Group& g = group_state(group);
  g.barriers.push_back(Barrier{CallKind::kSync, g.last_enqueued, std::move(done)});
  pump(g);
}

void AppClient::prepare_snapshot(GroupId group, std::function<void(Result<SnapshotContext>)> done) {
  if (closing_) return;
  Group& g = group_state(group);
  Barrier b{CallKind::kPrepare, g.last_enqueued, nullptr, std::move(done), nullptr};
  g.barriers.push_back(std::move(b));
  pump(g);
}

void AppClient::recover_from_snapshot(GroupId group, LogIndex index, std::string path,
                                      std::function<void(Status)> done) {
  if (closing_) return;
  Group& g = group_state(group);
  RAFTD_ASSERT(index.value() >= 1, "recover_from_snapshot at index 0");
  RAFTD_ASSERT(index >= g.last_enqueued,
               "recover_from_snapshot below an index already enqueued for the group");
  Barrier b{CallKind::kRecover, g.last_enqueued, nullptr, nullptr, std::move(done)};
  b.index = index;
  b.path = std::move(path);
  struct stat st {};
  if (::stat(b.path.c_str(), &st) != 0) {
    b.file_error = Status::from_errno(errno, "stat snapshot " + b.path);
  } else if (!S_ISREG(st.st_mode)) {
    b.file_error = Status(Code::kInvalidArgument, "snapshot " + b.path + " is not a file");
  } else {
    b.size = static_cast<std::uint64_t>(st.st_size);
  }
  g.barriers.push_back(std::move(b));
  g.last_enqueued = index;  // the next enqueue continues from index + 1
  pump(g);
}

Status AppClient::enqueue(GroupId group, std::vector<AppEntry>&& entries) {
  if (closing_) return Status(Code::kCancelled, "app client is closed");
  Group& g = group_state(group);
  std::size_t bytes = 0;
  LogIndex prev = g.last_enqueued;
  for (const AppEntry& e : entries) {
    RAFTD_ASSERT(e.index.value() >= 1, "enqueued entry with index 0");
    RAFTD_ASSERT(prev.value() == 0 || e.index == prev + 1,
                 "enqueued entries must continue the group's log without a gap");
    prev = e.index;
    bytes += e.data.size();
  }
  if (g.queued_bytes > 0 && g.queued_bytes + bytes > options_.queue_bytes_max) {
    return Status(Code::kUnavailable,
                  fmt::format("group {}: {} bytes wait for the app already (limit {})",
                              group.value(), g.queued_bytes, options_.queue_bytes_max));
  }
  g.last_enqueued = prev;
  g.queued_bytes += bytes;
  for (AppEntry& e : entries) g.queue.push_back(std::move(e));
  entries.clear();
  pump(g);
  return Status::ok();
}

void AppClient::drop_group(GroupId group) {
  for (auto s = saves_.begin(); s != saves_.end();) {
    if (s->second->group == group) {
      http_->cancel(s->second->request);
      s = saves_.erase(s);
    } else {
      ++s;
    }
  }
  auto it = groups_.find(group);
  if (it == groups_.end()) return;
  if (it->second->in_flight) ++orphans_[group];
  groups_.erase(it);  // its retry deadline, if any, finds no group and is skipped
}

GroupHealth AppClient::health(GroupId group) const {
  auto it = groups_.find(group);
  return it == groups_.end() ? GroupHealth{} : it->second->health;
}

std::size_t AppClient::queued_bytes(GroupId group) const {
  auto it = groups_.find(group);
  return it == groups_.end() ? 0 : it->second->queued_bytes;
}

// Starts the group's next serialized call when none is in flight or waiting for a retry, and
// no call of a dropped incarnation of the group is still at the app.
void AppClient::pump(Group& g) {
  if (closing_ || g.call || orphans_.contains(g.id)) return;
  if (!g.barriers.empty() &&
      (g.queue.empty() || g.queue.front().index > g.barriers.front().after)) {
    Call call;
    call.kind = g.barriers.front().kind;
    if (call.kind == CallKind::kRecover) call.last_index = g.barriers.front().index;
    g.call = std::make_unique<Call>(std::move(call));
    send(g);
    return;
  }
  if (start_batch(g)) send(g);
}

// Takes the next batch off the queue: entries up to the first barrier, at most
// batch_entries_max sent entries and batch_bytes_max bytes (one entry over it goes alone).
// raftd's own entries cost nothing and ride along, moving Raftd-Last-Index.
bool AppClient::start_batch(Group& g) {
  const LogIndex limit = g.barriers.empty() ? LogIndex(std::numeric_limits<uint64_t>::max())
                                            : g.barriers.front().after;
  Call call;
  EntryBatch batch;
  std::size_t wire_bytes = 0;
  while (!g.queue.empty() && g.queue.front().index <= limit) {
    AppEntry& e = g.queue.front();
    if (e.to_app) {
      const std::size_t b = kRecordHeaderBytes + e.data.size();
      const std::size_t n = batch.entries.size();
      if (n > 0 && (n >= options_.batch_entries_max || wire_bytes + b > options_.batch_bytes_max)) {
        break;
      }
      wire_bytes += b;
      call.entry_bytes += e.data.size();
      call.indexes.push_back(e.index);
      batch.entries.push_back(Record{e.index, std::move(e.data)});
    } else {
      call.entry_bytes += e.data.size();
    }
    batch.last_index = e.index;
    g.queue.pop_front();
  }
  if (batch.last_index.value() == 0) return false;
  call.last_index = batch.last_index;
  call.body = encode_entries(options_.encoding, batch);
  g.call = std::make_unique<Call>(std::move(call));
  return true;
}

http::ClientRequest AppClient::make_request(GroupId id, std::string method,
                                            std::string_view path) const {
  http::ClientRequest req;
  req.method = std::move(method);
  req.target = options_.url.base_path + std::string(path);
  req.headers.reserve(4);  // the most any call adds: one allocation for the list
  req.headers.push_back({"Raftd-Group", std::to_string(id.value())});
  if (!options_.token.empty()) {
    req.headers.push_back({"Authorization", "Bearer " + options_.token});
  }
  return req;
}

void AppClient::send(Group& g) {
  RAFTD_ASSERT(g.call && !g.in_flight, "send without a call, or with one in flight");
  Call& call = *g.call;
  http::ClientRequest req;
  std::uint64_t reply_max = 0;
  switch (call.kind) {
    case CallKind::kUpdate:
      req = make_request(g.id, "POST", "/UpdateEntries");
      req.headers.push_back({"Content-Type", std::string(content_type(options_.encoding))});
      req.headers.push_back({"Raftd-Last-Index", std::to_string(call.last_index.value())});
      req.body = call.body;
      reply_max = kBatchBytesMax;
      ++stats_.update_calls;
      break;
    case CallKind::kSync:
      req = make_request(g.id, "POST", "/Sync");
      reply_max = kSyncReplyBytesMax;
      ++stats_.sync_calls;
      break;
    case CallKind::kLastIndex:
      req = make_request(g.id, "GET", "/LastLogIndex");
      reply_max = kIndexReplyBytesMax;
      ++stats_.last_index_calls;
      break;
    case CallKind::kPrepare:
      call.last_index = g.durable;  // every entry enqueued before it is acknowledged
      req = make_request(g.id, "POST", "/PrepareSnapshot");
      req.headers.push_back({"Raftd-Index", std::to_string(call.last_index.value())});
      reply_max = kSnapshotContextBytesMax;
      ++stats_.prepare_calls;
      break;
    case CallKind::kRecover: {
      // Each try reads the file anew; one that cannot be opened, or is no longer the size it
      // had at the call, ends the call (from the timer: never inside the caller's call).
      const Barrier& b = g.barriers.front();
      call.file = std::make_shared<FileBody>();
      call.file->path = b.path;
      call.file->size = b.size;
      call.file_error = b.file_error.is_ok() ? call.file->open() : b.file_error;
      if (!call.file_error.is_ok()) {
        fail_soon(g);
        return;
      }
      req = make_request(g.id, "POST", "/RecoverFromSnapshot");
      req.headers.push_back({"Raftd-Index", std::to_string(b.index.value())});
      req.source = [file = call.file](std::string& out, std::size_t max_bytes, bool& done) {
        return file->read(out, max_bytes, done);
      };
      req.source_bytes = b.size;
      req.answer_timeout_ms = options_.recover_timeout_ms;
      reply_max = kRecoverReplyBytesMax;
      ++stats_.recover_calls;
      break;
    }
  }
  g.in_flight = true;
  http_->fetch(
      options_.url.host, options_.url.port, std::move(req),
      [this, id = g.id, epoch = g.epoch, sent = io::Reactor::now()](Result<http::Response> r) {
        on_call_done(id, epoch, sent, std::move(r));
      },
      reply_max);
}

void AppClient::on_call_done(GroupId id, std::uint64_t epoch, io::TimePoint sent,
                             Result<http::Response> r) {
  if (closing_) return;
  Group* g = find(id, epoch);
  if (g == nullptr) {
    // The group was dropped while this call was at the app; a new incarnation may wait for it.
    auto it = orphans_.find(id);
    RAFTD_ASSERT(it != orphans_.end(), "a dropped group's call was not counted");
    if (--it->second == 0) orphans_.erase(it);
    if (auto again = groups_.find(id); again != groups_.end()) pump(*again->second);
    return;
  }
  g->in_flight = false;
  std::vector<Record> results;
  LogIndex index;
  std::string context;
  Status s = check_answer(*g->call, r, &results, &index, &context);
  const CallKind kind = g->call->kind;
  // The snapshot file failed under the request (it aborted the request with that Status).
  const bool file_failed = g->call->file && !g->call->file->error.is_ok();
  record_call(call_stats(stats_, kind), sent, s.is_ok());
  if (options_.on_call) {
    options_.on_call(id, call_name(kind), io::Reactor::now() - sent, s);
    g = find(id, epoch);  // the hook may have dropped the group or closed the client
    if (g == nullptr || closing_) return;
  }
  if (!s) {
    // PrepareSnapshot is not retried, nor is a call whose file is at fault: their caller
    // decides. Neither says anything about the app's health.
    if (kind == CallKind::kPrepare || file_failed) {
      end_barrier_with_error(*g, std::move(s));
      return;
    }
    on_call_failed(*g, std::move(s));
    return;
  }
  on_call_ok(*g, std::move(results), index, std::move(context));
}

// Ends the group's PrepareSnapshot or RecoverFromSnapshot call with an error, without a retry,
// and goes on with the FIFO.
void AppClient::end_barrier_with_error(Group& g, Status error) {
  g.call.reset();
  g.in_flight = false;
  g.retry_pending = false;
  Barrier b = std::move(g.barriers.front());
  g.barriers.pop_front();
  const GroupId id = g.id;
  const std::uint64_t epoch = g.epoch;
  if (b.kind == CallKind::kPrepare) {
    b.prepared(std::move(error));
  } else {
    RAFTD_ASSERT(b.kind == CallKind::kRecover, "only snapshot calls end without a retry");
    b.recovered(std::move(error));
  }
  if (Group* again = find(id, epoch)) pump(*again);
}

// The group's call failed before it could be sent (its snapshot file): it ends from the retry
// timer, at once, so that its callback runs from the reactor's turn, not inside send()'s
// caller.
void AppClient::fail_soon(Group& g) {
  g.retry_pending = true;
  retries_.emplace(io::Reactor::now(), std::make_pair(g.id, g.epoch));
  arm_timer();
}

Status AppClient::check_answer(const Call& call, Result<http::Response>& r,
                               std::vector<Record>* results, LogIndex* index,
                               std::string* context) const {
  const std::string_view name = call_name(call.kind);
  if (!r) return Status(r.status().code(), fmt::format("{}: {}", name, r.status().message()));
  http::Response& resp = r.value();
  if (!is_2xx(resp.head.status)) {
    return Status(Code::kUnavailable, fmt::format("{}: the app answered {}: {}", name,
                                                  resp.head.status, excerpt(resp.body)));
  }
  switch (call.kind) {
    case CallKind::kUpdate: {
      Result<std::vector<Record>> d = decode_answer(options_.encoding, resp.body, call.indexes);
      if (!d) {
        return Status(d.status().code(),
                      fmt::format("{}: bad answer: {}", name, d.status().message()));
      }
      *results = std::move(d).value();
      break;
    }
    case CallKind::kLastIndex: {
      Result<LogIndex> i = parse_index(resp.body);
      if (!i) {
        return Status(Code::kCorruption,
                      fmt::format("{}: the answer \"{}\" is not an index: {}", name,
                                  excerpt(resp.body), i.status().message()));
      }
      *index = *i;
      break;
    }
    case CallKind::kPrepare: *context = std::move(resp.body); break;
    case CallKind::kSync:
    case CallKind::kRecover: break;
  }
  return Status::ok();
}

void AppClient::on_call_failed(Group& g, Status error) {
  ++stats_.failures;
  if (g.health.healthy) {
    g.health.healthy = false;
    g.health.since = io::Reactor::now();
  }
  ++g.health.failures;
  g.health.last_error = std::move(error);
  schedule_retry(g);
}

void AppClient::on_call_ok(Group& g, std::vector<Record> results, LogIndex index,
                           std::string context) {
  if (!g.health.healthy) g.health = GroupHealth{true, Status::ok(), io::Reactor::now(), 0};
  Call call = std::move(*g.call);
  g.call.reset();
  const GroupId id = g.id;
  const std::uint64_t epoch = g.epoch;
  // Callbacks may drop the group or close the client: `g` is not touched after them.
  switch (call.kind) {
    case CallKind::kUpdate:
      g.queued_bytes -= call.entry_bytes;
      g.durable = std::max(g.durable, call.last_index);
      stats_.entries_applied += results.size();
      options_.on_applied(id, call.last_index, std::move(results));
      break;
    case CallKind::kSync: {
      Barrier b = std::move(g.barriers.front());
      g.barriers.pop_front();
      b.done(g.durable);
      break;
    }
    case CallKind::kLastIndex: {
      Barrier b = std::move(g.barriers.front());
      g.barriers.pop_front();
      g.durable = std::max(g.durable, index);
      b.done(index);
      break;
    }
    case CallKind::kPrepare: {
      Barrier b = std::move(g.barriers.front());
      g.barriers.pop_front();
      b.prepared(SnapshotContext{call.last_index, std::move(context)});
      break;
    }
    case CallKind::kRecover: {
      Barrier b = std::move(g.barriers.front());
      g.barriers.pop_front();
      g.durable = b.index;  // the app's state is the snapshot's now
      b.recovered(Status::ok());
      break;
    }
  }
  if (Group* again = find(id, epoch)) pump(*again);
}

// Exponential backoff with jitter: the n-th consecutive failure waits a uniformly drawn time in
// [d/2, d], d = min(max, min * 2^(n-1)), so groups failing together do not retry in lockstep.
void AppClient::schedule_retry(Group& g) {
  const std::uint64_t shift = std::min<std::uint64_t>(g.health.failures - 1, 32);
  const std::uint64_t d = std::min<std::uint64_t>(
      options_.retry_backoff_max_ms, std::uint64_t{options_.retry_backoff_min_ms} << shift);
  std::uniform_int_distribution<std::uint64_t> draw(d / 2, d);
  const io::TimePoint at = io::Reactor::now() + std::chrono::milliseconds(draw(rng_));
  g.retry_pending = true;
  retries_.emplace(at, std::make_pair(g.id, g.epoch));
  arm_timer();
}

// One timer serves every retry: it is armed for the earliest deadline, and moved (cancelled,
// then armed again from its final callback) when an earlier one comes.
void AppClient::arm_timer() {
  if (closing_ || retries_.empty()) return;
  const io::TimePoint first = retries_.begin()->first;
  if (timer_.active()) {
    if (first < timer_deadline_ && !timer_.cancel_requested()) {
      rearm_after_cancel_ = true;
      reactor_.cancel(timer_);
    }
    return;
  }
  timer_deadline_ = first;
  reactor_.start_timer_at(timer_, first);
}

void AppClient::on_timer(int32_t res) {
  // A cancel we did not ask for is the reactor shutting down: arming again would only be
  // cancelled again.
  if (res == -ECANCELED && !rearm_after_cancel_) return;
  rearm_after_cancel_ = false;
  const io::TimePoint now = io::Reactor::now();
  while (!closing_ && !retries_.empty() && retries_.begin()->first <= now) {
    const auto [id, epoch] = retries_.begin()->second;
    retries_.erase(retries_.begin());
    Group* g = find(id, epoch);
    if (g == nullptr || !g->retry_pending) continue;
    g->retry_pending = false;
    if (!g->call->file_error.is_ok()) {
      Status error(g->call->file_error.code(),
                   fmt::format("{}: {}", call_name(g->call->kind), g->call->file_error.message()));
      end_barrier_with_error(*g, std::move(error));
      continue;
    }
    send(*g);
  }
  arm_timer();
}

void AppClient::get_entry(GroupId group, std::string query,
                          std::function<void(Result<AppReply>)> done) {
  if (closing_) return;
  Group& g = group_state(group);
  http::ClientRequest req = make_request(group, "GET", "/GetEntry");
  req.body = std::move(query);
  ++stats_.read_calls;
  http_->fetch(
      options_.url.host, options_.url.port, std::move(req),
      [this, group, epoch = g.epoch, sent = io::Reactor::now(),
       done = std::move(done)](Result<http::Response> r) {
        if (closing_ || find(group, epoch) == nullptr) return;
        record_call(stats_.get_entry, sent, r.is_ok());
        if (options_.on_call) {
          options_.on_call(group, "GetEntry", io::Reactor::now() - sent, r.status());
          if (closing_ || find(group, epoch) == nullptr) return;
        }
        if (!r) {
          ++stats_.read_failures;
          done(Status(r.status().code(), fmt::format("GetEntry: {}", r.status().message())));
          return;
        }
        http::Response& resp = r.value();
        AppReply reply;
        reply.status = resp.head.status;
        if (auto ct = resp.head.header("Content-Type")) reply.content_type = std::string(*ct);
        reply.body = std::move(resp.body);
        done(std::move(reply));
      },
      options_.read_reply_bytes_max);
}

SaveId AppClient::save_snapshot(GroupId group, std::string context,
                                std::function<http::Flow(std::string_view)> on_body,
                                std::function<void(Status)> done) {
  const SaveId id = next_save_id_++;
  if (closing_) return id;
  Group& g = group_state(group);
  auto save = std::make_unique<Save>();
  save->group = group;
  save->epoch = g.epoch;
  save->on_body = std::make_shared<std::function<http::Flow(std::string_view)>>(std::move(on_body));
  save->done = std::move(done);
  save->sent = io::Reactor::now();
  http::ClientRequest req = make_request(group, "POST", "/SaveSnapshot");
  req.body = std::move(context);  // no response body cap: a snapshot has any size
  http::ResponseCallbacks cb;
  cb.on_head = [this, id](const http::ResponseHead& head) { on_save_head(id, head); };
  cb.on_body = [this, id](std::string_view piece) { return on_save_body(id, piece); };
  cb.on_done = [this, id](Status status) { on_save_done(id, std::move(status)); };
  ++stats_.save_calls;
  Save& s = *saves_.emplace(id, std::move(save)).first->second;
  // Callbacks never run inside request(), so the id is known before any of them.
  s.request = http_->request(options_.url.host, options_.url.port, std::move(req), std::move(cb));
  return id;
}

void AppClient::resume_save(SaveId id) {
  auto it = saves_.find(id);
  if (it != saves_.end()) http_->resume(it->second->request);
}

void AppClient::cancel_save(SaveId id) {
  auto it = saves_.find(id);
  if (it == saves_.end()) return;
  http_->cancel(it->second->request);
  saves_.erase(it);
}

void AppClient::on_save_head(SaveId id, const http::ResponseHead& head) {
  auto it = saves_.find(id);
  if (it != saves_.end()) it->second->status = head.status;
}

http::Flow AppClient::on_save_body(SaveId id, std::string_view piece) {
  auto it = saves_.find(id);
  if (closing_ || it == saves_.end()) return http::Flow::kContinue;
  Save& s = *it->second;
  if (!is_2xx(s.status)) {
    // An error answer: its first bytes go into the error; the call ends once there are enough
    // of them, so an error body that never ends is not read forever.
    s.error_body.append(piece.substr(0, kErrorBodyCharsMax + 1 - s.error_body.size()));
    if (s.error_body.size() > kErrorBodyCharsMax) {
      http_->cancel(s.request);
      on_save_done(id, Status::ok());
    }
    return http::Flow::kContinue;
  }
  stats_.save_bytes += piece.size();
  const auto on_body = s.on_body;  // `s` is gone if the callback cancels its save
  return (*on_body)(piece);
}

void AppClient::on_save_done(SaveId id, Status status) {
  if (closing_) return;
  auto it = saves_.find(id);
  if (it == saves_.end()) return;
  const std::unique_ptr<Save> s = std::move(it->second);
  saves_.erase(it);
  Status outcome;
  if (!status) {
    outcome = Status(status.code(), fmt::format("SaveSnapshot: {}", status.message()));
  } else if (!is_2xx(s->status)) {
    outcome = Status(Code::kUnavailable, fmt::format("SaveSnapshot: the app answered {}: {}",
                                                     s->status, excerpt(s->error_body)));
  }
  record_call(stats_.save_snapshot, s->sent, outcome.is_ok());
  if (options_.on_call) {
    options_.on_call(s->group, "SaveSnapshot", io::Reactor::now() - s->sent, outcome);
    // The hook may have dropped the group or closed the client.
    if (closing_ || find(s->group, s->epoch) == nullptr) return;
  }
  s->done(std::move(outcome));
}

void AppClient::close() {
  if (closing_) return;
  closing_ = true;
  saves_.clear();
  groups_.clear();
  retries_.clear();
  if (timer_.active()) reactor_.cancel(timer_);
  http_->close();
}

bool AppClient::closed() const { return closing_ && !timer_.active() && http_->closed(); }

}  // namespace raftd::app
