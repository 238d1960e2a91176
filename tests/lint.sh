#!/usr/bin/env bash
# Lint: every C++ file of the project is formatted as .clang-format says.
set -euo pipefail
root=${1:-.}
cd "$root"
mapfile -t files < <(git ls-files -co --exclude-standard -- 'src/*.cc' 'src/*.h' 'include/*.h' \
  'tests/*.cc' 'tests/*.h' 'bench/*.cc' 'bench/*.h' 'examples/*.cc' 'examples/*.h' 2>/dev/null ||
  find src include tests bench examples -name '*.cc' -o -name '*.h')
if [ ${#files[@]} -eq 0 ]; then
  echo "lint: no files"; exit 1
fi
clang-format --dry-run --Werror "${files[@]}"
echo "lint: ${#files[@]} files formatted"
