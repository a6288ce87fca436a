// EndpointPickerConfig loading (the three verbatim llm-d configs), defaults and errors, and
// whole scheduling cycles through the scheduler.
#include "router/config.h"

#include <fstream>
#include <sstream>

#include "router/profile_handlers.h"
#include "router/scheduler.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"
#include "test_helpers.h"

namespace moeserve::router {
namespace {

using testing::make_endpoint;

std::string testdata(const std::string& name) {
  return std::string(MOESERVE_SOURCE_DIR) + "/tests/router/testdata/" + name;
}

StatusOr<std::unique_ptr<Scheduler>> build(const std::string& yaml) {
  MS_ASSIGN_OR_RETURN(auto cfg, parse_endpoint_picker_config(yaml));
  PluginContext ctx;
  ctx.seed = 7;
  return Scheduler::create(cfg, ctx);
}

TEST(Config, DefaultLlmdConfigLoads) {
  auto cfg = load_endpoint_picker_config(testdata("epp-default.yaml"));
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->api_version, "llm-d.ai/v1alpha1");
  ASSERT_EQ(cfg->plugins.size(), 4u);
  EXPECT_EQ(cfg->plugins[0].name, "prefix-cache-scorer");  // name defaults to type
  ASSERT_EQ(cfg->profiles.size(), 1u);
  EXPECT_EQ(cfg->profiles[0].plugins[2].weight, 2.0);
  auto s = Scheduler::create(*cfg);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->profile_handler().type(), "single-profile-handler");
  const auto* profile = (*s)->profiles().at("default");
  EXPECT_EQ(profile->filters().size(), 1u);
  ASSERT_EQ(profile->scorers().size(), 1u);
  EXPECT_DOUBLE_EQ(profile->scorers()[0].weight, 2.0);
  EXPECT_EQ(profile->picker()->type(), "max-score-picker");
}

TEST(Config, LegacyGieConfigLoadsWithDefaults) {
  auto cfg = load_endpoint_picker_config(testdata("epp-gie-v1.yaml"));
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->api_version, "inference.networking.x-k8s.io/v1alpha1");
  auto s = Scheduler::create(*cfg);
  ASSERT_TRUE(s.ok()) << s.status();
  // No handler and no picker in the file: llm-d adds single-profile-handler and
  // max-score-picker.
  EXPECT_EQ((*s)->profile_handler().type(), "single-profile-handler");
  const auto* profile = (*s)->profiles().at("default");
  ASSERT_EQ(profile->scorers().size(), 3u);
  EXPECT_DOUBLE_EQ(profile->scorers()[2].weight, 3.0);
  EXPECT_EQ(profile->picker()->type(), "max-score-picker");
}

TEST(Config, PdConfigLoads) {
  auto cfg = load_endpoint_picker_config(testdata("epp-pd.yaml"));
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->plugins[0].parameters["lruCapacityPerServer"], 31250);
  auto s = Scheduler::create(*cfg);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->profile_handler().type(), "disagg-profile-handler");
  EXPECT_EQ((*s)->profiles().size(), 2u);
}

TEST(Config, SharedReferenceCopiesMatchTestdata) {
  // The configs in testdata are verbatim copies of the shared reference ones, when present.
  for (const char* name : {"epp-default.yaml", "epp-gie-v1.yaml", "epp-pd.yaml"}) {
    std::ifstream shared(std::string(MOESERVE_SOURCE_DIR) + "/../shared/reference/llm-d-configs/" +
                         name);
    if (!shared) continue;
    std::ifstream local(testdata(name));
    std::stringstream a, b;
    a << shared.rdbuf();
    b << local.rdbuf();
    EXPECT_EQ(a.str(), b.str()) << name;
  }
}

TEST(Config, EmptyConfigIsLlmdDefault) {
  auto s = build("");
  ASSERT_TRUE(s.ok()) << s.status();
  const auto* profile = (*s)->profiles().at("default");
  ASSERT_EQ(profile->scorers().size(), 3u);
  EXPECT_EQ(profile->scorers()[0].scorer->type(), "queue-scorer");
  EXPECT_DOUBLE_EQ(profile->scorers()[0].weight, 2.0);
  EXPECT_DOUBLE_EQ(profile->scorers()[2].weight, 3.0);
}

