// The precise prefix index: which endpoint holds which KV block, fed by the engines' KV events
// (vLLM's BlockStored / BlockRemoved / AllBlocksCleared, llm-d-kv-cache's kvevents). The ZMQ
// subscriber that decodes the wire format calls apply(); this file owns only the index.
//
// Keys: engines name blocks by their own hash (engine key). Like llm-d-kv-cache since #202 the
// index recomputes a request key from each BlockStored's token_ids (token_block_hasher.h), keeps
// engine key -> request key per endpoint, and resolves BlockRemoved through it. Requests are
// looked up by request key, so the router needs only the prompt's token ids, never the engine's
// hash algorithm or PYTHONHASHSEED.
//
// Bounded by the engines' KV caches it mirrors: one entry per block an endpoint reported
// stored and has not removed; an endpoint whose event stream cannot be replayed after a gap
// is cleared, and a removed endpoint is dropped. Sizes are exported as
// moeserve_router_kv_index_blocks.
//
// Thread-safety: every method locks an internal absl::Mutex; apply() may be called from subscriber
// threads while the scorer looks up from proxy threads.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "router/token_block_hasher.h"

namespace moeserve::router {

enum class DeviceTier { kGpu, kCpu };

struct BlockStored {
  std::vector<uint64_t> block_hashes;         // engine keys, one per full block
  std::optional<uint64_t> parent_block_hash;  // engine key of the block before the first
  std::vector<uint32_t> token_ids;            // tokens of all the blocks, in order
  int block_size = 0;                         // 0: the hasher's block size
  DeviceTier tier = DeviceTier::kGpu;         // vLLM `medium` ("GPU"/"CPU")
};
struct BlockRemoved {
  std::vector<uint64_t> block_hashes;
  DeviceTier tier = DeviceTier::kGpu;
};
struct AllBlocksCleared {};
using KvEvent = std::variant<BlockStored, BlockRemoved, AllBlocksCleared>;

// Tier weights of llm-d-kv-cache's LongestPrefixScorer.
inline constexpr double kGpuTierWeight = 1.0;
inline constexpr double kCpuTierWeight = 0.8;

class KvEventIndex {
 public:
  virtual ~KvEventIndex() = default;
  // `endpoint` is "host:port" (the pod identifier of the event topic), `model` the topic's model.
  virtual void apply(const std::string& endpoint, const std::string& model,
                     const KvEvent& event) = 0;
  // For each endpoint: tier-weighted count of consecutive hits from block 0 of `request_keys`.
  virtual std::map<std::string, double> longest_prefix(
      std::span<const uint64_t> request_keys) const = 0;
  virtual void remove_endpoint(const std::string& endpoint) = 0;
  virtual const TokenBlockHasher& hasher() const = 0;
  // Blocks indexed for `endpoint`.
  virtual std::size_t num_blocks(const std::string& endpoint) const = 0;
};

class InMemoryKvEventIndex final : public KvEventIndex {
 public:
  explicit InMemoryKvEventIndex(TokenBlockHasher hasher) : hasher_(std::move(hasher)) {}

  void apply(const std::string& endpoint, const std::string& model, const KvEvent& event)
      ABSL_LOCKS_EXCLUDED(mu_) override;
  std::map<std::string, double> longest_prefix(std::span<const uint64_t> request_keys) const
      ABSL_LOCKS_EXCLUDED(mu_) override;
  void remove_endpoint(const std::string& endpoint) ABSL_LOCKS_EXCLUDED(mu_) override;
  const TokenBlockHasher& hasher() const override { return hasher_; }
  std::size_t num_blocks(const std::string& endpoint) const ABSL_LOCKS_EXCLUDED(mu_) override;

 private:
  struct EndpointBlocks {
    absl::flat_hash_map<uint64_t, uint64_t> engine_to_request;
    absl::flat_hash_map<uint64_t, DeviceTier> request_tier;  // by request key
  };
  void store_locked(const std::string& endpoint, const std::string& model, const BlockStored& ev)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void remove_locked(const std::string& endpoint, const BlockRemoved& ev)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const TokenBlockHasher hasher_;
  mutable absl::Mutex mu_;
  std::map<std::string, EndpointBlocks> endpoints_ ABSL_GUARDED_BY(mu_);
  // request key -> endpoints holding it.
  absl::flat_hash_map<uint64_t, std::map<std::string, DeviceTier>> holders_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moeserve::router
