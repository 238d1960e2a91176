// WAL group-commit benchmark on the real io_uring reactor (bench/wal/README.md).
//
// A closed loop keeps `outstanding` appends of `entry` bytes in flight, spread round-robin over
// `groups` groups; an append is replaced as soon as on_durable reports it. Appends are staged
// inside reactor turns (a posted function, then the durable callback), as the daemon does, so
// the turn-end flush submits each batch in the turn that produced it and the loop blocks in
// io_uring until the next completion: time per batch is about one write + fdatasync. It prints, per
// run: batches, fdatasyncs per batch (must be exactly 1), entries per batch, time per batch, the
// write + fdatasync time beside the loop's own time per batch (wall and CPU), bytes per batch
// (the write size to compare fio at), the thread's whole CPU time per batch (the WAL, the loop
// and the kernel work of its io_uring calls, such as copying the write into the page cache),
// payload and written MiB/s; then the recovery scan rate of the
// directory it wrote (read-only recovery, page cache warm).
//
// MODE serial (the default): `outstanding` appends in flight, all replaced from the durable
// callback, so every batch carries them and the loop is strictly serial: the WAL's staging of a
// batch (copies, encoding) happens between one batch's completion and the next submission.
// MODE overlap: as in the daemon, the next batch is staged while one is in flight. Each batch
// still carries exactly `outstanding` appends (the same bytes per write+fdatasync as serial mode
// and fio), but 2 x `outstanding` are outstanding: when a batch completes, the batch staged
// meanwhile is sealed and submitted at the end of that turn, and its replacement appends are
// staged in the next turn, after the submission reached the kernel, while it is in flight.
// MODE cpu: serial mode without the disk: a writer that reports every submission durable at once
// (in the next turn), so the loop's time per batch is the WAL's CPU alone, which a shared,
// noisy disk does not blur. Its ratios to fio mean nothing; use it for the loop's CPU.
//
// WARMUP_MIB are written before the measurement starts (the entry cache's ring fills during the
// first ~76 MiB; its first touch of memory is a start-up cost, reported by a run without warm-up).
//
// With WAL_BENCH_PERF_CTL set to the control FIFO of `perf record --control=fifo:CTL -D -1`, it
// enables perf when the measurement starts and disables it when the write phase ends, so a
// profile holds the measured steady state only (not the warm-up or the recovery scans).
//
// usage: wal_bench DIR GROUPS [OUTSTANDING=64] [ENTRY_BYTES=1024] [TOTAL_MIB=64] [SEGMENT_MIB=64]
//                  [WARMUP_MIB=0] [MODE=serial|overlap|cpu]
#include <fcntl.h>
#include <fmt/format.h>
#include <time.h>
#include <unistd.h>

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
// The loop's CPU time is read on one batch in this many. Reading a thread's CPU clock is a system
// call (about 1-5 us in this VM, unlike the vDSO's wall clock), and two of them on every batch's
// path from completion to submission slowed every batch it measured.
constexpr uint64_t kCpuSampleEvery = 16;
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
  bool overlap = false;
  bool no_disk = false;  // MODE cpu
};

// CPU time of this thread: the scan rate per CPU second does not depend on how many other
// processes share the cores (the wall-clock rate does).
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

// Sends a command ("enable", "disable") to perf's control FIFO named by WAL_BENCH_PERF_CTL.
void perf_control(const char* command) {
  const char* path = std::getenv("WAL_BENCH_PERF_CTL");
  if (path == nullptr) return;
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  std::string line = std::string(command) + "\n";
  (void)!::write(fd, line.data(), line.size());
  ::close(fd);
}

// MODE cpu's writer: every submission is durable at once; the completion runs in the next turn
// (a SyncWriter never completes inside submit()).
class InstantSyncWriter final : public SyncWriter {
 public:
  explicit InstantSyncWriter(Executor& executor) : executor_(executor) {}
  void submit(File&, std::span<const std::byte>, uint64_t, SyncCompletion* done) override {
    ++syncs_;
    if (!executor_.post([done] { done->on_synced(0); })) std::abort();
  }
  uint64_t syncs() const override { return syncs_; }

