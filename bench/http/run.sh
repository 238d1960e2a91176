#!/usr/bin/env bash
# Keep-alive requests/s of raftd's HTTP layer (raftd-bench-http) against nginx with one worker,
# both serving the same small response on 127.0.0.1, measured with wrk side by side in one run.
# Rounds alternate (ours, nginx, ours, nginx, ...) so background load spreads over both; the
# median of each side is compared.
#
# Usage: bench/http/run.sh [BUILD_DIR]     (default build-http-rel, a release build:
#          meson setup build-http-rel --buildtype=release -Dbenchmarks=enabled
#          meson compile -C build-http-rel bench/http/raftd-bench-http)
# Environment: CONNS (64), THREADS (2), DURATION (10s), ROUNDS (3), PORT_OURS (18080),
#              PORT_NGINX (18081).
set -euo pipefail
. "$(dirname "$0")/../nginx_conf.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build-http-rel}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
server_bin="$build/bench/http/raftd-bench-http"
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
PORT_OURS=${PORT_OURS:-18080}
PORT_NGINX=${PORT_NGINX:-18081}

for tool in wrk nginx; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] ||
    { echo "run.sh: $tool is missing: run scripts/setup.sh" >&2; exit 1; }
done
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$server_bin" ] || { echo "run.sh: $server_bin not built (see the usage above)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/raftd-bench-http.XXXXXX)
ours_pid=""
nginx_pid=""
cleanup() {
  [ -n "$ours_pid" ] && kill "$ours_pid" 2>/dev/null || true
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

write_nginx_conf "$tmp" "$PORT_NGINX"

"$server_bin" --port "$PORT_OURS" > "$tmp/ours.log" 2>&1 &
ours_pid=$!
"$nginx_bin" -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/nginx-error.log" > "$tmp/nginx.log" 2>&1 &
nginx_pid=$!

wait_up() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "run.sh: nothing listens on port $1" >&2; cat "$tmp"/*.log >&2; exit 1
}
wait_up "$PORT_OURS"
wait_up "$PORT_NGINX"

# CPU time (clock ticks, user + system) a process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Prints "<requests/s> <requests per CPU-second of the server process>" of one wrk run and
# reports errors. The second number is robust against a busy machine: both servers are single
# threaded, so under load req/s mostly says how much CPU each was given.
measure() {
  local port=$1 pid=$2 out rps reqs before after
  before=$(cpu_ticks "$pid")
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" "http://127.0.0.1:$port/")
  after=$(cpu_ticks "$pid")
  if echo "$out" | grep -q "Non-2xx\|Socket errors"; then
    echo "run.sh: errors against port $port:" >&2; echo "$out" >&2
  fi
  rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  awk -v r="${rps:-0}" -v n="${reqs:-0}" -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%s %.0f\n", r, (t > 0 ? n / (t / hz) : 0) }'
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# The nginx worker (the master only supervises it).
nginx_worker=""
for _ in $(seq 1 50); do
  nginx_worker=$(pgrep -P "$nginx_pid" | head -1 || true)
  [ -n "$nginx_worker" ] && break
  sleep 0.1
done
[ -n "$nginx_worker" ] || { echo "run.sh: no nginx worker process" >&2; exit 1; }

ours=(); theirs=(); ours_cpu=(); theirs_cpu=()
for r in $(seq 1 "$ROUNDS"); do
  # Warm both up briefly in the first round (connection setup, CPU frequency, caches).
  if [ "$r" -eq 1 ]; then
    wrk -t"$THREADS" -c"$CONNS" -d2s "http://127.0.0.1:$PORT_OURS/" >/dev/null
    wrk -t"$THREADS" -c"$CONNS" -d2s "http://127.0.0.1:$PORT_NGINX/" >/dev/null
  fi
  read -r o oc < <(measure "$PORT_OURS" "$ours_pid")
  read -r n nc < <(measure "$PORT_NGINX" "$nginx_worker")
  echo "round $r: raftd-bench-http $o req/s ($oc req/CPU-s), nginx $n req/s ($nc req/CPU-s)"
  ours+=("$o"); theirs+=("$n"); ours_cpu+=("$oc"); theirs_cpu+=("$nc")
done

mo=$(printf '%s\n' "${ours[@]}" | median)
mn=$(printf '%s\n' "${theirs[@]}" | median)
moc=$(printf '%s\n' "${ours_cpu[@]}" | median)
mnc=$(printf '%s\n' "${theirs_cpu[@]}" | median)
echo "wrk -t$THREADS -c$CONNS -d$DURATION, keep-alive, $ROUNDS rounds (median):"
echo "raftd-bench-http: $mo req/s, $moc req per server CPU-second"
echo "nginx (1 worker): $mn req/s, $mnc req per server CPU-second"
awk -v a="$mo" -v b="$mn" -v c="$moc" -v d="$mnc" 'BEGIN {
  if (b > 0) printf "ratio raftd/nginx: %.2f (req/s), ", a / b
  if (d > 0) printf "%.2f (req per CPU-second)", c / d
  printf "\n" }'
