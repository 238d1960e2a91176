#include "lincheck.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <unordered_map>
#include <unordered_set>

namespace raftd::lincheck {
namespace {

using nlohmann::json;

Status invalid(size_t line, std::string_view what) {
  return Status(Code::kInvalidArgument, fmt::format("line {}: {}", line, what));
}

bool is_scalar(const json& v) { return v.is_null() || v.is_primitive(); }

bool is_cas_value(const json& v) {
  return v.is_array() && v.size() == 2 && is_scalar(v[0]) && is_scalar(v[1]);
}

std::optional<EventType> parse_type(std::string_view s) {
  if (s == "invoke") return EventType::kInvoke;
  if (s == "ok") return EventType::kOk;
  if (s == "fail") return EventType::kFail;
  if (s == "info") return EventType::kInfo;
  return std::nullopt;
}

std::optional<OpKind> parse_kind(std::string_view s) {
  if (s == "read") return OpKind::kRead;
  if (s == "write") return OpKind::kWrite;
  if (s == "cas") return OpKind::kCas;
  return std::nullopt;
}

// JSON numbers compare by value: 1 and 1.0 are the same register value.
std::string canonical(const json& v) {
  if (v.is_number_float()) {
    const double d = v.get<double>();
    constexpr double kInt64Bound = 9.2e18;  // safely inside int64_t
    if (d == static_cast<double>(static_cast<int64_t>(d)) && d > -kInt64Bound && d < kInt64Bound) {
      return json(static_cast<int64_t>(d)).dump();
    }
  }
  return v.dump();
}

Result<int64_t> get_int(const json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end()) return Status(Code::kInvalidArgument, fmt::format("missing \"{}\"", name));
  if (!it->is_number_integer()) {
    return Status(Code::kInvalidArgument, fmt::format("\"{}\" must be an integer", name));
  }
  if (it->is_number_unsigned() && it->get<uint64_t>() > uint64_t{INT64_MAX}) {
    return Status(Code::kInvalidArgument, fmt::format("\"{}\" is out of range", name));
  }
  return it->get<int64_t>();
}

Result<std::optional<std::string>> get_string(const json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end()) return std::optional<std::string>();
  if (!it->is_string()) {
    return Status(Code::kInvalidArgument, fmt::format("\"{}\" must be a string", name));
  }
  return std::optional<std::string>(it->get<std::string>());
}

}  // namespace

std::string_view event_type_name(EventType t) {
  switch (t) {
    case EventType::kInvoke: return "invoke";
    case EventType::kOk: return "ok";
    case EventType::kFail: return "fail";
    case EventType::kInfo: return "info";
  }
  return "?";
}

std::string_view op_kind_name(OpKind k) {
  switch (k) {
    case OpKind::kRead: return "read";
    case OpKind::kWrite: return "write";
    case OpKind::kCas: return "cas";
  }
  return "?";
}

Result<Event> parse_event(std::string_view line) {
  json obj = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (obj.is_discarded()) return Status(Code::kInvalidArgument, "not valid JSON");
  if (!obj.is_object()) return Status(Code::kInvalidArgument, "not a JSON object");
  Event ev;
  auto process = get_int(obj, "process");
  if (!process) return process.status();
  ev.process = *process;
  auto time = get_int(obj, "time");
  if (!time) return time.status();
  ev.time = *time;
  auto type = get_string(obj, "type");
  if (!type) return type.status();
  if (!type->has_value()) return Status(Code::kInvalidArgument, "missing \"type\"");
  auto parsed_type = parse_type(**type);
  if (!parsed_type) {
    return Status(Code::kInvalidArgument, fmt::format("unknown type \"{}\"", **type));
  }
  ev.type = *parsed_type;
  auto f = get_string(obj, "f");
  if (!f) return f.status();
  if (f->has_value()) {
    ev.f = parse_kind(**f);
    if (!ev.f) return Status(Code::kInvalidArgument, fmt::format("unknown f \"{}\"", **f));
  }
  auto key = get_string(obj, "key");
  if (!key) return key.status();
  ev.key = std::move(*key);
  if (auto it = obj.find("value"); it != obj.end()) ev.value = *it;
  return ev;
}

