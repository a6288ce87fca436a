#include "router/route_command.h"

#include <csignal>
#include <cstdio>
#include <memory>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "core/logging.h"
#include "router/config.h"
#include "router/endpoint_pool.h"
#include "router/kv_event_feeder.h"
#include "router/metrics_scraper.h"
#include "router/precise_prefix_cache_scorer.h"
#include "router/prefix_cache_scorer.h"
#include "router/proxy_server.h"
#include "router/router_metrics.h"
#include "router/scheduler.h"

namespace moeserve::router {
namespace {

int fail(const Status& s) {
  MS_LOG_ERROR("{}", std::string(s.message()));
  return 1;
}

}  // namespace

int route_main(int argc, char** argv) {
  CLI::App app{"moeserve route: llm-d-style inference router (EndpointPickerConfig)", "route"};
  std::string config_path, endpoints, endpoints_file, host = "0.0.0.0", log_level = "info";
  int port = 8080, scrape_ms = 50, threads = 4, failure_threshold = 3;
  app.add_option("--config", config_path,
                 "EndpointPickerConfig YAML (llm-d.ai/v1alpha1); default: llm-d's built-in "
                 "profile (queue 2, kv-cache-utilization 2, prefix-cache 3)");
  auto* eps = app.add_option("--endpoints", endpoints,
                             "comma-separated host:port[@role] of the model servers");
  auto* epf = app.add_option("--endpoints-file", endpoints_file,
                             "YAML/JSON endpoints file, re-read when it changes");
  eps->excludes(epf);
  app.add_option("--port", port, "listen port")->check(CLI::Range(0, 65535));
  app.add_option("--host", host, "listen address");
  app.add_option("--scrape-interval-ms", scrape_ms, "metrics scrape interval")
      ->check(CLI::Range(1, 3600000));
  app.add_option("--threads", threads, "proxy I/O threads")->check(CLI::Range(1, 256));
  app.add_option("--failure-threshold", failure_threshold,
                 "consecutive failures before an endpoint is taken out")
      ->check(CLI::Range(1, 1000));
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  init_logging();
  set_log_level(log_level);
  if (endpoints.empty() && endpoints_file.empty()) {
    MS_LOG_ERROR("give the model servers with --endpoints host:port[,...] or --endpoints-file");
    return 2;
  }

  StatusOr<EndpointPickerConfig> cfg =
      config_path.empty() ? StatusOr<EndpointPickerConfig>(default_endpoint_picker_config())
                          : load_endpoint_picker_config(config_path);
  if (!cfg.ok()) return fail(cfg.status());
  auto scheduler = Scheduler::create(*cfg);
  if (!scheduler.ok()) return fail(scheduler.status());
  RouterMetrics metrics;
  (*scheduler)->set_metrics(&metrics);

  EndpointPool pool(failure_threshold);
  Scheduler* sched = scheduler->get();
  pool.set_removal_callback([sched](const std::string& a) { sched->endpoint_removed(a); });
  if (!endpoints.empty()) {
    auto specs = parse_endpoint_list(endpoints);
    if (!specs.ok()) return fail(specs.status());
    pool.set_endpoints(*specs);
  }
  // Block the stop signals in every thread (started below); this one waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  ScraperOptions sopts;
  sopts.interval = std::chrono::milliseconds(scrape_ms);
  sopts.endpoints_file = endpoints_file;
  MetricsScraper scraper(sopts, pool);
  if (auto s = scraper.start(); !s.ok()) return fail(s);

  // KV events for every precise-prefix-cache-scorer that asks for them (kvEventsConfig).
  std::vector<std::unique_ptr<KvEventFeeder>> feeders;
  for (Plugin* p : sched->plugins_of_type(PrecisePrefixCacheScorer::kType)) {
    auto* scorer = static_cast<PrecisePrefixCacheScorer*>(p);
    if (!scorer->kv_events().enabled) {
      MS_LOG_WARN("plugin '{}': no kvEventsConfig; its index is never fed", scorer->name());
      continue;
    }
    auto feeder = KvEventFeeder::start(scorer->kv_events(), scorer->index(), &pool);
    if (!feeder.ok()) return fail(feeder.status());
    KvEventFeeder* raw = feeder->get();
    metrics.add_collector(
        [raw](const std::vector<EndpointState>& eps) { return raw->render_metrics(eps); });
    feeders.push_back(std::move(*feeder));
  }

  // The approximate prefix indexes' sizes (each bounded by its LRU capacity per endpoint).
  for (Plugin* p : sched->plugins_of_type(PrefixCacheScorer::kType)) {
    const auto* scorer = static_cast<const PrefixCacheScorer*>(p);
    metrics.add_collector([scorer](const std::vector<EndpointState>& eps) {
      std::string out =
          "# HELP moeserve_router_prefix_index_hashes Block hashes the approximate prefix "
          "index holds per endpoint (at most lruCapacityPerServer each).\n"
          "# TYPE moeserve_router_prefix_index_hashes gauge\n";
      for (const EndpointState& e : eps) {
        absl::StrAppend(&out, "moeserve_router_prefix_index_hashes{plugin=\"",
                        escape_label(scorer->name()), "\",endpoint=\"", escape_label(e.address),
                        "\"} ", scorer->index().num_hashes(e.address), "\n");
      }
      return out;
    });
  }

  ProxyOptions popts;
  popts.host = host;
  popts.port = static_cast<uint16_t>(port);
  popts.num_threads = threads;
  ProxyServer proxy(popts, **scheduler, pool, metrics);
  if (auto s = proxy.start(); !s.ok()) return fail(s);
  int sig = 0;
  sigwait(&stop_signals, &sig);
  MS_LOG_INFO("signal {}: stopping the router", sig);
  proxy.stop();
  scraper.stop();
  feeders.clear();
  return 0;
}

}  // namespace moeserve::router
