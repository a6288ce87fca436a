#include "router/metrics_scraper.h"

#include <atomic>
#include <filesystem>
#include <set>
#include <thread>
#include <utility>  // before Asio: its awaitable.hpp uses std::exchange

#include "boost/asio.hpp"
#include "core/logging.h"
#include "net/http_client.h"
#include "net/prometheus_text.h"
#include "router/engine_metrics.h"

namespace moeserve::router {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::awaitable;
using asio::use_awaitable;

struct MetricsScraper::Impl {
  Impl(ScraperOptions o, EndpointPool& p) : options(std::move(o)), pool(p) {}

  awaitable<void> loop();
  awaitable<void> scrape(std::string address);
  void poll_file(bool force);

  ScraperOptions options;
  EndpointPool& pool;
  std::thread thread;
  std::set<std::string> in_flight;  // I/O thread only
  std::filesystem::file_time_type file_mtime{};
  std::chrono::steady_clock::time_point next_file_poll{};
  bool running = false;
  // Last: destroyed first, so coroutine frames it still holds see the members above alive.
  asio::io_context ioc{1};
};

void MetricsScraper::Impl::poll_file(bool force) {
  if (options.endpoints_file.empty()) return;
  std::error_code ec;
  auto mtime = std::filesystem::last_write_time(options.endpoints_file, ec);
  if (ec) {
    MS_LOG_WARN("endpoints file {}: {}", options.endpoints_file, ec.message());
    return;
  }
  if (!force && mtime == file_mtime) return;
  auto specs = load_endpoints_file(options.endpoints_file);
  if (!specs.ok()) {
    MS_LOG_WARN("{}; keeping the previous endpoints", std::string(specs.status().message()));
    return;
  }
  file_mtime = mtime;
  pool.set_endpoints(*specs);
  MS_LOG_INFO("endpoints file {}: {} endpoints", options.endpoints_file, specs->size());
}

awaitable<void> MetricsScraper::Impl::scrape(std::string address) {
  struct Done {
    Impl* self;
    std::string address;
    ~Done() { self->in_flight.erase(address); }
  } done{this, address};

  auto hp = split_host_port(address);
  if (!hp.ok()) {
    pool.record_failure(address);
    co_return;
  }
  // One deadline for the whole scrape (connect, request, response).
  net::ClientConnection conn(co_await asio::this_coro::executor);
  conn.expires_after(options.timeout);
  beast::error_code ec = co_await conn.connect(hp->first, hp->second);
  if (!ec) {
    net::ClientRequest req;
    req.target = "/metrics";
    ec = co_await conn.send(req, address);
  }
  if (!ec) ec = co_await conn.read_header();
  std::string body;
  if (!ec) ec = co_await conn.read_body_all(&body, 16u << 20);
  conn.shutdown();
  if (ec || conn.status() != 200) {
    MS_LOG_DEBUG("scrape {} failed: {}", address,
                 ec ? ec.message() : std::to_string(conn.status()));
    pool.record_failure(address);
    co_return;
  }
  auto samples = net::parse_prometheus_text(body);
  StatusOr<EndpointMetrics> metrics =
      samples.ok() ? extract_engine_metrics(*samples) : StatusOr<EndpointMetrics>(samples.status());
  if (!metrics.ok()) {
    MS_LOG_DEBUG("scrape {}: {}", address, std::string(metrics.status().message()));
    pool.record_failure(address);
    co_return;
  }
  pool.record_success(address, *metrics);
}

awaitable<void> MetricsScraper::Impl::loop() {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (running) {
    auto now = std::chrono::steady_clock::now();
    if (now >= next_file_poll) {
      poll_file(false);
      next_file_poll = now + options.file_poll;
    }
    for (const auto& address : pool.addresses()) {
      if (!in_flight.insert(address).second) continue;
      asio::co_spawn(ioc, scrape(address), asio::detached);
    }
    timer.expires_after(options.interval);
    beast::error_code ec;
    co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
  }
}

MetricsScraper::MetricsScraper(ScraperOptions options, EndpointPool& pool)
    : impl_(std::make_unique<Impl>(std::move(options), pool)) {}

MetricsScraper::~MetricsScraper() {
  stop();
}

Status MetricsScraper::start() {
  if (impl_->running) return absl::OkStatus();
  if (!impl_->options.endpoints_file.empty()) {
    MS_ASSIGN_OR_RETURN(auto specs, load_endpoints_file(impl_->options.endpoints_file));
    std::error_code ec;
    impl_->file_mtime = std::filesystem::last_write_time(impl_->options.endpoints_file, ec);
    impl_->pool.set_endpoints(specs);
  }
  impl_->running = true;
  asio::co_spawn(impl_->ioc, impl_->loop(), asio::detached);
  impl_->thread = std::thread([this] { impl_->ioc.run(); });
  return absl::OkStatus();
}

void MetricsScraper::stop() {
  if (!impl_->thread.joinable()) return;
  asio::post(impl_->ioc, [this] { impl_->running = false; });
  impl_->ioc.stop();
  impl_->thread.join();
}

}  // namespace moeserve::router
