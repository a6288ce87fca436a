#include "router/precise_prefix_cache_scorer.h"

#include <algorithm>

namespace moeserve::router {
namespace {

// The token processor's parameters, wherever the config puts them (later places win).
Status read_token_processor(const PluginParams& params, int64_t* block_size, std::string* seed) {
  auto read = [&](const PluginParams& p) -> Status {
    MS_ASSIGN_OR_RETURN(*block_size, p.get_int("blockSize", *block_size, 1, 1 << 20));
    MS_ASSIGN_OR_RETURN(*seed, p.get_string("hashSeed", *seed));
    return absl::OkStatus();
  };
  MS_RETURN_IF_ERROR(read(params));
  const nlohmann::json& raw = params.raw();
  if (!raw.is_object()) return absl::OkStatus();
  if (raw.contains("indexerConfig") && raw["indexerConfig"].is_object() &&
      raw["indexerConfig"].contains("tokenProcessorConfig")) {
    MS_RETURN_IF_ERROR(read(PluginParams("precise-prefix-cache-scorer.indexerConfig",
                                         PrecisePrefixCacheScorer::kType,
                                         raw["indexerConfig"]["tokenProcessorConfig"])));
  }
  if (raw.contains("tokenProcessorConfig")) {
    MS_RETURN_IF_ERROR(
        read(PluginParams("precise-prefix-cache-scorer.tokenProcessorConfig",
                          PrecisePrefixCacheScorer::kType, raw["tokenProcessorConfig"])));
  }
  return absl::OkStatus();
}

StatusOr<KvEventsSettings> read_kv_events(const PluginParams& params) {
  KvEventsSettings s;
  const nlohmann::json& raw = params.raw();
  if (!raw.is_object() || !raw.contains("kvEventsConfig")) return s;
  if (!raw["kvEventsConfig"].is_null() && !raw["kvEventsConfig"].is_object()) {
    return params.error("kvEventsConfig", "must be a mapping");
  }
  s.enabled = true;
  const PluginParams kv(
      "precise-prefix-cache-scorer.kvEventsConfig", PrecisePrefixCacheScorer::kType,
      raw["kvEventsConfig"].is_null() ? nlohmann::json::object() : raw["kvEventsConfig"]);
  MS_RETURN_IF_ERROR(kv.check_known({"zmqEndpoint", "topicFilter", "concurrency", "discoverPods",
                                     "podDiscoveryConfig", "replayTimeoutMs"}));
  MS_ASSIGN_OR_RETURN(s.zmq_endpoint, kv.get_string("zmqEndpoint", s.zmq_endpoint));
  MS_ASSIGN_OR_RETURN(s.topic_filter, kv.get_string("topicFilter", s.topic_filter));
  MS_ASSIGN_OR_RETURN(s.discover_pods, kv.get_bool("discoverPods", false));
  MS_ASSIGN_OR_RETURN(int64_t timeout_ms, kv.get_int("replayTimeoutMs", 1000, 1, 600000));
  s.replay_timeout = std::chrono::milliseconds(timeout_ms);
  if (kv.raw().contains("podDiscoveryConfig")) {
    const PluginParams pd("precise-prefix-cache-scorer.kvEventsConfig.podDiscoveryConfig",
                          PrecisePrefixCacheScorer::kType, kv.raw()["podDiscoveryConfig"]);
    MS_RETURN_IF_ERROR(pd.check_known({"socketPort", "replayPort"}));
    MS_ASSIGN_OR_RETURN(int64_t port, pd.get_int("socketPort", s.socket_port, 1, 65535));
    MS_ASSIGN_OR_RETURN(int64_t replay, pd.get_int("replayPort", 0, 0, 65535));
    s.socket_port = static_cast<int>(port);
    s.replay_port = static_cast<int>(replay);
  }
  if (!s.discover_pods && s.zmq_endpoint.empty()) {
    return kv.error("zmqEndpoint", "is empty (and discoverPods is false)");
  }
  return s;
}

}  // namespace

StatusOr<std::unique_ptr<Plugin>> PrecisePrefixCacheScorer::create(
    const PluginParams& params, std::string name, std::shared_ptr<KvEventIndex> index) {
  MS_RETURN_IF_ERROR(params.check_known({"blockSize", "hashSeed", "indexerConfig", "kvEventsConfig",
                                         "tokenProcessorConfig", "tokenizer"}));
  int64_t block_size = 16;
  std::string seed;
  MS_RETURN_IF_ERROR(read_token_processor(params, &block_size, &seed));
  MS_ASSIGN_OR_RETURN(KvEventsSettings kv_events, read_kv_events(params));
  MS_ASSIGN_OR_RETURN(std::string tokenizer, params.get_string("tokenizer", "endpoint"));
  if (tokenizer != "endpoint" && tokenizer != "none") {
    return params.error("tokenizer",
                        absl::StrCat("must be \"endpoint\" or \"none\", got \"", tokenizer, "\""));
  }
  if (!index) {
    index = std::make_shared<InMemoryKvEventIndex>(
        TokenBlockHasher(static_cast<int>(block_size), seed));
  } else if (index->hasher().block_size() != block_size) {
    return params.error("blockSize",
                        absl::StrCat("(", block_size, ") differs from the KV-event index's (",
                                     index->hasher().block_size(), ")"));
  }
  auto scorer = std::unique_ptr<PrecisePrefixCacheScorer>(
      new PrecisePrefixCacheScorer(std::move(name), std::move(index)));
  scorer->kv_events_ = std::move(kv_events);
  scorer->tokenize_with_endpoint_ = tokenizer == "endpoint";
  return std::unique_ptr<Plugin>(std::move(scorer));
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
