#!/bin/sh
# Runs a libFuzzer binary for a bounded time over the checked-in seed corpus. New inputs go to
# a scratch corpus in the build directory, never into the source tree.
# Usage: run_fuzz.sh FUZZER SEED_DIR SECONDS
set -eu
fuzzer=$1
seeds=$2
seconds=$3
work=$(dirname "$fuzzer")/$(basename "$fuzzer")-corpus
mkdir -p "$work"
exec "$fuzzer" -max_total_time="$seconds" -timeout=10 -error_exitcode=1 -rss_limit_mb=2048 \
  -artifact_prefix="$work/" -print_final_stats=1 "$work" "$seeds"
