// Memory registered with UCX (ucp_mem_map) whose remote key every peer holds, so peers can
// write into it with one-sided puts. Every rank creates its buffer of the same size in the
// same collective call; offsets then mean the same thing on every rank.
//
// Completion flags: after a batch of puts to a peer, put_flag() writes a 64-bit word (a
// sequence number) into the peer's buffer, ordered after the data by ucp_worker_fence; the
// peer polls for it with wait_flags() (driving UCX progress, which software-emulated RMA
// needs). A flag word that reads `value` therefore means every put issued before it landed.
//
// Threading: as ProcessGroup, one thread drives it. Lifetime: the group must outlive the
// buffer; destroy buffers collectively (after a barrier) so no peer still writes into one.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "comm/process_group.h"

namespace moeserve {

class RegisteredBuffer {
 public:
  // Collective: every rank passes the same `bytes`. Memory is zero-filled, 64-byte aligned.
  static StatusOr<std::unique_ptr<RegisteredBuffer>> create(ProcessGroup* group, size_t bytes);
  ~RegisteredBuffer();
  RegisteredBuffer(const RegisteredBuffer&) = delete;
  RegisteredBuffer& operator=(const RegisteredBuffer&) = delete;

  uint8_t* data() const { return base_; }
  size_t size() const { return bytes_; }

  // Starts a one-sided write of [local, local + bytes) to the peer's buffer at remote_offset.
  // `local` must stay valid until flush(); to self it is a plain copy.
  Status put(int peer, const void* local, size_t bytes, size_t remote_offset);
  // Writes `value` to the 8-byte-aligned word at remote_offset, after every put issued before.
  Status put_flag(int peer, size_t remote_offset, uint64_t value);
  // Waits until every put/flag issued to `peer` (every peer when peer < 0) has completed at
  // the target.
  Status flush(int peer = -1);
  // Waits until every put issued so far has released its source buffer (local completion;
  // cheaper than flush, which waits for the data to land).
  Status wait_local() { return reap(true); }
  // Waits until, for each i, the local word at offsets[i] reads `value`; peers[i] names who
  // writes it (for failure detection and errors). Completes outstanding local puts meanwhile.
  Status wait_flags(std::span<const size_t> offsets, std::span<const int> peers, uint64_t value,
                    const char* what);
  // Local flag word (acquire load).
  uint64_t flag(size_t offset) const;

 private:
  RegisteredBuffer() = default;
  Status reap(bool all);

  ProcessGroup* group_ = nullptr;
  uint8_t* base_ = nullptr;
  size_t bytes_ = 0;
  ucp_mem_h memh_ = nullptr;
  std::vector<uint64_t> remote_base_;  // [world]
  std::vector<ucp_rkey_h> rkeys_;      // [world]; null for self
  struct Pending {
    void* req;
    int peer;
    std::unique_ptr<uint64_t> value;  // flag words must outlive their put
  };
  std::vector<Pending> pending_;
};

}  // namespace moeserve
