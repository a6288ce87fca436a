// `moeserve serve MODEL --data-parallel-size N --enable-expert-parallel`: the launcher that runs
// this host's data-parallel rank processes and, unless --headless, one front port that balances
// requests over them (vLLM's DP deployment; llm-d's per-rank endpoints).
//
// Processes: the launcher forks one process per local rank before it starts any thread, UCX
// or OpenMP (each rank initialises those itself, after the fork). Rank r (global) joins the
// group at --data-parallel-address:--data-parallel-rpc-port, loads the routed experts
// [r*E/N, (r+1)*E/N), and serves the OpenAI API on --port + 1 + r. Each rank caps its compute
// threads at hardware threads / local ranks (MOESERVE_THREADS_PER_RANK overrides). Children die
// with the launcher (PR_SET_PDEATHSIG), so none is orphaned.
//
// Front (not --headless): once every local rank serves, the launcher listens on --port and
// routes each request to a local rank with the router's default scheduler (queue depth,
// KV-cache utilisation and prefix-cache affinity, from the ranks' /metrics), streaming
// responses through. Its /health is 503 once a rank has died or the group is stopping.
//
// Failure: a rank that exits (killed, crashed, or its engine stopped because a peer failed) is
// logged with its rank, pid and status; the launcher then gives the other ranks a few seconds
// to fail their in-flight requests and exit, terminates the rest and exits with status 1, for a
// supervisor to restart the group (vLLM's behaviour). SIGINT/SIGTERM: every rank drains its
// in-flight requests and stops, and the launcher exits 0; a second signal kills the ranks.
//
// Threading: call from the process's main thread, with no other thread started.
#pragma once

#include "server/serve_command.h"

namespace moeserve {

// Runs the launcher until the group stops; returns the process exit status.
int run_data_parallel(const ServeCommand& command);

}  // namespace moeserve
