#include "engine/input_processor.h"

#include "gtest/gtest.h"

namespace moeserve::engine {
namespace {

InputProcessorConfig base() {
  InputProcessorConfig c;
  c.vocab_size = 100;
  c.max_model_len = 16;
  return c;
}

InputProcessor make(InputProcessorConfig c) {
  auto p = InputProcessor::create(std::move(c));
  EXPECT_TRUE(p.ok()) << p.status();
  return std::move(*p);
}

TEST(InputProcessor, EosRuleGenerationConfigThenConfigThenTokenizer) {
  InputProcessorConfig c = base();
  EXPECT_EQ(make(c).eos_token_id(), std::nullopt);
  c.tokenizer_eos_token_id = 3;
  EXPECT_EQ(make(c).eos_token_id(), 3);
  c.config_eos_token_id = 2;
  EXPECT_EQ(make(c).eos_token_id(), 2);
  c.generation_defaults.eos_token_ids = {7, 8};
  EXPECT_EQ(make(c).eos_token_id(), 7);
}

TEST(InputProcessor, EosOutsideTheVocabularyIsRefused) {
  InputProcessorConfig c = base();
  c.config_eos_token_id = 100;
  auto p = InputProcessor::create(c);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("eos_token_id"), std::string::npos) << p.status();
}

TEST(InputProcessor, PromptChecks) {
  const InputProcessor p = make(base());
  EXPECT_TRUE(p.check_prompt({1, 2, 99}).ok());
  EXPECT_EQ(p.check_prompt({}).message(), "The prompt is empty after tokenization.");
  EXPECT_EQ(p.check_prompt({1, 100}).message(), "Token id 100 is out of vocabulary");
  EXPECT_EQ(p.check_prompt({-1}).message(), "Token id -1 is out of vocabulary");
  EXPECT_EQ(p.check_prompt(std::vector<int32_t>(17, 1)).message(),
            "Input length (17) exceeds model's maximum context length (16).");
}

TEST(InputProcessor, ProcessAppliesDefaultsLimitsAndEos) {
  InputProcessorConfig c = base();
  c.config_eos_token_id = 2;
  c.generation_defaults.eos_token_ids = {7, 8};
  c.generation_defaults.top_p = 0.5;
  c.generation_defaults.temperature = 0.7;
  const InputProcessor p = make(c);
  RequestInputs in;
  in.prompt_token_ids = {1, 2, 3, 4, 5, 6};
  in.sampling.top_p = 0.9;  // the request wins over generation_config
  auto sp = p.process(in);
  ASSERT_TRUE(sp.ok()) << sp.status();
  EXPECT_EQ(sp->max_tokens, 10);  // the rest of the context
  EXPECT_DOUBLE_EQ(sp->top_p, 0.9);
  EXPECT_DOUBLE_EQ(sp->temperature, 0.7);
  // Primary EOS 7 (generation_config's first); 8 stops too.
  EXPECT_EQ(sp->stop_token_ids, std::vector<int32_t>({8}));
  EXPECT_EQ(sp->all_stop_token_ids, std::vector<int32_t>({7, 8}));

  in.max_tokens = 4;
  EXPECT_EQ(p.process(in)->max_tokens, 4);
  in.sampling.temperature = -1;
  EXPECT_FALSE(p.process(in).ok());
  in.sampling.temperature = 1.0;
  in.prompt_token_ids = {1000};
  EXPECT_EQ(p.process(in).status().message(), "Token id 1000 is out of vocabulary");
}

}  // namespace
}  // namespace moeserve::engine
