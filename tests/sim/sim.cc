#include "sim.h"

#include <fmt/format.h>

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

#include "lincheck.h"
#include "prng.h"
#include "raftd/raft/bugs.h"
#include "raftd/raft/memory_storage.h"
#include "raftd/raft/raft.h"

namespace raftd::sim {
namespace {

using raft::Entry;
using raft::Message;
using raft::MessageType;

constexpr int64_t kUsPerMs = 1000;
constexpr int64_t kTickUs = 10 * kUsPerMs;  // one raft tick of simulated time
constexpr uint32_t kElectionTicks = 10;
// After the faults heal, every group must elect a leader and commit a fresh entry within this
// many ticks: several randomized election rounds (10-20 ticks each) plus snapshot catch-up.
constexpr uint32_t kLivenessTicks = 600;
// A client gives up on an operation after this long; its outcome is then unknown (info).
constexpr int64_t kClientTimeoutUs = 2000 * kUsPerMs;
constexpr uint64_t kCompactAfterEntries = 64;  // compact a replica's log this far behind apply
constexpr uint32_t kLogCheckEveryTicks = 25;   // committed-prefix check period
constexpr uint64_t kLogCheckDepth = 256;       // entries below commit each prefix check covers
// Log-matching facts: the term of an entry whose predecessor the core no longer knows (it sits
// at a compaction boundary; the committed-prefix check covers it).
constexpr uint64_t kUnknownTerm = UINT64_MAX;
constexpr size_t kTraceTail = 48;  // events printed with a violation
// Guard against a livelocked run (the simulator must terminate whatever the core does).
constexpr uint64_t kEventsMax = 20'000'000;

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
};
constexpr int64_t kSpikeUs = 150 * kUsPerMs;
constexpr int64_t kFreshLeaderCrashUs = 30 * kUsPerMs;

Swarm draw_swarm(Prng& rng, uint64_t seed, uint32_t faults) {
  Swarm s;
  s.delay_max_us = static_cast<int64_t>(rng.range(1, 15)) * kUsPerMs;
  s.disk_max_us = static_cast<int64_t>(rng.range(1, 25)) * kUsPerMs;
  s.max_msg_bytes = static_cast<uint32_t>(rng.range(1, 16)) * 64;
  s.max_inflight_msgs = static_cast<uint32_t>(rng.range(1, 16));
  s.transfer_ppm = static_cast<uint32_t>(rng.range(0, 3)) * 2'000;
  s.think_max_us = static_cast<int64_t>(rng.range(1, 40)) * kUsPerMs;
  if (faults & kFaultNetwork) {
    s.loss_ppm = static_cast<uint32_t>(rng.range(0, 20)) * 10'000;
    s.dup_ppm = static_cast<uint32_t>(rng.range(0, 10)) * 10'000;
    s.spike_ppm = static_cast<uint32_t>(rng.range(0, 5)) * 5'000;
  }
  if (faults & kFaultPartition) {
    s.leader_churn = rng.below(3) == 0;
    s.partition_ppm = static_cast<uint32_t>(rng.range(5, 40)) * (s.leader_churn ? 5'000 : 1'000);
  }
  if (faults & kFaultCrash) {
    s.crash_ppm = static_cast<uint32_t>(rng.range(2, 30)) * 1'000;
    s.crash_all_ppm = rng.below(2) ? static_cast<uint32_t>(rng.range(1, 5)) * 1'000 : 0;
    s.fresh_leader_crash_ppm = static_cast<uint32_t>(rng.range(0, 6)) * 100'000;
    s.after_commit_crash_ppm = static_cast<uint32_t>(rng.range(0, 3)) * 10'000;
    s.after_first_commit_crash_ppm = static_cast<uint32_t>(rng.range(0, 10)) * 100'000;
    s.landed_ppm = static_cast<uint32_t>(rng.range(0, 10)) * 100'000;
    s.restart_max_us = static_cast<int64_t>(rng.range(30, 1000)) * kUsPerMs;
  }
  // Drawn from a stream of its own so that adding it left every other draw of a seed as it was.
  Prng side(seed ^ 0x51e5ce5eULL);
  s.quiesce_after_ticks = side.below(3) == 0 ? static_cast<uint32_t>(side.range(3, 20)) : 0;
  return s;
}

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

nlohmann::json value_json(const std::string& v) {
  return v == "n" ? nlohmann::json() : nlohmann::json(std::stoll(v));
}

// ---------------------------------------------------------------------------------------------
struct DiskWrite {
  int group = 0;
  std::optional<raft::Snapshot> snapshot;
  std::vector<Entry> entries;
  std::optional<raft::HardState> hard_state;
  std::vector<Message> after_persist;
};

// One group's replica on one node: durable state (survives crashes) and volatile state.
struct Replica {
  raft::MemoryLogStorage storage;  // entries and snapshot metadata the disk made durable
  raft::HardState hard_state;      // durable
  std::string snapshot_data;       // durable: App at storage.snapshot().index

