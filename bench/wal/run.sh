#!/usr/bin/env bash
# run.sh - the WAL's group commit against the disk's ceiling measured by fio, on one file system,
# side by side in one run.
#
# For each of 1, 100 and 10,000 groups it first learns the WAL's write size (bytes per batch: 64
# appends of 1 KiB plus framing) from a short calibration run, then runs PAIRS rounds of five
# runs, rotating which goes first so slow drifts of a shared disk hit every side alike:
#   wal       wal_bench, serial mode: 1 KiB entries, 64 appends outstanding (one batch), TOTAL_MIB
#             measured after WARMUP_MIB (default 96) written first, so the WAL's entry cache ring
#             is full and the steady state is measured (WARMUP_MIB=0 measures from a cold start);
#   wal_ov    wal_bench, overlap mode: the same 64 appends per batch (the same write size), the
#             next 64 staged while a batch is in flight, as in the daemon;
#   fio_eq    fio, one write of the WAL's batch size then fdatasync, over blocks written before
#             the run (--overwrite=1: the WAL also writes into zero-filled, synced segments),
#             synchronous syscalls (--ioengine=sync);
#   fio_equ   the same through io_uring (--ioengine=io_uring);
#   fio64k    peers' sync64k: 64 KiB appends to a fresh file, each followed by fdatasync.
# The ratios are times per durable write: fio's time per write+fdatasync over the WAL's time per
# batch (so > 1 means the WAL is faster), at equal write sizes for fio_eq and fio_equ; for
# fio64k, payload bandwidth over fio's bandwidth as before. It prints every round, then per group
# count the median and the spread (min..max) of each ratio, fdatasyncs per batch, the WAL's loop
# time per batch (wall and CPU: what the WAL adds beside the write + fdatasync), and the recovery
# scan rate of what the WAL wrote (page cache warm). The same for the overlap mode (wal_ov).
#
# Needs: fio, jq, a release build (meson setup build-rel --buildtype=release -Dbenchmarks=enabled
# && meson compile -C build-rel bench/wal/wal_bench).
# Usage: bench/wal/run.sh [BUILD_DIR=build-rel] [TOTAL_MIB=128] [PAIRS=3]; BENCH_DIR picks the file
# system (default /tmp); GROUPS_LIST overrides "1 100 10000"; WARMUP_MIB (96) as above.
set -euo pipefail
BUILD=${1:-build-rel}
TOTAL_MIB=${2:-128}
PAIRS=${3:-3}
GROUPS_LIST=${GROUPS_LIST:-1 100 10000}
WARMUP_MIB=${WARMUP_MIB:-96}
BIN="$BUILD/bench/wal/wal_bench"
[ -x "$BIN" ] || { echo "run.sh: $BIN not built" >&2; exit 2; }
DIR=$(mktemp -d "${BENCH_DIR:-/tmp}/raftd-walbench.XXXXXX")
trap 'rm -rf "$DIR"' EXIT

settle() { sync; sleep 2; }

# fio NAME BS ARGS...: prints "ms_per_write_and_sync MiB_s".
run_fio() {
  local name=$1 bs=$2
  shift 2
  settle
  fio --name="$name" --directory="$DIR" --numjobs=1 --rw=write --bs="$bs" --fdatasync=1 \
      --size="${TOTAL_MIB}m" --output-format=json "$@" > "$DIR/fio.json"
  rm -f "$DIR/$name".*
  jq -r '.jobs[0].write | "\(1000 / .iops) \(.bw_bytes / 1048576)"' "$DIR/fio.json"
}

# wal GROUPS TOTAL [WARMUP] [MODE]: prints wal_bench's output.
run_wal() {
  settle
  "$BIN" "$DIR/wal" "$1" 64 1024 "$2" 64 "${3:-0}" "${4:-serial}"
  rm -rf "$DIR/wal"
}

