#include "comm/process_group.h"

#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "comm/bootstrap.h"

namespace moeserve {
namespace {

using Clock = std::chrono::steady_clock;

// Wire tag: bits 63..22 the 42-bit operation tag, bits 21..0 the sender's rank.
constexpr int kRankBits = 22;
constexpr uint64_t kFullMask = ~uint64_t{0};

double seconds(std::chrono::milliseconds ms) {
  return ms.count() / 1000.0;
}

std::string ms_string(std::chrono::milliseconds ms) {
  return absl::StrCat(ms.count(), "ms");
}

}  // namespace

// ---------------------------------------------------------------- OpBatch

OpBatch::~OpBatch() {
  if (!ops_.empty()) group_->cancel_all(this);
}

// ---------------------------------------------------------------- formation

StatusOr<std::unique_ptr<ProcessGroup>> ProcessGroup::create(const ProcessGroupOptions& o) {
  if (o.world_size < 1 || o.world_size >= (1 << kRankBits) || o.rank < 0 ||
      o.rank >= o.world_size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("process group: rank %d is outside world size %d", o.rank, o.world_size));
  }
  std::unique_ptr<ProcessGroup> g(new ProcessGroup());
  g->rank_ = o.rank;
  g->world_ = o.world_size;
  g->timeout_ = o.timeout;
  g->detect_peer_failure_ = o.detect_peer_failure;
  g->peer_error_.resize(o.world_size);
  MS_RETURN_IF_ERROR(g->init_ucx(o));

  ucp_address_t* addr = nullptr;
  size_t addr_len = 0;
  if (ucp_worker_get_address(g->worker_, &addr, &addr_len) != UCS_OK) {
    return absl::InternalError("process group: ucp_worker_get_address failed");
  }
  std::string blob(reinterpret_cast<const char*>(addr), addr_len);
  ucp_worker_release_address(g->worker_, addr);

  RendezvousParams rp{o.rank, o.world_size, o.master_addr, o.master_port, o.timeout};
  MS_ASSIGN_OR_RETURN(std::vector<std::string> table, rendezvous_exchange(rp, blob));
  MS_RETURN_IF_ERROR(g->connect(table));
  // The first exchange also completes endpoint wire-up on every pair.
  MS_RETURN_IF_ERROR(g->barrier());
  return g;
}

Status ProcessGroup::init_ucx(const ProcessGroupOptions& o) {
  ucp_config_t* config = nullptr;
  if (ucp_config_read(nullptr, nullptr, &config) != UCS_OK) {
    return absl::InternalError("process group: ucp_config_read failed");
  }
  auto modify = [&](const char* name, const std::string& value) -> Status {
    if (value.empty()) return absl::OkStatus();
    if (ucp_config_modify(config, name, value.c_str()) != UCS_OK) {
      return absl::InvalidArgumentError(
          absl::StrFormat("process group: UCX rejected %s=%s", name, value));
    }
    return absl::OkStatus();
  };
  Status st = modify("TLS", o.ucx_tls);
  if (st.ok()) st = modify("NET_DEVICES", o.ucx_net_devices);
  if (st.ok() && o.detect_peer_failure) {
    st = modify("KEEPALIVE_INTERVAL", ms_string(o.keepalive_interval));
  }
  if (!st.ok()) {
    ucp_config_release(config);
    return st;
  }
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES;
  params.features = UCP_FEATURE_TAG | UCP_FEATURE_RMA;
  const ucs_status_t s = ucp_init(&params, config, &context_);
  ucp_config_release(config);
  if (s != UCS_OK) {
    return absl::InternalError(
        absl::StrCat("process group: ucp_init failed: ", ucs_status_string(s)));
  }
  ucp_worker_params_t wp{};
  wp.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  wp.thread_mode = UCS_THREAD_MODE_SINGLE;
  if (ucp_worker_create(context_, &wp, &worker_) != UCS_OK) {
    return absl::InternalError("process group: ucp_worker_create failed");
  }
  return absl::OkStatus();
}

