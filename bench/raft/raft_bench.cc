// Raft core micro benchmarks:
//  - BM_Replication: proposals replicated and committed by a 3-node in-memory cluster (all three
//    cores in this thread, messages handed over in memory, storage = MemoryLogStorage), with N
//    proposals batched per Ready cycle. Items = committed entries. Counter allocs_per_entry:
//    operator new calls per committed entry (all three replicas).
//  - BM_IdleGroupMemory: heap bytes per idle group (followers and leaders), counted by replacing
//    the global operator new/delete in this binary.
//  Both take reuse_ready: 0 drains with Group::ready() (a new Ready each time), 1 with
//  Group::ready(Ready*) into one Ready kept by the driver, as the daemon does.
//  - BM_TickIdleGroups: one tick of 10,000 idle leader groups, quiescing off vs on.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdlib>
#include <deque>
#include <memory>
#include <new>
#include <vector>

#include "raftd/raft/memory_storage.h"
#include "raftd/raft/raft.h"

// --- allocation counting (this binary only) --------------------------------------------------
namespace {
std::atomic<int64_t> g_live_bytes{0};
std::atomic<int64_t> g_allocs{0};
constexpr size_t kHeader = 16;  // keeps the returned pointer 16-byte aligned
}  // namespace

// GCC inlines this replacement operator new into callers and then mistakes the std::free in the
// matching operator delete for a free() of new'd memory; the pair below is consistent.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(size_t n) {
  void* p = std::malloc(n + kHeader);
  if (p == nullptr) throw std::bad_alloc();
  *static_cast<size_t*>(p) = n;
  g_live_bytes.fetch_add(static_cast<int64_t>(n), std::memory_order_relaxed);
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  return static_cast<char*>(p) + kHeader;
}
void operator delete(void* p) noexcept {
  if (p == nullptr) return;
  char* base = static_cast<char*>(p) - kHeader;
  g_live_bytes.fetch_sub(static_cast<int64_t>(*reinterpret_cast<size_t*>(base)),
                         std::memory_order_relaxed);
  std::free(base);
}
void operator delete(void* p, size_t) noexcept { operator delete(p); }

using namespace raftd;
using namespace raftd::raft;

namespace {

constexpr GroupId kGroup{1};

ConfState three_voters() { return ConfState{{NodeId(1), NodeId(2), NodeId(3)}}; }

Config bench_config(uint64_t id, uint32_t quiesce_after_ticks) {
  Config c;
  c.id = NodeId(id);
  c.group = kGroup;
  c.pre_vote = false;
  c.check_quorum = false;  // the tick benchmark has no followers answering heartbeats
  c.quiesce_after_ticks = quiesce_after_ticks;
  c.random_seed = id;
  return c;
}

// A 3-node cluster driven synchronously: every Ready is persisted at once.
class MiniCluster {
 public:
  explicit MiniCluster(bool reuse_ready) : reuse_ready_(reuse_ready) {
    for (uint64_t id = 1; id <= 3; ++id) {
      SnapshotMeta boot{LogIndex(0), Term(0), three_voters()};
      storages_.push_back(std::make_unique<MemoryLogStorage>(boot));
      Config c = bench_config(id, 0);
      c.check_quorum = true;
      groups_.push_back(
          std::make_unique<Group>(c, *storages_.back(), BootState{{}, boot, LogIndex(0)}));
    }
    while (groups_[0]->role() != Role::kLeader) {
      groups_[0]->tick();
      drain();
    }
  }
  Group& leader() { return *groups_[0]; }
  void drain() {
    for (bool moved = true; moved;) {
      moved = false;
      for (size_t i = 0; i < groups_.size(); ++i) {
        Group& g = *groups_[i];
        while (g.has_ready()) {
          moved = true;
          Ready fresh;
          Ready& rd = reuse_ready_ ? kept_ : fresh;
          g.ready(&rd);
          storages_[i]->append(rd.entries);
          for (Message& m : rd.messages) queue_.push_back(std::move(m));
          for (Message& m : rd.messages_after_persist) queue_.push_back(std::move(m));
          g.advance(rd);
          if (!rd.entries.empty()) g.on_persisted(rd.entries.back().index, rd.entries.back().term);
        }
      }
      while (!queue_.empty()) {
        moved = true;
        Message m = std::move(queue_.front());
        queue_.pop_front();
        groups_[m.to.value() - 1]->step(m);
      }
    }
  }
  // Keeps the in-memory logs from growing without bound during long runs.
  void compact_all() {
    for (size_t i = 0; i < groups_.size(); ++i) {
      LogIndex applied = groups_[i]->applied_index();
      if (applied <= storages_[i]->snapshot().index) continue;
      Result<SnapshotMeta> meta = groups_[i]->compact(applied);
      if (meta.is_ok()) storages_[i]->compact(meta.value());
    }
  }