  std::unique_ptr<raft::Group> group;  // null while the node is down
  App app;
  LogIndex checked_commit;            // commit indexes up to here are in the record
  Term first_commit_term;             // last term in which this replica committed as leader
  std::map<uint64_t, int> reads;      // read request id -> client
  std::map<LogIndex, int> proposals;  // log index -> client waiting for it
};

struct Node {
  uint64_t id = 0;
  bool up = true;
  uint64_t incarnation = 0;
  int64_t tick_period_us = kTickUs;
  std::vector<std::unique_ptr<Replica>> replicas;
  std::vector<DiskWrite> disk;     // waiting for the next batch, in Ready order
  std::vector<DiskWrite> writing;  // the batch in flight (one write + one fsync)
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
  uint64_t term = 0;  // 0: nothing known yet
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

uint64_t entry_hash(const Entry& e) {
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
  void process_ready(int node, int group, raft::Ready& rd);
  void apply(int node, int group, const Entry& e);
  void send(int from, const Message& m);
  void deliver(const Event& e);
  void disk_enqueue(int node, DiskWrite w);
  void disk_start(int node);
  void disk_done(const Event& e);
  void make_durable(int node, const DiskWrite& w);
  void maybe_compact(int node, int group);
  // faults
  void inject_faults();
  void crash(int node);
  void restart(int node);
  void start_partition();
  void heal();
  void wake_all();
  // clients
  void client_start(int c);
  void client_complete(Client& c, lincheck::EventType type, nlohmann::json value = {});
  void client_record(const Client& c, lincheck::EventType type, const nlohmann::json& value);
  void check_reads(int node, int group);
  // checks
  void check_replica(int node, int group);
  void record_commit(int group, LogIndex i, Term t, int node);
  void check_logs();
  void check_new_entries(int node, int group, const std::vector<Entry>& entries);
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
  Node& node(int n) { return nodes_[static_cast<size_t>(n)]; }

  SimOptions o_;
  Prng rng_;
  Swarm swarm_;
  int64_t now_ = 0;
  uint64_t seq_ = 0;
  std::vector<Event> heap_;
  std::map<uint64_t, Message> in_flight_;  // message id -> message
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
  std::deque<TraceRec> trace_;
  uint64_t hash_ = 0xcbf29ce484222325ULL;
  SimResult result_;
};

// ---------------------------------------------------------------------------------------------
// Setup

raft::Config Sim::make_config(uint64_t node_id, int group) {
  raft::Config c;
  c.id = NodeId(node_id);
  c.group = GroupId(static_cast<uint64_t>(group) + 1);
  c.election_tick = kElectionTicks;
  c.heartbeat_tick = 1;
  c.max_inflight_msgs = swarm_.max_inflight_msgs;
  c.max_msg_bytes = swarm_.max_msg_bytes;
  c.quiesce_after_ticks = swarm_.quiesce_after_ticks;
  c.random_seed = rng_.fork();
  RAFTD_ASSERT(c.validate().is_ok(), "sim: invalid raft config");
  return c;
}

void Sim::init() {
  auto bug = raft::parse_sim_bug(o_.bug);
  RAFTD_ASSERT(bug.has_value(), "sim: unknown bug name (checked by the CLI)");
  raft::set_sim_bug(*bug);
  swarm_ = draw_swarm(rng_, o_.seed, o_.faults);
  raft::ConfState cs;
  for (int i = 1; i <= o_.nodes; ++i) cs.voters.push_back(NodeId(static_cast<uint64_t>(i)));
  const raft::SnapshotMeta genesis{LogIndex(0), Term(0), cs};
  blocked_.assign(static_cast<size_t>(o_.nodes),
                  std::vector<bool>(static_cast<size_t>(o_.nodes), false));
  for (size_t i = 0; i < static_cast<size_t>(o_.nodes); ++i) {
    Node& n = nodes_.emplace_back();
    n.id = i + 1;
    // Clocks drift: each node ticks at its own rate, within 5% of nominal.
    n.tick_period_us = kTickUs - 500 + static_cast<int64_t>(rng_.below(1001));
    for (int g = 0; g < o_.groups; ++g) {
      auto r = std::make_unique<Replica>();
      r->storage = raft::MemoryLogStorage(genesis);
      n.replicas.push_back(std::move(r));
    }
    boot(n);
    schedule(Event{.t = static_cast<int64_t>(rng_.below(kTickUs)),
                   .kind = Ev::kTick,
                   .node = static_cast<int>(i)});
  }
  record_.resize(static_cast<size_t>(o_.groups));
  facts_.resize(static_cast<size_t>(o_.groups));
  live_.assign(static_cast<size_t>(o_.groups), false);
  marker_.resize(static_cast<size_t>(o_.groups));
  marker_term_.resize(static_cast<size_t>(o_.groups));
  for (int g = 0; g < o_.groups; ++g) {
    for (int k = 0; k < o_.clients_per_group; ++k) {
      const int id = static_cast<int>(clients_.size());
      clients_.push_back(Client{.id = id, .group = g});
      schedule(Event{.t = static_cast<int64_t>(rng_.below(50 * kUsPerMs)),
                     .kind = Ev::kClientStart,
                     .node = id});
    }
  }
  schedule(Event{.t = kTickUs, .kind = Ev::kWorld});
}

// (Re)creates every replica of a node from its durable state, as the daemon does after a crash.
void Sim::boot(Node& n) {
  for (size_t g = 0; g < n.replicas.size(); ++g) {
    Replica& r = *n.replicas[g];
    const raft::SnapshotMeta& snap = r.storage.snapshot();
    raft::HardState hs = r.hard_state;
    // The commit index is persisted lazily; a durable snapshot proves everything up to it
    // committed.
    hs.commit = std::max(hs.commit, snap.index);
    r.group = std::make_unique<raft::Group>(make_config(n.id, static_cast<int>(g)), r.storage,
                                            raft::BootState{hs, snap, snap.index});
    r.app = App::decode(r.snapshot_data, snap.index);
    r.checked_commit = snap.index;  // the next check verifies the durable log against the record
    r.reads.clear();
    r.proposals.clear();
  }
}

void Sim::schedule(Event e) {
  e.seq = seq_++;
  heap_.push_back(e);
  std::push_heap(heap_.begin(), heap_.end(), std::greater<>());
}

// ---------------------------------------------------------------------------------------------
// The event loop

SimResult Sim::run() {
  init();
  const int64_t fault_end = static_cast<int64_t>(o_.steps) * kTickUs;
  while (!heap_.empty() && result_.ok) {
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<>());
    const Event e = heap_.back();
    heap_.pop_back();
    now_ = e.t;
    if (!healed_ && now_ >= fault_end) heal();
    hash(static_cast<uint64_t>(e.t));
    hash(static_cast<uint64_t>(e.kind) << 32 | static_cast<uint64_t>(e.node) << 16 |
         static_cast<uint64_t>(e.group));
    dispatch(e);
    if (++result_.stats.events > kEventsMax) violate("simulator: event budget exceeded");
    if (live_time_ >= 0) {
      const bool idle =
          std::none_of(clients_.begin(), clients_.end(), [](const Client& c) { return c.busy; });
      if (idle || now_ > live_time_ + kClientTimeoutUs) break;
    }
  }
  result_.stats.sim_ms = now_ / kUsPerMs;
  result_.stats.elections = leaders_.size();
  for (const auto& g : record_) {
    for (const Record& r : g) result_.stats.committed += r.term != 0;
  }
  if (result_.ok) {
    for (Client& c : clients_) {
      if (c.busy) client_complete(c, lincheck::EventType::kInfo);
    }
    lincheck::HistoryBuilder builder;
    for (size_t i = 0; i < history_.size(); ++i) {
      Status s = builder.add(history_[i], i + 1);
      RAFTD_ASSERT(s.is_ok(), "sim: the simulator recorded a malformed history");
    }
    const std::vector<lincheck::Op> ops = std::move(builder).finish();
    const lincheck::CheckResult check = lincheck::check(ops);
    if (check.verdict == lincheck::Verdict::kNotLinearizable) {
      violate(fmt::format("client history not linearizable (key {})", check.failures[0].key));
      result_.details += lincheck::describe(ops, check);
    } else if (check.verdict == lincheck::Verdict::kUnknown) {
      violate("client history: linearizability search exceeded its budget");
    }
  }
  result_.trace_hash = hash_;
  raft::set_sim_bug(raft::Bug::kNone);
  return result_;
}

void Sim::dispatch(const Event& e) {
  switch (e.kind) {
    case Ev::kTick: {
      Node& n = node(e.node);
      if (n.up) {
        for (int g = 0; g < o_.groups && result_.ok; ++g) {
          rep(e.node, g).group->tick();
          drain(e.node, g);
        }
      }
      schedule(Event{.t = now_ + n.tick_period_us, .kind = Ev::kTick, .node = e.node});
      break;
    }
    case Ev::kWorld: world_tick(); break;
    case Ev::kDeliver: deliver(e); break;
    case Ev::kDiskDone: disk_done(e); break;
    case Ev::kCrash:
      if (!healed_ && node(e.node).up && e.a == node(e.node).incarnation) crash(e.node);
      break;
    case Ev::kRestart:
      if (!node(e.node).up && e.a == node(e.node).incarnation) restart(e.node);
      break;
    case Ev::kHealPartition:
      if (partitioned_ && e.a == partition_gen_) {
        for (auto& row : blocked_) std::fill(row.begin(), row.end(), false);
        partitioned_ = false;
        trace("partition healed");
        wake_all();
      }
      break;
    case Ev::kClientStart: client_start(e.node); break;
    case Ev::kClientTimeout: {
      Client& c = clients_[static_cast<size_t>(e.node)];
      if (c.busy && c.serial == e.a) client_complete(c, lincheck::EventType::kInfo);
      break;
    }
    case Ev::kSnapshotReport: {
      Node& n = node(e.node);
      if (n.up && n.incarnation == e.b) {
        rep(e.node, e.group).group->report_snapshot(NodeId(e.a >> 1), (e.a & 1) != 0);
        drain(e.node, e.group);
      }
      break;
    }
  }
}

void Sim::world_tick() {
  ++world_ticks_;
  if (!healed_) inject_faults();
  if (world_ticks_ % kLogCheckEveryTicks == 0) check_logs();
  if (healed_) liveness_tick();
  schedule(Event{.t = now_ + kTickUs, .kind = Ev::kWorld});
}

// ---------------------------------------------------------------------------------------------
// Driving the core: the Ready cycle of raft.h, with the disk in between.

void Sim::drain(int n, int g) {
  Replica& r = rep(n, g);
  while (result_.ok && r.group && r.group->has_ready()) {
    raft::Ready rd = r.group->ready();
    process_ready(n, g, rd);
  }
  if (result_.ok && r.group) check_replica(n, g);
}

void Sim::process_ready(int n, int g, raft::Ready& rd) {
  Replica& r = rep(n, g);
  for (const Message& m : rd.messages) send(n, m);
  if (rd.snapshot) {
    // The application installs the snapshot before anything after it is applied.
    r.app = App::decode(rd.snapshot->data, rd.snapshot->meta.index);
    ++result_.stats.snapshots;
    trace(fmt::format("n{} g{} installs snapshot at {}", n + 1, g + 1,
                      rd.snapshot->meta.index.value()));
  }
  check_new_entries(n, g, rd.entries);
  if (!result_.ok) return;
  if (rd.must_persist() || !rd.messages_after_persist.empty()) {
    disk_enqueue(n, DiskWrite{g, rd.snapshot, rd.entries, rd.hard_state,
                              std::move(rd.messages_after_persist)});
  }
  r.group->advance(rd);
  for (const Entry& e : rd.committed_entries) {
    apply(n, g, e);
    if (!result_.ok) return;
  }
  check_reads(n, g);
  for (const raft::ReadState& rs : rd.read_states) {
    auto it = r.reads.find(rs.request_id);
    if (it == r.reads.end()) continue;
    Client& c = clients_[static_cast<size_t>(it->second)];
    r.reads.erase(it);
    if (!rs.ok) {
      client_complete(c, lincheck::EventType::kFail);
    } else {
      c.read_index = rs.index;
      check_reads(n, g);
    }
  }
  for (NodeId to : rd.snapshot_requests) {
    const LogIndex at = r.app.applied;
    auto meta = r.group->snapshot_meta_at(at);
    if (!meta) {
      r.group->report_snapshot(to, false);
      continue;
    }
    r.group->send_snapshot(to, raft::Snapshot{*meta, r.app.encode()});
  }
  maybe_compact(n, g);
}

void Sim::apply(int n, int g, const Entry& e) {
  Replica& r = rep(n, g);
  if (e.index != r.app.applied + 1) {
    violate(fmt::format("node {} group {} applies index {} after {}", n + 1, g + 1, e.index.value(),
                        r.app.applied.value()));
    return;
  }
  auto& rec = record_[static_cast<size_t>(g)];
  if (rec.size() <= e.index.value()) rec.resize(e.index.value() + 1);
  Record& x = rec[e.index.value()];
  if (x.term != 0 && x.term != e.term.value()) {
    violate(
        fmt::format("group {} index {}: node {} applies an entry of term {}, but term {} "
                    "was committed there",
                    g + 1, e.index.value(), n + 1, e.term.value(), x.term));
    return;
  }
  if (x.applied && x.data != e.data) {
    violate(fmt::format("group {} index {}: node {} applies different data than another replica",
                        g + 1, e.index.value(), n + 1));
    return;
  }
  x.term = e.term.value();
  x.applied = true;
  x.data = e.data;
  r.app.applied = e.index;
  const bool cas_ok = e.type == raft::EntryType::kNormal ? r.app.apply(e.data) : true;
  auto p = r.proposals.find(e.index);
  if (p == r.proposals.end()) return;
  Client& c = clients_[static_cast<size_t>(p->second)];
  r.proposals.erase(p);
  if (e.term != c.term) {
    // Another entry committed at this index: ours never will (Raft's log matching).
    client_complete(c, lincheck::EventType::kFail);
  } else {
    client_complete(c, cas_ok ? lincheck::EventType::kOk : lincheck::EventType::kFail);
  }
}

void Sim::maybe_compact(int n, int g) {
  Replica& r = rep(n, g);
  const LogIndex at = r.app.applied;
  if (at - r.storage.snapshot().index < kCompactAfterEntries) return;
  if (at > r.storage.last_index()) return;  // applied entries are durable, but be exact
  auto meta = r.group->compact(at);
  if (!meta && meta.status().code() == Code::kUnavailable) return;  // a snapshot is installing
  if (!meta) {
    violate(fmt::format("node {} group {}: compact({}) at the applied index failed: {}", n + 1,
                        g + 1, at.value(), meta.status().to_string()));
    return;
  }
  // Snapshot file first (durable at once: a local operation), then drop the log prefix.
  r.snapshot_data = r.app.encode();
  r.storage.compact(*meta);
}

void Sim::send(int from, const Message& m) {
  ++result_.stats.messages;
  const int to = static_cast<int>(m.to.value()) - 1;
  const int g = static_cast<int>(m.group.value()) - 1;
  const bool snap = m.type == MessageType::kSnapshot;
  Event e{.kind = Ev::kDeliver, .node = to, .group = g};
  if (to == from) {  // a replica's message to itself is local
    e.t = now_;
    e.a = seq_;
    in_flight_.emplace(e.a, m);
    schedule(e);
    return;
  }
  auto delay = [&] {
    int64_t d = static_cast<int64_t>(rng_.range(static_cast<uint64_t>(swarm_.delay_min_us),
                                                static_cast<uint64_t>(swarm_.delay_max_us)));
    if (rng_.chance(swarm_.spike_ppm)) d += static_cast<int64_t>(rng_.below(kSpikeUs));
    return d;
  };
  const bool lost =
      blocked_[static_cast<size_t>(from)][static_cast<size_t>(to)] || rng_.chance(swarm_.loss_ppm);
  const int copies = lost ? 0 : rng_.chance(swarm_.dup_ppm) ? 2 : 1;
  if (lost) ++result_.stats.dropped;
  int64_t first = 0;
  for (int i = 0; i < copies; ++i) {
    e.t = now_ + delay();
    first = i == 0 ? e.t : first;
    e.a = seq_;
    in_flight_.emplace(e.a, m);
    schedule(e);
  }
  if (snap) {
    const uint64_t report = m.to.value() << 1 | (lost ? 0 : 1);
    schedule(Event{.t = lost ? now_ + delay() : first,
                   .kind = Ev::kSnapshotReport,
                   .node = from,
                   .group = g,
                   .a = report,
                   .b = node(from).incarnation});
  }
}

void Sim::deliver(const Event& e) {
  auto it = in_flight_.find(e.a);
  if (it == in_flight_.end()) return;  // lost in its sender's crash
  const Message m = std::move(it->second);
  in_flight_.erase(it);
  hash(static_cast<uint64_t>(m.type) << 56 | m.from.value() << 48 | m.to.value() << 40 |
       m.term.value());
  hash(m.index.value() << 20 | m.entries.size() << 1 | (m.reject ? 1 : 0));
  if (!node(e.node).up) return;
  trace(fmt::format("n{} g{} <- n{} {} term {} index {} log_term {} entries {} commit {}{}",
                    e.node + 1, e.group + 1, m.from.value(), raft::message_type_name(m.type),
                    m.term.value(), m.index.value(), m.log_term.value(), m.entries.size(),
                    m.commit.value(), m.reject ? " reject" : ""));
  rep(e.node, e.group).group->step(m);
  drain(e.node, e.group);
}

// ---------------------------------------------------------------------------------------------
// The disk: one per node, shared by all groups, with group commit like the WAL: everything
// queued when the disk becomes free goes out as one batch (one write + one fsync). A batch
// becomes durable when it completes; only then are its after-persist messages sent and the core
// told, in Ready order.

void Sim::disk_enqueue(int n, DiskWrite w) {
  node(n).disk.push_back(std::move(w));
  if (node(n).writing.empty()) disk_start(n);
}

void Sim::disk_start(int n) {
  Node& nd = node(n);
  if (nd.disk.empty()) return;
  nd.writing.swap(nd.disk);
  const int64_t latency = static_cast<int64_t>(rng_.range(
      static_cast<uint64_t>(swarm_.disk_min_us), static_cast<uint64_t>(swarm_.disk_max_us)));
  schedule(Event{.t = now_ + latency, .kind = Ev::kDiskDone, .node = n, .a = nd.incarnation});
}

// Makes a whole write durable: snapshot, entries, hard state.
void Sim::make_durable(int n, const DiskWrite& w) {
  Replica& r = rep(n, w.group);
  if (w.snapshot) {
    r.storage.install_snapshot(w.snapshot->meta);
    r.snapshot_data = w.snapshot->data;
  }
  if (!w.entries.empty()) {
    const LogIndex first = w.entries.front().index;
    // Only committed entries are compacted, so writing below the snapshot overwrites committed
    // entries; a gap means the core lost track of its log.
    if (first <= r.storage.snapshot().index || first > r.storage.last_index() + 1) {
      violate(
          fmt::format("node {} group {}: the core writes entries from index {}, but the "
                      "durable log holds ({}, {}]",
                      n + 1, w.group + 1, first.value(), r.storage.snapshot().index.value(),
                      r.storage.last_index().value()));
      return;
    }
    r.storage.append(w.entries);
  }
  if (w.hard_state) r.hard_state = *w.hard_state;
}

void Sim::disk_done(const Event& e) {
  Node& nd = node(e.node);
  if (!nd.up || e.a != nd.incarnation) return;
  // `writing` stays non-empty while the completions run, so what they enqueue waits its turn.
  for (const DiskWrite& w : nd.writing) {
    make_durable(e.node, w);
    if (!result_.ok) return;
  }
  for (const DiskWrite& w : nd.writing) {
    Replica& r = rep(e.node, w.group);
    for (const Message& m : w.after_persist) send(e.node, m);
    if (!w.entries.empty()) r.group->on_persisted(w.entries.back().index, w.entries.back().term);
    if (w.snapshot) r.group->on_snapshot_installed(w.snapshot->meta);
    drain(e.node, w.group);
    if (!result_.ok) return;
  }
  nd.writing.clear();
  disk_start(e.node);
}

// ---------------------------------------------------------------------------------------------
// Faults

void Sim::inject_faults() {
  const auto n_nodes = static_cast<uint64_t>(o_.nodes);
  if (rng_.chance(swarm_.crash_ppm)) {
    const int victim = static_cast<int>(rng_.below(n_nodes));
    if (node(victim).up) crash(victim);
  }
  if (rng_.chance(swarm_.crash_all_ppm)) {
    trace("power loss: every node crashes");
    for (int i = 0; i < o_.nodes; ++i) {
      if (node(i).up) crash(i);
    }
  }
  if (!partitioned_ && rng_.chance(swarm_.partition_ppm)) start_partition();
  for (int g = 0; g < o_.groups; ++g) {
    if (!rng_.chance(swarm_.transfer_ppm)) continue;
    for (int i = 0; i < o_.nodes; ++i) {
      Replica& r = rep(i, g);
      if (!node(i).up || r.group->role() != raft::Role::kLeader) continue;
      const uint64_t to = rng_.range(1, n_nodes);
      trace(fmt::format("n{} g{} transfers leadership to n{}", i + 1, g + 1, to));
      (void)r.group->transfer_leader(NodeId(to));
      drain(i, g);
      break;
    }
  }
}

// The transport notices a peer crash, restart or unreachability and wakes quiesced groups.
void Sim::wake_all() {
  if (swarm_.quiesce_after_ticks == 0) return;
  for (int n = 0; n < o_.nodes && result_.ok; ++n) {
    if (!node(n).up) continue;
    for (int g = 0; g < o_.groups && result_.ok; ++g) {
      rep(n, g).group->wake();
      drain(n, g);
    }
  }
}

void Sim::crash(int n) {
  Node& nd = node(n);
  ++result_.stats.crashes;
  // The batch in flight may have reached the disk whole, its completion never reported;
  // otherwise it is lost whole (recovery discards a torn batch), like everything queued.
  if (!nd.writing.empty() && rng_.chance(swarm_.landed_ppm)) {
    for (const DiskWrite& w : nd.writing) make_durable(n, w);
    trace(fmt::format("n{} crashes; the batch in flight landed, {} queued writes lost", n + 1,
                      nd.disk.size()));
  } else {
    trace(fmt::format("n{} crashes; {} unsynced writes lost", n + 1,
                      nd.disk.size() + nd.writing.size()));
  }
  nd.disk.clear();
  nd.writing.clear();
  // Messages still in the node's socket buffers die with it.
  std::erase_if(in_flight_, [&](const auto& kv) { return kv.second.from.value() == nd.id; });
  nd.up = false;
  ++nd.incarnation;
  for (auto& r : nd.replicas) r->group.reset();
  for (Client& c : clients_) {
    if (c.busy && c.node == n) client_complete(c, lincheck::EventType::kInfo);
  }
  const int64_t after = static_cast<int64_t>(rng_.range(
      static_cast<uint64_t>(swarm_.restart_min_us), static_cast<uint64_t>(swarm_.restart_max_us)));
  schedule(Event{.t = now_ + after, .kind = Ev::kRestart, .node = n, .a = nd.incarnation});
  wake_all();
}

void Sim::restart(int n) {
  Node& nd = node(n);
  nd.up = true;
  boot(nd);
  trace(fmt::format("n{} restarts", n + 1));
  for (int g = 0; g < o_.groups && result_.ok; ++g) drain(n, g);
  wake_all();
}

void Sim::start_partition() {
  const auto n = static_cast<size_t>(o_.nodes);
  partitioned_ = true;
  ++result_.stats.partitions;
  const uint64_t kind = swarm_.leader_churn ? 3 : rng_.below(4);
  std::string desc;
  if (kind == 0 || kind == 3) {  // isolate one node (kind 3: a leader), both directions
    size_t victim = rng_.below(n);
    const int g = static_cast<int>(rng_.below(static_cast<uint64_t>(o_.groups)));
    for (size_t i = 0; kind == 3 && i < n; ++i) {
      const int ni = static_cast<int>(i);
      if (node(ni).up && rep(ni, g).group->role() == raft::Role::kLeader) victim = i;
    }
    for (size_t i = 0; i < n; ++i) {
      if (i != victim) blocked_[i][victim] = blocked_[victim][i] = true;
    }
    desc = fmt::format("n{} isolated", victim + 1);
  } else if (kind == 1) {  // random split into two sides
    std::vector<int> side(n);
    for (size_t i = 0; i < n; ++i) side[i] = static_cast<int>(rng_.below(2));
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < n; ++j) blocked_[i][j] = side[i] != side[j];
    }
    desc = "split";
    for (size_t i = 0; i < n; ++i) desc += fmt::format(" n{}:{}", i + 1, side[i]);
  } else {  // one-way cuts
    desc = "one-way cuts";
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < n; ++j) {
        if (i != j && rng_.below(3) == 0) {
          blocked_[i][j] = true;
          desc += fmt::format(" n{}->n{}", i + 1, j + 1);
        }
      }
    }
  }
  trace("partition: " + desc);
  wake_all();
  const int64_t length =
      static_cast<int64_t>(swarm_.leader_churn ? rng_.range(30, 300) : rng_.range(50, 2000)) *
      kUsPerMs;
  schedule(Event{.t = now_ + length, .kind = Ev::kHealPartition, .a = ++partition_gen_});
}

