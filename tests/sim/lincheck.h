// Linearizability checker for key/value register histories (raftd-lincheck, and the simulator's
// end-of-run check).
//
// A history is a sequence of events from client processes: an operation is invoked, then
// completes as ok (it happened, with this result), fail (it certainly did not happen) or info
// (its outcome is unknown: it may take effect at any point after its invoke, or never). The
// model is one register per key, initially null; reads return the current value, writes set
// it, cas [expected, new] sets it to new only if it equals expected (an ok cas means the swap
// happened). Keys are independent (P-compositionality), so each key is checked on its own.
//
// The search is Wing & Gong / Lowe's backtracking search as used by Porcupine: walk the
// time-ordered list of call and return entries, linearize the earliest pending call the model
// accepts, backtrack when a return is reached whose operation is not yet linearized, and
// memoize (set of linearized operations, register value) so no configuration is explored
// twice. Two reductions keep info operations cheap: an info read constrains nothing and is
// dropped, and an info write or cas whose new value no read or cas ever observes is dropped
// (taking effect would only leave the register in a state nothing can follow, so "never" is
// always at least as good).
//
// Threading: everything here is single-threaded and owns its data. Errors in the input are
// returned as Status (kInvalidArgument, message "line N: ..."); a search that exceeds its
// state budget reports kUnknown instead of using unbounded memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <istream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "raftd/base/status.h"

namespace raftd::lincheck {

enum class EventType { kInvoke, kOk, kFail, kInfo };
enum class OpKind { kRead, kWrite, kCas };

std::string_view event_type_name(EventType t);
std::string_view op_kind_name(OpKind k);

// One line of the history. On a completion, `f` and `key` may be left unset (they are taken
// from the invoke); if set they must match it. `value` follows the format in doc/lincheck.md.
struct Event {
  int64_t process = 0;
  EventType type = EventType::kInvoke;
  std::optional<OpKind> f;
  std::optional<std::string> key;
  nlohmann::json value;  // null when absent
  int64_t time = 0;
};

// A completed operation, as the checker sees it.
struct Op {
  int64_t process = 0;
  OpKind f = OpKind::kRead;
  std::string key;
  nlohmann::json input;                  // write: value; cas: [expected, new]; read: null
  nlohmann::json output;                 // read ok: the value read; otherwise null
  EventType outcome = EventType::kInfo;  // kOk, kFail or kInfo
  int64_t invoke_time = 0;
  std::optional<int64_t> complete_time;  // unset for info: the response never arrived
  size_t invoke_line = 0;                // 1-based line (or event number) of the invoke
};

// Builds a history event by event and enforces the protocol: each process has at most one
// operation outstanding, a completion needs an outstanding invoke and cannot be earlier than
// it, read/write/cas values have the right shape.
class HistoryBuilder {
 public:
  // `line` is 1-based and only used in error messages and reports.
  Status add(const Event& event, size_t line);
  // Operations still outstanding become info (their outcome is unknown). Ops are returned in
  // invoke order.
  std::vector<Op> finish() &&;

 private:
  std::vector<Op> ops_;
  std::map<int64_t, size_t> outstanding_;  // process -> index into ops_
};

// The event as one JSON line (no trailing newline), in the format parse_event reads.
std::string to_json_line(const Event& event);

// Parses one JSON line into an Event (shape only; the protocol is HistoryBuilder's job).
Result<Event> parse_event(std::string_view line);
// Reads a whole JSON-lines history. Blank lines are skipped. Errors name the line.
Result<std::vector<Op>> read_history(std::istream& in);

enum class Verdict { kLinearizable, kNotLinearizable, kUnknown };

// Why one key's sub-history cannot be linearized, at the deepest point the search reached.
struct KeyFailure {
  std::string key;
  std::vector<size_t> prefix;   // indexes into the op vector: a linearization of a prefix
  nlohmann::json state;         // register value after `prefix`
  size_t blocking = 0;          // op whose response arrived but cannot be linearized next
  std::vector<size_t> pending;  // every op that could be linearized next; none fits
};

struct CheckOptions {
  // Memo entries per key before giving up with kUnknown. Each entry is a few dozen bytes, so
  // the default bounds a pathological search to about a gigabyte.
  static constexpr size_t kDefaultStatesMax = size_t{1} << 24;
  size_t states_max = kDefaultStatesMax;
};

struct CheckResult {
  Verdict verdict = Verdict::kLinearizable;
  std::vector<KeyFailure> failures;  // one per non-linearizable key (key order)
  std::vector<std::string> unknown;  // keys whose search ran out of budget
  size_t keys = 0;
  size_t ops_checked = 0;  // after dropping fail ops and unobservable info ops
  size_t states = 0;       // memo entries created, summed over keys
};

CheckResult check(const std::vector<Op>& ops, const CheckOptions& options = {});

// Human-readable report: the verdict and, per failing key, the tail of the longest
// linearizable prefix, the register value there, and the operations that cannot be ordered.
std::string describe(const std::vector<Op>& ops, const CheckResult& result);
std::string describe_op(const Op& op);

}  // namespace raftd::lincheck
