// Randomized property test: random appends, overwrites, truncations, hard states and
// compactions over 1,000 groups; a crash at a random point (unsynced bytes dropped, a torn
// prefix kept, or random sectors kept); recovery; comparison with the model of what was
// durable; several crash/recover rounds per run. Seeded; the seed is printed on failure.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cstdlib>
#include <random>

#include "harness.h"
#include "model.h"

namespace raftd::wal {
namespace {

using testing::Harness;
using testing::Model;

constexpr uint64_t kGroups = 1000;
constexpr int kGroupsPerTurn = 60;
constexpr int kTurnsMax = 50;
constexpr int kRounds = 3;     // crash/recover rounds per run
constexpr uint64_t kRuns = 5;  // a few seconds under ASan
constexpr size_t kPayloadMax = 600;

uint64_t base_seed() {
  if (const char* s = std::getenv("RAFTD_WAL_SEED")) return std::strtoull(s, nullptr, 10);
  return 0x5eed0001;
}

void crash_somehow(Harness& h, std::mt19937_64& rng, const std::string& active_path,
                   std::string* how) {
  h.exec.clear();
  h.wal.reset();
  switch (rng() % 3) {
    case 0:
      *how = "drop unsynced";
      h.env.crash(0);
      break;
    case 1: {
      uint64_t unsynced = h.env.unsynced_bytes(active_path);
      uint64_t keep = unsynced == 0 ? 0 : rng() % unsynced;
      *how = fmt::format("keep {} of {} unsynced bytes", keep, unsynced);
      h.env.crash(keep);
      break;
    }
    default:
      *how = "random sectors";
      h.env.crash_random_sectors(rng);
      break;
  }
}

TEST_CASE("wal::Wal: random operations on 1,000 groups survive crashes anywhere (property)") {
  const uint64_t seed0 = base_seed();
  uint64_t deleted = 0;
  uint64_t created = 0;
  for (uint64_t run = 0; run < kRuns; ++run) {
    const uint64_t seed = seed0 + run;
    INFO("seed ", seed, " (rerun with RAFTD_WAL_SEED=", seed, ")");
    std::mt19937_64 rng(seed);
    Harness h;
    h.segment_bytes = 1 << 20;  // holds a 64 KB checkpoint of 1,000 groups plus batches
    h.batch_bytes_max = 256 * 1024;
    h.cache_bytes_max = 256 * 1024;  // small, so reads after recovery also hit the files
    REQUIRE(h.open().is_ok());
    Model m(kPayloadMax);
    for (int round = 0; round < kRounds; ++round) {
      int turns = 1 + int(rng() % kTurnsMax);
      // Stop the file system at a random point of the last turn (or never).
      for (int t = 0; t < turns; ++t) {
        if (t + 1 == turns && rng() % 4 != 0) h.env.stop_after_ops(rng() % 6);
        m.stage_turn(*h.wal, rng, kGroups, kGroupsPerTurn);
        if (rng() % 8 == 0) m.compact_all(*h.wal);
        size_t before = h.durable.size();
        h.settle();
        if (h.durable.size() > before) m.commit_turn();
        if (h.env.stopped() || h.failed) break;
      }
      std::string active = h.wal->segment_sequences().empty()
                               ? std::string()
                               : h.segment_path(h.wal->segment_sequences().back());
      deleted += h.wal->stats().segments_deleted;
      created += h.wal->stats().segments_created;
      std::string how;
      crash_somehow(h, rng, active, &how);
      std::string ctx = fmt::format("seed {} round {} crash: {}", seed, round, how);
      Status s = h.open();
      REQUIRE_MESSAGE(s.is_ok(), ctx, ": ", s.to_string());
      m.reset_to(m.check(*h.wal, /*exact=*/how == "drop unsynced", ctx));
    }
  }
  // The runs exercised roll-over and segment deletion (recovery from checkpoints).
  CHECK(created > 10);
  CHECK(deleted > 0);
}

}  // namespace
}  // namespace raftd::wal