void Sim::heal() {
  healed_ = true;
  heal_time_ = now_;
  trace("faults end: restart every node, heal the network");
  for (auto& row : blocked_) std::fill(row.begin(), row.end(), false);
  partitioned_ = false;
  swarm_.loss_ppm = swarm_.dup_ppm = swarm_.spike_ppm = 0;
  for (int i = 0; i < o_.nodes; ++i) {
    if (!node(i).up) restart(i);
  }
}

// ---------------------------------------------------------------------------------------------
// Clients: sequential, each bound to one group; reads through ReadIndex on any node, writes
// and cas proposed on the leader (a follower forwards, as the daemon will).

void Sim::client_record(const Client& c, lincheck::EventType type, const nlohmann::json& value) {
  lincheck::Event e{.process = c.id, .type = type, .value = value, .time = now_};
  if (type == lincheck::EventType::kInvoke) {
    e.f = c.f;
    e.key = c.key;
  }
  history_.push_back(std::move(e));
  hash(static_cast<uint64_t>(type) << 32 | static_cast<uint64_t>(c.id));
}

void Sim::client_start(int id) {
  Client& c = clients_[static_cast<size_t>(id)];
  if (healed_ || c.busy) return;
  const int g = c.group;
  const int n = static_cast<int>(rng_.below(static_cast<uint64_t>(o_.nodes)));
  c.busy = true;
  ++c.serial;
  c.key = fmt::format("g{}/k{}", g + 1, rng_.below(static_cast<uint64_t>(o_.keys_per_group)));
  const std::string app_key = c.key.substr(c.key.find('/') + 1);
  const uint64_t dice = rng_.below(10);
  c.f = dice < 4   ? lincheck::OpKind::kRead
        : dice < 8 ? lincheck::OpKind::kWrite
                   : lincheck::OpKind::kCas;
  c.read_index.reset();
  schedule(
      Event{.t = now_ + kClientTimeoutUs, .kind = Ev::kClientTimeout, .node = id, .a = c.serial});
  int target = n;
  if (node(n).up && c.f != lincheck::OpKind::kRead) {
    const NodeId leader = rep(n, g).group->leader();
    if (leader.value() != 0 && node(static_cast<int>(leader.value()) - 1).up) {
      target = static_cast<int>(leader.value()) - 1;
    }
  }
  c.node = target;
  std::string data;
  if (c.f == lincheck::OpKind::kWrite) {
    c.value = next_value_;
    data = fmt::format("w {} {}", app_key, next_value_++);
  } else if (c.f == lincheck::OpKind::kCas) {
    const std::string expected = node(target).up ? rep(target, g).app.get(app_key) : "n";
    c.value = nlohmann::json::array({value_json(expected), next_value_});
    data = fmt::format("c {} {} {}", app_key, expected, next_value_++);
  } else {
    c.value = nullptr;
  }
  client_record(c, lincheck::EventType::kInvoke, c.value);
  if (!node(target).up) {
    client_complete(c, lincheck::EventType::kFail);  // connection refused: never sent
    return;
  }
  Replica& r = rep(target, g);
  if (c.f == lincheck::OpKind::kRead) {
    c.read_id = next_read_id_++;
    if (!r.group->read_index(c.read_id).is_ok()) {
      client_complete(c, lincheck::EventType::kFail);
      return;
    }
    r.reads[c.read_id] = id;
  } else {
    auto index = r.group->propose(data);
    if (!index) {
      client_complete(c, lincheck::EventType::kFail);
      return;
    }
    c.index = *index;
    c.term = r.group->term();
    r.proposals[*index] = id;
  }
  drain(target, g);
}

