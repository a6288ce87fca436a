#include "router/approx_prefix_index.h"

namespace moeserve::router {

void ApproxPrefixIndex::drop_hash_locked(const std::string& endpoint, uint64_t hash) {
  auto it = hash_to_endpoints_.find(hash);
  if (it == hash_to_endpoints_.end()) return;
  it->second.erase(endpoint);
  if (it->second.empty()) hash_to_endpoints_.erase(it);
}

void ApproxPrefixIndex::add(const std::string& endpoint, std::span<const uint64_t> hashes,
                            std::size_t capacity) {
  if (capacity == 0) return;
  absl::MutexLock lock(&mu_);
  Lru& lru = lrus_[endpoint];
  for (auto h = hashes.rbegin(); h != hashes.rend(); ++h) {
    auto found = lru.pos.find(*h);
    if (found != lru.pos.end()) {
      lru.order.splice(lru.order.begin(), lru.order, found->second);
      continue;
    }
    lru.order.push_front(*h);
    lru.pos[*h] = lru.order.begin();
    hash_to_endpoints_[*h].insert(endpoint);
  }
  while (lru.order.size() > capacity) {
    uint64_t victim = lru.order.back();
    lru.order.pop_back();
    lru.pos.erase(victim);
    drop_hash_locked(endpoint, victim);
  }
}

std::map<std::string, int> ApproxPrefixIndex::match(std::span<const uint64_t> hashes) const {
  std::map<std::string, int> hits;
  absl::ReaderMutexLock lock(&mu_);
  for (uint64_t h : hashes) {
    auto it = hash_to_endpoints_.find(h);
    if (it == hash_to_endpoints_.end()) break;
    for (const auto& ep : it->second) ++hits[ep];
  }
  return hits;
}

void ApproxPrefixIndex::remove_endpoint(const std::string& endpoint) {
  absl::MutexLock lock(&mu_);
  auto it = lrus_.find(endpoint);
  if (it == lrus_.end()) return;
  for (uint64_t h : it->second.order) drop_hash_locked(endpoint, h);
  lrus_.erase(it);
}

std::size_t ApproxPrefixIndex::num_hashes(const std::string& endpoint) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = lrus_.find(endpoint);
  return it == lrus_.end() ? 0 : it->second.order.size();
}

bool ApproxPrefixIndex::contains(const std::string& endpoint, uint64_t hash) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = lrus_.find(endpoint);
  return it != lrus_.end() && it->second.pos.contains(hash);
}

}  // namespace moeserve::router
