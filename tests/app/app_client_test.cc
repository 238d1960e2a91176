// The application client against a fake application served by the project's HTTP server on
// 127.0.0.1: encodings, batching, the per-group FIFO, retries and health, reads, Sync, drop,
// and the snapshot calls.
#include "raftd/app/app_client.h"

#include <doctest/doctest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http_test_util.h"
#include "raftd/http/server.h"

namespace raftd::app {
namespace {

using namespace std::chrono_literals;
using http::testing::run_for;
using http::testing::run_until;

// The application: applies batches the way API.md 3.1 asks (entries at or below the stored
// index are ignored, N stored with them), answers one result per entry ("r<index>:<data>"),
// and can be told to fail, hang or hold calls per group.
class FakeApp : public http::Handler {
 public:
  enum class Mode {
    kApply,
    kFail500,       // 500 "boom"
    kHang,          // never answers
    kApplyAndHang,  // applies the batch, never answers (the answer is lost)
    kGarbage,       // 200 with a body that is not a valid answer
  };
  struct Call {
    std::string method, target, group, last_index, content_type, auth, body;
    std::string raftd_index, content_length;
  };
  struct Batch {
    std::uint64_t group = 0;
    std::uint64_t last = 0;
    std::vector<Record> entries;
    bool operator==(const Batch&) const = default;
  };

  explicit FakeApp(Encoding e) : encoding(e) {}

  void on_headers(http::Exchange& ex) override {
    auto ctx = std::make_unique<Ctx>();
    const std::string& t = ex.request().target;
    ctx->group = std::stoull(std::string(ex.request().header("Raftd-Group").value_or("0")));
    ctx->serialized = t != "/GetEntry" && t != "/SaveSnapshot";
    if (ctx->serialized) {
      const int n = ++busy[ctx->group];
      busy_max[ctx->group] = std::max(busy_max[ctx->group], n);
    }
    ex.set_context(std::move(ctx));
  }
  http::Flow on_body(http::Exchange& ex, std::string_view chunk) override {
    ctx(ex).body.append(chunk);
    return http::Flow::kContinue;
  }
  void on_end(http::Exchange& ex) override {
    const http::Request& req = ex.request();
    Ctx& c = ctx(ex);
    calls.push_back(Call{req.method, req.target,
                         std::string(req.header("Raftd-Group").value_or("")),
                         std::string(req.header("Raftd-Last-Index").value_or("")),
                         std::string(req.header("Content-Type").value_or("")),
                         std::string(req.header("Authorization").value_or("")), c.body,
                         std::string(req.header("Raftd-Index").value_or("")),
                         std::string(req.header("Content-Length").value_or(""))});
    if (req.target == "/SaveSnapshot") {
      start_save(ex);
      return;
    }
    if (fail_next[req.target] > 0) {
      --fail_next[req.target];
      finish(ex, 500, "boom");
      return;
    }
    if (req.target == "/GetEntry") {
      ex.add_header("Content-Type", "text/x-read");
      ex.set_status(203);
      ex.set_content_length(5 + c.body.size());
      ex.write_body("read " + c.body);
      ex.finish();
      return;
    }
    const Mode m = modes.contains(c.group) ? modes[c.group] : default_mode;
    if (m == Mode::kHang || m == Mode::kApplyAndHang) {
      if (m == Mode::kApplyAndHang) apply(ex);
      hung.push_back(&ex);
    } else if (m == Mode::kFail500) {
      finish(ex, 500, "boom");
    } else if (m == Mode::kGarbage) {
      finish(ex, 200, req.target == "/LastLogIndex" ? "12\n" : "garbage!!!!!!!!!");
    } else if (hold) {
      held.push_back(&ex);
    } else {
      answer(ex);
    }
  }
  void on_drained(http::Exchange& ex) override {
    if (ex.request().target == "/SaveSnapshot") write_save(ex);
  }
  void on_aborted(http::Exchange& ex) override {
    aborted.push_back(ex.request().target);
    if (ex.context() != nullptr && ctx(ex).serialized && !ctx(ex).done) --busy[ctx(ex).group];
    std::erase(held, &ex);
    std::erase(hung, &ex);
  }

  // Answers every held call (those that arrive meanwhile stay held).
  void release() {
    std::vector<http::Exchange*> now;
    now.swap(held);
    for (http::Exchange* ex : now) answer(*ex);
  }

  // The UpdateEntries batches of a group, in arrival order.
  std::vector<Batch> batches_of(std::uint64_t g) const {
    std::vector<Batch> out;
    for (const Batch& b : batches) {
      if (b.group == g) out.push_back(b);
    }
    return out;
  }
  std::vector<Call> calls_to(std::string_view target) const {
    std::vector<Call> out;
    for (const Call& c : calls) {
      if (c.target == target) out.push_back(c);
    }
    return out;
  }

  Encoding encoding;
  std::map<std::uint64_t, Mode> modes;
  Mode default_mode = Mode::kApply;
  bool hold = false;  // serialized calls wait for release()
  std::vector<Call> calls;
  std::vector<Batch> batches;                                   // every UpdateEntries decoded
  std::map<std::uint64_t, std::uint64_t> stored;                // group -> N
  std::map<std::uint64_t, std::vector<std::uint64_t>> applied;  // group -> indexes, applied once
  std::map<std::uint64_t, int> busy, busy_max;                  // serialized calls at the app
  std::vector<std::string> order;                               // "g UpdateEntries a-b", "g Sync"
  std::vector<http::Exchange*> held, hung;
  std::map<std::string, int> fail_next;  // target -> calls still to answer 500 "boom"
  std::vector<std::string> aborted;      // targets of exchanges that ended unanswered
  // PrepareSnapshot answers this, or "ctx<N>" when unset.
  std::optional<std::string> prepare_body;
  // SaveSnapshot answers save_status; a 2xx streams save_bytes of save_pattern (chunked, or
  // with a Content-Length), anything else carries save_error_body.
  int save_status = 200;
  std::uint64_t save_bytes = 0;
  bool save_chunked = true;
  std::string save_error_body;
  std::uint64_t save_written = 0;                  // SaveSnapshot body bytes handed to the server
  std::map<std::uint64_t, std::string> recovered;  // group -> the last snapshot received

 private:
  struct Ctx : http::ExchangeContext {
    std::uint64_t group = 0;
    bool serialized = false;
    bool done = false;
    std::string body;
    std::uint64_t save_offset = 0;  // SaveSnapshot: bytes written so far
  };
  static Ctx& ctx(http::Exchange& ex) { return *static_cast<Ctx*>(ex.context()); }

  void finish(http::Exchange& ex, int status, std::string_view body) {
    Ctx& c = ctx(ex);
    if (c.serialized && !c.done) --busy[c.group];
    c.done = true;
    ex.respond(status, body);
  }

  // Applies an UpdateEntries body; returns its answer.
  std::string apply(http::Exchange& ex) {
    Ctx& c = ctx(ex);
    Result<EntryBatch> batch = decode_entries(encoding, c.body);
    REQUIRE_MESSAGE(batch.is_ok(), batch.status().to_string());
    Result<LogIndex> n = parse_index(ex.request().header("Raftd-Last-Index").value_or(""));
    REQUIRE(n.is_ok());
    if (encoding == Encoding::kJson) CHECK(batch->last_index == *n);
    batches.push_back(Batch{c.group, n->value(), batch->entries});
    std::vector<Record> results;
    for (const Record& r : batch->entries) {
      if (r.index.value() > stored[c.group]) applied[c.group].push_back(r.index.value());
      results.push_back(Record{r.index, "r" + std::to_string(r.index.value()) + ":" + r.data});
    }
    const std::string range = batch->entries.empty()
                                  ? "-"
                                  : std::to_string(batch->entries.front().index.value()) + "-" +
                                        std::to_string(batch->entries.back().index.value());
    order.push_back(std::to_string(c.group) + " UpdateEntries " + range + " N" +
                    std::to_string(n->value()));
    stored[c.group] = std::max(stored[c.group], n->value());
    return encode_results(encoding, results);
  }

  void start_save(http::Exchange& ex) {
    if (save_status < 200 || save_status > 299) {
      finish(ex, save_status, save_error_body);
      return;
    }
    if (!save_chunked) ex.set_content_length(save_bytes);
    write_save(ex);
  }
  // Writes the snapshot while the server's send buffer takes it; on_drained goes on.
  void write_save(http::Exchange& ex) {
    Ctx& c = ctx(ex);
    while (c.save_offset < save_bytes) {
      const std::uint64_t n = std::min<std::uint64_t>(64 * 1024, save_bytes - c.save_offset);
      const std::string piece = save_pattern(c.save_offset, n);
      c.save_offset += n;
      save_written += n;
      if (!ex.write_body(piece)) return;
    }
    if (!ex.finished()) ex.finish();
  }

 public:
  // The snapshot's bytes [offset, offset + n): not periodic in any piece size a layer uses.
  static std::string save_pattern(std::uint64_t offset, std::uint64_t n) {
    std::string out(n, '\0');
    for (std::uint64_t i = 0; i < n; ++i) {
      const std::uint64_t at = offset + i;
      out[i] = static_cast<char>((at * 31 + at / 1000) & 0xff);
    }
    return out;
  }

