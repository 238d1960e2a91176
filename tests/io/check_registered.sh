#!/bin/sh
# Fails when the io test binary holds a different number of test cases than meson registers,
# so a new TEST_CASE cannot silently go unrun.
set -eu
count=$("$1" --no-version --list-test-cases | grep -c '^io::')
if [ "$count" -ne "$2" ]; then
  echo "tests/io/meson.build registers $2 test cases, the binary has $count" >&2
  exit 1
fi
