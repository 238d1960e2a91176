#include "sim.h"

#include <doctest/doctest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string>

namespace raftd::sim {
namespace {

SimOptions small(uint64_t seed, uint32_t faults) {
  SimOptions o;
  o.seed = seed;
  o.nodes = 3;
  o.groups = 2;
  o.steps = 600;
  o.faults = faults;
  return o;
}

struct Run {
  int status = -1;
  std::string out;
};

// Runs raftd-sim (path from the meson test's environment) and captures its output.
Run run_sim(const std::string& args) {
  const char* bin = std::getenv("RAFTD_SIM");
  REQUIRE_MESSAGE(bin != nullptr, "RAFTD_SIM is not set");
  Run r;
  FILE* p = popen((std::string(bin) + " " + args + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  size_t n = 0;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// A mutation must be caught: `raftd-sim --bug NAME --seeds N` fails with a violation of the
// expected kind (one of `kinds`: the checkers that see this bug) and says how to replay it. A
// violation of another kind (a liveness failure the mutation provoked, or a core bug the
// default seed tests report on their own) is noted and the search goes on after that seed, so
// the answer is "caught within N seeds", not "something failed first".
void expect_caught(const std::string& bug, uint64_t seeds, std::initializer_list<const char*> kinds,
                   const std::string& options = "") {
  uint64_t first = 1;
  std::string skipped;
  while (first <= seeds) {
    const Run r = run_sim("--bug " + bug + " --seeds " + std::to_string(seeds - first + 1) +
                          " --first-seed " + std::to_string(first) + options);
    INFO(r.out.substr(0, 3000));
    REQUIRE_MESSAGE(r.status == 1, "not caught in seeds 1..", seeds, skipped);
    CHECK(r.out.find("replay: raftd-sim --seed ") != std::string::npos);
    CHECK(r.out.find("--bug " + bug) != std::string::npos);
    const std::string line = r.out.substr(0, r.out.find('\n'));
    uint64_t seed = 0;
    REQUIRE(std::sscanf(line.c_str(), "seed %lu: VIOLATION: ", &seed) == 1);
    for (const char* k : kinds) {
      if (line.find(k) != std::string::npos) return;
    }
    skipped += "\n  skipped: " + line;
    first = seed + 1;
  }
  FAIL("no violation of the expected kind in seeds 1..", seeds, skipped);
}

}  // namespace

TEST_CASE("sim: the same seed replays the same run (trace hash)") {
  const SimResult a = run_simulation(small(11, kFaultAll));
  const SimResult b = run_simulation(small(11, kFaultAll));
  const SimResult c = run_simulation(small(12, kFaultAll));
  CHECK(a.ok);
  CHECK(a.trace_hash == b.trace_hash);
  CHECK(a.stats.events == b.stats.events);
  CHECK(a.stats.ops_ok == b.stats.ops_ok);
  CHECK(a.trace_hash != c.trace_hash);
}

TEST_CASE("sim: a calm cluster elects, commits and serves every client") {
  const SimResult r = run_simulation(small(3, kFaultNone));
  REQUIRE_MESSAGE(r.ok, r.violation, "\n", r.details);
  CHECK(r.stats.elections >= 2);  // one leader per group at least
  CHECK(r.stats.committed > 100);
  CHECK(r.stats.ops_ok > 100);
  CHECK(r.stats.crashes == 0);
  CHECK(r.stats.dropped == 0);
}

TEST_CASE("sim: every fault class alone and together, correct core, no violation") {
  for (uint32_t faults : {uint32_t{kFaultNetwork}, uint32_t{kFaultPartition}, uint32_t{kFaultCrash},
                          uint32_t{kFaultAll}}) {
    for (uint64_t seed = 1; seed <= 4; ++seed) {
      CAPTURE(faults);
      CAPTURE(seed);
      const SimResult r = run_simulation(small(seed, faults));
      CHECK_MESSAGE(r.ok, r.violation, "\n", r.details);
      if (faults & kFaultCrash) CHECK(r.stats.crashes > 0);
    }
  }
}

TEST_CASE("sim: the log-matching checker sees a diverged entry or predecessor at once") {
  for (Diverge d : {Diverge::kData, Diverge::kPrevTerm}) {
    CAPTURE(static_cast<int>(d));
    SimOptions o = small(3, kFaultNone);
    o.diverge = d;
    o.diverge_index = 20;
    const SimResult r = run_simulation(o);
    CHECK_FALSE(r.ok);
    CHECK(r.violation.find("log matching: nodes ") != std::string::npos);
    CHECK(r.violation.find("index 20 of term") != std::string::npos);
    CHECK(r.violation.find(d == Diverge::kData ? "different entries"
                                               : "entries at 19 have terms") != std::string::npos);
  }
}

TEST_CASE("sim: modes are drawn per seed, can be forced, and replay") {
  int membership = 0, plain = 0;
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    SimOptions o = small(seed, kFaultAll);
    o.steps = 50;
    const SimResult r = run_simulation(o);
    membership += r.modes.find("membership=on") != std::string::npos;
    plain += r.modes.find("prevote=off") != std::string::npos;
  }
  CHECK(membership > 0);
  CHECK(membership < 12);
  CHECK(plain > 0);
  SimOptions o = small(21, kFaultAll);
  o.force = {{"membership", true}, {"prevote", false}, {"split-hs", true}};
  const SimResult a = run_simulation(o);
  const SimResult b = run_simulation(o);
  CHECK(a.trace_hash == b.trace_hash);
  CHECK(a.modes.find("membership=on prevote=off") != std::string::npos);
  CHECK(a.modes.find("split-hs=on") != std::string::npos);
  CHECK(replay_command(o) ==
        "raftd-sim --seed 21 --nodes 3 --groups 2 --steps 600 --faults all --mode "
        "membership=on --mode prevote=off --mode split-hs=on");
  std::string name;
  bool on = false;
  CHECK(parse_mode("disk-stall=on", &name, &on));
  CHECK((name == "disk-stall" && on));
  CHECK_FALSE(parse_mode("disk-stall=maybe", &name, &on));
  CHECK_FALSE(parse_mode("no-such-mode=on", &name, &on));
}

TEST_CASE("sim: coalesce-hs writes only the newest hard state, correct core, no violation") {
  uint64_t coalesced = 0;
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    SimOptions o = small(seed, kFaultAll);
    o.force = {{"coalesce-hs", true}, {"membership", true}, {"split-hs", seed % 2 == 0}};
    const SimResult r = run_simulation(o);
    INFO("seed ", seed, ": ", r.violation, "\n", r.details);
    CHECK(r.ok);
    CHECK(r.modes.find("coalesce-hs=on") != std::string::npos);
    coalesced += r.stats.hs_coalesced;
    if (seed == 1) CHECK(run_simulation(o).trace_hash == r.trace_hash);
  }
  CHECK(coalesced > 0);  // hard states were left unwritten, a newer one standing in
  SimOptions off = small(1, kFaultAll);
  off.force = {{"coalesce-hs", false}};
  CHECK(run_simulation(off).stats.hs_coalesced == 0);
}

TEST_CASE("sim: lazy-commit leaves commit-only hard states for a later write, no violation") {
  uint64_t lazy = 0, lost = 0;
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    SimOptions o = small(seed, kFaultAll);
    o.force = {{"lazy-commit", true},
               {"membership", true},
               {"compaction", seed % 2 == 1},
               {"coalesce-hs", seed % 4 == 0}};
    const SimResult r = run_simulation(o);
    INFO("seed ", seed, ": ", r.violation, "\n", r.details);
    CHECK(r.ok);
    CHECK(r.modes.find("lazy-commit=on") != std::string::npos);
    lazy += r.stats.hs_lazy;
    lost += r.stats.hs_lazy_lost;
    if (seed == 1) CHECK(run_simulation(o).trace_hash == r.trace_hash);
  }
  CHECK(lazy > 0);  // the core marked hard states lazy and the driver left them
  CHECK(lost > 0);  // and crashes found some unwritten: restarts with an older commit index
  SimOptions off = small(1, kFaultAll);
  off.force = {{"lazy-commit", false}};
  CHECK(run_simulation(off).stats.hs_lazy == 0);
}

TEST_CASE("sim: the flow-control check measures what stalled followers hold unsynced") {
  uint64_t peak = 0;
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    SimOptions o = small(seed, kFaultAll);
    o.force = {{"disk-stall", true}};
    const SimResult r = run_simulation(o);
    INFO("seed ", seed, ": ", r.violation);
    CHECK(r.ok);
    CHECK(r.stats.unsynced_peak_pct <= 100);
    peak = std::max(peak, r.stats.unsynced_peak_pct);
  }
  CHECK(peak > 0);  // followers did hold entries from a leader before making them durable
}