 private:
  void answer(http::Exchange& ex) {
    const std::string& t = ex.request().target;
    const std::uint64_t g = ctx(ex).group;
    if (t == "/LastLogIndex") {
      order.push_back(std::to_string(g) + " LastLogIndex");
      finish(ex, 200, std::to_string(stored[g]));
    } else if (t == "/Sync") {
      order.push_back(std::to_string(g) + " Sync");
      finish(ex, 200, "");
    } else if (t == "/PrepareSnapshot") {
      const std::string n(ex.request().header("Raftd-Index").value_or(""));
      order.push_back(std::to_string(g) + " PrepareSnapshot N" + n);
      finish(ex, 200, prepare_body ? *prepare_body : "ctx" + n);
    } else if (t == "/RecoverFromSnapshot") {
      Result<LogIndex> n = parse_index(ex.request().header("Raftd-Index").value_or(""));
      REQUIRE(n.is_ok());
      order.push_back(std::to_string(g) + " RecoverFromSnapshot N" + std::to_string(n->value()));
      stored[g] = n->value();
      recovered[g] = ctx(ex).body;
      finish(ex, 200, "");
    } else if (t == "/UpdateEntries") {
      const std::string body = apply(ex);
      Ctx& c = ctx(ex);
      --busy[c.group];
      c.done = true;
      ex.respond(200, body, content_type(encoding));
    } else {
      finish(ex, 404, "no such call");
    }
  }
};

struct Applied {
  std::uint64_t group;
  std::uint64_t last;
  std::vector<Record> results;
};

AppOptions fast_options() {
  AppOptions o;
  o.call_timeout_ms = 300;
  o.connect_timeout_ms = 200;
  o.retry_backoff_min_ms = 5;
  o.retry_backoff_max_ms = 40;
  o.jitter_seed = 42;
  return o;
}

struct Fixture {
  explicit Fixture(Encoding e = Encoding::kBinary, AppOptions o = fast_options()) : app(e) {
    start_server(0);
    o.url = AppUrl{"127.0.0.1", port, ""};
    o.encoding = e;
    o.on_applied = [this](GroupId g, LogIndex last, std::vector<Record> results) {
      applied.push_back(Applied{g.value(), last.value(), std::move(results)});
    };
    auto c = AppClient::create(*reactor, std::move(o));
    REQUIRE_MESSAGE(c.is_ok(), c.status().to_string());
    client = std::move(c).value();
  }
  ~Fixture() {
    client->close();
    stop_server();
    run_until(*reactor, [&] { return client->closed(); });
    client.reset();
    reactor->shutdown();
  }
  void start_server(std::uint16_t p) {
    http::ServerOptions so;
    so.port = p;
    auto s = http::Server::start(*reactor, app, so);
    REQUIRE_MESSAGE(s.is_ok(), s.status().to_string());
    server = std::move(s).value();
    port = server->port();
  }
  void stop_server() {
    if (!server) return;
    server->close();
    run_until(*reactor, [&] { return server->closed(); });
    server.reset();
  }
  std::vector<AppEntry> entries(std::uint64_t from, std::uint64_t to, std::size_t bytes = 0) {
    std::vector<AppEntry> out;
    for (std::uint64_t i = from; i <= to; ++i) {
      std::string data = "e" + std::to_string(i);
      if (bytes > data.size()) data.resize(bytes, 'x');
      out.push_back(AppEntry{LogIndex(i), true, std::move(data)});
    }
    return out;
  }
  void enqueue(std::uint64_t g, std::vector<AppEntry> e) {
    REQUIRE(client->enqueue(GroupId(g), std::move(e)).is_ok());
  }
  // Highest last_index delivered to on_applied for a group.
  std::uint64_t applied_to(std::uint64_t g) const {
    std::uint64_t n = 0;
    for (const Applied& a : applied) {
      if (a.group == g) n = std::max(n, a.last);
    }
    return n;
  }
  bool wait_applied(std::uint64_t g, std::uint64_t n) {
    return run_until(
        *reactor, [&] { return applied_to(g) >= n; }, 20s);
  }

