#include "lincheck.h"

#include <doctest/doctest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "lincheck_gen.h"

namespace raftd::lincheck {
namespace {

Result<std::vector<Op>> parse(const std::string& text) {
  std::istringstream in(text);
  return read_history(in);
}

// Checks a history given as JSON lines; the history must be well formed.
CheckResult check_text(const std::string& text) {
  auto ops = parse(text);
  REQUIRE_MESSAGE(ops.is_ok(), ops.status().to_string());
  return check(*ops);
}

Verdict verdict(const std::string& text) { return check_text(text).verdict; }

// Compact event lines: ev(process, type, f, value, time) on key "k".
std::string ev(int p, const char* type, const char* f, const std::string& value, int t,
               const char* key = "k") {
  return "{\"process\":" + std::to_string(p) + ",\"type\":\"" + type + "\",\"f\":\"" + f +
         "\",\"key\":\"" + key + "\",\"value\":" + value + ",\"time\":" + std::to_string(t) + "}\n";
}

std::string to_text(const std::vector<Event>& events) {
  std::string s;
  for (const Event& e : events) s += to_json_line(e) + "\n";
  return s;
}

}  // namespace

TEST_CASE("lincheck: sequential write then read is linearizable") {
  CHECK(verdict(ev(1, "invoke", "write", "1", 0) + ev(1, "ok", "write", "1", 1) +
                ev(2, "invoke", "read", "null", 2) + ev(2, "ok", "read", "1", 3)) ==
        Verdict::kLinearizable);
}

TEST_CASE("lincheck: a read of the initial value before any write is linearizable") {
  CHECK(verdict(ev(2, "invoke", "read", "null", 0) + ev(2, "ok", "read", "null", 1) +
                ev(1, "invoke", "write", "1", 2) + ev(1, "ok", "write", "1", 3)) ==
        Verdict::kLinearizable);
}

TEST_CASE("lincheck: stale read after a newer write completed is not linearizable") {
  const std::string h = ev(1, "invoke", "write", "1", 0) + ev(1, "ok", "write", "1", 1) +
                        ev(1, "invoke", "write", "2", 2) + ev(1, "ok", "write", "2", 3) +
                        ev(2, "invoke", "read", "null", 4) + ev(2, "ok", "read", "1", 5);
  const CheckResult r = check_text(h);
  CHECK(r.verdict == Verdict::kNotLinearizable);
  REQUIRE(r.failures.size() == 1);
  CHECK(r.failures[0].key == "k");
  CHECK(r.failures[0].prefix.size() == 2);  // both writes fit, the read does not
  CHECK(r.failures[0].state == 2);
  CHECK(r.failures[0].blocking == 2);  // the read (third op)
}

TEST_CASE("lincheck: lost write (read of null after an acknowledged write) is caught") {
  CHECK(verdict(ev(1, "invoke", "write", "\"a\"", 0) + ev(1, "ok", "write", "\"a\"", 1) +
                ev(2, "invoke", "read", "null", 2) + ev(2, "ok", "read", "null", 3)) ==
        Verdict::kNotLinearizable);
}

TEST_CASE("lincheck: concurrent operations may take effect in either order") {
  // Write 1 and write 2 overlap; a later read may see either, but two sequential reads
  // cannot see 2 then 1 (the register does not go back).
  const std::string writes = ev(1, "invoke", "write", "1", 0) + ev(2, "invoke", "write", "2", 1) +
                             ev(1, "ok", "write", "1", 5) + ev(2, "ok", "write", "2", 6);
  CHECK(verdict(writes + ev(3, "invoke", "read", "null", 7) + ev(3, "ok", "read", "1", 8)) ==
        Verdict::kLinearizable);
  CHECK(verdict(writes + ev(3, "invoke", "read", "null", 7) + ev(3, "ok", "read", "2", 8)) ==
        Verdict::kLinearizable);
  CHECK(verdict(writes + ev(3, "invoke", "read", "null", 7) + ev(3, "ok", "read", "2", 8) +
                ev(3, "invoke", "read", "null", 9) + ev(3, "ok", "read", "1", 10)) ==
        Verdict::kNotLinearizable);
  // A read overlapping a write may see the old or the new value.
  const std::string overlap = ev(1, "invoke", "write", "1", 0) + ev(2, "invoke", "read", "null", 1);
  CHECK(verdict(overlap + ev(2, "ok", "read", "null", 2) + ev(1, "ok", "write", "1", 3)) ==
        Verdict::kLinearizable);
  CHECK(verdict(overlap + ev(2, "ok", "read", "1", 2) + ev(1, "ok", "write", "1", 3)) ==
        Verdict::kLinearizable);
}

TEST_CASE("lincheck: intervals are closed, so touching operations overlap") {
  // The read is invoked at the instant the write completes: it may still see null.
  CHECK(verdict(ev(1, "invoke", "write", "1", 0) + ev(1, "ok", "write", "1", 5) +
                ev(2, "invoke", "read", "null", 5) + ev(2, "ok", "read", "null", 6)) ==
        Verdict::kLinearizable);
  CHECK(verdict(ev(1, "invoke", "write", "1", 0) + ev(1, "ok", "write", "1", 5) +
                ev(2, "invoke", "read", "null", 6) + ev(2, "ok", "read", "null", 7)) ==
        Verdict::kNotLinearizable);
}

TEST_CASE("lincheck: cas semantics") {
  const std::string w = ev(1, "invoke", "write", "1", 0) + ev(1, "ok", "write", "1", 1);
  SUBCASE("ok cas with the right expected value swaps") {
    CHECK(verdict(w + ev(1, "invoke", "cas", "[1,2]", 2) + ev(1, "ok", "cas", "[1,2]", 3) +
                  ev(1, "invoke", "read", "null", 4) + ev(1, "ok", "read", "2", 5)) ==
          Verdict::kLinearizable);
  }
  SUBCASE("ok cas whose expected value is not there is impossible") {
    CHECK(verdict(w + ev(1, "invoke", "cas", "[7,2]", 2) + ev(1, "ok", "cas", "[7,2]", 3)) ==
          Verdict::kNotLinearizable);
  }
  SUBCASE("an ok cas is not a no-op: the old value is gone") {
    CHECK(verdict(w + ev(1, "invoke", "cas", "[1,2]", 2) + ev(1, "ok", "cas", "[1,2]", 3) +
                  ev(1, "invoke", "read", "null", 4) + ev(1, "ok", "read", "1", 5)) ==
          Verdict::kNotLinearizable);
  }
  SUBCASE("cas on the initial null") {
    CHECK(verdict(ev(1, "invoke", "cas", "[null,\"x\"]", 0) +
                  ev(1, "ok", "cas", "[null,\"x\"]", 1) + ev(1, "invoke", "read", "null", 2) +
                  ev(1, "ok", "read", "\"x\"", 3)) == Verdict::kLinearizable);
  }
  SUBCASE("numbers compare as JSON: 1 equals 1.0") {
    CHECK(verdict(w + ev(1, "invoke", "cas", "[1.0,2]", 2) + ev(1, "ok", "cas", "[1.0,2]", 3)) ==
          Verdict::kLinearizable);
  }
}

TEST_CASE("lincheck: a failed operation certainly did not happen") {
  const std::string failed = ev(1, "invoke", "write", "1", 0) + ev(1, "fail", "write", "1", 1);
  CHECK(verdict(failed + ev(2, "invoke", "read", "null", 2) + ev(2, "ok", "read", "null", 3)) ==
        Verdict::kLinearizable);
  CHECK(verdict(failed + ev(2, "invoke", "read", "null", 2) + ev(2, "ok", "read", "1", 3)) ==
        Verdict::kNotLinearizable);
  // A failed cas leaves the register alone.
  CHECK(verdict(ev(1, "invoke", "cas", "[null,5]", 0) + ev(1, "fail", "cas", "[null,5]", 1) +
                ev(1, "invoke", "read", "null", 2) + ev(1, "ok", "read", "5", 3)) ==
        Verdict::kNotLinearizable);
}

TEST_CASE("lincheck: an info operation may or may not have happened, at any later point") {
  const std::string w = ev(1, "invoke", "write", "1", 0) + ev(1, "ok", "write", "1", 1) +
                        ev(1, "invoke", "write", "2", 2) + ev(1, "info", "write", "2", 3);
  const std::string read = ev(2, "invoke", "read", "null", 10);
  SUBCASE("applied") {
    CHECK(verdict(w + read + ev(2, "ok", "read", "2", 11)) == Verdict::kLinearizable);
  }
  SUBCASE("not applied") {
    CHECK(verdict(w + read + ev(2, "ok", "read", "1", 11)) == Verdict::kLinearizable);
  }
  SUBCASE("applied late: after reads that did not see it") {
    CHECK(verdict(w + read + ev(2, "ok", "read", "1", 11) + ev(2, "invoke", "read", "null", 12) +
                  ev(2, "ok", "read", "2", 13)) == Verdict::kLinearizable);
  }
  SUBCASE("but once seen it cannot be undone") {
    CHECK(verdict(w + read + ev(2, "ok", "read", "2", 11) + ev(2, "invoke", "read", "null", 12) +
                  ev(2, "ok", "read", "1", 13)) == Verdict::kNotLinearizable);
  }
  SUBCASE("and it cannot take effect before its invoke") {
    CHECK(verdict(ev(2, "invoke", "read", "null", 0) + ev(2, "ok", "read", "2", 1) +
                  ev(1, "invoke", "write", "2", 2) + ev(1, "info", "write", "2", 3)) ==
          Verdict::kNotLinearizable);
  }
  SUBCASE("an invoke without completion at the end of the history counts as info") {
    CHECK(verdict(ev(1, "invoke", "write", "1", 0) + ev(2, "invoke", "read", "null", 5) +
                  ev(2, "ok", "read", "1", 6)) == Verdict::kLinearizable);
  }
  SUBCASE("a process may go on after an info; the info op stays concurrent") {
    CHECK(verdict(ev(1, "invoke", "write", "1", 0) + ev(1, "info", "write", "1", 1) +
                  ev(1, "invoke", "write", "2", 2) + ev(1, "ok", "write", "2", 3) +
                  ev(2, "invoke", "read", "null", 4) + ev(2, "ok", "read", "1", 5)) ==
          Verdict::kLinearizable);
  }
  SUBCASE("info cas applies only if its expected value is there") {
    CHECK(verdict(ev(1, "invoke", "cas", "[9,3]", 0) + ev(1, "info", "cas", "[9,3]", 1) +
                  ev(2, "invoke", "read", "null", 4) + ev(2, "ok", "read", "3", 5)) ==
          Verdict::kNotLinearizable);
    CHECK(verdict(ev(1, "invoke", "cas", "[null,3]", 0) + ev(1, "info", "cas", "[null,3]", 1) +
                  ev(2, "invoke", "read", "null", 4) + ev(2, "ok", "read", "3", 5)) ==
          Verdict::kLinearizable);
  }
}

TEST_CASE("lincheck: keys are independent and a failure names its key") {
  const std::string h =
      ev(1, "invoke", "write", "1", 0, "a") + ev(1, "ok", "write", "1", 1, "a") +
      ev(2, "invoke", "read", "null", 2, "b") + ev(2, "ok", "read", "null", 3, "b") +
      ev(2, "invoke", "read", "null", 4, "a") + ev(2, "ok", "read", "null", 5, "a");
  const CheckResult r = check_text(h);
  CHECK(r.keys == 2);
  REQUIRE(r.failures.size() == 1);
  CHECK(r.failures[0].key == "a");
  auto ops = parse(h);
  REQUIRE(ops.is_ok());
  const std::string report = describe(*ops, r);
  CHECK(report.find("not linearizable: key \"a\"") != std::string::npos);
  CHECK(report.find("cannot be linearized next") != std::string::npos);
  CHECK(report.find("process 2 read \"a\" -> null ok (line 5, time 4..5)") != std::string::npos);
}

TEST_CASE("lincheck: malformed input and protocol errors name the line") {
  auto error_of = [](const std::string& text) {
    auto r = parse(text);
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.status().code() == Code::kInvalidArgument);
    return r.status().message();
  };
  const std::string ok_line = ev(1, "invoke", "write", "1", 0);
  CHECK(error_of(ok_line + "\n{not json\n").starts_with("line 3: not valid JSON"));
  CHECK(error_of("[1,2]\n").starts_with("line 1: not a JSON object"));
  CHECK(error_of(ev(1, "ok", "write", "1", 0)).starts_with("line 1: ok for process 1 which"));
  CHECK(error_of(ok_line + ev(1, "invoke", "read", "null", 1))
            .starts_with("line 2: process 1 invokes while its operation from line 1"));
  CHECK(error_of(ev(1, "invoke", "delete", "1", 0)).starts_with("line 1: unknown f"));
  CHECK(error_of(ok_line + ev(1, "done", "write", "1", 1)).starts_with("line 2: unknown type"));
  CHECK(error_of("{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"k\"}\n")
            .starts_with("line 1: missing \"time\""));
  CHECK(error_of("{\"process\":\"p\",\"type\":\"invoke\",\"time\":1}\n")
            .starts_with("line 1: \"process\" must be an integer"));
  CHECK(error_of(ev(1, "invoke", "cas", "1", 0)).starts_with("line 1: cas value must be"));
  CHECK(error_of(ev(1, "invoke", "write", "[1]", 0)).starts_with("line 1: write value must"));
  CHECK(error_of(ev(1, "invoke", "read", "3", 0)).starts_with("line 1: read invoke value"));
  CHECK(error_of(ok_line + ev(1, "ok", "read", "1", 1)).starts_with("line 2: \"f\" differs"));
  CHECK(error_of(ok_line + ev(1, "ok", "write", "1", 1, "other"))
            .starts_with("line 2: \"key\" differs"));
  CHECK(error_of(ev(1, "invoke", "write", "1", 5) + ev(1, "ok", "write", "1", 4))
            .starts_with("line 2: completion is earlier"));
  // Blank lines count: the error is on the file's line 3.
  CHECK(error_of(ok_line + "\n" + ev(2, "fail", "read", "null", 1)).starts_with("line 3:"));
}

