// Scoring of every plugin on hand-made endpoint states, against llm-d's formulas.
#include <map>

#include "router/affinity_scorers.h"
#include "router/kv_event_index.h"
#include "router/precise_prefix_cache_scorer.h"
#include "router/prefix_cache_scorer.h"
#include "router/profile_handlers.h"
#include "test_helpers.h"

namespace moeserve::router {
namespace {

using testing::as;
using testing::make_endpoint;
using testing::make_plugin;
using testing::ptrs;

std::vector<double> run_scorer(Plugin* p, const std::vector<EndpointState>& eps,
                               const SchedulingRequest& req = {}, CycleState* cycle = nullptr) {
  CycleState local;
  auto* s = dynamic_cast<Scorer*>(p);
  EXPECT_NE(s, nullptr);
  auto v = ptrs(eps);
  return s->score(cycle ? *cycle : local, req, v);
}

TEST(QueueScorer, MinMaxOverCandidates) {
  auto p = make_plugin("queue-scorer");
  std::vector<EndpointState> eps = {make_endpoint("a:1", 0), make_endpoint("b:1", 5),
                                    make_endpoint("c:1", 10)};
  auto s = run_scorer(p.get(), eps);
  EXPECT_DOUBLE_EQ(s[0], 1.0);
  EXPECT_DOUBLE_EQ(s[1], 0.5);
  EXPECT_DOUBLE_EQ(s[2], 0.0);
  std::vector<EndpointState> equal = {make_endpoint("a:1", 3), make_endpoint("b:1", 3)};
  auto e = run_scorer(p.get(), equal);
  EXPECT_DOUBLE_EQ(e[0], 1.0);
  EXPECT_DOUBLE_EQ(e[1], 1.0);
}

TEST(KvCacheUtilizationScorer, OneMinusUsage) {
  auto p = make_plugin("kv-cache-utilization-scorer");
  std::vector<EndpointState> eps = {make_endpoint("a:1", 0, 0.25), make_endpoint("b:1", 0, 0.9)};
  auto s = run_scorer(p.get(), eps);
  EXPECT_DOUBLE_EQ(s[0], 0.75);
  EXPECT_NEAR(s[1], 0.1, 1e-12);
}

TEST(LoadAwareScorer, HalfWhenIdleThenLinearToThreshold) {
  auto p = make_plugin("load-aware-scorer", {{"threshold", 100}});
  std::vector<EndpointState> eps = {make_endpoint("a:1", 0), make_endpoint("b:1", 25),
                                    make_endpoint("c:1", 100), make_endpoint("d:1", 500)};
  auto s = run_scorer(p.get(), eps);
  EXPECT_DOUBLE_EQ(s[0], 0.5);
  EXPECT_DOUBLE_EQ(s[1], 0.5 * (1 - 25.0 / 100));
  EXPECT_DOUBLE_EQ(s[2], 0.0);
  EXPECT_DOUBLE_EQ(s[3], 0.0);
  auto def = make_plugin("load-aware-scorer");
  std::vector<EndpointState> one = {make_endpoint("a:1", 64)};
  EXPECT_DOUBLE_EQ(run_scorer(def.get(), one)[0], 0.25);  // default threshold 128
}

TEST(ActiveRequestScorer, IdleIsOneBusyScaled) {
  auto p = make_plugin("active-request-scorer", {{"idleThreshold", 1}, {"maxBusyScore", 0.8}});
  std::vector<EndpointState> eps = {make_endpoint("a:1", 0, 0, 0), make_endpoint("b:1", 0, 0, 1),
                                    make_endpoint("c:1", 0, 0, 5), make_endpoint("d:1", 0, 0, 9)};
  auto s = run_scorer(p.get(), eps);
  EXPECT_DOUBLE_EQ(s[0], 1.0);
  EXPECT_DOUBLE_EQ(s[1], 1.0);
  EXPECT_DOUBLE_EQ(s[2], 0.8 * (9 - 5) / (9 - 1.0));
  EXPECT_DOUBLE_EQ(s[3], 0.0);
}

TEST(RunningRequestsScorer, MinMax) {
  auto p = make_plugin("running-requests-size-scorer");
  std::vector<EndpointState> eps = {make_endpoint("a:1"), make_endpoint("b:1")};
  eps[0].metrics.running = 2;
  eps[1].metrics.running = 6;
  auto s = run_scorer(p.get(), eps);
  EXPECT_DOUBLE_EQ(s[0], 1.0);
  EXPECT_DOUBLE_EQ(s[1], 0.0);
}

TEST(SessionAffinityScorer, MatchesBase64Token) {
  auto p = make_plugin("session-affinity-scorer");
  std::vector<EndpointState> eps = {make_endpoint("10.0.0.1:8000"), make_endpoint("10.0.0.2:8000")};
  SchedulingRequest req;
  req.headers[kSessionTokenHeader] = session_token("10.0.0.2:8000");
  auto s = run_scorer(p.get(), eps, req);
  EXPECT_DOUBLE_EQ(s[0], 0.0);
  EXPECT_DOUBLE_EQ(s[1], 1.0);
  SchedulingRequest none;
  auto z = run_scorer(p.get(), eps, none);
  EXPECT_DOUBLE_EQ(z[0] + z[1], 0.0);
}

TEST(NoHitLruScorer, ColdRequestsPreferLeastRecentlyUsed) {
  auto p = make_plugin("no-hit-lru-scorer");
  std::vector<EndpointState> eps = {make_endpoint("a:1"), make_endpoint("b:1"),
                                    make_endpoint("c:1")};
  CycleState cold;
  auto s0 = run_scorer(p.get(), eps, {}, &cold);
  // Nothing used yet: ranks follow candidate order.
  EXPECT_DOUBLE_EQ(s0[0], 1.0);
  EXPECT_DOUBLE_EQ(s0[1], 0.5);
  EXPECT_DOUBLE_EQ(s0[2], 0.0);
  SchedulingResult r;
  r.profile_results["default"] = ProfileRunResult{{"a:1"}};
  p->pre_request({}, r, cold);
  auto s1 = run_scorer(p.get(), eps, {}, &cold);
  EXPECT_DOUBLE_EQ(s1[0], 0.0);  // just used
  EXPECT_DOUBLE_EQ(s1[1], 1.0);
  CycleState warm;
  warm.prefix_info_present = true;
  warm.prefix_matches["b:1"] = PrefixMatchInfo{2, 4, 16};
  auto s2 = run_scorer(p.get(), eps, {}, &warm);
  for (double v : s2) EXPECT_DOUBLE_EQ(v, 0.5);
}

TEST(PrefixCacheScorer, ScoresMatchedFractionAfterPreRequest) {
  auto p = make_plugin("prefix-cache-scorer", {{"blockSizeTokens", 1}});  // 4-char blocks
  std::vector<EndpointState> eps = {make_endpoint("a:1"), make_endpoint("b:1")};
  SchedulingRequest req;
  req.model = "m";
  req.prompt_text = "aaaabbbbccccdddd";  // 4 blocks
  CycleState c1;
  auto s0 = run_scorer(p.get(), eps, req, &c1);
  EXPECT_DOUBLE_EQ(s0[0], 0.0);
  ASSERT_EQ(c1.prefix_hashes.size(), 4u);
  SchedulingResult r;
  r.profile_results["default"] = ProfileRunResult{{"b:1"}};
  p->pre_request(req, r, c1);

  SchedulingRequest req2 = req;
  req2.prompt_text = "aaaabbbbxxxxyyyyzzzz";  // shares 2 of 5 blocks
  CycleState c2;
  auto s1 = run_scorer(p.get(), eps, req2, &c2);
  EXPECT_DOUBLE_EQ(s1[0], 0.0);
  EXPECT_DOUBLE_EQ(s1[1], 2.0 / 5.0);
  EXPECT_EQ(c2.prefix_matches["b:1"].matched_blocks, 2);
  // A different model never matches (the seed hash includes the model).
  SchedulingRequest other = req;
  other.model = "other";
  CycleState c3;
  EXPECT_DOUBLE_EQ(run_scorer(p.get(), eps, other, &c3)[1], 0.0);
}

TEST(PrefixCacheScorer, AutoTuneUsesReportedBlockSize) {
  auto p = make_plugin("prefix-cache-scorer");
  std::vector<EndpointState> eps = {make_endpoint("a:1")};
  eps[0].metrics.block_size = 2;  // 8 characters per block
  eps[0].metrics.num_gpu_blocks = 7;
  SchedulingRequest req;
  req.prompt_text = std::string(20, 'x');
  CycleState c;
  run_scorer(p.get(), eps, req, &c);
  EXPECT_EQ(c.prefix_hashes.size(), 3u);  // 8 + 8 + partial 4
  EXPECT_EQ(c.prefix_lru_capacity["a:1"], 7u);
}

TEST(PrecisePrefixCacheScorer, ConsecutiveTierWeightedHits) {
  auto index = std::make_shared<InMemoryKvEventIndex>(TokenBlockHasher(2, ""));
  PluginContext ctx;
  ctx.kv_index = index;
  auto created = PluginRegistry::builtin().create(
      PluginSpec{"precise-prefix-cache-scorer", "pp", nlohmann::json{{"blockSize", 2}}}, ctx);
  ASSERT_TRUE(created.ok()) << created.status();
  std::unique_ptr<Plugin> p = std::move(*created);

  // Endpoint a stores blocks [1,2] [3,4] on GPU; b stores [1,2] on CPU; c stores [3,4] only
  // (not a prefix).
  index->apply("a:1", "m",
               BlockStored{{101, 102}, std::nullopt, {1, 2, 3, 4}, 2, DeviceTier::kGpu});
  index->apply("b:1", "m", BlockStored{{201}, std::nullopt, {1, 2}, 2, DeviceTier::kCpu});
  index->apply("c:1", "m", BlockStored{{301}, std::nullopt, {3, 4}, 2, DeviceTier::kGpu});
  std::vector<EndpointState> eps = {make_endpoint("a:1"), make_endpoint("b:1"),
                                    make_endpoint("c:1")};
  SchedulingRequest req;
  req.model = "m";
  req.prompt_tokens = std::vector<uint32_t>{1, 2, 3, 4, 5, 6, 7};  // 3 full blocks
  auto s = run_scorer(p.get(), eps, req);
  EXPECT_DOUBLE_EQ(s[0], 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(s[1], 0.8 / 3.0);
  EXPECT_DOUBLE_EQ(s[2], 0.0);

  // A child block chained through the engine's parent hash.
  index->apply("b:1", "m", BlockStored{{202}, 201, {3, 4}, 2, DeviceTier::kCpu});
  EXPECT_DOUBLE_EQ(run_scorer(p.get(), eps, req)[1], 1.6 / 3.0);
  // Removal by engine key, then clearing.
  index->apply("a:1", "m", BlockRemoved{{102}, DeviceTier::kGpu});
  EXPECT_DOUBLE_EQ(run_scorer(p.get(), eps, req)[0], 1.0 / 3.0);
  index->apply("a:1", "m", AllBlocksCleared{});
  EXPECT_DOUBLE_EQ(run_scorer(p.get(), eps, req)[0], 0.0);
  EXPECT_EQ(index->num_blocks("a:1"), 0u);

  // Text prompts cannot be tokenized by the router: score 0.
  SchedulingRequest text;
  text.model = "m";
  text.prompt_text = "hello";
  auto t = run_scorer(p.get(), eps, text);
  EXPECT_DOUBLE_EQ(t[1], 0.0);
  // Another model's blocks do not match.
  SchedulingRequest other = req;
  other.model = "n";
  EXPECT_DOUBLE_EQ(run_scorer(p.get(), eps, other)[1], 0.0);
}

TEST(Filters, RoleFilters) {
  std::vector<EndpointState> eps = {make_endpoint("p:1", 0, 0, 0, "prefill"),
                                    make_endpoint("d:1", 0, 0, 0, "decode"),
                                    make_endpoint("b:1", 0, 0, 0, "both"), make_endpoint("n:1"),
                                    make_endpoint("e:1", 0, 0, 0, "encode")};
  auto names = [](const std::vector<const EndpointState*>& v) {
    std::string s;
    for (const auto* e : v) s += e->address.substr(0, 1);
    return s;
  };
  CycleState c;
  auto decode = make_plugin("decode-filter");
  EXPECT_EQ(names(as<Filter>(decode)->filter(c, {}, ptrs(eps))), "dbn");
  auto prefill = make_plugin("prefill-filter");
  EXPECT_EQ(names(as<Filter>(prefill)->filter(c, {}, ptrs(eps))), "pb");
}

TEST(Filters, LabelSelector) {
  std::vector<EndpointState> eps = {make_endpoint("a:1"), make_endpoint("b:1"),
                                    make_endpoint("c:1")};
  eps[0].labels = {{"zone", "x"}, {"gpu", "h100"}};
  eps[1].labels = {{"zone", "y"}, {"gpu", "h100"}};
  eps[2].labels = {{"zone", "x"}};
  auto f = make_plugin("label-selector-filter",
                       {{"matchLabels", {{"zone", "x"}}},
                        {"matchExpressions", {{{"key", "gpu"}, {"operator", "Exists"}}}}});
  CycleState c;
  auto out = as<Filter>(f)->filter(c, {}, ptrs(eps));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]->address, "a:1");
  auto notin = make_plugin(
      "label-selector-filter",
      {{"matchExpressions", {{{"key", "zone"}, {"operator", "NotIn"}, {"values", {"x"}}}}}});
  out = as<Filter>(notin)->filter(c, {}, ptrs(eps));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]->address, "b:1");
}

