#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

namespace moeserve::engine {
namespace {

SampleInput input_for(const std::vector<float>& logits, const SamplingParams& p,
                      std::mt19937_64* gen = nullptr) {
  SampleInput in;
  in.logits = logits;
  in.params = &p;
  in.generator = gen;
  return in;
}

std::vector<float> logs_of(const std::vector<double>& probs) {
  std::vector<float> out;
  for (double p : probs) out.push_back(static_cast<float>(std::log(p)));
  return out;
}

std::map<int32_t, int> histogram(Sampler& s, const std::vector<float>& logits,
                                 const SamplingParams& p, int draws) {
  std::map<int32_t, int> h;
  std::mt19937_64 gen(1234);
  for (int i = 0; i < draws; ++i) h[s.sample(input_for(logits, p, &gen)).token_id]++;
  return h;
}

TEST(SamplerTest, GreedyIsArgmaxAfterPenalties) {
  Sampler s(1);
  SamplingParams p;
  p.temperature = 0.0;
  ASSERT_TRUE(p.normalize_and_validate().ok());
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, -1.0f};
  EXPECT_EQ(s.sample(input_for(logits, p)).token_id, 1);
  p.repetition_penalty = 2.0;
  const std::vector<int32_t> prompt = {1};
  SampleInput in = input_for(logits, p);
  in.prompt_token_ids = prompt;
  EXPECT_EQ(s.sample(in).token_id, 2);  // 3 / 2 = 1.5 < 2
}

TEST(SamplerTest, PenaltiesMatchVllmFormulas) {
  SamplingParams p;
  p.repetition_penalty = 2.0;
  p.frequency_penalty = 0.5;
  p.presence_penalty = 0.25;
  std::vector<float> logits = {2.0f, -2.0f, 1.0f, 0.5f};
  const std::vector<int32_t> prompt = {0};
  const std::vector<int32_t> output = {1, 2, 2};
  SampleInput in = input_for(logits, p);
  in.prompt_token_ids = prompt;
  in.output_token_ids = output;
  apply_penalties(logits, in);
  EXPECT_FLOAT_EQ(logits[0], 1.0f);    // prompt only: 2 / 2
  EXPECT_FLOAT_EQ(logits[1], -4.75f);  // -2 * 2 - 0.5 * 1 - 0.25
  EXPECT_FLOAT_EQ(logits[2], -0.75f);  // 1 / 2 - 0.5 * 2 - 0.25
  EXPECT_FLOAT_EQ(logits[3], 0.5f);    // untouched
}

TEST(SamplerTest, MinTokensMasksEosAndStopTokens) {
  Sampler s(1);
  SamplingParams p;
  p.temperature = 0.0;
  p.min_tokens = 2;
  p.stop_token_ids = {1};
  const std::vector<float> logits = {0.0f, 5.0f, 1.0f, 9.0f};
  const std::vector<int32_t> output = {0};
  SampleInput in = input_for(logits, p);
  in.output_token_ids = output;
  in.eos_token_id = 3;
  EXPECT_EQ(s.sample(in).token_id, 2);
  const std::vector<int32_t> output2 = {0, 0};
  in.output_token_ids = output2;
  EXPECT_EQ(s.sample(in).token_id, 3);
}

TEST(SamplerTest, SeededRequestsAreReproducibleWhateverTheBatch) {
  const std::vector<float> logits = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f};
  SamplingParams seeded;
  seeded.seed = 42;
  SamplingParams other;
  other.seed = 7;
  SamplingParams unseeded;

  auto run_alone = [&] {
    Sampler s(99);
    std::mt19937_64 gen(static_cast<uint64_t>(*seeded.seed));
    std::vector<int32_t> out;
    for (int i = 0; i < 50; ++i) out.push_back(s.sample(input_for(logits, seeded, &gen)).token_id);
    return out;
  };
  auto run_in_batch = [&] {
    Sampler s(12345);
    std::mt19937_64 gen(static_cast<uint64_t>(*seeded.seed));
    std::mt19937_64 gen_other(static_cast<uint64_t>(*other.seed));
    std::vector<int32_t> out;
    for (int i = 0; i < 50; ++i) {
      for (int j = 0; j < i % 3; ++j) s.sample(input_for(logits, unseeded));
      s.sample(input_for(logits, other, &gen_other));
      out.push_back(s.sample(input_for(logits, seeded, &gen)).token_id);
    }
    return out;
  };
  const std::vector<int32_t> alone = run_alone();
  EXPECT_EQ(alone, run_in_batch());
  std::set<int32_t> distinct(alone.begin(), alone.end());
  EXPECT_GT(distinct.size(), 3u);  // really random, not constant
  // A different seed gives a different stream.
  Sampler s(0);
  std::mt19937_64 g2(43);
  std::vector<int32_t> other_stream;
  for (int i = 0; i < 50; ++i)
    other_stream.push_back(s.sample(input_for(logits, seeded, &g2)).token_id);
  EXPECT_NE(alone, other_stream);
}