Status ProcessGroup::connect(const std::vector<std::string>& addresses) {
  eps_.assign(world_, nullptr);
  peer_ctx_.resize(world_);
  for (int p = 0; p < world_; ++p) {
    if (p == rank_) continue;
    peer_ctx_[p] = std::make_unique<PeerContext>(PeerContext{this, p});
    ucp_ep_params_t ep{};
    ep.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                    UCP_EP_PARAM_FIELD_ERR_HANDLER;
    ep.address = reinterpret_cast<const ucp_address_t*>(addresses[p].data());
    ep.err_mode = detect_peer_failure_ ? UCP_ERR_HANDLING_MODE_PEER : UCP_ERR_HANDLING_MODE_NONE;
    ep.err_handler.cb = &ProcessGroup::on_endpoint_error;
    ep.err_handler.arg = peer_ctx_[p].get();
    const ucs_status_t s = ucp_ep_create(worker_, &ep, &eps_[p]);
    if (s != UCS_OK) {
      return absl::UnavailableError(absl::StrFormat(
          "rank %d: cannot create a UCX endpoint to rank %d: %s", rank_, p, ucs_status_string(s)));
    }
  }
  return absl::OkStatus();
}

void ProcessGroup::on_endpoint_error(void* arg, ucp_ep_h /*ep*/, ucs_status_t status) {
  auto* ctx = static_cast<PeerContext*>(arg);
  ProcessGroup* g = ctx->group;
  if (g->peer_error_[ctx->peer].empty()) {
    g->peer_error_[ctx->peer] = ucs_status_string(status);
  }
  g->any_failed_ = true;
}

ProcessGroup::~ProcessGroup() {
  if (worker_ != nullptr) {
    for (int p = 0; p < static_cast<int>(eps_.size()); ++p) {
      if (eps_[p] == nullptr) continue;
      ucp_request_param_t prm{};
      prm.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
      prm.flags = peer_error_[p].empty() ? 0 : UCP_EP_CLOSE_FLAG_FORCE;
      void* req = ucp_ep_close_nbx(eps_[p], &prm);
      if (UCS_PTR_IS_PTR(req)) {
        const auto deadline = Clock::now() + std::chrono::seconds(2);
        while (ucp_request_check_status(req) == UCS_INPROGRESS && Clock::now() < deadline) {
          ucp_worker_progress(worker_);
        }
        ucp_request_free(req);
      }
    }
    ucp_worker_destroy(worker_);
  }
  if (context_ != nullptr) ucp_cleanup(context_);
}

std::string ProcessGroup::describe_transports() const {
  std::string out;
  for (int p = 0; p < world_; ++p) {
    if (eps_[p] == nullptr) continue;
    char* text = nullptr;
    size_t len = 0;
    FILE* f = open_memstream(&text, &len);
    if (f == nullptr) continue;
    ucp_ep_print_info(eps_[p], f);
    std::fclose(f);
    absl::StrAppend(&out, "--- endpoint to rank ", p, "\n", std::string(text, len));
    std::free(text);
  }
  return out;
}

// ---------------------------------------------------------------- failure checks

Status ProcessGroup::check_rank(int peer, const char* what) const {
  if (peer < 0 || peer >= world_) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "rank %d: %s: peer rank %d is outside world size %d", rank_, what, peer, world_));
  }
  return check_peer(peer, what);
}

Status ProcessGroup::check_peer(int peer, const char* what) const {
  if (!any_failed_) return absl::OkStatus();
  for (int p = 0; p < world_; ++p) {
    if ((peer < 0 || p == peer) && !peer_error_[p].empty()) {
      return absl::UnavailableError(
          absl::StrFormat("rank %d: %s: rank %d failed (%s); the process group is unusable", rank_,
                          what, p, peer_error_[p]));
    }
  }
  return absl::OkStatus();
}

uint64_t ProcessGroup::wire_tag(uint64_t tag, int src) const {
  return (tag << kRankBits) | static_cast<uint64_t>(src);
}

uint64_t ProcessGroup::next_collective_tag() {
  collective_seq_ = (collective_seq_ + 1) & (kMaxUserTag - 1);
  return kMaxUserTag + collective_seq_;
}

// ---------------------------------------------------------------- requests

void ProcessGroup::progress() {
  if (ucp_worker_progress(worker_) == 0) sched_yield();
}

