#include "engine/sampling_params.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "nlohmann/json.hpp"

namespace moeserve::engine {
namespace {

std::string error_of(SamplingParams p) {
  absl::Status s = p.normalize_and_validate();
  EXPECT_EQ(s.code(), s.ok() ? absl::StatusCode::kOk : absl::StatusCode::kInvalidArgument);
  return std::string(s.message());
}

TEST(SamplingParamsTest, ValidationMessagesMatchVllm) {
  SamplingParams p;
  EXPECT_EQ(error_of(p), "");
  p = {};
  p.n = 0;
  EXPECT_EQ(error_of(p), "n must be at least 1, got 0.");
  p = {};
  p.presence_penalty = 2.5;
  EXPECT_EQ(error_of(p), "presence_penalty must be in [-2, 2], got 2.5.");
  p = {};
  p.frequency_penalty = -3;
  EXPECT_EQ(error_of(p), "frequency_penalty must be in [-2, 2], got -3.0.");
  p = {};
  p.repetition_penalty = 0;
  EXPECT_EQ(error_of(p), "repetition_penalty must be greater than zero, got 0.0.");
  p = {};
  p.repetition_penalty = std::numeric_limits<double>::infinity();
  EXPECT_EQ(error_of(p), "repetition_penalty must be greater than zero, got inf.");
  p = {};
  p.temperature = -0.5;
  EXPECT_EQ(error_of(p), "temperature must be non-negative, got -0.5.");
  p = {};
  p.top_p = 0;
  EXPECT_EQ(error_of(p), "top_p must be in (0, 1], got 0.0.");
  p = {};
  p.top_p = 1.5;
  EXPECT_EQ(error_of(p), "top_p must be in (0, 1], got 1.5.");
  p = {};
  p.top_k = -2;
  EXPECT_EQ(error_of(p), "top_k must be 0 (disable), or at least 1, got -2.");
  p = {};
  p.min_p = 1.1;
  EXPECT_EQ(error_of(p), "min_p must be in [0, 1], got 1.1.");
  p = {};
  p.max_tokens = 0;
  EXPECT_EQ(error_of(p), "max_tokens must be at least 1, got 0.");
  p = {};
  p.min_tokens = -1;
  EXPECT_EQ(error_of(p), "min_tokens must be greater than or equal to 0, got -1.");
  p = {};
  p.max_tokens = 4;
  p.min_tokens = 5;
  EXPECT_EQ(error_of(p), "min_tokens must be less than or equal to max_tokens=4, got 5.");
  p = {};
  p.logprobs = -2;
  EXPECT_EQ(error_of(p), "logprobs must be non-negative or -1, got -2.");
  p = {};
  p.prompt_logprobs = -5;
  EXPECT_EQ(error_of(p), "prompt_logprobs must be non-negative or -1, got -5.");
  p = {};
  p.stop = {"a", ""};
  EXPECT_EQ(error_of(p), "stop cannot contain an empty string.");
  p = {};
  p.logprobs = -1;
  p.top_k = -1;
  EXPECT_EQ(error_of(p), "");
}

TEST(SamplingParamsTest, NormalisationFollowsPostInit) {
  SamplingParams p;
  p.seed = -1;
  p.top_k = -1;
  p.temperature = 0.005;
  ASSERT_TRUE(p.normalize_and_validate().ok());
  EXPECT_FALSE(p.seed.has_value());
  EXPECT_EQ(p.top_k, 0);
  EXPECT_DOUBLE_EQ(p.temperature, 0.01);
  EXPECT_FALSE(p.is_greedy());

  SamplingParams g;
  g.temperature = 0.0;
  g.top_p = 0.5;
  g.top_k = 5;
  g.min_p = 0.2;
  ASSERT_TRUE(g.normalize_and_validate().ok());
  EXPECT_TRUE(g.is_greedy());
  EXPECT_EQ(g.top_p, 1.0);
  EXPECT_EQ(g.top_k, 0);
  EXPECT_EQ(g.min_p, 0.0);
}

TEST(SamplingParamsTest, OutputTextBufferLength) {
  SamplingParams p;
  EXPECT_EQ(p.output_text_buffer_length(), 0);
  p.stop = {"ab", "abcd"};
  EXPECT_EQ(p.output_text_buffer_length(), 3);
  p.include_stop_str_in_output = true;
  EXPECT_EQ(p.output_text_buffer_length(), 0);
}

TEST(PyFloatReprTest, MatchesPython) {
  EXPECT_EQ(py_float_repr(1.0), "1.0");
  EXPECT_EQ(py_float_repr(-3.0), "-3.0");
  EXPECT_EQ(py_float_repr(2.5), "2.5");
  EXPECT_EQ(py_float_repr(0.1), "0.1");
  EXPECT_EQ(py_float_repr(1e-5), "1e-05");
  EXPECT_EQ(py_float_repr(0.0001), "0.0001");
  EXPECT_EQ(py_float_repr(100000.0), "100000.0");
  EXPECT_EQ(py_float_repr(1e16), "1e+16");
  EXPECT_EQ(py_float_repr(1.5e300), "1.5e+300");
  EXPECT_EQ(py_float_repr(123.456), "123.456");
}

TEST(GenerationDefaultsTest, ReadsOnlyTheSixFieldsWithOverrides) {
  const nlohmann::json config = {{"temperature", 0.6},    {"top_p", 0.95},
                                 {"do_sample", true},     {"top_k", nullptr},
                                 {"max_new_tokens", 512}, {"presence_penalty", 1.0},
                                 {"eos_token_id", {1, 7}}};
  const nlohmann::json overrides = {{"temperature", 0.3}, {"min_p", 0.05}};
  auto d = GenerationDefaults::from_json(config, overrides);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->temperature, 0.3);
  EXPECT_EQ(d->top_p, 0.95);
  EXPECT_EQ(d->min_p, 0.05);
  EXPECT_FALSE(d->top_k.has_value());
  EXPECT_FALSE(d->repetition_penalty.has_value());
  EXPECT_EQ(d->max_tokens, 512);
  EXPECT_EQ(d->eos_token_ids, (std::vector<int32_t>{1, 7}));
  EXPECT_FALSE(GenerationDefaults::from_json({{"top_k", "x"}}, nullptr).ok());
}

TEST(GenerationDefaultsTest, PriorityRequestOverConfigOverOpenAIDefaults) {
  GenerationDefaults d;
  d.temperature = 0.6;
  d.top_k = 20;
  RequestSamplingFields req;
  req.temperature = 0.9;
  req.presence_penalty = 0.5;
  SamplingParams p;
  apply_sampling_defaults(req, d, &p);
  EXPECT_EQ(p.temperature, 0.9);  // request
  EXPECT_EQ(p.top_k, 20);         // generation_config
  EXPECT_EQ(p.top_p, 1.0);        // OpenAI default
  EXPECT_EQ(p.repetition_penalty, 1.0);
  EXPECT_EQ(p.presence_penalty, 0.5);
  EXPECT_EQ(p.frequency_penalty, 0.0);
  apply_sampling_defaults({}, {}, &p);
  EXPECT_EQ(p.temperature, 1.0);
  EXPECT_EQ(p.top_k, 0);
}

TEST(GenerationDefaultsTest, LoadModes) {
  const auto dir = std::filesystem::temp_directory_path() / "moeserve_gen_cfg_test";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "generation_config.json") << R"({"temperature": 0.7, "top_p": 0.8})";
  auto a = GenerationDefaults::load("auto", dir, nullptr);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->temperature, 0.7);
  auto v = GenerationDefaults::load("vllm", dir, nlohmann::json{{"top_k", 5}});
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->temperature.has_value());
  EXPECT_EQ(v->top_k, 5);
  auto other = GenerationDefaults::load(dir.string(), "/nonexistent", nullptr);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->top_p, 0.8);
  std::ofstream(dir / "generation_config.json") << "{not json";
  EXPECT_FALSE(GenerationDefaults::load("auto", dir, nullptr).ok());
  std::filesystem::remove_all(dir);
}