std::string to_json_line(const Event& ev) {
  json obj;
  obj["process"] = ev.process;
  obj["type"] = event_type_name(ev.type);
  if (ev.f) obj["f"] = op_kind_name(*ev.f);
  if (ev.key) obj["key"] = *ev.key;
  obj["value"] = ev.value;
  obj["time"] = ev.time;
  return obj.dump();
}

Status HistoryBuilder::add(const Event& ev, size_t line) {
  auto out = outstanding_.find(ev.process);
  if (ev.type == EventType::kInvoke) {
    if (out != outstanding_.end()) {
      return invalid(line, fmt::format("process {} invokes while its operation from line {} is "
                                       "outstanding",
                                       ev.process, ops_[out->second].invoke_line));
    }
    if (!ev.f) return invalid(line, "invoke without \"f\"");
    if (!ev.key) return invalid(line, "invoke without \"key\"");
    if (*ev.f == OpKind::kRead && !ev.value.is_null()) {
      return invalid(line, "read invoke value must be null");
    }
    if (*ev.f == OpKind::kWrite && !is_scalar(ev.value)) {
      return invalid(line, "write value must be a JSON scalar");
    }
    if (*ev.f == OpKind::kCas && !is_cas_value(ev.value)) {
      return invalid(line, "cas value must be [expected, new] (two scalars)");
    }
    Op op{.process = ev.process,
          .f = *ev.f,
          .key = *ev.key,
          .input = ev.value,
          .invoke_time = ev.time,
          .invoke_line = line};
    outstanding_.emplace(ev.process, ops_.size());
    ops_.push_back(std::move(op));
    return Status::ok();
  }
  if (out == outstanding_.end()) {
    return invalid(line, fmt::format("{} for process {} which has no outstanding invoke",
                                     event_type_name(ev.type), ev.process));
  }
  Op& op = ops_[out->second];
  if (ev.f && *ev.f != op.f) return invalid(line, "\"f\" differs from the invoke's");
  if (ev.key && *ev.key != op.key) return invalid(line, "\"key\" differs from the invoke's");
  if (ev.time < op.invoke_time) return invalid(line, "completion is earlier than its invoke");
  if (ev.type == EventType::kOk && op.f == OpKind::kRead) {
    if (!is_scalar(ev.value)) return invalid(line, "read result must be a JSON scalar");
    op.output = ev.value;
  }
  op.outcome = ev.type;
  if (ev.type != EventType::kInfo) op.complete_time = ev.time;
  outstanding_.erase(out);
  return Status::ok();
}

std::vector<Op> HistoryBuilder::finish() && {
  for (auto& [process, index] : outstanding_) ops_[index].outcome = EventType::kInfo;
  outstanding_.clear();
  return std::move(ops_);
}

Result<std::vector<Op>> read_history(std::istream& in) {
  HistoryBuilder builder;
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto ev = parse_event(line);
    if (!ev) return invalid(line_no, ev.status().message());
    if (Status s = builder.add(*ev, line_no); !s) return s;
  }
  if (in.bad()) return Status(Code::kIoError, "read error");
  return std::move(builder).finish();
}

// ---------------------------------------------------------------------------------------------
// The search, one key at a time.
namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();  // an info op's response time
constexpr uint32_t kNull = 0;                                    // interned id of null

// Register values interned per key as small integers, so the model state is a uint32_t.
class Interner {
 public:
  Interner() { intern(json()); }
  uint32_t intern(const json& v) {
    auto [it, inserted] = ids_.emplace(canonical(v), static_cast<uint32_t>(values_.size()));
    if (inserted) values_.push_back(v);
    return it->second;
  }
  const json& value(uint32_t id) const { return values_[id]; }

 private:
  std::unordered_map<std::string, uint32_t> ids_;
  std::vector<json> values_;
};

struct KeyOp {
  size_t op = 0;  // index into the caller's op vector
  OpKind f = OpKind::kRead;
  uint32_t a = kNull;  // read: value read; write: value; cas: expected
  uint32_t b = kNull;  // cas: new value
  bool info = false;
  int64_t call = 0;
  int64_t ret = kNever;
};

std::optional<uint32_t> step(uint32_t state, const KeyOp& op) {
  switch (op.f) {
    case OpKind::kRead: return op.a == state ? std::optional(state) : std::nullopt;
    case OpKind::kWrite: return op.a;
    case OpKind::kCas: return op.a == state ? std::optional(op.b) : std::nullopt;
  }
  return std::nullopt;
}