TEST_CASE("lincheck: completions may omit f, key and value") {
  CHECK(verdict(ev(1, "invoke", "write", "1", 0) + "{\"process\":1,\"type\":\"ok\",\"time\":1}\n" +
                ev(2, "invoke", "read", "null", 2) +
                "{\"process\":2,\"type\":\"ok\",\"value\":1,\"time\":3}\n") ==
        Verdict::kLinearizable);
}

TEST_CASE("lincheck: events out of time order in the file are ordered by time") {
  CHECK(verdict(ev(2, "invoke", "read", "null", 20) + ev(2, "ok", "read", "1", 21) +
                ev(1, "invoke", "write", "1", 0) + ev(1, "ok", "write", "1", 1)) ==
        Verdict::kLinearizable);
}

TEST_CASE("lincheck: the state budget turns an expensive search into unknown") {
  GenOptions o{.seed = 3, .ops = 400, .processes = 8};
  auto events = generate_history(o);
  REQUIRE(add_stale_read(events, 3));
  auto ops = parse(to_text(events));
  REQUIRE(ops.is_ok());
  CHECK(check(*ops, CheckOptions{.states_max = 5}).verdict == Verdict::kUnknown);
  CHECK(check(*ops).verdict == Verdict::kNotLinearizable);
}

TEST_CASE("lincheck: generated histories are linearizable, with a stale read they are not") {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    CAPTURE(seed);
    GenOptions o{.seed = seed,
                 .ops = 600,
                 .processes = 6,
                 .keys = 3,
                 .info_per_million = 50'000,
                 .fail_per_million = 50'000};
    auto events = generate_history(o);
    CHECK(verdict(to_text(events)) == Verdict::kLinearizable);
    if (add_stale_read(events, seed)) {
      const CheckResult r = check_text(to_text(events));
      CHECK(r.verdict == Verdict::kNotLinearizable);
      CHECK(r.failures.size() == 1);
    }
  }
}

