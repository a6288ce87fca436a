// The router's HTTP front: a handler on net's HTTP server (net/http_server.h, a few I/O
// threads) that schedules each POST /v1/completions and /v1/chat/completions with the Scheduler
// and streams the chosen endpoint's response back as it arrives (SSE/chunked pass-through, no
// buffering; the next upstream bytes are read once the client has taken the previous ones).
// Upstream calls go through net's HTTP client (net/http_client.h). Also GET /v1/models (from
// any healthy endpoint), GET /health and GET /metrics (and, as the data-parallel front,
// /tokenize, /detokenize, /version; see ProxyOptions). Request bodies enter through the bounded
// JSON intake (net/json_intake.h): 413 past max_body_bytes, 400 for JSON nested or sized past
// the limits; headers past 8 KiB get 431. A client has 300 s to send a request and may hold an
// idle keep-alive connection as long; connections are not capped (beyond the open-file limit).
//
//  - Retries on another endpoint when the connection to the chosen one fails before any byte
//    reached the client (connect refused, reset before the response header, or closed after
//    the header but before the first body byte: the header is held until that byte arrives).
//  - P/D: when the result has a prefill target, first sends the prefiller the request with
//    max_tokens = max_completion_tokens = 1, stream false, no stream_options and
//    kv_transfer_params {do_remote_decode: true, ...null}; then the original request goes to the
//    decoder with the prefiller's kv_transfer_params. On prefill failure the decoder runs alone.
//  - Counts in-flight requests per endpoint in the pool (active-request-scorer) and calls the
//    scheduler's pre_request (prefix index update) for every decision.
//
// Thread-safety: start()/stop() from one controlling thread. Scheduler, pool and metrics must
// outlive the server.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/status.h"
#include "router/endpoint_pool.h"
#include "router/router_metrics.h"
#include "router/scheduler.h"

namespace moeserve::router {

struct ProxyOptions {
  std::string host = "0.0.0.0";
  uint16_t port = 8080;  // 0: ephemeral (see ProxyServer::port())
  int num_threads = 4;
  int max_attempts = 3;  // endpoints tried per request when connections fail
  std::chrono::milliseconds connect_timeout{3000};
  std::chrono::seconds upstream_idle_timeout{600};  // max wait for the next upstream bytes
  std::size_t max_body_bytes = 64u << 20;           // larger request bodies get 413
  // Request bodies are parsed through the bounded JSON intake with these limits (max_bytes is
  // max_body_bytes): a body nested or sized past them gets 400/413 before anything recursive
  // touches it.
  int max_json_depth = 128;
  std::size_t max_json_values = std::size_t{1} << 22;
  // The data-parallel front: POST /tokenize and /detokenize and GET /version go to one healthy
  // endpoint (round robin), and GET /metrics adds every endpoint's vllm:* series (their `engine`
  // labels tell the ranks apart) after the router's own, so that the front speaks the API a
  // single `moeserve serve` does.
  bool forward_engine_routes = false;
  // GET /health answers 200 when this returns true (or is unset), else 503. Called on I/O
  // threads; must be thread-safe and quick.
  std::function<bool()> health;
};

class ProxyServer final {
 public:
  ProxyServer(ProxyOptions options, const Scheduler& scheduler, EndpointPool& pool,
              RouterMetrics& metrics);
  ~ProxyServer();
  ProxyServer(const ProxyServer&) = delete;
  ProxyServer& operator=(const ProxyServer&) = delete;

  // Raises RLIMIT_NOFILE to its hard limit, binds, listens and starts the I/O threads.
  Status start();
  uint16_t port() const;
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit.
uint64_t raise_open_file_limit();

}  // namespace moeserve::router
