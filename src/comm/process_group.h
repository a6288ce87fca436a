// A group of `world_size` processes connected all-to-all over UCX (UCP tag matching and RMA).
// Formation: a TCP rendezvous at master_addr:master_port exchanges UCP worker addresses, then
// every rank creates an endpoint to every other rank (error mode PEER by default: a dead peer
// fails the endpoint instead of hanging it).
//
// Operations are point-to-point (send/recv, tagged, any size) and small collectives built on
// them (barrier, all_gather(v), all_reduce, all_to_allv). Collectives
// exchange directly between every pair of ranks, so each rank notices a dead peer itself;
// their float reductions add contributions in rank order, so every rank gets bitwise the
// same result.
//
// Failure contract: every blocking wait has the group's timeout; a peer whose endpoint
// failed (process killed, connection lost; detected by UCX keepalive within about
// keepalive_interval) fails every pending and later operation that involves it with
// UnavailableError "rank A: <op>: rank B failed (...)"; a collective fails as soon as any
// peer has failed. After such an error the group is unusable: destroy it.
//
// Threading: UCP workers are single-threaded. One thread drives a ProcessGroup (and every
// RegisteredBuffer and MoE backend over it); no method may be called concurrently.
// Fork: create groups only after fork(); a group does not survive into a child.
#pragma once

#include <ucp/api/ucp.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace moeserve {

struct ProcessGroupOptions {
  int rank = 0;
  int world_size = 1;
  std::string master_addr = "127.0.0.1";     // --data-parallel-address
  int master_port = 29550;                   // --data-parallel-rpc-port
  std::chrono::milliseconds timeout{30000};  // rendezvous and every blocking wait
  // UCX transport list (UCX_TLS syntax). Empty: UCX's default selection among the transports
  // that the error mode allows (see detect_peer_failure). "tcp" emulates separate hosts. Set
  // before ucp_init; per group.
  std::string ucx_tls;
  // UCX network devices (UCX_NET_DEVICES syntax), e.g. "lo". Empty: UCX's default.
  std::string ucx_net_devices;
  // How often UCX probes peers; bounds how long a dead peer goes unnoticed.
  std::chrono::milliseconds keepalive_interval{500};
  // true: endpoints use UCX's PEER error mode, so a dead peer fails operations instead of
  // hanging them (the failure contract above). UCX 1.13 has no peer-failure support in its
  // shared-memory transports (posix, sysv), so in this mode ranks on one host talk over TCP
  // loopback (and CMA for RMA). false: UCX may pick shared memory, but a dead peer is only
  // noticed by the group's timeout and a transport error may abort the process — for
  // benchmarks that measure the transport, not for serving.
  bool detect_peer_failure = true;
};

enum class ReduceOp { kSum, kMax };

class ProcessGroup;

// Non-blocking operations posted together and completed by ProcessGroup::wait(). Buffers
// passed to isend/irecv must stay valid until wait() returns. Destroying a batch with
// operations still pending cancels them (receives) and waits briefly for them to finish.
class OpBatch {
 public:
  explicit OpBatch(ProcessGroup* group) : group_(group) {}
  OpBatch(const OpBatch&) = delete;
  OpBatch& operator=(const OpBatch&) = delete;
  ~OpBatch();
  bool empty() const { return ops_.empty(); }

 private:
  friend class ProcessGroup;
  struct Op {
    void* req = nullptr;  // UCP request, null once complete
    int peer = 0;
    bool is_recv = false;
    size_t expected = 0;  // recv: exact byte count wanted
  };
  ProcessGroup* group_;
  std::vector<Op> ops_;
  Status error_;  // first posting error, reported by wait()
};

class ProcessGroup {
 public:
  // User tags for send/recv must be below kMaxUserTag; the rest is for collectives.
  static constexpr uint64_t kMaxUserTag = uint64_t{1} << 40;

  // Collective over all world_size ranks; blocks up to options.timeout.
  static StatusOr<std::unique_ptr<ProcessGroup>> create(const ProcessGroupOptions& options);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  // UCX's description of each endpoint's lanes and transports (diagnostics).
  std::string describe_transports() const;