void Sim::client_complete(Client& c, lincheck::EventType type, nlohmann::json value) {
  if (!c.busy) return;
  c.busy = false;
  if (c.f != lincheck::OpKind::kRead) value = c.value;
  client_record(c, type, value);
  switch (type) {
    case lincheck::EventType::kOk: ++result_.stats.ops_ok; break;
    case lincheck::EventType::kFail: ++result_.stats.ops_fail; break;
    default: ++result_.stats.ops_info; break;
  }
  // Forget where it waited (a later apply or read state for it is ignored).
  if (c.node >= 0 && node(c.node).up) {
    Replica& r = rep(c.node, c.group);
    if (c.f == lincheck::OpKind::kRead) {
      r.reads.erase(c.read_id);
    } else if (auto it = r.proposals.find(c.index); it != r.proposals.end() && it->second == c.id) {
      r.proposals.erase(it);
    }
  }
  c.read_index.reset();
  // After a refusal (no leader, node down) back off like a real client instead of spinning.
  const bool refused = type == lincheck::EventType::kFail && c.f != lincheck::OpKind::kCas;
  const int64_t think =
      refused ? static_cast<int64_t>(rng_.range(20, 100)) * kUsPerMs
              : static_cast<int64_t>(rng_.below(static_cast<uint64_t>(swarm_.think_max_us)));
  schedule(Event{.t = now_ + think, .kind = Ev::kClientStart, .node = c.id});
}