 private:
  bool reuse_ready_;
  Ready kept_;
  std::vector<std::unique_ptr<MemoryLogStorage>> storages_;
  std::vector<std::unique_ptr<Group>> groups_;
  std::deque<Message> queue_;
};

void BM_Replication(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  const std::string payload(static_cast<size_t>(state.range(1)), 'p');
  MiniCluster c(state.range(2) != 0);
  int64_t committed = 0;
  const int64_t allocs_before = g_allocs.load();
  for (auto _ : state) {
    for (int i = 0; i < batch; ++i) {
      Result<LogIndex> r = c.leader().propose(payload);
      if (!r.is_ok()) state.SkipWithError("proposal refused");
    }
    c.drain();
    committed += batch;
    if (committed % 4096 < batch) c.compact_all();
  }
  state.SetItemsProcessed(committed);
  state.SetBytesProcessed(committed * static_cast<int64_t>(payload.size()));
  state.counters["allocs_per_entry"] =
      static_cast<double>(g_allocs.load() - allocs_before) / static_cast<double>(committed);
}
BENCHMARK(BM_Replication)
    ->ArgNames({"batch", "payload_bytes", "reuse_ready"})
    ->Args({1, 128, 0})
    ->Args({1, 128, 1})
    ->Args({16, 128, 0})
    ->Args({16, 128, 1})
    ->Args({128, 128, 1})
    ->Args({128, 1024, 1});

// Makes `g` (node 1 of {1,2,3}) an idle leader whose followers acknowledged everything, using
// hand-made votes and acknowledgements (the followers are not simulated). Follows the Ready
// contract: entries are stored before the Ready's after-persist messages are released, and of
// those only the ones addressed to this node are stepped (vote requests to the followers and
// answers to them are dropped: the followers do not exist).
void make_idle_leader(Group& g, MemoryLogStorage& st, Ready* kept) {
  std::vector<Message> to_self;
  auto cycle = [&] {
    Ready fresh;
    Ready& rd = kept != nullptr ? *kept : fresh;
    g.ready(&rd);
    st.append(rd.entries);  // "durable" at once
    g.advance(rd);
    if (!rd.entries.empty()) g.on_persisted(rd.entries.back().index, rd.entries.back().term);
    for (Message& m : rd.messages_after_persist) {
      if (m.to == g.id()) to_self.push_back(std::move(m));
    }
  };
  auto step_to_self = [&] {
    std::vector<Message> batch;
    batch.swap(to_self);
    for (const Message& m : batch) g.step(m);
  };
  while (g.role() != Role::kCandidate) g.tick();
  while (g.has_ready()) cycle();
  step_to_self();  // the candidate's own vote, once its term and vote are durable
  Message vote;
  vote.type = MessageType::kVoteResp;
  vote.group = kGroup;
  vote.from = NodeId(2);
  vote.to = g.id();
  vote.term = g.term();
  g.step(vote);
  while (g.has_ready()) cycle();  // the leader's no-op, written and persisted
  step_to_self();
  for (uint64_t peer : {2, 3}) {
    Message ack;
    ack.type = MessageType::kAppendResp;
    ack.group = kGroup;
    ack.from = NodeId(peer);
    ack.to = g.id();
    ack.term = g.term();
    ack.index = g.last_index();
    g.step(ack);
  }
  while (g.has_ready()) cycle();
  step_to_self();
  // Ten heartbeat intervals (heartbeats dropped): the idle state every later round returns to
  // (a group that stopped writing keeps its traded message buffers for 8 quiet Readys).
  for (uint32_t i = 0; i < 10 * Config{}.heartbeat_tick; ++i) {
    g.tick();
    while (g.has_ready()) cycle();
  }
}

struct GroupSet {
  std::vector<std::unique_ptr<MemoryLogStorage>> storages;
  std::vector<std::unique_ptr<Group>> groups;