TEST_CASE("sim: membership changes in a calm cluster: spares join, leaders leave, all agree") {
  int changes = 0, destroyed = 0;
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    SimOptions o = small(seed, kFaultNone);
    o.steps = 1500;
    o.force = {{"membership", true}};
    const SimResult r = run_simulation(o);
    CAPTURE(seed);
    CHECK_MESSAGE(r.ok, r.violation, "\n", r.details);
    CHECK(r.stats.committed > 100);
    changes += static_cast<int>(r.stats.conf_changes);
    destroyed += static_cast<int>(r.stats.destroyed);
  }
  CHECK(changes >= 6);
  CHECK(destroyed >= 1);
}

TEST_CASE("sim: the membership checker sees a leader outside its configuration") {
  SimOptions o = small(3, kFaultNone);
  o.diverge = Diverge::kLeaderNotVoter;
  const SimResult r = run_simulation(o);
  CHECK_FALSE(r.ok);
  CHECK(r.violation.find("leads a configuration it is not a voter of") != std::string::npos);
}

TEST_CASE("sim: the availability checker sees a group that cannot elect while healthy") {
  SimOptions o = small(3, kFaultNone);
  o.mute_votes = true;
  const SimResult r = run_simulation(o);
  CHECK_FALSE(r.ok);
  CHECK(r.violation.find("availability: group ") != std::string::npos);
  CHECK(r.details.find("group ") != std::string::npos);
}

