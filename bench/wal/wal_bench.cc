// WAL group-commit benchmark on the real io_uring reactor (bench/wal/README.md).
//
// A closed loop keeps `outstanding` appends of `entry` bytes in flight, spread round-robin over
// `groups` groups; an append is replaced as soon as on_durable reports it. Appends are staged
// inside reactor turns (a posted function, then the durable callback), as the daemon does, so
// the turn-end flush submits each batch in the turn that produced it and the loop blocks in
// io_uring until the next completion: time per batch is about one write + fdatasync. It prints, per
// run: batches, fdatasyncs per batch (must be exactly 1), entries per batch, time per batch, the
// write + fdatasync time beside the loop's own time per batch (wall and CPU), bytes per batch
// (the write size to compare fio at), payload and written MiB/s; then the recovery scan rate of the
// directory it wrote (read-only recovery, page cache warm).
//
// WARMUP_MIB are written before the measurement starts (the entry cache's ring fills during the
// first ~76 MiB; its first touch of memory is a start-up cost, reported by a run without warm-up).
//
// usage: wal_bench DIR GROUPS [OUTSTANDING=64] [ENTRY_BYTES=1024] [TOTAL_MIB=64] [SEGMENT_MIB=64]
//                  [WARMUP_MIB=0]
#include <fmt/format.h>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
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
// Upper bound of one blocking wait of the loop. Each wait ends as soon as a completion (or a
// posted function) arrives, so this only matters if the disk hangs.
constexpr auto kTurnWait = std::chrono::milliseconds(1000);

struct Args {
  std::string dir;
  uint64_t groups = 1;
  uint64_t outstanding = 64;
  uint64_t entry_bytes = 1024;
  uint64_t total_mib = 64;
  uint64_t segment_mib = 64;
  uint64_t warmup_mib = 0;
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
  std::vector<std::byte> payload;
  uint64_t outstanding_max = 0;
  uint64_t total_entries = 0;
  uint64_t groups = 0;
  uint64_t outstanding = 0;
  uint64_t appended = 0;
  uint64_t rr = 0;  // round-robin cursor over the groups
  uint64_t durable_entries = 0;
  int failed = 0;
  // Time from the end of the turn that submitted a batch to its durable callback: the
  // write + fdatasync as the ring sees it. Time per batch minus this is the loop's overhead.
  std::optional<Clock::time_point> submitted_at;
  double in_flight_seconds = 0;
  uint64_t in_flight_batches = 0;
  // From the start of a durable callback to the end of the turn that submitted the next batch:
  // the loop's own time per batch (refill, encode, bookkeeping), in wall-clock and in this
  // thread's CPU time (which other processes on the cores do not inflate).
  std::optional<Clock::time_point> durable_at;
  double durable_at_cpu = 0;
  double loop_seconds = 0;
  double loop_cpu_seconds = 0;
  uint64_t loop_batches = 0;
  // Measurement starts once warmup_entries are durable (the entry cache's ring is then full, so
  // the steady state is measured, not the first touch of its memory).
  uint64_t warmup_entries = 0;
  bool measuring = false;
  Clock::time_point t0;
  uint64_t syncs0 = 0, subs0 = 0, durable0 = 0;
  WalStats s0;

  void start_measuring() {
    measuring = true;
    t0 = Clock::now();
    syncs0 = writer->syncs();
    subs0 = writer->submissions();
    durable0 = durable_entries;
    s0 = wal->stats();
    in_flight_seconds = loop_seconds = loop_cpu_seconds = 0;
    in_flight_batches = loop_batches = 0;
  }

  // Tops the closed loop up to outstanding_max appends. Runs inside the reactor (a posted
  // function or the durable callback), so the turn-end hook flushes what it staged at the end of
  // this same turn: each batch is submitted in the turn that produced it.
  void refill() {
    while (outstanding < outstanding_max && appended < total_entries) {
      uint64_t g = 1 + rr % groups;
      EntryView e{Term(1), 0, payload};
      // Backpressure (Unavailable): the next durable callback refills.
      if (!wal->append(GroupId(g), LogIndex(next_index[g]), std::span(&e, 1))) break;
      ++rr;
      ++next_index[g];
      ++outstanding;
      ++appended;
    }
  }
};

