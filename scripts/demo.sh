#!/usr/bin/env bash
# The raftd demo: a 3-node cluster with the example key-value application, on this machine.
#
#   scripts/demo.sh            run the walk-through, then stay up until Ctrl-C (prints the curl
#                              commands to try by hand)
#   scripts/demo.sh --smoke    run the walk-through, stop every node with SIGTERM, exit
#   scripts/demo.sh --layers   the older per-layer demos instead (simulator, lincheck, WAL, HTTP)
#   options: --base-port N (ports N..N+5 for the 3 nodes, checked free; default: free ports
#            the kernel picks), --keep (keep the temp dir), -h/--help
#   env: BUILD_DIR (default build-demo), LAYERS_BUILD_DIR (default build-demo-layers),
#        RAFTD_LOG_LEVEL (the nodes' [log] level, default info)
#
# What it does: installs missing Debian packages (scripts/setup.sh), builds a release tree, then,
# in a fresh temp dir and on 127.0.0.1 only, starts 3 raftd-kv apps (examples/kv) and 3
# `raftd serve` nodes that bootstrap a cluster from [cluster].initial; waits for /readyz;
# creates a group through node 1, writes through node 2, reads back linearizably through node 3
# and stale through node 1; shows each node's view of the group and of the cluster; kills the
# group's leader with kill -9, writes through a survivor once a new leader is elected, restarts
# the killed node and reads through it. Every step checks its result and the script exits
# non-zero with a message (and the tails of the logs) on the first failure. Only the processes
# this script started are stopped, on exit, Ctrl-C or SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }

mode=interactive
base_port=
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) mode=smoke ;;
    --layers) mode=layers ;;
    --keep) keep=1 ;;
    --base-port)
      [ $# -ge 2 ] || { echo "demo: --base-port needs a port" >&2; exit 2; }
      base_port=$2
      shift
      ;;
    -h | --help) usage; exit 0 ;;
    *) echo "demo: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "$base_port" ] && ! [[ "$base_port" =~ ^[0-9]+$ && "$base_port" -ge 1024 &&
  "$base_port" -le 65530 ]]; then
  echo "demo: --base-port wants a number from 1024 to 65530" >&2
  exit 2
fi

./scripts/setup.sh

# ---- the older per-layer demos ---------------------------------------------------------------
# They need the simulator and the bench servers, which a -Dbenchmarks=disabled tree lacks: they
# use their own release tree with benchmarks enabled.
if [ "$mode" = layers ]; then
  build=${LAYERS_BUILD_DIR:-build-demo-layers}
  if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" --buildtype=release -Dbenchmarks=enabled
  fi
  ninja -C "$build" src/cli/raftd tests/sim/raftd-sim tests/sim/raftd-lincheck \
    tests/sim/raftd-lincheck-gen bench/wal/wal_bench bench/http/raftd-bench-http
  tmp=$(mktemp -d -t raftd-layers.XXXXXX)
  server_pid=
  cleanup_layers() {
    if [ -n "$server_pid" ]; then
      kill "$server_pid" 2>/dev/null || true
      wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
  }
  trap cleanup_layers EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  echo "== 1. A simulated 3-node cluster: 4 groups, the real Raft core, loss, partitions, crashes"
  "$build/tests/sim/raftd-sim" --seed 42 --nodes 3 --groups 4 --steps 3000
  echo "   the same seed replays the same run (same trace hash):"
  "$build/tests/sim/raftd-sim" --seed 42 --nodes 3 --groups 4 --steps 3000

  echo "== 2. The simulator catches a classic bug reintroduced into the core (vote_before_persist)"
  if "$build/tests/sim/raftd-sim" --bug vote_before_persist --seeds 100 >"$tmp/bug.txt" 2>&1; then
    echo "   the bug went unnoticed: that is a failure"
    exit 1
  fi
  grep -m1 -E 'VIOLATION' "$tmp/bug.txt" || true
  grep -m1 -E 'replay' "$tmp/bug.txt" || true

  echo "== 3. raftd-lincheck on a 10,000-operation register history, then on one stale read"
  "$build/tests/sim/raftd-lincheck-gen" --ops 10000 --processes 10 --seed 7 >"$tmp/h.jsonl"
  "$build/tests/sim/raftd-lincheck" "$tmp/h.jsonl" && echo "   linearizable (exit 0)"
  "$build/tests/sim/raftd-lincheck-gen" --ops 10000 --processes 10 --seed 7 --stale-read \
    >"$tmp/bad.jsonl"
  if "$build/tests/sim/raftd-lincheck" --quiet "$tmp/bad.jsonl"; then
    echo "   a stale read went unnoticed: that is a failure"
    exit 1
  fi
  echo "   not linearizable (exit 1), as it should be"

  echo "== 4. The WAL: 1 KiB appends from 100 groups via io_uring group commit, then verify/inspect"
  "$build/bench/wal/wal_bench" "$tmp/wal" 100 64 1024 16 4
  "$build/src/cli/raftd" wal verify "$tmp/wal"
  "$build/src/cli/raftd" wal inspect "$tmp/wal" >"$tmp/inspect.txt"
  head -n 12 "$tmp/inspect.txt"

  echo "== 5. The HTTP layer: raftd-bench-http on 127.0.0.1 under wrk (64 keep-alive connections)"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$build/bench/http/raftd-bench-http" --host 127.0.0.1 --port "$port" &
  server_pid=$!
  sleep 0.5
  wrk -t2 -c64 -d3s "http://127.0.0.1:$port/" | sed -n '1,8p'
  echo "demo: layers done"
  exit 0
