#!/usr/bin/env bash
# The man page documents exactly the subcommands the binary has: every subcommand listed by
# `raftd --help` (and `raftd wal --help`) must appear in man/raftd.8 as a documented item, and
# every `raftd wal X` the man page documents must exist in the binary.
set -euo pipefail
raftd=$1
man=$2
fail=0
subcommands() {  # the names under "Subcommands:" in CLI11's help
  "$@" --help | awk '/^Subcommands:/{on=1; next} on && NF {print $1} on && !NF {on=0}'
}
for s in $(subcommands "$raftd"); do
  grep -qE "^\.B(I)? \"?$s\b" "$man" || { echo "man page lacks subcommand '$s'"; fail=1; }
done
for s in $(subcommands "$raftd" wal); do
  grep -qE "^\.BI? \"?wal $s\b" "$man" || { echo "man page lacks 'wal $s'"; fail=1; }
done
for s in $(grep -oE '^\.BI? "wal [a-z-]+' "$man" | awk '{print $3}'); do
  "$raftd" wal "$s" --help >/dev/null 2>&1 || { echo "man page documents 'wal $s', binary lacks it"; fail=1; }
done
[ $fail -eq 0 ] && echo "man page and CLI agree"
exit $fail
