#include "router/route_command.h"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <utility>

#include "CLI/CLI.hpp"
#include "core/logging.h"
#include "router/config.h"
#include "router/endpoint_pool.h"
#include "router/router_app.h"

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

  RouterAppOptions options;
  if (!config_path.empty()) {
    StatusOr<EndpointPickerConfig> cfg = load_endpoint_picker_config(config_path);
    if (!cfg.ok()) return fail(cfg.status());
    options.config = std::move(*cfg);
  }
  if (!endpoints.empty()) {
    auto specs = parse_endpoint_list(endpoints);
    if (!specs.ok()) return fail(specs.status());
    options.endpoints = std::move(*specs);
  }
  options.failure_threshold = failure_threshold;
  options.scraper.interval = std::chrono::milliseconds(scrape_ms);
  options.scraper.endpoints_file = endpoints_file;
  options.proxy.host = host;
  options.proxy.port = static_cast<uint16_t>(port);
  options.proxy.num_threads = threads;

  // Block the stop signals in every thread (started below); this one waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto router = RouterApp::start(std::move(options));
  if (!router.ok()) return fail(router.status());
  int sig = 0;
  sigwait(&stop_signals, &sig);
  MS_LOG_INFO("signal {}: stopping the router", sig);
  (*router)->stop();
  return 0;
}

}  // namespace moeserve::router