TEST(Config, PluginsWithoutProfilesMakeDefaultProfileAndWeightOne) {
  auto s = build("plugins:\n- type: queue-scorer\n- type: random-picker\n");
  ASSERT_TRUE(s.ok()) << s.status();
  const auto* profile = (*s)->profiles().at("default");
  ASSERT_EQ(profile->scorers().size(), 1u);
  EXPECT_DOUBLE_EQ(profile->scorers()[0].weight, 1.0);
  EXPECT_EQ(profile->picker()->type(), "random-picker");
}

TEST(Config, Errors) {
  auto unknown_type = build("plugins:\n- type: no-such-scorer\n  name: mine\n");
  ASSERT_FALSE(unknown_type.ok());
  EXPECT_NE(unknown_type.status().message().find("mine"), std::string::npos);
  EXPECT_NE(unknown_type.status().message().find("no-such-scorer"), std::string::npos);

  auto unknown_ref = build(
      "plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: default\n  plugins:\n"
      "  - pluginRef: nope\n");
  ASSERT_FALSE(unknown_ref.ok());
  EXPECT_NE(unknown_ref.status().message().find("'nope'"), std::string::npos);

  auto bad_type = build(
      "plugins:\n- type: prefix-cache-scorer\n  parameters:\n    lruCapacityPerServer: lots\n");
  ASSERT_FALSE(bad_type.ok());
  EXPECT_NE(bad_type.status().message().find("prefix-cache-scorer"), std::string::npos);
  EXPECT_NE(bad_type.status().message().find("lruCapacityPerServer"), std::string::npos);

  auto bad_range =
      build("plugins:\n- type: load-aware-scorer\n  name: la\n  parameters:\n    threshold: -3\n");
  ASSERT_FALSE(bad_range.ok());
  EXPECT_NE(bad_range.status().message().find("'la'"), std::string::npos);
  EXPECT_NE(bad_range.status().message().find("threshold"), std::string::npos);

  auto bad_version = build("apiVersion: v9\nkind: EndpointPickerConfig\n");
  EXPECT_FALSE(bad_version.ok());
  auto bad_kind = build("apiVersion: llm-d.ai/v1alpha1\nkind: Pod\n");
  EXPECT_FALSE(bad_kind.ok());
  auto bad_yaml = build("plugins: [\n");
  EXPECT_FALSE(bad_yaml.ok());
  auto two_profiles_no_handler = build(
      "plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: a\n  plugins:\n"
      "  - pluginRef: queue-scorer\n- name: b\n  plugins:\n  - pluginRef: queue-scorer\n");
  EXPECT_FALSE(two_profiles_no_handler.ok());
  auto bad_decider = build(
      "plugins:\n- type: queue-scorer\n- type: disagg-profile-handler\n  parameters:\n"
      "    deciders:\n      prefill: missing\nschedulingProfiles:\n- name: decode\n"
      "  plugins:\n  - pluginRef: queue-scorer\n- name: prefill\n  plugins:\n"
      "  - pluginRef: queue-scorer\n");
  ASSERT_FALSE(bad_decider.ok());
  EXPECT_NE(bad_decider.status().message().find("missing"), std::string::npos);
  auto bad_weight = build(
      "plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: default\n  plugins:\n"
      "  - pluginRef: queue-scorer\n    weight: heavy\n");
  EXPECT_FALSE(bad_weight.ok());
}

