#!/usr/bin/env bash
# CPU per request of raftd-load against wrk's, side by side in one run: both load the same
# nginx (one worker, a 14-byte response on 127.0.0.1, the configuration of bench/http/run.sh)
# with the same connections and one thread each, in alternating rounds (wrk first in odd
# rounds, raftd-load first in even ones) so that background load spreads over both. A
# generator's CPU is read from /proc: the user + system time of a shell's waited-for children
# (cutime + cstime of /proc/<shell>/stat), i.e. all of the generator process's threads.
#
# Usage: bench/load/run.sh [BUILD_DIR]     (default build-rel, a release build:
#          meson setup build-rel --buildtype=release -Dbenchmarks=enabled
#          meson compile -C build-rel bench/load/raftd-load)
# Environment: CONNS (64), DURATION (10, seconds), ROUNDS (5), PORT (18083).
# Prints one line per round and, at the end, the median ratio raftd-load/wrk of CPU per
# request with its spread (min..max over the rounds) and the load average before and after.
set -euo pipefail
. "$(dirname "$0")/../nginx_conf.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build-rel}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
load_bin="$build/bench/load/raftd-load"
CONNS=${CONNS:-64}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-5}
PORT=${PORT:-18083}

for tool in wrk nginx; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] ||
    { echo "run.sh: $tool is missing: run scripts/setup.sh" >&2; exit 1; }
done
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$load_bin" ] || { echo "run.sh: $load_bin not built (see the usage above)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/raftd-bench-load.XXXXXX)
nginx_pid=""
cleanup() {
  if [ -n "$nginx_pid" ]; then kill "$nginx_pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

write_nginx_conf "$tmp" "$PORT"
"$nginx_bin" -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/nginx-error.log" > "$tmp/nginx.log" 2>&1 &
nginx_pid=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null ||
  { echo "run.sh: nginx does not listen on $PORT" >&2; cat "$tmp"/*.log >&2; exit 1; }

hz=$(getconf CLK_TCK)
url="http://127.0.0.1:$PORT/"
# Runs "$@" with stdout to $tmp/out and prints the CPU ticks it used (it and all its threads).
cpu_ticks_of() {
  bash -c '"$@" > "'"$tmp"'/out"; awk "{print \$16 + \$17}" /proc/$$/stat' _ "$@"
}

# Prints "<req/s> <requests> <CPU us per request>" of one generator run.
measure_wrk() {
  local ticks reqs secs
  ticks=$(cpu_ticks_of wrk -t1 -c"$CONNS" -d"${DURATION}s" "$url")
  if grep -q "Non-2xx\|Socket errors" "$tmp/out"; then
    echo "run.sh: wrk saw errors:" >&2; cat "$tmp/out" >&2
  fi
  reqs=$(awk '/requests in/ {print $1}' "$tmp/out")
  secs=$(awk '/requests in/ {sub(/s,$/, "", $4); print $4}' "$tmp/out")
  awk -v n="$reqs" -v s="$secs" -v t="$ticks" -v hz="$hz" \
    'BEGIN { printf "%.0f %d %.3f\n", n / s, n, t / hz * 1e6 / n }'
}
measure_ours() {
  local ticks
  ticks=$(cpu_ticks_of "$load_bin" -T http-get -t 1 -c "$CONNS" -d "$DURATION" -q "$url")
  python3 - "$tmp/out" "$ticks" "$hz" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
if r["errors"]["total"]:
    print(f"run.sh: raftd-load saw errors: {r['errors']}", file=sys.stderr)
n = r["requests"]
print(f"{r['rps']:.0f} {n} {int(sys.argv[2]) / int(sys.argv[3]) * 1e6 / n:.3f}")
PY
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
# Warm-up: connections, nginx's caches, CPU frequency.
wrk -t1 -c"$CONNS" -d2s "$url" > /dev/null
"$load_bin" -T http-get -c "$CONNS" -d 2 -q "$url" > /dev/null

ratios=(); wrk_cpu=(); our_cpu=(); wrk_rps=(); our_rps=()
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then
    read -r wr wn wc < <(measure_wrk)
    read -r orps on oc < <(measure_ours)
  else
    read -r orps on oc < <(measure_ours)
    read -r wr wn wc < <(measure_wrk)
  fi
  ratio=$(awk -v a="$oc" -v b="$wc" 'BEGIN { printf "%.3f", a / b }')
  echo "round $r: wrk $wr req/s ($wn), $wc us CPU/req; raftd-load $orps req/s ($on)," \
    "$oc us CPU/req; ratio raftd-load/wrk $ratio"
  ratios+=("$ratio"); wrk_cpu+=("$wc"); our_cpu+=("$oc"); wrk_rps+=("$wr"); our_rps+=("$orps")
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
spread() { sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%s..%s", lo, hi}'; }
echo "nginx 1 worker, ${CONNS} connections, 1 generator thread, ${DURATION} s x $ROUNDS rounds" \
  "(alternating), load average before: $load_before, after: $load_after"
echo "wrk:        $(printf '%s\n' "${wrk_rps[@]}" | median) req/s," \
  "$(printf '%s\n' "${wrk_cpu[@]}" | median) us CPU per request (median)"
echo "raftd-load: $(printf '%s\n' "${our_rps[@]}" | median) req/s," \
  "$(printf '%s\n' "${our_cpu[@]}" | median) us CPU per request (median)"
echo "ratio raftd-load/wrk CPU per request: $(printf '%s\n' "${ratios[@]}" | median)" \
  "[$(printf '%s\n' "${ratios[@]}" | spread)]"
