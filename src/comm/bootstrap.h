// TCP rendezvous used once when a ProcessGroup forms: rank 0 listens on host:port, every rank
// connects and sends an opaque blob (its UCP worker address), rank 0 answers each rank with
// the table of all blobs in rank order. Plain POSIX sockets; blocking with a deadline.
// Thread-safety: a free function with no shared state.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace moeserve {

struct RendezvousParams {
  int rank = 0;
  int world_size = 1;
  std::string host = "127.0.0.1";  // rank 0 binds here; the others connect here
  int port = 29550;
  std::chrono::milliseconds timeout{30000};
};

// Returns world_size blobs, blob[r] being rank r's. Fails with DeadlineExceeded naming the
// endpoint when rank 0 cannot be reached (or not every rank joined) within the timeout.
StatusOr<std::vector<std::string>> rendezvous_exchange(const RendezvousParams& params,
                                                       const std::string& my_blob);

}  // namespace moeserve
