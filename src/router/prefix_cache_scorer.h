// prefix-cache-scorer (llm-d, approximate): scores each endpoint by the fraction of the
// request's chained character-block hashes it is believed to hold, matchBlocks / totalBlocks
// (0 without information). Updates its index in pre_request with the endpoints chosen by every
// profile. Parameters: blockSizeTokens (16; block = 4 characters per token), hashBlockSize
// (legacy GIE, in characters), maxPrefixBlocksToMatch (256), maxPrefixTokensToMatch (overrides),
// lruCapacityPerServer (31250), autoTune (true: block size from vllm:cache_config_info
// block_size and LRU capacity from num_gpu_blocks when endpoints report them).
// Thread-safe.
#pragma once

#include <memory>

#include "router/approx_prefix_index.h"
#include "router/plugin.h"
#include "router/plugin_params.h"

namespace moeserve::router {

class PrefixCacheScorer final : public Scorer {
 public:
  static constexpr char kType[] = "prefix-cache-scorer";
  static StatusOr<std::unique_ptr<Plugin>> create(const PluginParams& params, std::string name);

  std::string_view type() const override { return kType; }
  std::vector<double> score(CycleState& cycle, const SchedulingRequest& req,
                            std::span<const EndpointState* const> endpoints) override;
  void pre_request(const SchedulingRequest& req, const SchedulingResult& result,
                   const CycleState& cycle) override;
  void endpoint_removed(const std::string& address) override;

  const ApproxPrefixIndex& index() const { return index_; }

 private:
  explicit PrefixCacheScorer(std::string name) : Scorer(std::move(name)) {}

  int block_size_tokens_ = 16;
  int hash_block_chars_ = 0;  // legacy override, 0 = unset
  int max_blocks_ = 256;
  int max_tokens_ = 0;
  std::size_t lru_capacity_ = 31250;
  bool auto_tune_ = true;
  ApproxPrefixIndex index_;
};

}  // namespace moeserve::router