  // --- point to point (blocking, up to timeout) ---
  Status send(int peer, uint64_t tag, const void* data, size_t bytes);
  // Receives exactly `bytes`; a message of another size is an error.
  Status recv(int peer, uint64_t tag, void* data, size_t bytes);
  // Receives a message of any size.
  StatusOr<std::vector<uint8_t>> recv_any(int peer, uint64_t tag);
  // Drives progress once and receives a message from `peer` with `tag` if one has arrived;
  // nullopt when none has (never waits for one). Errors as recv_any (failed peer).
  StatusOr<std::optional<std::vector<uint8_t>>> try_recv_any(int peer, uint64_t tag);

  // --- non-blocking point to point, completed by wait() ---
  void isend(OpBatch* batch, int peer, uint64_t tag, const void* data, size_t bytes);
  void irecv(OpBatch* batch, int peer, uint64_t tag, void* data, size_t bytes);
  // `what` names the operation in errors. Empties the batch, also on error.
  Status wait(OpBatch* batch, const char* what);

  // --- collectives: every rank calls them in the same order ---
  // A fresh tag for one collective step (identical on every rank when called in order).
  uint64_t next_collective_tag();
  Status barrier();
  // in: bytes; out: world_size * bytes, rank r's at r * bytes.
  Status all_gather(const void* in, size_t bytes, void* out);
  // in: sizes[rank] bytes; out: concatenation of every rank's bytes in rank order.
  Status all_gatherv(const void* in, std::span<const size_t> sizes, void* out);
  Status all_reduce(std::span<int64_t> data, ReduceOp op);
  Status all_reduce(std::span<float> data, ReduceOp op);
  // send: segments for ranks 0..N-1 concatenated (send_sizes bytes each, own segment
  // included); recv: segments from ranks 0..N-1 concatenated (recv_sizes bytes each).
  Status all_to_allv(const void* send, std::span<const size_t> send_sizes, void* recv,
                     std::span<const size_t> recv_sizes);
  // Posts all_to_allv's operations into `batch` (complete with wait()); own segment is copied.
  void post_all_to_allv(OpBatch* batch, uint64_t tag, const void* send,
                        std::span<const size_t> send_sizes, void* recv,
                        std::span<const size_t> recv_sizes);

  // --- for RegisteredBuffer ---
  ucp_context_h context() const { return context_; }
  ucp_worker_h worker() const { return worker_; }
  ucp_ep_h endpoint(int peer) const { return eps_[peer]; }
  // Drives UCX progress once; when nothing happened, yields the CPU (ranks often share
  // cores with each other and with compute threads, and spinning would starve the peer).
  void progress();
  // Ok, or the error for a failed peer (any peer when peer < 0), prefixed with `what`.
  Status check_peer(int peer, const char* what) const;
  // Waits for one UCP request (may be null or an error pointer) naming `peer` in errors.
  Status wait_request(void* req, int peer, const char* what);

 private:
  friend class OpBatch;
  struct PeerContext {
    ProcessGroup* group;
    int peer;
  };
  ProcessGroup() = default;
  Status init_ucx(const ProcessGroupOptions& options);
  Status connect(const std::vector<std::string>& addresses);
  static void on_endpoint_error(void* arg, ucp_ep_h ep, ucs_status_t status);
  uint64_t wire_tag(uint64_t tag, int src) const;
  Status check_rank(int peer, const char* what) const;
  void cancel_all(OpBatch* batch);

  int rank_ = 0, world_ = 1;
  std::chrono::milliseconds timeout_{30000};
  bool detect_peer_failure_ = true;
  ucp_context_h context_ = nullptr;
  ucp_worker_h worker_ = nullptr;
  std::vector<ucp_ep_h> eps_;  // [world]; null for self
  std::vector<std::unique_ptr<PeerContext>> peer_ctx_;
  std::vector<std::string> peer_error_;  // [world]; non-empty once that peer failed
  bool any_failed_ = false;
  uint64_t collective_seq_ = 0;
};

}  // namespace moeserve
