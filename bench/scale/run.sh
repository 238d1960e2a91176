#!/usr/bin/env bash
# raftd at scale: 3 `raftd serve` nodes with 3 raftd-kv apps (examples/kv) on 127.0.0.1, then
#   (b) idle cost: CPU of each raftd (utime + stime from /proc/PID/stat) over IDLE_S s windows
#       before any group exists and after IDLE_GROUPS groups were created through
#       POST /v1/groups and left to quiesce; RSS (VmRSS) before and after, per group;
#   (d) messages sent per second per node (raftd_transport_messages_sent_total of /metrics)
#       over the same windows, quiescing on (raft.quiesce_after_ticks = QUIESCE_TICKS), and
#       after a restart of all 3 nodes with quiescing off (quiesce_after_ticks = 0);
#   (c) restarts of node 1 holding the IDLE_GROUPS groups: time from exec to /readyz 200, to
#       WAL recovered (its "serving clients" log line, written once the WAL is open), to the
#       last "group N: started" line, to every group having a leader seen from node 1; the WAL
#       bytes (raftd_wal_bytes_written_total summed over the node's lives) per second of
#       recovery;
#   (a) writes/s with ACTIVE_GROUPS groups active (raftd-load -g 1-ACTIVE_GROUPS, puts spread
#       uniformly) against one group (-g 1-1), same connections and value size, in alternating
#       rounds (one then many in odd rounds, many then one in even ones); the ratio per round.
# Every measurement prints one line "RESULT {json}" (with the load average at that moment),
# then a table of medians [min..max] at the end (bench/scale/scale.py report).
#
# Usage: bench/scale/run.sh [--smoke] BUILD_DIR
#   BUILD_DIR: a release tree with benchmarks, e.g.
#     meson setup build-rel --buildtype=release -Dbenchmarks=enabled
#     ninja -C build-rel src/cli/raftd examples/kv/raftd-kv bench/load/raftd-load
#   --smoke (or SMOKE=1): every step at tiny sizes (50 idle groups, 10 active, 1 s windows and
#     rounds, one restart); checks that the result lines parse and count something.
# Environment:
#   IDLE_GROUPS (10000; not GROUPS, which bash reserves), ACTIVE_GROUPS (1000, groups 1..N of
#   the idle ones, created too when IDLE_GROUPS is smaller), ROUNDS (3: load rounds, idle
#   windows of each phase, restarts), DURATION (10 s per load round), WARMUP (3 s of load per
#   case before round 1), IDLE_S (60 s per idle window), SETTLE_S (15 s from the last group
#   having a leader to the first idle window: elections end, groups quiesce), CONNS (256),
#   VALUE_SIZE (16), QUIESCE_TICKS (20), CREATE_CONNS (32), PORT_BASE (18460: clients on
#   PORT_BASE+1..3, peers on PORT_BASE+4..6; the smoke uses 18470), PHASES ("idle restart
#   active noquiesce nocoalesce": the groups are always created, a subset skips the other
#   steps),
#   KEEP (0; 1 keeps the temp dir), RESULTS (a file to copy the RESULT lines into), PERF_DIR
#   (unset; a directory: node 1's raftd is profiled with perf record -g during each load
#   round, files one.R.data and many.R.data; with PERF_ALL=1 the whole machine, perf record -a;
#   PERF_CALLGRAPH=dwarf for call chains through libc, which has no frame pointers),
#   MALLOC_COUNT (0; 1 counts node 1's calls to libc's malloc during each load round through a
#   uprobe, perf probe + perf stat, root only, and adds mallocs_per_write_node1 to its result:
#   the probe slows raftd, so that run's other figures are not comparable).
# Needs python3, curl, jq. Stops only the processes it started (on exit, Ctrl-C or SIGTERM).
set -euo pipefail

smoke=${SMOKE:-0}
if [ "${1:-}" = --smoke ]; then
  smoke=1
  shift
