// The approximate prefix index of llm-d's prefix-cache-scorer (approximateprefix/indexer.go):
// hash -> set of endpoints, plus one LRU of hashes per endpoint whose capacity bounds what the
// router believes that endpoint still caches. Speculative: it is fed with the router's own
// routing decisions, not by the engines.
//
// Bounded: at most `capacity` hashes per endpoint (llm-d's lruCapacityPerServer, 31250 by
// default, or the endpoint's reported num_gpu_blocks), and endpoints leave with
// remove_endpoint(); the router exports the sizes as moeserve_router_prefix_index_hashes.
//
// Thread-safety: all methods lock an internal absl::Mutex; safe from any thread.
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <span>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"

namespace moeserve::router {

class ApproxPrefixIndex final {
 public:
  // Records that `endpoint` now holds `hashes` (most recently used). The endpoint's LRU keeps at
  // most `capacity` hashes; evicted hashes stop pointing at it. Hashes are inserted from the
  // last to the first so that a prompt's leading blocks are evicted last (like vLLM, which frees
  // a request's blocks in reverse).
  void add(const std::string& endpoint, std::span<const uint64_t> hashes, std::size_t capacity)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Greedy walk over `hashes` in order, stopping at the first hash no endpoint holds; every
  // endpoint gets +1 for each walked hash it holds.
  std::map<std::string, int> match(std::span<const uint64_t> hashes) const
      ABSL_LOCKS_EXCLUDED(mu_);

  void remove_endpoint(const std::string& endpoint) ABSL_LOCKS_EXCLUDED(mu_);
  std::size_t num_hashes(const std::string& endpoint) const ABSL_LOCKS_EXCLUDED(mu_);
  bool contains(const std::string& endpoint, uint64_t hash) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Lru {
    std::list<uint64_t> order;  // front = most recent
    absl::flat_hash_map<uint64_t, std::list<uint64_t>::iterator> pos;
  };
  void drop_hash_locked(const std::string& endpoint, uint64_t hash)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, absl::flat_hash_set<std::string>> hash_to_endpoints_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, Lru> lrus_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moeserve::router
