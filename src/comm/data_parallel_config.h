// vLLM's data-parallel deployment flags and what they mean:
//   --data-parallel-size N          total DP ranks across all hosts
//   --data-parallel-size-local L    DP ranks this host runs (default: N on a single host)
//   --data-parallel-start-rank S    global rank of this host's first DP rank (default 0)
//   --headless                      run only engine ranks, no API server (secondary hosts)
//   --data-parallel-address A       address of the host with rank 0 (rendezvous)
//   --data-parallel-rpc-port P      TCP port rank 0 listens on for the rendezvous
// This host runs global ranks [S, S + L). The host with rank 0 (S == 0) hosts the
// rendezvous. Plain data; validate() before use.
#pragma once

#include <string>
#include <vector>

#include "comm/process_group.h"
#include "core/status.h"

namespace moeserve {

struct DataParallelConfig {
  int size = 1;                       // --data-parallel-size
  int size_local = -1;                // --data-parallel-size-local; -1: unset (= size - start_rank)
  int start_rank = 0;                 // --data-parallel-start-rank
  bool headless = false;              // --headless
  std::string address = "127.0.0.1";  // --data-parallel-address
  int rpc_port = 29550;               // --data-parallel-rpc-port

  // Checks the flags against each other; errors name the flag and the fix.
  Status validate() const;
  // size_local with the default applied.
  int local_size() const { return size_local < 0 ? size - start_rank : size_local; }
  // Global ranks this launcher spawns: [start_rank, start_rank + local_size()).
  std::vector<int> local_ranks() const;
  // Whether this host holds rank 0 and so listens for the rendezvous.
  bool hosts_rank0() const { return start_rank == 0 && local_size() > 0; }
  // ProcessGroup options for one of this host's ranks.
  ProcessGroupOptions group_options(int global_rank) const;
};

}  // namespace moeserve
