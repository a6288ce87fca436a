#include "router/kv_event_index.h"

namespace moeserve::router {

void InMemoryKvEventIndex::apply(const std::string& endpoint, const std::string& model,
                                 const KvEvent& event) {
  absl::MutexLock lock(&mu_);
  if (const auto* stored = std::get_if<BlockStored>(&event)) {
    store_locked(endpoint, model, *stored);
  } else if (const auto* removed = std::get_if<BlockRemoved>(&event)) {
    remove_locked(endpoint, *removed);
  } else {
    // AllBlocksCleared: the engine dropped its whole prefix cache. (llm-d-kv-cache ignores it;
    // clearing is the accurate reading of the event.)
    auto it = endpoints_.find(endpoint);
    if (it == endpoints_.end()) return;
    for (const auto& [key, tier] : it->second.request_tier) {
      auto h = holders_.find(key);
      if (h == holders_.end()) continue;
      h->second.erase(endpoint);
      if (h->second.empty()) holders_.erase(h);
    }
    endpoints_.erase(it);
  }
}

void InMemoryKvEventIndex::store_locked(const std::string& endpoint, const std::string& model,
                                        const BlockStored& ev) {
  EndpointBlocks& blocks = endpoints_[endpoint];
  uint64_t parent = hasher_.root(model);
  if (ev.parent_block_hash) {
    auto it = blocks.engine_to_request.find(*ev.parent_block_hash);
    // An unknown parent means we missed events; chain from the root as the best guess.
    if (it != blocks.engine_to_request.end()) parent = it->second;
  }
  const std::size_t bs =
      static_cast<std::size_t>(ev.block_size > 0 ? ev.block_size : hasher_.block_size());
  std::vector<uint32_t> chunk;
  for (std::size_t i = 0; i < ev.block_hashes.size(); ++i) {
    std::size_t start = i * bs;
    if (start + bs > ev.token_ids.size()) break;
    chunk.assign(ev.token_ids.begin() + start, ev.token_ids.begin() + start + bs);
    parent = hasher_.block_key(parent, chunk);
    blocks.engine_to_request[ev.block_hashes[i]] = parent;
    blocks.request_tier[parent] = ev.tier;
    holders_[parent][endpoint] = ev.tier;
  }
}

void InMemoryKvEventIndex::remove_locked(const std::string& endpoint, const BlockRemoved& ev) {
  auto ep = endpoints_.find(endpoint);
  if (ep == endpoints_.end()) return;
  EndpointBlocks& blocks = ep->second;
  for (uint64_t engine_key : ev.block_hashes) {
    auto it = blocks.engine_to_request.find(engine_key);
    if (it == blocks.engine_to_request.end()) continue;
    uint64_t key = it->second;
    blocks.engine_to_request.erase(it);
    blocks.request_tier.erase(key);
    auto h = holders_.find(key);
    if (h == holders_.end()) continue;
    h->second.erase(endpoint);
    if (h->second.empty()) holders_.erase(h);
  }
}

std::map<std::string, double> InMemoryKvEventIndex::longest_prefix(
    std::span<const uint64_t> request_keys) const {
  absl::ReaderMutexLock lock(&mu_);
  std::map<std::string, double> weighted;
  std::map<std::string, bool> alive;  // still matching consecutively
  for (std::size_t i = 0; i < request_keys.size(); ++i) {
    auto h = holders_.find(request_keys[i]);
    if (h == holders_.end()) break;
    bool any = false;
    for (const auto& [ep, tier] : h->second) {
      if (i > 0 && !alive[ep]) continue;
      alive[ep] = true;
      any = true;
      weighted[ep] += tier == DeviceTier::kGpu ? kGpuTierWeight : kCpuTierWeight;
    }
    // Endpoints that missed block i stop here.
    for (auto& [ep, a] : alive) {
      if (a && !h->second.contains(ep)) a = false;
    }
    if (!any) break;
  }
  return weighted;
}

void InMemoryKvEventIndex::remove_endpoint(const std::string& endpoint) {
  apply(endpoint, "", AllBlocksCleared{});
}

std::size_t InMemoryKvEventIndex::num_blocks(const std::string& endpoint) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = endpoints_.find(endpoint);
  return it == endpoints_.end() ? 0 : it->second.request_tier.size();
}

}  // namespace moeserve::router
