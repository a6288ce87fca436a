// The whole `moeserve serve` stack in one object: model + tokenizer loading, the engine, the
// metrics, the OpenAI service and the HTTP server, started in that order and stopped in
// reverse (tests run it in-process on an ephemeral port).
//
// Thread-safety: start() and shutdown() from one controlling thread; accessors any time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "kv_events/kv_event_publisher.h"
#include "moe/ep_backend.h"
#include "net/http_server.h"
#include "nlohmann/json.hpp"
#include "server/openai_service.h"
#include "server/server_metrics.h"

namespace moeserve {
class ProcessGroup;
}

namespace moeserve::server {

struct ServeOptions {
  std::string model_dir;
  std::string host = "127.0.0.1";
  uint16_t port = 8000;                         // 0: ephemeral
  std::vector<std::string> served_model_names;  // empty: the model path
  std::optional<std::string> api_key;
  int32_t max_model_len = 0;  // 0: the model's max_position_embeddings
  int32_t max_num_seqs = 256;
  int32_t max_num_batched_tokens = 2048;
  int32_t block_size = 16;
  bool enable_prefix_caching = true;
  std::string prefix_caching_hash_algo = "sha256";
  int64_t kv_cache_memory_bytes = 0;  // 0: default_kv_cache_memory()
  int32_t num_kv_blocks = 0;          // > 0 overrides kv_cache_memory_bytes (tests)
  std::string generation_config = "auto";
  nlohmann::json override_generation_config;  // null or an object
  bool enable_prompt_tokens_details = false;
  bool enable_force_include_usage = false;
  int32_t max_waiting_requests = -1;  // -1: 4 * max_num_seqs; 0: unbounded
  int32_t max_logprobs = 20;          // --max-logprobs; -1: the vocabulary
  std::optional<uint64_t> seed;
  std::string kv_events_config;  // vLLM's --kv-events-config JSON; empty: no KV events
  int http_threads = 2;
  net::HttpServerOptions http;  // host/port/num_threads above take precedence
  // Data-parallel rank with expert-parallel MoE (`--data-parallel-size N
  // --enable-expert-parallel`): the rank's group (rank and size come from it). The model is
  // loaded with this rank's share of the experts and the engine steps in lockstep with the
  // other ranks. Null: a single engine with every expert. Not owned; must outlive the app.
  ProcessGroup* ep_group = nullptr;
  All2AllBackend all2all_backend = All2AllBackend::kAuto;  // --all2all-backend
};

// A quarter of the available memory, at most 4 GiB, at least 64 MiB.
int64_t default_kv_cache_memory();

class ServerApp {
 public:
  static StatusOr<std::unique_ptr<ServerApp>> start(const ServeOptions& options);
  ~ServerApp();

  uint16_t port() const { return http_->port(); }
  engine::LlmEngine& engine() { return *engine_; }
  ServerMetrics& metrics() { return *metrics_; }
  net::HttpServer& http() { return *http_; }

  // Stops accepting connections and new requests; with `drain`, waits (at most
  // `drain_timeout_s`) for in-flight requests to finish and their responses to be written;
  // then closes everything. Idempotent.
  void shutdown(bool drain, double drain_timeout_s = 600.0);

 private:
  ServerApp() = default;
  // Declared before the engine: the engine thread publishes into it until the engine is gone.
  std::unique_ptr<kv_events::ZmqKvEventPublisher> kv_events_;
  std::unique_ptr<engine::LlmEngine> engine_;
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<OpenAiService> service_;
  std::unique_ptr<net::HttpServer> http_;
  bool stopped_ = false;
};

}  // namespace moeserve::server
