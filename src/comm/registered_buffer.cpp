#include "comm/registered_buffer.h"

#include <atomic>
#include <cstring>

#include "core/tensor.h"

namespace moeserve {
namespace {
using Clock = std::chrono::steady_clock;
}

StatusOr<std::unique_ptr<RegisteredBuffer>> RegisteredBuffer::create(ProcessGroup* g,
                                                                     size_t bytes) {
  std::unique_ptr<RegisteredBuffer> b(new RegisteredBuffer());
  b->group_ = g;
  b->bytes_ = bytes;
  const size_t alloc = std::max<size_t>(64, (bytes + 63) / 64 * 64);
  b->base_ = static_cast<uint8_t*>(aligned_alloc64(alloc));
  if (b->base_ == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("registered buffer: cannot allocate %d bytes", bytes));
  }
  std::memset(b->base_, 0, alloc);
  ucp_mem_map_params_t mp{};
  mp.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
  mp.address = b->base_;
  mp.length = alloc;
  if (ucs_status_t s = ucp_mem_map(g->context(), &mp, &b->memh_); s != UCS_OK) {
    b->memh_ = nullptr;
    return absl::InternalError(
        absl::StrCat("registered buffer: ucp_mem_map failed: ", ucs_status_string(s)));
  }
  void* rkey_buf = nullptr;
  size_t rkey_len = 0;
  if (ucp_rkey_pack(g->context(), b->memh_, &rkey_buf, &rkey_len) != UCS_OK) {
    return absl::InternalError("registered buffer: ucp_rkey_pack failed");
  }
  // Blob: base address (8 bytes) + packed rkey. Sizes first, then the blobs.
  std::string mine(8 + rkey_len, '\0');
  const uint64_t base = reinterpret_cast<uintptr_t>(b->base_);
  std::memcpy(mine.data(), &base, 8);
  std::memcpy(mine.data() + 8, rkey_buf, rkey_len);
  ucp_rkey_buffer_release(rkey_buf);
  const int n = g->world_size();
  std::vector<int64_t> lens(n);
  const int64_t my_len = static_cast<int64_t>(mine.size());
  MS_RETURN_IF_ERROR(g->all_gather(&my_len, sizeof(my_len), lens.data()));
  std::vector<size_t> sizes(lens.begin(), lens.end());
  size_t total = 0;
  for (size_t s : sizes) total += s;
  std::vector<uint8_t> all(total);
  MS_RETURN_IF_ERROR(g->all_gatherv(mine.data(), sizes, all.data()));
  b->remote_base_.assign(n, 0);
  b->rkeys_.assign(n, nullptr);
  size_t off = 0;
  for (int p = 0; p < n; ++p) {
    std::memcpy(&b->remote_base_[p], all.data() + off, 8);
    if (p != g->rank()) {
      if (ucs_status_t s = ucp_ep_rkey_unpack(g->endpoint(p), all.data() + off + 8, &b->rkeys_[p]);
          s != UCS_OK) {
        return absl::InternalError(absl::StrFormat(
            "registered buffer: cannot unpack rank %d's remote key: %s", p, ucs_status_string(s)));
      }
    }
    off += sizes[p];
  }
  return b;
}

RegisteredBuffer::~RegisteredBuffer() {
  if (!pending_.empty()) (void)reap(true);
  for (auto& p : pending_) ucp_request_free(p.req);
  for (ucp_rkey_h k : rkeys_) {
    if (k != nullptr) ucp_rkey_destroy(k);
  }
  if (memh_ != nullptr) ucp_mem_unmap(group_->context(), memh_);
  std::free(base_);
}

Status RegisteredBuffer::put(int peer, const void* local, size_t bytes, size_t remote_offset) {
  if (remote_offset > bytes_ || bytes > bytes_ - remote_offset) {
    return absl::OutOfRangeError(
        absl::StrFormat("registered buffer: put of %d bytes at offset %d past its %d bytes", bytes,
                        remote_offset, bytes_));
  }
  if (bytes == 0) return absl::OkStatus();
  if (peer == group_->rank()) {
    std::memcpy(base_ + remote_offset, local, bytes);
    return absl::OkStatus();
  }
  MS_RETURN_IF_ERROR(group_->check_peer(peer, "put"));
  ucp_request_param_t prm{};
  void* req = ucp_put_nbx(group_->endpoint(peer), local, bytes, remote_base_[peer] + remote_offset,
                          rkeys_[peer], &prm);
  if (UCS_PTR_IS_ERR(req)) return group_->wait_request(req, peer, "put");
  if (req != nullptr) pending_.push_back(Pending{req, peer, nullptr});
  if (pending_.size() > 256) return reap(false);
  return absl::OkStatus();
}

