// End-to-end proxy tests over real sockets on 127.0.0.1: the router runs in-process on an
// ephemeral port in front of TestUpstream servers.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "gtest/gtest.h"
#include "router/endpoint_pool.h"
#include "router/metrics_scraper.h"
#include "router/proxy_server.h"
#include "router/scheduler.h"
#include "test_upstream.h"

namespace moeserve::router {
namespace {

using namespace std::chrono_literals;
using testing::ClientResult;
using testing::dead_port;
using testing::http_exchange;
using testing::TestUpstream;
using testing::UpstreamBehavior;

struct Router {
  Router(const std::string& yaml, const std::vector<EndpointSpec>& endpoints, bool scrape = false,
         int failure_threshold = 3, ScraperOptions sopts = {}, int threads = 2)
      : pool(failure_threshold) {
    auto cfg = parse_endpoint_picker_config(yaml);
    EXPECT_TRUE(cfg.ok()) << cfg.status();
    auto s = Scheduler::create(*cfg);
    EXPECT_TRUE(s.ok()) << s.status();
    scheduler = std::move(*s);
    scheduler->set_metrics(&metrics);
    Scheduler* sched = scheduler.get();
    pool.set_removal_callback([sched](const std::string& a) { sched->endpoint_removed(a); });
    pool.set_endpoints(endpoints);
    if (scrape) {
      scraper = std::make_unique<MetricsScraper>(sopts, pool);
      EXPECT_TRUE(scraper->start().ok());
    }
    ProxyOptions popts;
    popts.host = "127.0.0.1";
    popts.port = 0;
    popts.num_threads = threads;
    proxy = std::make_unique<ProxyServer>(popts, *scheduler, pool, metrics);
    auto st = proxy->start();
    EXPECT_TRUE(st.ok()) << st;
  }
  ~Router() {
    proxy->stop();
    if (scraper) scraper->stop();
  }
  uint16_t port() const { return proxy->port(); }