fi

# ---- build -------------------------------------------------------------------------------------
build=${BUILD_DIR:-build-demo}
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --buildtype=release -Dbenchmarks=disabled
fi
ninja -C "$build" src/cli/raftd examples/kv/raftd-kv
RAFTD=$PWD/$build/src/cli/raftd
RAFTD_KV=$PWD/$build/examples/kv/raftd-kv

# ---- helpers -----------------------------------------------------------------------------------
GROUP=7             # the demo's group id
READY_WAIT_S=30     # /readyz, a group's leader, an election after kill -9
OP_WAIT_S=20        # an operation that must succeed retries this long on 503/504
STOP_WAIT_S=15      # SIGTERM to exit
HTTP_TIMEOUT_S=15   # above raftd's propose and read timeouts (10 s)
log_level=${RAFTD_LOG_LEVEL:-info}

tmp=$(mktemp -d -t raftd-demo.XXXXXX)
declare -a node_pid app_pid client_port peer_port app_port
failed=0
t_start=$(date +%s.%N)

since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(date +%s.%N)"; }
step() { printf '\n== %s\n' "$*"; }
info() { printf '   %s\n' "$*"; }

logs_tail() {
  local i
  for i in 1 2 3; do
    for f in "$tmp/n$i/raftd.log" "$tmp/n$i/kv.log.txt"; do
      [ -f "$f" ] || continue
      echo "--- $f (last 15 lines)"
      tail -n 15 "$f"
    done
  done
}

fail() {
  failed=1
  echo "demo: FAILED: $*" >&2
  logs_tail >&2
  exit 1
}

pretty() {
  if command -v jq >/dev/null; then jq . 2>/dev/null || cat; else python3 -m json.tool || cat; fi
}

