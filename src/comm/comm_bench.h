// Bandwidth probes between ranks of a ProcessGroup, for `moeserve bench moe`: what UCX itself
// achieves (tagged send/recv, one-sided put), next to this machine's memcpy bandwidth.
// Collective: every rank calls the same function with the same arguments; ranks 0 and 1
// exchange, the others only join the barriers. Results are valid on rank 0 (and rank 1).
// Threading: as ProcessGroup.
#pragma once

#include <cstddef>

#include "comm/process_group.h"

namespace moeserve {

struct BandwidthResult {
  size_t bytes = 0;  // message size
  int iterations = 0;
  double seconds = 0;       // total
  double gbytes_per_s = 0;  // bytes moved / seconds / 1e9
};

// Rank 0 sends `bytes` to rank 1 `iterations` times (rank 1 acknowledges the last).
StatusOr<BandwidthResult> measure_sendrecv_bandwidth(ProcessGroup* group, size_t bytes,
                                                     int iterations = 0);
// Rank 0 puts `bytes` into rank 1's registered buffer `iterations` times, then flushes.
StatusOr<BandwidthResult> measure_put_bandwidth(ProcessGroup* group, size_t bytes,
                                                int iterations = 0);
// Single-threaded memcpy of `bytes` between two buffers (no group involved).
BandwidthResult measure_memcpy_bandwidth(size_t bytes, int iterations = 0);

}  // namespace moeserve