Status ProcessGroup::wait_request(void* req, int peer, const char* what) {
  if (req == nullptr) return absl::OkStatus();
  if (UCS_PTR_IS_ERR(req)) {
    MS_RETURN_IF_ERROR(check_peer(peer, what));
    return absl::UnavailableError(absl::StrFormat("rank %d: %s with rank %d failed: %s", rank_,
                                                  what, peer,
                                                  ucs_status_string(UCS_PTR_STATUS(req))));
  }
  OpBatch batch(this);
  batch.ops_.push_back(OpBatch::Op{req, peer, false, 0});
  return wait(&batch, what);
}

void ProcessGroup::isend(OpBatch* b, int peer, uint64_t tag, const void* data, size_t bytes) {
  if (!b->error_.ok()) return;
  if (Status st = check_rank(peer, "send"); !st.ok()) {
    b->error_ = st;
    return;
  }
  if (peer == rank_) {
    b->error_ = absl::InvalidArgumentError(absl::StrFormat("rank %d: send to itself", rank_));
    return;
  }
  ucp_request_param_t prm{};
  void* req = ucp_tag_send_nbx(eps_[peer], data, bytes, wire_tag(tag, rank_), &prm);
  if (UCS_PTR_IS_ERR(req)) {
    b->error_ =
        absl::UnavailableError(absl::StrFormat("rank %d: send to rank %d failed: %s", rank_, peer,
                                               ucs_status_string(UCS_PTR_STATUS(req))));
    if (Status st = check_peer(peer, "send"); !st.ok()) b->error_ = st;
    return;
  }
  if (req != nullptr) b->ops_.push_back(OpBatch::Op{req, peer, false, 0});
}

void ProcessGroup::irecv(OpBatch* b, int peer, uint64_t tag, void* data, size_t bytes) {
  if (!b->error_.ok()) return;
  if (Status st = check_rank(peer, "recv"); !st.ok()) {
    b->error_ = st;
    return;
  }
  if (peer == rank_) {
    b->error_ = absl::InvalidArgumentError(absl::StrFormat("rank %d: recv from itself", rank_));
    return;
  }
  // Always a request (no immediate completion), so the received length is read one way.
  ucp_request_param_t prm{};
  prm.op_attr_mask = UCP_OP_ATTR_FLAG_NO_IMM_CMPL;
  void* req = ucp_tag_recv_nbx(worker_, data, bytes, wire_tag(tag, peer), kFullMask, &prm);
  if (UCS_PTR_IS_ERR(req) || req == nullptr) {
    b->error_ = absl::InternalError(absl::StrFormat(
        "rank %d: recv from rank %d failed: %s", rank_, peer,
        ucs_status_string(req == nullptr ? UCS_ERR_NO_MESSAGE : UCS_PTR_STATUS(req))));
    return;
  }
  b->ops_.push_back(OpBatch::Op{req, peer, true, bytes});
}

void ProcessGroup::cancel_all(OpBatch* b) {
  for (auto& op : b->ops_) {
    if (op.req != nullptr && ucp_request_check_status(op.req) == UCS_INPROGRESS) {
      ucp_request_cancel(worker_, op.req);
    }
  }
  const auto deadline = Clock::now() + std::chrono::seconds(1);
  bool pending = true;
  while (pending && Clock::now() < deadline) {
    ucp_worker_progress(worker_);
    pending = false;
    for (auto& op : b->ops_) {
      if (op.req != nullptr && ucp_request_check_status(op.req) == UCS_INPROGRESS) pending = true;
    }
  }
  for (auto& op : b->ops_) {
    if (op.req != nullptr) ucp_request_free(op.req);  // released by UCX when it completes
  }
  b->ops_.clear();
}