// Memo of visited configurations: each is a short uint32_t sequence (see KeySearch::key()),
// stored back to back in one arena and found through an open-addressing table of offsets.
class StateSet {
 public:
  StateSet() : slots_(kInitialSlots) {}
  size_t size() const { return count_; }

  // Returns false if `key` was already present.
  bool insert(const std::vector<uint32_t>& key) {
    if ((count_ + 1) * 2 > slots_.size()) grow();
    const uint64_t h = hash(key);
    for (size_t i = h & (slots_.size() - 1);; i = (i + 1) & (slots_.size() - 1)) {
      Slot& s = slots_[i];
      if (s.offset_plus1 == 0) {
        s = Slot{h, arena_.size() + 1};
        arena_.push_back(static_cast<uint32_t>(key.size()));
        arena_.insert(arena_.end(), key.begin(), key.end());
        ++count_;
        return true;
      }
      if (s.hash == h && equal(s.offset_plus1 - 1, key)) return false;
    }
  }

 private:
  static constexpr size_t kInitialSlots = 1024;  // power of two
  struct Slot {
    uint64_t hash = 0;
    uint64_t offset_plus1 = 0;  // 0: empty
  };

  static uint64_t mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  }
  static uint64_t hash(const std::vector<uint32_t>& key) {
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (uint32_t x : key) h = mix(h ^ x) + 0x9e3779b97f4a7c15ULL;
    return h;
  }
  bool equal(uint64_t offset, const std::vector<uint32_t>& key) const {
    if (arena_[offset] != key.size()) return false;
    return std::equal(key.begin(), key.end(), arena_.begin() + static_cast<ptrdiff_t>(offset) + 1);
  }
  void grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    for (const Slot& s : old) {
      if (s.offset_plus1 == 0) continue;
      size_t i = s.hash & (slots_.size() - 1);
      while (slots_[i].offset_plus1 != 0) i = (i + 1) & (slots_.size() - 1);
      slots_[i] = s;
    }
  }

  std::vector<Slot> slots_;
  std::vector<uint32_t> arena_;
  size_t count_ = 0;
};

enum class SearchOutcome { kLinearizable, kNotLinearizable, kBudget };

// Wing & Gong search over one key's operations, ids 0..n-1 in invoke order. The entries form a
// doubly linked list (node 0 is the head) of calls and returns in time order; linearizing an
// operation unlinks its call and return ("lift"), backtracking relinks them.
class KeySearch {
 public:
  KeySearch(std::vector<KeyOp> ops, size_t states_max)
      : ops_(std::move(ops)), states_max_(states_max) {
    build_list();
  }

  SearchOutcome run();
  size_t states() const { return memo_.size(); }
  size_t size() const { return ops_.size(); }
  // Valid after kNotLinearizable.
  const std::vector<uint32_t>& best_prefix() const { return best_prefix_; }
  uint32_t best_state() const { return best_state_; }
  uint32_t best_blocking() const { return best_blocking_; }
  const std::vector<uint32_t>& best_pending() const { return best_pending_; }
  const KeyOp& op(uint32_t id) const { return ops_[id]; }

 private:
  struct Node {
    uint32_t op = 0;
    bool is_return = false;
    int32_t prev = -1, next = -1;
    int32_t match = -1;  // a call's return node
  };
  struct Frame {
    int32_t call_node;
    uint32_t state;
    uint32_t bound;
    bool forced;  // no alternative to this choice is worth trying (a read)
  };

  void build_list();
  void lift(int32_t call);
  void unlift(int32_t call);
  const std::vector<uint32_t>& key();
  void record_stuck(int32_t return_node);
  int32_t backtrack();

  std::vector<KeyOp> ops_;
  size_t states_max_;
  std::vector<Node> nodes_;
  StateSet memo_;
  std::vector<Frame> stack_;
  uint32_t state_ = kNull;
  uint32_t bound_ = 0;  // 1 + the largest linearized id (0: none)
  std::vector<uint32_t> key_;
  bool have_best_ = false;
  std::vector<uint32_t> best_prefix_, best_pending_;
  uint32_t best_state_ = kNull, best_blocking_ = 0;
};

