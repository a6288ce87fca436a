#include "engine/block_pool.h"

#include <utility>

namespace moeserve::engine {
namespace {

std::vector<KVCacheBlock*> pointers_in_id_order(std::vector<KVCacheBlock>& blocks) {
  std::vector<KVCacheBlock*> out;
  out.reserve(blocks.size());
  for (KVCacheBlock& b : blocks) out.push_back(&b);
  return out;
}

std::vector<KVCacheBlock> make_blocks(int32_t num_blocks) {
  MS_CHECK(num_blocks >= 2);
  std::vector<KVCacheBlock> blocks(num_blocks);
  for (int32_t i = 0; i < num_blocks; ++i) blocks[i].block_id = i;
  return blocks;
}

}  // namespace

BlockPool::BlockPool(int32_t num_blocks, bool enable_caching, KVEventSink* sink)
    : enable_caching_(enable_caching),
      sink_(sink),
      blocks_(make_blocks(num_blocks)),
      free_queue_(pointers_in_id_order(blocks_)) {
  // The first block popped (block 0) becomes the permanent null block.
  null_block_ = free_queue_.popleft();
  null_block_->is_null = true;
}

KVCacheBlock* BlockPool::get_cached_block(const BlockHash& hash) const {
  auto it = cached_.find(hash);
  if (it == cached_.end() || it->second.empty()) return nullptr;
  // Deterministic choice among duplicates: the lowest block id.
  KVCacheBlock* best = nullptr;
  for (const auto& [id, blk] : it->second) {
    if (best == nullptr || id < best->block_id) best = blk;
  }
  return best;
}

std::optional<std::vector<KVCacheBlock*>> BlockPool::get_new_blocks(int32_t n) {
  if (n < 0 || n > get_num_free_blocks()) return std::nullopt;
  std::vector<KVCacheBlock*> out = free_queue_.popleft_n(n);
  std::vector<uint64_t> evicted;
  for (KVCacheBlock* b : out) {
    MS_CHECK(b->ref_cnt == 0);
    if (enable_caching_) {
      std::optional<BlockHash> hash = b->block_hash;
      if (maybe_evict_cached_block(b)) evicted.push_back(hash->to_u64());
    }
    b->ref_cnt++;
  }
  if (!evicted.empty()) publish(BlockRemoved{std::move(evicted), std::nullopt});
  return out;
}

bool BlockPool::maybe_evict_cached_block(KVCacheBlock* block) {
  if (!block->block_hash.has_value()) return false;
  auto it = cached_.find(*block->block_hash);
  bool removed = false;
  if (it != cached_.end()) {
    removed = it->second.erase(block->block_id) > 0;
    if (it->second.empty()) cached_.erase(it);
  }
  block->block_hash.reset();
  return removed;
}

void BlockPool::touch(std::span<KVCacheBlock* const> blocks) {
  for (KVCacheBlock* b : blocks) {
    if (b->ref_cnt == 0 && !b->is_null) free_queue_.remove(b);
    b->ref_cnt++;
  }
}

void BlockPool::free_blocks(std::span<KVCacheBlock* const> ordered_blocks) {
  for (KVCacheBlock* b : ordered_blocks) {
    MS_CHECK(b->ref_cnt > 0 || b->is_null);
    if (b->is_null) continue;
    b->ref_cnt--;
    if (b->ref_cnt == 0) free_queue_.append(b);
  }
}

void BlockPool::cache_full_blocks(std::span<KVCacheBlock* const> blocks,
                                  std::span<const BlockHash> block_hashes,
                                  std::span<const int32_t> all_token_ids, int32_t num_cached_blocks,
                                  int32_t num_full_blocks, int32_t block_size) {
  if (num_cached_blocks >= num_full_blocks) return;
  MS_CHECK(static_cast<size_t>(num_full_blocks) <= blocks.size());
  MS_CHECK(static_cast<size_t>(num_full_blocks) <= block_hashes.size());
  BlockStored stored;
  stored.block_size = block_size;
  if (num_cached_blocks > 0) {
    stored.parent_block_hash = block_hashes[num_cached_blocks - 1].to_u64();
  }
  for (int32_t i = num_cached_blocks; i < num_full_blocks; ++i) {
    KVCacheBlock* b = blocks[i];
    if (b->is_null) continue;
    MS_CHECK(!b->block_hash.has_value());
    b->block_hash = block_hashes[i];
    cached_[block_hashes[i]][b->block_id] = b;
    stored.block_hashes.push_back(block_hashes[i].to_u64());
  }
  const size_t begin = static_cast<size_t>(num_cached_blocks) * block_size;
  const size_t end =
      std::min(all_token_ids.size(), static_cast<size_t>(num_full_blocks) * block_size);
  stored.token_ids.assign(all_token_ids.begin() + begin, all_token_ids.begin() + end);
  if (!stored.block_hashes.empty()) publish(std::move(stored));
}

bool BlockPool::reset_prefix_cache() {
  if (get_num_free_blocks() != num_blocks() - 1) return false;
  cached_.clear();
  for (KVCacheBlock& b : blocks_) b.block_hash.reset();
  publish(AllBlocksCleared{});
  return true;
}

double BlockPool::get_usage() const {
  const int32_t total = num_blocks() - 1;
  if (total <= 0) return 0.0;
  return 1.0 - static_cast<double>(get_num_free_blocks()) / total;
}

void BlockPool::publish(KVCacheEvent event) {
  if (sink_ != nullptr) sink_->publish(std::move(event));
}

}  // namespace moeserve::engine
