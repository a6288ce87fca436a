// The EPLB load statistics in /metrics and in /eplb/load's JSON.
#include "server/server_metrics.h"

#include <memory>

#include "gtest/gtest.h"

namespace moeserve::server {
namespace {

ExpertLoadSnapshot two_layer_load() {
  // Layers 1 and 2 of a model, 4 experts on 2 ranks (contiguous).
  const std::vector<int64_t> tokens = {10, 30, 0, 20, 5, 5, 5, 5};
  return make_expert_load_snapshot(tokens, {1, 2}, 4, 2, 1000, 12);
}

TEST(ServerMetrics, ExportsExpertLoad) {
  ServerMetrics m("demo", 256, CacheConfigInfo{});
  engine::EngineStats s;
  s.expert_load = std::make_shared<const ExpertLoadSnapshot>(two_layer_load());
  const std::string text = m.render(s);
  EXPECT_NE(text.find("# TYPE moeserve:eplb_balancedness gauge"), std::string::npos);
  EXPECT_NE(text.find("moeserve:eplb_balancedness{model_name=\"demo\",engine=\"0\",layer=\"1\"} "
                      "0.75\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("moeserve:eplb_balancedness{model_name=\"demo\",engine=\"0\",layer=\"2\"} "
                      "1.0\n"),
            std::string::npos);
  EXPECT_NE(text.find("moeserve:eplb_expert_tokens{model_name=\"demo\",engine=\"0\",layer=\"1\","
                      "expert=\"1\"} 30.0\n"),
            std::string::npos);
  EXPECT_NE(text.find("moeserve:eplb_expert_tokens{model_name=\"demo\",engine=\"0\",layer=\"2\","
                      "expert=\"3\"} 5.0\n"),
            std::string::npos);
}

TEST(ServerMetrics, ExpertLoadJsonIsAPlanInput) {
  const nlohmann::json j = expert_load_json(two_layer_load());
  EXPECT_EQ(j["load"], nlohmann::json::parse("[[10, 30, 0, 20], [5, 5, 5, 5]]"));
  EXPECT_EQ(j["layers"], nlohmann::json::parse("[1, 2]"));
  EXPECT_EQ(j["rank_tokens"], nlohmann::json::parse("[[40, 20], [10, 10]]"));
  EXPECT_EQ(j["balancedness"][0].get<double>(), 0.75);
  EXPECT_EQ(j["num_ranks"], 2);
  EXPECT_EQ(j["steps_in_window"], 12);
}

}  // namespace
}  // namespace moeserve::server
