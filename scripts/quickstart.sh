#!/usr/bin/env bash
# Installs dependencies, builds moeserve, generates the tiny DeepSeek-V3 checkpoint and
# generates text from it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"${JOBS:-2}" --target moeserve
mkdir -p out
[ -f out/tiny-v3/config.json ] || ./build/src/cli/moeserve gen-model out/tiny-v3 --arch deepseek_v3 --preset tiny
./build/src/cli/moeserve run out/tiny-v3 --prompt "The quick brown fox" --max-tokens 24 --ignore-eos
