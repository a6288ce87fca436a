#!/usr/bin/env bash
# Installs dependencies, builds with warnings as errors, runs every test through ctest, then
# builds the AddressSanitizer+UBSan variant and runs the unit tests under it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
JOBS=${JOBS:-2}
# Release (-O2, no debug info): the same code as RelWithDebInfo, a quarter less compile time.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOESERVE_WERROR=ON
cmake --build build -j"$JOBS"
# Warnings are already errors in the build above; GCC's sanitizer instrumentation adds
# false-positive flow warnings, so this build does not repeat -Werror. It compiles at -O1 with
# line tables (see CMakeLists.txt).
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOESERVE_WERROR=OFF \
  -DMOESERVE_SANITIZE=ON -DMOESERVE_BUILD_BENCH=OFF
cmake --build build-asan -j"$JOBS"
# Leak checking is off: third-party runtimes (UCX, oneDNN, libgomp) keep allocations for the
# life of the process that LSan can report; use-after-free, overflows and UB stay fatal.
# The unit tests include the multi-process UCX tests (comm, EP MoE, EP model, DP engine); the
# tests that launch whole `moeserve serve` process groups (label "ucx") are not unit tests.
ctest --test-dir build-asan -L unit --output-on-failure -j"$JOBS" --timeout 600
# Last, so the run ends with ctest's summary line.
ctest --test-dir build --output-on-failure -j"$JOBS" --timeout 900