fi
[ $# -eq 1 ] || { sed -n '20,25p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
bench_binaries "$1"

if [ "$smoke" = 1 ]; then
  IDLE_GROUPS=50 ACTIVE_GROUPS=10 ROUNDS=1 DURATION=1 WARMUP=0 IDLE_S=1 SETTLE_S=1 CONNS=16
  PORT_BASE=${PORT_BASE:-18470}
  STOP_WAIT_S=5
fi
IDLE_GROUPS=${IDLE_GROUPS:-10000}
ACTIVE_GROUPS=${ACTIVE_GROUPS:-1000}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
IDLE_S=${IDLE_S:-60}
SETTLE_S=${SETTLE_S:-15}
CONNS=${CONNS:-256}
VALUE_SIZE=${VALUE_SIZE:-16}
QUIESCE_TICKS=${QUIESCE_TICKS:-20}
CREATE_CONNS=${CREATE_CONNS:-32}
PORT_BASE=${PORT_BASE:-18460}
PHASES=${PHASES:-"idle restart active noquiesce nocoalesce"}
KEEP=${KEEP:-0}
RESULTS=${RESULTS:-}
READY_WAIT_S=${READY_WAIT_S:-300}  # a start, or every group led, on a loaded machine
STOP_WAIT_S=${STOP_WAIT_S:-30}     # SIGTERM to exit, then SIGKILL
GROUPS_TOTAL=$((IDLE_GROUPS > ACTIVE_GROUPS ? IDLE_GROUPS : ACTIVE_GROUPS))

tmp=$(mktemp -d "${TMPDIR:-/tmp}/raftd-bench-scale.XXXXXX")
declare -a raftd_pid=() kv_pid=() kv_port=() client=() peer=() wal_bytes=()
failed=0
all_pids() {
  local i
  for i in 1 2 3; do
    [ -z "${raftd_pid[$i]:-}" ] || echo "${raftd_pid[$i]}"
    [ -z "${kv_pid[$i]:-}" ] || echo "${kv_pid[$i]}"
  done
}
# stop_pids PID...: SIGTERM, SIGKILL after STOP_WAIT_S s.
stop_pids() {
  local pid waited=0 left
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  while :; do
    left=0
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && left=1; done
    [ $left -eq 0 ] && break
    if [ $waited -ge $((STOP_WAIT_S * 10)) ]; then
      echo "run.sh: SIGKILL to $* after ${STOP_WAIT_S} s" >&2
      for pid in "$@"; do kill -KILL "$pid" 2>/dev/null || true; done
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM PIPE
  trap '' PIPE
  set +e
  # shellcheck disable=SC2046
  stop_pids $(all_pids)
  # A failure (exit 1, also from a fail in a subshell) keeps the logs; Ctrl-C or SIGTERM does not.
  if [ "$KEEP" = 1 ] || [ $failed = 1 ] || [ $rc = 1 ]; then echo "run.sh: logs and data kept in $tmp" >&2; else rm -rf "$tmp"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 141' PIPE

fail() {
  local f
  failed=1
  echo "run.sh: FAILED: $*" >&2
  for f in "$tmp"/*.log; do
    [ -f "$f" ] || continue
    echo "--- $f (last 20 lines)" >&2
    tail -n 20 "$f" >&2
  done
  exit 1
}
check_alive() {
  local i
  for i in 1 2 3; do
    [ -z "${raftd_pid[$i]:-}" ] || kill -0 "${raftd_pid[$i]}" 2>/dev/null || fail "raftd node $i exited"
    [ -z "${kv_pid[$i]:-}" ] || kill -0 "${kv_pid[$i]}" 2>/dev/null || fail "raftd-kv $i exited"
  done
}
now() { date +%s.%N; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
code_of() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$1" 2>/dev/null || true; }
hz=$(getconf CLK_TCK)
if [ "${MALLOC_COUNT:-0}" = 1 ]; then
  libc=$(ldd "$RAFTD" | awk '/libc\.so/ {print $3; exit}')
  perf probe -l 2>/dev/null | grep -q 'probe_libc:malloc' ||
    perf probe -q -x "$libc" --add malloc ||
    { echo "run.sh: MALLOC_COUNT=1 needs perf and root (perf probe on $libc)" >&2; exit 1; }
fi
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
cpu_ticks_sum() { local p s=0; for p in "$@"; do s=$((s + $(cpu_ticks "$p"))); done; echo "$s"; }
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
scale() { python3 "$here/scale.py" "$@"; }
# metric I NAME...: the sum of every sample of each NAME in node I's /metrics, on one line.
metric() {
  local names="${*:2}" body
  body=$(curl -sSf --max-time 30 "http://127.0.0.1:${client[$1]}/metrics") || return 1
  awk -v names="$names" 'BEGIN { k = split(names, n, " "); for (i = 1; i <= k; i++) s[n[i]] = 0 }
    !/^#/ { name = $1; sub(/\{.*/, "", name); if (name in s) s[name] += $NF }
    END { for (i = 1; i <= k; i++) printf "%s%.0f", (i > 1 ? " " : ""), s[n[i]]; print "" }' <<<"$body"
}
# leaders I: "HOSTED LED L1 L2 L3" from node I's GET /v1/groups (group 0 left out): groups
# hosted, groups with a leader, groups led by nodes 1, 2 and 3.
leaders() {
  curl -sSf --max-time 30 "http://127.0.0.1:${client[$1]}/v1/groups" | jq -r '
    [.groups[] | select(.id != 0) | .leader] as $l |
    "\($l | length) \($l | map(select(. != 0)) | length) \([1, 2, 3] | map(. as $n | $l | map(select(. == $n)) | length) | join(" "))"'
}
result() { echo "RESULT $1" | tee -a "$tmp/results"; }

