#!/usr/bin/env bash
# Long simulator soak, outside the default test suite: `ninja -C <build> soak`.
# SOAK_SEEDS (default 2000) seeds per configuration; SOAK_FIRST_SEED moves the window so
# repeated soaks cover new seeds. Stops at the first violation (its replay command is printed).
set -euo pipefail
sim=$1
seeds=${SOAK_SEEDS:-2000}
first=${SOAK_FIRST_SEED:-1000}
# Modes are drawn per seed (all of them, split-hs and two-to-one included); the last two
# configurations force membership changes, once with plain Raft (no PreVote, no CheckQuorum).
for cfg in "--nodes 3 --groups 4" "--nodes 5 --groups 4" "--nodes 5 --groups 8 --faults crash" \
           "--nodes 3 --groups 2 --faults network,partition" "--nodes 7 --groups 2" \
           "--nodes 3 --groups 3 --mode membership=on" \
           "--nodes 3 --groups 3 --mode membership=on --mode prevote=off --mode checkquorum=off"; do
  # shellcheck disable=SC2086
  "$sim" --seeds "$seeds" --first-seed "$first" --steps 6000 $cfg
done
