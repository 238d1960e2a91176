# bench/lib.sh - what the benchmark scripts that start raftd clusters share (etcd/run.sh,
# scale/run.sh). Sourced, not run.

# bench_binaries BUILD: sets RAFTD, RAFTD_KV and LOAD to the binaries of the build directory
# BUILD (relative to the current directory or absolute), and exits 1 naming the first one not
# built or the first tool missing (python3, curl, jq).
bench_binaries() {
  local build=$1 b tool
  case "$build" in /*) ;; *) build="$PWD/$build" ;; esac
  RAFTD=$build/src/cli/raftd
  RAFTD_KV=$build/examples/kv/raftd-kv
  LOAD=$build/bench/load/raftd-load
  for b in "$RAFTD" "$RAFTD_KV" "$LOAD"; do
    [ -x "$b" ] || { echo "run.sh: $b is not built (ninja -C $build src/cli/raftd" \
      "examples/kv/raftd-kv bench/load/raftd-load; benchmarks need -Dbenchmarks=enabled)" >&2; exit 1; }
  done
  for tool in python3 curl jq; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing" >&2; exit 1; }
  done
}