# SIGTERM to every process this script started and still running (raftd nodes first, then the
# apps), SIGKILL to any left after STOP_WAIT_S.
stop_all() {
  local pid waited=0 left
  for pid in "${node_pid[@]}" "${app_pid[@]}"; do
    if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  while :; do
    left=0
    for pid in "${node_pid[@]}" "${app_pid[@]}"; do
      if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then left=1; fi
    done
    [ $left -eq 0 ] && break
    if [ $waited -ge $((STOP_WAIT_S * 10)) ]; then
      for pid in "${node_pid[@]}" "${app_pid[@]}"; do
        if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
      done
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  for pid in "${node_pid[@]}" "${app_pid[@]}"; do
    if [ -n "$pid" ]; then wait "$pid" 2>/dev/null || true; fi
  done
  node_pid=() app_pid=()
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_all
  if [ $keep -eq 1 ] || [ $failed -eq 1 ]; then
    echo "demo: logs and data kept in $tmp"
  else
    rm -rf "$tmp"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted, stopping"; exit 130' INT
trap 'exit 143' TERM

# http METHOD PORT PATH [BODY]: one request; sets CODE (000 when the connection failed) and BODY.
http() {
  local method=$1 port=$2 path=$3 data=${4-}
  local args=(-sS -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' --max-time "$HTTP_TIMEOUT_S"
    -X "$method" "http://127.0.0.1:$port$path")
  if [ $# -ge 4 ]; then args+=(--data-binary "$data"); fi
  CODE=$(curl "${args[@]}" 2>/dev/null) || true
  [ -n "$CODE" ] || CODE=000
  BODY=$(cat "$tmp/body" 2>/dev/null || true)
}

header() { sed -n "s/^$1: *//Ip" "$tmp/headers" | tr -d '\r' | head -n 1; }


alive() { [ -n "${node_pid[$1]:-}" ] && kill -0 "${node_pid[$1]}" 2>/dev/null; }

check_alive() {
  local i
  for i in "$@"; do
    alive "$i" || fail "raftd node $i is not running (see $tmp/n$i/raftd.log)"
  done
}

# Ports: two per node (client, peer), distinct and free right now on 127.0.0.1. Either the
# kernel's choice (bind to port 0) or --base-port N, N+1, ... checked free.
pick_ports() {
  python3 - "$@" <<'EOF'
import socket, sys
base = int(sys.argv[1]) if len(sys.argv) > 1 else 0
socks = []
try:
    for i in range(6):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", base + i if base else 0))
        except OSError as e:
            sys.exit(f"demo: port {base + i} on 127.0.0.1 is not free ({e.strerror}); "
                     "choose another --base-port")
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))
finally:
    for s in socks:
        s.close()
EOF
}

