// `moeserve serve [MODEL] [flags]`: vLLM's `vllm serve`. This file parses the flags and runs
// the single-process server and one data-parallel rank; the launcher that forks the ranks and
// balances over them lives in cli/ (cli/dp_launcher.h), since it uses the router.
#pragma once

#include <optional>
#include <string>

#include "comm/data_parallel_config.h"
#include "server/server_app.h"

namespace moeserve {

// The model served when no MODEL is given: looked up relative to the working directory,
// then relative to the executable's folder and its parents (a build tree inside the
// repository).
inline constexpr const char* kDefaultServeModel = "models/demo";

// Everything `moeserve serve` was asked for.
struct ServeCommand {
  server::ServeOptions options;  // options.port: the front's port with data parallelism
  DataParallelConfig data_parallel;
  bool enable_expert_parallel = false;
  // Compute threads per rank (0: hardware threads / local ranks, at least 1).
  int threads_per_rank = 0;

  // Whether this runs data-parallel rank processes (--data-parallel-size > 1).
  bool data_parallel_mode() const { return data_parallel.size > 1; }
  // HTTP port of global data-parallel rank `rank`: --port + 1 + rank.
  int rank_port(int rank) const { return options.port + 1 + rank; }
  // Cross-flag checks for data-parallel mode (expert parallelism required, port range);
  // errors name the flag.
  Status validate_data_parallel() const;
};

// Parses `moeserve serve` flags (argv[0] is the subcommand name). Returns the command, or
// nullopt with *exit_code set (0 after --help, 2 for bad flags; the message is printed).
std::optional<ServeCommand> parse_serve_command(int argc, char** argv, int* exit_code);

// The single-process server: starts it and blocks until SIGINT/SIGTERM, then drains in-flight
// requests and returns 0 (1 when the model does not load or the port cannot be bound).
int run_single_server(const server::ServeOptions& options);

// One data-parallel rank, in a process of its own that has not yet initialised UCX or
// threads: joins the group (rendezvous at --data-parallel-address:--data-parallel-rpc-port),
// loads its experts and serves HTTP on rank_port(rank). Writes one byte to `ready_fd` (if
// >= 0) once it serves, then closes it. Blocks until SIGTERM/SIGINT (which it expects blocked
// by the caller; it drains, returns 0) or until its engine stops because a peer rank failed or
// left (it keeps answering /health with 503 for a short grace, so that in-flight streams get
// their error, then returns 3 so that its launcher tears the group down). Returns 1 when the
// group or the server cannot start.
int run_data_parallel_rank(const ServeCommand& command, int rank, int ready_fd);

}  // namespace moeserve
