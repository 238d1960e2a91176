// NodeImpl, continued: Idempotency-Key (include/raftd/node/idempotency.h). The keys of this
// node's logs, the journal that carries keys and results across restarts, and the retries that
// wait for the entry carrying their key.
#include <fmt/format.h>

#include "node/node_impl.h"
#include "raftd/base/log.h"

namespace raftd::node {
namespace {

constexpr const char* kJournalFile = "/idempotency";
// Reading a group's log above its journal watermark at start-up: bytes of payload per WAL read.
constexpr uint64_t kScanReadBytes = 4ull << 20;

}  // namespace

// Start-up, after the WAL is open and before any group starts: the journal's keys and results
// up to each group's watermark, then a fresh file holding only what is retained.
Status NodeImpl::open_journal() {
  const std::string path = cfg_.node.data_dir + kJournalFile;
  auto st = ResultsJournal::load(path);
  if (!st) return st.status();
  if (st->ignored_bytes > 0) {
    log::warn("idempotency journal: {} bytes after the first damaged record ignored ({})",
              st->ignored_bytes, path);
  }
  for (auto& [g, records] : st->keys) {
    for (JournalState::KeyRecord& r : records) {
      keys_.note(g, r.index, r.key);
      if (r.result) keys_.set_result(g, r.index, std::move(*r.result));
    }
  }
  journal_mark_ = std::move(st->watermark);
  for (const auto& [g, w] : journal_mark_) keys_.trim(g, w);
  journal_ = std::make_unique<ResultsJournal>(path);
  return journal_->rewrite(keys_, journal_mark_);
}

// A group starts: its keys above the journal's watermark are read from the log. Those the app
// has already applied (at or below the group's applied index) are journaled without a result
// (this process never saw it), so that the journal again holds every key up to its watermark.
void NodeImpl::scan_keys(GroupId g) {
  auto info = wal_->group(g);
  if (!info) return;
  const LogIndex mark = journal_mark_.contains(g) ? journal_mark_[g] : LogIndex(0);
  LogIndex lo = std::max(mark, info->mark.index) + 1;
  const LogIndex applied = applied_[g];
  size_t found = 0;
  while (lo <= info->last_index) {
    auto es = wal_->read(g, lo, info->last_index + 1, kScanReadBytes);
    if (!es) {
      log::error("group {}: reading its log for idempotency keys: {}", g.value(),
                 es.status().to_string());
      return;
    }
    for (const wal::Entry& e : *es) {
      if (e.type == static_cast<uint16_t>(raft::EntryType::kNormal)) {
        auto env = decode_envelope(e.data);
        if (env && env->kind == EntryKind::kApp && !env->key.empty()) {
          keys_.note(g, e.index, env->key);
          ++found;
          if (e.index <= applied) journal_->add_key(g, e.index, env->key, std::nullopt);
        }
      }
      lo = e.index + 1;
    }
  }
  if (applied > mark) {
    journal_->add_watermark(g, applied);
    journal_mark_[g] = applied;
  }
  if (found > 0) log::debug("group {}: {} idempotency keys read from the log", g.value(), found);
}

void NodeImpl::on_log_entries(GroupId g, const std::vector<raft::Entry>& entries) {
  if (g == GroupId(0)) return;
  keys_.cut(g, entries.front().index);
  uint64_t& bytes = log_bytes_[g];
  for (const raft::Entry& e : entries) {
    bytes += e.data.size();
    if (e.type != raft::EntryType::kNormal) continue;
    auto env = decode_envelope(e.data);
    if (env && env->kind == EntryKind::kApp && !env->key.empty()) keys_.note(g, e.index, env->key);
  }
}

// The app applied entries of g through `last`: the keyed ones get their results, in the table
// and the journal, and the retries waiting for them are answered.
void NodeImpl::journal_applied(GroupId g, LogIndex last, const std::vector<app::Record>& results) {
  LogIndex last_key(0);
  const LogIndex app_start_index = app_start(g);
  for (const app::Record& r : results) {
    auto key = keys_.key_at(g, r.index);
    if (!key) continue;
    last_key = r.index;
    std::optional<std::string> result = r.data;
    if (r.index <= app_start_index) {
      // Applied before this process started, delivered again and skipped by the app (API.md
      // 3.1): its answer is not the result. The journal's result stands, if it had one.
      const KeyTable::Slot* slot = keys_.find(g, *key);
      result = slot != nullptr && slot->index == r.index ? slot->result : std::nullopt;
    }
    journal_->add_key(g, r.index, *key, result);
    if (result) keys_.set_result(g, r.index, *result);
    auto [lo, hi] = keyed_waits_.equal_range({g, r.index});
    std::vector<uint64_t> rids;
    for (auto it = lo; it != hi;) {
      if (it->second.second != *key) {
        ++it;  // another key's retry: failed below
        continue;
      }
      rids.push_back(it->second.first);
      it = keyed_waits_.erase(it);
    }
    for (uint64_t rid : rids) finish_keyed(rid, r.index, result);
  }
  // A kKey record marks its own index; a watermark says the same for the entries after it.
  LogIndex& mark = journal_mark_[g];
  if (last <= mark) {
    // Entries delivered again below what the journal already covers (an app that lost them).
  } else if (last_key == last) {
    mark = last;
  } else if (last_key > LogIndex(0) || last - mark >= ResultsJournal::kWatermarkEvery) {
    journal_->add_watermark(g, last);
    mark = last;
  }
  keys_.trim(g, last);
  // Retries that waited for an index this node has now applied, whose entry carried another key
  // (the log was cut and refilled there): their key's entry was never committed.
  auto lo = keyed_waits_.lower_bound({g, LogIndex(0)});
  auto hi = keyed_waits_.upper_bound({g, last});
  std::vector<uint64_t> cut;
  for (auto it = lo; it != hi; ++it) cut.push_back(it->second.first);
  keyed_waits_.erase(lo, hi);
  for (uint64_t rid : cut) {
    fail_waiter(rid, 503, "unavailable",
                "the entry with this Idempotency-Key was not committed; retry");
  }
  if (journal_->rewrite_due(keys_.bytes())) {
    if (Status s = journal_->rewrite(keys_, journal_mark_); !s.is_ok()) {
      log::error("idempotency journal: rewrite: {}", s.to_string());
    }
  }
}

// A retry whose key is in this node's log at `index`: answered now if this node knows the
// result, as lost if it applied the entry without learning it (before a restart whose journal
// lost it), else when its app applies the entry.
void NodeImpl::await_keyed(uint64_t rid, GroupId g, LogIndex index, std::string key) {
  const KeyTable::Slot* slot = keys_.find(g, key);
  if (slot != nullptr && slot->index == index && slot->result) {
    return finish_keyed(rid, index, slot->result);
  }
  // Applied here without its result known (or forgotten since): the result is lost.
  if (applied_[g] >= index) return finish_keyed(rid, index, std::nullopt);
  keyed_waits_.emplace(std::pair{g, index}, std::pair{rid, std::move(key)});
  waiters_.at(rid).keyed_at = index;
}

// Every waiter leaves through here: a replay's place in keyed_waits_ goes with it, so clients
// that give up (abort, timeout) on a group that does not progress leave nothing behind.
void NodeImpl::erase_waiter(std::unordered_map<uint64_t, Waiter>::iterator it) {
  if (it->second.keyed_at > LogIndex(0)) {
    auto [lo, hi] = keyed_waits_.equal_range({it->second.group, it->second.keyed_at});
    for (auto k = lo; k != hi; ++k) {
      if (k->second.first == it->first) {
        keyed_waits_.erase(k);
        break;
      }
    }
  }
  if (it->second.conf_applied > LogIndex(0)) --relays_waiting_;
  waiters_.erase(it);
}

void NodeImpl::finish_keyed(uint64_t rid, LogIndex index, const std::optional<std::string>& r) {
  auto it = waiters_.find(rid);
  if (it == waiters_.end()) return;
  http::Exchange& ex = *it->second.ex;
  ex.add_header("Raftd-Replayed", "true");
  if (!r) ex.add_header("Raftd-Result", "lost");
  finish_waiter(rid, 200, r.value_or(""), "application/octet-stream", index);
}

}  // namespace raftd::node