  std::unique_ptr<io::Reactor> reactor = http::testing::make_reactor();
  FakeApp app;
  std::unique_ptr<http::Server> server;
  std::uint16_t port = 0;
  std::unique_ptr<AppClient> client;
  std::vector<Applied> applied;
};

// What the app saw of a group is its log, in order: each batch continues the previous one or
// repeats it whole (a retry); nothing skipped, nothing reordered, nothing applied twice.
void check_log_order(const FakeApp& app, std::uint64_t g, std::uint64_t last) {
  std::optional<FakeApp::Batch> prev;
  for (const FakeApp::Batch& b : app.batches_of(g)) {
    if (prev && b == *prev) continue;  // re-sent whole
    const std::uint64_t from = prev ? prev->last + 1 : 1;
    if (!b.entries.empty()) CHECK(b.entries.front().index.value() == from);
    for (std::size_t i = 1; i < b.entries.size(); ++i) {
      CHECK(b.entries[i].index == b.entries[i - 1].index + 1);
    }
    prev = b;
  }
  REQUIRE(prev.has_value());
  CHECK(prev->last == last);
  std::vector<std::uint64_t> want;
  for (std::uint64_t i = 1; i <= last; ++i) want.push_back(i);
  CHECK(app.applied.at(g) == want);
}

// on_applied for a group: consecutive batches, in order, ending at `last`.
void check_applied_order(const Fixture& f, std::uint64_t g, std::uint64_t last) {
  std::uint64_t prev = 0;
  for (const Applied& a : f.applied) {
    if (a.group != g) continue;
    CHECK(a.last > prev);
    for (const Record& r : a.results) {
      CHECK(r.index.value() > prev);
      CHECK(r.index.value() <= a.last);
      CHECK(r.data ==
            "r" + std::to_string(r.index.value()) + ":e" + std::to_string(r.index.value()));
    }
    prev = a.last;
  }
  CHECK(prev == last);
}

}  // namespace

TEST_CASE("app::AppClient: binary batches reach the app with the contract's headers") {
  AppOptions o = fast_options();
  o.token = "s3cret";
  Fixture f(Encoding::kBinary, o);
  f.enqueue(7, f.entries(1, 3));
  REQUIRE(f.wait_applied(7, 3));
  REQUIRE(f.app.calls.size() == 1);
  const FakeApp::Call& c = f.app.calls[0];
  CHECK(c.method == "POST");
  CHECK(c.target == "/UpdateEntries");
  CHECK(c.group == "7");
  CHECK(c.last_index == "3");
  CHECK(c.content_type == "application/vnd.raftd.entries");
  CHECK(c.auth == "Bearer s3cret");
  std::string want;
  for (int i = 1; i <= 3; ++i) {
    want += std::string(1, static_cast<char>(i)) + std::string(7, '\0') + '\x02' +
            std::string(3, '\0') + "e" + std::to_string(i);
  }
  CHECK(c.body == want);
  REQUIRE(f.applied.size() == 1);
  CHECK(f.applied[0].group == 7);
  CHECK(f.applied[0].last == 3);
  CHECK(f.applied[0].results == std::vector<Record>{{LogIndex(1), "r1:e1"},
                                                    {LogIndex(2), "r2:e2"},
                                                    {LogIndex(3), "r3:e3"}});
  CHECK(f.client->health(GroupId(7)).healthy);
  CHECK(f.client->queued_bytes(GroupId(7)) == 0);
  CHECK(f.client->stats().entries_applied == 3);
  // The token and the group go with every call.
  bool got_index = false;
  bool got_read = false;
  f.client->last_log_index(GroupId(7), [&](LogIndex i) { got_index = i == LogIndex(3); });
  f.client->get_entry(GroupId(7), "q", [&](Result<AppReply> r) { got_read = r.is_ok(); });
  REQUIRE(run_until(*f.reactor, [&] { return got_index && got_read; }));
  REQUIRE(f.app.calls.size() == 3);
  for (const FakeApp::Call& call : f.app.calls) {
    CHECK(call.auth == "Bearer s3cret");
    CHECK(call.group == "7");
  }
}

TEST_CASE("app::AppClient: on_call reports every call with its outcome") {
  AppOptions o = fast_options();
  std::vector<std::string> seen;
  o.on_call = [&](GroupId g, std::string_view call, io::Duration latency, const Status& s) {
    CHECK(latency >= io::Duration::zero());
    seen.push_back(std::to_string(g.value()) + " " + std::string(call) + " " +
                   std::string(code_name(s.code())));
  };
  Fixture f(Encoding::kBinary, o);
  f.app.modes[2] = FakeApp::Mode::kFail500;
  f.enqueue(2, f.entries(1, 1));
  REQUIRE(run_until(*f.reactor, [&] { return seen.size() >= 1; }));
  f.app.modes[2] = FakeApp::Mode::kApply;
  REQUIRE(f.wait_applied(2, 1));
  bool read = false;
  f.client->get_entry(GroupId(2), "q", [&](Result<AppReply>) { read = true; });
  REQUIRE(run_until(*f.reactor, [&] { return read; }));
  REQUIRE(seen.size() >= 3);
  CHECK(seen.front() == "2 UpdateEntries " + std::string(code_name(Code::kUnavailable)));
  CHECK(seen[seen.size() - 2] == "2 UpdateEntries " + std::string(code_name(Code::kOk)));
  CHECK(seen.back() == "2 GetEntry " + std::string(code_name(Code::kOk)));
}

TEST_CASE("app::AppClient: json batches and answers round trip") {
  Fixture f(Encoding::kJson);
  f.enqueue(3, f.entries(1, 2));
  REQUIRE(f.wait_applied(3, 2));
  REQUIRE(f.app.calls.size() == 1);
  CHECK(f.app.calls[0].content_type == "application/json");
  CHECK(f.app.calls[0].body ==
        R"({"last_index":2,"entries":[{"index":1,"data":"ZTE="},{"index":2,"data":"ZTI="}]})");
  CHECK(f.app.calls[0].auth.empty());
  REQUIRE(f.applied.size() == 1);
  CHECK(f.applied[0].results ==
        std::vector<Record>{{LogIndex(1), "r1:e1"}, {LogIndex(2), "r2:e2"}});
}

TEST_CASE("app::AppClient: a base path prefixes every call") {
  AppOptions o = fast_options();
  Fixture f(Encoding::kBinary, o);
  // A second client on the same app with a base path (the fake answers 404 to unknown paths,
  // so only the exact path could succeed: it is checked on what the app saw).
  AppOptions p = fast_options();
  p.url = AppUrl{"127.0.0.1", f.port, "/apps/kv"};
  std::vector<LogIndex> got;
  p.on_applied = [&](GroupId, LogIndex last, std::vector<Record>) { got.push_back(last); };
  auto c = AppClient::create(*f.reactor, p);
  REQUIRE(c.is_ok());
  std::optional<Result<AppReply>> reply;
  (*c)->get_entry(GroupId(1), "q", [&](Result<AppReply> r) { reply.emplace(std::move(r)); });
  REQUIRE(run_until(*f.reactor, [&] { return reply.has_value(); }));
  REQUIRE(f.app.calls.size() == 1);
  CHECK(f.app.calls[0].target == "/apps/kv/GetEntry");
  (*c)->close();
  REQUIRE(run_until(*f.reactor, [&] { return (*c)->closed(); }));
}

TEST_CASE("app::AppClient: batches are bounded by entry count and bytes") {
  AppOptions o = fast_options();
  o.batch_entries_max = 4;
  o.batch_bytes_max = 2 * (kRecordHeaderBytes + 40);
  o.queue_bytes_max = 1 << 20;
  Fixture f(Encoding::kBinary, o);
  f.app.hold = true;
  f.enqueue(1, f.entries(1, 1));  // goes out alone at once
  REQUIRE(run_until(*f.reactor, [&] { return f.app.held.size() == 1; }));
  f.enqueue(1, f.entries(2, 9));         // small: 4 per batch
  f.enqueue(1, f.entries(10, 13, 40));   // 40 bytes: 2 per batch
  f.enqueue(1, f.entries(14, 14, 500));  // over the byte limit: alone
  f.enqueue(1, f.entries(15, 15));
  while (f.applied_to(1) < 15) {
    f.app.release();
    REQUIRE(run_until(*f.reactor, [&] { return !f.app.held.empty() || f.applied_to(1) >= 15; }));
  }
  std::vector<std::size_t> sizes;
  for (const auto& b : f.app.batches_of(1)) sizes.push_back(b.entries.size());
  // 1 alone (sent before the rest came); 2-5 and 6-9 by count; 10-11 and 12-13 by bytes; 14
  // over the byte limit alone; 15 cannot join it.
  CHECK(sizes == std::vector<std::size_t>{1, 4, 4, 2, 2, 1, 1});
  check_log_order(f.app, 1, 15);
  CHECK(f.app.busy_max[1] == 1);
}

TEST_CASE("app::AppClient: one call in flight per group; entries that wait join the next batch") {
  Fixture f;
  f.app.hold = true;
  f.enqueue(1, f.entries(1, 3));
  f.enqueue(2, f.entries(1, 1));
  REQUIRE(run_until(*f.reactor, [&] { return f.app.held.size() == 2; }));
  f.enqueue(1, f.entries(4, 5));
  f.enqueue(1, f.entries(6, 6));
  run_for(*f.reactor, 50ms);
  CHECK(f.app.held.size() == 2);  // groups 1 and 2 each have one call at the app, no more
  CHECK(f.app.busy_max[1] == 1);
  f.app.release();
  REQUIRE(f.wait_applied(2, 1));
  REQUIRE(run_until(*f.reactor, [&] { return f.app.held.size() == 1; }));
  f.app.release();
  REQUIRE(f.wait_applied(1, 6));
  CHECK(f.app.order == std::vector<std::string>{"1 UpdateEntries 1-3 N3", "2 UpdateEntries 1-1 N1",
                                                "1 UpdateEntries 4-6 N6"});
  CHECK(f.app.busy_max[1] == 1);
  check_applied_order(f, 1, 6);
  check_log_order(f.app, 1, 6);
}

TEST_CASE("app::AppClient: raftd's own entries move Raftd-Last-Index without being sent") {
  for (Encoding e : {Encoding::kBinary, Encoding::kJson}) {
    CAPTURE(static_cast<int>(e));
    Fixture f(e);
    f.app.hold = true;
    f.enqueue(4, {AppEntry{LogIndex(1), false, ""}, AppEntry{LogIndex(2), true, "e2"},
                  AppEntry{LogIndex(3), false, ""}});
    REQUIRE(run_until(*f.reactor, [&] { return f.app.held.size() == 1; }));
    CHECK(f.app.calls.back().last_index == "3");
    f.app.release();
    REQUIRE(f.wait_applied(4, 3));
    REQUIRE(f.applied.size() == 1);
    CHECK(f.applied[0].results == std::vector<Record>{{LogIndex(2), "r2:e2"}});
    // Only raftd's entries: still one call, so the app records N (its LastLogIndex must move).
    f.enqueue(4, {AppEntry{LogIndex(4), false, ""}});
    REQUIRE(run_until(*f.reactor, [&] { return f.app.held.size() == 1; }));
    const FakeApp::Call c = f.app.calls.back();
    CHECK(c.last_index == "4");
    CHECK(c.body == (e == Encoding::kBinary ? "" : R"({"last_index":4,"entries":[]})"));
    f.app.release();
    REQUIRE(f.wait_applied(4, 4));
    REQUIRE(f.applied.size() == 2);
    CHECK(f.applied[1].results.empty());
    CHECK(f.app.stored[4] == 4);
  }
}

TEST_CASE("app::AppClient: a 500 is retried with the same batch until it succeeds") {
  Fixture f;
  f.app.modes[1] = FakeApp::Mode::kFail500;
  f.enqueue(1, f.entries(1, 3));
  REQUIRE(run_until(*f.reactor, [&] { return f.app.calls.size() >= 4; }));
  GroupHealth h = f.client->health(GroupId(1));
  CHECK(!h.healthy);
  CHECK(h.failures >= 3);
  CHECK(h.last_error.code() == Code::kUnavailable);
  CHECK(h.last_error.message().find("UpdateEntries: the app answered 500: boom") !=
        std::string::npos);
  const io::TimePoint since = h.since;
  f.enqueue(1, f.entries(4, 5));  // waits behind the failing batch
  run_for(*f.reactor, 30ms);
  CHECK(f.client->health(GroupId(1)).since == since);  // the streak's start
  f.app.modes[1] = FakeApp::Mode::kApply;
  REQUIRE(f.wait_applied(1, 5));
  for (const FakeApp::Call& c : f.app.calls_to("/UpdateEntries")) {
    if (c.last_index == "3") CHECK(c.body == f.app.calls[0].body);  // same bytes every time
  }
  h = f.client->health(GroupId(1));
  CHECK(h.healthy);
  CHECK(h.failures == 0);
  CHECK(h.last_error.is_ok());
  CHECK(h.since > since);
  check_log_order(f.app, 1, 5);
  check_applied_order(f, 1, 5);
}

TEST_CASE("app::AppClient: a malformed answer is a failed call, retried") {
  Fixture f;
  f.app.modes[1] = FakeApp::Mode::kGarbage;
  f.enqueue(1, f.entries(1, 2));
  REQUIRE(run_until(*f.reactor, [&] { return f.app.calls.size() >= 2; }));
  const GroupHealth h = f.client->health(GroupId(1));
  CHECK(!h.healthy);
  CHECK(h.last_error.code() == Code::kCorruption);
  CHECK(h.last_error.message().find("UpdateEntries: bad answer") != std::string::npos);
  CHECK(f.applied.empty());
  f.app.modes[1] = FakeApp::Mode::kApply;
  REQUIRE(f.wait_applied(1, 2));
  check_applied_order(f, 1, 2);
}

TEST_CASE("app::AppClient: a hung call times out and its batch is sent again whole") {
  Fixture f;                                      // call_timeout_ms 300
  f.app.modes[1] = FakeApp::Mode::kApplyAndHang;  // applied, but the answer never comes
  f.enqueue(1, f.entries(1, 3));
  REQUIRE(run_until(
      *f.reactor, [&] { return !f.client->health(GroupId(1)).healthy; }, 10s));
  CHECK(f.client->health(GroupId(1)).last_error.code() == Code::kTimeout);
  f.app.modes[1] = FakeApp::Mode::kHang;
  f.enqueue(1, f.entries(4, 4));
  REQUIRE(run_until(
      *f.reactor, [&] { return f.app.calls.size() >= 2; }, 10s));
  f.app.modes[1] = FakeApp::Mode::kApply;
  REQUIRE(f.wait_applied(1, 4));
  // The app saw 1-3 at least twice (the first answer was lost), never 4 before 1-3 was
  // acknowledged, and applied every entry once.
  const auto batches = f.app.batches_of(1);
  REQUIRE(batches.size() >= 3);
  CHECK(batches[0] == batches[1]);
  check_log_order(f.app, 1, 4);
  check_applied_order(f, 1, 4);
  CHECK(f.client->health(GroupId(1)).healthy);
}

TEST_CASE("app::AppClient: an app that is down and comes back gets every entry in order") {
  Fixture f;
  f.enqueue(1, f.entries(1, 2));
  REQUIRE(f.wait_applied(1, 2));
  const std::uint16_t port = f.port;
  f.stop_server();
  f.enqueue(1, f.entries(3, 5));
  f.enqueue(2, f.entries(1, 1));
  REQUIRE(run_until(*f.reactor, [&] {
    return f.client->health(GroupId(1)).failures >= 3 && f.client->health(GroupId(2)).failures >= 3;
  }));
  CHECK(f.client->health(GroupId(1)).last_error.code() == Code::kIoError);
  f.enqueue(1, f.entries(6, 7));
  f.start_server(port);
  REQUIRE(f.wait_applied(1, 7));
  REQUIRE(f.wait_applied(2, 1));
  check_log_order(f.app, 1, 7);
  check_applied_order(f, 1, 7);
  CHECK(f.client->health(GroupId(1)).healthy);
}

TEST_CASE("app::AppClient: a failing group does not hold back a healthy one") {
  Fixture f;
  f.app.modes[1] = FakeApp::Mode::kFail500;
  f.enqueue(1, f.entries(1, 1));
  for (std::uint64_t i = 1; i <= 20; ++i) {
    f.enqueue(2, f.entries(i, i));
    REQUIRE(f.wait_applied(2, i));  // one round trip each, while group 1 keeps failing
  }
  CHECK(!f.client->health(GroupId(1)).healthy);
  CHECK(f.client->health(GroupId(2)).healthy);
  CHECK(f.applied_to(1) == 0);
  check_log_order(f.app, 2, 20);
  f.app.modes[1] = FakeApp::Mode::kApply;
  REQUIRE(f.wait_applied(1, 1));
}

TEST_CASE("app::AppClient: get_entry passes status, content type and body through") {
  Fixture f;
  f.app.hold = true;
  f.enqueue(9, f.entries(1, 1));  // an UpdateEntries held at the app
  REQUIRE(run_until(*f.reactor, [&] { return f.app.held.size() == 1; }));
  std::optional<Result<AppReply>> reply;
  f.client->get_entry(GroupId(9), std::string("key\0x", 5),
                      [&](Result<AppReply> r) { reply.emplace(std::move(r)); });
  REQUIRE(run_until(*f.reactor, [&] { return reply.has_value(); }));
  REQUIRE(reply->is_ok());
  CHECK((*reply)->status == 203);
  CHECK((*reply)->content_type == "text/x-read");
  CHECK((*reply)->body == std::string("read key\0x", 10));
  const FakeApp::Call c = f.app.calls.back();
  CHECK(c.method == "GET");
  CHECK(c.target == "/GetEntry");
  CHECK(c.group == "9");
  CHECK(f.app.held.size() == 1);  // ran beside the UpdateEntries
  f.app.release();
  REQUIRE(f.wait_applied(9, 1));
}

TEST_CASE("app::AppClient: get_entry fails fast and is not retried") {
  Fixture f;
  f.stop_server();
  std::optional<Result<AppReply>> reply;
  f.client->get_entry(GroupId(1), "q", [&](Result<AppReply> r) { reply.emplace(std::move(r)); });
  REQUIRE(run_until(
      *f.reactor, [&] { return reply.has_value(); }, 5s));
  CHECK(reply->status().code() == Code::kIoError);
  CHECK(reply->status().message().rfind("GetEntry: ", 0) == 0);
  CHECK(f.client->stats().read_calls == 1);
  CHECK(f.client->stats().read_failures == 1);
  CHECK(f.client->health(GroupId(1)).healthy);  // a read does not make the group unhealthy
}

TEST_CASE("app::AppClient: Sync waits for earlier batches and later ones wait for it") {
  AppOptions o = fast_options();
  o.sync = true;
  Fixture f(Encoding::kBinary, o);
  f.app.hold = true;
  std::vector<std::uint64_t> synced;
  f.enqueue(1, f.entries(1, 2));
  REQUIRE(run_until(*f.reactor, [&] { return f.app.held.size() == 1; }));
  f.enqueue(1, f.entries(3, 3));
  f.client->sync(GroupId(1), [&](LogIndex d) { synced.push_back(d.value()); });
  f.enqueue(1, f.entries(4, 5));
  f.client->sync(GroupId(1), [&](LogIndex d) { synced.push_back(d.value()); });
  auto done = [&] { return f.applied_to(1) >= 5 && synced.size() == 2; };
  while (!done()) {
    REQUIRE(run_until(*f.reactor, [&] { return !f.app.held.empty() || done(); }));
    f.app.release();
  }
  CHECK(f.app.order == std::vector<std::string>{"1 UpdateEntries 1-2 N2", "1 UpdateEntries 3-3 N3",
                                                "1 Sync", "1 UpdateEntries 4-5 N5", "1 Sync"});
  CHECK(synced == std::vector<std::uint64_t>{3, 5});
  CHECK(f.app.busy_max[1] == 1);
}

TEST_CASE("app::AppClient: a failed Sync is retried before anything after it") {
  AppOptions o = fast_options();
  o.sync = true;
  Fixture f(Encoding::kBinary, o);
  std::optional<std::uint64_t> synced;
  f.enqueue(1, f.entries(1, 1));
  REQUIRE(f.wait_applied(1, 1));
  f.app.modes[1] = FakeApp::Mode::kFail500;
  f.client->sync(GroupId(1), [&](LogIndex d) { synced = d.value(); });
  f.enqueue(1, f.entries(2, 2));
  REQUIRE(run_until(*f.reactor, [&] { return f.client->health(GroupId(1)).failures >= 2; }));
  CHECK(f.client->health(GroupId(1)).last_error.message().rfind("Sync: ", 0) == 0);
  CHECK(f.app.calls_to("/UpdateEntries").size() == 1);  // 2 waits for the Sync
  f.app.modes[1] = FakeApp::Mode::kApply;
  REQUIRE(f.wait_applied(1, 2));
  REQUIRE(synced.has_value());
  CHECK(*synced == 1);
  CHECK(f.app.order ==
        std::vector<std::string>{"1 UpdateEntries 1-1 N1", "1 Sync", "1 UpdateEntries 2-2 N2"});
}

TEST_CASE("app::AppClient: last_log_index parses strictly and is retried until it can") {
  Fixture f;
  f.app.stored[3] = 41;
  f.app.modes[3] = FakeApp::Mode::kGarbage;  // answers "12\n"
  std::optional<std::uint64_t> got;
  f.client->last_log_index(GroupId(3), [&](LogIndex i) { got = i.value(); });
  REQUIRE(run_until(*f.reactor, [&] { return f.app.calls.size() >= 2; }));
  CHECK(!got.has_value());
  const GroupHealth h = f.client->health(GroupId(3));
  CHECK(!h.healthy);
  CHECK(h.last_error.message().find("LastLogIndex: the answer \"12 \" is not an index") !=
        std::string::npos);
  f.app.modes[3] = FakeApp::Mode::kApply;
  REQUIRE(run_until(*f.reactor, [&] { return got.has_value(); }));
  CHECK(*got == 41);
  CHECK(f.app.calls.back().method == "GET");
  CHECK(f.app.calls.back().target == "/LastLogIndex");
  CHECK(f.app.calls.back().group == "3");
  CHECK(f.client->health(GroupId(3)).healthy);
}

TEST_CASE("app::AppClient: drop_group forgets the group's work and callbacks") {
  Fixture f;
  f.app.hold = true;
  bool last_called = false;
  f.enqueue(5, f.entries(1, 2));
  REQUIRE(run_until(*f.reactor, [&] { return f.app.held.size() == 1; }));
  f.enqueue(5, f.entries(3, 4));
  f.client->last_log_index(GroupId(5), [&](LogIndex) { last_called = true; });
  f.client->drop_group(GroupId(5));
  CHECK(f.client->queued_bytes(GroupId(5)) == 0);
  // Taken up again while the dropped call is still at the app: the new incarnation waits.
  f.enqueue(5, f.entries(10, 10));
  run_for(*f.reactor, 50ms);
  CHECK(f.app.calls.size() == 1);
  f.app.release();
  REQUIRE(run_until(*f.reactor, [&] { return f.app.held.size() == 1; }));
  f.app.release();
  REQUIRE(f.wait_applied(5, 10));
  // Nothing of the dropped incarnation came back: only 10's batch, and no LastLogIndex.
  REQUIRE(f.applied.size() == 1);
  CHECK(f.applied[0].last == 10);
  CHECK(!last_called);
  CHECK(f.app.calls_to("/LastLogIndex").empty());
  CHECK(f.app.busy_max[5] == 1);
  // A dropped group's retries stop too.
  f.app.modes[6] = FakeApp::Mode::kFail500;
  f.enqueue(6, f.entries(1, 1));
  REQUIRE(run_until(*f.reactor, [&] { return f.app.calls_to("/UpdateEntries").size() >= 4; }));
  f.client->drop_group(GroupId(6));
  run_for(*f.reactor, 30ms);  // a call in flight when dropped may still arrive
  const std::size_t calls = f.app.calls.size();
  run_for(*f.reactor, 150ms);
  CHECK(f.app.calls.size() == calls);
  CHECK(f.client->health(GroupId(6)).healthy);  // unknown again
}

TEST_CASE("app::AppClient: a group's queue is bounded and refuses what would pass it") {
  AppOptions o = fast_options();
  o.batch_bytes_max = 1000;
  o.queue_bytes_max = 1000;
  Fixture f(Encoding::kBinary, o);
  f.app.hold = true;
  f.enqueue(1, f.entries(1, 2, 400));
  CHECK(f.client->queued_bytes(GroupId(1)) == 800);
  // Refused entries stay with the caller, even when handed over with std::move.
  std::vector<AppEntry> refused = f.entries(3, 3, 400);
  Status full = f.client->enqueue(GroupId(1), std::move(refused));
  CHECK(full.code() == Code::kUnavailable);
  REQUIRE(refused.size() == 1);
  CHECK(refused[0].index == LogIndex(3));
  CHECK(refused[0].data == f.entries(3, 3, 400)[0].data);
  CHECK(f.client->queued_bytes(GroupId(1)) == 800);
  REQUIRE(run_until(*f.reactor, [&] { return f.app.held.size() == 1; }));
  f.app.release();
  REQUIRE(f.wait_applied(1, 2));
  CHECK(f.client->queued_bytes(GroupId(1)) == 0);
  REQUIRE(f.client->enqueue(GroupId(1), std::move(refused)).is_ok());  // offered again
  CHECK(refused.empty());                                              // taken
  // An empty queue takes even more than the limit, so a big entry cannot block the group.
  Status big = f.client->enqueue(GroupId(2), f.entries(1, 1, 5000));
  CHECK(big.is_ok());
  REQUIRE(run_until(*f.reactor, [&] { return f.app.held.size() == 2; }));
  f.app.release();
  REQUIRE(f.wait_applied(1, 3));
  REQUIRE(f.wait_applied(2, 1));
}

TEST_CASE("app::AppClient: no callback runs after close") {
  Fixture f;
  f.app.hold = true;
  bool called = false;
  f.enqueue(1, f.entries(1, 1));
  f.client->last_log_index(GroupId(2), [&](LogIndex) { called = true; });
  f.client->get_entry(GroupId(3), "q", [&](Result<AppReply>) { called = true; });
  REQUIRE(run_until(*f.reactor, [&] { return f.app.held.size() == 2; }));
  f.client->close();
  REQUIRE(run_until(*f.reactor, [&] { return f.client->closed(); }));
  f.app.release();
  run_for(*f.reactor, 30ms);
  CHECK(!called);
  CHECK(f.applied.empty());
  CHECK(f.client->enqueue(GroupId(1), f.entries(2, 2)).code() == Code::kCancelled);
}

TEST_CASE("app::parse_app_url: http, an IPv4 host, a port and a base path") {
  Result<AppUrl> u = parse_app_url("http://127.0.0.1:8080");
  REQUIRE(u.is_ok());
  CHECK(u->host == "127.0.0.1");
  CHECK(u->port == 8080);
  CHECK(u->base_path.empty());
  u = parse_app_url("HTTP://10.0.0.2/apps/kv/");
  REQUIRE(u.is_ok());
  CHECK(u->port == 80);
  CHECK(u->base_path == "/apps/kv");
  for (std::string_view bad :
       {"https://127.0.0.1", "127.0.0.1:80", "http://localhost:80", "http://127.0.0.1:0",
        "http://127.0.0.1:65536", "http://127.0.0.1:8a", "http://u@127.0.0.1",
        "http://127.0.0.1/x?y", "http://127.0.0.1/a b", "http://:80"}) {
    CAPTURE(bad);
    CHECK(parse_app_url(bad).status().code() == Code::kInvalidArgument);
  }
}

TEST_CASE("app::validate: options out of range name the field") {
  AppOptions o = fast_options();
  o.on_applied = [](GroupId, LogIndex, std::vector<Record>) {};
  CHECK(validate(o).is_ok());
  auto fails = [&](auto tweak, std::string_view needle) {
    AppOptions b = o;
    tweak(b);
    Status s = validate(b);
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK_MESSAGE(s.message().find(needle) != std::string::npos, s.message());
  };
  fails([](AppOptions& b) { b.call_timeout_ms = 0; }, "timeouts");
  fails([](AppOptions& b) { b.retry_backoff_min_ms = 50, b.retry_backoff_max_ms = 10; }, "backoff");
  fails([](AppOptions& b) { b.batch_bytes_max = kBatchBytesMax + 1; }, "batch_bytes_max");
  fails([](AppOptions& b) { b.batch_entries_max = 0; }, "batch_entries_max");
  fails([](AppOptions& b) { b.batch_entries_max = kRecordsMax + 1; }, "batch_entries_max");
  fails([](AppOptions& b) { b.queue_bytes_max = b.batch_bytes_max - 1; }, "queue_bytes_max");
  fails([](AppOptions& b) { b.token = "a\r\nX: y"; }, "token");
  fails([](AppOptions& b) { b.on_applied = nullptr; }, "on_applied");
  fails([](AppOptions& b) { b.url.host = "example.com"; }, "url.host");
  fails([](AppOptions& b) { b.url.base_path = "x/"; }, "base_path");
}

}  // namespace raftd::app