field() { sed -n "s/.*[ ]$1=\([0-9.]*\).*/\1/p" | head -1; }
best() { sed -n "s/.*[ ]$1=\([0-9.]*\).*/\1/p" | sort -g | tail -1; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
# Median and spread of the numbers on stdin: "median [min..max]", with DIGITS (2) decimals.
summary() { sort -g | awk -v d="${1:-2}" '{ v[NR] = $1 } END {
  m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
  f = "%." d "f"
  printf f " [" f ".." f "]", m, v[1], v[NR] }'; }

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')  total: ${TOTAL_MIB} MiB per run" \
  " (WAL after ${WARMUP_MIB} MiB of warm-up)  pairs: $PAIRS" \
  " load: $(cut -d' ' -f1-3 /proc/loadavg)"
for groups in $GROUPS_LIST; do
  calib=$(run_wal "$groups" 8 | head -1)
  bs=$(echo "$calib" | field bytes_per_batch)
  [ -n "$bs" ] || { echo "run.sh: calibration printed no bytes_per_batch: $calib" >&2; exit 1; }
  eq=(); equ=(); r64=(); loops=(); cpus=(); scans=(); per_batch=()
  ov_eq=(); ov_equ=(); ov_cpus=(); ov_per_batch=()
  for pair in $(seq 1 "$PAIRS"); do
    order=(wal fio_eq fio_equ fio64k wal_ov)
    shift_by=$(( (pair - 1) % 5 ))
    order=("${order[@]:$shift_by}" "${order[@]:0:$shift_by}")
    for what in "${order[@]}"; do
      case $what in
        wal) out=$(run_wal "$groups" "$TOTAL_MIB" "$WARMUP_MIB") ;;
        wal_ov) ov_out=$(run_wal "$groups" "$TOTAL_MIB" "$WARMUP_MIB" overlap) ;;
        fio_eq) read -r eq_ms eq_mib < <(run_fio eq "$bs" --ioengine=sync --overwrite=1) ;;
        fio_equ) read -r equ_ms equ_mib < <(run_fio equ "$bs" --ioengine=io_uring --overwrite=1) ;;
        fio64k) read -r f64_ms f64_mib < <(run_fio sync64k 64k --ioengine=sync) ;;
      esac
    done
    line=$(echo "$out" | head -1)
    wal_ms=$(echo "$line" | field ms_per_batch)
    payload=$(echo "$line" | field payload_MiB_s)
    syncs=$(echo "$line" | field fdatasyncs_per_batch)
    loop=$(echo "$line" | field loop_ms)
    cpu=$(echo "$line" | field loop_cpu_ms)
    scan=$(echo "$out" | best frame_MB_s)
    eq+=("$(div "$eq_ms" "$wal_ms")"); equ+=("$(div "$equ_ms" "$wal_ms")")
    r64+=("$(div "$payload" "$f64_mib")"); loops+=("$loop"); cpus+=("$cpu"); scans+=("$scan")
    per_batch+=("$syncs")
    ov_line=$(echo "$ov_out" | head -1)
    ov_ms=$(echo "$ov_line" | field ms_per_batch)
    ov_bs=$(echo "$ov_line" | field bytes_per_batch)
    ov_eq+=("$(div "$eq_ms" "$ov_ms")"); ov_equ+=("$(div "$equ_ms" "$ov_ms")")
    ov_cpus+=("$(echo "$ov_line" | field loop_cpu_ms)")
    ov_per_batch+=("$(echo "$ov_line" | field fdatasyncs_per_batch)")
    printf 'PAIR groups=%s pair=%s first=%s write_bytes=%s wal_ms_per_batch=%s ' \
      "$groups" "$pair" "${order[0]}" "$bs" "$wal_ms"
    printf 'wal_loop_ms=%s wal_loop_cpu_ms=%s fio_eq_ms=%.3f fio_equ_ms=%.3f fio64k_ms=%.3f ' \
      "$loop" "$cpu" "$eq_ms" "$equ_ms" "$f64_ms"
    printf 'wal/fio_eq=%s wal/fio_equ=%s payload/fio64k=%s fdatasyncs_per_batch=%s ' \
      "${eq[-1]}" "${equ[-1]}" "${r64[-1]}" "$syncs"
    printf 'recovery_frame_MB_s=%s ' "$scan"
    printf 'wal_ov_ms_per_batch=%s wal_ov_bytes_per_batch=%s wal_ov_loop_cpu_ms=%s ' \
      "$ov_ms" "$ov_bs" "${ov_cpus[-1]}"
    printf 'wal_ov/fio_eq=%s wal_ov/fio_equ=%s wal_ov_fdatasyncs_per_batch=%s\n' \
      "${ov_eq[-1]}" "${ov_equ[-1]}" "${ov_per_batch[-1]}"
  done
  printf 'MEDIAN groups=%s write_bytes=%s wal/fio_eq=%s wal/fio_equ=%s payload/fio64k=%s ' \
    "$groups" "$bs" "$(printf '%s\n' "${eq[@]}" | summary)" \
    "$(printf '%s\n' "${equ[@]}" | summary)" "$(printf '%s\n' "${r64[@]}" | summary)"
  printf 'wal_loop_ms=%s wal_loop_cpu_ms=%s fdatasyncs_per_batch=%s recovery_frame_MB_s=%s\n' \
    "$(printf '%s\n' "${loops[@]}" | summary 3)" "$(printf '%s\n' "${cpus[@]}" | summary 3)" \
    "$(printf '%s\n' "${per_batch[@]}" | summary)" "$(printf '%s\n' "${scans[@]}" | summary)"
  printf 'MEDIAN_OVERLAP groups=%s wal_ov/fio_eq=%s wal_ov/fio_equ=%s wal_ov_loop_cpu_ms=%s ' \
    "$groups" "$(printf '%s\n' "${ov_eq[@]}" | summary)" \
    "$(printf '%s\n' "${ov_equ[@]}" | summary)" "$(printf '%s\n' "${ov_cpus[@]}" | summary 3)"
  printf 'fdatasyncs_per_batch=%s\n' "$(printf '%s\n' "${ov_per_batch[@]}" | summary)"
done
