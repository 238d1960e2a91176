#!/usr/bin/env bash
# raftd against etcd, side by side on this machine: 3 `raftd serve` nodes with 3 raftd-kv apps
# (examples/kv) and a 3-member etcd cluster, all on 127.0.0.1 and up together, loaded by the same
# generator (raftd-load, bench/load) with the same request shapes, in alternating rounds (raftd
# then etcd in odd rounds, etcd then raftd in even ones) so that background load spreads over
# both. For each case and system: requests/s and p50/p99 from raftd-load's JSON line, CPU seconds
# per 1,000 operations of the system's processes (utime + stime deltas from /proc/<pid>/stat,
# summed over the 3 raftd + 3 raftd-kv, or over the 3 etcd), and the RSS of every process after
# its last round (VmRSS). Prints one line per round, then a table of medians and the ratios
# raftd/etcd.
#
# Usage: bench/etcd/run.sh [--smoke] BUILD_DIR
#   BUILD_DIR: a release tree with benchmarks, e.g.
#     meson setup build-rel --buildtype=release -Dbenchmarks=enabled
#     ninja -C build-rel src/cli/raftd examples/kv/raftd-kv bench/load/raftd-load
#   --smoke (or SMOKE=1): one 1 s round of one case (16 B writes, 16 connections), no warm-up,
#     raftd only when etcd is not installed; checks that the JSON lines parse, count requests
#     and have no errors. Takes a few seconds.
# Environment:
#   ROUNDS (3), DURATION (10, seconds per round), WARMUP (3, seconds per system before round 1)
#   CASES   ("w16c1 w16c16 w16c64 w16c256 w128c1 w128c16 w128c64 w128c256 r64"):
#           wSIZEcCONNS = puts of SIZE-byte values over CONNS connections (keys k%08d out of
#           KEYSPACE); rCONNS = linearizable reads over CONNS connections of READ_KEYS keys
#           (r%08d) written before the rounds, so that every read finds its key (any non-2xx
#           answer is an error)
#   RAFTD_GROUPS (16): raftd groups 1..RAFTD_GROUPS, created before the rounds; every raftd request picks
#           one uniformly (raftd-load -g 1-RAFTD_GROUPS); etcd has one Raft group
#   KEYSPACE (100000), READ_KEYS (100: per group for raftd, 1 x READ_KEYS for etcd)
#   TARGETS (all): "all" sends to the 3 nodes of each system (connection i to node i mod 3;
#           followers forward), "leader" to etcd's leader and raftd's node 1 only
#   SYSTEMS ("raftd etcd"), THREADS (1: raftd-load threads), KEEP (0; 1 keeps the temp dir)
#   RESULTS (a file to copy the per-round lines into)
# Needs: etcd and etcdctl (Debian: apt-get install etcd-server etcd-client), python3, curl, jq.
# Stops only the processes it started (on exit, Ctrl-C or SIGTERM) and removes its temp dir.
set -euo pipefail

smoke=${SMOKE:-0}
if [ "${1:-}" = --smoke ]; then
  smoke=1
  shift
