#!/usr/bin/env bash
# run.sh - the WAL's group commit against the disk's physical ceiling, on one file system.
# For each of 1, 100 and 10,000 groups it runs PAIRS pairs of
#   fio sync64k: 64 KiB sequential writes, each followed by fdatasync (peers/disk_fio.sh), and
#   wal_bench:   1 KiB entries, 64 appends outstanding,
# both writing TOTAL_MIB, alternating which one goes first (fio first in odd pairs), so slow
# drifts of the shared disk hit both sides alike. It prints every pair's WAL/fio ratio and the
# median, fdatasyncs per batch, the time per batch beside fio's fdatasync latency, and the
# recovery scan rate of what the WAL wrote (frame bytes and file bytes read, page cache warm).
# Needs: fio, jq, a release build (meson setup build-wal-rel --buildtype=release
# -Dbenchmarks=enabled && meson compile -C build-wal-rel bench/wal/wal_bench).
# Usage: bench/wal/run.sh [BUILD_DIR=build-wal-rel] [TOTAL_MIB=128] [PAIRS=3]; BENCH_DIR picks
# the file system (default /tmp).
set -euo pipefail
BUILD=${1:-build-wal-rel}
TOTAL_MIB=${2:-128}
PAIRS=${3:-3}
BIN="$BUILD/bench/wal/wal_bench"
[ -x "$BIN" ] || { echo "run.sh: $BIN not built" >&2; exit 2; }
DIR=$(mktemp -d "${BENCH_DIR:-/tmp}/raftd-walbench.XXXXXX")
trap 'rm -rf "$DIR"' EXIT

# Prints "MiB/s mean_fdatasync_ms".
run_fio() {
  sync; sleep 2
  fio --name=sync64k --directory="$DIR" --ioengine=sync --numjobs=1 --rw=write --bs=64k \
      --fdatasync=1 --size="${TOTAL_MIB}m" --output-format=json > "$DIR/fio.json"
  rm -f "$DIR"/sync64k*
  jq -r '.jobs[0] | "\(.write.bw_bytes/1048576) \(.sync.lat_ns.mean/1e6)"' "$DIR/fio.json"
}

# Prints wal_bench's output for GROUPS.
run_wal() {
  sync; sleep 2
  "$BIN" "$DIR/wal" "$1" 64 1024 "$TOTAL_MIB" 64
  rm -rf "$DIR/wal"
}

field() { sed -n "s/.*[ ]$1=\([0-9.]*\).*/\1/p" | head -1; }
best() { sed -n "s/.*[ ]$1=\([0-9.]*\).*/\1/p" | sort -g | tail -1; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2];
                                               else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')  total: ${TOTAL_MIB} MiB per run  pairs: $PAIRS"
for groups in 1 100 10000; do
  ratios=(); wratios=(); scans=(); files=()
  for pair in $(seq 1 "$PAIRS"); do
    if (( pair % 2 )); then
      fio=$(run_fio); out=$(run_wal "$groups")
    else
      out=$(run_wal "$groups"); fio=$(run_fio)
    fi
    read -r fio_mib fio_sync_ms <<< "$fio"
    line=$(echo "$out" | head -1)
    payload=$(echo "$line" | field payload_MiB_s)
    written=$(echo "$line" | field written_MiB_s)
    per_batch=$(echo "$line" | field fdatasyncs_per_batch)
    ms_batch=$(echo "$line" | field ms_per_batch)
    ms_sync=$(echo "$line" | field write_fdatasync_ms)
    scan=$(echo "$out" | best frame_MB_s)
    file=$(echo "$out" | best file_MB_s)
    ratio=$(awk -v p="$payload" -v f="$fio_mib" 'BEGIN { printf "%.2f", p / f }')
    wratio=$(awk -v w="$written" -v f="$fio_mib" 'BEGIN { printf "%.2f", w / f }')
    ratios+=("$ratio"); wratios+=("$wratio"); scans+=("$scan"); files+=("$file")
    printf 'PAIR groups=%s pair=%s first=%s fio_MiB_s=%.2f fio_fdatasync_ms=%.3f ' \
      "$groups" "$pair" "$( (( pair % 2 )) && echo fio || echo wal)" "$fio_mib" "$fio_sync_ms"
    printf 'wal_payload_MiB_s=%s wal_written_MiB_s=%s payload/fio=%s written/fio=%s ' \
      "$payload" "$written" "$ratio" "$wratio"
    printf 'fdatasyncs_per_batch=%s ms_per_batch=%s write_fdatasync_ms=%s ' \
      "$per_batch" "$ms_batch" "$ms_sync"
    printf 'recovery_frame_MB_s=%s recovery_file_MB_s=%s\n' "$scan" "$file"
  done
  printf 'MEDIAN groups=%s payload/fio=%s written/fio=%s recovery_frame_MB_s=%s ' \
    "$groups" "$(printf '%s\n' "${ratios[@]}" | median)" \
    "$(printf '%s\n' "${wratios[@]}" | median)" "$(printf '%s\n' "${scans[@]}" | median)"
  printf 'recovery_file_MB_s=%s\n' "$(printf '%s\n' "${files[@]}" | median)"
done
