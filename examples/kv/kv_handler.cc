#include "kv_handler.h"

#include <array>
#include <memory>
#include <nlohmann/json.hpp>
#include <utility>

#include "kv_snapshot.h"

namespace raftd::kv {

using json = nlohmann::json;

struct KvHandler::Call final : http::ExchangeContext {
  Route route = Route::kLastLogIndex;
  GroupId group;
  app::Encoding encoding = app::Encoding::kBinary;
  LogIndex last_index;  // Raftd-Last-Index (UpdateEntries)
  LogIndex index;       // Raftd-Index (PrepareSnapshot, RecoverFromSnapshot)
  std::string body;     // bounded by app::kBatchBytesMax (413 beyond); unused by Recover
  std::uint64_t ticket = 0;
  std::unique_ptr<SnapshotWriter> writer;  // SaveSnapshot, while streaming
  std::unique_ptr<SnapshotParser> parser;  // RecoverFromSnapshot
};

namespace {

constexpr std::string_view kJson = "application/json";

struct Endpoint {
  std::string_view path;
  std::string_view method;
  int route;  // KvHandler::Route
};

// Paths are exactly those of API.md section 3.
constexpr std::array<Endpoint, 7> kEndpoints{{
    {"/LastLogIndex", "GET", 0},
    {"/UpdateEntries", "POST", 1},
    {"/GetEntry", "GET", 2},
    {"/Sync", "POST", 3},
    {"/PrepareSnapshot", "POST", 4},
    {"/SaveSnapshot", "POST", 5},
    {"/RecoverFromSnapshot", "POST", 6},
}};

void respond_error(http::Exchange& ex, int status, std::string_view code,
                   std::string_view message) {
  const json body{{"error", std::string(code)}, {"message", std::string(message)}};
  // replace: a codec message may quote bytes of the request that are not UTF-8.
  ex.respond(status, body.dump(-1, ' ', false, json::error_handler_t::replace), kJson);
}

// Compares without an early exit, so the time taken does not tell how much of a guess matched.
bool equal_secret(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

// The media type of a Content-Type value, without parameters or spaces.
std::string_view media_type(std::string_view v) {
  v = v.substr(0, v.find(';'));
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  return v;
}

}  // namespace

KvHandler::KvHandler(Store& store, Log& log, HandlerOptions options)
    : store_(store), log_(log), options_(std::move(options)) {}

void KvHandler::on_headers(http::Exchange& ex) {
  const http::Request& req = ex.request();
  if (options_.token) {
    const auto auth = req.header("Authorization");
    if (!auth || !equal_secret(*auth, "Bearer " + *options_.token)) {
      return respond_error(ex, 401, "unauthorized", "missing or wrong bearer token");
    }
  }
  const Endpoint* ep = nullptr;
  for (const Endpoint& e : kEndpoints) {
    if (req.target == e.path) ep = &e;
  }
  if (ep == nullptr) return respond_error(ex, 404, "not_found", "no endpoint " + req.target);
  if (req.method != ep->method) {
    return respond_error(ex, 405, "method_not_allowed",
                         std::string(ep->path) + " takes " + std::string(ep->method));
  }
  Result<LogIndex> group = app::parse_index(req.header("Raftd-Group").value_or(""));
  if (!group) {
    return respond_error(ex, 400, "bad_request", "Raftd-Group: " + group.status().message());
  }
  auto call = std::make_unique<Call>();
  call->route = static_cast<Route>(ep->route);
  call->group = GroupId(group->value());
  if (call->route == Route::kPrepareSnapshot || call->route == Route::kRecoverFromSnapshot) {
    Result<LogIndex> index = app::parse_index(req.header("Raftd-Index").value_or(""));
    if (!index) {
      return respond_error(ex, 400, "bad_request", "Raftd-Index: " + index.status().message());
    }
    call->index = *index;
    if (call->route == Route::kRecoverFromSnapshot) {
      call->parser = std::make_unique<SnapshotParser>(call->group, call->index);
    }
  }
  if (call->route == Route::kUpdateEntries) {
    const std::string_view type = media_type(req.header("Content-Type").value_or(""));
    if (http::iequals(type, app::kBinaryContentType)) {
      call->encoding = app::Encoding::kBinary;
    } else if (http::iequals(type, app::kJsonContentType)) {
      call->encoding = app::Encoding::kJson;
    } else {
      return respond_error(ex, 415, "unsupported_media_type",
                           "Content-Type must be application/vnd.raftd.entries or "
                           "application/json");
    }
    Result<LogIndex> last = app::parse_index(req.header("Raftd-Last-Index").value_or(""));
    if (!last) {
      return respond_error(ex, 400, "bad_request", "Raftd-Last-Index: " + last.status().message());
    }
    call->last_index = *last;
  }
  // The server takes bodies up to kSnapshotBytesMax (a snapshot's); every other body is held in
  // memory and must fit app::kBatchBytesMax.
  const std::uint64_t body_max =
      call->route == Route::kRecoverFromSnapshot ? kSnapshotBytesMax : app::kBatchBytesMax;
  if (auto length = req.header("Content-Length")) {
    Result<LogIndex> n = app::parse_index(*length);
    if (n && n->value() > body_max) {
      return respond_error(ex, 413, "too_large",
                           "body over " + std::to_string(body_max) + " bytes");
    }
  }
  ex.set_context(std::move(call));
}

http::Flow KvHandler::on_body(http::Exchange& ex, std::string_view chunk) {
  auto* call = static_cast<Call*>(ex.context());
  if (call == nullptr || ex.finished()) return http::Flow::kContinue;
  if (call->parser) {
    // A snapshot is checked as it arrives and never held whole; the first fault answers.
    if (Status s = call->parser->feed(chunk); !s) {
      const bool too_large = s.code() == Code::kTooLarge;
      respond_error(ex, too_large ? 413 : 400, too_large ? "too_large" : "bad_snapshot",
                    s.message());
      call->parser.reset();  // what it read so far is of no use; the rest is dropped unread
    }
    return http::Flow::kContinue;
  }
  if (call->body.size() + chunk.size() > app::kBatchBytesMax) {
    respond_error(ex, 413, "too_large",
                  "body over " + std::to_string(app::kBatchBytesMax) + " bytes");
    std::string().swap(call->body);
    return http::Flow::kContinue;
  }
  call->body.append(chunk);
  return http::Flow::kContinue;
}

void KvHandler::on_end(http::Exchange& ex) {
  auto* call = static_cast<Call*>(ex.context());
  if (ex.finished() || call == nullptr) return;  // answered from on_headers
  switch (call->route) {
    case Route::kLastLogIndex:
      return ex.respond(200, std::to_string(store_.durable_index(call->group).value()));
    case Route::kUpdateEntries: return update_entries(ex, *call);
    case Route::kGetEntry: return get_entry(ex, *call);
    case Route::kSync: return answer_when_durable(ex, *call, "", "text/plain", nullptr);
    case Route::kPrepareSnapshot: return prepare_snapshot(ex, *call);
    case Route::kSaveSnapshot: return save_snapshot(ex, *call);
    case Route::kRecoverFromSnapshot: return recover_from_snapshot(ex, *call);
  }
}

void KvHandler::on_drained(http::Exchange& ex) {
  if (auto* call = static_cast<Call*>(ex.context()); call != nullptr && call->writer) {
    pump_snapshot(ex, *call);
  }
}

void KvHandler::on_aborted(http::Exchange& ex) {
  if (auto* call = static_cast<Call*>(ex.context()); call != nullptr && call->ticket != 0) {
    waiting_.erase(call->ticket);
  }
}

void KvHandler::update_entries(http::Exchange& ex, Call& call) {
  Result<app::EntryBatch> batch = app::decode_entries(call.encoding, call.body);
  if (!batch) {
    const bool too_large = batch.status().code() == Code::kTooLarge;
    return respond_error(ex, too_large ? 413 : 400, too_large ? "too_large" : "bad_request",
                         batch.status().message());
  }
  if (call.encoding == app::Encoding::kBinary) {
    batch->last_index = call.last_index;  // not in a binary body
  } else if (batch->last_index != call.last_index) {
    return respond_error(ex, 400, "bad_request", "last_index differs from Raftd-Last-Index");
  }
  if (!batch->entries.empty() && batch->entries.back().index > batch->last_index) {
    return respond_error(ex, 400, "bad_request", "an entry is above Raftd-Last-Index");
  }
  BatchOutcome out = store_.apply_batch(call.group, *batch);
  if (out.changed) log_.append(encode_record(out.record));
  std::string body = app::encode_results(call.encoding, out.results);
  const GroupId group = call.group;
  const LogIndex index = out.record.last_index;
  if (options_.sync_mode) {
    // Durability waits for /Sync; the app reports what it applied (kv_store.h).
    store_.mark_durable(group, index);
    return ex.respond(200, body, app::content_type(call.encoding));
  }
  answer_when_durable(ex, call, std::move(body), app::content_type(call.encoding),
                      [this, group, index] { store_.mark_durable(group, index); });
}

void KvHandler::get_entry(http::Exchange& ex, Call& call) {
  const std::optional<std::string> key = parse_get_query(call.body);
  if (!key) return ex.respond(400, R"({"error":"bad_query","ok":false})", kJson);
  const std::string* value = store_.get(call.group, *key);
  if (value == nullptr) return ex.respond(404, R"({"error":"not_found","ok":false})", kJson);
  ex.respond(200, *value, "application/octet-stream");
}

void KvHandler::prepare_snapshot(http::Exchange& ex, Call& call) {
  // raftd calls this with the group's state exactly at Raftd-Index (API.md 3.1); anything else
  // would label a snapshot with the wrong index.
  const LogIndex applied = store_.applied_index(call.group);
  if (applied != call.index) {
    return respond_error(ex, 409, "index_mismatch",
                         "the group is at " + std::to_string(applied.value()) +
                             ", not Raftd-Index " + std::to_string(call.index.value()));
  }
  ex.respond(200, store_.prepare_snapshot(call.group), "text/plain");
}

void KvHandler::save_snapshot(http::Exchange& ex, Call& call) {
  std::shared_ptr<const SnapshotImage> image = store_.find_snapshot(call.group, call.body);
  if (!image) {
    return respond_error(ex, 404, "unknown_snapshot",
                         "no prepared snapshot of this group has that context (it may have been "
                         "dropped for newer ones)");
  }
  call.writer = std::make_unique<SnapshotWriter>(std::move(image));
  ex.set_status(200);
  ex.add_header("Content-Type", "application/octet-stream");
  pump_snapshot(ex, call);
}

void KvHandler::pump_snapshot(http::Exchange& ex, Call& call) {
  std::string piece;
  for (;;) {
    piece.clear();
    if (!call.writer->next(piece)) break;
    if (!ex.write_body(piece)) return;  // on_drained goes on
  }
  call.writer.reset();
  ex.finish();
}

void KvHandler::recover_from_snapshot(http::Exchange& ex, Call& call) {
  if (Status s = call.parser->finish(); !s) {
    return respond_error(ex, 400, "bad_snapshot", s.message());
  }
  KvMap pairs = std::move(call.parser->pairs());
  call.parser.reset();
  log_.append(encode_reset_record(call.group, call.index, pairs));
  store_.reset(call.group, call.index, std::move(pairs));
  const GroupId group = call.group;
  const LogIndex index = call.index;
  // Durable before the answer in either mode: the contract asks RecoverFromSnapshot for it.
  answer_when_durable(ex, call, "", "text/plain",
                      [this, group, index] { store_.mark_durable(group, index); });
}

void KvHandler::answer_when_durable(http::Exchange& ex, Call& call, std::string body,
                                    std::string_view content_type, std::function<void()> then) {
  const std::uint64_t ticket = next_ticket_++;
  call.ticket = ticket;
  waiting_.emplace(ticket, &ex);
  log_.when_written(true, [this, ticket, body = std::move(body), type = std::string(content_type),
                           then = std::move(then)] {
    if (then) then();
    auto it = waiting_.find(ticket);
    if (it == waiting_.end()) return;  // the client went away; the batch is durable anyway
    http::Exchange* waiter = it->second;
    waiting_.erase(it);
    waiter->respond(200, body, type);
  });
}

}  // namespace raftd::kv
