// `moeserve bench moe`: dispatch + combine of the expert-parallel PrepareFinalize backends
// between local rank processes over UCX (the processes are forked here, before any UCX
// initialisation), next to this machine's memcpy bandwidth and UCX's own peak between two
// ranks. Experts are not run (the combine sends back the dispatched rows), so the numbers are
// the communication cost of one MoE layer.
//   latency:   tokens per rank 1..128 (median of the per-iteration maximum over ranks)
//   bandwidth: 4096 tokens per rank; GB/s counts only bytes that leave the rank
// Threading: call from the main thread of a process that has not initialised UCX.
#pragma once

namespace moeserve {

// argv[0] is the subcommand name. Returns a process exit code; prints a table (or CSV).
int bench_moe_main(int argc, char** argv);

}  // namespace moeserve