int write_phase(const Args& a, Loop& L) {
  WalOptions o;
  o.segment_bytes = a.segment_mib << 20;
  o.on_durable = [&L](std::span<const Durable> ds) {
    L.durable_at = Clock::now();
    L.durable_at_cpu = thread_cpu_seconds();
    for (const Durable& d : ds) {
      uint64_t g = d.group.value();
      uint64_t n = d.last_index.value() - L.durable_index[g];
      L.durable_index[g] = d.last_index.value();
      L.outstanding -= n;
      L.durable_entries += n;
    }
    if (L.submitted_at) {
      L.in_flight_seconds += seconds_since(*L.submitted_at);
      ++L.in_flight_batches;
      L.submitted_at.reset();
    }
    if (!L.measuring && L.durable_entries >= L.warmup_entries) L.start_measuring();
    L.refill();
  };
  o.fail_stop = [&L](const FailStopInfo& f) { L.failed = f.error; };
  auto w = Wal::open(posix_env(), a.dir, std::move(o), *L.exec, *L.writer);
  if (!w) {
    std::fprintf(stderr, "wal_bench: %s\n", w.status().to_string().c_str());
    return 1;
  }
  L.wal = std::move(*w);
  auto hook = L.reactor->add_turn_end_hook([&L] {
    L.wal->flush();
    if (!L.wal->idle() && !L.submitted_at) {
      L.submitted_at = Clock::now();
      if (L.durable_at) {
        L.loop_seconds += seconds_since(*L.durable_at);
        L.loop_cpu_seconds += thread_cpu_seconds() - L.durable_at_cpu;
        ++L.loop_batches;
        L.durable_at.reset();
      }
    }
  });
  while (L.wal->ready_segment_count() < 2) L.reactor->run_once(kTurnWait);

  L.next_index.assign(a.groups + 1, 1);
  L.durable_index.assign(a.groups + 1, 0);
  L.payload.assign(a.entry_bytes, std::byte{0x5a});
  L.groups = a.groups;
  L.outstanding_max = a.outstanding;
  L.warmup_entries = (a.warmup_mib << 20) / a.entry_bytes;
  L.total_entries = L.warmup_entries + (a.total_mib << 20) / a.entry_bytes;
  if (L.warmup_entries == 0) L.start_measuring();
  // The first appends are staged from inside a turn too; every later one from on_durable.
  if (!L.reactor->post([&L] { L.refill(); })) return 1;
  while (L.durable_entries < L.total_entries && L.failed == 0) L.reactor->run_once(kTurnWait);
  double secs = seconds_since(L.t0);
  while (!L.wal->idle()) L.reactor->run_once(kTurnWait);
  const WalStats& s0 = L.s0;
  const WalStats s1 = L.wal->stats();
  uint64_t batches = s1.batches - s0.batches;
  uint64_t syncs = L.writer->syncs() - L.syncs0;
  const uint64_t entries = L.durable_entries - L.durable0;
  double payload_mib = double(entries * a.entry_bytes) / (1 << 20);
  double written_mib = double(s1.bytes_written - s0.bytes_written) / (1 << 20);
  std::printf(
      "groups=%llu outstanding=%llu entry_bytes=%llu batches=%llu fdatasyncs=%llu "
      "fdatasyncs_per_batch=%.3f resubmissions=%llu entries_per_batch=%.1f ms_per_batch=%.3f "
      "write_fdatasync_ms=%.3f loop_ms=%.3f loop_cpu_ms=%.3f bytes_per_batch=%.0f "
      "seconds=%.2f "
      "payload_MiB_s=%.2f written_MiB_s=%.2f segments_rolled=%llu roll_waits=%llu\n",
      (unsigned long long)a.groups, (unsigned long long)a.outstanding,
      (unsigned long long)a.entry_bytes, (unsigned long long)batches, (unsigned long long)syncs,
      batches ? double(syncs) / double(batches) : 0.0,
      (unsigned long long)(L.writer->submissions() - L.subs0 - syncs),
      batches ? double(entries) / double(batches) : 0.0,
      batches ? secs * 1e3 / double(batches) : 0.0,
      L.in_flight_batches ? L.in_flight_seconds * 1e3 / double(L.in_flight_batches) : 0.0,
      L.loop_batches ? L.loop_seconds * 1e3 / double(L.loop_batches) : 0.0,
      L.loop_batches ? L.loop_cpu_seconds * 1e3 / double(L.loop_batches) : 0.0,
      batches ? double(s1.bytes_written - s0.bytes_written) / double(batches) : 0.0, secs,
      payload_mib / secs, written_mib / secs,
      (unsigned long long)(s1.segments_created - s0.segments_created),
      (unsigned long long)(s1.roll_waits - s0.roll_waits));
  L.reactor->remove_turn_end_hook(hook);
  L.wal.reset();
  return L.failed == 0 && syncs == batches ? 0 : 1;
}

// Recovery rate in two units: frame bytes (the log's content: every frame header, body and
// padding, the unit of the target) and file bytes (what recovery actually read: segment headers,
// the zero tail it checks, spare segment headers).
int scan_phase(const Args& a) {
  constexpr int kScans = 3;  // the first warms the page cache if anything was evicted
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
    double file_mb = double(log->bytes_scanned) / 1e6;
    uint64_t frame_bytes = 0;
    for (const SegmentSummary& s : log->written) frame_bytes += s.end_offset - kSegmentHeaderBytes;
    double frame_mb = double(frame_bytes) / 1e6;
    std::printf(
        "recovery_scan run=%d frame_MB=%.1f file_MB=%.1f seconds=%.3f cpu_seconds=%.3f "
        "frame_MB_s=%.0f file_MB_s=%.0f frame_MB_per_cpu_s=%.0f frames=%llu\n",
        i + 1, frame_mb, file_mb, secs, cpu, frame_mb / secs, file_mb / secs, frame_mb / cpu,
        (unsigned long long)log->frames);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: wal_bench DIR GROUPS [OUTSTANDING=64] [ENTRY_BYTES=1024] "
                 "[TOTAL_MIB=64] [SEGMENT_MIB=64] [WARMUP_MIB=0]\n");
    return 2;
  }
  Args a;
  a.dir = argv[1];
  a.groups = std::strtoull(argv[2], nullptr, 10);
  if (argc > 3) a.outstanding = std::strtoull(argv[3], nullptr, 10);
  if (argc > 4) a.entry_bytes = std::strtoull(argv[4], nullptr, 10);
  if (argc > 5) a.total_mib = std::strtoull(argv[5], nullptr, 10);
  if (argc > 6) a.segment_mib = std::strtoull(argv[6], nullptr, 10);
  if (argc > 7) a.warmup_mib = std::strtoull(argv[7], nullptr, 10);
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
