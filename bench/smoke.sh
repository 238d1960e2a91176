#!/usr/bin/env bash
# smoke.sh - runs one benchmark binary or script of bench/ for a moment, with tiny sizes, and
# checks that it produced its result lines. It is part of the default test suite so that no
# benchmark can rot unnoticed (a benchmark nothing runs is a benchmark that aborts the day it is
# needed). It measures nothing: the numbers of a sanitized build on a loaded machine are
# meaningless, and no time limit is asserted.
#
# usage: bench/smoke.sh KIND BUILD_DIR
#   KIND: gbench BINARY   a Google Benchmark binary, every benchmark once at minimal time
#         wal             wal_bench on a small log, then bench/wal/run.sh with 2 MiB beside fio
#                         (1 and 10,000 groups, one round)
#         http            bench/http/run.sh, 1 round of 1 s at 4 connections beside nginx
#         load            raftd-load against raftd-bench-http: 2 s closed loop (2 targets,
#                         pipelining) and 1 s open loop; the JSON result lines must parse and
#                         count requests, without errors; then bench/load/run.sh, 1 round of 1 s
#                         at 4 connections beside wrk (when wrk and nginx are installed)
#         etcd            bench/etcd/run.sh --smoke: 3 raftd nodes + 3 raftd-kv and, when etcd is
#                         installed, a 3-member etcd; one 1 s round of 16 B puts at 16
#                         connections on each; the result lines must parse and count requests
#         scale           bench/scale/run.sh --smoke: 3 raftd nodes + 3 raftd-kv, 50 idle groups
#                         (CPU, RSS, messages/s with quiescing on and off), one restart of node 1,
#                         one 1 s round of 1 group against 10; every RESULT line must parse and
#                         count what it measured
# Exit status: 0 when the benchmark ran and printed what it must, 1 otherwise, 77 (skipped) when
# a kernel feature or a peer tool it needs is missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kind=$1
shift
tmp=$(mktemp -d "${TMPDIR:-/tmp}/raftd-bench-smoke.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

fail() { echo "bench smoke: $*" >&2; exit 1; }

# expect FILE REGEX WHAT: FILE must have a line matching REGEX.
expect() { grep -Eq "$2" "$1" || { cat "$1" >&2; fail "no $3 in the output"; }; }

need() { command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ] || {
  echo "bench smoke: $1 is missing (scripts/setup.sh installs it); skipped" >&2; exit 77; }; }

case "$kind" in
  gbench)
    bin=$1
    # Every registered benchmark runs once; JSON output proves each produced a measurement.
    "$bin" --benchmark_min_time=0.001 --benchmark_format=json > "$tmp/out.json"
    python3 - "$tmp/out.json" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))["benchmarks"]
if not runs:
    sys.exit("bench smoke: no benchmark ran")
bad = [r["name"] for r in runs if r.get("error_occurred") or r.get("iterations", 0) < 1]
if bad:
    sys.exit("bench smoke: failed: " + ", ".join(bad))
