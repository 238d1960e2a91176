// raftd-lincheck: checks a JSON-lines client history for linearizability (see lincheck.h and
// doc/lincheck.md). Exit status: 0 linearizable, 1 not linearizable, 2 malformed input or bad
// usage, 3 undecided (the search exceeded its state budget).
#include <charconv>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <string_view>

#include "lincheck.h"

namespace {

constexpr int kExitLinearizable = 0;
constexpr int kExitNotLinearizable = 1;
constexpr int kExitMalformed = 2;
constexpr int kExitUnknown = 3;

constexpr std::string_view kHelp = R"(usage: raftd-lincheck [--states-max N] [--quiet] [FILE]

Checks a client history of per-key registers for linearizability. Reads FILE, or standard
input when FILE is absent or "-".

Input: JSON lines, one event per line (blank lines are skipped):
  {"process": 3, "type": "invoke", "f": "write", "key": "k1", "value": 7, "time": 120}
  process  integer; each process has at most one operation outstanding
  type     "invoke" | "ok" | "fail" | "info"
           ok    the operation happened, with this result
           fail  the operation certainly did not happen
           info  the outcome is unknown: it may have taken effect at any point after its
                 invoke, or never (its response time is +infinity)
           An ok/fail/info completes the process's last invoke. An invoke still outstanding
           at the end of the input counts as info.
  f        "read" | "write" | "cas" (required on invoke; on a completion optional, and if
           present it must match the invoke)
  key      string (required on invoke; optional on a completion, must match if present)
  value    read:  null on invoke; on ok the value read (null: never written)
           write: the value written
           cas:   [expected, new]; ok means the swap happened
           Values are JSON scalars compared as JSON (1 and 1.0 are equal). A completion's
           value is ignored except for a read's ok.
  time     integer; the completion's time must not be earlier than its invoke's. Operations
           whose intervals touch (one's invoke time equals another's completion time) are
           concurrent.
Model: one register per key, initially null; keys are checked independently.

Output and exit status:
  0  linearizable
  1  not linearizable: for each failing key, the longest linearizable prefix (its last
     operations), the register value after it, the operation that completed but cannot be
     linearized next, and the operations that could have come next
  2  malformed input (with its line number), a protocol error (completion without invoke,
     second invoke while one is outstanding, unknown f or type), or bad usage
  3  undecided: the search for some key exceeded --states-max

Options:
  --states-max N  memo entries per key before giving up (default 16777216)
  --quiet         print nothing on success
  --help          this text
)";

int usage_error(std::string_view msg) {
  std::cerr << "raftd-lincheck: " << msg << "\n(see raftd-lincheck --help)\n";
  return kExitMalformed;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace raftd::lincheck;
  CheckOptions options;
  bool quiet = false;
  std::string path = "-";
  bool have_path = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << kHelp;
      return 0;
    }
    if (arg == "--quiet") {
      quiet = true;
    } else if (arg == "--states-max") {
      if (++i == argc) return usage_error("--states-max needs a value");
      const std::string_view v = argv[i];
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), options.states_max);
      if (ec != std::errc() || end != v.data() + v.size() || options.states_max == 0) {
        return usage_error("--states-max needs a positive integer");
      }
    } else if (arg.size() > 1 && arg[0] == '-') {
      return usage_error("unknown option " + std::string(arg));
    } else if (have_path) {
      return usage_error("more than one input file");
    } else {
      path = arg;
      have_path = true;
    }
  }
  std::ifstream file;
  if (path != "-") {
    file.open(path);
    if (!file) return usage_error("cannot open " + path);
  }
  auto history = read_history(path == "-" ? std::cin : file);
  if (!history) {
    std::cerr << "raftd-lincheck: " << (path == "-" ? "<stdin>" : path) << ": "
              << history.status().message() << "\n";
    return kExitMalformed;
  }
  const CheckResult result = check(*history, options);
  if (result.verdict != Verdict::kLinearizable || !quiet) std::cout << describe(*history, result);
  switch (result.verdict) {
    case Verdict::kLinearizable: return kExitLinearizable;
    case Verdict::kNotLinearizable: return kExitNotLinearizable;
    case Verdict::kUnknown: return kExitUnknown;
  }
  return kExitUnknown;
}
