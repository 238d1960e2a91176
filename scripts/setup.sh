#!/usr/bin/env bash
# Installs every Debian package that raftd's build, tests and benchmarks need.
# Idempotent: packages already installed are left alone and `apt-get update` runs at most once.
# Services shipped by packages (nginx) are not started: a policy-rc.d denies it while we install,
# because benchmarks start their own instances on loopback.
set -euo pipefail

packages=(
  # toolchain and build
  g++ clang lld libclang-rt-dev clang-format pkg-config cmake meson ninja-build python3 git
  # libraries (README.md says why each one is there)
  liburing-dev libxxhash-dev libtomlplusplus-dev doctest-dev libbenchmark-dev node-llhttp
  nlohmann-json3-dev libfmt-dev libcli11-dev
  # benchmarks and peers
  wrk nginx-light fio jq procps curl
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  sudo=sudo
else
  sudo=
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod +x "$policy"
  made_policy=1
fi
cleanup() { if [ "$made_policy" -eq 1 ]; then $sudo rm -f "$policy"; fi; }
trap cleanup EXIT

$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