TEST(Scheduler, WeightedSumPicksBest) {
  auto s = build(
      "plugins:\n- type: queue-scorer\n- type: kv-cache-utilization-scorer\n"
      "schedulingProfiles:\n- name: default\n  plugins:\n  - pluginRef: queue-scorer\n"
      "    weight: 1\n  - pluginRef: kv-cache-utilization-scorer\n    weight: 3\n");
  ASSERT_TRUE(s.ok()) << s.status();
  // a: queue 1.0*1 + kv 0.1*3 = 1.3; b: queue 0*1 + kv 0.8*3 = 2.4.
  std::vector<EndpointState> eps = {make_endpoint("a:1", 0, 0.9), make_endpoint("b:1", 4, 0.2)};
  CycleState c;
  auto r = (*s)->schedule(SchedulingRequest{}, eps, c);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->primary_profile, "default");
  EXPECT_EQ(*r->target("default"), "b:1");
  CycleState c2;
  EXPECT_FALSE((*s)->schedule(SchedulingRequest{}, {}, c2).ok());

  // At debug level every decision logs each scorer's score per endpoint.
  std::ostringstream captured;
  auto previous = spdlog::default_logger();
  auto logger = std::make_shared<spdlog::logger>(
      "capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(captured));
  logger->set_level(spdlog::level::debug);
  spdlog::set_default_logger(logger);
  SchedulingRequest req;
  req.request_id = "req-7";
  CycleState c3;
  ASSERT_TRUE((*s)->schedule(req, eps, c3).ok());
  spdlog::set_default_logger(previous);
  const std::string line = captured.str();
  EXPECT_NE(line.find("request=req-7 profile=default picked=b:1"), std::string::npos) << line;
  EXPECT_NE(line.find("a:1{queue-scorer=1.0000 kv-cache-utilization-scorer=0.1000 total=1.3000}"),
            std::string::npos)
      << line;
}

TEST(Scheduler, PdProfilesRunDecodeThenPrefill) {
  auto cfg = load_endpoint_picker_config(testdata("epp-pd.yaml"));
  ASSERT_TRUE(cfg.ok());
  auto s = Scheduler::create(*cfg);
  ASSERT_TRUE(s.ok()) << s.status();
  std::vector<EndpointState> eps = {make_endpoint("p:1", 0, 0, 0, "prefill"),
                                    make_endpoint("d:1", 0, 0, 0, "decode")};
  SchedulingRequest longreq;
  longreq.prompt_text = std::string(400, 'q');  // 100 tokens, nothing cached
  CycleState c;
  auto r = (*s)->schedule(longreq, eps, c);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->primary_profile, "decode");
  EXPECT_EQ(*r->target("decode"), "d:1");
  ASSERT_NE(r->target("prefill"), nullptr);
  EXPECT_EQ(*r->target("prefill"), "p:1");

  SchedulingRequest shortreq;
  shortreq.prompt_text = "hi there";  // 2 tokens < nonCachedTokens 16
  CycleState c2;
  auto r2 = (*s)->schedule(shortreq, eps, c2);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->target("prefill"), nullptr);

  // No prefill endpoint: decode-only.
  std::vector<EndpointState> only_decode = {make_endpoint("d:1", 0, 0, 0, "decode")};
  CycleState c3;
  auto r3 = (*s)->schedule(longreq, only_decode, c3);
  ASSERT_TRUE(r3.ok());
  EXPECT_EQ(r3->target("prefill"), nullptr);
  EXPECT_EQ(*r3->target("decode"), "d:1");
}

TEST(Scheduler, PrefixAffinityFollowsPreRequest) {
  auto s = build(
      "plugins:\n- type: prefix-cache-scorer\n  parameters:\n    blockSizeTokens: 1\n"
      "schedulingProfiles:\n- name: default\n  plugins:\n  - pluginRef: prefix-cache-scorer\n");
  ASSERT_TRUE(s.ok()) << s.status();
  std::vector<EndpointState> eps = {make_endpoint("a:1"), make_endpoint("b:1"),
                                    make_endpoint("c:1")};
  SchedulingRequest req;
  req.prompt_text = "the same long shared system prompt";
  CycleState c1;
  auto first = (*s)->schedule(req, eps, c1);
  ASSERT_TRUE(first.ok());
  (*s)->pre_request(req, *first, c1);
  for (int i = 0; i < 20; ++i) {
    CycleState c;
    auto again = (*s)->schedule(req, eps, c);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again->target("default"), *first->target("default"));
  }
  // The endpoint leaves: its index entries go with it.
  (*s)->endpoint_removed(*first->target("default"));
  CycleState c2;
  auto after = (*s)->schedule(req, eps, c2);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(c2.prefix_matches[*first->target("default")].matched_blocks, 0);
}

}  // namespace
}  // namespace moeserve::router
