#include "server/server_app.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>

#include "comm/process_group.h"
#include "core/logging.h"
#include "engine/block_hash.h"
#include "model/deepseek.h"
#include "model/latent_cache.h"
#include "tokenizer/tokenizer.h"

namespace moeserve::server {

int64_t default_kv_cache_memory() {
  constexpr int64_t kMin = int64_t{64} << 20;
  constexpr int64_t kMax = int64_t{4} << 30;
  int64_t available = 0;
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  for (int i = 0; i < 64 && meminfo >> key >> kb >> unit; ++i) {
    if (key == "MemAvailable:") {
      available = kb * 1024;
      break;
    }
  }
  if (available <= 0) return kMin;
  return std::clamp(available / 4, kMin, kMax);
}

StatusOr<std::unique_ptr<ServerApp>> ServerApp::start(const ServeOptions& o) {
  std::unique_ptr<ServerApp> app(new ServerApp());
  ModelLoadOptions load;
  int dp_rank = 0;
  if (o.ep_group != nullptr) {
    dp_rank = o.ep_group->rank();
    ExpertParallelOptions ep;
    ep.group = o.ep_group;
    ep.all2all_backend = o.all2all_backend;
    load.expert_parallel = ep;
    MS_LOG_INFO("loading model from {} (expert parallel: rank {} of {}, --all2all-backend {})",
                o.model_dir, dp_rank, o.ep_group->world_size(),
                all2all_backend_name(o.all2all_backend));
  } else {
    MS_LOG_INFO("loading model from {}", o.model_dir);
  }
  MS_ASSIGN_OR_RETURN(std::unique_ptr<DeepseekModel> model, DeepseekModel::load(o.model_dir, load));
  std::shared_ptr<const Tokenizer> tokenizer;
  auto tok = Tokenizer::load(o.model_dir);
  if (tok.ok()) {
    tokenizer = std::make_shared<Tokenizer>(std::move(*tok));
  } else if (absl::IsNotFound(tok.status())) {
    MS_LOG_WARN("{} has no tokenizer.json: only token-id prompts will be served", o.model_dir);
  } else {
    return tok.status();
  }
  nlohmann::json overrides = o.override_generation_config.is_null() ? nlohmann::json::object()
                                                                    : o.override_generation_config;
  MS_ASSIGN_OR_RETURN(
      engine::GenerationDefaults defaults,
      engine::GenerationDefaults::load(o.generation_config, o.model_dir, overrides));

  engine::EngineConfig ec;
  ec.scheduler.max_model_len = o.max_model_len;
  ec.scheduler.max_num_seqs = o.max_num_seqs;
  ec.scheduler.max_num_batched_tokens = o.max_num_batched_tokens;
  ec.scheduler.max_waiting_requests =
      o.max_waiting_requests < 0 ? 4 * o.max_num_seqs : o.max_waiting_requests;
  ec.cache.block_size = o.block_size;
  ec.cache.enable_prefix_caching = o.enable_prefix_caching;
  MS_ASSIGN_OR_RETURN(ec.cache.hash_algo, engine::parse_hash_algo(o.prefix_caching_hash_algo));
  ec.cache.num_blocks = o.num_kv_blocks;
  ec.kv_cache_memory_bytes = o.kv_cache_memory_bytes;
  if (ec.kv_cache_memory_bytes <= 0) {
    // Default: a share of free memory, but no more than max_num_seqs full-length sequences
    // need (a small model would otherwise zero gigabytes it can never use).
    const ModelConfig& mc = model->config();
    const int64_t len = o.max_model_len > 0 ? o.max_model_len : mc.max_position_embeddings;
    const int64_t per_block =
        LatentCache::bytes_per_block(mc.num_hidden_layers, o.block_size, model->cache_entry_dim());
    const int64_t blocks = int64_t{o.max_num_seqs} * ((len + o.block_size - 1) / o.block_size) + 1;
    ec.kv_cache_memory_bytes = std::min(default_kv_cache_memory(), blocks * per_block);
  }
  ec.sampler_seed = o.seed;
  ec.generation_defaults = std::move(defaults);
  MS_ASSIGN_OR_RETURN(app->kv_events_,
                      kv_events::make_kv_event_publisher(o.kv_events_config, dp_rank));
  MS_ASSIGN_OR_RETURN(app->engine_, engine::LlmEngine::create(ec, std::move(model), tokenizer,
                                                              app->kv_events_.get()));
  const engine::EngineConfig& final_config = app->engine_->config();

  ServiceConfig sc;
  sc.served_model_names = o.served_model_names;
  if (sc.served_model_names.empty()) sc.served_model_names.push_back(o.model_dir);
  sc.model_root = o.model_dir;
  sc.api_key = o.api_key;
  sc.enable_prompt_tokens_details = o.enable_prompt_tokens_details;
  sc.enable_force_include_usage = o.enable_force_include_usage;
  sc.max_logprobs = o.max_logprobs;
  sc.json_limits.max_bytes = o.http.body_limit;

  CacheConfigInfo cache;
  cache.block_size = final_config.cache.block_size;
  cache.num_gpu_blocks = final_config.cache.num_blocks - 1;
  cache.enable_prefix_caching = final_config.cache.enable_prefix_caching;
  cache.prefix_caching_hash_algo =
      std::string(engine::hash_algo_name(final_config.cache.hash_algo));
  cache.kv_cache_memory_bytes = final_config.kv_cache_memory_bytes;
  app->metrics_ = std::make_unique<ServerMetrics>(sc.served_model_names.front(),
                                                  app->engine_->max_model_len(), cache, dp_rank);
  MS_ASSIGN_OR_RETURN(
      app->service_, OpenAiService::create(sc, app->engine_.get(), tokenizer, app->metrics_.get()));
  net::HttpServerOptions ho = o.http;
  ho.host = o.host;
  ho.port = o.port;
  ho.num_threads = o.http_threads;
  MS_ASSIGN_OR_RETURN(app->http_, net::HttpServer::start(ho, app->service_.get()));
  return app;
}

void ServerApp::shutdown(bool drain, double drain_timeout_s) {
  if (stopped_) return;
  stopped_ = true;
  http_->stop_accepting();
  service_->set_draining(true);
  if (drain) {
    engine_->shutdown(/*drain=*/true);
    // Let the last chunks reach the clients (bounded).
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(static_cast<int64_t>(drain_timeout_s * 1000));
    while (http_->num_active_exchanges() > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  } else {
    engine_->shutdown(/*drain=*/false);
  }
  http_->stop();
}

ServerApp::~ServerApp() {
  if (http_ && engine_) shutdown(/*drain=*/false);
}

}  // namespace moeserve::server
