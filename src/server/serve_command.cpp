#include "server/serve_command.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "CLI/CLI.hpp"
#include "core/human_size.h"
#include "core/logging.h"
#include "server/server_app.h"

namespace moeserve {
namespace {

namespace fs = std::filesystem;

std::string find_default_model() {
  if (fs::is_directory(kDefaultServeModel)) return kDefaultServeModel;
  std::error_code ec;
  fs::path dir = fs::read_symlink("/proc/self/exe", ec).parent_path();
  for (int up = 0; up < 6 && !ec && !dir.empty(); ++up) {
    const fs::path candidate = dir / kDefaultServeModel;
    if (fs::is_directory(candidate, ec)) return candidate.string();
    if (dir == dir.parent_path()) break;
    dir = dir.parent_path();
  }
  return kDefaultServeModel;
}

int fail(const std::string& message) {
  std::fprintf(stderr, "moeserve serve: %s\n", message.c_str());
  return 2;
}

}  // namespace

int serve_main(int argc, char** argv) {
  CLI::App app{"Serve a model over the OpenAI-compatible HTTP API (vLLM's `vllm serve`)",
               "moeserve serve"};
  server::ServeOptions o;
  std::string model, max_model_len, max_batched = "2048", kv_memory, override_gen, log_level;
  std::optional<int64_t> max_waiting;
  bool prefix_on = false, prefix_off = false;
  int64_t seed = -1;
  app.add_option(
      "MODEL", model,
      std::string("Hugging Face checkpoint directory (default ") + kDefaultServeModel + ")");
  app.add_option("--host", o.host, "address to listen on (default 127.0.0.1; 0.0.0.0 for all)");
  app.add_option("--port", o.port, "port (default 8000)");
  app.add_option("--served-model-name", o.served_model_names,
                 "model name(s) in the API; the first is used in responses and metrics")
      ->expected(1, -1);
  app.add_option("--kv-events-config", o.kv_events_config,
                 "vLLM's KV-event publisher JSON, e.g. "
                 "'{\"enable_kv_cache_events\":true,\"publisher\":\"zmq\","
                 "\"endpoint\":\"tcp://*:5557\",\"topic\":\"kv@host:port@model\"}'");
  app.add_option("--api-key", o.api_key,
                 "require `Authorization: Bearer KEY` on /v1 (or VLLM_API_KEY)");
  app.add_option("--max-model-len", max_model_len,
                 "context length: prompt + output (1k, 1K, 25.6k)");
  app.add_option("--max-num-seqs", o.max_num_seqs, "requests running at once (default 256)")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--max-num-batched-tokens", max_batched, "token budget per step (default 2048)");
  app.add_option("--block-size", o.block_size, "KV block size in tokens (default 16)")
      ->check(CLI::Range(1, 1 << 16));
  app.add_flag("--enable-prefix-caching", prefix_on, "reuse cached prompt blocks (default)");
  app.add_flag("--no-enable-prefix-caching", prefix_off, "disable prefix caching");
  app.add_option("--prefix-caching-hash-algo", o.prefix_caching_hash_algo,
                 "sha256 | sha256_cbor | xxhash | xxhash_cbor");
  app.add_option("--kv-cache-memory", kv_memory,
                 "KV cache size (e.g. 4GiB; default a quarter of free memory, at most 4 GiB)");
  app.add_option("--num-gpu-blocks-override", o.num_kv_blocks, "KV blocks, overriding the size");
  app.add_option("--generation-config", o.generation_config, "auto | vllm | FOLDER");
  app.add_option("--override-generation-config", override_gen,
                 "JSON merged over generation_config");
  app.add_flag("--enable-prompt-tokens-details", o.enable_prompt_tokens_details,
               "report usage.prompt_tokens_details.cached_tokens");
  app.add_flag("--enable-force-include-usage", o.enable_force_include_usage,
               "send a usage chunk at the end of every stream");
  app.add_option("--max-waiting-requests", max_waiting,
                 "queue bound; beyond it requests get 503 (default 4 x max-num-seqs, 0 = none)");
  app.add_option("--seed", seed, "seed of the shared sampling source");
  app.add_option("--http-threads", o.http_threads, "HTTP I/O threads (default 2)")
      ->check(CLI::Range(1, 64));
  app.add_option("--log-level,--uvicorn-log-level", log_level,
                 "trace | debug | info | warning | error | critical");
  CLI11_PARSE(app, argc, argv);

  if (!log_level.empty()) {
    if (log_level == "warning") log_level = "warn";
    if (log_level == "critical") log_level = "error";
    set_log_level(log_level);
  }
  o.model_dir = model.empty() ? find_default_model() : model;
  if (!o.api_key) {
    if (const char* env = std::getenv("VLLM_API_KEY"); env != nullptr && *env) o.api_key = env;
  }
  if (prefix_on && prefix_off) {
    return fail("--enable-prefix-caching and --no-enable-prefix-caching contradict each other");
  }
  o.enable_prefix_caching = !prefix_off;
  if (!max_model_len.empty()) {
    auto v = parse_human_int(max_model_len);
    if (!v.ok()) return fail("--max-model-len: " + std::string(v.status().message()));
    if (*v < 1 || *v > (int64_t{1} << 30)) return fail("--max-model-len is out of range");
    o.max_model_len = static_cast<int32_t>(*v);
  }
  {
    auto v = parse_human_int(max_batched);
    if (!v.ok()) return fail("--max-num-batched-tokens: " + std::string(v.status().message()));
    if (*v < 1 || *v > (int64_t{1} << 30)) return fail("--max-num-batched-tokens is out of range");
    o.max_num_batched_tokens = static_cast<int32_t>(*v);
  }
  if (!kv_memory.empty()) {
    auto v = parse_memory_size(kv_memory);
    if (!v.ok()) return fail("--kv-cache-memory: " + std::string(v.status().message()));
    if (*v < 1) return fail("--kv-cache-memory must be positive");
    o.kv_cache_memory_bytes = *v;
  }
  if (!override_gen.empty()) {
    o.override_generation_config = nlohmann::json::parse(override_gen, nullptr, false);
    if (o.override_generation_config.is_discarded() || !o.override_generation_config.is_object()) {
      return fail("--override-generation-config must be a JSON object");
    }
  }
  if (max_waiting) {
    if (*max_waiting < 0 || *max_waiting > (int64_t{1} << 30)) {
      return fail("--max-waiting-requests is out of range");
    }
    o.max_waiting_requests = static_cast<int32_t>(*max_waiting);
  }
  if (seed >= 0) o.seed = static_cast<uint64_t>(seed);

  // Signals are taken synchronously by this thread; every thread started below inherits the
  // blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto started = server::ServerApp::start(o);
  if (!started.ok()) {
    std::fprintf(stderr, "moeserve serve: %s\n", std::string(started.status().message()).c_str());
    return 1;
  }
  std::unique_ptr<server::ServerApp> server = std::move(*started);
  MS_LOG_INFO("moeserve API server listening on http://{}:{}", o.host, server->port());
  int sig = 0;
  sigwait(&signals, &sig);
  MS_LOG_INFO("received {}: draining in-flight requests", sig == SIGINT ? "SIGINT" : "SIGTERM");
  server->shutdown(/*drain=*/true);
  MS_LOG_INFO("server stopped");
  return 0;
}

}  // namespace moeserve
