#!/usr/bin/env bash
# `raftd check-config FILE`: "FILE: ok" and exit 0 for a valid file (dist/raftd.toml included);
# one line "FILE:LINE: key '...': ..." on stderr and exit 2 for a bad one; --help exits 0.
# Usage: cli_test.sh RAFTD SOURCE_ROOT
set -euo pipefail
raftd=$1
root=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
unset RAFT_SYNC

# expect CODE STDOUT STDERR -- ARGS...: runs raftd ARGS and compares exit code and output.
expect() {
  local code=$1 out=$2 err=$3
  shift 4
  local got=0
  "$raftd" "$@" >"$tmp/out" 2>"$tmp/err" || got=$?
  if [ "$got" -ne "$code" ] || [ "$(cat "$tmp/out")" != "$out" ] || [ "$(cat "$tmp/err")" != "$err" ]; then
    echo "FAIL: raftd $*: exit $got (want $code)"
    echo "  stdout: $(cat "$tmp/out") (want: $out)"
    echo "  stderr: $(cat "$tmp/err") (want: $err)"
    fail=1
  fi
}

cat >"$tmp/good.toml" <<'TOML'
[node]
id = 1
data_dir = "/var/lib/raftd"
[listen]
client = "127.0.0.1:7300"
peer = "127.0.0.1:7301"
[app]
url = "http://127.0.0.1:8080"
TOML
expect 0 "$tmp/good.toml: ok" "" -- check-config "$tmp/good.toml"
expect 0 "$root/dist/raftd.toml: ok" "" -- check-config "$root/dist/raftd.toml"

sed 's/^id = 1$/id = 0/' "$tmp/good.toml" >"$tmp/bad-id.toml"
expect 2 "" "$tmp/bad-id.toml:2: key 'node.id': 0 is out of range (1 to 9223372036854775807)" \
  -- check-config "$tmp/bad-id.toml"

{ cat "$tmp/good.toml"; printf '[raft]\ntick_ms = 100\nticks = 3\n'; } >"$tmp/unknown.toml"
expect 2 "" "$tmp/unknown.toml:11: key 'raft.ticks': unknown key" -- check-config "$tmp/unknown.toml"

printf '[node\nid = 1\n' >"$tmp/syntax.toml"
"$raftd" check-config "$tmp/syntax.toml" >"$tmp/out" 2>"$tmp/err" && code=0 || code=$?
if [ "$code" -ne 2 ] || [ "$(wc -l <"$tmp/err")" -ne 1 ] ||
   ! grep -q "^$tmp/syntax.toml:1: TOML syntax error: " "$tmp/err"; then
  echo "FAIL: syntax error: exit $code, stderr: $(cat "$tmp/err")"; fail=1
fi

"$raftd" check-config "$tmp/missing.toml" >"$tmp/out" 2>"$tmp/err" && code=0 || code=$?
if [ "$code" -ne 2 ] || ! grep -q "^$tmp/missing.toml: cannot open" "$tmp/err"; then
  echo "FAIL: missing file: exit $code, stderr: $(cat "$tmp/err")"; fail=1
fi

# RAFT_SYNC is read as raftd serve reads it.
RAFT_SYNC=1 expect 0 "$tmp/good.toml: ok" "" -- check-config "$tmp/good.toml"
export RAFT_SYNC=yes
expect 2 "" "$tmp/good.toml:7: key 'app.sync': environment variable RAFT_SYNC is \"yes\"; use 1 (sync on) or 0" \
  -- check-config "$tmp/good.toml"
unset RAFT_SYNC

# Usage: --help, and a missing FILE argument.
"$raftd" check-config --help >"$tmp/out" 2>&1 || { echo "FAIL: check-config --help"; fail=1; }
grep -q "FILE" "$tmp/out" || { echo "FAIL: --help does not mention FILE"; fail=1; }
"$raftd" check-config >/dev/null 2>&1 && code=0 || code=$?
[ "$code" -eq 2 ] || { echo "FAIL: check-config without FILE exits $code, want 2"; fail=1; }

[ $fail -eq 0 ] && echo "check-config: exit codes and messages as documented"
exit $fail