Status ProcessGroup::wait(OpBatch* b, const char* what) {
  Status result = b->error_;
  b->error_ = absl::OkStatus();
  const auto deadline = Clock::now() + timeout_;
  size_t done = 0;
  for (auto& op : b->ops_) done += op.req == nullptr;
  while (result.ok() && done < b->ops_.size()) {
    progress();
    for (auto& op : b->ops_) {
      if (op.req == nullptr) continue;
      const ucs_status_t s = ucp_request_check_status(op.req);
      if (s == UCS_INPROGRESS) {
        if (!peer_error_[op.peer].empty() && result.ok()) result = check_peer(op.peer, what);
        continue;
      }
      if (s == UCS_OK && op.is_recv) {
        ucp_tag_recv_info_t info{};
        ucp_tag_recv_request_test(op.req, &info);
        if (info.length != op.expected && result.ok()) {
          result = absl::DataLossError(
              absl::StrFormat("rank %d: %s: expected %d bytes from rank %d, got %d", rank_, what,
                              op.expected, op.peer, info.length));
        }
      } else if (s != UCS_OK && result.ok()) {
        result = check_peer(op.peer, what);
        if (result.ok()) {
          result = absl::UnavailableError(absl::StrFormat(
              "rank %d: %s with rank %d failed: %s", rank_, what, op.peer, ucs_status_string(s)));
        }
      }
      ucp_request_free(op.req);
      op.req = nullptr;
      ++done;
    }
    if (result.ok() && done < b->ops_.size() && Clock::now() > deadline) {
      int peer = -1;
      for (auto& op : b->ops_) {
        if (op.req != nullptr) peer = op.peer;
      }
      result = absl::DeadlineExceededError(absl::StrFormat(
          "rank %d: %s: rank %d did not answer within %g s", rank_, what, peer, seconds(timeout_)));
    }
  }
  if (done < b->ops_.size()) {
    cancel_all(b);
  } else {
    b->ops_.clear();
  }
  return result;
}

// ---------------------------------------------------------------- point to point

Status ProcessGroup::send(int peer, uint64_t tag, const void* data, size_t bytes) {
  OpBatch b(this);
  isend(&b, peer, tag, data, bytes);
  return wait(&b, "send");
}

Status ProcessGroup::recv(int peer, uint64_t tag, void* data, size_t bytes) {
  OpBatch b(this);
  irecv(&b, peer, tag, data, bytes);
  return wait(&b, "recv");
}

StatusOr<std::vector<uint8_t>> ProcessGroup::recv_any(int peer, uint64_t tag) {
  MS_RETURN_IF_ERROR(check_rank(peer, "recv"));
  const auto deadline = Clock::now() + timeout_;
  ucp_tag_recv_info_t info{};
  ucp_tag_message_h msg = nullptr;
  while ((msg = ucp_tag_probe_nb(worker_, wire_tag(tag, peer), kFullMask, 1, &info)) == nullptr) {
    progress();
    MS_RETURN_IF_ERROR(check_peer(peer, "recv"));
    if (Clock::now() > deadline) {
      return absl::DeadlineExceededError(absl::StrFormat(
          "rank %d: recv: rank %d did not answer within %g s", rank_, peer, seconds(timeout_)));
    }
  }
  std::vector<uint8_t> out(info.length);
  ucp_request_param_t prm{};
  void* req = ucp_tag_msg_recv_nbx(worker_, out.data(), out.size(), msg, &prm);
  MS_RETURN_IF_ERROR(wait_request(req, peer, "recv"));
  return out;
}

StatusOr<std::optional<std::vector<uint8_t>>> ProcessGroup::try_recv_any(int peer, uint64_t tag) {
  MS_RETURN_IF_ERROR(check_rank(peer, "recv"));
  ucp_worker_progress(worker_);
  ucp_tag_recv_info_t info{};
  ucp_tag_message_h msg = ucp_tag_probe_nb(worker_, wire_tag(tag, peer), kFullMask, 1, &info);
  if (msg == nullptr) {
    MS_RETURN_IF_ERROR(check_peer(peer, "recv"));
    return std::optional<std::vector<uint8_t>>();
  }
  std::vector<uint8_t> out(info.length);
  ucp_request_param_t prm{};
  void* req = ucp_tag_msg_recv_nbx(worker_, out.data(), out.size(), msg, &prm);
  MS_RETURN_IF_ERROR(wait_request(req, peer, "recv"));
  return std::optional<std::vector<uint8_t>>(std::move(out));
}

// ---------------------------------------------------------------- collectives