for i in 1 2 3; do
  client[i]=$((PORT_BASE + i))
  peer[i]=$((PORT_BASE + 3 + i))
  wal_bytes[i]=0
done

start_kv() {
  local i=$1 line deadline=$((SECONDS + 30))
  mkdir -p "$tmp/n$i"
  "$RAFTD_KV" --listen 127.0.0.1:0 --data-dir "$tmp/n$i/kv" >"$tmp/kv$i.log" 2>&1 &
  kv_pid[i]=$!
  while :; do
    line=$(grep -m1 '^listening on ' "$tmp/kv$i.log" 2>/dev/null || true)
    [ -n "$line" ] && break
    check_alive
    [ $SECONDS -lt "$deadline" ] || fail "raftd-kv $i did not print its address"
    sleep 0.05
  done
  kv_port[i]=${line##*:}
}

# start_node I QUIESCE_TICKS [COALESCE]: writes the node's config (transport.coalesce_heartbeats
# = COALESCE, default true) and starts it; START_AT[I] = exec time.
declare -a start_at=()
start_node() {
  local i=$1 q=$2 co=${3:-true} j
  {
    printf '[node]\nid = %d\ndata_dir = "%s"\n\n' "$i" "$tmp/n$i/data"
    printf '[listen]\nclient = "127.0.0.1:%s"\npeer = "127.0.0.1:%s"\n\n' "${client[$i]}" "${peer[$i]}"
    printf '[cluster]\ninitial = [\n'
    for j in 1 2 3; do
      printf '  { id = %d, peer = "127.0.0.1:%s", client = "127.0.0.1:%s" },\n' \
        "$j" "${peer[$j]}" "${client[$j]}"
    done
    printf ']\n\n[app]\nurl = "http://127.0.0.1:%s"\n\n' "${kv_port[$i]}"
    printf '[raft]\nquiesce_after_ticks = %d\n\n' "$q"
    printf '[transport]\ncoalesce_heartbeats = %s\n\n[log]\nlevel = "info"\n' "$co"
  } >"$tmp/n$i/raftd.toml"
  echo "--- start $(date -u +%FT%T.%3NZ) quiesce_after_ticks=$q coalesce_heartbeats=$co" >>"$tmp/raftd$i.log"
  start_at[i]=$(now)
  "$RAFTD" serve --config "$tmp/n$i/raftd.toml" >>"$tmp/raftd$i.log" 2>&1 &
  raftd_pid[i]=$!
}

# stop_node I: SIGTERM, and adds the WAL bytes this life wrote to wal_bytes[I].
stop_node() {
  local i=$1 b
  b=$(metric "$i" raftd_wal_bytes_written_total) || fail "node $i: /metrics"
  wal_bytes[i]=$((wal_bytes[i] + b))
  stop_pids "${raftd_pid[$i]}"
  raftd_pid[i]=
}

wait_ready() {
  local i=$1 deadline=$((SECONDS + READY_WAIT_S))
  while [ "$(code_of "http://127.0.0.1:${client[$i]}/readyz")" != 200 ]; do
    check_alive
    [ $SECONDS -lt "$deadline" ] || fail "node $i: /readyz not 200 in ${READY_WAIT_S} s"
    sleep 0.05
  done
}

# wait_led I N: until node I hosts N groups (besides group 0), each with a leader. Prints the
# leader counts "L1 L2 L3".
wait_led() {
  local i=$1 n=$2 deadline=$((SECONDS + READY_WAIT_S)) out=
  while :; do
    check_alive
    out=$(leaders "$i" 2>/dev/null || true)
    read -r hosted led l1 l2 l3 <<<"${out:-0 0 0 0 0}"
    [ "$hosted" = "$n" ] && [ "$led" = "$n" ] && break
    [ $SECONDS -lt "$deadline" ] || fail "node $i: ${led:-?} of $n groups led (${hosted:-?} hosted) after ${READY_WAIT_S} s"
    sleep 0.5
  done
  echo "$l1 $l2 $l3"
}

# started_count I: "group N: started" lines of node I's current life.
started_count() {
  awk '/^--- start /{n=0} / group [0-9]+: started /{n++} END{print n+0}' "$tmp/raftd$1.log"
}
# log_time I PATTERN: epoch seconds of the last line of node I's current life matching PATTERN.
log_time() {
  awk -v pat="$2" '/^--- start /{t=""} $0 ~ pat {t=$1} END{print t}' "$tmp/raftd$1.log" |
    { read -r t; [ -n "$t" ] && date -d "$t" +%s.%N; }
}

# idle_window PHASE GROUPS: one window of IDLE_S s; CPU of every process; messages,
# heartbeats (all, and those coalesced into kHeartbeats tuples), frames and bytes sent per s of
# every node.
idle_window() {
  local phase=$1 n=$2 i o m0=() m1=() b0=() b1=() h0=() h1=() x0=() x1=() f0=() f1=()
  local c0=() c1=() k0=() k1=() t0 t1 ta tb
  local names="raftd_transport_messages_sent_total raftd_transport_bytes_sent_total
    raftd_transport_heartbeats_sent_total raftd_transport_heartbeats_coalesced_total
    raftd_transport_frames_sent_total"
  check_alive
  t0=$(now)
  for i in 1 2 3; do
    # shellcheck disable=SC2086
    o=$(metric "$i" $names) || fail "node $i: /metrics"
    read -r "m0[i]" "b0[i]" "h0[i]" "x0[i]" "f0[i]" <<<"$o"
  done
  ta=$(now)
  for i in 1 2 3; do c0[i]=$(cpu_ticks "${raftd_pid[$i]}"); k0[i]=$(cpu_ticks "${kv_pid[$i]}"); done
  sleep "$IDLE_S"
  for i in 1 2 3; do c1[i]=$(cpu_ticks "${raftd_pid[$i]}"); k1[i]=$(cpu_ticks "${kv_pid[$i]}"); done
  tb=$(now)
  for i in 1 2 3; do
    # shellcheck disable=SC2086
    o=$(metric "$i" $names) || fail "node $i: /metrics"
    read -r "m1[i]" "b1[i]" "h1[i]" "x1[i]" "f1[i]" <<<"$o"
  done
  t1=$(now)
  check_alive
  # The messages' window runs from the middle of the first scrapes to the middle of the last.
  result "$(jq -cn --arg phase "$phase" --argjson n "$n" --argjson t0 "$t0" --argjson ta "$ta" \
    --argjson tb "$tb" --argjson t1 "$t1" --argjson hz "$hz" --arg load "$(loadavg)" \
    --argjson cpus "$(nproc)" --arg c0 "${c0[*]}" --arg c1 "${c1[*]}" --arg k0 "${k0[*]}" \
    --arg k1 "${k1[*]}" --arg m0 "${m0[*]}" --arg m1 "${m1[*]}" --arg b0 "${b0[*]}" --arg b1 "${b1[*]}" \
    --arg h0 "${h0[*]}" --arg h1 "${h1[*]}" --arg x0 "${x0[*]}" --arg x1 "${x1[*]}" \
    --arg f0 "${f0[*]}" --arg f1 "${f1[*]}" '
    def nums: split(" ") | map(tonumber);
    def r(d): . * d | round / d;
    def rate($a; $b; $w): [range(3) | ((($b | nums)[.] - ($a | nums)[.]) / $w)];
    ($tb - $ta) as $cw | (($tb + $t1) / 2 - ($t0 + $ta) / 2) as $mw |
    {kind: "idle", phase: $phase, groups: $n, window_s: ($cw | r(100)),
     raftd_cpu_pct: (rate($c0; $c1; $cw * $hz / 100) | map(r(10000))),
     kv_cpu_pct: (rate($k0; $k1; $cw * $hz / 100) | map(r(10000))),
     msgs_sent_per_s: (rate($m0; $m1; $mw) | map(r(100))),
     bytes_sent_per_s: (rate($b0; $b1; $mw) | map(r(10))),
     heartbeats_sent_per_s: (rate($h0; $h1; $mw) | map(r(100))),
     heartbeats_coalesced_per_s: (rate($x0; $x1; $mw) | map(r(100))),
     frames_sent_per_s: (rate($f0; $f1; $mw) | map(r(100))),
     loadavg: $load, cpus: $cpus}')"
}

# rss_line WHEN GROUPS BEFORE_RAFTD BEFORE_KV: RSS now against the RSS before (kB lists).
rss_line() {
  local when=$1 n=$2 i r=() k=() c=()
  for i in 1 2 3; do
    r[i]=$(rss_kb "${raftd_pid[$i]}")
    k[i]=$(rss_kb "${kv_pid[$i]}")
    c[i]=$(metric "$i" raftd_wal_cache_bytes)
  done
  result "$(jq -cn --arg when "$when" --argjson n "$n" --arg r0 "$3" --arg k0 "$4" \
    --arg r "${r[*]}" --arg k "${k[*]}" --arg c "${c[*]}" --arg load "$(loadavg)" --arg cpus "$(nproc)" '
    def nums: split(" ") | map(tonumber);
    ($r0 | nums) as $r0 | ($k0 | nums) as $k0 | ($r | nums) as $r | ($k | nums) as $k |
    {kind: "rss", when: $when, groups: $n, raftd_kb_before: $r0, raftd_kb: $r,
     kv_kb_before: $k0, kv_kb: $k, wal_cache_bytes: ($c | nums),
     raftd_bytes_per_group: [range(3) | (($r[.] - $r0[.]) * 1024 / $n | round)],
     kv_bytes_per_group: [range(3) | (($k[.] - $k0[.]) * 1024 / $n | round)],
     loadavg: $load, cpus: ($cpus | tonumber)}')"
}

# ---- the run ----------------------------------------------------------------------------------
echo "load average before: $(loadavg) ($(nproc) CPUs)"
echo "idle groups $IDLE_GROUPS, active $ACTIVE_GROUPS; rounds $ROUNDS; idle windows ${IDLE_S} s; load rounds ${DURATION} s at $CONNS connections, $VALUE_SIZE B; quiesce_after_ticks $QUIESCE_TICKS"
: >"$tmp/results"
for i in 1 2 3; do start_kv "$i"; done
for i in 1 2 3; do start_node "$i" "$QUIESCE_TICKS"; done
for i in 1 2 3; do wait_ready "$i"; done
echo "cluster ready: raftd pids ${raftd_pid[*]}, raftd-kv pids ${kv_pid[*]}, clients on ${client[*]}" >&2

phase() { [[ " $PHASES " == *" $1 "* ]]; }

# (b) + (d, quiescing on): idle cost before and after the groups.
sleep "$SETTLE_S"
rb=() kb=()
for i in 1 2 3; do rb[i]=$(rss_kb "${raftd_pid[$i]}"); kb[i]=$(rss_kb "${kv_pid[$i]}"); done
if phase idle; then
  for r in $(seq 1 "$ROUNDS"); do idle_window empty 0; done
fi
echo "creating $GROUPS_TOTAL groups over $CREATE_CONNS connections (load average $(loadavg))" >&2
out=$(scale create 1 "$GROUPS_TOTAL" "$CREATE_CONNS" "${client[@]}") || fail "group creation"
result "$(jq -c --argjson n "$GROUPS_TOTAL" --argjson c "$CREATE_CONNS" --arg load "$(loadavg)" \
  '{kind: "create", groups: $n, conns: $c} + . + {loadavg: $load}' <<<"$out")"
t_created=$SECONDS
for i in 1 2 3; do
  leaders=$(wait_led "$i" "$GROUPS_TOTAL")
done
echo "every node hosts $GROUPS_TOTAL groups, each led (leaders on nodes 1 2 3: $leaders) $((SECONDS - t_created)) s after creation" >&2
sleep "$SETTLE_S"
if phase idle; then
  rss_line "after creation, quiescing on" "$GROUPS_TOTAL" "${rb[*]}" "${kb[*]}"
  for r in $(seq 1 "$ROUNDS"); do idle_window groups "$GROUPS_TOTAL"; done
fi

# (c) restarts of node 1.
if phase restart; then
  for r in $(seq 1 "$ROUNDS"); do
    stop_node 1
    wal_disk=$(du -sb --apparent-size "$tmp/n1/data/wal" | cut -f1)
    start_node 1 "$QUIESCE_TICKS"
    wait_ready 1
    t_ready=$(now)
    deadline=$((SECONDS + READY_WAIT_S))
    while [ "$(started_count 1)" -lt "$GROUPS_TOTAL" ]; do
      check_alive
      [ $SECONDS -lt "$deadline" ] || fail "node 1: $(started_count 1) of $GROUPS_TOTAL groups started after ${READY_WAIT_S} s"
      sleep 0.05
    done
    wait_led 1 "$GROUPS_TOTAL" >/dev/null
    t_led=$(now)
    t_rec=$(log_time 1 'serving clients') || fail "node 1: no 'serving clients' line"
    t_started=$(log_time 1 ' group [0-9]+: started ') || fail "node 1: no 'started' line"
    result "$(jq -cn --argjson t0 "${start_at[1]}" --argjson ready "$t_ready" --argjson rec "$t_rec" \
      --argjson started "$t_started" --argjson led "$t_led" --argjson wal "${wal_bytes[1]}" \
      --argjson disk "$wal_disk" --argjson n "$GROUPS_TOTAL" --argjson r "$r" \
      --arg load "$(loadavg)" --argjson cpus "$(nproc)" '
      def r3: . * 1000 | round / 1000;
      ($rec - $t0) as $rs |
      {kind: "restart", round: $r, groups: $n, ready_s: ($ready - $t0 | r3),
       recovered_s: ($rs | r3), started_s: ($started - $t0 | r3), led_s: ($led - $t0 | r3),
       wal_bytes: $wal, wal_dir_bytes: $disk,
       wal_mb_per_s: (if $rs > 0 and $wal > 0 then $wal / $rs / 1e6 * 10 | round / 10 else null end),
       loadavg: $load, cpus: $cpus}')"
    sleep "$SETTLE_S"
  done
  rss_line "node 1 restarted (nodes 2, 3 not)" "$GROUPS_TOTAL" "${rb[*]}" "${kb[*]}"
fi

# (a) writes/s: ACTIVE_GROUPS groups against one, alternating rounds.
# counters: "FSYNCS APP_CALLS MSGS_SENT HEARTBEATS_SENT" summed over the 3 nodes' /metrics.
counters() {
  local i o f=0 a=0 m=0 h=0 x y z w
  for i in 1 2 3; do
    o=$(metric "$i" raftd_wal_fsyncs_total raftd_app_call_duration_seconds_count \
      raftd_transport_messages_sent_total raftd_transport_heartbeats_sent_total) ||
      fail "node $i: /metrics"
    read -r x y z w <<<"$o"
    f=$((f + x)) a=$((a + y)) m=$((m + z)) h=$((h + w))
  done
  echo "$f $a $m $h"
}
# load_round GROUPS SECONDS [PERF_NAME]: one raftd-load run of puts over groups 1..GROUPS; prints
# one JSON object: raftd-load's counts and latencies, and per write the CPU of the 6 processes,
# the WAL fdatasyncs, the app calls and the peer messages of the 3 nodes. Fails on any error.
# With PERF_DIR set and a PERF_NAME, node 1's raftd is profiled (perf record -g) meanwhile.
load_round() {
  local json c0 c1 k0 k1 perf_pid='' malloc_pid='' mallocs=null
  check_alive
  k0=$(counters)
  # shellcheck disable=SC2046
  c0=$(cpu_ticks_sum $(all_pids))
  if [ -n "${PERF_DIR:-}" ] && [ -n "${3:-}" ]; then
    local target=(-p "${raftd_pid[1]}")
    [ "${PERF_ALL:-0}" = 0 ] || target=(-a)
    perf record -q -F 499 --call-graph "${PERF_CALLGRAPH:-fp}" "${target[@]}" -o "$PERF_DIR/$3.data" -- sleep "$2" \
      >/dev/null 2>&1 &
    perf_pid=$!
  fi
  if [ "${MALLOC_COUNT:-0}" = 1 ]; then
    perf stat -x, -e probe_libc:malloc -p "${raftd_pid[1]}" -o "$tmp/malloc.stat" -- sleep "$2" \
      >/dev/null 2>&1 &
    malloc_pid=$!
  fi
  "$LOAD" -q -T raftd-put -g "1-$1" -s "$VALUE_SIZE" -c "$CONNS" -k 100000 -d "$2" \
    "127.0.0.1:${client[1]}" "127.0.0.1:${client[2]}" "127.0.0.1:${client[3]}" \
    >"$tmp/load.out" 2>"$tmp/load.err" || fail "raftd-load: $(cat "$tmp/load.err")"
  # shellcheck disable=SC2046
  c1=$(cpu_ticks_sum $(all_pids))
  [ -z "$perf_pid" ] || wait "$perf_pid" || true
  if [ -n "$malloc_pid" ]; then
    wait "$malloc_pid" || fail "perf stat of the malloc probe failed"
    mallocs=$(awk -F, '/probe_libc:malloc/ {print $1}' "$tmp/malloc.stat")
  fi
  k1=$(counters)
  json=$(tail -n 1 "$tmp/load.out")
  jq -e '.ok > 0 and .errors.total == 0' <<<"$json" >/dev/null ||
    fail "raftd-load on groups 1-$1: no requests or errors: $json"
  jq -c --argjson cpu "$((c1 - c0))" --argjson hz "$hz" --arg k0 "$k0" --arg k1 "$k1" \
    --argjson mallocs "$mallocs" '
    def nums: split(" ") | map(tonumber);
    ($k0 | nums) as $a | ($k1 | nums) as $b |
    {rps: .ok_rps, ok, p50_ms: (.latency_us.p50 / 1000), p99_ms: (.latency_us.p99 / 1000),
     cpu_us_per_write: ($cpu / $hz * 1e6 / .ok | round),
     fsyncs_per_kwrite: (($b[0] - $a[0]) * 1000 / .ok | round),
     app_calls_per_kwrite: (($b[1] - $a[1]) * 1000 / .ok | round),
     msgs_per_write: (($b[2] - $a[2]) / .ok * 100 | round / 100),
     heartbeats_per_write: (($b[3] - $a[3]) / .ok * 100 | round / 100)}
    + (if $mallocs == null then {} else {mallocs_per_write_node1: ($mallocs / .ok * 10 | round / 10)} end)' <<<"$json"
}
if phase active; then
  if [ "$WARMUP" != 0 ]; then
    load_round 1 "$WARMUP" >/dev/null
    load_round "$ACTIVE_GROUPS" "$WARMUP" >/dev/null
  fi
  for r in $(seq 1 "$ROUNDS"); do
    l0=$(loadavg)
    if [ $((r % 2)) = 1 ]; then
      o1=$(load_round 1 "$DURATION" "one.$r")
      o2=$(load_round "$ACTIVE_GROUPS" "$DURATION" "many.$r")
    else
      o2=$(load_round "$ACTIVE_GROUPS" "$DURATION" "many.$r")
      o1=$(load_round 1 "$DURATION" "one.$r")
    fi
    result "$(jq -cn --argjson r "$r" --argjson n "$ACTIVE_GROUPS" --argjson c "$CONNS" \
      --argjson s "$VALUE_SIZE" --argjson one "$o1" --argjson many "$o2" \
      --arg l0 "$l0" --arg load "$(loadavg)" --argjson cpus "$(nproc)" '
      {kind: "active", round: $r, active_groups: $n, conns: $c, value_size: $s,
       one_rps: $one.rps, many_rps: $many.rps, one_ok: $one.ok, many_ok: $many.ok,
       ratio: (($many.rps / $one.rps) * 1000 | round / 1000), one: $one, many: $many,
       loadavg_before: $l0, loadavg: $load, cpus: $cpus}')"
  done
fi

# (d, quiescing off): all 3 nodes restarted with quiesce_after_ticks = 0.
if phase noquiesce; then
  for i in 1 2 3; do stop_node "$i"; done
  for i in 1 2 3; do start_node "$i" 0; done
  for i in 1 2 3; do wait_ready "$i"; done
  for i in 1 2 3; do wait_led "$i" "$GROUPS_TOTAL" >/dev/null; done
  sleep "$SETTLE_S"
  rss_line "all 3 nodes restarted, quiescing off" "$GROUPS_TOTAL" "${rb[*]}" "${kb[*]}"
  for r in $(seq 1 "$ROUNDS"); do idle_window groups_noquiesce "$GROUPS_TOTAL"; done
fi

# (d, quiescing and heartbeat coalescing off): the same once more with every heartbeat a full
# message of its own (transport.coalesce_heartbeats = false).
if phase nocoalesce; then
  for i in 1 2 3; do stop_node "$i"; done
  for i in 1 2 3; do start_node "$i" 0 false; done
  for i in 1 2 3; do wait_ready "$i"; done
  for i in 1 2 3; do wait_led "$i" "$GROUPS_TOTAL" >/dev/null; done
  sleep "$SETTLE_S"
  for r in $(seq 1 "$ROUNDS"); do idle_window groups_nocoalesce "$GROUPS_TOTAL"; done
fi

echo "load average after: $(loadavg)"
[ -z "$RESULTS" ] || cp "$tmp/results" "$RESULTS"
echo
scale report "$tmp/results"
if [ "$smoke" = 1 ]; then
  # One line the smoke test checks: how many result lines of each kind, and writes counted.
  sed 's/^RESULT //' "$tmp/results" | jq -rs '
    "smoke: " + (group_by(.kind) | map("\(.[0].kind) \(length)") | join(", ")) + "; " +
    (map(select(.kind == "active") | "\(.one_ok) + \(.many_ok) writes") | join(", "))'
fi
