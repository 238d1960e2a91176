#!/usr/bin/env bash
# The test command: installs what is missing, builds with clang + ASan + UBSan (warnings are
# errors, libFuzzer targets on), runs the whole default suite, and ends with "N passed, N failed".
# Extra arguments go to `meson test` (e.g. --suite raft). BUILD_DIR picks the build directory.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

build=${BUILD_DIR:-build-ci}
if [ ! -f "$build/build.ninja" ]; then
  CC=clang CXX=clang++ meson setup "$build" --werror -Dsanitizers=true -Dfuzzing=true \
    -Dbenchmarks=enabled
fi
meson compile -C "$build"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
meson test -C "$build" --print-errorlogs --num-processes 2 "$@" || status=$?

python3 - "$build/meson-logs/testlog.json" <<'PY'
import json, sys
passed = failed = skipped = 0
with open(sys.argv[1]) as f:
    for line in f:
        r = json.loads(line).get("result")
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
if skipped:
    print(f"{skipped} skipped")
print(f"{passed} passed, {failed} failed")
PY
exit $status