fi
[ $# -eq 1 ] || { sed -n '12,18p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
bench_binaries "$1"

if [ "$smoke" = 1 ]; then
  ROUNDS=1 DURATION=1 WARMUP=0 CASES=w16c16 RAFTD_GROUPS=${RAFTD_GROUPS:-4} STOP_WAIT_S=2
fi
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
CASES=${CASES:-"w16c1 w16c16 w16c64 w16c256 w128c1 w128c16 w128c64 w128c256 r64"}
RAFTD_GROUPS=${RAFTD_GROUPS:-16}
KEYSPACE=${KEYSPACE:-100000}
READ_KEYS=${READ_KEYS:-100}
TARGETS=${TARGETS:-all}
THREADS=${THREADS:-1}
KEEP=${KEEP:-0}
RESULTS=${RESULTS:-}
APP_SYNC=${APP_SYNC:-}       # 1: raftd-kv --sync-mode and [app] sync = true (app syncs on POST /Sync)
RAFTD_TOML=${RAFTD_TOML:-}   # TOML appended to every raftd.toml (printf %b: \n for newlines)
READY_WAIT_S=60   # a cluster's start on a loaded machine: WAL recovery, elections
STOP_WAIT_S=${STOP_WAIT_S:-15}  # SIGTERM to exit, then SIGKILL (the smoke: 2 s; its data is thrown away)
for c in $CASES; do
  [[ "$c" =~ ^(w[0-9]+c[0-9]+|r[0-9]+)$ ]] || { echo "run.sh: bad case '$c' (wSIZEcCONNS or rCONNS)" >&2; exit 2; }
done
[[ "$TARGETS" =~ ^(all|leader)$ ]] || { echo "run.sh: TARGETS is all or leader" >&2; exit 2; }

have_etcd=1
if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then have_etcd=0; fi
SYSTEMS=${SYSTEMS:-"raftd etcd"}
if [ "$have_etcd" = 0 ]; then
  msg="etcd or etcdctl is not installed; install them with: apt-get install etcd-server etcd-client (Debian 12 has etcd 3.4, the version the peer baseline scripts use)"
  if [ "$smoke" = 1 ]; then
    echo "run.sh: $msg; smoke run of raftd only" >&2
    SYSTEMS=raftd
  elif [[ " $SYSTEMS " == *" etcd "* ]]; then
    echo "run.sh: $msg" >&2
    exit 1
  fi
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/raftd-bench-etcd.XXXXXX")
declare -a pids=() raftd_pids=() kv_pids=() etcd_pids=()
failed=0
stop_all() {
  local pid waited=0 left
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  while :; do
    left=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
    [ $left -eq 0 ] && break
    if [ $waited -ge $((STOP_WAIT_S * 10)) ]; then
      for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ ${#pids[@]} -eq 0 ] || echo "run.sh: stopped ${#pids[@]} processes in $((waited / 10)) s" >&2
  pids=()
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM PIPE
  trap '' PIPE  # output to a closed pipe (run.sh | head) must not skip the stop and the rm
  set +e
  stop_all
  if [ "$KEEP" = 1 ] || [ $failed = 1 ]; then echo "run.sh: logs and data kept in $tmp" >&2; else rm -rf "$tmp"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 141' PIPE

logs_tail() {
  local f
  for f in "$tmp"/*.log; do
    [ -f "$f" ] || continue
    echo "--- $f (last 20 lines)"
    tail -n 20 "$f"
  done
}
fail() {
  failed=1
  echo "run.sh: FAILED: $*" >&2
  logs_tail >&2
  exit 1
}

# free_ports N: N distinct ports free on 127.0.0.1 right now (the kernel's choice).
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

# http METHOD URL [BODY]: sets CODE (000 when the connection failed) and BODY.
http() {
  local args=(-sS -o "$tmp/body" -w '%{http_code}' --max-time 15 -X "$1" "$2")
  if [ $# -ge 3 ]; then args+=(--data-binary "$3"); fi
  CODE=$(curl "${args[@]}" 2>/dev/null) || true
  [ -n "$CODE" ] || CODE=000
  BODY=$(cat "$tmp/body" 2>/dev/null || true)
}

check_alive() {
  local pid
  for pid in "$@"; do
    kill -0 "$pid" 2>/dev/null || fail "process $pid ($(cat "$tmp/name.$pid" 2>/dev/null)) exited"
  done
}

# ---- raftd: 3 raftd-kv, 3 nodes, RAFTD_GROUPS groups ---------------------------------------------
declare -a raftd_client=()
start_raftd() {
  local i j line deadline t0=$SECONDS p=("${ports[@]:0:6}")
  for i in 1 2 3; do
    mkdir -p "$tmp/raftd$i"
    "$RAFTD_KV" --listen 127.0.0.1:0 --data-dir "$tmp/raftd$i/kv" ${APP_SYNC:+--sync-mode} \
      >"$tmp/kv$i.log" 2>&1 &
    kv_pids+=($!) pids+=($!)
    echo "raftd-kv $i" >"$tmp/name.$!"
  done
  for i in 1 2 3; do
    deadline=$((SECONDS + READY_WAIT_S))
    line=
    while [ -z "$line" ]; do
      line=$(grep -m1 '^listening on ' "$tmp/kv$i.log" || true)
      check_alive "${kv_pids[$((i - 1))]}"
      [ $SECONDS -lt "$deadline" ] || fail "raftd-kv $i did not print its address"
      [ -n "$line" ] || sleep 0.05
    done
    kv_port[i]=${line##*:}
  done
  for i in 1 2 3; do
    raftd_client[i]=${p[$(((i - 1) * 2))]}
    raftd_peer[i]=${p[$(((i - 1) * 2 + 1))]}
  done
  for i in 1 2 3; do
    {
      printf '[node]\nid = %d\ndata_dir = "%s"\n\n' "$i" "$tmp/raftd$i/data"
      printf '[listen]\nclient = "127.0.0.1:%s"\npeer = "127.0.0.1:%s"\n\n' "${raftd_client[$i]}" "${raftd_peer[$i]}"
      printf '[cluster]\ninitial = [\n'
      for j in 1 2 3; do
        printf '  { id = %d, peer = "127.0.0.1:%s", client = "127.0.0.1:%s" },\n' \
          "$j" "${raftd_peer[$j]}" "${raftd_client[$j]}"
      done
      printf ']\n\n[app]\nurl = "http://127.0.0.1:%s"\n' "${kv_port[$i]}"
      [ -z "$APP_SYNC" ] || printf 'sync = true\n'
      printf '\n[log]\nlevel = "warn"\n'
      [ -z "$RAFTD_TOML" ] || printf '\n%b\n' "$RAFTD_TOML"
    } >"$tmp/raftd$i/raftd.toml"
    "$RAFTD" serve --config "$tmp/raftd$i/raftd.toml" >"$tmp/raftd$i.log" 2>&1 &
    raftd_pids+=($!) pids+=($!)
    echo "raftd node $i" >"$tmp/name.$!"
  done
  for i in 1 2 3; do
    deadline=$((SECONDS + READY_WAIT_S))
    while :; do
      check_alive "${raftd_pids[@]}" "${kv_pids[@]}"
      http GET "http://127.0.0.1:${raftd_client[$i]}/readyz"
      [ "$CODE" = 200 ] && break
      [ $SECONDS -lt "$deadline" ] || fail "raftd node $i: /readyz not 200 in ${READY_WAIT_S} s ($CODE $BODY)"
      sleep 0.1
    done
  done
  local g l
  for g in $(seq 1 "$RAFTD_GROUPS"); do
    deadline=$((SECONDS + READY_WAIT_S))
    while :; do
      http POST "http://127.0.0.1:${raftd_client[1]}/v1/groups" "{\"id\":$g,\"members\":[1,2,3]}"
      [ "$CODE" = 201 ] && break
      case "$CODE" in 503 | 504 | 000) ;; *) fail "POST /v1/groups id $g: $CODE $BODY" ;; esac
      [ $SECONDS -lt "$deadline" ] || fail "group $g not created ($CODE $BODY)"
      sleep 0.2
    done
  done
  # Every group has a leader seen by every node.
  for g in $(seq 1 "$RAFTD_GROUPS"); do
    for i in 1 2 3; do
      deadline=$((SECONDS + READY_WAIT_S))
      while :; do
        http GET "http://127.0.0.1:${raftd_client[$i]}/v1/groups/$g"
        l=$(jq -r '.leader // 0' <<<"$BODY" 2>/dev/null || echo 0)
        [ "$CODE" = 200 ] && [ "$l" != 0 ] && break
        [ $SECONDS -lt "$deadline" ] || fail "group $g: node $i sees no leader ($CODE $BODY)"
        sleep 0.1
      done
    done
  done
  local leaders
  leaders=$(for g in $(seq 1 "$RAFTD_GROUPS"); do
    http GET "http://127.0.0.1:${raftd_client[1]}/v1/groups/$g"
    jq -r .leader <<<"$BODY"
  done | sort | uniq -c | awk '{printf "%snode %s: %s", (NR>1?", ":""), $2, $1}')
  echo "raftd: 3 nodes (pids ${raftd_pids[*]}), 3 raftd-kv (pids ${kv_pids[*]}), $RAFTD_GROUPS groups; group leaders: $leaders; ready in $((SECONDS - t0)) s" >&2
}

# ---- etcd: 3 members, the flags of the peer baseline (etcd_bench.sh) ----------------------
declare -a etcd_client=()
etcd_leader=
start_etcd() {
  local i cluster="" eps="" deadline t0=$SECONDS p=("${ports[@]:6:6}")
  for i in 0 1 2; do
    etcd_client[i]=${p[$((i * 2))]}
    cluster+="${cluster:+,}m$i=http://127.0.0.1:${p[$((i * 2 + 1))]}"
    eps+="${eps:+,}http://127.0.0.1:${p[$((i * 2))]}"
  done
  for i in 0 1 2; do
    etcd --name "m$i" --data-dir "$tmp/etcd$i" \
      --listen-client-urls "http://127.0.0.1:${etcd_client[$i]}" \
      --advertise-client-urls "http://127.0.0.1:${etcd_client[$i]}" \
      --listen-peer-urls "http://127.0.0.1:${p[$((i * 2 + 1))]}" \
      --initial-advertise-peer-urls "http://127.0.0.1:${p[$((i * 2 + 1))]}" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "raftd-bench-$$" \
      --quota-backend-bytes $((8 * 1024 * 1024 * 1024)) --logger zap --log-level warn \
      >"$tmp/etcd$i.log" 2>&1 &
    etcd_pids+=($!) pids+=($!)
    echo "etcd m$i" >"$tmp/name.$!"
  done
  deadline=$((SECONDS + READY_WAIT_S))
  until etcdctl --endpoints "$eps" endpoint health >/dev/null 2>&1; do
    check_alive "${etcd_pids[@]}"
    [ $SECONDS -lt "$deadline" ] || fail "etcd: not healthy in ${READY_WAIT_S} s"
    sleep 0.2
  done
  etcd_leader=$(etcdctl --endpoints "$eps" endpoint status | awk -F', ' '$5 == "true" {print $1}')
  [ -n "$etcd_leader" ] || fail "etcd: no leader in endpoint status"
  echo "etcd $(etcd --version | head -1 | awk '{print $3}'): 3 members (pids ${etcd_pids[*]}), leader $etcd_leader; ready in $((SECONDS - t0)) s" >&2
}

# prewrite SYSTEM: writes r%08d for 0 <= i < READ_KEYS (in every group for raftd), 16 B values,
# 16 keep-alive connections; fails on any non-2xx answer.
prewrite() {
  local sys=$1 port
  if [ "$sys" = raftd ]; then port=${raftd_client[1]}; else port=${etcd_leader##*:}; fi
  python3 - "$sys" "$port" "$READ_KEYS" "$RAFTD_GROUPS" <<'EOF' || fail "prewrite of the read keys on $sys"
import base64, http.client, json, sys, threading
system, port, nkeys, ngroups = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
value = "abcdefghijklmnop"
work = []
for k in range(nkeys):
    key = "r%08d" % k
    if system == "raftd":
        for g in range(1, ngroups + 1):
            work.append((f"/v1/groups/{g}/propose", json.dumps({"op": "put", "key": key, "value": value})))
    else:
        b = lambda s: base64.b64encode(s.encode()).decode()
        work.append(("/v3/kv/put", json.dumps({"key": b(key), "value": b(value)})))
errors = []
def run(part):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for path, body in part:
        for attempt in range(50):
            c.request("POST", path, body, {"Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            if r.status // 100 == 2:
                break
            if r.status not in (503, 504):
                errors.append(f"{path} {body}: {r.status} {data[:200]!r}")
                return
        else:
            errors.append(f"{path}: still {r.status} after 50 tries")
            return
threads = [threading.Thread(target=run, args=(work[i::16],)) for i in range(16)]
for t in threads: t.start()
for t in threads: t.join()
if errors:
    sys.exit("prewrite: " + "; ".join(errors[:5]))
print(f"{system}: wrote {len(work)} read keys", file=sys.stderr)
EOF
}

hz=$(getconf CLK_TCK)
cpu_ticks() {
  local s=0 p
  for p in "$@"; do s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$s"
}

targets_of() {
  if [ "$1" = raftd ]; then
    if [ "$TARGETS" = leader ]; then echo "127.0.0.1:${raftd_client[1]}"
    else echo "127.0.0.1:${raftd_client[1]} 127.0.0.1:${raftd_client[2]} 127.0.0.1:${raftd_client[3]}"; fi
  else
    if [ "$TARGETS" = leader ]; then echo "${etcd_leader#http://}"
    else echo "127.0.0.1:${etcd_client[0]} 127.0.0.1:${etcd_client[1]} 127.0.0.1:${etcd_client[2]}"; fi
  fi
}

# load_args SYSTEM CASE: raftd-load's options for one case.
load_args() {
  local sys=$1 c=$2 size conns
  if [[ "$c" =~ ^w([0-9]+)c([0-9]+)$ ]]; then
    size=${BASH_REMATCH[1]} conns=${BASH_REMATCH[2]}
    if [ "$sys" = raftd ]; then echo "-T raftd-put -g 1-$RAFTD_GROUPS"; else echo "-T etcd-put"; fi
    echo "-s $size -c $conns -k $KEYSPACE"
  else
    conns=${c#r}
    if [ "$sys" = raftd ]; then echo "-T raftd-get -g 1-$RAFTD_GROUPS"; else echo "-T etcd-range"; fi
    echo "-c $conns -k $READ_KEYS --key-prefix r"
  fi
}

# run_one SYSTEM CASE ROUND SECONDS: one raftd-load run; appends a result line to $tmp/rounds.
run_one() {
  local sys=$1 c=$2 round=$3 secs=$4 procs t0 t1 json
  if [ "$sys" = raftd ]; then procs=("${raftd_pids[@]}" "${kv_pids[@]}"); else procs=("${etcd_pids[@]}"); fi
  check_alive "${procs[@]}"
  # shellcheck disable=SC2046  # word splitting of the options is intended
  t0=$(cpu_ticks "${procs[@]}")
  # shellcheck disable=SC2046
  "$LOAD" -q -t "$THREADS" -d "$secs" $(load_args "$sys" "$c") $(targets_of "$sys") \
    >"$tmp/load.out" 2>"$tmp/load.err" || fail "raftd-load ($sys $c): $(cat "$tmp/load.err")"
  t1=$(cpu_ticks "${procs[@]}")
  check_alive "${procs[@]}"
  json=$(tail -n 1 "$tmp/load.out")
  local rss=() p
  for p in "${procs[@]}"; do rss+=("$(awk '/^VmRSS/{print $2}' "/proc/$p/status")"); done
  [ "$round" = 0 ] && return 0  # warm-up
  # One JSON object per round: raftd-load's counts and latencies, CPU and RSS of the system.
  jq -c --arg sys "$sys" --arg case "$c" --argjson round "$round" --argjson ticks "$((t1 - t0))" \
    --argjson hz "$hz" --arg rss "${rss[*]}" \
    '($ticks / $hz) as $cpu | {system: $sys, case: $case, round: $round, requests, ok,
      rps: .ok_rps, p50_ms: (.latency_us.p50 / 1000), p99_ms: (.latency_us.p99 / 1000),
      errors: .errors.total, cpu_s: $cpu,
      cpu_s_per_kop: (if .ok > 0 then $cpu / .ok * 1000 else null end), load_cpu_s: .cpu_s,
      rss_kb: ($rss | split(" ") | map(tonumber))}' <<<"$json" >>"$tmp/rounds" ||
    fail "bad result line of raftd-load ($sys $c): $json"
  tail -n 1 "$tmp/rounds" | jq -r 'def r2: . * 100 | round / 100; def r3: . * 1000 | round / 1000;
    "round \(.round) \(.system) \(.case): \(.rps | round) ops/s, p50 \(.p50_ms | r2) ms, p99 \(.p99_ms | r2) ms, \(.cpu_s_per_kop | r3) CPU-s per 1k ops, \(.errors) errors, RSS kB \(.rss_kb | map(tostring) | join(" "))"'
}

# ---- the run ----------------------------------------------------------------------------------
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"
echo "cases: $CASES; rounds $ROUNDS x ${DURATION} s; groups $RAFTD_GROUPS; targets $TARGETS; raftd-load threads $THREADS"
: >"$tmp/rounds"
read -r -a ports <<<"$(free_ports 12)"  # 6 for raftd's nodes, 6 for etcd's members
for s in $SYSTEMS; do "start_$s"; done
for c in $CASES; do
  if [[ "$c" == r* ]]; then
    for s in $SYSTEMS; do prewrite "$s"; done
    break
  fi
done
if [ "$WARMUP" != 0 ]; then
  for s in $SYSTEMS; do run_one "$s" w16c16 0 "$WARMUP"; done
fi
for round in $(seq 1 "$ROUNDS"); do
  order=$SYSTEMS
  if [ $((round % 2)) = 0 ]; then order=$(echo "$SYSTEMS" | tr ' ' '\n' | tac | tr '\n' ' '); fi
  for c in $CASES; do
    for s in $order; do run_one "$s" "$c" "$round" "$DURATION"; done
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -z "$RESULTS" ] || cp "$tmp/rounds" "$RESULTS"

python3 - "$tmp/rounds" "$smoke" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
smoke = sys.argv[2] == "1"
bad = [r for r in rows if r["requests"] <= 0 or r["ok"] <= 0 or r["errors"] != 0]
if not rows or bad:
    sys.exit(f"run.sh: FAILED: no rounds, or rounds without requests or with errors: {bad}")
cases = list(dict.fromkeys(r["case"] for r in rows))
systems = list(dict.fromkeys(r["system"] for r in rows))
med = {}
for s in systems:
    for c in cases:
        rs = [r for r in rows if r["system"] == s and r["case"] == c]
        if rs:
            med[s, c] = {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50_ms", "p99_ms", "cpu_s_per_kop")}
            med[s, c]["n"] = len(rs)
def name(c):
    return f"put {c[1:].split('c')[0]} B, {c.split('c')[1]} conns" if c[0] == "w" else f"linearizable get, {c[1:]} conns"
print()
print("| Case | System | Rounds | ops/s | p50 ms | p99 ms | CPU-s per 1k ops |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for c in cases:
    for s in systems:
        if (s, c) in med:
            m = med[s, c]
            print(f"| {name(c)} | {s} | {m['n']} | {m['rps']:,.0f} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} | {m['cpu_s_per_kop']:.3f} |")
if "raftd" in systems and "etcd" in systems:
    print()
    print("| Case | ops/s raftd/etcd | p50 raftd/etcd | p99 raftd/etcd | CPU per op raftd/etcd |")
    print("| --- | --- | --- | --- | --- |")
    for c in cases:
        a, b = med.get(("raftd", c)), med.get(("etcd", c))
        if a and b:
            print(f"| {name(c)} | {a['rps'] / b['rps']:.2f} | {a['p50_ms'] / b['p50_ms']:.2f} | "
                  f"{a['p99_ms'] / b['p99_ms']:.2f} | {a['cpu_s_per_kop'] / b['cpu_s_per_kop']:.2f} |")
print()
print("RSS after each system's last round (VmRSS, kB):")
last = {}
for r in rows:
    last[r["system"]] = r["rss_kb"]
per_node = {}
for s, rss in last.items():
    if s == "raftd":
        print(f"  raftd nodes: {rss[0:3]}, raftd-kv: {rss[3:6]}")
        per_node["raftd"] = statistics.median(rss[i] + rss[i + 3] for i in range(3))
        per_node["raftd alone"] = statistics.median(rss[0:3])
        print(f"  raftd per node (raftd + raftd-kv), median: {per_node['raftd']:,.0f} kB; raftd alone: {per_node['raftd alone']:,.0f} kB")
    else:
        print(f"  etcd members: {rss}")
        per_node["etcd"] = statistics.median(rss)
        print(f"  etcd per node, median: {per_node['etcd']:,.0f} kB")
if "raftd" in per_node and "etcd" in per_node:
    print(f"ratio RSS per node raftd/etcd: {per_node['raftd'] / per_node['etcd']:.2f} "
          f"(raftd alone: {per_node['raftd alone'] / per_node['etcd']:.2f})")
if smoke:
    print("smoke: " + ", ".join(f"{r['system']} {r['case']} {r['requests']} requests" for r in rows))
EOF
