// precise-prefix-cache-scorer (llm-d with llm-d-kv-cache): scores each endpoint by the
// tier-weighted count of consecutive KV-block hits from block 0, divided by the request's number
// of full blocks, capped at 1; the index is fed by the engines' KV events (kv_event_index.h,
// kv_event_feeder.h).
//
// Parameters (llm-d names; the token processor's may sit at the top level, under
// `tokenProcessorConfig` or under `indexerConfig.tokenProcessorConfig`):
//   blockSize (16)            tokens per KV block; must equal the engines' --block-size
//   hashSeed ("")             llm-d-kv-cache's request-key seed (any string; both sides of the
//                             index use it, so it need not match the engines' hash seed)
//   kvEventsConfig            absent: no subscriber (the index is fed only through apply()).
//     zmqEndpoint ("tcp://*:5557")  central collector: bound when it contains '*', engines
//                             publish to it; connected to otherwise. Ignored with discoverPods.
//     topicFilter ("kv@")     ZMQ subscription prefix
//     discoverPods (false)    connect to every endpoint in the pool instead, at
//     podDiscoveryConfig.socketPort (5556) on the endpoint's host
//     podDiscoveryConfig.replayPort (0: none)   moeserve extension: the engines'
//                             replay_endpoint port, used to resync after a gap or a restart
//     replayTimeoutMs (1000)  moeserve extension
//   tokenizer ("endpoint")    moeserve extension. "endpoint": text and chat prompts are
//                             tokenized by POST /tokenize on a healthy endpoint (llm-d's
//                             render-service role; the engine applies its own chat template);
//                             "none": only completion prompts given as token ids are scored.
// Per-endpoint overrides of the discovered addresses: endpoint labels `moeserve.ai/kv-events`
// and `moeserve.ai/kv-events-replay` (full ZMQ addresses).
// Thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "router/kv_event_index.h"
#include "router/plugin.h"
#include "router/plugin_params.h"

namespace moeserve::router {

inline constexpr char kKvEventsLabel[] = "moeserve.ai/kv-events";
inline constexpr char kKvEventsReplayLabel[] = "moeserve.ai/kv-events-replay";

// kvEventsConfig of precise-prefix-cache-scorer.
struct KvEventsSettings {
  bool enabled = false;  // kvEventsConfig was given
  std::string zmq_endpoint = "tcp://*:5557";
  std::string topic_filter = "kv@";
  bool discover_pods = false;
  int socket_port = 5556;
  int replay_port = 0;
  std::chrono::milliseconds replay_timeout{1000};
};

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
  const KvEventsSettings& kv_events() const { return kv_events_; }
  // Whether the proxy should tokenize text/chat prompts through an endpoint for this scorer.
  bool tokenize_with_endpoint() const { return tokenize_with_endpoint_; }

 private:
  PrecisePrefixCacheScorer(std::string name, std::shared_ptr<KvEventIndex> index)
      : Scorer(std::move(name)), index_(std::move(index)) {}

  std::shared_ptr<KvEventIndex> index_;
  KvEventsSettings kv_events_;
  bool tokenize_with_endpoint_ = true;
};

}  // namespace moeserve::router
