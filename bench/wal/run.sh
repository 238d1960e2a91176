#!/usr/bin/env bash
# run.sh - the WAL's group commit against the disk's physical ceiling, in one run, on one file
# system. For each of 1, 100 and 10,000 groups: fio's 64 KiB write + fdatasync (the sync64k
# test of peers/disk_fio.sh) right before wal_bench (1 KiB entries, 64 appends outstanding),
# so both see the same disk state; prints WAL/fio throughput ratios, fdatasyncs per batch and
# the recovery scan rate.
# Needs: fio, jq, a release build (meson setup build-wal-rel --buildtype=release
# -Dbenchmarks=enabled && meson compile -C build-wal-rel bench/wal/wal_bench).
# Usage: bench/wal/run.sh [BUILD_DIR=build-wal-rel] [TOTAL_MIB=128]; BENCH_DIR picks the file
# system (default /tmp).
set -euo pipefail
BUILD=${1:-build-wal-rel}
TOTAL_MIB=${2:-128}
BIN="$BUILD/bench/wal/wal_bench"
[ -x "$BIN" ] || { echo "run.sh: $BIN not built" >&2; exit 2; }
DIR=$(mktemp -d "${BENCH_DIR:-/tmp}/raftd-walbench.XXXXXX")
trap 'rm -rf "$DIR"' EXIT

fio_sync64k() {
  sync; sleep 2
  fio --name=sync64k --directory="$DIR" --ioengine=sync --numjobs=1 --rw=write --bs=64k \
      --fdatasync=1 --size=256m --output-format=json > "$DIR/fio.json"
  rm -f "$DIR"/sync64k*
  jq -r '.jobs[0].write.bw_bytes/1048576' "$DIR/fio.json"
}

for groups in 1 100 10000; do
  fio=$(fio_sync64k)
  printf 'fio sync64k: %.2f MiB/s\n' "$fio"
  sync; sleep 2
  out=$("$BIN" "$DIR/wal-$groups" "$groups" 64 1024 "$TOTAL_MIB" 64)
  echo "$out"
  line=$(echo "$out" | head -1)
  payload=$(echo "$line" | sed -n 's/.*payload_MiB_s=\([0-9.]*\).*/\1/p')
  written=$(echo "$line" | sed -n 's/.*written_MiB_s=\([0-9.]*\).*/\1/p')
  per_batch=$(echo "$line" | sed -n 's/.*fdatasyncs_per_batch=\([0-9.]*\).*/\1/p')
  scan=$(echo "$out" | sed -n 's/.*files_MB_s=\([0-9]*\).*/\1/p' | sort -n | tail -1)
  used=$(echo "$out" | sed -n 's/.* used_MB_s=\([0-9]*\).*/\1/p' | sort -n | tail -1)
  cpu=$(echo "$out" | sed -n 's/.*files_MB_per_cpu_s=\([0-9]*\).*/\1/p' | sort -n | tail -1)
  awk -v g="$groups" -v p="$payload" -v w="$written" -v f="$fio" -v b="$per_batch" \
      -v s="$scan" -v u="$used" -v c="$cpu" 'BEGIN { printf "RESULT groups=%s fdatasyncs_per_batch=%s " \
      "wal_payload_MiB_s=%.2f fio_MiB_s=%.2f payload/fio=%.2f written/fio=%.2f " \
      "recovery_scan_files_MB_s=%s recovery_scan_used_MB_s=%s recovery_scan_files_MB_per_cpu_s=%s\n", \
      g, b, p, f, p/f, w/f, s, u, c }'
  rm -rf "$DIR/wal-$groups"
done
