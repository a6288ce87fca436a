#include "server/serve_command.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "CLI/CLI.hpp"
#include "core/human_size.h"
#include "core/logging.h"
#include "moe/ep_backend.h"
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

// How long a rank whose engine stopped (a peer failed or left) keeps answering /health with
// 503 and flushing its in-flight requests' errors before it exits.
constexpr auto kDeadEngineGrace = std::chrono::seconds(2);

}  // namespace

Status ServeCommand::validate_data_parallel() const {
  if (data_parallel.headless && !data_parallel_mode()) {
    return absl::InvalidArgumentError("--headless needs --data-parallel-size of 2 or more");
  }
  if (!data_parallel_mode()) return absl::OkStatus();
  if (!enable_expert_parallel) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--data-parallel-size %d needs --enable-expert-parallel (data-parallel ranks here share "
        "the MoE layers' experts; for independent replicas run several `moeserve serve` behind "
        "`moeserve route`)",
        data_parallel.size));
  }
  if (data_parallel.local_size() == 0) {
    return absl::InvalidArgumentError(
        "--data-parallel-size-local 0 is not supported: every host runs at least one rank (an "
        "API-only host can run `moeserve route` over the ranks' ports instead)");
  }
  if (options.port == 0) {
    return absl::InvalidArgumentError(
        "--port 0 cannot be used with --data-parallel-size: rank r serves on --port + 1 + r");
  }
  if (options.port + data_parallel.size > 65535) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--port %d + 1 + rank exceeds 65535 for --data-parallel-size %d; choose a lower --port",
        options.port, data_parallel.size));
  }
  return absl::OkStatus();
}

std::optional<ServeCommand> parse_serve_command(int argc, char** argv, int* exit_code) {
  CLI::App app{"Serve a model over the OpenAI-compatible HTTP API (vLLM's `vllm serve`)",
               "moeserve serve"};
  ServeCommand cmd;
  server::ServeOptions& o = cmd.options;
  DataParallelConfig& dp = cmd.data_parallel;
  std::string model, max_model_len, max_batched = "2048", kv_memory, override_gen, log_level;
  std::optional<int64_t> max_waiting;
  bool prefix_on = false, prefix_off = false;
  int64_t seed = -1;
  app.add_option(
      "MODEL", model,
      std::string("Hugging Face checkpoint directory (default ") + kDefaultServeModel + ")");
  app.add_option("--host", o.host, "address to listen on (default 127.0.0.1; 0.0.0.0 for all)");
  app.add_option(
      "--port", o.port,
      "port (default 8000); with --data-parallel-size N the front port, and data-parallel "
      "rank r serves on port + 1 + r");
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
  app.add_option("--kv-cache-memory-bytes,--kv-cache-memory", kv_memory,
                 "KV cache size in bytes (vLLM's flag; also 4GiB, 512MiB; default a quarter of "
                 "free memory, at most 4 GiB)");
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
  app.add_option("--max-logprobs", o.max_logprobs,
                 "most logprobs / top_logprobs a request may ask for (default 20; -1: the whole "
                 "vocabulary)")
      ->check(CLI::Range(-1, 1 << 30));
  app.add_option("--http-threads", o.http_threads, "HTTP I/O threads (default 2)")
      ->check(CLI::Range(1, 64));
  app.add_option("--log-level,--uvicorn-log-level", log_level,
                 "trace | debug | info | warning | error | critical");
  app.add_option("--data-parallel-size", dp.size,
                 "data-parallel ranks in all (rank processes; with --enable-expert-parallel each "
                 "holds 1/N of the routed experts)")
      ->check(CLI::Range(1, 4096));
  app.add_option("--data-parallel-size-local", dp.size_local,
                 "data-parallel ranks on this host (default: all from the start rank)")
      ->check(CLI::Range(0, 4096));
  app.add_option("--data-parallel-start-rank", dp.start_rank,
                 "global rank of this host's first data-parallel rank (default 0)")
      ->check(CLI::Range(0, 4095));
  app.add_flag("--headless", dp.headless,
               "secondary host: run only this host's ranks (each on its own port), no front port");
  app.add_option("--data-parallel-address", dp.address,
                 "address of the host with rank 0 (default 127.0.0.1)");
  app.add_option("--data-parallel-rpc-port", dp.rpc_port,
                 "TCP port for the ranks' rendezvous on the rank-0 host (default 29550)");
  app.add_flag("--enable-expert-parallel", cmd.enable_expert_parallel,
               "shard the routed experts over the data-parallel ranks (contiguous placement)");
  std::string all2all_backend = "auto";
  app.add_option("--all2all-backend", all2all_backend,
                 "expert-parallel dispatch/combine: auto (default) | allgather_reducescatter | "
                 "all2all_ht | all2all_ll | deepep_high_throughput | deepep_low_latency "
                 "(or env VLLM_ALL2ALL_BACKEND)")
      ->envname("VLLM_ALL2ALL_BACKEND");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    *exit_code = app.exit(e);
    return std::nullopt;
  }
  auto fail = [&](const std::string& message) -> std::optional<ServeCommand> {
    std::fprintf(stderr, "moeserve serve: %s\n", message.c_str());
    *exit_code = 2;
    return std::nullopt;
  };

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
    if (!v.ok()) return fail("--kv-cache-memory-bytes: " + std::string(v.status().message()));
    if (*v < 1) return fail("--kv-cache-memory-bytes must be positive");
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

  if (cmd.data_parallel_mode() || dp.headless || dp.start_rank > 0 || dp.size_local >= 0) {
    if (Status st = dp.validate(); !st.ok()) return fail(std::string(st.message()));
    if (Status st = cmd.validate_data_parallel(); !st.ok()) return fail(std::string(st.message()));
    // Parsed here once; only data-parallel ranks use it.
    auto backend = parse_all2all_backend(all2all_backend);
    if (!backend.ok()) return fail("--all2all-backend: " + std::string(backend.status().message()));
    o.all2all_backend = *backend;
  }
  if (const char* env = std::getenv("MOESERVE_THREADS_PER_RANK"); env != nullptr && *env) {
    const int n = std::atoi(env);
    if (n < 1 || n > 4096) return fail("MOESERVE_THREADS_PER_RANK must be a positive integer");
    cmd.threads_per_rank = n;
  }
  return cmd;
}

