// The deterministic cluster simulator behind raftd-sim (doc/simulator.md).
//
// One run = N nodes x M Raft groups in one process, driving the real raft core (raft_sim_dep)
// through the same Ready cycle the daemon uses, over a simulated network (loss, delay,
// duplication, reordering, symmetric and asymmetric partitions) and simulated disks (per-node
// FIFO of writes with latency; a crash loses every write not yet durable and may tear the one
// in progress; disks may stall), with crashes, restarts, leader transfers, log compaction and
// snapshots, membership changes (learners, joint configurations, leader removal, spare nodes
// joining), per-seed configuration and driver modes (Modes), and clients doing reads
// (ReadIndex), writes and cas on a small key space per group.
//
// Everything random comes from one Prng seeded with the run's seed, time is simulated, and all
// iteration that affects behaviour is over ordered containers, so a seed replays a run exactly
// and the trace hash proves it.
//
// Checks (the first violation ends the run): after every event, the touched group's
// check_invariants(), at most one leader per (group, term), every newly committed index agrees
// with the record of everything ever committed, and replicas apply the same entry at each
// index, and log matching for every entry a Ready hands out (same index and term on two
// replicas: same data, same term before it), a leader is a voter of its configuration, leader
// completeness, every newly committed entry durable on a majority of the voters,
// configurations change only by applying and agree after each applied change, and a follower
// never holds more unsynced entries from one leader than that leader's inflight window, a
// snapshot the core installs is above the replica's commit index, the log is never compacted
// past what the app made durable and a restart boots from a consistent (snapshot, hard state,
// app's durable applied index); every
// tick, availability of healthy groups and no
// follower asleep under a lost leader; periodically, every replica's committed log prefix
// against that record; at the end, the client histories are linearizable (lincheck.h) and,
// after all faults heal, every group elects a leader and commits a fresh entry within
// kLivenessTicks.
//
// Threading: single-threaded. The selected raft mutation (raftd/raft/bugs.h) is process-wide.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace raftd::sim {

// Fault classes a run may inject (bit set).
enum Faults : uint32_t {
  kFaultNone = 0,
  kFaultNetwork = 1u << 0,    // loss, duplication, delay spikes (reordering is always on)
  kFaultPartition = 1u << 1,  // symmetric splits, isolated nodes, one-way link cuts
  kFaultCrash = 1u << 2,      // crash (single node or every node at once) and restart
  kFaultAll = kFaultNetwork | kFaultPartition | kFaultCrash,
};

// Parses "none", "all", or a comma list of network, partition, crash.
bool parse_faults(const std::string& text, uint32_t* out);
std::string faults_name(uint32_t faults);

// Checker self-tests: the log-matching checker sees node 2's entry at SimOptions::diverge_index
// with other data, or after an entry of another term, as if that replica's log had diverged;
// kLeaderNotVoter: the membership checker sees every leader's configuration without it.
enum class Diverge : uint8_t { kNone, kData, kPrevTerm, kLeaderNotVoter };

// The configuration and driver modes of a run. Each is drawn from the seed (a stream of its own)
// unless forced on or off with SimOptions::force (`--mode NAME=on|off`).
struct Modes {
  bool membership = false;     // leaders propose random membership changes (spare nodes join)
  bool pre_vote = true;        // raft::Config::pre_vote
  bool check_quorum = true;    // raft::Config::check_quorum
  bool quiesce = false;        // raft::Config::quiesce_after_ticks > 0
  bool lazy_ready = false;     // some nodes step several inputs before calling ready()
  bool split_hs = false;       // a crash may land a batch's entries without its hard state
  bool disk_stall = false;     // a node's disk stops completing for a while
  bool wire_survives = false;  // a crashed node's in-flight messages may still arrive
  bool two_to_one = false;     // membership changes may shrink two voters to one
  bool coalesce_hs = false;    // the driver writes only the newest of the queued hard states
  // Compaction thresholds of 1-128 entries, the application making its state durable on a
  // schedule of its own (compaction waits for it), crashes that land a snapshot install.
  bool compaction = false;
  // The driver writes a Ready's lazy hard state (raft.h "Lazy commit") only with the node's
  // next batch or at a tick, and a crash loses it.
  bool lazy_commit = false;
};
// Mode names, in the order of Modes: membership, prevote, checkquorum, quiesce, lazy-ready,
// split-hs, disk-stall, wire-survives, two-to-one, coalesce-hs, compaction, lazy-commit.
const std::vector<std::string>& mode_names();
bool set_mode(Modes* m, const std::string& name, bool on);  // false: unknown name
// "NAME=on|off" -> (name, on); false when malformed or unknown.
bool parse_mode(const std::string& text, std::string* name, bool* on);
std::string modes_name(const Modes& m);  // "membership=on prevote=off ..."

