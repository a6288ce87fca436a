#include "engine/kv_cache_manager.h"

#include <algorithm>
#include <memory>

namespace moeserve::engine {

absl::Status KVCacheConfig::validate() const {
  if (block_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--block-size must be at least 1, got ", block_size));
  }
  if (num_blocks < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the KV cache holds ", num_blocks,
        " blocks; at least 2 are needed (block 0 is reserved): raise --kv-cache-memory"));
  }
  if (max_model_len < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-model-len must be positive, got ", max_model_len));
  }
  return absl::OkStatus();
}

KVCacheManager::KVCacheManager(const KVCacheConfig& config, BlockHasher hasher, KVEventSink* sink)
    : config_(config),
      hasher_(std::move(hasher)),
      pool_(config.num_blocks, config.enable_prefix_caching, sink) {}

absl::StatusOr<std::unique_ptr<KVCacheManager>> KVCacheManager::create(const KVCacheConfig& config,
                                                                       KVEventSink* sink) {
  MS_RETURN_IF_ERROR(config.validate());
  return std::make_unique<KVCacheManager>(config, BlockHasher(config.hash_algo), sink);
}

void KVCacheManager::update_block_hashes(Request& request) const {
  const int32_t bs = config_.block_size;
  const size_t num_full = static_cast<size_t>(request.num_tokens() / bs);
  while (request.block_hashes.size() < num_full) {
    const size_t i = request.block_hashes.size();
    std::optional<HashKey::Tuple> extra;
    if (i == 0 && !request.cache_salt.empty()) {
      extra = HashKey::Tuple{HashKey::text(request.cache_salt)};
    }
    const BlockHash* parent = i == 0 ? nullptr : &request.block_hashes[i - 1];
    std::span<const int32_t> tokens(request.all_token_ids.data() + i * bs, bs);
    request.block_hashes.push_back(hasher_.hash_block(parent, tokens, extra));
  }
}

ComputedBlocks KVCacheManager::get_computed_blocks(Request& request) {
  ComputedBlocks out;
  if (!config_.enable_prefix_caching || request.sampling_params.prompt_logprobs.has_value()) {
    return out;
  }
  update_block_hashes(request);
  const int32_t max_hit_tokens = request.num_tokens() - 1;
  const size_t max_blocks =
      std::min(request.block_hashes.size(), static_cast<size_t>(std::max(0, max_hit_tokens)) /
                                                static_cast<size_t>(config_.block_size));
  for (size_t i = 0; i < max_blocks; ++i) {
    KVCacheBlock* hit = pool_.get_cached_block(request.block_hashes[i]);
    if (hit == nullptr) break;
    out.blocks.push_back(hit);
  }
  out.num_computed_tokens = static_cast<int32_t>(out.blocks.size()) * config_.block_size;
  stats_.requests++;
  stats_.queries += request.num_tokens();
  stats_.hits += out.num_computed_tokens;
  return out;
}

std::optional<std::vector<KVCacheBlock*>> KVCacheManager::allocate_slots(
    Request& request, int32_t num_new_tokens, int32_t num_new_computed_tokens,
    const std::vector<KVCacheBlock*>& new_computed_blocks) {
  MS_CHECK(num_new_tokens >= 0);
  const int32_t bs = config_.block_size;
  const int32_t num_computed = request.num_computed_tokens + num_new_computed_tokens;
  int32_t num_tokens_need_slot = num_computed + num_new_tokens;
  if (config_.max_model_len > 0) {
    num_tokens_need_slot = std::min(num_tokens_need_slot, config_.max_model_len);
  }
  auto it = req_to_blocks_.find(request.request_id);
  const int32_t num_held = it == req_to_blocks_.end() ? 0 : static_cast<int32_t>(it->second.size());
  // Prefix hits are only taken by a request that holds nothing yet.
  MS_CHECK(new_computed_blocks.empty() || num_held == 0);

  const int32_t num_required = (num_tokens_need_slot + bs - 1) / bs;
  const int32_t num_new_blocks =
      std::max(0, num_required - num_held - static_cast<int32_t>(new_computed_blocks.size()));
  // Touching a hit block at ref 0 takes it out of the free queue too.
  const auto num_evictable_hits = static_cast<int32_t>(
      std::count_if(new_computed_blocks.begin(), new_computed_blocks.end(),
                    [](const KVCacheBlock* b) { return b->ref_cnt == 0 && !b->is_null; }));
  if (num_new_blocks + num_evictable_hits > pool_.get_num_free_blocks()) return std::nullopt;

  std::vector<KVCacheBlock*>& req_blocks = req_to_blocks_[request.request_id];
  if (num_held == 0) {
    MS_CHECK(config_.enable_prefix_caching || new_computed_blocks.empty());
    pool_.touch(new_computed_blocks);
    req_blocks.insert(req_blocks.end(), new_computed_blocks.begin(), new_computed_blocks.end());
    num_cached_blocks_[request.request_id] = static_cast<int32_t>(new_computed_blocks.size());
  }
  std::optional<std::vector<KVCacheBlock*>> new_blocks = pool_.get_new_blocks(num_new_blocks);
  MS_CHECK(new_blocks.has_value());
  req_blocks.insert(req_blocks.end(), new_blocks->begin(), new_blocks->end());

  if (config_.enable_prefix_caching) {
    cache_blocks(request, std::min(num_computed + num_new_tokens, request.num_tokens()));
  }
  return new_blocks;
}

void KVCacheManager::cache_blocks(Request& request, int32_t num_tokens) {
  update_block_hashes(request);
  const int32_t num_full = num_tokens / config_.block_size;
  int32_t& num_cached = num_cached_blocks_[request.request_id];
  if (num_cached >= num_full) return;
  const std::vector<KVCacheBlock*>& blocks = req_to_blocks_[request.request_id];
  pool_.cache_full_blocks(blocks, request.block_hashes, request.all_token_ids, num_cached, num_full,
                          config_.block_size);
  num_cached = num_full;
}

void KVCacheManager::free(const Request& request) {
  auto it = req_to_blocks_.find(request.request_id);
  if (it != req_to_blocks_.end()) {
    std::vector<KVCacheBlock*> ordered(it->second.rbegin(), it->second.rend());
    pool_.free_blocks(ordered);
    req_to_blocks_.erase(it);
  }
  num_cached_blocks_.erase(request.request_id);
}

std::vector<int32_t> KVCacheManager::get_block_ids(const std::string& request_id) const {
  std::vector<int32_t> ids;
  auto it = req_to_blocks_.find(request_id);
  if (it == req_to_blocks_.end()) return ids;
  ids.reserve(it->second.size());
  for (const KVCacheBlock* b : it->second) ids.push_back(b->block_id);
  return ids;
}

PrefixCacheStats KVCacheManager::take_prefix_cache_stats() {
  return std::exchange(stats_, {});
}

}  // namespace moeserve::engine