namespace raftd::app {

TEST_CASE("app::AppClient: retries are spaced by the backoff") {
  AppOptions o = fast_options();
  o.retry_backoff_min_ms = 40;
  o.retry_backoff_max_ms = 80;
  Fixture f(Encoding::kBinary, o);
  f.app.modes[1] = FakeApp::Mode::kFail500;
  f.enqueue(1, f.entries(1, 1));
  run_for(*f.reactor, 500ms);
  // Waits of [20, 40] ms, then [40, 80] ms: about 8 calls in 500 ms; without a backoff,
  // hundreds.
  const std::size_t calls = f.app.calls.size();
  CHECK(calls >= 4);
  CHECK(calls <= 14);
  const std::uint64_t failures = f.client->health(GroupId(1)).failures;
  CHECK(failures + 1 >= calls);  // the last call may still be on its way back
  CHECK(failures <= calls);
}

TEST_CASE("app::AppClient: many groups, failures that come and go, every entry once in order") {
  AppOptions o = fast_options();
  o.sync = true;
  o.batch_entries_max = 3;
  o.batch_bytes_max = 200;
  o.queue_bytes_max = 400;
  Fixture f(Encoding::kJson, o);
  constexpr std::uint64_t kGroups = 12;
  std::mt19937_64 rng(7);
  std::map<std::uint64_t, std::uint64_t> last;               // last index offered and taken
  std::map<std::uint64_t, std::vector<AppEntry>> refused;    // to offer again
  std::map<std::uint64_t, std::vector<std::uint64_t>> sent;  // to_app indexes, in order
  std::map<std::uint64_t, std::vector<std::pair<std::uint64_t, std::uint64_t>>> syncs;
  std::map<std::uint64_t, std::vector<std::uint64_t>> durable;
  const FakeApp::Mode modes[] = {FakeApp::Mode::kApply, FakeApp::Mode::kApply,
                                 FakeApp::Mode::kApply, FakeApp::Mode::kFail500,
                                 FakeApp::Mode::kGarbage};
  for (int step = 0; step < 400; ++step) {
    const std::uint64_t g = 1 + rng() % kGroups;
    if (rng() % 8 == 0) f.app.modes[g] = modes[rng() % 5];
    if (!refused[g].empty()) {
      const Status s = f.client->enqueue(GroupId(g), std::move(refused[g]));
      CHECK(refused[g].empty() == s.is_ok());  // taken whole, or left whole
    } else if (rng() % 6 == 0) {
      syncs[g].push_back({syncs[g].size(), last[g]});
      f.client->sync(GroupId(g), [&, g](LogIndex d) { durable[g].push_back(d.value()); });
    } else {
      std::vector<AppEntry> batch;
      const std::uint64_t n = 1 + rng() % 5;
      for (std::uint64_t i = 0; i < n; ++i) {
        const std::uint64_t index = last[g] + 1 + i;
        const bool to_app = rng() % 4 != 0;
        batch.push_back(
            AppEntry{LogIndex(index), to_app,
                     to_app ? "e" + std::to_string(index) + std::string(rng() % 60, 'x') : ""});
      }
      last[g] += n;
      for (const AppEntry& e : batch) {
        if (e.to_app) sent[g].push_back(e.index.value());
      }
      // Refused: the vector is left as it was, so it is kept to offer again.
      if (!f.client->enqueue(GroupId(g), std::move(batch)).is_ok()) refused[g] = std::move(batch);
    }
    f.reactor->run_once(2ms);
  }
  f.app.modes.clear();
  for (auto& [group, batch] : refused) {
    const std::uint64_t g = group;
    if (batch.empty()) continue;
    REQUIRE(run_until(*f.reactor, [&] { return f.client->queued_bytes(GroupId(g)) == 0; }));
    REQUIRE(f.client->enqueue(GroupId(g), std::move(batch)).is_ok());
  }
  for (const auto& [group, n] : last) {
    const std::uint64_t g = group;
    CAPTURE(g);
    REQUIRE(f.wait_applied(g, n));
    REQUIRE(run_until(*f.reactor, [&] { return durable[g].size() == syncs[g].size(); }));
    // The app applied every sent entry once, in order, and recorded N.
    CHECK(f.app.applied[g] == sent[g]);
    CHECK(f.app.stored[g] == n);
    CHECK(f.app.busy_max[g] <= 1);
    // Batches continue each other or repeat whole.
    std::optional<FakeApp::Batch> prev;
    for (const FakeApp::Batch& b : f.app.batches_of(g)) {
      if (prev && b == *prev) continue;
      if (prev) CHECK(b.last > prev->last);
      if (prev && !b.entries.empty()) CHECK(b.entries.front().index.value() > prev->last);
      prev = b;
    }
    // on_applied: increasing N, results for exactly the sent entries.
    std::vector<std::uint64_t> results;
    std::uint64_t prev_last = 0;
    for (const Applied& a : f.applied) {
      if (a.group != g) continue;
      CHECK(a.last > prev_last);
      prev_last = a.last;
      for (const Record& r : a.results) {
        CHECK(r.data.rfind("r" + std::to_string(r.index.value()) + ":e", 0) == 0);
        results.push_back(r.index.value());
      }
    }
    CHECK(results == sent[g]);
    // Each Sync reported exactly what was enqueued before it.
    std::vector<std::uint64_t> want;
    for (const auto& s : syncs[g]) want.push_back(s.second);
    CHECK(durable[g] == want);
  }
  CHECK(f.client->stats().failures > 0);
}

}  // namespace raftd::app