TEST(GenerationDefaultsTest, MaxTokensIsTheMinimumOfTheLimits) {
  GenerationDefaults d;
  EXPECT_EQ(*get_max_tokens(100, 30, std::nullopt, d), 70);
  EXPECT_EQ(*get_max_tokens(100, 30, 16, d), 16);
  d.max_tokens = 10;
  EXPECT_EQ(*get_max_tokens(100, 30, 16, d), 10);
  EXPECT_EQ(get_max_tokens(100, 101, 16, d).status().message(),
            "Input length (101) exceeds model's maximum context length (100).");
}

TEST(SamplingParamsTest, ExtraEosIdsBecomeStopTokens) {
  SamplingParams p;
  p.stop_token_ids = {9};
  p.update_from_generation_config({1, 5, 6}, 1);
  EXPECT_EQ(p.stop_token_ids, (std::vector<int32_t>{5, 6, 9}));
  EXPECT_EQ(p.all_stop_token_ids, (std::vector<int32_t>{1, 5, 6, 9}));
  SamplingParams q;
  q.ignore_eos = true;
  q.update_from_generation_config({1, 5}, 1);
  EXPECT_TRUE(q.stop_token_ids.empty());
  EXPECT_EQ(q.all_stop_token_ids, (std::vector<int32_t>{1, 5}));
}

}  // namespace
}  // namespace moeserve::engine