 private:
  Executor& executor_;
  uint64_t syncs_ = 0;
};

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

struct Loop {
  std::unique_ptr<io::Reactor> reactor;
  std::unique_ptr<ReactorExecutor> exec;
  std::unique_ptr<UringSyncWriter> uring_writer;
  std::unique_ptr<InstantSyncWriter> instant_writer;
  SyncWriter* writer = nullptr;
  // write->fdatasync submissions including resubmissions after short writes.
  uint64_t submissions() const {
    return uring_writer ? uring_writer->submissions() : instant_writer->syncs();
  }
  std::unique_ptr<Wal> wal;
  std::vector<uint64_t> next_index;     // per group (1-based ids)
  std::vector<uint64_t> durable_index;  // per group
  std::vector<std::byte> payload;
  uint64_t outstanding_max = 0;
  uint64_t batch_entries = 0;  // appends per batch
  bool overlap = false;
  bool refill_posted = false;
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
  // The same for the batches submitted while the WAL's preparer was creating a segment (fewer
  // than two spares ready): its zero fill shares the disk with them.
  bool submitted_preparing = false;
  double prep_in_flight_seconds = 0;
  uint64_t prep_in_flight_batches = 0;
  // From the start of a durable callback to the end of the turn that submitted the next batch:
  // the loop's own time per batch (refill, encode, bookkeeping), in wall-clock and in this
  // thread's CPU time (which other processes on the cores do not inflate).
  std::optional<Clock::time_point> durable_at;
  std::optional<double> durable_at_cpu;  // on sampled batches only
  uint64_t durables = 0;                 // durable callbacks so far (picks the sampled batches)
  double loop_seconds = 0;
  double loop_cpu_seconds = 0;
  uint64_t loop_batches = 0;
  uint64_t loop_cpu_batches = 0;
  // This thread's CPU time inside refill(): staging the appends (in serial mode part of the loop
  // time above; in overlap mode spent while a batch is in flight). Sampled on other batches than
  // the loop's CPU time, so neither measurement includes the other's clock reads.
  double stage_cpu_seconds = 0;
  uint64_t stage_cpu_batches = 0;
  // Measurement starts once warmup_entries are durable (the entry cache's ring is then full, so
  // the steady state is measured, not the first touch of its memory).
  uint64_t warmup_entries = 0;
  bool measuring = false;
  Clock::time_point t0;
  uint64_t syncs0 = 0, subs0 = 0, durable0 = 0;
  double cpu0 = 0;  // this thread's CPU time when the measurement started
  WalStats s0;

  void start_measuring() {
    measuring = true;
    t0 = Clock::now();
    syncs0 = writer->syncs();
    subs0 = submissions();
    cpu0 = thread_cpu_seconds();
    durable0 = durable_entries;
    s0 = wal->stats();
    in_flight_seconds = loop_seconds = loop_cpu_seconds = stage_cpu_seconds = 0;
    prep_in_flight_seconds = 0;
    prep_in_flight_batches = 0;
    in_flight_batches = loop_batches = loop_cpu_batches = stage_cpu_batches = 0;
    perf_control("enable");
  }

  // Tops the closed loop up to outstanding_max appends, at most one batch's worth. Runs inside
  // the reactor (a posted function or the durable callback), so the turn-end hook flushes what
  // it staged at the end of this same turn (serial mode: the batch is submitted in the turn that
  // produced it; overlap mode: it waits, sealed at the next completion).
  void refill() {
    const bool sampled = durables % kCpuSampleEvery == kCpuSampleEvery / 2;
    const double stage_cpu0 = sampled ? thread_cpu_seconds() : 0;
    for (uint64_t n = 0;
         n < batch_entries && outstanding < outstanding_max && appended < total_entries; ++n) {
      uint64_t g = 1 + rr % groups;
      EntryView e{Term(1), 0, payload};
      // Backpressure (Unavailable): the next durable callback refills.
      if (!wal->append(GroupId(g), LogIndex(next_index[g]), std::span(&e, 1))) break;
      ++rr;
      ++next_index[g];
      ++outstanding;
      ++appended;
    }
    if (sampled) {
      stage_cpu_seconds += thread_cpu_seconds() - stage_cpu0;
      ++stage_cpu_batches;
    }
  }
};