// Compaction and snapshot install under membership churn and faults: over a fixed batch of
// seeds every case below happens at least once, so a later change to the simulator (a draw, a
// rate, a threshold) cannot silently stop exercising one of them.
TEST_CASE("sim: compaction mode exercises every snapshot case under churn and faults") {
  SimStats sum;
  for (uint64_t seed = 1; seed <= 24; ++seed) {
    SimOptions o = small(seed, kFaultAll);
    o.steps = 1000;
    o.force = {{"compaction", true}, {"membership", true}};
    const SimResult r = run_simulation(o);
    INFO("seed ", seed, ": ", r.violation, "\n", r.details);
    REQUIRE(r.ok);
    CHECK(r.modes.find("compaction=on") != std::string::npos);
    const SimStats& s = r.stats;
    sum.compactions_leader += s.compactions_leader;
    sum.compactions_follower += s.compactions_follower;
    sum.app_flushes += s.app_flushes;
    sum.snapshots_sent += s.snapshots_sent;
    sum.snap_new_member += s.snap_new_member;
    sum.snap_lagging += s.snap_lagging;
    sum.snap_conf_changed += s.snap_conf_changed;
    sum.snap_conf_learner += s.snap_conf_learner;
    sum.snap_conf_joint += s.snap_conf_joint;
    sum.snap_conf_excludes += s.snap_conf_excludes;
    sum.crash_snapshot_landed += s.crash_snapshot_landed;
    sum.boots_compacted += s.boots_compacted;
    sum.boots_app_ahead += s.boots_app_ahead;
  }
  CHECK(sum.compactions_leader > 0);
  CHECK(sum.compactions_follower > 0);
  CHECK(sum.app_flushes > sum.compactions_leader + sum.compactions_follower);
  CHECK(sum.snapshots_sent > 0);
  CHECK(sum.snap_new_member > 0);        // a member added by a change, empty, needs a snapshot
  CHECK(sum.snap_lagging > 0);           // a member that fell behind the leader's compaction
  CHECK(sum.snap_conf_changed > 0);      // the snapshot brings a configuration change along
  CHECK(sum.snap_conf_learner > 0);      // ... in which the receiver is a learner
  CHECK(sum.snap_conf_joint > 0);        // ... that is joint
  CHECK(sum.snap_conf_excludes > 0);     // ... from before the receiver was added
  CHECK(sum.crash_snapshot_landed > 0);  // durable, on_snapshot_installed never called
  CHECK(sum.boots_compacted > 0);        // a restart from a compacted log
  CHECK(sum.boots_app_ahead > 0);        // ... replaying from the app's durable index
  // Without the mode, one threshold and no flushes of the app's own: it is durable only as the
  // snapshot, so no restart finds it ahead of one.
  SimOptions off = small(4, kFaultAll);
  off.force = {{"compaction", false}};
  const SimResult r = run_simulation(off);
  CHECK(r.ok);
  CHECK(r.stats.boots_app_ahead == 0);
  CHECK(r.stats.app_flushes == r.stats.compactions_leader + r.stats.compactions_follower);
}

