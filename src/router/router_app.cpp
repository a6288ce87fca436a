#include "router/router_app.h"

#include <utility>

#include "core/logging.h"
#include "net/prometheus_text.h"
#include "router/precise_prefix_cache_scorer.h"
#include "router/prefix_cache_scorer.h"

namespace moeserve::router {

StatusOr<std::unique_ptr<RouterApp>> RouterApp::start(RouterAppOptions options) {
  std::unique_ptr<RouterApp> app(new RouterApp(options.failure_threshold));
  MS_ASSIGN_OR_RETURN(app->scheduler_, Scheduler::create(options.config));
  Scheduler* sched = app->scheduler_.get();
  sched->set_metrics(&app->metrics_);
  app->pool_.set_removal_callback([sched](const std::string& a) { sched->endpoint_removed(a); });
  if (!options.endpoints.empty()) app->pool_.set_endpoints(options.endpoints);

  app->scraper_ = std::make_unique<MetricsScraper>(options.scraper, app->pool_);
  MS_RETURN_IF_ERROR(app->scraper_->start());

  // KV events for every precise-prefix-cache-scorer that asks for them (kvEventsConfig).
  for (Plugin* p : sched->plugins_of_type(PrecisePrefixCacheScorer::kType)) {
    auto* scorer = static_cast<PrecisePrefixCacheScorer*>(p);
    if (!scorer->kv_events().enabled) {
      MS_LOG_WARN("plugin '{}': no kvEventsConfig; its index is never fed", scorer->name());
      continue;
    }
    MS_ASSIGN_OR_RETURN(auto feeder,
                        KvEventFeeder::start(scorer->kv_events(), scorer->index(), &app->pool_));
    KvEventFeeder* raw = feeder.get();
    app->metrics_.add_collector(
        [raw](const std::vector<EndpointState>& eps) { return raw->render_metrics(eps); });
    app->feeders_.push_back(std::move(feeder));
  }

  // The approximate prefix indexes' sizes (each bounded by its LRU capacity per endpoint).
  for (Plugin* p : sched->plugins_of_type(PrefixCacheScorer::kType)) {
    const auto* scorer = static_cast<const PrefixCacheScorer*>(p);
    app->metrics_.add_collector([scorer](const std::vector<EndpointState>& eps) {
      const char* name = "moeserve_router_prefix_index_hashes";
      std::string out;
      net::append_family_header(&out, name, "gauge",
                                "Block hashes the approximate prefix index holds per endpoint "
                                "(at most lruCapacityPerServer each).");
      for (const EndpointState& e : eps) {
        net::append_sample(&out, name, {{"plugin", scorer->name()}, {"endpoint", e.address}},
                           static_cast<double>(scorer->index().num_hashes(e.address)));
      }
      return out;
    });
  }

  app->proxy_ =
      std::make_unique<ProxyServer>(std::move(options.proxy), *sched, app->pool_, app->metrics_);
  MS_RETURN_IF_ERROR(app->proxy_->start());
  return app;
}

RouterApp::~RouterApp() {
  stop();
}

void RouterApp::stop() {
  if (proxy_) proxy_->stop();
  if (scraper_) scraper_->stop();
  feeders_.clear();
}

}  // namespace moeserve::router