print(f"{len(runs)} benchmarks ran")
PY
    ;;
  wal)
    build=$1
    rc=0
    "$build/bench/wal/wal_bench" "$tmp/wal" 10 8 1024 2 4 > "$tmp/out.txt" || rc=$?
    [ "$rc" -eq 77 ] && { echo "bench smoke: no io_uring; skipped" >&2; exit 77; }
    [ "$rc" -eq 0 ] || { cat "$tmp/out.txt" >&2; fail "wal_bench exited $rc"; }
    expect "$tmp/out.txt" 'fdatasyncs_per_batch=1\.000 ' "one fdatasync per batch"
    expect "$tmp/out.txt" '^recovery_scan run=3 ' "recovery scan"
    need fio
    need jq
    BENCH_DIR=$tmp GROUPS_LIST="1 10000" WARMUP_MIB=2 "$root/bench/wal/run.sh" "$build" 2 1 \
      > "$tmp/run.txt"
    expect "$tmp/run.txt" '^MEDIAN groups=10000 write_bytes=[0-9]+ wal/fio_eq=[0-9]' "WAL/fio ratio"
    ;;
  http)
    build=$1
    need wrk
    need nginx
    # Ports of their own, so that the smoke can run beside the HTTP tests.
    CONNS=4 THREADS=1 DURATION=1s ROUNDS=1 PORT_OURS=18380 PORT_NGINX=18381 \
      "$root/bench/http/run.sh" "$build" > "$tmp/run.txt"
    expect "$tmp/run.txt" '^ratio raftd/nginx: [0-9]' "raftd/nginx ratio"
    ;;
  load)
    build=$1
    port=18390  # a port of its own, so that the smoke can run beside the HTTP tests
    "$build/bench/http/raftd-bench-http" --port "$port" > "$tmp/server.log" 2>&1 &
    server=$!
    trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$tmp"' EXIT
    for _ in $(seq 1 100); do
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
      kill -0 "$server" 2>/dev/null || { cat "$tmp/server.log" >&2; fail "raftd-bench-http exited"; }
      sleep 0.1
    done
    load="$build/bench/load/raftd-load"
    "$load" --help > "$tmp/help.txt"
    expect "$tmp/help.txt" '[-]-pipeline' "--help text"
    rc=0
    "$load" -T raftd-put -g 1-10 -c 4 -p 4 -d 2 "127.0.0.1:$port" "http://127.0.0.1:$port/" \
      > "$tmp/closed.txt" 2> "$tmp/closed.err" || rc=$?
    [ "$rc" -eq 1 ] && grep -q 'Unsupported' "$tmp/closed.err" &&
      { echo "bench smoke: no io_uring; skipped" >&2; exit 77; }
    [ "$rc" -eq 0 ] || { cat "$tmp/closed.txt" "$tmp/closed.err" >&2; fail "raftd-load exited $rc"; }
    expect "$tmp/closed.txt" '^ +[0-9.]+ +0\.500000 ' "latency histogram"
    "$load" -T etcd-range -c 2 -r 500 -d 1 -q "127.0.0.1:$port" > "$tmp/open.txt" ||
      { cat "$tmp/open.txt" >&2; fail "raftd-load (open loop) failed"; }
    python3 - "$tmp/closed.txt" "$tmp/open.txt" <<'PY'
import json, sys
for path, mode in zip(sys.argv[1:], ["closed", "open"]):
    r = json.loads(open(path).read().splitlines()[-1])
    if r["mode"] != mode or r["requests"] <= 0 or r["ok"] != r["requests"]:
        sys.exit(f"bench smoke: {path}: {r}")
    if r["errors"]["total"] != 0 or not 0 < r["latency_us"]["p50"] <= r["latency_us"]["max"]:
        sys.exit(f"bench smoke: {path}: errors or bad latencies: {r}")
    print(f"raftd-load {mode} loop: {r['requests']} requests, {r['rps']:.0f} req/s")