// Reads whose read index this replica has now applied complete with the local value.
void Sim::check_reads(int n, int g) {
  Replica& r = rep(n, g);
  for (Client& c : clients_) {
    if (!c.busy || c.group != g || c.node != n || c.f != lincheck::OpKind::kRead) continue;
    if (!c.read_index || r.app.applied < *c.read_index) continue;
    const std::string app_key = c.key.substr(c.key.find('/') + 1);
    client_complete(c, lincheck::EventType::kOk, value_json(r.app.get(app_key)));
  }
}

// ---------------------------------------------------------------------------------------------
// Checkers

void Sim::violate(std::string what) {
  if (!result_.ok) return;
  result_.ok = false;
  result_.violation = std::move(what);
  std::string tail = fmt::format("last {} events (time in ms):\n", trace_.size());
  for (const TraceRec& t : trace_) {
    tail += fmt::format("  {:>9.3f} {}\n", static_cast<double>(t.t) / kUsPerMs, t.what);
  }
  result_.details = tail + result_.details;
}

void Sim::trace(std::string what) {
  if (o_.trace) fmt::print("{:>9.3f} {}\n", static_cast<double>(now_) / kUsPerMs, what);
  trace_.push_back(TraceRec{now_, std::move(what)});
  if (trace_.size() > kTraceTail) trace_.pop_front();
}