int write_phase(const Args& a, Loop& L) {
  WalOptions o;
  o.segment_bytes = a.segment_mib << 20;
  o.on_durable = [&L](std::span<const Durable> ds) {
    L.durable_at = Clock::now();
    if (++L.durables % kCpuSampleEvery == 0) L.durable_at_cpu = thread_cpu_seconds();
    for (const Durable& d : ds) {
      uint64_t g = d.group.value();
      uint64_t n = d.last_index.value() - L.durable_index[g];
      L.durable_index[g] = d.last_index.value();
      L.outstanding -= n;
      L.durable_entries += n;
    }
    if (L.submitted_at) {
      const double in_flight = seconds_since(*L.submitted_at);
      L.in_flight_seconds += in_flight;
      ++L.in_flight_batches;
      if (L.submitted_preparing) {
        L.prep_in_flight_seconds += in_flight;
        ++L.prep_in_flight_batches;
      }
      L.submitted_at.reset();
    }
    if (!L.measuring && L.durable_entries >= L.warmup_entries) L.start_measuring();
    if (!L.overlap) L.refill();  // overlap: staged in the turn after the next submission
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
      L.submitted_preparing = L.wal->ready_segment_count() < kReadySegmentsDefault;
      if (L.durable_at) {
        L.loop_seconds += seconds_since(*L.durable_at);
        ++L.loop_batches;
        if (L.durable_at_cpu) {
          L.loop_cpu_seconds += thread_cpu_seconds() - *L.durable_at_cpu;
          ++L.loop_cpu_batches;
          L.durable_at_cpu.reset();
        }
        L.durable_at.reset();
      }
    }
    // Overlap mode: a function posted from a turn-end hook runs in the next turn, after that
    // turn's io_uring_enter has submitted the batch this turn sealed.
    if (L.overlap && !L.refill_posted && L.outstanding < L.outstanding_max &&
        L.appended < L.total_entries) {
      L.refill_posted = L.reactor->post([&L] {
        L.refill_posted = false;
        L.refill();
      });
    }
  });
  while (L.wal->ready_segment_count() < 2) L.reactor->run_once(kTurnWait);

  L.next_index.assign(a.groups + 1, 1);
  L.durable_index.assign(a.groups + 1, 0);
  L.payload.assign(a.entry_bytes, std::byte{0x5a});
  L.groups = a.groups;
  L.batch_entries = a.outstanding;
  L.overlap = a.overlap;
  L.outstanding_max = a.overlap ? 2 * a.outstanding : a.outstanding;
  L.warmup_entries = (a.warmup_mib << 20) / a.entry_bytes;
  L.total_entries = L.warmup_entries + (a.total_mib << 20) / a.entry_bytes;
  if (L.warmup_entries == 0) L.start_measuring();
  // The first appends are staged from inside a turn too; every later one from on_durable.
  if (!L.reactor->post([&L] { L.refill(); })) return 1;
  while (L.durable_entries < L.total_entries && L.failed == 0) L.reactor->run_once(kTurnWait);
  double secs = seconds_since(L.t0);
  const double cpu_secs = thread_cpu_seconds() - L.cpu0;
  perf_control("disable");
  while (!L.wal->idle()) L.reactor->run_once(kTurnWait);
  const WalStats& s0 = L.s0;
  const WalStats s1 = L.wal->stats();
  uint64_t batches = s1.batches - s0.batches;
  uint64_t syncs = L.writer->syncs() - L.syncs0;
  const uint64_t entries = L.durable_entries - L.durable0;
  double payload_mib = double(entries * a.entry_bytes) / (1 << 20);
  double written_mib = double(s1.bytes_written - s0.bytes_written) / (1 << 20);
  std::printf(
      "mode=%s groups=%llu outstanding=%llu entry_bytes=%llu batches=%llu fdatasyncs=%llu "
      "fdatasyncs_per_batch=%.3f resubmissions=%llu entries_per_batch=%.1f ms_per_batch=%.3f "
      "write_fdatasync_ms=%.3f loop_ms=%.3f loop_cpu_ms=%.3f stage_cpu_ms=%.3f "
      "thread_cpu_ms_per_batch=%.3f bytes_per_batch=%.0f "
      "seconds=%.2f preparing_batches=%llu write_fdatasync_ms_preparing=%.3f "
      "write_fdatasync_ms_not_preparing=%.3f "
      "payload_MiB_s=%.2f written_MiB_s=%.2f segments_rolled=%llu roll_waits=%llu\n",
      a.no_disk   ? "cpu"
      : a.overlap ? "overlap"
                  : "serial",
      (unsigned long long)a.groups, (unsigned long long)L.outstanding_max,
      (unsigned long long)a.entry_bytes, (unsigned long long)batches, (unsigned long long)syncs,
      batches ? double(syncs) / double(batches) : 0.0,
      (unsigned long long)(L.submissions() - L.subs0 - syncs),
      batches ? double(entries) / double(batches) : 0.0,
      batches ? secs * 1e3 / double(batches) : 0.0,
      L.in_flight_batches ? L.in_flight_seconds * 1e3 / double(L.in_flight_batches) : 0.0,
      L.loop_batches ? L.loop_seconds * 1e3 / double(L.loop_batches) : 0.0,
      L.loop_cpu_batches ? L.loop_cpu_seconds * 1e3 / double(L.loop_cpu_batches) : 0.0,
      L.stage_cpu_batches ? L.stage_cpu_seconds * 1e3 / double(L.stage_cpu_batches) : 0.0,
      batches ? cpu_secs * 1e3 / double(batches) : 0.0,
      batches ? double(s1.bytes_written - s0.bytes_written) / double(batches) : 0.0, secs,
      (unsigned long long)L.prep_in_flight_batches,
      L.prep_in_flight_batches ? L.prep_in_flight_seconds * 1e3 / double(L.prep_in_flight_batches)
                               : 0.0,
      L.in_flight_batches > L.prep_in_flight_batches
          ? (L.in_flight_seconds - L.prep_in_flight_seconds) * 1e3 /
                double(L.in_flight_batches - L.prep_in_flight_batches)
          : 0.0,
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
                 "[TOTAL_MIB=64] [SEGMENT_MIB=64] [WARMUP_MIB=0] [MODE=serial|overlap|cpu]\n");
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
  if (argc > 8) {
    const std::string mode = argv[8];
    if (mode != "serial" && mode != "overlap" && mode != "cpu") return 2;
    a.overlap = mode == "overlap";
    a.no_disk = mode == "cpu";
  }
  if (a.groups == 0 || a.outstanding == 0 || a.entry_bytes == 0) return 2;
  Loop L;
  auto r = io::Reactor::create();
  if (!r) {
    std::fprintf(stderr, "wal_bench: %s\n", r.status().to_string().c_str());
    return 77;
  }
  L.reactor = std::move(*r);
  L.exec = std::make_unique<ReactorExecutor>(*L.reactor);
  if (a.no_disk) {
    L.instant_writer = std::make_unique<InstantSyncWriter>(*L.exec);
    L.writer = L.instant_writer.get();
  } else {
    L.uring_writer = std::make_unique<UringSyncWriter>(*L.reactor);
    L.writer = L.uring_writer.get();
  }
  if (int rc = write_phase(a, L); rc != 0) return rc;
  return scan_phase(a);
}
