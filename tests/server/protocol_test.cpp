#include "server/protocol.h"

#include <gtest/gtest.h>

namespace moeserve::server {
namespace {

Json parse(const std::string& s) {
  return Json::parse(s);
}

template <typename T>
ApiError error_of(const ApiResult<T>& r) {
  EXPECT_TRUE(std::holds_alternative<ApiError>(r));
  if (auto* e = std::get_if<ApiError>(&r)) return *e;
  return {};
}

TEST(ParseJsonBody, RejectsNonJsonAndNonObjects) {
  for (const char* body :
       {"", "{", "not json", "[1,2]", "12", "\"x\"", "{\"a\":1,}", "{\"a\":\xff}"}) {
    auto r = parse_json_body(body);
    ASSERT_TRUE(std::holds_alternative<ApiError>(r)) << body;
    EXPECT_EQ(std::get<ApiError>(r).status, 400);
    EXPECT_EQ(std::get<ApiError>(r).type, "BadRequestError");
  }
  EXPECT_TRUE(std::holds_alternative<Json>(parse_json_body(" {\"a\": 1} ")));
}

TEST(CompletionRequest, PromptForms) {
  auto r1 = parse_completion_request(parse(R"({"prompt":"hi"})"));
  ASSERT_TRUE(std::holds_alternative<CompletionRequest>(r1));
  auto& c1 = std::get<CompletionRequest>(r1);
  ASSERT_EQ(c1.prompts.size(), 1u);
  EXPECT_EQ(*c1.prompts[0].text, "hi");
  EXPECT_EQ(c1.gen.max_tokens, 16);  // vLLM default

  auto r2 = parse_completion_request(parse(R"({"prompt":["a","b"],"max_tokens":null})"));
  auto& c2 = std::get<CompletionRequest>(r2);
  EXPECT_EQ(c2.prompts.size(), 2u);
  EXPECT_EQ(c2.gen.max_tokens, 16);

  auto r3 = parse_completion_request(parse(R"({"prompt":[1,2,3]})"));
  auto& c3 = std::get<CompletionRequest>(r3);
  ASSERT_EQ(c3.prompts.size(), 1u);
  EXPECT_EQ(c3.prompts[0].token_ids, (std::vector<int32_t>{1, 2, 3}));

  auto r4 = parse_completion_request(parse(R"({"prompt":[[1],[2,3]]})"));
  auto& c4 = std::get<CompletionRequest>(r4);
  ASSERT_EQ(c4.prompts.size(), 2u);
  EXPECT_EQ(c4.prompts[1].token_ids, (std::vector<int32_t>{2, 3}));
}

TEST(CompletionRequest, UnknownFieldsIgnored) {
  auto r = parse_completion_request(
      parse(R"({"prompt":"x","definitely_unknown":{"a":[1]},"priority":0,"user":"u"})"));
  EXPECT_TRUE(std::holds_alternative<CompletionRequest>(r));
}

TEST(CompletionRequest, FieldsAreRead) {
  auto r = parse_completion_request(parse(
      R"({"prompt":"x","n":3,"temperature":0.5,"top_p":0.9,"top_k":5,"min_p":0.1,"seed":7,
          "stop":"END","stop_token_ids":[9],"ignore_eos":true,"min_tokens":2,"max_tokens":20,
          "logprobs":3,"skip_special_tokens":false,"include_stop_str_in_output":true,
          "stream":true,"stream_options":{"continuous_usage_stats":true},"cache_salt":"s",
          "max_tokens":1e40})"));
  ASSERT_TRUE(std::holds_alternative<CompletionRequest>(r)) << error_of(r).message;
  const auto& g = std::get<CompletionRequest>(r).gen;
  EXPECT_EQ(g.params.n, 3);
  EXPECT_EQ(*g.sampling.temperature, 0.5);
  EXPECT_EQ(*g.sampling.top_k, 5);
  EXPECT_EQ(*g.params.seed, 7);
  EXPECT_EQ(g.params.stop, std::vector<std::string>{"END"});
  EXPECT_EQ(g.params.stop_token_ids, std::vector<int32_t>{9});
  EXPECT_TRUE(g.params.ignore_eos);
  EXPECT_EQ(g.params.min_tokens, 2);
  EXPECT_EQ(*g.params.logprobs, 3);
  EXPECT_FALSE(g.params.skip_special_tokens);
  EXPECT_TRUE(g.params.include_stop_str_in_output);
  ASSERT_TRUE(g.stream_options.has_value());
  EXPECT_TRUE(g.stream_options->include_usage);  // default true when the object is given
  EXPECT_TRUE(g.stream_options->continuous_usage_stats);
  EXPECT_EQ(g.cache_salt, "s");
  EXPECT_EQ(*g.max_tokens, 2147483647);  // huge max_tokens is clamped (min()-ed later)
}

struct BadCase {
  const char* body;
  const char* message_part;
};

class CompletionValidation : public ::testing::TestWithParam<BadCase> {};

TEST_P(CompletionValidation, Rejects400) {
  auto r = parse_completion_request(parse(GetParam().body));
  ASSERT_TRUE(std::holds_alternative<ApiError>(r)) << GetParam().body;
  const ApiError& e = std::get<ApiError>(r);
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.type, "BadRequestError");
  EXPECT_NE(e.message.find(GetParam().message_part), std::string::npos) << "got: " << e.message;
}

INSTANTIATE_TEST_SUITE_P(
    Table, CompletionValidation,
    ::testing::Values(
        BadCase{R"({})", "Either prompt or prompt_embeds must be provided and non-empty."},
        BadCase{R"({"prompt":""})", "must be provided and non-empty"},
        BadCase{R"({"prompt":[]})", "must be provided and non-empty"},
        BadCase{R"({"prompt":[[]]})", "must be provided and non-empty"},
        BadCase{R"({"prompt":[-1]})", "greater than or equal to 0"},
        BadCase{R"({"prompt":[1.5]})", "valid integer"},
        BadCase{R"({"prompt":[1,"a"]})", "prompt: Input should be"},
        BadCase{R"({"prompt":{"a":1}})", "prompt: Input should be"},
        BadCase{R"({"prompt":[99999999999]})", "less than or equal to 2147483647"},
        BadCase{R"({"prompt":"x","n":0})", "n must be at least 1, got 0."},
        BadCase{R"({"prompt":"x","n":"2"})", "n: Input should be a valid integer"},
        BadCase{R"({"prompt":"x","n":1e300})", "n: Input should be"},
        BadCase{R"({"prompt":"x","temperature":-1})",
                "temperature must be non-negative, got -1.0."},
        BadCase{R"({"prompt":"x","temperature":"hot"})",
                "temperature: Input should be a valid number"},
        BadCase{R"({"prompt":"x","top_p":0})", "top_p must be in (0, 1], got 0.0."},
        BadCase{R"({"prompt":"x","top_p":1.5})", "top_p must be in (0, 1], got 1.5."},
        BadCase{R"({"prompt":"x","top_k":-2})",
                "top_k must be 0 (disable), or at least 1, got -2."},
        BadCase{R"({"prompt":"x","min_p":2})", "min_p must be in [0, 1], got 2.0."},
        BadCase{R"({"prompt":"x","presence_penalty":3})",
                "presence_penalty must be in [-2, 2], got 3.0."},
        BadCase{R"({"prompt":"x","frequency_penalty":-3})", "frequency_penalty must be in [-2, 2]"},
        BadCase{R"({"prompt":"x","repetition_penalty":0})",
                "repetition_penalty must be greater than zero"},
        BadCase{R"({"prompt":"x","max_tokens":0})", "max_tokens must be at least 1, got 0."},
        BadCase{R"({"prompt":"x","max_tokens":"10"})",
                "max_tokens: Input should be a valid integer"},
        BadCase{R"({"prompt":"x","min_tokens":-1})",
                "min_tokens must be greater than or equal to 0"},
        BadCase{R"({"prompt":"x","min_tokens":20,"max_tokens":5})",
                "min_tokens must be less than or equal to max_tokens=5, got 20."},
        BadCase{R"({"prompt":"x","logprobs":-2})", "logprobs must be non-negative or -1"},
        BadCase{R"({"prompt":"x","seed":1e30})", "seed"},
        BadCase{R"({"prompt":"x","seed":18446744073709551615})", "seed"},
        BadCase{R"({"prompt":"x","stop":5})", "stop: Input should be"},
        BadCase{R"({"prompt":"x","stop":["a",1]})", "stop: Input should be"},
        BadCase{R"({"prompt":"x","stop_token_ids":[-5]})", "stop_token_ids"},
        BadCase{R"({"prompt":"x","ignore_eos":"yes"})",
                "ignore_eos: Input should be a valid boolean"},
        BadCase{R"({"prompt":"x","stream":1})", "stream: Input should be a valid boolean"},
        BadCase{R"({"prompt":"x","stream_options":{"include_usage":true}})",
                "Stream options can only be defined when `stream=True`."},
        BadCase{R"({"prompt":"x","stream":false,"stream_options":{}})",
                "Stream options can only be defined when `stream=True`."},
        BadCase{R"({"prompt":"x","stream":true,"stream_options":{"include_usage":"y"}})",
                "include_usage"},
        BadCase{R"({"prompt":"x","suffix":"s"})", "suffix is not currently supported"},
        BadCase{R"({"prompt":"x","cache_salt":""})",
                "Parameter 'cache_salt' must be a non-empty string if provided."},
        BadCase{R"({"prompt":"x","stream":true,"prompt_logprobs":1})",
                "`prompt_logprobs` are not available when `stream=True`."},
        BadCase{R"({"prompt":"x","logit_bias":{"1":5}})", "logit_bias is not supported"},
        BadCase{R"({"prompt":"x","model":5})", "model: Input should be a valid string"}));

TEST(ChatRequest, MessagesAndDefaults) {
  auto r = parse_chat_request(parse(
      R"({"messages":[{"role":"system","content":"s"},
                      {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],
          "max_tokens":5,"max_completion_tokens":7,"logprobs":true,"top_logprobs":2,
          "chat_template_kwargs":{"enable_thinking":false}})"));
  ASSERT_TRUE(std::holds_alternative<ChatCompletionRequest>(r)) << error_of(r).message;
  const auto& c = std::get<ChatCompletionRequest>(r);
  EXPECT_EQ(c.messages[1]["content"], "a\nb");
  EXPECT_EQ(*c.gen.max_tokens, 7);  // max_completion_tokens wins
  EXPECT_EQ(*c.gen.params.logprobs, 2);
  EXPECT_FALSE(c.gen.add_special_tokens);
  EXPECT_TRUE(c.add_generation_prompt);
  EXPECT_EQ(c.chat_template_kwargs["enable_thinking"], false);

  auto r2 = parse_chat_request(parse(R"({"messages":[{"role":"user","content":"x"}]})"));
  const auto& c2 = std::get<ChatCompletionRequest>(r2);
  EXPECT_FALSE(c2.gen.max_tokens.has_value());  // chat: unset = up to max_model_len
  EXPECT_FALSE(c2.gen.params.logprobs.has_value());
}

class ChatValidation : public ::testing::TestWithParam<BadCase> {};

TEST_P(ChatValidation, Rejects400) {
  auto r = parse_chat_request(parse(GetParam().body));
  ASSERT_TRUE(std::holds_alternative<ApiError>(r)) << GetParam().body;
  EXPECT_EQ(std::get<ApiError>(r).status, 400);
  EXPECT_NE(std::get<ApiError>(r).message.find(GetParam().message_part), std::string::npos)
      << "got: " << std::get<ApiError>(r).message;
}

INSTANTIATE_TEST_SUITE_P(
    Table, ChatValidation,
    ::testing::Values(
        BadCase{R"({})", "messages: Field required"},
        BadCase{R"({"messages":"hi"})", "messages: Input should be a valid list"},
        BadCase{R"({"messages":[]})", "messages must not be empty"},
        BadCase{R"({"messages":[1]})", "messages[0]: Input should be a valid dictionary"},
        BadCase{R"({"messages":[{"content":"x"}]})", "messages[0].role"},
        BadCase{R"({"messages":[{"role":"user","content":5}]})", "messages[0].content"},
        BadCase{R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]})",
                "Unsupported content part type: image_url"},
        BadCase{
            R"({"messages":[{"role":"user","content":"x"}],"add_generation_prompt":true,"continue_final_message":true})",
            "Cannot set both `continue_final_message` and `add_generation_prompt` to True."},
        BadCase{R"({"messages":[{"role":"user","content":"x"}],"top_logprobs":2})",
                "when using `top_logprobs`, `logprobs` must be set to true."},
        BadCase{R"({"messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":-3})",
                "`top_logprobs` must be a positive value."},
        BadCase{R"({"messages":[{"role":"user","content":"x"}],"chat_template_kwargs":[1]})",
                "chat_template_kwargs"},
        BadCase{R"({"messages":[{"role":"user","content":"x"}],"temperature":-0.5})",
                "temperature must be non-negative"},
        BadCase{R"({"messages":[{"role":"user","content":"x"}],"stream_options":{}})",
                "Stream options can only be defined when `stream=True`."}));