void KeySearch::build_list() {
  const auto n = static_cast<uint32_t>(ops_.size());
  std::vector<uint32_t> returns(n);
  for (uint32_t i = 0; i < n; ++i) returns[i] = i;
  std::stable_sort(returns.begin(), returns.end(),
                   [&](uint32_t x, uint32_t y) { return ops_[x].ret < ops_[y].ret; });
  // Merge calls (already in call order) with returns. At equal times calls go first: intervals
  // are closed, so an op invoked at the instant another responds overlaps it.
  nodes_.assign(1, Node{});
  std::vector<int32_t> call_node(n);
  uint32_t c = 0, r = 0;
  while (c < n || r < n) {
    const bool take_call = c < n && (r == n || ops_[c].call <= ops_[returns[r]].ret);
    Node node{.op = take_call ? c : returns[r], .is_return = !take_call};
    if (take_call) {
      call_node[c++] = static_cast<int32_t>(nodes_.size());
    } else {
      nodes_[static_cast<size_t>(call_node[returns[r++]])].match =
          static_cast<int32_t>(nodes_.size());
    }
    nodes_.push_back(node);
  }
  for (size_t i = 0; i < nodes_.size(); ++i) {
    nodes_[i].prev = static_cast<int32_t>(i) - 1;
    nodes_[i].next = i + 1 < nodes_.size() ? static_cast<int32_t>(i + 1) : -1;
  }
}

void KeySearch::lift(int32_t call) {
  for (int32_t x : {call, nodes_[static_cast<size_t>(call)].match}) {
    const Node& n = nodes_[static_cast<size_t>(x)];
    nodes_[static_cast<size_t>(n.prev)].next = n.next;
    if (n.next >= 0) nodes_[static_cast<size_t>(n.next)].prev = n.prev;
  }
}

void KeySearch::unlift(int32_t call) {
  for (int32_t x : {nodes_[static_cast<size_t>(call)].match, call}) {
    const Node& n = nodes_[static_cast<size_t>(x)];
    nodes_[static_cast<size_t>(n.prev)].next = x;
    if (n.next >= 0) nodes_[static_cast<size_t>(n.next)].prev = x;
  }
}

// The configuration as an exact, compact key: the register value, `bound` (1 + the largest
// linearized id) and the ids below `bound` not yet linearized. Calls still in the list are in
// id order, so those ids are the calls met before the first call with id >= bound.
const std::vector<uint32_t>& KeySearch::key() {
  key_.clear();
  key_.push_back(state_);
  key_.push_back(bound_);
  for (int32_t i = nodes_[0].next; i >= 0; i = nodes_[static_cast<size_t>(i)].next) {
    const Node& n = nodes_[static_cast<size_t>(i)];
    if (n.is_return) continue;
    if (n.op >= bound_) break;
    key_.push_back(n.op);
  }
  return key_;
}

void KeySearch::record_stuck(int32_t return_node) {
  if (have_best_ && stack_.size() <= best_prefix_.size()) return;
  have_best_ = true;
  best_prefix_.clear();
  for (const Frame& f : stack_) best_prefix_.push_back(nodes_[static_cast<size_t>(f.call_node)].op);
  best_state_ = state_;
  best_blocking_ = nodes_[static_cast<size_t>(return_node)].op;
  best_pending_.clear();
  for (int32_t i = nodes_[0].next; i != return_node; i = nodes_[static_cast<size_t>(i)].next) {
    const Node& n = nodes_[static_cast<size_t>(i)];
    if (!n.is_return) best_pending_.push_back(n.op);
  }
}

// Backtracks from a configuration known to have no linearization. A forced frame (a read, see
// run()) failing means its parent fails too, so popping continues through it. Returns where
// the scan resumes, or -1 when the stack is empty (nothing is left to try).
int32_t KeySearch::backtrack() {
  while (!stack_.empty()) {
    const Frame f = stack_.back();
    stack_.pop_back();
    state_ = f.state;
    bound_ = f.bound;
    unlift(f.call_node);
    if (!f.forced) return nodes_[static_cast<size_t>(f.call_node)].next;
  }
  return -1;
}