namespace raftd::app {
namespace {

struct TempDir {
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "raftd-app-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  // Writes `bytes` to a file of the directory; returns its path.
  std::string file(std::string_view name, std::string_view bytes) const {
    const std::string p = path + "/" + std::string(name);
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(out.good());
    return p;
  }
  std::string path;
};

// Bytes that differ at every offset of a piece: a piece sent twice or out of place shows.
std::string snapshot_bytes(std::size_t n) { return FakeApp::save_pattern(7, n); }

// A SaveSnapshot as the node would run it: the answer collected, paused after every
// `pause_every` bytes (at the piece that crosses the mark) and resumed by the test, with the
// bytes that arrived while it was paused counted (there must be none: a paused save holds
// the socket, not a growing buffer).
struct SaveRun {
  std::string body;
  std::size_t pieces = 0;
  bool paused = false;
  std::size_t delivered_while_paused = 0;
  std::size_t largest_piece = 0;
  std::size_t pause_every = 1;
  std::optional<Status> done;
  SaveId id = 0;

  void start(AppClient& client, GroupId group, std::string context) {
    id = client.save_snapshot(
        group, std::move(context),
        [this](std::string_view piece) {
          if (paused) delivered_while_paused += piece.size();
          largest_piece = std::max(largest_piece, piece.size());
          const std::size_t before = body.size() / pause_every;
          body.append(piece);
          ++pieces;
          if (body.size() / pause_every == before) return http::Flow::kContinue;
          paused = true;
          return http::Flow::kPause;
        },
        [this](Status s) { done = std::move(s); });
  }
};

}  // namespace

TEST_CASE("app::AppClient: PrepareSnapshot waits for earlier batches and later entries wait") {
  std::vector<std::string> seen;
  AppOptions o = fast_options();
  o.on_call = [&](GroupId, std::string_view call, io::Duration, const Status& s) {
    seen.push_back(std::string(call) + " " + std::string(code_name(s.code())));
  };
  Fixture f(Encoding::kBinary, o);
  f.app.hold = true;
  std::optional<Result<SnapshotContext>> prepared;
  f.enqueue(1, f.entries(1, 2));
  REQUIRE(run_until(*f.reactor, [&] { return f.app.held.size() == 1; }));
  f.enqueue(1, {AppEntry{LogIndex(3), true, "e3"}, AppEntry{LogIndex(4), false, ""}});
  f.client->prepare_snapshot(GroupId(1),
                             [&](Result<SnapshotContext> r) { prepared.emplace(std::move(r)); });
  f.enqueue(1, f.entries(5, 6));
  auto done = [&] { return f.applied_to(1) >= 6 && prepared.has_value(); };
  while (!done()) {
    REQUIRE(run_until(*f.reactor, [&] { return !f.app.held.empty() || done(); }));
    f.app.release();
  }
  CHECK(f.app.order == std::vector<std::string>{"1 UpdateEntries 1-2 N2", "1 UpdateEntries 3-3 N4",
                                                "1 PrepareSnapshot N4", "1 UpdateEntries 5-6 N6"});
  REQUIRE(prepared->is_ok());
  CHECK((*prepared)->index == LogIndex(4));  // raftd's own entry 4 is covered too
  CHECK((*prepared)->context == "ctx4");
  const std::vector<FakeApp::Call> calls = f.app.calls_to("/PrepareSnapshot");
  REQUIRE(calls.size() == 1);
  CHECK(calls[0].method == "POST");
  CHECK(calls[0].raftd_index == "4");
  CHECK(calls[0].body.empty());
  CHECK(calls[0].group == "1");
  CHECK(f.app.busy_max[1] == 1);
  CHECK(std::count(seen.begin(), seen.end(),
                   "PrepareSnapshot " + std::string(code_name(Code::kOk))) == 1);
  CHECK(f.client->stats().prepare_calls == 1);
  CHECK(f.client->stats().prepare_snapshot.errors == 0);

  // A LastLogIndex answer above what was acknowledged is where the app's state is.
  f.app.hold = false;
  f.app.stored[2] = 40;
  std::optional<std::uint64_t> last;
  prepared.reset();
  f.client->last_log_index(GroupId(2), [&](LogIndex i) { last = i.value(); });
  f.client->prepare_snapshot(GroupId(2),
                             [&](Result<SnapshotContext> r) { prepared.emplace(std::move(r)); });
  REQUIRE(run_until(*f.reactor, [&] { return prepared.has_value(); }));
  CHECK(last == 40);
  REQUIRE(prepared->is_ok());
  CHECK((*prepared)->index == LogIndex(40));
  CHECK((*prepared)->context == "ctx40");
}

TEST_CASE("app::AppClient: a failed PrepareSnapshot is reported, not retried; the FIFO goes on") {
  Fixture f;
  std::vector<Result<SnapshotContext>> got;
  auto prepare = [&](std::uint64_t g) {
    f.client->prepare_snapshot(GroupId(g),
                               [&](Result<SnapshotContext> r) { got.push_back(std::move(r)); });
  };
  f.app.fail_next["/PrepareSnapshot"] = 1;
  f.enqueue(1, f.entries(1, 1));
  prepare(1);
  f.enqueue(1, f.entries(2, 2));
  REQUIRE(f.wait_applied(1, 2));
  REQUIRE(run_until(*f.reactor, [&] { return got.size() == 1; }));
  CHECK(got[0].status().code() == Code::kUnavailable);
  CHECK(got[0].status().message().find("PrepareSnapshot: the app answered 500: boom") !=
        std::string::npos);
  CHECK(f.app.calls_to("/PrepareSnapshot").size() == 1);  // not sent again
  CHECK(f.app.order ==
        std::vector<std::string>{"1 UpdateEntries 1-1 N1", "1 UpdateEntries 2-2 N2"});
  CHECK(f.client->health(GroupId(1)).healthy);
  CHECK(f.client->stats().prepare_snapshot.errors == 1);
  CHECK(f.client->stats().failures == 0);  // the count of retried failures

  // A context over 64 KiB fails the call; exactly 64 KiB is a context.
  f.app.prepare_body = std::string(kSnapshotContextBytesMax + 1, 'c');
  prepare(1);
  REQUIRE(run_until(*f.reactor, [&] { return got.size() == 2; }));
  CHECK(got[1].status().code() == Code::kTooLarge);
  CHECK(got[1].status().message().rfind("PrepareSnapshot: ", 0) == 0);
  f.app.prepare_body = std::string(kSnapshotContextBytesMax, 'c');
  prepare(1);
  REQUIRE(run_until(*f.reactor, [&] { return got.size() == 3; }));
  REQUIRE(got[2].is_ok());
  CHECK(got[2]->index == LogIndex(2));
  CHECK(got[2]->context == *f.app.prepare_body);
  // Nothing waits behind a failed call: the group goes on.
  f.enqueue(1, f.entries(3, 3));
  REQUIRE(f.wait_applied(1, 3));
  CHECK(f.app.calls_to("/PrepareSnapshot").size() == 3);
}

TEST_CASE("app::AppClient: SaveSnapshot streams a large answer, paused and resumed") {
  constexpr std::uint64_t kBytes = 8 * 1024 * 1024 + 12345;
  // http::testing::make_reactor's receive ring: 64 buffers of 64 KiB.
  constexpr std::size_t kTestRingBytes = 64 * 64 * 1024;
  for (bool chunked : {true, false}) {
    CAPTURE(chunked);
    Fixture f;  // call_timeout_ms 300
    f.app.hold = true;
    f.app.save_bytes = kBytes;
    f.app.save_chunked = chunked;
    // An UpdateEntries held at the app: SaveSnapshot is not in the FIFO and runs beside it.
    f.enqueue(1, f.entries(1, 1));
    REQUIRE(run_until(*f.reactor, [&] { return f.app.held.size() == 1; }));
    SaveRun run;
    run.pause_every = 512 * 1024;
    run.start(*f.client, GroupId(1), std::string("the\0context", 11));
    bool waited = false;
    while (!run.done) {
      REQUIRE(run_until(*f.reactor, [&] { return run.paused || run.done.has_value(); }));
      if (run.done) break;
      if (!waited && run.body.size() > kBytes / 2) {
        // Paused longer than the call timeout: not a timeout, and nothing arrives meanwhile.
        waited = true;
        run_for(*f.reactor, 500ms);
        CHECK(!run.done.has_value());
      }
      run.paused = false;
      f.client->resume_save(run.id);
    }
    REQUIRE_MESSAGE(run.done->is_ok(), run.done->to_string());
    CHECK(waited);
    CHECK(run.delivered_while_paused == 0);
    CHECK(run.body.size() == kBytes);
    CHECK(run.body == FakeApp::save_pattern(0, kBytes));
    // What the client took in while paused comes as one piece after the resume: bounded by the
    // HTTP client's backlog limit plus the reactor's receive ring (completions already on their
    // way when it stops reading), not by the snapshot's size.
    CHECK(run.largest_piece <= http::kPendingBytesMax + kTestRingBytes);
    CHECK(run.pieces >= kBytes / (http::kPendingBytesMax + kTestRingBytes));
    CHECK(run.pieces >= kBytes / run.pause_every);
    const std::vector<FakeApp::Call> calls = f.app.calls_to("/SaveSnapshot");
    REQUIRE(calls.size() == 1);
    CHECK(calls[0].method == "POST");
    CHECK(calls[0].body == std::string("the\0context", 11));
    CHECK(calls[0].group == "1");
    CHECK(f.applied.empty());  // the group's UpdateEntries is still unanswered (or retried)
    CHECK(f.client->stats().save_calls == 1);
    CHECK(f.client->stats().save_bytes == kBytes);
    CHECK(f.client->stats().save_snapshot.errors == 0);
    f.client->resume_save(run.id);  // ended: a no-op
    f.client->cancel_save(run.id);
    f.app.hold = false;
    f.app.release();
    REQUIRE(f.wait_applied(1, 1));
  }
}

TEST_CASE("app::AppClient: a non-2xx SaveSnapshot fails with the app's status and words") {
  std::vector<std::string> seen;
  AppOptions o = fast_options();
  o.on_call = [&](GroupId, std::string_view call, io::Duration, const Status& s) {
    seen.push_back(std::string(call) + " " + std::string(code_name(s.code())));
  };
  Fixture f(Encoding::kBinary, o);
  f.app.save_status = 503;
  f.app.save_error_body = "not now";
  SaveRun run;
  run.start(*f.client, GroupId(4), "ctx");
  REQUIRE(run_until(*f.reactor, [&] { return run.done.has_value(); }));
  CHECK(run.done->code() == Code::kUnavailable);
  CHECK(run.done->message() == "SaveSnapshot: the app answered 503: not now");
  CHECK(run.pieces == 0);  // an error body is not the snapshot
  CHECK(seen ==
        std::vector<std::string>{"SaveSnapshot " + std::string(code_name(Code::kUnavailable))});
  // A long error answer: its first bytes are enough, the rest is not read.
  f.app.save_status = 500;
  f.app.save_error_body = std::string(8 * 1024 * 1024, 'z');
  SaveRun big;
  big.start(*f.client, GroupId(4), "ctx");
  REQUIRE(run_until(*f.reactor, [&] { return big.done.has_value(); }));
  CHECK(big.done->code() == Code::kUnavailable);
  CHECK(big.done->message() ==
        "SaveSnapshot: the app answered 500: " + std::string(kErrorBodyCharsMax, 'z') + "...");
  CHECK(f.client->stats().save_snapshot.errors == 2);
  CHECK(f.app.calls_to("/SaveSnapshot").size() == 2);  // not retried
  // An app that is not there.
  f.stop_server();
  SaveRun refused;
  refused.start(*f.client, GroupId(4), "ctx");
  REQUIRE(run_until(*f.reactor, [&] { return refused.done.has_value(); }));
  CHECK(refused.done->code() == Code::kIoError);
  CHECK(refused.done->message().rfind("SaveSnapshot: ", 0) == 0);
}

TEST_CASE("app::AppClient: cancel_save and drop_group end a save without its callback") {
  Fixture f;
  f.app.save_bytes = 8 * 1024 * 1024;
  // Cancelled while paused.
  SaveRun a;
  a.start(*f.client, GroupId(1), "a");
  REQUIRE(run_until(*f.reactor, [&] { return a.paused; }));
  f.client->cancel_save(a.id);
  REQUIRE(run_until(*f.reactor, [&] { return f.app.aborted.size() == 1; }));
  // Cancelled from its own on_body, with captures that must outlive the call.
  std::optional<Status> b_done;
  std::size_t b_pieces = 0;
  SaveId b_id = 0;
  const std::string marker(100, 'm');
  b_id = f.client->save_snapshot(
      GroupId(1), "b",
      [&, marker](std::string_view) {
        ++b_pieces;
        f.client->cancel_save(b_id);
        CHECK(marker == std::string(100, 'm'));
        return http::Flow::kContinue;
      },
      [&](Status s) { b_done = std::move(s); });
  REQUIRE(run_until(*f.reactor, [&] { return f.app.aborted.size() == 2; }));
  // Ended by drop_group.
  SaveRun c;
  c.start(*f.client, GroupId(2), "c");
  REQUIRE(run_until(*f.reactor, [&] { return c.paused; }));
  f.client->drop_group(GroupId(2));
  f.client->resume_save(c.id);  // gone: a no-op
  REQUIRE(run_until(*f.reactor, [&] { return f.app.aborted.size() == 3; }));
  run_for(*f.reactor, 50ms);
  CHECK(!a.done.has_value());
  CHECK(!b_done.has_value());
  CHECK(b_pieces == 1);
  CHECK(!c.done.has_value());
  CHECK(a.pieces == 1);
  CHECK(c.pieces == 1);
  CHECK(f.app.aborted == std::vector<std::string>(3, "/SaveSnapshot"));
  CHECK(f.client->stats().save_snapshot.errors == 0);
  // The client is still good for another save.
  f.app.save_bytes = 1000;
  SaveRun d;
  d.start(*f.client, GroupId(1), "d");
  while (!d.done) {
    REQUIRE(run_until(*f.reactor, [&] { return d.paused || d.done.has_value(); }));
    d.paused = false;
    f.client->resume_save(d.id);
  }
  CHECK(d.done->is_ok());
  CHECK(d.body == FakeApp::save_pattern(0, 1000));
}

TEST_CASE("app::AppClient: RecoverFromSnapshot sends the file in the FIFO and is retried") {
  TempDir dir;
  const std::string bytes = snapshot_bytes(3 * 1024 * 1024 + 17);
  const std::string path = dir.file("snap", bytes);
  std::vector<std::string> seen;
  AppOptions o = fast_options();
  o.sync = true;
  o.on_call = [&](GroupId, std::string_view call, io::Duration, const Status& s) {
    seen.push_back(std::string(call) + " " + std::string(code_name(s.code())));
  };
  Fixture f(Encoding::kBinary, o);
  f.app.hold = true;
  f.app.fail_next["/RecoverFromSnapshot"] = 1;
  std::optional<Status> recovered;
  std::optional<std::uint64_t> synced;
  f.enqueue(1, f.entries(1, 2));
  REQUIRE(run_until(*f.reactor, [&] { return f.app.held.size() == 1; }));
  f.client->recover_from_snapshot(GroupId(1), LogIndex(100), path,
                                  [&](Status s) { recovered = std::move(s); });
  f.client->sync(GroupId(1), [&](LogIndex d) { synced = d.value(); });
  f.enqueue(1, f.entries(101, 102));  // continues from the snapshot's index
  bool was_unhealthy = false;
  auto done = [&] { return f.applied_to(1) >= 102 && recovered && synced; };
  while (!done()) {
    REQUIRE(run_until(*f.reactor, [&] {
      was_unhealthy = was_unhealthy || !f.client->health(GroupId(1)).healthy;
      return !f.app.held.empty() || done();
    }));
    f.app.release();
  }
  REQUIRE(recovered->is_ok());
  CHECK(*synced == 100);  // the acknowledged index is the snapshot's
  CHECK(f.app.order == std::vector<std::string>{"1 UpdateEntries 1-2 N2",
                                                "1 RecoverFromSnapshot N100", "1 Sync",
                                                "1 UpdateEntries 101-102 N102"});
  CHECK(f.app.busy_max[1] == 1);
  CHECK(f.app.recovered[1] == bytes);
  // The 500 was retried with the same bytes, the file read again.
  const std::vector<FakeApp::Call> calls = f.app.calls_to("/RecoverFromSnapshot");
  REQUIRE(calls.size() == 2);
  for (const FakeApp::Call& c : calls) {
    CHECK(c.method == "POST");
    CHECK(c.raftd_index == "100");
    CHECK(c.content_length == std::to_string(bytes.size()));
    CHECK(c.body == bytes);
    CHECK(c.group == "1");
  }
  // Health followed the failure like an UpdateEntries'.
  CHECK(was_unhealthy);
  CHECK(f.client->health(GroupId(1)).healthy);
  const std::string unavailable(code_name(Code::kUnavailable));
  const std::string ok(code_name(Code::kOk));
  CHECK(std::find(seen.begin(), seen.end(), "RecoverFromSnapshot " + unavailable) != seen.end());
  CHECK(std::count(seen.begin(), seen.end(), "RecoverFromSnapshot " + ok) == 1);
  CHECK(f.client->stats().recover_calls == 2);
  CHECK(f.client->stats().recover_from_snapshot.errors == 1);
  // A later PrepareSnapshot starts from there too.
  f.app.hold = false;
  std::optional<Result<SnapshotContext>> prepared;
  f.client->prepare_snapshot(GroupId(1),
                             [&](Result<SnapshotContext> r) { prepared.emplace(std::move(r)); });
  REQUIRE(run_until(*f.reactor, [&] { return prepared.has_value(); }));
  REQUIRE(prepared->is_ok());
  CHECK((*prepared)->index == LogIndex(102));
}

TEST_CASE("app::AppClient: the app may take recover_timeout_ms to answer RecoverFromSnapshot") {
  TempDir dir;
  const std::string bytes = snapshot_bytes(1024 * 1024);
  const std::string path = dir.file("snap", bytes);
  for (const std::uint32_t recover_timeout_ms : {5000u, 400u}) {
    INFO("recover_timeout_ms " << recover_timeout_ms);
    AppOptions o = fast_options();  // call_timeout_ms 300
    o.recover_timeout_ms = recover_timeout_ms;
    Fixture f(Encoding::kBinary, o);
    f.app.hold = true;  // the app answers only when released: it is "applying" the snapshot
    std::optional<Status> recovered;
    f.client->recover_from_snapshot(GroupId(1), LogIndex(50), path,
                                    [&](Status st) { recovered = std::move(st); });
    REQUIRE(run_until(*f.reactor, [&] { return f.app.held.size() == 1; }));
    run_for(*f.reactor, 1000ms);  // over three call timeouts
    const size_t calls = f.app.calls_to("/RecoverFromSnapshot").size();
    if (recover_timeout_ms > 1000) {
      // Still the one call: the whole body arrived, and the app is allowed its time.
      CHECK(calls == 1);
      CHECK_FALSE(recovered.has_value());
      CHECK(f.client->stats().recover_from_snapshot.errors == 0);
    } else {
      // Shorter than the wait: timed out and sent again, the whole snapshot each time.
      CHECK(calls >= 2);
      CHECK(f.client->stats().recover_from_snapshot.errors >= 1);
    }
    f.app.hold = false;
    REQUIRE(run_until(*f.reactor, [&] {
      f.app.release();
      return recovered.has_value();
    }));
    CHECK(recovered->is_ok());
    CHECK(f.app.recovered[1] == bytes);
  }
}

TEST_CASE("app::AppClient: a RecoverFromSnapshot whose file is missing or changed fails") {
  TempDir dir;
  Fixture f;
  std::vector<Status> got;
  // Missing at the call.
  f.client->recover_from_snapshot(GroupId(1), LogIndex(10), dir.path + "/nope",
                                  [&](Status s) { got.push_back(std::move(s)); });
  CHECK(got.empty());  // never inside the call
  f.enqueue(1, f.entries(11, 11));
  REQUIRE(f.wait_applied(1, 11));
  REQUIRE(got.size() == 1);
  CHECK(!got[0].is_ok());
  CHECK(got[0].message().rfind("RecoverFromSnapshot: ", 0) == 0);
  CHECK(got[0].message().find(dir.path + "/nope") != std::string::npos);
  // Grown between the call and its turn in the FIFO.
  const std::string path = dir.file("snap", snapshot_bytes(1000));
  f.app.hold = true;
  f.enqueue(1, f.entries(12, 12));
  REQUIRE(run_until(*f.reactor, [&] { return f.app.held.size() == 1; }));
  f.client->recover_from_snapshot(GroupId(1), LogIndex(20), path,
                                  [&](Status s) { got.push_back(std::move(s)); });
  dir.file("snap", snapshot_bytes(1001));
  f.app.release();
  REQUIRE(run_until(*f.reactor, [&] { return got.size() == 2; }));
  CHECK(got[1].code() == Code::kIoError);
  CHECK(got[1].message().find("is 1001 bytes, was 1000") != std::string::npos);
  // Removed: the same. (The index moved on even though the call failed: the node retries
  // with a good file or drops the group.)
  f.enqueue(1, f.entries(21, 21));
  REQUIRE(run_until(*f.reactor, [&] { return f.app.held.size() == 1; }));
  f.client->recover_from_snapshot(GroupId(1), LogIndex(30), path,
                                  [&](Status s) { got.push_back(std::move(s)); });
  std::filesystem::remove(path);
  f.app.release();
  REQUIRE(run_until(*f.reactor, [&] { return got.size() == 3; }));
  CHECK(!got[2].is_ok());
  // Never sent, never retried, and the group goes on after them.
  CHECK(f.app.calls_to("/RecoverFromSnapshot").empty());
  CHECK(f.client->health(GroupId(1)).healthy);
  f.app.hold = false;
  f.enqueue(1, f.entries(31, 31));
  REQUIRE(f.wait_applied(1, 31));
}

}  // namespace raftd::app