  RouterMetrics metrics;
  EndpointPool pool;
  std::unique_ptr<Scheduler> scheduler;
  std::unique_ptr<MetricsScraper> scraper;
  std::unique_ptr<ProxyServer> proxy;
};

EndpointSpec spec(const std::string& address, const std::string& role = "") {
  EndpointSpec s;
  s.address = address;
  if (!role.empty()) s.labels[kRoleLabel] = role;
  return s;
}

const char kQueueOnly[] =
    "plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: default\n  plugins:\n"
    "  - pluginRef: queue-scorer\n";

std::string stream_body(const std::string& prompt = "hello") {
  return nlohmann::json{{"model", "m"}, {"prompt", prompt}, {"max_tokens", 8}, {"stream", true}}
      .dump();
}

template <typename Pred>
bool wait_for(Pred pred, std::chrono::milliseconds limit = 5000ms) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

// The embedding process decides /health (the data-parallel launcher turns it 503 when a rank
// died); without a callback it is always 200.
TEST(Proxy, HealthFollowsTheCallback) {
  TestUpstream up("u1", UpstreamBehavior{});
  auto cfg = parse_endpoint_picker_config(kQueueOnly);
  ASSERT_TRUE(cfg.ok());
  auto scheduler = Scheduler::create(*cfg);
  ASSERT_TRUE(scheduler.ok());
  RouterMetrics metrics;
  EndpointPool pool;
  pool.set_endpoints({spec(up.address())});
  std::atomic<bool> healthy{true};
  ProxyOptions popts;
  popts.host = "127.0.0.1";
  popts.port = 0;
  popts.num_threads = 1;
  popts.health = [&healthy] { return healthy.load(); };
  ProxyServer proxy(popts, **scheduler, pool, metrics);
  ASSERT_TRUE(proxy.start().ok());
  EXPECT_EQ(http_exchange(proxy.port(), "GET", "/health", "").status, 200);
  healthy.store(false);
  EXPECT_EQ(http_exchange(proxy.port(), "GET", "/health", "").status, 503);
  proxy.stop();
}

TEST(Proxy, StreamsChunksAsTheyArrive) {
  UpstreamBehavior slow;
  slow.num_chunks = 4;
  slow.chunk_delay = 300ms;
  TestUpstream up("u1", slow);
  Router router(kQueueOnly, {spec(up.address())});
  ClientResult r = http_exchange(router.port(), "POST", "/v1/completions", stream_body());
  ASSERT_EQ(r.status, 200) << r.raw;
  for (const char* tok : {"tok0", "tok1", "tok2", "tok3", "[DONE]"}) {
    EXPECT_NE(r.body.find(tok), std::string::npos) << tok;
  }
  EXPECT_NE(r.raw.find("text/event-stream"), std::string::npos);
  // The first chunk reached the client long before the upstream finished (3 x 300 ms later).
  EXPECT_LT(r.first_data + 500ms, up.last_stream_end());
  EXPECT_EQ(router.metrics.requests_to(up.address()), 1u);
  EXPECT_EQ(router.pool.active(up.address()), 0);

  ClientResult health = http_exchange(router.port(), "GET", "/health", "");
  EXPECT_EQ(health.status, 200);
  ClientResult models = http_exchange(router.port(), "GET", "/v1/models", "");
  EXPECT_EQ(models.status, 200);
  EXPECT_NE(models.body.find("\"owned_by\":\"u1\""), std::string::npos);
  ClientResult metrics = http_exchange(router.port(), "GET", "/metrics", "");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(
      metrics.body.find("moeserve_router_requests_total{endpoint=\"" + up.address() + "\"} 1"),
      std::string::npos);
  EXPECT_NE(metrics.body.find("moeserve_router_scheduling_decisions_total{profile=\"default\"} 1"),
            std::string::npos);
  EXPECT_NE(
      metrics.body.find("moeserve_router_scorer_duration_seconds_count{scorer=\"queue-scorer\"}"),
      std::string::npos);
  ClientResult bad = http_exchange(router.port(), "POST", "/v1/completions", "{not json");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("BadRequestError"), std::string::npos);
  EXPECT_EQ(http_exchange(router.port(), "GET", "/nope", "").status, 404);
}

TEST(Proxy, NonStreamingResponsePassesThrough) {
  TestUpstream up("u1", {});
  Router router(kQueueOnly, {spec(up.address())});
  auto body =
      nlohmann::json{{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}}.dump();
  ClientResult r = http_exchange(router.port(), "POST", "/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_NE(r.body.find("cmpl-u1"), std::string::npos);
  ASSERT_EQ(up.requests().size(), 1u);
  EXPECT_EQ(up.requests()[0]["messages"][0]["content"], "hi");
}

TEST(Proxy, RetriesOnDeadEndpointWithoutFailingTheRequest) {
  TestUpstream up("live", {});
  const std::string dead = "127.0.0.1:" + std::to_string(dead_port());
  Router router(kQueueOnly, {spec(dead), spec(up.address())}, /*scrape=*/false,
                /*failure_threshold=*/100);
  // Make the dead endpoint the queue-scorer's favourite, so every request tries it first.
  EndpointMetrics idle, busy;
  idle.valid = busy.valid = true;
  busy.waiting = 10;
  router.pool.record_success(dead, idle);
  router.pool.record_success(up.address(), busy);
  for (int i = 0; i < 5; ++i) {
    ClientResult r = http_exchange(router.port(), "POST", "/v1/completions", stream_body());
    ASSERT_EQ(r.status, 200) << r.raw;
    EXPECT_NE(r.body.find("[DONE]"), std::string::npos);
  }
  EXPECT_EQ(router.metrics.retries(), 5u);
  EXPECT_EQ(up.requests().size(), 5u);
  EXPECT_EQ(router.pool.active(dead), 0);
}

// An endpoint that answers the header and then dies before its first body byte: nothing has
// reached the client yet, so the request goes to another endpoint.
TEST(Proxy, RetriesWhenTheEndpointDiesBetweenHeaderAndFirstByte) {
  UpstreamBehavior dies;
  dies.close_after_header = true;
  TestUpstream bad("dies", dies);
  TestUpstream up("live", {});
  Router router(kQueueOnly, {spec(bad.address()), spec(up.address())}, /*scrape=*/false,
                /*failure_threshold=*/100);
  EndpointMetrics idle, busy;
  idle.valid = busy.valid = true;
  busy.waiting = 10;
  router.pool.record_success(bad.address(), idle);
  router.pool.record_success(up.address(), busy);
  for (int i = 0; i < 3; ++i) {
    ClientResult r = http_exchange(router.port(), "POST", "/v1/completions", stream_body());
    ASSERT_EQ(r.status, 200) << r.raw;
    EXPECT_NE(r.body.find("live"), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("[DONE]"), std::string::npos) << r.body;
  }
  EXPECT_EQ(bad.requests().size(), 3u);
  EXPECT_EQ(up.requests().size(), 3u);
  EXPECT_EQ(router.metrics.retries(), 3u);
}

TEST(Proxy, AllEndpointsDeadGives502) {
  const std::string dead = "127.0.0.1:" + std::to_string(dead_port());
  Router router(kQueueOnly, {spec(dead)}, false, 100);
  ClientResult r = http_exchange(router.port(), "POST", "/v1/completions", stream_body());
  EXPECT_EQ(r.status, 502);
}

TEST(Proxy, ScrapeFailuresRemoveEndpointAndRecoveryReturnsIt) {
  TestUpstream up("u1", {});
  up.set_metrics(
      "vllm:num_requests_waiting{engine=\"0\"} 7\nvllm:num_requests_running 2\n"
      "vllm:kv_cache_usage_perc 0.5\nvllm:cache_config_info{block_size=\"32\","
      "num_gpu_blocks=\"100\"} 1\n",
      true);
  ScraperOptions sopts;
  sopts.interval = 20ms;
  sopts.timeout = 500ms;
  Router router(kQueueOnly, {spec(up.address())}, /*scrape=*/true, /*failure_threshold=*/2, sopts);
  ASSERT_TRUE(wait_for([&] {
    auto s = router.pool.healthy_snapshot();
    return s.size() == 1 && s[0].metrics.waiting == 7;
  }));
  auto snap = router.pool.healthy_snapshot();
  EXPECT_EQ(snap[0].metrics.block_size, 32);
  EXPECT_EQ(snap[0].metrics.num_gpu_blocks, 100);
  EXPECT_DOUBLE_EQ(snap[0].metrics.kv_usage, 0.5);

  up.set_metrics("down", false);
  ASSERT_TRUE(wait_for([&] { return router.pool.healthy_snapshot().empty(); }));
  ClientResult none = http_exchange(router.port(), "POST", "/v1/completions", stream_body());
  EXPECT_EQ(none.status, 503);
  ClientResult m = http_exchange(router.port(), "GET", "/metrics", "");
  EXPECT_NE(m.body.find("moeserve_router_endpoint_healthy{endpoint=\"" + up.address() + "\"} 0"),
            std::string::npos);

  up.set_metrics("vllm:num_requests_waiting 1\n", true);
  ASSERT_TRUE(wait_for([&] { return router.pool.healthy_snapshot().size() == 1; }));
  ClientResult back = http_exchange(router.port(), "POST", "/v1/completions", stream_body());
  EXPECT_EQ(back.status, 200);
}

TEST(Proxy, EndpointsFileIsReReadWhenItChanges) {
  TestUpstream a("a", {}), b("b", {});
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("router-endpoints-" + std::to_string(a.port()) + ".yaml"))
                               .string();
  {
    std::ofstream f(path);
    f << "endpoints:\n- address: " << a.address() << "\n  role: decode\n";
  }
  ScraperOptions sopts;
  sopts.interval = 20ms;
  sopts.file_poll = 20ms;
  sopts.endpoints_file = path;
  Router router(kQueueOnly, {}, /*scrape=*/true, 3, sopts);
  ASSERT_TRUE(wait_for([&] { return router.pool.contains(a.address()); }));
  {
    std::ofstream f(path);
    f << "endpoints:\n- " << b.address() << "\n";
  }
  std::filesystem::last_write_time(
      path, std::filesystem::last_write_time(path) + std::chrono::seconds(2));
  ASSERT_TRUE(wait_for(
      [&] { return router.pool.contains(b.address()) && !router.pool.contains(a.address()); }));
  ClientResult r = http_exchange(router.port(), "POST", "/v1/completions", stream_body());
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(b.requests().size(), 1u);
  std::filesystem::remove(path);
}

std::string pd_config() {
  return R"(apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: prefix-cache-scorer
- type: queue-scorer
- type: prefill-filter
- type: decode-filter
- type: max-score-picker
- type: prefix-based-pd-decider
  parameters:
    nonCachedTokens: 16
- type: disagg-profile-handler
  parameters:
    deciders:
      prefill: prefix-based-pd-decider
schedulingProfiles:
- name: prefill
  plugins:
  - pluginRef: prefill-filter
  - pluginRef: prefix-cache-scorer
  - pluginRef: queue-scorer
- name: decode
  plugins:
  - pluginRef: decode-filter
  - pluginRef: prefix-cache-scorer
  - pluginRef: queue-scorer
)";
}