TEST(Pickers, MaxScoreTakesBestAndBreaksTiesRandomly) {
  std::vector<EndpointState> eps = {make_endpoint("a:1"), make_endpoint("b:1"),
                                    make_endpoint("c:1")};
  auto p = make_plugin("max-score-picker", {{"maxNumOfEndpoints", 2}});
  CycleState c;
  auto r = as<Picker>(p)->pick(c, {{&eps[0], 0.1}, {&eps[1], 0.9}, {&eps[2], 0.5}});
  ASSERT_EQ(r.targets.size(), 2u);
  EXPECT_EQ(r.targets[0], "b:1");
  EXPECT_EQ(r.targets[1], "c:1");
  auto one = make_plugin("max-score-picker");
  std::map<std::string, int> seen;
  for (int i = 0; i < 200; ++i) {
    auto t = as<Picker>(one)->pick(c, {{&eps[0], 1.0}, {&eps[1], 1.0}, {&eps[2], 0.0}});
    ASSERT_EQ(t.targets.size(), 1u);
    ++seen[t.targets[0]];
  }
  EXPECT_GT(seen["a:1"], 40);
  EXPECT_GT(seen["b:1"], 40);
  EXPECT_EQ(seen["c:1"], 0);
}

TEST(Pickers, RandomAndWeightedRandom) {
  std::vector<EndpointState> eps = {make_endpoint("a:1"), make_endpoint("b:1")};
  CycleState c;
  auto rnd = make_plugin("random-picker");
  std::map<std::string, int> seen;
  for (int i = 0; i < 400; ++i)
    ++seen[as<Picker>(rnd)->pick(c, {{&eps[0], 1}, {&eps[1], 0}}).targets[0]];
  EXPECT_GT(seen["b:1"], 120);  // uniform ignores scores
  auto w = make_plugin("weighted-random-picker");
  std::map<std::string, int> ws;
  for (int i = 0; i < 2000; ++i) {
    ++ws[as<Picker>(w)->pick(c, {{&eps[0], 0.75}, {&eps[1], 0.25}}).targets[0]];
  }
  // A-Res with one pick: P(a) = 0.75.
  EXPECT_NEAR(ws["a:1"] / 2000.0, 0.75, 0.05);
  std::map<std::string, int> zero;
  for (int i = 0; i < 400; ++i)
    ++zero[as<Picker>(w)->pick(c, {{&eps[0], 0}, {&eps[1], 0}}).targets[0]];
  EXPECT_GT(zero["a:1"], 120);
  EXPECT_GT(zero["b:1"], 120);
}