void Sim::record_commit(int g, LogIndex i, Term t, int n) {
  auto& rec = record_[static_cast<size_t>(g)];
  if (rec.size() <= i.value()) rec.resize(i.value() + 1);
  Record& x = rec[i.value()];
  if (x.term == 0) {
    x.term = t.value();
  } else if (x.term != t.value()) {
    violate(fmt::format(
        "group {} index {}: committed in term {}, but node {} now has term {} "
        "there at commit index {}",
        g + 1, i.value(), x.term, n + 1, t.value(), rep(n, g).group->commit_index().value()));
  }
}

// After every event that touched (node, group).
void Sim::check_replica(int n, int g) {
  Replica& r = rep(n, g);
  const raft::Group& grp = *r.group;
  if (Status s = grp.check_invariants(); !s.is_ok()) {
    violate(fmt::format("node {} group {}: invariant: {}", n + 1, g + 1, s.message()));
    return;
  }
  if (grp.role() == raft::Role::kLeader) {
    auto [it, inserted] = leaders_.emplace(std::make_pair(g, grp.term().value()),
                                           std::make_pair(node(n).id, node(n).incarnation));
    if (inserted) {
      if (!healed_ && rng_.chance(swarm_.fresh_leader_crash_ppm)) {
        schedule(Event{.t = now_ + static_cast<int64_t>(rng_.below(kFreshLeaderCrashUs)),
                       .kind = Ev::kCrash,
                       .node = n,
                       .a = node(n).incarnation});
      }
      trace(fmt::format("n{} g{} becomes leader in term {}", n + 1, g + 1, grp.term().value()));
    } else if (it->second != std::make_pair(node(n).id, node(n).incarnation)) {
      violate(
          fmt::format("group {} term {}: two leaders, node {} (incarnation {}) and node {} "
                      "(incarnation {})",
                      g + 1, grp.term().value(), it->second.first, it->second.second, n + 1,
                      node(n).incarnation));
      return;
    }
  }
  const LogIndex commit = grp.commit_index();
  const bool leader_commits = commit > r.checked_commit && grp.role() == raft::Role::kLeader;
  const bool first_commit = leader_commits && r.first_commit_term != grp.term();
  if (first_commit) r.first_commit_term = grp.term();
  if (!healed_ && leader_commits &&
      rng_.chance(first_commit ? swarm_.after_first_commit_crash_ppm
                               : swarm_.after_commit_crash_ppm)) {
    schedule(Event{.t = now_ + static_cast<int64_t>(rng_.below(kUsPerMs)),
                   .kind = Ev::kCrash,
                   .node = n,
                   .a = node(n).incarnation});
  }
  for (LogIndex i = r.checked_commit + 1; i <= commit && result_.ok; ++i) {
    if (auto t = grp.term_at(i)) record_commit(g, i, *t, n);
  }
  r.checked_commit = std::max(r.checked_commit, commit);
}