start_app() {
  local i=$1 line="" deadline=$((SECONDS + READY_WAIT_S))
  mkdir -p "$tmp/n$i"
  : >"$tmp/n$i/kv.log.txt"
  "$RAFTD_KV" --listen 127.0.0.1:0 --data-dir "$tmp/n$i/kv" >"$tmp/n$i/kv.log.txt" 2>&1 &
  app_pid[i]=$!
  while [ $SECONDS -lt "$deadline" ]; do
    line=$(grep -m1 '^listening on ' "$tmp/n$i/kv.log.txt" || true)
    [ -n "$line" ] && break
    kill -0 "${app_pid[$i]}" 2>/dev/null || fail "raftd-kv $i exited while starting"
    sleep 0.1
  done
  [ -n "$line" ] || fail "raftd-kv $i did not print its address in ${READY_WAIT_S} s"
  app_port[i]=${line##*:}
  info "raftd-kv $i: pid ${app_pid[$i]}, http://127.0.0.1:${app_port[$i]}, data $tmp/n$i/kv"
}

write_config() {
  local i=$1 j
  {
    echo "# raftd node $i of the demo (raftd.toml(5) documents every key)."
    echo "[node]"
    echo "id = $i"
    echo "data_dir = \"$tmp/n$i/raftd\""
    echo
    echo "[listen]"
    echo "client = \"127.0.0.1:${client_port[$i]}\""
    echo "peer = \"127.0.0.1:${peer_port[$i]}\""
    echo
    echo "[cluster]"
    echo "initial = ["
    for j in 1 2 3; do
      echo "  { id = $j, peer = \"127.0.0.1:${peer_port[$j]}\", client = \"127.0.0.1:${client_port[$j]}\" },"
    done
    echo "]"
    echo
    echo "[app]"
    echo "url = \"http://127.0.0.1:${app_port[$i]}\""
    echo
    echo "[log]"
    echo "level = \"$log_level\""
  } >"$tmp/n$i/raftd.toml"
  "$RAFTD" check-config "$tmp/n$i/raftd.toml" >/dev/null ||
    fail "raftd check-config rejected $tmp/n$i/raftd.toml"
}

start_node() {
  local i=$1
  echo "=== start $(date -u +%H:%M:%S)" >>"$tmp/n$i/raftd.log"
  "$RAFTD" serve --config "$tmp/n$i/raftd.toml" >>"$tmp/n$i/raftd.log" 2>&1 &
  node_pid[i]=$!
  info "raftd node $i: pid ${node_pid[$i]}, client 127.0.0.1:${client_port[$i]}," \
    "peer 127.0.0.1:${peer_port[$i]}, log $tmp/n$i/raftd.log"
}

wait_ready() {
  local i deadline
  for i in "$@"; do
    deadline=$((SECONDS + READY_WAIT_S))
    while :; do
      check_alive "$i"
      http GET "${client_port[$i]}" /readyz
      [ "$CODE" = 200 ] && break
      [ $SECONDS -ge "$deadline" ] && fail "node $i: /readyz not 200 in ${READY_WAIT_S} s (last: $CODE $BODY)"
      sleep 0.1
    done
    info "node $i: /readyz 200"
  done
}

# wait_leader NODE...: waits until every given node reports the same leader of GROUP (not 0);
# sets LEADER to it.
wait_leader() {
  local deadline=$((SECONDS + READY_WAIT_S)) i l leaders
  while :; do
    leaders=
    for i in "$@"; do
      http GET "${client_port[$i]}" "/v1/groups/$GROUP"
      if [ "$CODE" = 200 ]; then l=$(jq -r .leader <<<"$BODY"); else l=none; fi
      leaders="$leaders $l"
    done
    l=$(tr ' ' '\n' <<<"$leaders" | sed '/^$/d' | sort -u)
    if [ "$(wc -l <<<"$l")" -eq 1 ] && [ "$l" != none ] && [ "$l" != 0 ]; then
      LEADER=$l
      return 0
    fi
    [ $SECONDS -ge "$deadline" ] &&
      fail "group $GROUP: nodes $* did not agree on a leader in ${READY_WAIT_S} s (saw:$leaders)"
    sleep 0.1
  done
}

# put NODE KEY VALUE: proposes a put through NODE, retrying on 503 (not appended) and on 504 or
# a lost connection (outcome unknown; the same put again is harmless). Sets BODY and INDEX.
put() {
  local i=$1 key=$2 value=$3 deadline=$((SECONDS + OP_WAIT_S))
  local cmd="{\"op\":\"put\",\"key\":\"$key\",\"value\":\"$value\"}"
  info "POST /v1/groups/$GROUP/propose to node $i: $cmd"
  while :; do
    check_alive "$i"
    http POST "${client_port[$i]}" "/v1/groups/$GROUP/propose" "$cmd"
    case "$CODE" in
      200) INDEX=$(header Raftd-Index); info "200 $BODY (Raftd-Index: $INDEX)"; return 0 ;;
      503 | 504 | 000) ;;
      *) fail "propose through node $i: $CODE $BODY" ;;
    esac
    [ $SECONDS -ge "$deadline" ] && fail "propose through node $i not acknowledged in ${OP_WAIT_S} s (last: $CODE $BODY)"
    info "$CODE $BODY: retrying"
    sleep 0.2
  done
}

# get NODE KEY WANT [stale]: reads KEY through NODE until the answer is 200 with WANT. A
# linearizable read that answers another value is a failure at once; a stale one may lag.
get() {
  local i=$1 key=$2 want=$3 stale=${4:-} deadline=$((SECONDS + OP_WAIT_S)) q="" what=linearizable
  [ -n "$stale" ] && q="?consistency=stale" && what=stale
  info "POST /v1/groups/$GROUP/read$q to node $i: {\"op\":\"get\",\"key\":\"$key\"} ($what)"
  while :; do
    check_alive "$i"
    http POST "${client_port[$i]}" "/v1/groups/$GROUP/read$q" "{\"op\":\"get\",\"key\":\"$key\"}"
    if [ "$CODE" = 200 ] && [ "$BODY" = "$want" ]; then
      info "200 $BODY"
      return 0
    fi
    case "$CODE" in
      503 | 504 | 000) ;;
      200 | 404) [ -n "$stale" ] || fail "linearizable read through node $i: want 200 $want, got $CODE $BODY" ;;
      *) fail "read through node $i: $CODE $BODY" ;;
    esac
    [ $SECONDS -ge "$deadline" ] && fail "read through node $i: want 200 $want, last answer $CODE $BODY"
    info "$CODE $BODY: retrying"
    sleep 0.2
  done
}

