// WAL group-commit benchmark on the real io_uring reactor (bench/wal/README.md).
//
// A closed loop keeps `outstanding` appends of `entry` bytes in flight, spread round-robin over
// `groups` groups; an append is replaced as soon as on_durable reports it. It prints, per run:
// batches, fdatasyncs per batch (must be exactly 1), entries per batch, payload and written
// MiB/s; then the recovery scan rate of the directory it wrote (read-only recovery, page cache
// warm).
//
// usage: wal_bench DIR GROUPS [OUTSTANDING=64] [ENTRY_BYTES=1024] [TOTAL_MIB=64] [SEGMENT_MIB=64]
#include <fmt/format.h>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "raftd/io/reactor.h"
#include "raftd/wal/recovery.h"
#include "raftd/wal/uring_sync_writer.h"
#include "raftd/wal/wal.h"

namespace {

using namespace raftd;
using namespace raftd::wal;
using Clock = std::chrono::steady_clock;
// The loop polls (0: never block in io_uring_enter). A blocking wait currently sleeps until its
// timeout even when the fdatasync completes first (reported to the io layer), which would
// measure the timeout instead of the disk.
constexpr int kTurnWaitMs = 0;

struct Args {
  std::string dir;
  uint64_t groups = 1;
  uint64_t outstanding = 64;
  uint64_t entry_bytes = 1024;
  uint64_t total_mib = 64;
  uint64_t segment_mib = 64;
};

// CPU time of this thread: the scan rate per CPU second does not depend on how many other
// processes share the cores (the wall-clock rate does).
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

struct Loop {
  std::unique_ptr<io::Reactor> reactor;
  std::unique_ptr<ReactorExecutor> exec;
  std::unique_ptr<UringSyncWriter> writer;
  std::unique_ptr<Wal> wal;
  std::vector<uint64_t> next_index;     // per group (1-based ids)
  std::vector<uint64_t> durable_index;  // per group
  uint64_t outstanding = 0;
  uint64_t durable_entries = 0;
  int failed = 0;
};

int write_phase(const Args& a, Loop& L) {
  WalOptions o;
  o.segment_bytes = a.segment_mib << 20;
  o.on_durable = [&L](std::span<const Durable> ds) {
    for (const Durable& d : ds) {
      uint64_t g = d.group.value();
      uint64_t n = d.last_index.value() - L.durable_index[g];
      L.durable_index[g] = d.last_index.value();
      L.outstanding -= n;
      L.durable_entries += n;
    }
  };
  o.fail_stop = [&L](const FailStopInfo& f) { L.failed = f.error; };
  auto w = Wal::open(posix_env(), a.dir, std::move(o), *L.exec, *L.writer);
  if (!w) {
    std::fprintf(stderr, "wal_bench: %s\n", w.status().to_string().c_str());
    return 1;
  }
  L.wal = std::move(*w);
  auto hook = L.reactor->add_turn_end_hook([&L] { L.wal->flush(); });
  while (L.wal->ready_segment_count() < 2) L.reactor->run_once(std::chrono::milliseconds(10));

  L.next_index.assign(a.groups + 1, 1);
  L.durable_index.assign(a.groups + 1, 0);
  std::vector<std::byte> payload(a.entry_bytes, std::byte{0x5a});
  const uint64_t total_entries = (a.total_mib << 20) / a.entry_bytes;
  const uint64_t syncs0 = L.writer->syncs();
  const uint64_t subs0 = L.writer->submissions();
  const WalStats s0 = L.wal->stats();
  uint64_t appended = 0;
  uint64_t rr = 0;
  auto t0 = Clock::now();
  while (L.durable_entries < total_entries && L.failed == 0) {
    while (L.outstanding < a.outstanding && appended < total_entries) {
      uint64_t g = 1 + rr++ % a.groups;
      EntryView e{Term(1), 0, payload};
      Status st = L.wal->append(GroupId(g), LogIndex(L.next_index[g]), std::span(&e, 1));
      if (!st) break;  // backpressure: wait for a completion
      ++L.next_index[g];
      ++L.outstanding;
      ++appended;
    }
    L.reactor->run_once(std::chrono::milliseconds(kTurnWaitMs));
  }
  double secs = seconds_since(t0);
  while (!L.wal->idle()) L.reactor->run_once(std::chrono::milliseconds(10));
  const WalStats s1 = L.wal->stats();
  uint64_t batches = s1.batches - s0.batches;
  uint64_t syncs = L.writer->syncs() - syncs0;
  double payload_mib = double(L.durable_entries * a.entry_bytes) / (1 << 20);
  double written_mib = double(s1.bytes_written - s0.bytes_written) / (1 << 20);
  std::printf(
      "groups=%llu outstanding=%llu entry_bytes=%llu batches=%llu fdatasyncs=%llu "
      "fdatasyncs_per_batch=%.3f resubmissions=%llu entries_per_batch=%.1f seconds=%.2f "
      "payload_MiB_s=%.2f written_MiB_s=%.2f segments_rolled=%llu roll_waits=%llu\n",
      (unsigned long long)a.groups, (unsigned long long)a.outstanding,
      (unsigned long long)a.entry_bytes, (unsigned long long)batches, (unsigned long long)syncs,
      batches ? double(syncs) / double(batches) : 0.0,
      (unsigned long long)(L.writer->submissions() - subs0 - syncs),
      batches ? double(L.durable_entries) / double(batches) : 0.0, secs, payload_mib / secs,
      written_mib / secs, (unsigned long long)(s1.segments_created - s0.segments_created),
      (unsigned long long)(s1.roll_waits - s0.roll_waits));
  L.reactor->remove_turn_end_hook(hook);
  L.wal.reset();
  return L.failed == 0 && syncs == batches ? 0 : 1;
}

int scan_phase(const Args& a) {
  constexpr int kScans = 3;  // the first warms the page cache if anything was evicted
  double best = 0;
  uint64_t file_bytes = 0;
  uint64_t used_bytes = 0;
  for (int i = 0; i < kScans; ++i) {
    auto t0 = Clock::now();
    double cpu0 = thread_cpu_seconds();
    auto log = recover_log(posix_env(), a.dir, RecoveryMode::kReadOnly);
    double secs = seconds_since(t0);
    double cpu = thread_cpu_seconds() - cpu0;
    if (!log) {
      std::fprintf(stderr, "wal_bench: recovery: %s\n", log.status().to_string().c_str());
      return 1;
    }
    file_bytes = log->bytes_scanned;
    used_bytes = 0;
    for (const SegmentSummary& s : log->written) used_bytes += s.end_offset;
    best = std::max(best, double(file_bytes) / secs);
    std::printf(
        "recovery_scan run=%d files_MB=%.1f used_MB=%.1f seconds=%.3f cpu_seconds=%.3f "
        "files_MB_s=%.0f used_MB_s=%.0f files_MB_per_cpu_s=%.0f used_MB_per_cpu_s=%.0f "
        "frames=%llu\n",
        i + 1, file_bytes / 1e6, used_bytes / 1e6, secs, cpu, file_bytes / 1e6 / secs,
        used_bytes / 1e6 / secs, file_bytes / 1e6 / cpu, used_bytes / 1e6 / cpu,
        (unsigned long long)log->frames);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: wal_bench DIR GROUPS [OUTSTANDING=64] [ENTRY_BYTES=1024] "
                 "[TOTAL_MIB=64] [SEGMENT_MIB=64]\n");
    return 2;
  }
  Args a;
  a.dir = argv[1];
  a.groups = std::strtoull(argv[2], nullptr, 10);
  if (argc > 3) a.outstanding = std::strtoull(argv[3], nullptr, 10);
  if (argc > 4) a.entry_bytes = std::strtoull(argv[4], nullptr, 10);
  if (argc > 5) a.total_mib = std::strtoull(argv[5], nullptr, 10);
  if (argc > 6) a.segment_mib = std::strtoull(argv[6], nullptr, 10);
  if (a.groups == 0 || a.outstanding == 0 || a.entry_bytes == 0) return 2;
  Loop L;
  auto r = io::Reactor::create();
  if (!r) {
    std::fprintf(stderr, "wal_bench: %s\n", r.status().to_string().c_str());
    return 77;
  }
  L.reactor = std::move(*r);
  L.exec = std::make_unique<ReactorExecutor>(*L.reactor);
  L.writer = std::make_unique<UringSyncWriter>(*L.reactor);
  if (int rc = write_phase(a, L); rc != 0) return rc;
  return scan_phase(a);
}
