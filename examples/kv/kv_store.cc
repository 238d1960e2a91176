#include "kv_store.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>

namespace raftd::kv {

using json = nlohmann::json;

namespace {

// The JSON object in `text`, or a discarded value when `text` is not one. Strict RFC 8259:
// invalid UTF-8, lone surrogates, NaN and trailing bytes are all rejected.
json parse_object(std::string_view text) {
  json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return json(json::value_t::discarded);
  return doc;
}

const std::string* string_member(const json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || !it->is_string()) return nullptr;
  return &it->get_ref<const std::string&>();
}

json prev_value(const std::string* prev) { return prev != nullptr ? json(*prev) : json(nullptr); }

}  // namespace

std::optional<Command> parse_command(std::string_view data) {
  const json doc = parse_object(data);
  if (doc.is_discarded()) return std::nullopt;
  const std::string* op = string_member(doc, "op");
  const std::string* key = string_member(doc, "key");
  if (op == nullptr || key == nullptr) return std::nullopt;
  Command c{Command::Op::kPut, *key, {}, std::nullopt};
  if (*op == "delete") {
    c.op = Command::Op::kDelete;
    return c;
  }
  if (*op != "put" && *op != "cas") return std::nullopt;
  const std::string* value = string_member(doc, "value");
  if (value == nullptr) return std::nullopt;
  c.value = *value;
  if (*op == "cas") {
    c.op = Command::Op::kCas;
    auto it = doc.find("expected");
    if (it == doc.end() || !(it->is_null() || it->is_string())) return std::nullopt;
    if (it->is_string()) c.expected = it->get<std::string>();
  }
  return c;
}

std::optional<std::string> parse_get_query(std::string_view body) {
  const json doc = parse_object(body);
  if (doc.is_discarded()) return std::nullopt;
  const std::string* op = string_member(doc, "op");
  const std::string* key = string_member(doc, "key");
  if (op == nullptr || *op != "get" || key == nullptr) return std::nullopt;
  return *key;
}

// nlohmann's json objects keep their members sorted and dump() writes no spaces and leaves
// UTF-8 unescaped: the canonical form of examples/README.md.
std::string result_ok(const std::string* prev) {
  return json{{"ok", true}, {"prev", prev_value(prev)}}.dump();
}

std::string result_cas_failed(const std::string* prev) {
  return json{{"ok", false}, {"error", "cas_failed"}, {"prev", prev_value(prev)}}.dump();
}

std::string result_bad_command() { return json{{"ok", false}, {"error", "bad_command"}}.dump(); }

BatchOutcome Store::apply_batch(GroupId group, const app::EntryBatch& batch) {
  Group& g = groups_[group];
  BatchOutcome out;
  out.results.reserve(batch.entries.size());
  for (const app::Record& e : batch.entries) {
    if (e.index <= g.applied) {
      out.results.push_back(app::Record{e.index, {}});  // applied before: never twice
    } else {
      out.results.push_back(app::Record{e.index, apply_command(g, e.data, out.record.changes)});
    }
  }
  out.changed = batch.last_index > g.applied;
  g.applied = std::max(g.applied, batch.last_index);
  out.record.group = group;
  out.record.last_index = g.applied;
  return out;
}

std::string Store::apply_command(Group& g, std::string_view data, std::vector<Change>& changes) {
  std::optional<Command> c = parse_command(data);
  if (!c) return result_bad_command();
  auto it = g.data.find(c->key);
  const std::string* prev = it == g.data.end() ? nullptr : &it->second;
  if (c->op == Command::Op::kCas &&
      (prev == nullptr ? c->expected.has_value() : c->expected != *prev)) {
    return result_cas_failed(prev);
  }
  std::string result = result_ok(prev);
  if (c->op == Command::Op::kDelete) {
    if (it != g.data.end()) g.data.erase(it);
    changes.push_back(Change{ChangeKind::kDelete, std::move(c->key), {}});
  } else {
    g.data.insert_or_assign(c->key, c->value);
    changes.push_back(Change{ChangeKind::kPut, std::move(c->key), std::move(c->value)});
  }
  return result;
}

void Store::replay(LogRecord&& record) {
  Group& g = groups_[record.group];
  const bool reset = is_reset(record);
  for (Change& c : record.changes) {
    if (c.kind == ChangeKind::kReset) {
      g.data.clear();
    } else if (c.kind == ChangeKind::kPut) {
      g.data.insert_or_assign(std::move(c.key), std::move(c.value));
    } else {
      g.data.erase(c.key);
    }
  }
  // A reset puts the group exactly at its index; a batch never moves it back.
  g.applied = reset ? record.last_index : std::max(g.applied, record.last_index);
  g.durable = g.applied;
}

std::string Store::prepare_snapshot(GroupId group) {
  Group& g = groups_[group];
  auto image = std::make_shared<SnapshotImage>(SnapshotImage{group, g.applied, g.data});
  std::string context = "raftd-kv snapshot " + std::to_string(next_snapshot_++) + " of group " +
                        std::to_string(group.value()) + " at " + std::to_string(g.applied.value());
  if (g.snapshots.size() == kSnapshotContextsPerGroup) g.snapshots.pop_front();
  g.snapshots.push_back(Snapshot{context, std::move(image)});
  return context;
}

std::shared_ptr<const SnapshotImage> Store::find_snapshot(GroupId group, std::string_view context) {
  auto it = groups_.find(group);
  if (it == groups_.end()) return nullptr;
  for (const Snapshot& s : it->second.snapshots) {
    if (s.context == context) return s.image;
  }
  return nullptr;
}

void Store::reset(GroupId group, LogIndex index, KvMap pairs) {
  Group& g = groups_[group];
  g.data = std::move(pairs);
  g.applied = index;
  g.durable = std::min(g.durable, index);
}

void Store::mark_durable(GroupId group, LogIndex index) {
  Group& g = groups_[group];
  g.durable = std::max(g.durable, index);
}

LogIndex Store::applied_index(GroupId group) const {
  auto it = groups_.find(group);
  return it == groups_.end() ? LogIndex() : it->second.applied;
}

LogIndex Store::durable_index(GroupId group) const {
  auto it = groups_.find(group);
  return it == groups_.end() ? LogIndex() : it->second.durable;
}

const std::string* Store::get(GroupId group, const std::string& key) const {
  auto g = groups_.find(group);
  if (g == groups_.end()) return nullptr;
  auto it = g->second.data.find(key);
  return it == g->second.data.end() ? nullptr : &it->second;
}

}  // namespace raftd::kv