SearchOutcome KeySearch::run() {
  int32_t cur = nodes_[0].next;
  while (cur >= 0) {
    const Node& node = nodes_[static_cast<size_t>(cur)];
    if (node.is_return) {
      // Info returns sort last: reaching one means every definite op is linearized, and the
      // remaining info ops may simply never have taken effect.
      if (ops_[node.op].info) return SearchOutcome::kLinearizable;
      record_stuck(cur);
      cur = backtrack();
      if (cur < 0) return SearchOutcome::kNotLinearizable;
      continue;
    }
    const KeyOp& op = ops_[node.op];
    const auto next_state = step(state_, op);
    if (!next_state) {
      cur = node.next;
      continue;
    }
    // A read that fits now is taken now, with no alternative: it does not change the register,
    // so any linearization that places it later stays valid with it moved here (every op still
    // pending responds after this read's invoke). This prunes the 2^(pending reads) subsets
    // that plain WGL would enumerate.
    const bool forced = op.f == OpKind::kRead;
    stack_.push_back(Frame{cur, state_, bound_, forced});
    lift(cur);
    state_ = *next_state;
    bound_ = std::max(bound_, node.op + 1);
    if (memo_.insert(key())) {
      if (memo_.size() > states_max_) return SearchOutcome::kBudget;
      cur = nodes_[0].next;
    } else if (forced) {
      cur = backtrack();  // seen before, so known to fail, and so does its parent
      if (cur < 0) return SearchOutcome::kNotLinearizable;
    } else {
      // Seen before: everything reachable from here is already known to fail.
      state_ = stack_.back().state;
      bound_ = stack_.back().bound;
      stack_.pop_back();
      unlift(cur);
      cur = node.next;
    }
  }
  return SearchOutcome::kLinearizable;
}

uint32_t written_value(const KeyOp& k) { return k.f == OpKind::kCas ? k.b : k.a; }

KeyOp key_op(const Op& op, size_t index, Interner& values) {
  KeyOp k{.op = index, .f = op.f, .info = op.outcome == EventType::kInfo, .call = op.invoke_time};
  k.ret = k.info ? kNever : *op.complete_time;
  switch (op.f) {
    case OpKind::kRead: k.a = values.intern(op.output); break;
    case OpKind::kWrite: k.a = values.intern(op.input); break;
    case OpKind::kCas:
      k.a = values.intern(op.input[0]);
      k.b = values.intern(op.input[1]);
      break;
  }
  return k;
}

// Drops info writes and cas whose new value nothing observes (an ok read or cas, or a kept
// info cas), repeating because dropping an info cas can unobserve another value.
void drop_unobserved(std::vector<KeyOp>& ops) {
  for (bool changed = true; changed;) {
    std::unordered_set<uint32_t> observed;
    for (const KeyOp& k : ops) {
      if (k.f != OpKind::kWrite) observed.insert(k.a);
    }
    const size_t before = ops.size();
    std::erase_if(ops, [&](const KeyOp& k) {
      return k.info && k.f != OpKind::kRead && !observed.contains(written_value(k));
    });
    changed = ops.size() != before;
  }
}

// An info op that is the only writer of a value some ok op observed certainly happened, and
// before that observer responded: it becomes a definite op with that deadline. This keeps
// info ops from staying pending (and multiplying the search) until the end of the history.
void bound_observed_info(std::vector<KeyOp>& ops) {
  std::unordered_map<uint32_t, size_t> writers;
  std::unordered_map<uint32_t, int64_t> first_seen;  // value -> earliest ok observer response
  for (const KeyOp& k : ops) {
    if (k.f != OpKind::kRead) ++writers[written_value(k)];
    if (k.f != OpKind::kWrite && !k.info) {
      auto [it, inserted] = first_seen.emplace(k.a, k.ret);
      if (!inserted) it->second = std::min(it->second, k.ret);
    }
  }
  for (KeyOp& k : ops) {
    if (!k.info) continue;
    const uint32_t v = written_value(k);
    auto seen = first_seen.find(v);
    // The initial null is written by no op, so a null observer proves nothing.
    if (v == kNull || writers[v] != 1 || seen == first_seen.end()) continue;
    k.info = false;
    // An observer that responded before this op began makes the history non-linearizable
    // whatever the deadline; keep the interval well formed.
    k.ret = std::max(seen->second, k.call);
  }
}