TEST(Pickers, RoundRobinTakesEndpointsInTurnIgnoringScores) {
  std::vector<EndpointState> eps = {make_endpoint("c:1"), make_endpoint("a:1"),
                                    make_endpoint("b:1")};
  CycleState c;
  auto rr = make_plugin("round-robin-picker");
  std::vector<std::string> order;
  for (int i = 0; i < 6; ++i) {
    // Scores and input order change every call; the rotation does not.
    std::vector<ScoredEndpoint> scored = {
        {&eps[i % 3], 1.0}, {&eps[(i + 1) % 3], 0.0}, {&eps[(i + 2) % 3], 0.5}};
    order.push_back(as<Picker>(rr)->pick(c, scored).targets.at(0));
  }
  EXPECT_EQ(order, (std::vector<std::string>{"a:1", "b:1", "c:1", "a:1", "b:1", "c:1"}));
  auto two = make_plugin("round-robin-picker", {{"maxNumOfEndpoints", 2}});
  auto t = as<Picker>(two)->pick(c, {{&eps[0], 0}, {&eps[1], 0}, {&eps[2], 0}}).targets;
  EXPECT_EQ(t, (std::vector<std::string>{"a:1", "b:1"}));
  EXPECT_TRUE(as<Picker>(rr)->pick(c, {}).targets.empty());
}

TEST(PdDeciders, PrefixBasedUsesUncachedTokens) {
  auto d = make_plugin("prefix-based-pd-decider", {{"nonCachedTokens", 16}});
  EndpointState dec = make_endpoint("d:1");
  SchedulingRequest req;
  req.prompt_text = std::string(100, 'x');  // 25 tokens
  CycleState c;
  EXPECT_TRUE(as<PdDecider>(d)->disaggregate(c, req, dec));  // 25 uncached >= 16
  c.prefix_matches["d:1"] = PrefixMatchInfo{1, 2, 16};       // 16 cached -> 9 uncached
  EXPECT_FALSE(as<PdDecider>(d)->disaggregate(c, req, dec));
  auto off = make_plugin("prefix-based-pd-decider", {{"nonCachedTokens", 0}});
  EXPECT_FALSE(as<PdDecider>(off)->disaggregate(CycleState{}, req, dec));
  auto always = make_plugin("always-disagg-pd-decider");
  EXPECT_TRUE(as<PdDecider>(always)->disaggregate(c, req, dec));
}

}  // namespace
}  // namespace moeserve::router
