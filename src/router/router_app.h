// The router, assembled: EndpointPickerConfig → Scheduler (with the router's metrics), the
// endpoint pool (static list or a re-read endpoints file), the /metrics scraper, a KV-event
// feeder for every precise-prefix-cache-scorer that asks for one, the approximate prefix
// indexes' size gauges, and the proxy on net's HTTP server. `moeserve route` and the
// data-parallel front of `moeserve serve` both run the router through this one class; they
// differ only in their options.
//
// Thread-safety: start()/stop()/destructor from one controlling thread. Threads are started
// by start() (the proxy's I/O threads, the scraper's, the feeders'); block the signals the
// process waits for before calling it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "router/config.h"
#include "router/endpoint.h"
#include "router/endpoint_pool.h"
#include "router/kv_event_feeder.h"
#include "router/metrics_scraper.h"
#include "router/proxy_server.h"
#include "router/router_metrics.h"
#include "router/scheduler.h"

namespace moeserve::router {

struct RouterAppOptions {
  EndpointPickerConfig config = default_endpoint_picker_config();
  // The model servers: a fixed list, or (when scraper.endpoints_file is set) the file's.
  std::vector<EndpointSpec> endpoints;
  int failure_threshold = 3;  // consecutive failures before an endpoint is taken out
  ScraperOptions scraper;
  ProxyOptions proxy;
};

class RouterApp final {
 public:
  // Builds every piece and starts them; the proxy listens once this returns.
  static StatusOr<std::unique_ptr<RouterApp>> start(RouterAppOptions options);
  ~RouterApp();  // stop()
  RouterApp(const RouterApp&) = delete;
  RouterApp& operator=(const RouterApp&) = delete;

  uint16_t port() const { return proxy_->port(); }
  EndpointPool& pool() { return pool_; }
  RouterMetrics& metrics() { return metrics_; }
  // Stops the proxy, then the scraper and the KV-event feeders. Idempotent.
  void stop();

 private:
  explicit RouterApp(int failure_threshold) : pool_(failure_threshold) {}

  // Declared in dependency order: the members below use the ones above.
  RouterMetrics metrics_;
  std::unique_ptr<Scheduler> scheduler_;
  EndpointPool pool_;
  std::unique_ptr<MetricsScraper> scraper_;
  std::vector<std::unique_ptr<KvEventFeeder>> feeders_;
  std::unique_ptr<ProxyServer> proxy_;
};

}  // namespace moeserve::router
