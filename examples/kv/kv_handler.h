// raftd-kv's HTTP side: the application contract (API.md section 3) over the Store and the Log.
//
// Every call is checked in this order, and answered at once when a check fails (the body, if
// any, is then dropped by the server): token (401), path (404), method (405), Raftd-Group
// (400); for UpdateEntries also Content-Type (415) and Raftd-Last-Index (400); for
// PrepareSnapshot and RecoverFromSnapshot Raftd-Index (400); a declared body over the call's
// limit (413: app::kBatchBytesMax, kSnapshotBytesMax for RecoverFromSnapshot). Otherwise the body
// is collected (RecoverFromSnapshot: parsed as it arrives, never held whole) and the call runs
// when it has arrived:
//   UpdateEntries: decode and check the whole batch (400 and no change if it fails), apply it
//     to the Store, append its record to the Log, and answer: without --sync-mode once the
//     record is durable (the Log's group commit), with --sync-mode at once.
//   PrepareSnapshot: 409 unless the group's applied index is Raftd-Index; else a copy of the
//     group's map is kept and its context (a short text) answered.
//   SaveSnapshot: 404 for a context the Store does not know (for this group); else 200 and the
//     snapshot (kv_snapshot.h) streamed chunked, a piece at a time: a piece is written while the
//     server's send buffer takes it, and the rest waits for on_drained.
//   RecoverFromSnapshot: the snapshot is parsed and checked as it arrives (400 at the first
//     fault, or at the end if it is cut short; nothing changes); once whole, one reset record
//     holding the new state is appended to the Log, the Store's group replaced, and the call
//     answered once the record is durable (also with --sync-mode: the contract wants it durable).
//   Sync: answer once everything appended before it is durable.
//   LastLogIndex, GetEntry: answer from memory at once.
//
// Threading: reactor thread only. Lifetime: outlives the Server; an exchange waiting for the
// Log is forgotten when the server aborts it; a snapshot being streamed belongs to its exchange.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

#include "kv_log.h"
#include "kv_store.h"
#include "raftd/http/server.h"

namespace raftd::kv {

struct HandlerOptions {
  std::optional<std::string> token;  // required as "Authorization: Bearer <token>" when set
  bool sync_mode = false;            // durability on POST /Sync instead of per batch
};

class KvHandler final : public http::Handler {
 public:
  KvHandler(Store& store, Log& log, HandlerOptions options);

  void on_headers(http::Exchange& ex) override;
  http::Flow on_body(http::Exchange& ex, std::string_view chunk) override;
  void on_end(http::Exchange& ex) override;
  void on_aborted(http::Exchange& ex) override;
  void on_drained(http::Exchange& ex) override;

  // Exchanges answered once the Log has written what they wait for.
  std::size_t waiting() const { return waiting_.size(); }

 private:
  enum class Route {
    kLastLogIndex,
    kUpdateEntries,
    kGetEntry,
    kSync,
    kPrepareSnapshot,
    kSaveSnapshot,
    kRecoverFromSnapshot,
  };
  struct Call;  // the ExchangeContext of a call that reads its body

  void update_entries(http::Exchange& ex, Call& call);
  void get_entry(http::Exchange& ex, Call& call);
  void prepare_snapshot(http::Exchange& ex, Call& call);
  void save_snapshot(http::Exchange& ex, Call& call);
  void recover_from_snapshot(http::Exchange& ex, Call& call);
  // Writes snapshot pieces while the server takes them; finishes after the last.
  void pump_snapshot(http::Exchange& ex, Call& call);
  // Answers `ex` with 200 and `body` once the Log has written (and synced) what was appended
  // so far; runs `then` first, whether or not the exchange is still there.
  void answer_when_durable(http::Exchange& ex, Call& call, std::string body,
                           std::string_view content_type, std::function<void()> then);

  Store& store_;
  Log& log_;
  HandlerOptions options_;
  std::uint64_t next_ticket_ = 1;
  std::unordered_map<std::uint64_t, http::Exchange*> waiting_;
};

}  // namespace raftd::kv