TEST_CASE("lincheck: 10,000 operations on one key with 10 processes") {
  GenOptions o{.seed = 42, .ops = 10'000, .processes = 10, .keys = 1};
  auto events = generate_history(o);
  CHECK(events.size() == 20'000);
  const CheckResult good = check_text(to_text(events));
  CHECK(good.verdict == Verdict::kLinearizable);
  CHECK(good.ops_checked > 8'000);  // fail ops and unobservable info ops are dropped
  REQUIRE(add_stale_read(events, 42));
  const CheckResult bad = check_text(to_text(events));
  REQUIRE(bad.verdict == Verdict::kNotLinearizable);
  CHECK(bad.failures[0].prefix.size() > 7'000);  // the stale read is near the end
}

// ---------------------------------------------------------------------------------------------
// The command line, run as a separate process (its path comes from the meson test's env).

namespace {

struct Run {
  int status = -1;
  std::string out;
};

Run run_cli(const std::string& args, const std::string& input) {
  const char* bin = std::getenv("RAFTD_LINCHECK");
  REQUIRE_MESSAGE(bin != nullptr, "RAFTD_LINCHECK is not set");
  char path[] = "/tmp/lincheck_test_XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  {
    std::ofstream f(path);
    f << input;
  }
  Run r;
  FILE* p = popen((std::string(bin) + " " + args + " " + path + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  size_t n = 0;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::remove(path);
  return r;
}

}  // namespace

TEST_CASE("raftd-lincheck: exit codes and output") {
  const std::string good = ev(1, "invoke", "write", "1", 0) + ev(1, "ok", "write", "1", 1);
  const std::string bad = good + ev(2, "invoke", "read", "null", 2) + ev(2, "ok", "read", "7", 3);
  Run r = run_cli("", good);
  CHECK(r.status == 0);
  CHECK(r.out.find("linearizable: 1 operations on 1 keys") != std::string::npos);
  CHECK(run_cli("--quiet", good).out.empty());
  r = run_cli("", bad);
  CHECK(r.status == 1);
  CHECK(r.out.find("not linearizable: key \"k\"") != std::string::npos);
  r = run_cli("", good + "{oops\n");
  CHECK(r.status == 2);
  CHECK(r.out.find("line 3: not valid JSON") != std::string::npos);
  CHECK(run_cli("", ev(1, "ok", "read", "null", 0)).status == 2);
  CHECK(run_cli("--bogus", good).status == 2);
  r = run_cli("--help", "");
  CHECK(r.status == 0);
  CHECK(r.out.find("\"invoke\" | \"ok\" | \"fail\" | \"info\"") != std::string::npos);
}

}  // namespace raftd::lincheck
