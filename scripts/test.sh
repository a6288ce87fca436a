#!/usr/bin/env bash
# Installs dependencies, builds with warnings as errors, runs every test through ctest, then
# builds the AddressSanitizer+UBSan variant with clang (thread-safety analysis on) and runs the
# unit tests under it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
JOBS=${JOBS:-2}
# Release (-O2, no debug info): the same code as RelWithDebInfo, a quarter less compile time.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOESERVE_WERROR=ON
cmake --build build -j"$JOBS"
# The sanitizer build uses clang (Debian's, with its ASan/UBSan runtimes), so it also runs
# clang's thread-safety analysis over the absl::Mutex annotations: a guarded field touched
# without its lock is a build error (docs/architecture.md, Locking). It compiles at -O1 with
# line tables (see CMakeLists.txt). Clang's OpenMP runtime is LLVM's libomp (our parallel_for;
# oneDNN keeps libgomp), so the wait-policy default does not apply to it here. A build-asan
# configured with another compiler starts over. Thread-safety findings are errors; other
# warnings are already errors in the GCC build above (clang at -O1 under ASan also reports the
# `omp simd` loops it leaves scalar, which is not a defect).
if [ -f build-asan/CMakeCache.txt ] && ! grep -q '^CMAKE_CXX_COMPILER:[A-Z]*=.*clang++' build-asan/CMakeCache.txt; then
  rm -rf build-asan
fi
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOESERVE_WERROR=OFF \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DMOESERVE_SANITIZE=ON -DMOESERVE_THREAD_SAFETY_ANALYSIS=ON -DMOESERVE_BUILD_BENCH=OFF
cmake --build build-asan -j"$JOBS"
# Leak checking is on (LeakSanitizer): a leak of ours fails the run. tests/lsan.supp may name
# only third-party runtimes' deliberate process-lifetime allocations (UCX, oneDNN, libgomp…),
# never one of our frames; none has been needed so far.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS=print_stacktrace=1
# The unit tests include the multi-process UCX tests (comm, EP MoE, EP model, DP engine); the
# tests that launch whole `moeserve serve` process groups (label "ucx") are not unit tests.
ctest --test-dir build-asan -L unit --output-on-failure -j"$JOBS" --timeout 600
# Last, so the run ends with ctest's summary line. It includes the memory soak (label "soak",
# a few minutes: scripts/rss_soak.py against `moeserve serve`, run alone).
unset ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS
set +e
ctest --test-dir build --output-on-failure -j"$JOBS" --timeout 900 2>&1 | tee build/ctest.log
rc=${PIPESTATUS[0]}
set -e
# ctest lists the skipped tests (ISA levels this CPU lacks) after its summary line; repeat the
# summary so that the run ends with it.
grep -E '^[0-9]+% tests passed' build/ctest.log | tail -1
exit "$rc"
