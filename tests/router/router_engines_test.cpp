// End to end with real processes: `moeserve serve` engines (generated tiny model, KV events
// on) behind `moeserve route`.
//  - precise-prefix-cache-scorer: once an engine has served a long prompt and published its
//    blocks, requests sharing that prefix go to it (router metrics, engine prefix-cache hits).
//  - an engine SIGKILLed under streaming load: no request that had not received a token fails,
//    the endpoint leaves the pool, new requests succeed.
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>

#include "engine_cluster.h"
#include "gtest/gtest.h"
#include "http_test_client.h"
#include "nlohmann/json.hpp"

namespace moeserve::router {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using server::testing::http_request;
using server::testing::metric_value;
using testing::EngineCluster;
using Clock = std::chrono::steady_clock;

std::string metrics_of(uint16_t port) {
  return http_request(port, "GET", "/metrics").body;
}

double requests_to(const std::string& router_metrics, const std::string& address) {
  double v = metric_value(router_metrics, "moeserve_router_requests_total",
                          {"endpoint=\"" + address + "\""});
  return v < 0 ? 0 : v;
}

// Blocks the router's precise index holds for one endpoint.
double index_blocks(const std::string& router_metrics, const std::string& address) {
  double v = metric_value(router_metrics, "moeserve_router_kv_index_blocks",
                          {"endpoint=\"" + address + "\""});
  return v < 0 ? 0 : v;
}

double prefix_hits(uint16_t engine_port) {
  double v = metric_value(metrics_of(engine_port), "vllm:prefix_cache_hits_total");
  return v < 0 ? 0 : v;
}

// A prompt of about `words` words, different for every `seed`.
std::string long_prompt(int seed, int words) {
  static const char* const kWords[] = {"alpha",   "bravo", "charlie", "delta",    "echo",
                                       "foxtrot", "golf",  "hotel",   "india",    "juliet",
                                       "kilo",    "lima",  "mike",    "november", "oscar"};
  std::string out;
  uint32_t x = static_cast<uint32_t>(seed) * 2654435761u + 12345u;
  for (int i = 0; i < words; ++i) {
    x = x * 1664525u + 1013904223u;
    out += kWords[(x >> 16) % 15];
    out += ' ';
  }
  return out;
}

server::testing::ClientResponse complete(uint16_t port, const std::string& prompt, int max_tokens) {
  json body = {
      {"model", "tiny"}, {"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}};
  return http_request(port, "POST", "/v1/completions", body.dump(),
                      {{"Content-Type", "application/json"}});
}

constexpr const char* kPreciseConfig = R"(apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: precise-prefix-cache-scorer
  parameters:
    tokenProcessorConfig:
      blockSize: 16
    kvEventsConfig:
      discoverPods: true
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: precise-prefix-cache-scorer
  - pluginRef: max-score-picker
)";

TEST(RouterEngines, PrecisePrefixScorerRoutesToTheEngineHoldingThePrefix) {
  EngineCluster c;
  ASSERT_TRUE(c.make_model());
  ASSERT_GE(c.start_engine(), 0);
  ASSERT_GE(c.start_engine(), 0);
  ASSERT_TRUE(c.start_router(kPreciseConfig));
  const uint16_t router = c.router().port;

  for (int round = 0; round < 2; ++round) {
    const std::string prefix = long_prompt(round, 120);
    std::string before = metrics_of(router);
    auto first = complete(router, prefix, 2);
    ASSERT_EQ(first.status, 200) << first.body << c.log(c.router());
    std::string after = metrics_of(router);
    int holder = -1;
    for (int i = 0; i < c.num_engines(); ++i) {
      if (requests_to(after, c.engine(i).address()) > requests_to(before, c.engine(i).address())) {
        holder = i;
      }
    }
    ASSERT_GE(holder, 0) << after;
    const std::string holder_address = c.engine(holder).address();
    // Wait until this prompt's BlockStored events reached the router's index. The holder may
    // already hold an earlier round's blocks, so count only the blocks added since `before`.
    const double blocks_before = index_blocks(before, holder_address);
    const auto deadline = Clock::now() + 10s;
    double added = 0;
    while (Clock::now() < deadline) {
      added = index_blocks(metrics_of(router), holder_address) - blocks_before;
      if (added >= 4) break;
      std::this_thread::sleep_for(20ms);
    }
    ASSERT_GE(added, 4) << metrics_of(router) << c.log(c.router());

    const double hits_before = prefix_hits(c.engine(holder).port);
    before = metrics_of(router);
    constexpr int kFollowUps = 6;
    for (int k = 0; k < kFollowUps; ++k) {
      auto r = complete(router, prefix + "question " + std::to_string(k), 2);
      ASSERT_EQ(r.status, 200) << r.body;
    }
    after = metrics_of(router);
    EXPECT_EQ(requests_to(after, holder_address) - requests_to(before, holder_address), kFollowUps)
        << after;
    // The holder really reused the cached prefix for each of them.
    EXPECT_GE(prefix_hits(c.engine(holder).port) - hits_before, kFollowUps * 16.0);
  }
  const std::string m = metrics_of(router);
  EXPECT_GT(metric_value(m, "moeserve_router_kv_events_events_total"), 0) << m;
  EXPECT_EQ(metric_value(m, "moeserve_router_kv_events_dropped_total"), 0) << m;
}

// One streaming request, observed from the client side.
struct StreamOutcome {
  Clock::time_point sent;
  std::optional<Clock::time_point> first_byte;
  bool got_token = false;  // at least one completion event arrived
  bool ok = false;
  std::string detail;
};

StreamOutcome stream_request(uint16_t port, const std::string& prompt, int max_tokens) {
  StreamOutcome out;
  json body = {{"model", "tiny"}, {"prompt", prompt},   {"max_tokens", max_tokens},
               {"stream", true},  {"ignore_eos", true}, {"temperature", 0}};
  const std::string b = body.dump();
  const std::string req =
      "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Content-Type: application/json\r\nConnection: close\r\n"
      "Content-Length: " +
      std::to_string(b.size()) + "\r\n\r\n" + b;
  out.sent = Clock::now();
  const int fd = server::testing::connect_local(port, 60000);
  if (fd < 0 || !server::testing::send_all(fd, req)) {
    out.detail = "connect/send failed";
    if (fd >= 0) close(fd);
    return out;
  }
  std::string raw;
  char buf[8192];
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    if (!out.first_byte) out.first_byte = Clock::now();
    raw.append(buf, static_cast<std::size_t>(n));
  }
  close(fd);
  auto res = server::testing::parse_response(raw);
  out.got_token = res.body.find("data: {") != std::string::npos;
  out.ok = res.status == 200 && res.body.find("data: [DONE]") != std::string::npos &&
           res.body.find("\"error\"") == std::string::npos;
  if (!out.ok) out.detail = "status " + std::to_string(res.status) + ": " + res.body.substr(0, 300);
  return out;
}

TEST(RouterEngines, EngineKilledUnderLoadFailsOnlyRequestsAlreadyStreamingFromIt) {
  EngineCluster c;
  ASSERT_TRUE(c.make_model());
  for (int i = 0; i < 3; ++i) ASSERT_GE(c.start_engine({"--max-num-seqs", "8"}), 0);
  // llm-d's default profile (queue, kv-cache utilisation, approximate prefix).
  ASSERT_TRUE(c.start_router(R"(apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: prefix-cache-scorer
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
    weight: 2
  - pluginRef: kv-cache-utilization-scorer
    weight: 2
  - pluginRef: prefix-cache-scorer
    weight: 3
)"));
  const uint16_t router = c.router().port;
  constexpr int kVictim = 1;

  constexpr int kRequests = 48;
  std::vector<StreamOutcome> outcomes(kRequests);
  std::vector<std::thread> clients;
  std::atomic<Clock::time_point> killed_at{Clock::time_point::max()};
  // Requests start in a steady trickle; the engine dies in the middle of it.
  double victim_requests_at_kill = 0;
  std::thread killer([&] {
    std::this_thread::sleep_for(1500ms);
    victim_requests_at_kill = requests_to(metrics_of(router), c.engine(kVictim).address());
    killed_at.store(Clock::now());
    c.kill_engine(kVictim, SIGKILL);
  });
  for (int i = 0; i < kRequests; ++i) {
    clients.emplace_back([&, i] {
      outcomes[static_cast<std::size_t>(i)] = stream_request(router, long_prompt(1000 + i, 20), 48);
    });
    std::this_thread::sleep_for(60ms);
  }
  killer.join();
  for (auto& t : clients) t.join();
  const Clock::time_point kill_time = killed_at.load();

  int failed = 0, after_kill = 0;
  for (int i = 0; i < kRequests; ++i) {
    const StreamOutcome& o = outcomes[static_cast<std::size_t>(i)];
    if (!(o.first_byte && *o.first_byte < kill_time)) ++after_kill;
    if (!o.ok) {
      ++failed;
      // The router holds an engine's response until its first token, and retries elsewhere
      // when the engine fails before it; so a failed request must have been streaming tokens.
      // (Judged from the bytes received, not from clocks: a loaded client may read a token the
      // router sent before the kill only after it.)
      EXPECT_TRUE(o.got_token) << "request " << i
                               << " failed before receiving any token: " << o.detail;
    }
  }
  EXPECT_GT(after_kill, 10);              // the load really went on after the kill
  EXPECT_GT(victim_requests_at_kill, 0);  // and the victim had work when it died
  const std::string m = metrics_of(router);
  EXPECT_LE(failed, requests_to(m, c.engine(kVictim).address())) << m;
  std::printf(
      "requests %d, failed %d (all had been streaming), first byte after the kill %d, "
      "victim requests %g, router retries %g\n",
      kRequests, failed, after_kill, victim_requests_at_kill,
      metric_value(m, "moeserve_router_retries_total"));

  // The endpoint leaves the pool.
  const auto deadline = Clock::now() + 5s;
  double healthy = 1;
  while (Clock::now() < deadline) {
    healthy = metric_value(metrics_of(router), "moeserve_router_endpoint_healthy",
                           {"endpoint=\"" + c.engine(kVictim).address() + "\""});
    if (healthy == 0) break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(healthy, 0) << metrics_of(router);
  // New requests keep succeeding, on the survivors.
  const std::string before = metrics_of(router);
  for (int i = 0; i < 8; ++i) {
    StreamOutcome o = stream_request(router, long_prompt(5000 + i, 20), 8);
    EXPECT_TRUE(o.ok) << o.detail;
  }
  const std::string after = metrics_of(router);
  EXPECT_EQ(requests_to(after, c.engine(kVictim).address()),
            requests_to(before, c.engine(kVictim).address()));
}

}  // namespace
}  // namespace moeserve::router
