// Scrapes every endpoint's GET /metrics (Prometheus text, vLLM metric names) every `interval`
// over HTTP/1.1 and feeds the pool: metrics and health (success) or a failure count. Optionally
// re-reads an endpoints file whenever its modification time changes.
//
// Threading: owns one I/O thread; start()/stop() from one controlling thread. At most one scrape
// per endpoint is in flight; a slow endpoint is skipped until its scrape finishes or times out.
// The pool must outlive the scraper.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "core/status.h"
#include "router/endpoint_pool.h"

namespace moeserve::router {

struct ScraperOptions {
  std::chrono::milliseconds interval{50};
  std::chrono::milliseconds timeout{1000};  // per scrape (connect + request + response)
  std::string endpoints_file;               // empty: endpoints are static
  std::chrono::milliseconds file_poll{500};
};

class MetricsScraper final {
 public:
  MetricsScraper(ScraperOptions options, EndpointPool& pool);
  ~MetricsScraper();
  MetricsScraper(const MetricsScraper&) = delete;
  MetricsScraper& operator=(const MetricsScraper&) = delete;

  // Loads the endpoints file once (error if it cannot be read) and starts the scrape loop.
  Status start();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moeserve::router