PY
    # bench/load/run.sh (CPU per request against wrk), one short round, when wrk and nginx exist.
    if command -v wrk >/dev/null && { command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; }; then
      CONNS=4 DURATION=1 ROUNDS=1 PORT=18391 "$root/bench/load/run.sh" "$build" > "$tmp/run.txt"
      expect "$tmp/run.txt" '^ratio raftd-load/wrk CPU per request: [0-9]' "raftd-load/wrk ratio"
    else
      echo "bench smoke: wrk or nginx missing: bench/load/run.sh not run" >&2
    fi
    ;;
  etcd)
    build=$1
    need jq
    rc=0
    "$root/bench/etcd/run.sh" --smoke "$build" > "$tmp/run.txt" 2> "$tmp/run.err" || rc=$?
    [ "$rc" -eq 0 ] || { cat "$tmp/run.txt" "$tmp/run.err" >&2; fail "bench/etcd/run.sh exited $rc"; }
    cat "$tmp/run.err" >&2
    expect "$tmp/run.txt" '^round 1 raftd w16c16: [1-9][0-9]* ops/s, .* 0 errors' "raftd round"
    expect "$tmp/run.txt" '^smoke: raftd w16c16 [1-9][0-9]* requests' "raftd request count"
    if command -v etcd >/dev/null && command -v etcdctl >/dev/null; then
      expect "$tmp/run.txt" '^round 1 etcd w16c16: [1-9][0-9]* ops/s, .* 0 errors' "etcd round"
      expect "$tmp/run.txt" '^\| put 16 B, 16 conns \| [0-9.]+ \|' "raftd/etcd ratio"
    fi
    grep -E '^(round|smoke)' "$tmp/run.txt"
    ;;
  scale)
    build=$1
    need jq
    rc=0
    "$root/bench/scale/run.sh" --smoke "$build" > "$tmp/run.txt" 2> "$tmp/run.err" || rc=$?
    [ "$rc" -eq 0 ] || { cat "$tmp/run.txt" "$tmp/run.err" >&2; fail "bench/scale/run.sh exited $rc"; }
    cat "$tmp/run.err" >&2
    python3 - "$tmp/run.txt" <<'PY'
import json, sys
rows = [json.loads(l[7:]) for l in open(sys.argv[1]) if l.startswith("RESULT ")]
kinds = {}
for r in rows:
    kinds.setdefault(r["kind"], []).append(r)
def check(ok, what):
    if not ok:
        sys.exit(f"bench smoke: {what}: {json.dumps(kinds)}")
check(sorted(kinds) == ["active", "create", "idle", "restart", "rss"], "result kinds")
check(kinds["create"][0]["created"] == 50, "50 groups created")
phases = {r["phase"]: r for r in kinds["idle"]}
check(set(phases) == {"empty", "groups", "groups_noquiesce", "groups_nocoalesce"}, "idle phases")
for r in kinds["idle"]:
    check(all(len(r[k]) == 3 and min(r[k]) >= 0 for k in
              ("raftd_cpu_pct", "kv_cpu_pct", "msgs_sent_per_s")), "an idle line per node")
# Without quiescing, every node's groups heartbeat: messages are sent.
check(min(phases["groups_noquiesce"]["msgs_sent_per_s"]) > 0, "heartbeats counted")
# Coalescing on: every heartbeat went into a kHeartbeats list; off: none did, and each cost more
# bytes (a full message instead of a tuple).
on, off = phases["groups_noquiesce"], phases["groups_nocoalesce"]
check(min(on["heartbeats_sent_per_s"]) > 0 and min(off["heartbeats_sent_per_s"]) > 0,
      "heartbeats counted in both modes")
check(on["heartbeats_coalesced_per_s"] == on["heartbeats_sent_per_s"], "all coalesced when on")
check(max(off["heartbeats_coalesced_per_s"]) == 0, "none coalesced when off")
check(sum(off["bytes_sent_per_s"]) / sum(off["heartbeats_sent_per_s"]) >
      sum(on["bytes_sent_per_s"]) / sum(on["heartbeats_sent_per_s"]), "bytes per heartbeat")
check(all(len(r["raftd_kb"]) == 3 and min(r["raftd_kb"]) > 0 for r in kinds["rss"]), "RSS")
rs = kinds["restart"][0]
check(rs["groups"] == 50 and 0 < rs["recovered_s"] <= rs["ready_s"] and rs["wal_bytes"] > 0,
      "restart times")
a = kinds["active"][0]
check(a["one_ok"] > 0 and a["many_ok"] > 0 and a["ratio"] > 0, "writes counted")
check(a["many"]["heartbeats_per_write"] <= a["many"]["msgs_per_write"], "heartbeats per write")
print(f"{len(rows)} result lines; {a['one_ok']} + {a['many_ok']} writes")
PY
    grep -E '^(smoke|\|)' "$tmp/run.txt"
    ;;
  *)
    fail "unknown kind $kind"
    ;;
esac
echo "bench smoke $kind: ok"
