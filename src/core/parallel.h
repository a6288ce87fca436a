// Thread-pool glue over OpenMP. parallel_for splits [0, n) into contiguous chunks, one
// per thread; fn(begin, end) must be safe to run concurrently on disjoint ranges.
// Idle workers spin a bounded time, then sleep (core/wait_policy.h sets the bound).
#pragma once

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

namespace moeserve {

// Process-wide cap on parallel_for's workers, for every thread of the process (OpenMP's own
// setting is per thread); 0: no cap. For processes that share cores, e.g. several
// data-parallel ranks on one host: spinning OpenMP workers of one rank starve another rank's
// communication progress. Thread-safe.
inline std::atomic<int>& parallel_thread_cap() {
  static std::atomic<int> cap{0};
  return cap;
}
inline void set_max_parallel_threads(int n) {
  parallel_thread_cap().store(std::max(0, n));
}

inline int num_threads() {
  const int cap = parallel_thread_cap().load(std::memory_order_relaxed);
  const int m = omp_get_max_threads();
  return cap > 0 ? std::min(cap, m) : m;
}

template <typename Fn>
void parallel_for(int64_t n, Fn&& fn, int64_t min_chunk = 1) {
  if (n <= 0) return;
  const int64_t max_workers = std::max<int64_t>(1, n / std::max<int64_t>(1, min_chunk));
  const int workers = static_cast<int>(std::min<int64_t>(num_threads(), max_workers));
  if (workers <= 1 || omp_in_parallel()) {
    fn(int64_t{0}, n);
    return;
  }
#pragma omp parallel num_threads(workers)
  {
    // The team may be smaller than asked (OMP_DYNAMIC, OMP_THREAD_LIMIT): split by its size.
    const int team = omp_get_num_threads();
    const int t = omp_get_thread_num();
    const int64_t chunk = (n + team - 1) / team;
    const int64_t b = std::min<int64_t>(n, t * chunk);
    const int64_t e = std::min<int64_t>(n, b + chunk);
    if (b < e) fn(b, e);
  }
}

}  // namespace moeserve