show_group() {
  local i
  for i in "$@"; do
    http GET "${client_port[$i]}" "/v1/groups/$GROUP"
    [ "$CODE" = 200 ] || fail "GET /v1/groups/$GROUP on node $i: $CODE $BODY"
    info "node $i: GET /v1/groups/$GROUP"
    pretty <<<"$BODY" | sed 's/^/     /'
  done
}

# ---- the walk-through --------------------------------------------------------------------------
step "1. Three raftd-kv applications (examples/kv), one per node, in $tmp"
for i in 1 2 3; do start_app "$i"; done

step "2. Three raftd nodes on 127.0.0.1 bootstrapping a cluster from [cluster].initial"
if [ -n "$base_port" ]; then ports=$(pick_ports "$base_port"); else ports=$(pick_ports); fi ||
  fail "no free ports"
read -r -a p <<<"$ports"
for i in 1 2 3; do
  client_port[i]=${p[$(((i - 1) * 2))]}
  peer_port[i]=${p[$(((i - 1) * 2 + 1))]}
done
for i in 1 2 3; do write_config "$i"; done
info "config of node 1 ($tmp/n1/raftd.toml; check-config accepted all three):"
sed 's/^/     /' "$tmp/n1/raftd.toml"
for i in 1 2 3; do start_node "$i"; done
t_cluster=$(date +%s.%N)

step "3. Wait until every node answers /readyz 200 (WAL recovered, the meta group has a leader)"
wait_ready 1 2 3

step "4. Create group $GROUP on nodes 1, 2, 3 through node 1"
info "POST /v1/groups to node 1: {\"id\":$GROUP,\"members\":[1,2,3]}"
deadline=$((SECONDS + OP_WAIT_S))
while :; do
  http POST "${client_port[1]}" /v1/groups "{\"id\":$GROUP,\"members\":[1,2,3]}"
  [ "$CODE" = 201 ] && break
  case "$CODE" in 503 | 504 | 000) ;; *) fail "create group: $CODE $BODY" ;; esac
  [ $SECONDS -ge "$deadline" ] && fail "create group: not created in ${OP_WAIT_S} s (last: $CODE $BODY)"
  sleep 0.2
done
info "201 $BODY"
wait_leader 1 2 3
leader=$LEADER
info "every node sees node $leader as the group's leader"

step "5. Write through node 2 (a follower forwards to the leader)"
put 2 greeting hello

step "6. Read it back through node 3 (linearizable: ReadIndex, then the app's GetEntry)"
get 3 greeting hello

step "7. Read it through node 1 with ?consistency=stale (no ReadIndex round; may lag)"
get 1 greeting hello stale

step "8. Each node's view of group $GROUP"
show_group 1 2 3

step "9. The cluster as node 1 sees it (GET /v1/cluster)"
http GET "${client_port[1]}" /v1/cluster
[ "$CODE" = 200 ] || fail "GET /v1/cluster on node 1: $CODE $BODY"
pretty <<<"$BODY" | sed 's/^/     /'
[ "$(grep -o '"reachable":true' <<<"$BODY" | wc -l)" -eq 3 ] ||
  fail "node 1 does not see all 3 nodes reachable: $BODY"
for i in 2 3; do
  http GET "${client_port[$i]}" /v1/cluster
  [ "$CODE" = 200 ] || fail "GET /v1/cluster on node $i: $CODE $BODY"
  info "node $i: $BODY"