struct SimOptions {
  uint64_t seed = 1;
  int nodes = 3;
  int groups = 2;
  uint32_t steps = 2000;  // raft ticks (10 ms of simulated time each) with faults on
  uint32_t faults = kFaultAll;
  int clients_per_group = 3;
  int keys_per_group = 2;
  int spares = 3;  // extra nodes that may join groups in membership mode (nodes + spares <= 9)
  std::map<std::string, bool> force;  // modes forced on/off (mode_names()); others per seed
  std::string bug = "none";           // a raftd::raft::Bug name (raft_sim_dep mutation)
  bool trace = false;                 // print every event to stdout
  Diverge diverge = Diverge::kNone;   // tests only; not part of replay_command()
  uint64_t diverge_index = 0;
  bool mute_votes = false;  // tests only: every (pre-)vote response is lost (availability)
  // Tests only: the driver compacts at the applied index, past what the app made durable (a
  // self-test of the durability check; compaction mode only).
  bool compact_past_durable = false;
};

struct SimStats {
  uint64_t events = 0;
  uint64_t messages = 0;
  uint64_t dropped = 0;
  uint64_t crashes = 0;
  uint64_t partitions = 0;
  uint64_t elections = 0;  // distinct (group, term) leaders
  uint64_t snapshots = 0;  // snapshots installed by followers
  // Compaction and snapshots (the `compaction` mode makes them frequent; a test asserts that a
  // batch of seeds exercises each case).
  uint64_t compactions_leader = 0;     // log compactions on a replica that was leader
  uint64_t compactions_follower = 0;   // ... on one that was not
  uint64_t app_flushes = 0;            // the application made its state durable
  uint64_t snapshots_sent = 0;         // snapshots a leader sent (send_snapshot)
  uint64_t snap_new_member = 0;        // installed on a replica added by a change, empty before
  uint64_t snap_lagging = 0;           // installed on a replica that had applied entries before
  uint64_t snap_conf_changed = 0;      // the snapshot's configuration was not the receiver's
  uint64_t snap_conf_learner = 0;      // the snapshot's configuration has the receiver as learner
  uint64_t snap_conf_joint = 0;        // the snapshot's configuration is joint
  uint64_t snap_conf_excludes = 0;     // the snapshot's configuration lacks the receiver
  uint64_t crash_snapshot_landed = 0;  // a crash after a snapshot was durable, before the core
                                       // heard (on_snapshot_installed never called)
  uint64_t boots_compacted = 0;        // a replica restarted from a snapshot (index > 0)
  uint64_t boots_app_ahead = 0;  // ... whose application was durable beyond the snapshot index
  uint64_t ops_ok = 0, ops_fail = 0, ops_info = 0;
  uint64_t committed = 0;      // entries in the commit record, all groups
  uint64_t conf_changes = 0;   // conf change entries applied (first replica)
  uint64_t destroyed = 0;      // replicas destroyed after applying their removal
  uint64_t avail_windows = 0;  // availability windows that committed their marker
  uint64_t stalls = 0;         // disk stalls
  uint64_t hs_coalesced = 0;   // coalesce-hs: hard states never written (a newer one stood in)
  uint64_t hs_lazy = 0;        // lazy-commit: hard states left for a later write
  uint64_t hs_lazy_lost = 0;   // lazy-commit: replicas whose lazy hard state a crash lost
  // Flow control: the most entry bytes a follower held from one leader and not durable yet, in
  // percent of that leader's window (the check fails above 100).
  uint64_t unsynced_peak_pct = 0;
  int64_t sim_ms = 0;
};

struct SimResult {
  bool ok = true;
  std::string violation;  // the first violation, one line
  std::string details;    // trace excerpt, lincheck report
  uint64_t trace_hash = 0;
  SimStats stats;
  std::string modes;  // modes_name() of the run's modes
};

SimResult run_simulation(const SimOptions& options);

// The command line that replays `options` exactly.
std::string replay_command(const SimOptions& options);

}  // namespace raftd::sim