int run_single_server(const server::ServeOptions& o) {
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

int run_data_parallel_rank(const ServeCommand& command, int rank, int ready_fd) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  auto close_ready = [&] {
    if (ready_fd >= 0) ::close(ready_fd);
    ready_fd = -1;
  };

  const DataParallelConfig& dp = command.data_parallel;
  MS_LOG_INFO("joining the data-parallel group ({} ranks, rendezvous at {}:{})", dp.size,
              dp.address, dp.rpc_port);
  // Declared before the server: the engine drives the group until the server is gone.
  auto group = ProcessGroup::create(dp.group_options(rank));
  if (!group.ok()) {
    MS_LOG_ERROR("cannot join the data-parallel group: {}", std::string(group.status().message()));
    close_ready();
    return 1;
  }
  server::ServeOptions o = command.options;
  o.port = static_cast<uint16_t>(command.rank_port(rank));
  o.ep_group = group->get();
  auto started = server::ServerApp::start(o);
  if (!started.ok()) {
    MS_LOG_ERROR("{}", std::string(started.status().message()));
    close_ready();
    return 1;
  }
  std::unique_ptr<server::ServerApp> server = std::move(*started);
  MS_LOG_INFO("data-parallel rank {} of {}: API server listening on http://{}:{}", rank, dp.size,
              o.host, server->port());
  if (ready_fd >= 0) {
    const char byte = 1;
    if (::write(ready_fd, &byte, 1) != 1) MS_LOG_WARN("could not report readiness");
  }
  close_ready();

  const timespec poll{0, 200 * 1000 * 1000};
  while (true) {
    const int sig = sigtimedwait(&signals, nullptr, &poll);
    if (sig == SIGINT || sig == SIGTERM) {
      MS_LOG_INFO("received {}: draining in-flight requests", sig == SIGINT ? "SIGINT" : "SIGTERM");
      server->shutdown(/*drain=*/true);
      MS_LOG_INFO("rank {} stopped", rank);
      return 0;
    }
    if (!server->engine().healthy()) break;
  }
  MS_LOG_ERROR(
      "data-parallel rank {}: the engine stopped because another rank failed or left; "
      "exiting so that the group can be restarted",
      rank);
  const auto until = std::chrono::steady_clock::now() + kDeadEngineGrace;
  while (std::chrono::steady_clock::now() < until) {
    const int sig = sigtimedwait(&signals, nullptr, &poll);
    if (sig == SIGINT || sig == SIGTERM) break;
  }
  server->shutdown(/*drain=*/false);
  return 3;
}

}  // namespace moeserve