done

step "10. kill -9 the group's leader, node $leader"
old=$leader
survivors=()
for i in 1 2 3; do [ "$i" = "$old" ] || survivors+=("$i"); done
kill -KILL "${node_pid[$old]}"
wait "${node_pid[$old]}" 2>/dev/null || true
node_pid[old]=
t_kill=$(date +%s.%N)
info "node $old killed; survivors: ${survivors[*]}"

step "11. The survivors elect a new leader; a write through node ${survivors[1]} succeeds"
deadline=$((SECONDS + READY_WAIT_S))
while :; do
  wait_leader "${survivors[@]}"
  leader=$LEADER
  [ "$leader" != "$old" ] && break
  [ $SECONDS -ge "$deadline" ] && fail "the survivors still see node $old as leader after ${READY_WAIT_S} s"
  sleep 0.1
done
info "new leader: node $leader, $(since "$t_kill") s after the kill"
put "${survivors[1]}" greeting world
get "${survivors[0]}" greeting world
show_group "${survivors[@]}"

step "12. Restart node $old (it recovers from its WAL and catches up), then read through it"
start_node "$old"
wait_ready "$old"
get "$old" greeting world
show_group "$old"

step "Walk-through passed in $(since "$t_cluster") s (from the nodes' start)"

if [ "$mode" = smoke ]; then
  step "13. SIGTERM to every node: each exits 0 after a clean shutdown"
  for i in 1 2 3; do kill -TERM "${node_pid[$i]}"; done
  for i in 1 2 3; do
    deadline=$((SECONDS + STOP_WAIT_S))
    while kill -0 "${node_pid[$i]}" 2>/dev/null; do
      [ $SECONDS -ge "$deadline" ] && fail "node $i did not exit within ${STOP_WAIT_S} s of SIGTERM"
      sleep 0.1
    done
    rc=0
    wait "${node_pid[$i]}" || rc=$?
    node_pid[i]=
    [ $rc -eq 0 ] || fail "node $i exited $rc after SIGTERM"
    info "node $i exited 0"
  done
  echo
  echo "demo: smoke run passed ($(since "$t_start") s without the build)"
  exit 0
fi

cat <<EOF

== The cluster stays up until Ctrl-C. Try by hand (nodes 1, 2, 3 on ports ${client_port[1]}, ${client_port[2]}, ${client_port[3]}):

  curl -s http://127.0.0.1:${client_port[1]}/v1/cluster | jq .
  curl -s http://127.0.0.1:${client_port[2]}/v1/groups/$GROUP | jq .
  curl -s -X POST http://127.0.0.1:${client_port[1]}/v1/groups -d '{"id":8,"members":[1,2,3]}'
  curl -s -X POST http://127.0.0.1:${client_port[2]}/v1/groups/$GROUP/propose -d '{"op":"put","key":"k","value":"v"}'
  curl -s -X POST http://127.0.0.1:${client_port[3]}/v1/groups/$GROUP/read -d '{"op":"get","key":"k"}'
  curl -s -X POST 'http://127.0.0.1:${client_port[1]}/v1/groups/$GROUP/read?consistency=stale' -d '{"op":"get","key":"k"}'
  curl -s -X POST http://127.0.0.1:${client_port[1]}/v1/groups/$GROUP/propose -d '{"op":"cas","key":"k","expected":"v","value":"w"}'
  kill -9 ${node_pid[$leader]}    # node $leader, the group's leader now; the script reports nodes that exit

Logs: $tmp/n{1,2,3}/raftd.log; configs: $tmp/n{1,2,3}/raftd.toml.
EOF
while :; do
  for i in 1 2 3; do
    if [ -n "${node_pid[$i]}" ] && ! kill -0 "${node_pid[$i]}" 2>/dev/null; then
      rc=0
      wait "${node_pid[$i]}" 2>/dev/null || rc=$?
      node_pid[i]=
      echo "demo: node $i exited ($rc); the other nodes stay up (Ctrl-C stops them)"
    fi
  done
  sleep 1
done