Status RegisteredBuffer::put_flag(int peer, size_t remote_offset, uint64_t value) {
  if (remote_offset % 8 != 0 || remote_offset + 8 > bytes_) {
    return absl::OutOfRangeError("registered buffer: flag offset out of range or unaligned");
  }
  if (peer == group_->rank()) {
    std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(base_ + remote_offset))
        .store(value, std::memory_order_release);
    return absl::OkStatus();
  }
  MS_RETURN_IF_ERROR(group_->check_peer(peer, "put"));
  if (ucs_status_t s = ucp_worker_fence(group_->worker()); s != UCS_OK) {
    return absl::InternalError(absl::StrCat("ucp_worker_fence: ", ucs_status_string(s)));
  }
  auto word = std::make_unique<uint64_t>(value);
  ucp_request_param_t prm{};
  void* req = ucp_put_nbx(group_->endpoint(peer), word.get(), 8, remote_base_[peer] + remote_offset,
                          rkeys_[peer], &prm);
  if (UCS_PTR_IS_ERR(req)) return group_->wait_request(req, peer, "put");
  if (req != nullptr) pending_.push_back(Pending{req, peer, std::move(word)});
  return absl::OkStatus();
}

// Frees completed puts; with `all`, waits (up to the timeout) until none is pending.
Status RegisteredBuffer::reap(bool all) {
  const auto deadline = Clock::now() + group_->timeout();
  Status result;
  while (true) {
    group_->progress();
    size_t kept = 0;
    for (auto& p : pending_) {
      const ucs_status_t s = ucp_request_check_status(p.req);
      if (s == UCS_INPROGRESS) {
        if (result.ok()) result = group_->check_peer(p.peer, "put");
        pending_[kept++] = std::move(p);
        continue;
      }
      if (s != UCS_OK && result.ok()) {
        result = group_->check_peer(p.peer, "put");
        if (result.ok()) {
          result = absl::UnavailableError(absl::StrFormat(
              "rank %d: put to rank %d failed: %s", group_->rank(), p.peer, ucs_status_string(s)));
        }
      }
      ucp_request_free(p.req);
    }
    pending_.resize(kept);
    if (!result.ok() || !all || pending_.empty()) return result;
    if (Clock::now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrFormat("rank %d: put to rank %d did not complete within %g s", group_->rank(),
                          pending_.front().peer, group_->timeout().count() / 1000.0));
    }
  }
}

Status RegisteredBuffer::flush(int peer) {
  MS_RETURN_IF_ERROR(reap(true));
  const int n = group_->world_size();
  for (int p = 0; p < n; ++p) {
    if (p == group_->rank() || (peer >= 0 && p != peer)) continue;
    ucp_request_param_t prm{};
    void* req = ucp_ep_flush_nbx(group_->endpoint(p), &prm);
    MS_RETURN_IF_ERROR(group_->wait_request(req, p, "flush"));
  }
  return absl::OkStatus();
}

uint64_t RegisteredBuffer::flag(size_t offset) const {
  return std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(base_ + offset))
      .load(std::memory_order_acquire);
}

Status RegisteredBuffer::wait_flags(std::span<const size_t> offsets, std::span<const int> peers,
                                    uint64_t value, const char* what) {
  const auto deadline = Clock::now() + group_->timeout();
  size_t next = 0;  // flags before `next` have been seen
  while (true) {
    while (next < offsets.size() && flag(offsets[next]) == value) ++next;
    if (next == offsets.size()) break;
    group_->progress();
    if (!pending_.empty()) MS_RETURN_IF_ERROR(reap(false));
    MS_RETURN_IF_ERROR(group_->check_peer(peers[next], what));
    if (Clock::now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrFormat("rank %d: %s: rank %d did not signal within %g s", group_->rank(), what,
                          peers[next], group_->timeout().count() / 1000.0));
    }
  }
  return absl::OkStatus();
}

}  // namespace moeserve
