#include "router/precise_prefix_cache_scorer.h"

#include <algorithm>

namespace moeserve::router {

StatusOr<std::unique_ptr<Plugin>> PrecisePrefixCacheScorer::create(
    const PluginParams& params, std::string name, std::shared_ptr<KvEventIndex> index) {
  MS_RETURN_IF_ERROR(params.check_known(
      {"blockSize", "hashSeed", "indexerConfig", "kvEventsConfig", "tokenProcessorConfig"}));
  MS_ASSIGN_OR_RETURN(int64_t block_size, params.get_int("blockSize", 16, 1, 1 << 20));
  MS_ASSIGN_OR_RETURN(std::string seed, params.get_string("hashSeed", ""));
  if (!index) {
    index = std::make_shared<InMemoryKvEventIndex>(
        TokenBlockHasher(static_cast<int>(block_size), seed));
  } else if (index->hasher().block_size() != block_size) {
    return params.error("blockSize",
                        absl::StrCat("(", block_size, ") differs from the KV-event index's (",
                                     index->hasher().block_size(), ")"));
  }
  return std::unique_ptr<Plugin>(new PrecisePrefixCacheScorer(std::move(name), std::move(index)));
}

std::vector<double> PrecisePrefixCacheScorer::score(
    CycleState& /*cycle*/, const SchedulingRequest& req,
    std::span<const EndpointState* const> endpoints) {
  std::vector<double> scores(endpoints.size(), 0.0);
  if (!req.prompt_tokens) return scores;
  const TokenBlockHasher& hasher = index_->hasher();
  std::vector<uint64_t> keys = hasher.keys(hasher.root(req.model), *req.prompt_tokens);
  if (keys.empty()) return scores;
  auto hits = index_->longest_prefix(keys);
  for (std::size_t i = 0; i < endpoints.size(); ++i) {
    auto it = hits.find(endpoints[i]->address);
    if (it == hits.end()) continue;
    scores[i] = std::min(1.0, it->second / static_cast<double>(keys.size()));
  }
  return scores;
}

}  // namespace moeserve::router
