// `moeserve bench serve`: a load generator with the flags, metrics, printed summary and
// saved JSON of `vllm bench serve` (see serve_metrics.h for the definitions).
#pragma once

namespace moeserve::bench {

// Parses argv (argv[0] is the program/subcommand name), runs the benchmark, prints the
// summary to stdout and progress to stderr. Returns the process exit code.
int bench_serve_main(int argc, char** argv);

}  // namespace moeserve::bench
