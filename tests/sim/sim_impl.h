// Internals of the simulator (sim.h), shared by sim.cc, sim_faults.cc, sim_checks.cc and
// sim_membership.cc: the world's state and the Sim class that drives it. Not a public API.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include "lincheck.h"
#include "prng.h"
#include "raftd/raft/bugs.h"
#include "raftd/raft/memory_storage.h"
#include "raftd/raft/raft.h"
#include "sim.h"

namespace raftd::sim::detail {

using raft::Entry;
using raft::Message;
using raft::MessageType;

inline constexpr int64_t kUsPerMs = 1000;
inline constexpr int64_t kTickUs = 10 * kUsPerMs;  // one raft tick of simulated time
inline constexpr uint32_t kElectionTicks = 10;
// After the faults heal, every group must elect a leader and commit a fresh entry within this
// many ticks: several randomized election rounds (10-20 ticks each) plus snapshot catch-up.
inline constexpr uint32_t kLivenessTicks = 600;
// Availability during faults (Sim::availability_tick): a group that has been healthy (a
// majority of its voters up and cut off from everyone else) for kAvailSettleTicks proposes a
// marker entry, which must commit before it has been healthy for kAvailTicks. The bound: an
// election needs a follower timeout (at most 2 x 10 ticks after the last heartbeat; CheckQuorum
// steps a cut-off leader down within as long), PreVote and vote round trips (4 one-way delays
// of up to 15 ms, plus up to 150 ms spikes), a durable vote (disk up to 25 ms), and with 20%
// loss, split votes and leader transfers several rounds: 300 ticks leave room for more than
// ten failed rounds, so a miss is a stuck group, not bad luck.
inline constexpr uint32_t kAvailSettleTicks = 100;
inline constexpr uint32_t kAvailTicks = kAvailSettleTicks + 300;
// A client gives up on an operation after this long; its outcome is then unknown (info).
inline constexpr int64_t kClientTimeoutUs = 2000 * kUsPerMs;
// Without the `compaction` mode a replica compacts its log this far behind apply (the app's
// state becomes durable only as the snapshot); with it, each seed draws its own threshold and
// the app makes its state durable on a schedule of its own.
inline constexpr uint64_t kCompactAfterEntries = 64;
inline constexpr uint32_t kLogCheckEveryTicks = 25;  // committed-prefix check period
inline constexpr uint64_t kLogCheckDepth = 256;  // entries below commit each prefix check covers
// Log-matching facts: the term of an entry whose predecessor the core no longer knows (it sits
// at a compaction boundary; the committed-prefix check covers it).
inline constexpr uint64_t kUnknownTerm = UINT64_MAX;
inline constexpr size_t kTraceTail = 48;  // events printed with a violation
// Guard against a livelocked run (the simulator must terminate whatever the core does).
inline constexpr uint64_t kEventsMax = 20'000'000;

// ---------------------------------------------------------------------------------------------
// Per-seed fault mix ("swarm testing", as TigerBeetle's VOPR does): each seed draws its own
// rates, so some runs are calm and others brutal, and different bugs surface in different mixes.
struct Swarm {
  uint32_t loss_ppm = 0;
  uint32_t dup_ppm = 0;
  int64_t delay_min_us = 500;
  int64_t delay_max_us = 5 * kUsPerMs;
  uint32_t spike_ppm = 0;  // chance a message is delayed by up to kSpikeUs
  int64_t disk_min_us = 200;
  int64_t disk_max_us = 4 * kUsPerMs;
  uint32_t crash_ppm = 0;      // per world tick: crash one node
  uint32_t crash_all_ppm = 0;  // per world tick: crash every node at once (power loss)
  // Targeted at leaders, where the subtle bugs live: a new leader crashes within
  // kFreshLeaderCrashUs of its election, and partitions isolate a leader.
  uint32_t fresh_leader_crash_ppm = 0;
  // Failpoints as in etcd's robustness tests: a leader crashes right after its commit index
  // advanced, before the news reaches its followers; more likely after its first commit in its
  // term, the moment a new leader's view of the log is settled (thesis §3.6.2, §6.4).
  uint32_t after_commit_crash_ppm = 0;
  uint32_t after_first_commit_crash_ppm = 0;
  // Flow control: small messages and windows make a new leader replicate its predecessors'
  // entries over several round trips (commit_prev_term needs that).
  uint32_t max_msg_bytes = 512;
  uint32_t max_inflight_msgs = 16;
  // Quiescing (raft.h): idle groups stop heartbeating; the driver wakes every replica when a
  // node crashes or restarts or the network changes, as the daemon's transport will. 0 = off.
  uint32_t quiesce_after_ticks = 0;
  int64_t restart_min_us = 20 * kUsPerMs;
  int64_t restart_max_us = 800 * kUsPerMs;
  uint32_t landed_ppm = 0;     // chance the write in flight at a crash became durable
  uint32_t partition_ppm = 0;  // per world tick, when no partition is active
  // Leader churn (a Jepsen nemesis): every partition isolates some group's leader, briefly, so
  // leaders keep changing while stale leaders hold uncommitted entries.
  bool leader_churn = false;
  uint32_t transfer_ppm = 0;  // per world tick per group
  int64_t think_max_us = 30 * kUsPerMs;
  Modes modes;  // the seed's configuration and driver modes (sim.h)
  // Membership: chance per world tick per group that its leader proposes a random change.
  uint32_t conf_ppm = 0;
  uint32_t remove_leader_ppm = 0;  // of those changes: remove the leader itself
  uint32_t lazy_ready_ppm = 0;     // on a lazy-Ready node: chance an input is not drained
  uint32_t split_landed_ppm = 0;   // at a crash: the in-flight batch's entries landed, not its HS
  uint32_t stall_ppm = 0;          // per world tick: a node's disk stalls
  int64_t stall_max_us = 0;
  uint32_t wire_ppm = 0;  // at a crash: the node's in-flight messages still arrive
  // Compaction (sim.h, Modes::compaction): compact once the app's durable state is this many
  // entries past the snapshot; the app makes its state durable every `flush_every` entries
  // applied (0: only when the log is compacted); chance that a node crashes while a batch
  // holding a snapshot is in flight, the batch landing (durable, completion never reported).
  uint64_t compact_after = kCompactAfterEntries;
  uint64_t flush_every = 0;
  uint32_t snap_crash_ppm = 0;
  // lazy-commit: per tick of a node with an idle disk, chance that it writes its lazy hard
  // states (raftd does at every tick; rarer here, so that crashes find more of them unwritten).
  uint32_t lazy_flush_ppm = 0;
};
inline constexpr int64_t kSpikeUs = 150 * kUsPerMs;
inline constexpr int64_t kFreshLeaderCrashUs = 30 * kUsPerMs;

Swarm draw_swarm(Prng& rng, const SimOptions& o);
// ---------------------------------------------------------------------------------------------
// The application: a key/value map. Entry data: "w <key> <value>", "c <key> <expected> <new>",
// "m <n>" (liveness marker); values are decimal integers, "n" is null.
struct App {
  std::map<std::string, std::string> kv;
  LogIndex applied;