void ProcessGroup::post_all_to_allv(OpBatch* b, uint64_t tag, const void* send,
                                    std::span<const size_t> send_sizes, void* recv,
                                    std::span<const size_t> recv_sizes) {
  if (static_cast<int>(send_sizes.size()) != world_ ||
      static_cast<int>(recv_sizes.size()) != world_) {
    b->error_ = absl::InvalidArgumentError("all_to_allv: one size per rank expected");
    return;
  }
  if (Status st = check_peer(-1, "collective"); !st.ok()) {
    b->error_ = st;
    return;
  }
  size_t soff = 0, roff = 0;
  const auto* s = static_cast<const uint8_t*>(send);
  auto* r = static_cast<uint8_t*>(recv);
  for (int p = 0; p < world_; ++p) {
    if (p == rank_) {
      if (send_sizes[p] != recv_sizes[p]) {
        b->error_ = absl::InvalidArgumentError("all_to_allv: own send and recv sizes differ");
        return;
      }
      if (send_sizes[p] > 0) std::memcpy(r + roff, s + soff, send_sizes[p]);
    } else {
      irecv(b, p, tag, r + roff, recv_sizes[p]);
    }
    soff += send_sizes[p];
    roff += recv_sizes[p];
  }
  // Send to the next ranks first so that not every rank targets rank 0 at once.
  soff = 0;
  std::vector<size_t> offsets(world_);
  for (int p = 0; p < world_; ++p) {
    offsets[p] = soff;
    soff += send_sizes[p];
  }
  for (int i = 1; i < world_; ++i) {
    const int p = (rank_ + i) % world_;
    isend(b, p, tag, s + offsets[p], send_sizes[p]);
  }
}

Status ProcessGroup::all_to_allv(const void* send, std::span<const size_t> send_sizes, void* recv,
                                 std::span<const size_t> recv_sizes) {
  OpBatch b(this);
  post_all_to_allv(&b, next_collective_tag(), send, send_sizes, recv, recv_sizes);
  return wait(&b, "all_to_allv");
}

Status ProcessGroup::all_gatherv(const void* in, std::span<const size_t> sizes, void* out) {
  if (static_cast<int>(sizes.size()) != world_) {
    return absl::InvalidArgumentError("all_gatherv: one size per rank expected");
  }
  MS_RETURN_IF_ERROR(check_peer(-1, "all_gather"));
  const uint64_t tag = next_collective_tag();
  OpBatch b(this);
  auto* o = static_cast<uint8_t*>(out);
  size_t off = 0, mine = 0;
  for (int p = 0; p < world_; ++p) {
    if (p == rank_) {
      mine = off;
      if (sizes[p] > 0) std::memcpy(o + off, in, sizes[p]);
    } else {
      irecv(&b, p, tag, o + off, sizes[p]);
    }
    off += sizes[p];
  }
  for (int i = 1; i < world_; ++i) isend(&b, (rank_ + i) % world_, tag, o + mine, sizes[rank_]);
  return wait(&b, "all_gather");
}

Status ProcessGroup::all_gather(const void* in, size_t bytes, void* out) {
  std::vector<size_t> sizes(world_, bytes);
  return all_gatherv(in, sizes, out);
}

Status ProcessGroup::barrier() {
  std::vector<uint8_t> out(world_);
  const uint8_t one = 1;
  Status st = all_gather(&one, 1, out.data());
  if (!st.ok()) return st;
  return absl::OkStatus();
}

namespace {
template <typename T>
void reduce_rows(const std::vector<T>& all, int world, std::span<T> data, ReduceOp op) {
  const size_t n = data.size();
  for (size_t i = 0; i < n; ++i) {
    T acc = all[i];
    for (int r = 1; r < world; ++r) {
      const T v = all[r * n + i];
      acc = op == ReduceOp::kSum ? acc + v : std::max(acc, v);
    }
    data[i] = acc;
  }
}
}  // namespace

Status ProcessGroup::all_reduce(std::span<int64_t> data, ReduceOp op) {
  std::vector<int64_t> all(data.size() * world_);
  MS_RETURN_IF_ERROR(all_gather(data.data(), data.size_bytes(), all.data()));
  reduce_rows(all, world_, data, op);
  return absl::OkStatus();
}

Status ProcessGroup::all_reduce(std::span<float> data, ReduceOp op) {
  std::vector<float> all(data.size() * world_);
  MS_RETURN_IF_ERROR(all_gather(data.data(), data.size_bytes(), all.data()));
  reduce_rows(all, world_, data, op);
  return absl::OkStatus();
}

}  // namespace moeserve