TEST_CASE("sim: the durability checker sees a log compacted past the app's durable state") {
  SimOptions o = small(4, kFaultNone);
  o.force = {{"compaction", true}};
  o.compact_past_durable = true;
  const SimResult r = run_simulation(o);
  CHECK_FALSE(r.ok);
  CHECK(r.violation.find("past its app's durable applied index") != std::string::npos);
}

TEST_CASE("sim: faults parse and print") {
  uint32_t f = 0;
  CHECK(parse_faults("none", &f));
  CHECK(f == kFaultNone);
  CHECK(parse_faults("all", &f));
  CHECK(f == kFaultAll);
  CHECK(parse_faults("crash,network", &f));
  CHECK(f == (kFaultCrash | kFaultNetwork));
  CHECK(faults_name(f) == "network,crash");
  CHECK_FALSE(parse_faults("disk", &f));
  CHECK_FALSE(parse_faults("", &f));
  SimOptions o = small(9, kFaultPartition);
  o.bug = "read_without_quorum";
  CHECK(replay_command(o) ==
        "raftd-sim --seed 9 --nodes 3 --groups 2 --steps 600 --faults partition "
        "--bug read_without_quorum");
}

TEST_CASE("raftd-sim: --seed prints the trace hash, usage errors exit 2") {
  const Run a = run_sim("--seed 5 --steps 300");
  const Run b = run_sim("--seed 5 --steps 300");
  CHECK(a.status == 0);
  CHECK(a.out.find("seed 5: ok, trace hash ") != std::string::npos);
  CHECK(a.out == b.out);
  CHECK(run_sim("--seed 1 --bug no_such_bug").status == 2);
  CHECK(run_sim("--seed 1 --faults disk").status == 2);
  CHECK(run_sim("--nodes 0").status == 2);
}

// Violation kinds, as the checkers word them.
constexpr const char* kCompleteness = "lacks index";
constexpr const char* kRecord = "was committed there";
constexpr const char* kTwoLeaders = "two leaders";
constexpr const char* kQuorum = "that no majority of its voters";
constexpr const char* kStale = "not linearizable";
constexpr const char* kInvariant = "invariant:";
constexpr const char* kConf = "configuration changed without a conf change";
constexpr const char* kSleeps = "sleeps (quiesced) under leader";
constexpr const char* kFlow = "flow control:";
constexpr const char* kConfAgree = "has another configuration than node(s) before it";
constexpr const char* kSnapBelowCommit = "installs a snapshot at";

TEST_CASE("raftd-sim mutation: commit_prev_term is caught") {
  // On 5 nodes (first caught at seed 60; 150 on the defaults): the suite's cheapest catch.
  expect_caught("commit_prev_term", 500, {kCompleteness, kRecord, kQuorum},
                " --nodes 5 --groups 3");
}
TEST_CASE("raftd-sim mutation: vote_before_persist is caught") {
  expect_caught("vote_before_persist", 500, {kTwoLeaders, kCompleteness});
}
TEST_CASE("raftd-sim mutation: ack_before_persist is caught") {
  expect_caught("ack_before_persist", 500, {kQuorum});
}
TEST_CASE("raftd-sim mutation: read_without_quorum is caught") {
  expect_caught("read_without_quorum", 500, {kStale});
}
TEST_CASE("raftd-sim mutation: truncate_committed is caught") {
  expect_caught("truncate_committed", 500, {kQuorum, kCompleteness, kInvariant, kRecord});
}
TEST_CASE("raftd-sim mutation: learner_in_quorum is caught") {
  expect_caught("learner_in_quorum", 100, {kQuorum, kCompleteness});
}
TEST_CASE("raftd-sim mutation: conf_at_append is caught") {
  expect_caught("conf_at_append", 50, {kConf});
}
TEST_CASE("raftd-sim mutation: quiesce_without_lease is caught") {
  expect_caught("quiesce_without_lease", 300, {kSleeps});
}
TEST_CASE("raftd-sim mutation: read_index_unconfirmed is caught") {
  expect_caught("read_index_unconfirmed", 500, {kStale});
}
TEST_CASE("raftd-sim mutation: heartbeat_frees_inflight is caught") {
  expect_caught("heartbeat_frees_inflight", 300, {kFlow});
}
TEST_CASE("raftd-sim mutation: conf_apply_late is caught") {
  expect_caught("conf_apply_late", 50, {kConfAgree});
}
TEST_CASE("raftd-sim mutation: snapshot_below_commit is caught") {
  expect_caught("snapshot_below_commit", 50, {kSnapBelowCommit});
}

}  // namespace raftd::sim
