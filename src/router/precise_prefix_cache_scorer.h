// precise-prefix-cache-scorer (llm-d with llm-d-kv-cache): scores each endpoint by the
// tier-weighted count of consecutive KV-block hits from block 0, divided by the request's number
// of full blocks, capped at 1; the index is fed by KV events (kv_event_index.h).
//
// Tokens: llm-d tokenizes with the engine's tokenizer. This router stays out of model code, so it
// uses the request's token ids when the completion `prompt` is a list of token ids, and scores 0
// everywhere otherwise (text prompts and chat requests). Parameters: blockSize (tokens, 16) and
// hashSeed ("") configure the shared index's hasher and must match how it was built.
// Thread-safe.
#pragma once

#include <memory>

#include "router/kv_event_index.h"
#include "router/plugin.h"
#include "router/plugin_params.h"

namespace moeserve::router {

class PrecisePrefixCacheScorer final : public Scorer {
 public:
  static constexpr char kType[] = "precise-prefix-cache-scorer";
  // `index` may be null: the scorer then creates its own (reachable through index()).
  static StatusOr<std::unique_ptr<Plugin>> create(const PluginParams& params, std::string name,
                                                  std::shared_ptr<KvEventIndex> index);

  std::string_view type() const override { return kType; }
  std::vector<double> score(CycleState& cycle, const SchedulingRequest& req,
                            std::span<const EndpointState* const> endpoints) override;
  void endpoint_removed(const std::string& address) override { index_->remove_endpoint(address); }

  const std::shared_ptr<KvEventIndex>& index() const { return index_; }

 private:
  PrecisePrefixCacheScorer(std::string name, std::shared_ptr<KvEventIndex> index)
      : Scorer(std::move(name)), index_(std::move(index)) {}

  std::shared_ptr<KvEventIndex> index_;
};

}  // namespace moeserve::router
