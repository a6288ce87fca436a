#!/usr/bin/env bash
# Installs every build and test dependency of moeserve from Debian 12's archive.
# Run as root (or with sudo available). Safe to run again.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
PKGS=(
  build-essential g++ cmake ninja-build pkg-config git ca-certificates curl
  clang libclang-rt-14-dev libomp-dev
  libdnnl-dev libucx-dev ucx-utils
  libboost-dev libboost-system-dev
  nlohmann-json3-dev libyaml-cpp-dev libpcre2-dev libxxhash-dev libssl-dev
  libzmq3-dev cppzmq-dev libmsgpack-cxx-dev
  libabsl-dev libcli11-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev

)
# Node (for the openai-client end-to-end test): Debian's nodejs+npm unless a node with npm is already present.
command -v npm >/dev/null 2>&1 || PKGS+=(nodejs npm)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
# The `openai` npm package for tests/e2e (pinned by its package-lock.json).
REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ -f "$REPO_ROOT/tests/e2e/package-lock.json" ] && [ ! -d "$REPO_ROOT/tests/e2e/node_modules/openai" ]; then
  (cd "$REPO_ROOT/tests/e2e" && npm ci --no-audit --no-fund)
fi