TEST(TokenizeRequest, PromptOrMessages) {
  auto r = parse_tokenize_request(parse(R"({"prompt":"abc","return_token_strs":true})"));
  const auto& t = std::get<TokenizeRequest>(r);
  EXPECT_FALSE(t.is_chat);
  EXPECT_TRUE(t.add_special_tokens);
  EXPECT_TRUE(t.return_token_strs);
  auto r2 = parse_tokenize_request(parse(R"({"messages":[{"role":"user","content":"x"}]})"));
  const auto& t2 = std::get<TokenizeRequest>(r2);
  EXPECT_TRUE(t2.is_chat);
  EXPECT_FALSE(t2.add_special_tokens);
  EXPECT_EQ(error_of(parse_tokenize_request(parse(R"({})"))).status, 400);
  EXPECT_EQ(error_of(parse_tokenize_request(parse(R"({"prompt":3})"))).status, 400);
}

TEST(DetokenizeRequest, Tokens) {
  auto r = parse_detokenize_request(parse(R"({"tokens":[1,2]})"));
  EXPECT_EQ(std::get<DetokenizeRequest>(r).tokens, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(error_of(parse_detokenize_request(parse(R"({})"))).status, 400);
  EXPECT_EQ(error_of(parse_detokenize_request(parse(R"({"tokens":["a"]})"))).status, 400);
  EXPECT_EQ(error_of(parse_detokenize_request(parse(R"({"tokens":[-1]})"))).status, 400);
}

TEST(ParseJsonBody, BoundedIntake) {
  // 100000 nested arrays: refused before any recursive code sees them.
  const std::string deep =
      R"({"model":"m","messages":)" + std::string(100000, '[') + std::string(100000, ']') + "}";
  ApiError e = error_of(parse_json_body(deep));
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.type, "BadRequestError");
  net::JsonLimits small;
  small.max_bytes = 8;
  e = error_of(parse_json_body(R"({"prompt":"long enough"})", small));
  EXPECT_EQ(e.status, 413);
}