  std::string encode() const {
    std::string s;
    for (const auto& [k, v] : kv) s += k + "=" + v + "\n";
    return s;
  }
  static App decode(const std::string& data, LogIndex applied) {
    App a;
    a.applied = applied;
    std::istringstream in(data);
    std::string line;
    while (std::getline(in, line)) {
      const size_t eq = line.find('=');
      RAFTD_ASSERT(eq != std::string::npos, "sim: bad snapshot data");
      a.kv[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return a;
  }
  std::string get(const std::string& key) const {
    auto it = kv.find(key);
    return it == kv.end() ? "n" : it->second;
  }
  // Applies one command; returns whether a cas succeeded (true for everything else).
  bool apply(const std::string& data) {
    std::istringstream in(data);
    std::string op, key, a, b;
    in >> op >> key >> a >> b;
    if (op == "w") kv[key] = a;
    if (op != "c") return true;
    if (get(key) != a) return false;
    kv[key] = b;
    return true;
  }
};

inline nlohmann::json value_json(const std::string& v) {
  return v == "n" ? nlohmann::json() : nlohmann::json(std::stoll(v));
}

// ---------------------------------------------------------------------------------------------
struct DiskWrite {
  int group = 0;
  std::optional<raft::Snapshot> snapshot;
  std::vector<Entry> entries;
  std::optional<raft::HardState> hard_state;
  std::vector<Message> after_persist;
  // Its hard state newly commits a configuration change entry: it must be durable before the
  // entries of any later Ready of the group (raft.h "Hard state"), so no driver mode defers it
  // past them (coalesce-hs) or lands later entries without it (split-hs).
  bool commits_conf = false;
};

// One group's replica on one node: durable state (survives crashes) and volatile state.
struct Replica {
  raft::MemoryLogStorage storage;  // entries and snapshot metadata the disk made durable
  raft::HardState hard_state;      // durable
  // The application's durable state (its own file, as raftd's state machine keeps one): the
  // map as of `durable.applied` and the configuration the checker derived as of that index. A
  // restart boots from (snapshot, hard state, durable.applied); the log is compacted only up to
  // durable.applied, never beyond (Sim::maybe_compact, checked in Sim::boot).
  App durable;
  raft::ConfState durable_conf;
  bool added = false;  // created by a membership change (a new member), not an initial one
  // The highest commit index the checker saw the core report since boot: a snapshot the core
  // installs must be newer (it would rewind the state machine otherwise).
  LogIndex seen_commit;

  std::unique_ptr<raft::Group> group;  // null while the node is down
  App app;
  // The configuration as of the applied index, as the checker saw it change: only by applying
  // a conf change entry or installing a snapshot (membership checks).
  raft::ConfState conf;
  LogIndex checked_commit;            // commit indexes up to here are in the record
  Term first_commit_term;             // last term in which this replica committed as leader
  std::map<uint64_t, int> reads;      // read request id -> client
  std::map<LogIndex, int> proposals;  // log index -> client waiting for it
  // Flow control (Sim::note_unsynced): the entries this replica accepted, as a follower, from
  // the appends of the leader of `unsynced_term` and that are not durable yet: index -> (term,
  // bytes as max_msg_bytes counts them), their total and the largest.
  Term unsynced_term;
  std::map<LogIndex, std::pair<Term, uint64_t>> unsynced;
  uint64_t unsynced_bytes = 0;
  uint64_t unsynced_max_entry = 0;
  // coalesce-hs: the newest hard state of Readies that had nothing else to write, waiting for
  // the node's next batch (volatile: lost in a crash).
  std::optional<raft::HardState> hs_slot;
  // lazy-commit: the newest lazy hard state not yet queued for the disk (volatile).
  std::optional<raft::HardState> lazy_hs;
  // Configuration change entries handed out to be written (index -> term; an entry replaced
  // since has another term), and the commit index of the newest hard state handed out: which
  // hard states newly commit a change (DiskWrite::commits_conf).
  std::map<LogIndex, Term> conf_entries;
  LogIndex hs_commit;  // volatile: the durable one at boot
};

struct Node {
  uint64_t id = 0;
  bool up = true;
  uint64_t incarnation = 0;
  int64_t tick_period_us = kTickUs;
  // Per group: null when this node hosts no replica of it (never added, or destroyed after
  // applying its removal; a removed node id never rejoins that group, as in etcd).
  std::vector<std::unique_ptr<Replica>> replicas;
  std::vector<bool> retired;         // per group: the replica was destroyed
  std::vector<LogIndex> removed_at;  // per group: the replica applied its removal at this index
  bool lazy_ready = false;           // steps several inputs before calling ready() (driver mode)
  int64_t stall_until = 0;           // the disk completes nothing before this time
  std::vector<DiskWrite> disk;       // waiting for the next batch, in Ready order
  std::vector<DiskWrite> writing;    // the batch in flight (one write + one fsync)
  // The Ready every drain of this node's replicas goes through (Group::ready(Ready*)), kept
  // between drains as the daemon keeps one, so the core's traded buffers are exercised.
  raft::Ready kept_ready;
};

struct Client {
  int id = 0;
  int group = 0;
  bool busy = false;
  uint64_t serial = 0;  // operation number, to match timeouts
  lincheck::OpKind f = lincheck::OpKind::kRead;
  std::string key;
  nlohmann::json value;
  int node = -1;  // where the pending operation waits
  LogIndex index;
  Term term;
  uint64_t read_id = 0;
  std::optional<LogIndex> read_index;
};

enum class Ev : uint8_t {
  kTick,
  kWorld,
  kDeliver,
  kDiskDone,
  kRestart,
  kCrash,
  kHealPartition,
  kClientStart,
  kClientTimeout,
  kSnapshotReport,
};

struct Event {
  int64_t t = 0;
  uint64_t seq = 0;
  Ev kind = Ev::kTick;
  int node = 0;
  int group = 0;
  uint64_t a = 0, b = 0;
  bool operator>(const Event& o) const { return t != o.t ? t > o.t : seq > o.seq; }
};

struct TraceRec {
  int64_t t;
  std::string what;
};

// The committed log as the checkers know it, per group: the term of every committed index and
// the data some replica applied there.
struct Record {
  uint64_t term = 0;   // 0: nothing known yet
  uint64_t drain = 0;  // Sim::drain_seq_ of the drain in which it was first known committed
  bool applied = false;
  std::string data;
};

// Log matching, per entry: what the first replica to hold an entry at (index, term) held there.
// Every replica's entry at the same (index, term) must carry the same type and data and follow
// an entry of the same term; by induction over the index, two logs that share an (index, term)
// are identical up to it (thesis Fig. 3.2).
struct EntryFact {
  uint64_t term = 0;
  uint64_t prev_term = kUnknownTerm;  // term of the entry at index - 1
  uint64_t data_hash = 0;             // type and data (FNV-1a)
  int node = 0;                       // first holder, for the report
};

inline uint64_t entry_hash(const Entry& e) {
  uint64_t h = 0xcbf29ce484222325ULL ^ static_cast<uint64_t>(e.type);
  h *= 0x100000001b3ULL;
  for (const char ch : e.data) {
    h ^= static_cast<unsigned char>(ch);
    h *= 0x100000001b3ULL;
  }
  return h;
}

class Sim {
 public:
  explicit Sim(const SimOptions& o) : o_(o), rng_(o.seed) {}
  SimResult run();

 private:
  // setup
  void init();
  raft::Config make_config(uint64_t node, int group);
  void boot(Node& n);
  // event loop
  void schedule(Event e);
  void dispatch(const Event& e);
  void world_tick();
  // raft driving
  void drain(int node, int group);
  void maybe_drain(int node, int group);
  void process_ready(int node, int group, raft::Ready& rd);
  void apply(int node, int group, const Entry& e);
  void send(int from, const Message& m);
  void deliver(const Event& e);
  void disk_enqueue(int node, DiskWrite w);
  bool coalesce_hard_state(int node, DiskWrite* w);
  void disk_start(int node);
  void disk_done(const Event& e);
  void make_durable(int node, const DiskWrite& w, bool with_hard_state);
  void queue_lazy_hard_states(int node);  // lazy-commit: onto the node's disk queue
  void maybe_compact(int node, int group);
  void maybe_flush_app(int node, int group);
  void note_snapshot_install(int node, int group, const raft::Snapshot& snap);
  // faults
  void inject_faults();
  void crash(int node, bool land = false);
  void restart(int node);
  void start_partition();
  void heal();
  void wake_all();
  void maybe_stall_disk();
  // membership (sim_membership.cc)
  void membership_tick(int group);
  void leave_explicit_joint(int group);
  std::optional<raft::ConfChange> draw_conf_change(int group, const raft::ConfState& cs,
                                                   NodeId leader);
  void create_replica(int node, int group);
  void destroy_removed();
  void destroy_replica(int node, int group);
  void check_conf(int node, int group);
  void note_applied_conf(int node, int group, const raft::Ready& rd);
  // availability during faults (sim_checks.cc)
  void availability_tick();
  void fault_changed();
  void check_quiesced();
  bool group_healthy(int group, std::string* why);
  bool marker_tick(int group);
  // clients
  void client_start(int c);
  void client_complete(Client& c, lincheck::EventType type, nlohmann::json value = {});
  void client_record(const Client& c, lincheck::EventType type, const nlohmann::json& value);
  void check_reads(int node, int group);
  // checks
  void check_replica(int node, int group);
  void record_commit(int group, LogIndex i, Term t, int node);
  void check_leader_completeness(int node, int group);
  uint64_t drain_seq_ = 0;  // drains begun (Record::drain)
  // `drain`: the drain_seq_ of the drain that ends with this check.
  void check_commit_quorum(int node, int group, const raft::ConfState& before, uint64_t drain);
  bool durably_holds(int node, int group, LogIndex i, Term t);
  void check_logs();
  void check_new_entries(int node, int group, const std::vector<Entry>& entries);
  void note_unsynced(int node, int group, const Message& m, const std::vector<bool>& had);
  void check_entry_fact(int node, int group, const Entry& e, uint64_t data_hash,
                        uint64_t prev_term);
  void liveness_tick();
  std::string describe_group(int group);
  void violate(std::string what);
  void trace(std::string what);
  void hash(uint64_t x) {
    hash_ ^= x;
    hash_ *= 0x100000001b3ULL;
  }

  Replica& rep(int node, int group) {
    return *nodes_[static_cast<size_t>(node)].replicas[static_cast<size_t>(group)];
  }
  bool hosts(int node, int group) {
    return nodes_[static_cast<size_t>(node)].replicas[static_cast<size_t>(group)] != nullptr;
  }
  // The running replica of `group` on `node`, or null (node down, or no replica there).
  raft::Group* running(int node, int group) {
    if (!hosts(node, group)) return nullptr;
    return rep(node, group).group.get();
  }
  Node& node(int n) { return nodes_[static_cast<size_t>(n)]; }

  SimOptions o_;
  int n_nodes_ = 0;             // initial members plus spares
  raft::SnapshotMeta genesis_;  // every replica boots from it, also one added later
  Prng rng_;
  Swarm swarm_;
  int64_t now_ = 0;
  uint64_t seq_ = 0;
  std::vector<Event> heap_;
  std::map<uint64_t, Message> in_flight_;  // message id -> message
  std::set<uint64_t> pipelined_;           // ids of appends of a leader's pipelined window
  std::deque<Node> nodes_;                 // a deque: Node is not copyable and never moves
  std::vector<Client> clients_;
  std::vector<std::vector<bool>> blocked_;  // blocked_[from][to]
  uint64_t partition_gen_ = 0;
  bool partitioned_ = false;
  std::vector<std::vector<Record>> record_;                 // [group][index]
  std::vector<std::vector<std::vector<EntryFact>>> facts_;  // [group][index] -> one per term
  // (group, term) -> (node id, incarnation): one leadership per term, so the same node leading
  // a term again after a crash is a violation too (it would have forgotten its term).
  std::map<std::pair<int, uint64_t>, std::pair<uint64_t, uint64_t>> leaders_;
  std::vector<lincheck::Event> history_;
  uint64_t next_value_ = 1;
  uint64_t next_read_id_ = 1;
  uint64_t world_ticks_ = 0;
  bool healed_ = false;
  int64_t heal_time_ = 0;
  std::vector<bool> live_;                                       // per group, after heal
  std::vector<std::optional<std::pair<int, LogIndex>>> marker_;  // per group: (node, index)
  std::vector<Term> marker_term_;
  int64_t live_time_ = -1;
  // Availability during faults, per group: since when the group has been healthy (-1: not
  // healthy), and the marker state of the current window.
  std::vector<int64_t> healthy_since_;
  std::vector<bool> avail_live_;
  // Configuration after each applied conf change, per group: every replica must reach the same.
  std::vector<std::map<uint64_t, raft::ConfState>> conf_record_;
  std::deque<TraceRec> trace_;
  uint64_t hash_ = 0xcbf29ce484222325ULL;
  SimResult result_;
};

}  // namespace raftd::sim::detail
