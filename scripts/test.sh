#!/usr/bin/env bash
# Installs dependencies, builds with warnings as errors, runs every test through ctest, then
# builds the AddressSanitizer+UBSan variant and runs the unit tests under it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
JOBS=${JOBS:-2}
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOESERVE_WERROR=ON
cmake --build build -j"$JOBS"
# Warnings are already errors in the build above; GCC's sanitizer instrumentation adds
# false-positive flow warnings at -O2, so this build does not repeat -Werror.
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOESERVE_WERROR=OFF \
  -DMOESERVE_SANITIZE=ON -DMOESERVE_BUILD_BENCH=OFF
cmake --build build-asan -j"$JOBS"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
ctest --test-dir build-asan -L unit --output-on-failure -j"$JOBS" --timeout 600
# Last, so the run ends with ctest's summary line.
ctest --test-dir build --output-on-failure -j"$JOBS" --timeout 900