TEST(Proxy, PrefillDecodeSequence) {
  TestUpstream prefill("pre", {});
  TestUpstream decode("dec", {});
  Router router(pd_config(),
                {spec(prefill.address(), "prefill"), spec(decode.address(), "decode")});
  const std::string prompt(400, 'p');  // 100 estimated tokens, nothing cached: P/D
  auto body = nlohmann::json{{"model", "m"},
                             {"prompt", prompt},
                             {"max_tokens", 8},
                             {"stream", true},
                             {"stream_options", {{"include_usage", true}}}};
  ClientResult r = http_exchange(router.port(), "POST", "/v1/completions", body.dump());
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_NE(r.body.find("\"upstream\":\"dec\""), std::string::npos);
  EXPECT_NE(r.body.find("[DONE]"), std::string::npos);

  auto pre = prefill.requests();
  ASSERT_EQ(pre.size(), 1u);
  EXPECT_EQ(pre[0]["max_tokens"], 1);
  EXPECT_EQ(pre[0]["max_completion_tokens"], 1);
  EXPECT_EQ(pre[0]["stream"], false);
  EXPECT_FALSE(pre[0].contains("stream_options"));
  EXPECT_EQ(pre[0]["prompt"], prompt);
  const auto& kv = pre[0]["kv_transfer_params"];
  EXPECT_EQ(kv["do_remote_decode"], true);
  EXPECT_EQ(kv["do_remote_prefill"], false);
  for (const char* k : {"remote_engine_id", "remote_block_ids", "remote_host", "remote_port"}) {
    ASSERT_TRUE(kv.contains(k)) << k;
    EXPECT_TRUE(kv[k].is_null()) << k;
  }

  auto dec = decode.requests();
  ASSERT_EQ(dec.size(), 1u);
  EXPECT_EQ(dec[0]["max_tokens"], 8);
  EXPECT_EQ(dec[0]["stream"], true);
  EXPECT_TRUE(dec[0].contains("stream_options"));
  EXPECT_EQ(dec[0]["kv_transfer_params"]["remote_engine_id"], "engine-pre");
  EXPECT_EQ(dec[0]["kv_transfer_params"]["remote_block_ids"], nlohmann::json({4, 5, 6}));
  EXPECT_EQ(dec[0]["kv_transfer_params"]["do_remote_prefill"], true);

  // A short prompt stays decode-only.
  ClientResult s = http_exchange(router.port(), "POST", "/v1/completions", stream_body("short"));
  ASSERT_EQ(s.status, 200);
  EXPECT_EQ(prefill.requests().size(), 1u);
  EXPECT_EQ(decode.requests().size(), 2u);
  EXPECT_FALSE(decode.requests()[1].contains("kv_transfer_params"));
  ClientResult m = http_exchange(router.port(), "GET", "/metrics", "");
  EXPECT_NE(m.body.find("decision_type=\"prefill-decode\"} 1"), std::string::npos);
  EXPECT_NE(m.body.find("decision_type=\"decode-only\"} 1"), std::string::npos);
}

TEST(Proxy, PrefillFailureFallsBackToDecodeAlone) {
  UpstreamBehavior failing;
  failing.fail_status = 500;
  TestUpstream prefill("pre", failing);
  TestUpstream decode("dec", {});
  Router router(pd_config(),
                {spec(prefill.address(), "prefill"), spec(decode.address(), "decode")});
  ClientResult r =
      http_exchange(router.port(), "POST", "/v1/completions", stream_body(std::string(400, 'q')));
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(prefill.requests().size(), 1u);
  ASSERT_EQ(decode.requests().size(), 1u);
  EXPECT_FALSE(decode.requests()[0].contains("kv_transfer_params"));
  EXPECT_NE(r.body.find("[DONE]"), std::string::npos);
}

}  // namespace
}  // namespace moeserve::router