// Every replica's committed prefix (down to kLogCheckDepth below commit) against the record:
// catches a committed entry that was overwritten without the commit index moving.
void Sim::check_logs() {
  for (int n = 0; n < o_.nodes && result_.ok; ++n) {
    if (!node(n).up) continue;
    for (int g = 0; g < o_.groups && result_.ok; ++g) {
      const raft::Group& grp = *rep(n, g).group;
      const LogIndex commit = grp.commit_index();
      for (uint64_t d = 0; d < kLogCheckDepth && d < commit.value() && result_.ok; ++d) {
        const LogIndex i = commit - d;
        auto t = grp.term_at(i);
        if (!t) break;
        record_commit(g, i, *t, n);
      }
    }
  }
}

// Log matching after every event, committed or not. Every change to a replica's log (an append,
// or a suffix replaced after a conflict) reaches the driver as Ready::entries, and a restarted
// replica's log is what earlier Readies made durable, so checking each Ready's entries against
// the facts covers every entry any log ever held, at the cost of one lookup per entry.
void Sim::check_new_entries(int n, int g, const std::vector<Entry>& entries) {
  if (entries.empty()) return;
  const Entry& first = entries.front();
  // The entries are already in the core's log: the one before them is stable or the snapshot.
  auto before = first.index.value() == 0 ? std::nullopt : rep(n, g).group->term_at(first.index - 1);
  uint64_t prev = before ? before->value() : kUnknownTerm;
  for (const Entry& e : entries) {
    uint64_t h = entry_hash(e);
    uint64_t p = prev;
    if (n == 1 && e.index.value() == o_.diverge_index) {  // checker self-test (sim.h)
      if (o_.diverge == Diverge::kData) h = ~h;
      if (o_.diverge == Diverge::kPrevTerm && p != kUnknownTerm) p += 1;
    }
    check_entry_fact(n, g, e, h, p);
    if (!result_.ok) return;
    prev = e.term.value();
  }
}