TEST(RequestLimits, NAboveTheBoundIsVllms400) {
  ApiError e = error_of(parse_completion_request(parse(R"({"prompt":"x","n":20000000})")));
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.message,
            "n must be at most 16384, got 20000000. To increase this limit, set the "
            "VLLM_MAX_N_SEQUENCES environment variable.");
  EXPECT_TRUE(std::holds_alternative<CompletionRequest>(
      parse_completion_request(parse(R"({"prompt":"x","n":16384})"))));
}

TEST(RequestLimits, LogprobsAgainstMaxLogprobs) {
  EXPECT_FALSE(check_logprobs(std::nullopt, 20, 1000));
  EXPECT_FALSE(check_logprobs(0, 20, 1000));
  EXPECT_FALSE(check_logprobs(20, 20, 1000));
  auto e = check_logprobs(21, 20, 1000);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->message, "Requested sample logprobs of 21, which is greater than max allowed: 20");
  EXPECT_EQ(e->param, "logprobs");
  e = check_logprobs(-1, 20, 1000);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->message, "Requested sample logprobs of 1000, which is greater than max allowed: 20");
  EXPECT_FALSE(check_logprobs(-1, -1, 1000));
  EXPECT_TRUE(check_logprobs(1001, -1, 1000));
}

TEST(RequestLimits, StopStrings) {
  std::string many = R"({"prompt":"x","stop":[)";
  for (int i = 0; i < 257; ++i) many += i ? ",\"s\"" : "\"s\"";
  many += "]}";
  EXPECT_EQ(error_of(parse_completion_request(parse(many))).param, "stop");
  const std::string long_stop = R"({"prompt":"x","stop":")" + std::string(5000, 'a') + "\"}";
  EXPECT_EQ(error_of(parse_completion_request(parse(long_stop))).param, "stop");
}

}  // namespace
}  // namespace moeserve::server
