// raftd-sim: runs the deterministic cluster simulator (sim.h, doc/simulator.md) for one seed
// or a range of seeds. Exit status: 0 every run passed, 1 a run found a violation (its seed and
// the command that replays it are printed), 2 bad usage.
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstring>
#include <string>

#include "raftd/raft/bugs.h"
#include "sim.h"

namespace {

constexpr int kExitViolation = 1;
constexpr int kExitUsage = 2;
constexpr int kNodesMax = 9;    // the directed link matrix and traces stay readable
constexpr int kGroupsMax = 64;  // a run must stay seconds long
constexpr size_t kAbortNoteBytes = 512;

// A core assertion aborts the process mid-run; the handler still names the seed to replay.
char g_abort_note[kAbortNoteBytes];

void on_abort(int) {
  const ssize_t n = write(STDOUT_FILENO, g_abort_note, strlen(g_abort_note));
  (void)n;
  std::signal(SIGABRT, SIG_DFL);
  std::raise(SIGABRT);
}

void set_abort_note(const raftd::sim::SimOptions& o) {
  const std::string note =
      fmt::format("seed {}: VIOLATION: the raft core aborted (assertion above)\nreplay: {}\n",
                  o.seed, raftd::sim::replay_command(o));
  std::snprintf(g_abort_note, sizeof g_abort_note, "%s", note.c_str());
}

std::string stats_line(const raftd::sim::SimResult& r) {
  const auto& s = r.stats;
  return fmt::format(
      "{} ms simulated, {} events, {} messages ({} dropped), {} crashes, {} partitions, "
      "{} leaders, {} snapshots, {} committed entries, ops {} ok / {} fail / {} info, "
      "{} conf changes, {} replicas removed, {} disk stalls, {} availability windows, "
      "{} hard states coalesced, {} lazy ({} replicas lost one in a crash), peak unsynced {}% of "
      "a window\n"
      "  compactions {} on leaders / {} on followers, {} app flushes, {} snapshots sent, "
      "installed: {} on new members / {} on lagging ones, {} with another configuration ({} "
      "learner, {} joint, {} without the receiver), {} crashes landing one, restarts from a "
      "snapshot: {} ({} with the app ahead of it)\n  modes: {}",
      s.sim_ms, s.events, s.messages, s.dropped, s.crashes, s.partitions, s.elections, s.snapshots,
      s.committed, s.ops_ok, s.ops_fail, s.ops_info, s.conf_changes, s.destroyed, s.stalls,
      s.avail_windows, s.hs_coalesced, s.hs_lazy, s.hs_lazy_lost, s.unsynced_peak_pct,
      s.compactions_leader, s.compactions_follower, s.app_flushes, s.snapshots_sent,
      s.snap_new_member, s.snap_lagging, s.snap_conf_changed, s.snap_conf_learner,
      s.snap_conf_joint, s.snap_conf_excludes, s.crash_snapshot_landed, s.boots_compacted,
      s.boots_app_ahead, r.modes);
}

struct Args {
  raftd::sim::SimOptions o;
  uint64_t seeds = 0;
  uint64_t first_seed = 1;
  std::string faults = "all";
  std::vector<std::string> modes;
  bool verbose = false;
};

void add_options(CLI::App& app, Args& a) {
  auto* seed_opt = app.add_option("--seed", a.o.seed, "run this one seed and print its trace hash");
  app.add_option("--seeds", a.seeds, "run seeds FIRST..FIRST+N-1, stop at the first failure")
      ->excludes(seed_opt);
  app.add_option("--first-seed", a.first_seed, "first seed for --seeds")->capture_default_str();
  app.add_option("--nodes", a.o.nodes, "nodes (voters of every group)")
      ->check(CLI::Range(1, kNodesMax))
      ->capture_default_str();
  app.add_option("--groups", a.o.groups, "Raft groups")
      ->check(CLI::Range(1, kGroupsMax))
      ->capture_default_str();
  app.add_option("--steps", a.o.steps, "raft ticks (10 ms simulated each) with faults on")
      ->check(CLI::Range(1u, 1'000'000u))
      ->capture_default_str();
  app.add_option("--faults", a.faults, "none | all | comma list of network,partition,crash")
      ->capture_default_str();
  app.add_option("--clients", a.o.clients_per_group, "clients per group")
      ->check(CLI::Range(0, 32))
      ->capture_default_str();
  app.add_option("--keys", a.o.keys_per_group, "keys per group")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--spares", a.o.spares, "extra nodes that membership changes may add")
      ->check(CLI::Range(0, kNodesMax))
      ->capture_default_str();
  app.add_option("--mode", a.modes,
                 "force a mode NAME=on|off (else drawn per seed): membership, prevote, "
                 "checkquorum, quiesce, lazy-ready, split-hs, disk-stall, "
                 "wire-survives, two-to-one, coalesce-hs, compaction, lazy-commit");
  app.add_option("--bug", a.o.bug,
                 "reintroduce a classic bug in the core: commit_prev_term, vote_before_persist, "
                 "ack_before_persist, read_without_quorum, truncate_committed, learner_in_quorum, "
                 "conf_at_append, quiesce_without_lease, read_index_unconfirmed, "
                 "heartbeat_frees_inflight, conf_apply_late, snapshot_below_commit")
      ->capture_default_str();
  app.add_flag("--trace", a.o.trace, "print every event of the run");
  app.add_flag("--verbose,-v", a.verbose, "print a line for every seed");
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  CLI::App app{
      "raftd-sim: deterministic simulation of N nodes x M Raft groups (the real raft core) over "
      "a faulty simulated network and disks, with crashes, restarts and clients. Checks safety "
      "after every event (one leader per term, committed entries never change, replicas apply "
      "the same entries, the core's invariants), linearizability of the client histories, and "
      "liveness once the faults heal. A seed replays a run exactly; the trace hash proves it.\n"
      "Exit status: 0 all runs passed, 1 a violation (seed and replay command printed), "
      "2 bad usage."};
  add_options(app, args);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : kExitUsage;
  }
  raftd::sim::SimOptions& o = args.o;
  uint64_t seeds = args.seeds;
  uint64_t first_seed = args.first_seed;
  if (!raftd::sim::parse_faults(args.faults, &o.faults)) {
    fmt::print(stderr,
               "raftd-sim: --faults: expected none, all or a list of "
               "network,partition,crash\n");
    return kExitUsage;
  }
  for (const std::string& m : args.modes) {
    std::string name;
    bool on = false;
    if (!raftd::sim::parse_mode(m, &name, &on)) {
      fmt::print(stderr, "raftd-sim: --mode: expected NAME=on|off with a known NAME, got '{}'\n",
                 m);
      return kExitUsage;
    }
    o.force[name] = on;
  }
  if (o.nodes + o.spares > kNodesMax) o.spares = kNodesMax - o.nodes;
  if (!raftd::raft::parse_sim_bug(o.bug)) {
    fmt::print(stderr, "raftd-sim: --bug: unknown bug '{}'\n", o.bug);
    return kExitUsage;
  }
  std::signal(SIGABRT, on_abort);

  const bool single = seeds == 0;
  if (single) {
    first_seed = o.seed;
    seeds = 1;
  }
  for (uint64_t i = 0; i < seeds; ++i) {
    o.seed = first_seed + i;
    set_abort_note(o);
    const raftd::sim::SimResult r = raftd::sim::run_simulation(o);
    if (!r.ok) {
      fmt::print("seed {}: VIOLATION: {}\nreplay: {}\nmodes: {}\n{}", o.seed, r.violation,
                 raftd::sim::replay_command(o), r.modes, r.details);
      if (!single) fmt::print("{} of {} seeds passed before seed {} failed\n", i, seeds, o.seed);
      return kExitViolation;
    }
    if (single || args.verbose) {
      fmt::print("seed {}: ok, trace hash {:016x}\n  {}\n", o.seed, r.trace_hash, stats_line(r));
    }
  }
  if (!single) {
    fmt::print("{} seeds passed (seeds {}..{}, {} nodes, {} groups, {} steps, faults {}{})\n",
               seeds, first_seed, first_seed + seeds - 1, o.nodes, o.groups, o.steps,
               raftd::sim::faults_name(o.faults), o.bug == "none" ? "" : ", bug " + o.bug);
  }
  return 0;
}