namespace raftd::app {

TEST_CASE("app::AppClient: no snapshot callback runs after drop_group or close") {
  TempDir dir;
  const std::string path = dir.file("snap", snapshot_bytes(100 * 1024));
  Fixture f;
  f.app.hold = true;
  f.app.save_bytes = 4 * 1024 * 1024;
  bool called = false;
  // Group 1: a recovery at the app and a prepare behind it, then the group is dropped.
  f.client->recover_from_snapshot(GroupId(1), LogIndex(50), path, [&](Status) { called = true; });
  f.client->prepare_snapshot(GroupId(1), [&](Result<SnapshotContext>) { called = true; });
  REQUIRE(run_until(*f.reactor, [&] { return f.app.held.size() == 1; }));
  f.client->drop_group(GroupId(1));
  // Taken up again at once: its first call waits for the dropped recovery to end.
  f.enqueue(1, f.entries(7, 7));
  run_for(*f.reactor, 50ms);
  CHECK(f.app.calls_to("/UpdateEntries").empty());
  f.app.release();
  REQUIRE(run_until(*f.reactor, [&] { return f.app.held.size() == 1; }));
  CHECK(f.app.order == std::vector<std::string>{"1 RecoverFromSnapshot N50"});
  CHECK(f.app.recovered[1] == snapshot_bytes(100 * 1024));
  f.app.release();
  REQUIRE(f.wait_applied(1, 7));
  CHECK(f.app.calls_to("/PrepareSnapshot").empty());
  // Group 2: a paused save and a held prepare when the client closes.
  SaveRun save;
  save.start(*f.client, GroupId(2), "ctx");
  f.client->prepare_snapshot(GroupId(2), [&](Result<SnapshotContext>) { called = true; });
  REQUIRE(run_until(*f.reactor, [&] { return save.paused && f.app.held.size() == 1; }));
  f.client->close();
  REQUIRE(run_until(*f.reactor, [&] { return f.client->closed(); }));
  f.app.release();
  run_for(*f.reactor, 30ms);
  CHECK(!called);
  CHECK(!save.done.has_value());
}

}  // namespace raftd::app
