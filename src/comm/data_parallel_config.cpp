#include "comm/data_parallel_config.h"

namespace moeserve {

Status DataParallelConfig::validate() const {
  if (size < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--data-parallel-size must be at least 1, got %d", size));
  }
  if (start_rank < 0 || start_rank >= size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--data-parallel-start-rank %d must be in [0, %d) (--data-parallel-size %d)", start_rank,
        size, size));
  }
  const int local = local_size();
  if (local < 0 || start_rank + local > size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--data-parallel-start-rank %d + --data-parallel-size-local %d exceeds "
                        "--data-parallel-size %d",
                        start_rank, local, size));
  }
  if (headless && local == 0) {
    return absl::InvalidArgumentError(
        "--headless needs --data-parallel-size-local of at least 1 (a headless host runs only "
        "engine ranks)");
  }
  if (!headless && start_rank > 0 && local == 0) {
    return absl::InvalidArgumentError(
        "a host with --data-parallel-start-rank > 0 and no local ranks has nothing to run");
  }
  if (address.empty()) {
    return absl::InvalidArgumentError("--data-parallel-address must not be empty");
  }
  if (rpc_port <= 0 || rpc_port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--data-parallel-rpc-port %d is not a TCP port (1..65535)", rpc_port));
  }
  return absl::OkStatus();
}

std::vector<int> DataParallelConfig::local_ranks() const {
  std::vector<int> out;
  for (int r = start_rank; r < start_rank + local_size(); ++r) out.push_back(r);
  return out;
}

ProcessGroupOptions DataParallelConfig::group_options(int global_rank) const {
  ProcessGroupOptions o;
  o.rank = global_rank;
  o.world_size = size;
  o.master_addr = address;
  o.master_port = rpc_port;
  return o;
}

}  // namespace moeserve
