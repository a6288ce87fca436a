#include "router/prefix_cache_scorer.h"

#include <algorithm>

#include "router/prefix_hash.h"

namespace moeserve::router {

StatusOr<std::unique_ptr<Plugin>> PrefixCacheScorer::create(const PluginParams& params,
                                                            std::string name) {
  MS_RETURN_IF_ERROR(
      params.check_known({"blockSizeTokens", "blockSize", "hashBlockSize", "maxPrefixBlocksToMatch",
                          "maxPrefixTokensToMatch", "lruCapacityPerServer", "autoTune"}));
  std::unique_ptr<PrefixCacheScorer> s(new PrefixCacheScorer(std::move(name)));
  MS_ASSIGN_OR_RETURN(int64_t bs, params.get_int("blockSize", 16, 1, 1 << 20));
  MS_ASSIGN_OR_RETURN(int64_t bst, params.get_int("blockSizeTokens", bs, 1, 1 << 20));
  MS_ASSIGN_OR_RETURN(int64_t hbs, params.get_int("hashBlockSize", 0, 0, 1 << 22));
  MS_ASSIGN_OR_RETURN(int64_t mb, params.get_int("maxPrefixBlocksToMatch", 256, 1, 1 << 24));
  MS_ASSIGN_OR_RETURN(int64_t mt, params.get_int("maxPrefixTokensToMatch", 0, 0, 1 << 30));
  MS_ASSIGN_OR_RETURN(int64_t lru,
                      params.get_int("lruCapacityPerServer", 31250, 1, int64_t{1} << 40));
  MS_ASSIGN_OR_RETURN(bool auto_tune, params.get_bool("autoTune", true));
  s->block_size_tokens_ = static_cast<int>(bst);
  s->hash_block_chars_ = static_cast<int>(hbs);
  s->max_blocks_ = static_cast<int>(mb);
  s->max_tokens_ = static_cast<int>(mt);
  s->lru_capacity_ = static_cast<std::size_t>(lru);
  s->auto_tune_ = auto_tune;
  return std::unique_ptr<Plugin>(std::move(s));
}

std::vector<double> PrefixCacheScorer::score(CycleState& cycle, const SchedulingRequest& req,
                                             std::span<const EndpointState* const> endpoints) {
  int block_tokens = block_size_tokens_;
  if (auto_tune_) {
    int64_t reported = 0;
    for (const auto* ep : endpoints) {
      int64_t b = ep->metrics.block_size;
      if (b > 0 && (reported == 0 || b < reported)) reported = b;
    }
    if (reported > 0) block_tokens = static_cast<int>(reported);
  }
  if (cycle.prefix_hashes.empty() || cycle.prefix_block_size_tokens != block_tokens) {
    std::size_t block_chars = hash_block_chars_ > 0 ? static_cast<std::size_t>(hash_block_chars_)
                                                    : static_cast<std::size_t>(block_tokens) * 4;
    std::size_t max_blocks = static_cast<std::size_t>(max_blocks_);
    if (max_tokens_ > 0) max_blocks = (max_tokens_ + block_tokens - 1) / block_tokens;
    cycle.prefix_hashes =
        chained_prefix_hashes(req.model, req.cache_salt, req.prompt_text, block_chars, max_blocks);
    cycle.prefix_block_size_tokens = block_tokens;
  }
  const auto hits = index_.match(cycle.prefix_hashes);
  const int total = static_cast<int>(cycle.prefix_hashes.size());
  cycle.prefix_info_present = true;
  std::vector<double> scores;
  scores.reserve(endpoints.size());
  for (const auto* ep : endpoints) {
    auto it = hits.find(ep->address);
    int matched = it == hits.end() ? 0 : it->second;
    cycle.prefix_matches[ep->address] = PrefixMatchInfo{matched, total, block_tokens};
    cycle.prefix_lru_capacity[ep->address] =
        auto_tune_ && ep->metrics.num_gpu_blocks > 0
            ? static_cast<std::size_t>(ep->metrics.num_gpu_blocks)
            : lru_capacity_;
    scores.push_back(total == 0 ? 0.0 : static_cast<double>(matched) / total);
  }
  return scores;
}

void PrefixCacheScorer::pre_request(const SchedulingRequest& /*req*/,
                                    const SchedulingResult& result, const CycleState& cycle) {
  if (cycle.prefix_hashes.empty()) return;
  for (const auto& [profile, run] : result.profile_results) {
    if (!run || run->targets.empty()) continue;
    const std::string& target = run->targets.front();
    auto cap = cycle.prefix_lru_capacity.find(target);
    index_.add(target, cycle.prefix_hashes,
               cap == cycle.prefix_lru_capacity.end() ? lru_capacity_ : cap->second);
  }
}

void PrefixCacheScorer::endpoint_removed(const std::string& address) {
  index_.remove_endpoint(address);
}

}  // namespace moeserve::router