// Prepares one key's ops for the search: drops fail ops and info reads (they constrain
// nothing), applies the two info reductions above, and orders by invoke time.
std::vector<KeyOp> prepare(const std::vector<Op>& ops, const std::vector<size_t>& indexes,
                           Interner& values) {
  std::vector<KeyOp> out;
  for (size_t i : indexes) {
    const Op& op = ops[i];
    if (op.outcome == EventType::kFail) continue;
    if (op.outcome == EventType::kInfo && op.f == OpKind::kRead) continue;
    out.push_back(key_op(op, i, values));
  }
  drop_unobserved(out);
  bound_observed_info(out);
  // Invoke order with time as the primary key (the input lines need not be time-sorted).
  std::stable_sort(out.begin(), out.end(),
                   [](const KeyOp& x, const KeyOp& y) { return x.call < y.call; });
  return out;
}

}  // namespace

CheckResult check(const std::vector<Op>& ops, const CheckOptions& options) {
  std::map<std::string, std::vector<size_t>> by_key;
  for (size_t i = 0; i < ops.size(); ++i) by_key[ops[i].key].push_back(i);
  CheckResult result;
  result.keys = by_key.size();
  for (const auto& [key, indexes] : by_key) {
    Interner values;
    KeySearch search(prepare(ops, indexes, values), options.states_max);
    result.ops_checked += search.size();
    const SearchOutcome outcome = search.run();
    result.states += search.states();
    if (outcome == SearchOutcome::kBudget) {
      result.unknown.push_back(key);
      continue;
    }
    if (outcome == SearchOutcome::kLinearizable) continue;
    KeyFailure failure{.key = key,
                       .state = values.value(search.best_state()),
                       .blocking = search.op(search.best_blocking()).op};
    for (uint32_t id : search.best_prefix()) failure.prefix.push_back(search.op(id).op);
    for (uint32_t id : search.best_pending()) failure.pending.push_back(search.op(id).op);
    result.failures.push_back(std::move(failure));
  }
  if (!result.failures.empty()) {
    result.verdict = Verdict::kNotLinearizable;
  } else if (!result.unknown.empty()) {
    result.verdict = Verdict::kUnknown;
  }
  return result;
}

std::string describe_op(const Op& op) {
  std::string s =
      fmt::format("process {} {} {}", op.process, op_kind_name(op.f), json(op.key).dump());
  if (op.f != OpKind::kRead) s += " " + op.input.dump();
  if (op.f == OpKind::kRead && op.outcome == EventType::kOk) s += " -> " + op.output.dump();
  s += fmt::format(" {} (line {}, time {}..", event_type_name(op.outcome), op.invoke_line,
                   op.invoke_time);
  s += op.complete_time ? fmt::format("{})", *op.complete_time) : std::string("?)");
  return s;
}

std::string describe(const std::vector<Op>& ops, const CheckResult& result) {
  constexpr size_t kPrefixTail = 10;  // the end of the prefix is what explains the failure
  std::string out;
  for (const KeyFailure& f : result.failures) {
    out += fmt::format("not linearizable: key {}\n", json(f.key).dump());
    out += fmt::format("  longest linearizable prefix: {} operations", f.prefix.size());
    const size_t skip = f.prefix.size() > kPrefixTail ? f.prefix.size() - kPrefixTail : 0;
    out += skip ? fmt::format(", the last {}:\n", kPrefixTail) : std::string(":\n");
    for (size_t i = skip; i < f.prefix.size(); ++i) {
      out += fmt::format("    {}\n", describe_op(ops[f.prefix[i]]));
    }
    out += fmt::format("  register value after the prefix: {}\n", f.state.dump());
    out += fmt::format("  completed but cannot be linearized next:\n    {}\n",
                       describe_op(ops[f.blocking]));
    out += "  operations that could come next (none leads to a linearization):\n";
    for (size_t i : f.pending) out += fmt::format("    {}\n", describe_op(ops[i]));
  }
  for (const std::string& key : result.unknown) {
    out += fmt::format("unknown: key {}: the search exceeded its state budget\n", json(key).dump());
  }
  if (result.verdict == Verdict::kLinearizable) {
    out += fmt::format("linearizable: {} operations on {} keys ({} states searched)\n",
                       result.ops_checked, result.keys, result.states);
  }
  return out;
}

}  // namespace raftd::lincheck