TEST(SamplerTest, TopKRestrictsSupport) {
  Sampler s(1);
  SamplingParams p;
  p.top_k = 3;
  const std::vector<float> logits = {0.0f, 2.0f, 0.5f, 1.9f, 1.8f, 0.1f, -1.0f, 0.2f};
  auto h = histogram(s, logits, p, 3000);
  EXPECT_EQ(h.size(), 3u);
  EXPECT_TRUE(h.contains(1) && h.contains(3) && h.contains(4));
  // Probabilities renormalised over the 3: e^2 / (e^2 + e^1.9 + e^1.8) ~ 0.367.
  EXPECT_NEAR(h[1] / 3000.0, 0.367, 0.03);
}

TEST(SamplerTest, TopKKeepsTiesAtTheThreshold) {
  Sampler s(1);
  SamplingParams p;
  p.top_k = 2;
  const std::vector<float> logits = {1.0f, 3.0f, 1.0f, 0.0f};
  auto h = histogram(s, logits, p, 2000);
  EXPECT_TRUE(h.contains(0) && h.contains(2));
  EXPECT_FALSE(h.contains(3));
}

TEST(SamplerTest, TopPRestrictsSupportToNucleus) {
  Sampler s(1);
  SamplingParams p;
  p.top_p = 0.75;
  const std::vector<float> logits = logs_of({0.5, 0.3, 0.1, 0.05, 0.05});
  auto h = histogram(s, logits, p, 4000);
  EXPECT_EQ(h.size(), 2u);
  EXPECT_NEAR(h[0] / 4000.0, 0.625, 0.03);  // 0.5 / 0.8
  p.top_p = 0.85;                           // now 0.5 + 0.3 < 0.85: token 2 joins
  h = histogram(s, logits, p, 4000);
  EXPECT_EQ(h.size(), 3u);
  p.top_p = 0.01;  // at least one token
  h = histogram(s, logits, p, 200);
  EXPECT_EQ(h.size(), 1u);
  EXPECT_EQ(h.begin()->first, 0);
}

TEST(SamplerTest, MinPRestrictsSupport) {
  Sampler s(1);
  SamplingParams p;
  p.min_p = 0.25;  // keep p >= 0.125
  const std::vector<float> logits = logs_of({0.5, 0.3, 0.1, 0.05, 0.05});
  auto h = histogram(s, logits, p, 4000);
  EXPECT_EQ(h.size(), 2u);
  EXPECT_TRUE(h.contains(0) && h.contains(1));
  p.min_p = 0.0;
  h = histogram(s, logits, p, 4000);
  EXPECT_EQ(h.size(), 5u);
  EXPECT_NEAR(h[2] / 4000.0, 0.1, 0.02);
}

TEST(SamplerTest, TemperatureSharpens) {
  Sampler s(1);
  SamplingParams hot, cold;
  cold.temperature = 0.25;
  const std::vector<float> logits = logs_of({0.6, 0.4});
  auto h_hot = histogram(s, logits, hot, 4000);
  auto h_cold = histogram(s, logits, cold, 4000);
  EXPECT_NEAR(h_hot[0] / 4000.0, 0.6, 0.03);
  // 0.6^4 / (0.6^4 + 0.4^4) = 0.835
  EXPECT_NEAR(h_cold[0] / 4000.0, 0.835, 0.03);
}

TEST(SamplerTest, LogprobsAreRawLogSoftmax) {
  Sampler s(1);
  SamplingParams p;
  p.temperature = 0.0;
  p.repetition_penalty = 10.0;
  p.logprobs = 2;
  const std::vector<float> logits = {1.0f, 4.0f, 3.0f, 2.0f};
  const std::vector<int32_t> prompt = {1};
  SampleInput in = input_for(logits, p);
  in.prompt_token_ids = prompt;
  SampleResult r = s.sample(in);
  EXPECT_EQ(r.token_id, 2);  // 4 / 10 < 3
  const double lse = std::log(std::exp(1.0) + std::exp(4.0) + std::exp(3.0) + std::exp(2.0));
  ASSERT_TRUE(r.logprob.has_value());
  EXPECT_NEAR(*r.logprob, 3.0 - lse, 1e-5);  // raw, before the penalty
  EXPECT_EQ(r.rank, 2);
  ASSERT_EQ(r.top_logprobs.size(), 2u);
  EXPECT_EQ(r.top_logprobs[0].token_id, 1);
  EXPECT_NEAR(r.top_logprobs[0].logprob, 4.0 - lse, 1e-5);
  EXPECT_EQ(r.top_logprobs[1].token_id, 2);
  p.logprobs = -1;
  EXPECT_EQ(s.sample(in).top_logprobs.size(), 4u);
  p.logprobs.reset();
  EXPECT_FALSE(s.sample(in).logprob.has_value());
}

}  // namespace
}  // namespace moeserve::engine
