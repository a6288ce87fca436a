// The approximate prefix index of llm-d's prefix-cache-scorer (approximateprefix/indexer.go):
// hash -> set of endpoints, plus one LRU of hashes per endpoint whose capacity bounds what the
// router believes that endpoint still caches. Speculative: it is fed with the router's own
// routing decisions, not by the engines.
//
// Bounded: at most `capacity` hashes per endpoint (llm-d's lruCapacityPerServer, 31250 by
// default, or the endpoint's reported num_gpu_blocks), and endpoints leave with
// remove_endpoint(); the router exports the sizes as moeserve_router_prefix_index_hashes.
//
// Thread-safety: all methods lock an internal mutex; safe from any thread.
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <mutex>
#include <span>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"

namespace moeserve::router {

class ApproxPrefixIndex final {
 public:
  // Records that `endpoint` now holds `hashes` (most recently used). The endpoint's LRU keeps at
  // most `capacity` hashes; evicted hashes stop pointing at it. Hashes are inserted from the
  // last to the first so that a prompt's leading blocks are evicted last (like vLLM, which frees
  // a request's blocks in reverse).
  void add(const std::string& endpoint, std::span<const uint64_t> hashes, std::size_t capacity);

  // Greedy walk over `hashes` in order, stopping at the first hash no endpoint holds; every
  // endpoint gets +1 for each walked hash it holds.
  std::map<std::string, int> match(std::span<const uint64_t> hashes) const;

  void remove_endpoint(const std::string& endpoint);
  std::size_t num_hashes(const std::string& endpoint) const;
  bool contains(const std::string& endpoint, uint64_t hash) const;

 private:
  struct Lru {
    std::list<uint64_t> order;  // front = most recent
    absl::flat_hash_map<uint64_t, std::list<uint64_t>::iterator> pos;
  };
  void drop_hash_locked(const std::string& endpoint, uint64_t hash);

  mutable std::mutex mu_;
  absl::flat_hash_map<uint64_t, absl::flat_hash_set<std::string>> hash_to_endpoints_;
  std::map<std::string, Lru> lrus_;
};

}  // namespace moeserve::router