  bool all_lead() const {
    for (const auto& g : groups) {
      if (g->role() != Role::kLeader) return false;
    }
    return true;
  }
};

// kept: the Ready every drain goes through (nullptr: a new one each time).
GroupSet make_groups(size_t n, bool leaders, uint32_t quiesce_after_ticks, Ready* kept) {
  GroupSet s;
  s.storages.reserve(n);
  s.groups.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    SnapshotMeta boot{LogIndex(0), Term(0), three_voters()};
    s.storages.push_back(std::make_unique<MemoryLogStorage>(boot));
    Config c = bench_config(1, quiesce_after_ticks);
    c.random_seed = i + 1;
    s.groups.push_back(
        std::make_unique<Group>(c, *s.storages.back(), BootState{{}, boot, LogIndex(0)}));
    if (leaders) make_idle_leader(*s.groups.back(), *s.storages.back(), kept);
  }
  return s;
}

constexpr size_t kIdleGroups = 10000;

void BM_IdleGroupMemory(benchmark::State& state) {
  const bool leaders = state.range(0) != 0;
  double per_group = 0;
  for (auto _ : state) {
    Ready kept;
    int64_t before = g_live_bytes.load();
    GroupSet s = make_groups(kIdleGroups, leaders, 0, state.range(1) != 0 ? &kept : nullptr);
    int64_t after = g_live_bytes.load();
    if (leaders && !s.all_lead()) state.SkipWithError("a group did not become leader");
    // Storage objects are the driver's (the WAL in the daemon): count only what Groups own.
    int64_t storage_bytes = static_cast<int64_t>(kIdleGroups * sizeof(MemoryLogStorage));
    for (const auto& st : s.storages) {
      storage_bytes +=
          static_cast<int64_t>(st->last_index().value()) * static_cast<int64_t>(sizeof(Entry));
    }
    per_group = static_cast<double>(after - before - storage_bytes) / kIdleGroups;
  }
  state.counters["bytes_per_group"] = per_group;
}
BENCHMARK(BM_IdleGroupMemory)
    ->ArgNames({"leaders", "reuse_ready"})
    ->Args({0, 0})
    ->Args({0, 1})
    ->Args({1, 0})
    ->Args({1, 1})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

void BM_TickIdleGroups(benchmark::State& state) {
  const uint32_t quiesce = static_cast<uint32_t>(state.range(0));
  GroupSet s = make_groups(kIdleGroups, true, quiesce, nullptr);
  if (!s.all_lead()) state.SkipWithError("a group did not become leader");
  auto tick_all = [&] {
    for (auto& g : s.groups) {
      g->tick();
      if (g->has_ready()) {
        Ready rd = g->ready();  // heartbeats are built and dropped: part of the cost
        g->advance(rd);
      }
    }
  };
  for (uint32_t i = 0; i < quiesce + 2; ++i) tick_all();  // let quiescing groups go quiet
  size_t quiesced = 0;
  for (auto& g : s.groups) quiesced += g->quiesced() ? 1 : 0;
  for (auto _ : state) tick_all();
  state.counters["groups"] = static_cast<double>(kIdleGroups);
  state.counters["quiesced"] = static_cast<double>(quiesced);
  state.counters["ns_per_group_tick"] = benchmark::Counter(
      static_cast<double>(kIdleGroups),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_TickIdleGroups)
    ->ArgName("quiesce_after_ticks")
    ->Arg(0)
    ->Arg(3)
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