void Sim::check_entry_fact(int n, int g, const Entry& e, uint64_t h, uint64_t prev_term) {
  auto& by_index = facts_[static_cast<size_t>(g)];
  if (by_index.size() <= e.index.value()) by_index.resize(e.index.value() + 1);
  auto& facts = by_index[e.index.value()];
  auto it = std::find_if(facts.begin(), facts.end(),
                         [&](const EntryFact& f) { return f.term == e.term.value(); });
  if (it == facts.end()) {
    facts.push_back(EntryFact{e.term.value(), prev_term, h, n});
    return;
  }
  if (it->data_hash != h) {
    violate(
        fmt::format("group {}: log matching: nodes {} and {} both hold index {} of term {}, "
                    "but with different entries",
                    g + 1, it->node + 1, n + 1, e.index.value(), e.term.value()));
  } else if (prev_term != kUnknownTerm && it->prev_term != kUnknownTerm &&
             it->prev_term != prev_term) {
    violate(
        fmt::format("group {}: log matching: nodes {} and {} both hold index {} of term {}, "
                    "but their entries at {} have terms {} and {}",
                    g + 1, it->node + 1, n + 1, e.index.value(), e.term.value(),
                    e.index.value() - 1, it->prev_term, prev_term));
  } else if (it->prev_term == kUnknownTerm) {
    it->prev_term = prev_term;
  }
}

// The replicas of a group as the core sees them, for liveness reports.
std::string Sim::describe_group(int g) {
  std::string s = fmt::format("group {} replicas:\n", g + 1);
  for (int n = 0; n < o_.nodes; ++n) {
    const Replica& r = rep(n, g);
    if (!r.group) {
      s += fmt::format("  n{}: down\n", n + 1);
      continue;
    }
    const raft::Group& grp = *r.group;
    s += fmt::format(
        "  n{}: {} term {} vote {} leader {} commit {} applied {} last {} (term {}) persisted {} "
        "durable ({}, {}] disk queue {}\n",
        n + 1, raft::role_name(grp.role()), grp.term().value(), grp.vote().value(),
        grp.leader().value(), grp.commit_index().value(), grp.applied_index().value(),
        grp.last_index().value(), grp.last_term().value(), grp.persisted_index().value(),
        r.storage.snapshot().index.value(), r.storage.last_index().value(),
        node(n).disk.size() + node(n).writing.size());
    for (int p = 0; p < o_.nodes; ++p) {
      auto pr = grp.progress(NodeId(static_cast<uint64_t>(p) + 1));
      if (!pr) continue;
      s += fmt::format("      n{}: match {} next {} {} inflight {} active {}\n", p + 1,
                       pr->match.value(), pr->next.value(), raft::progress_state_name(pr->state),
                       pr->inflight_msgs, pr->recent_active);
    }
  }
  return s;
}

// After the heal: each group needs a leader that commits a fresh marker entry.
void Sim::liveness_tick() {
  bool all = true;
  for (int g = 0; g < o_.groups; ++g) {
    if (live_[static_cast<size_t>(g)]) continue;
    all = false;
    auto& marker = marker_[static_cast<size_t>(g)];
    if (marker) {
      const Replica& r = rep(marker->first, g);
      if (r.app.applied >= marker->second) {
        auto t = r.group->term_at(marker->second);
        if (!t || *t == marker_term_[static_cast<size_t>(g)]) {
          live_[static_cast<size_t>(g)] = true;
          trace(fmt::format("g{} live: marker committed at {}", g + 1, marker->second.value()));
          continue;
        }
        marker.reset();  // overwritten by another leader: propose again
      } else if (r.group->role() != raft::Role::kLeader) {
        marker.reset();
      }
    }
    for (int n = 0; n < o_.nodes && !marker; ++n) {
      Replica& r = rep(n, g);
      if (r.group->role() != raft::Role::kLeader) continue;
      auto index = r.group->propose(fmt::format("m {}", world_ticks_));
      if (!index) continue;
      marker = std::make_pair(n, *index);
      marker_term_[static_cast<size_t>(g)] = r.group->term();
      drain(n, g);
    }
  }
  if (all && live_time_ < 0) live_time_ = now_;
  if (!all && now_ > heal_time_ + static_cast<int64_t>(kLivenessTicks) * kTickUs) {
    for (int g = 0; g < o_.groups; ++g) {
      if (live_[static_cast<size_t>(g)]) continue;
      violate(
          fmt::format("liveness: group {} did not elect a leader and commit a fresh entry "
                      "within {} ms after the faults healed",
                      g + 1, kLivenessTicks * kTickUs / kUsPerMs));
      result_.details += describe_group(g);
      return;
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

bool parse_faults(const std::string& text, uint32_t* out) {
  if (text == "none") {
    *out = kFaultNone;
    return true;
  }
  if (text == "all") {
    *out = kFaultAll;
    return true;
  }
  uint32_t f = 0;
  std::istringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item == "network") {
      f |= kFaultNetwork;
    } else if (item == "partition") {
      f |= kFaultPartition;
    } else if (item == "crash") {
      f |= kFaultCrash;
    } else {
      return false;
    }
  }
  *out = f;
  return !text.empty();
}

std::string faults_name(uint32_t faults) {
  if (faults == kFaultNone) return "none";
  if (faults == kFaultAll) return "all";
  std::string s;
  for (auto [bit, name] :
       {std::pair{kFaultNetwork, "network"}, std::pair{kFaultPartition, "partition"},
        std::pair{kFaultCrash, "crash"}}) {
    if (faults & bit) s += (s.empty() ? "" : ",") + std::string(name);
  }
  return s;
}

std::string replay_command(const SimOptions& o) {
  std::string s = fmt::format("raftd-sim --seed {} --nodes {} --groups {} --steps {} --faults {}",
                              o.seed, o.nodes, o.groups, o.steps, faults_name(o.faults));
  if (o.clients_per_group != SimOptions{}.clients_per_group) {
    s += fmt::format(" --clients {}", o.clients_per_group);
  }
  if (o.keys_per_group != SimOptions{}.keys_per_group)
    s += fmt::format(" --keys {}", o.keys_per_group);
  if (o.bug != "none") s += " --bug " + o.bug;
  return s;
}

SimResult run_simulation(const SimOptions& options) { return Sim(options).run(); }

}  // namespace raftd::sim
