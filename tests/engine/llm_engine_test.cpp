// The engine loop over a real tiny model: continuous batching gives every request the tokens
// it would get alone, prefix-cache hits change nothing, stop strings and aborts end requests
// and free their blocks, the waiting queue is bounded, shutdown drains.
#include "engine/llm_engine.h"

#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include "gtest/gtest.h"
#include "model/deepseek.h"
#include "../gen/tiny_model.h"

namespace moeserve::engine {
namespace {

const std::string& tiny_model() { return ::moeserve::testing::tiny_model("llm_engine_test", 3); }

// Collects a request's outputs; wait() blocks until the final one.
class Collector final : public OutputSink {
 public:
  void on_output(EngineOutput o) override {
    std::lock_guard<std::mutex> lk(mu_);
    tokens_.insert(tokens_.end(), o.token_ids.begin(), o.token_ids.end());
    text_ += o.text;
    if (o.finished) {
      final_ = o;
      done_ = true;
      cv_.notify_all();
    }
  }
  EngineOutput wait() {
    std::unique_lock<std::mutex> lk(mu_);
    EXPECT_TRUE(cv_.wait_for(lk, std::chrono::seconds(60), [&] { return done_; }));
    return final_;
  }
  std::vector<int32_t> tokens() {
    std::lock_guard<std::mutex> lk(mu_);
    return tokens_;
  }
  std::string text() {
    std::lock_guard<std::mutex> lk(mu_);
    return text_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int32_t> tokens_;
  std::string text_;
  EngineOutput final_;
  bool done_ = false;
};

std::unique_ptr<LlmEngine> make_engine(int32_t num_blocks = 64, bool prefix_caching = true,
                                       int32_t max_waiting = 0, int32_t budget = 64) {
  auto model = DeepseekModel::load(tiny_model());
  EXPECT_TRUE(model.ok()) << model.status();
  auto tok = Tokenizer::load(tiny_model());
  EXPECT_TRUE(tok.ok()) << tok.status();
  EngineConfig c;
  c.scheduler.max_num_batched_tokens = budget;
  c.scheduler.max_num_seqs = 8;
  c.scheduler.max_model_len = 256;
  c.scheduler.max_waiting_requests = max_waiting;
  c.cache.num_blocks = num_blocks;
  c.cache.block_size = 16;
  c.cache.enable_prefix_caching = prefix_caching;
  c.sampler_seed = 1;
  auto e = LlmEngine::create(c, std::move(*model), std::make_shared<Tokenizer>(std::move(*tok)));
  EXPECT_TRUE(e.ok()) << e.status();
  return std::move(*e);
}

std::vector<int32_t> prompt(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> p(n);
  for (auto& t : p) t = 4 + static_cast<int32_t>(rng() % 400);
  return p;
}

SamplingParams greedy(int max_tokens) {
  SamplingParams p;
  p.temperature = 0.0;
  p.max_tokens = max_tokens;
  p.ignore_eos = true;
  return p;
}

std::shared_ptr<Collector> submit(LlmEngine& e, const std::string& id, std::vector<int32_t> p,
                                  SamplingParams sp) {
  auto c = std::make_shared<Collector>();
  NewRequest r;
  r.request_id = id;
  r.prompt_token_ids = std::move(p);
  r.params = std::move(sp);
  r.sink = c;
  Status st = e.add_request(std::move(r));
  EXPECT_TRUE(st.ok()) << st;
  return c;
}

TEST(LlmEngine, BatchedRequestsGetTheirSoloTokens) {
  std::vector<std::vector<int32_t>> solo;
  {
    auto e = make_engine(64, /*prefix_caching=*/false);
    for (int i = 0; i < 4; ++i) {
      auto c = submit(*e, "solo" + std::to_string(i), prompt(10 + 13 * i, i), greedy(12));
      EXPECT_EQ(c->wait().finish_reason, FinishReason::kLength);
      solo.push_back(c->tokens());
      EXPECT_EQ(solo.back().size(), 12u);
    }
  }
  // All at once with a small token budget: chunked prefill, mixed prefill/decode steps.
  auto e = make_engine(64, /*prefix_caching=*/true, 0, /*budget=*/24);
  std::vector<std::shared_ptr<Collector>> cs;
  for (int i = 0; i < 4; ++i) {
    cs.push_back(submit(*e, "b" + std::to_string(i), prompt(10 + 13 * i, i), greedy(12)));
  }
  for (int i = 0; i < 4; ++i) {
    cs[i]->wait();
    EXPECT_EQ(cs[i]->tokens(), solo[i]) << "request " << i;
  }
  const EngineStats s = e->stats();
  EXPECT_EQ(s.num_running, 0);
  EXPECT_DOUBLE_EQ(s.kv_cache_usage, 0.0);
  EXPECT_EQ(s.generation_tokens, 48);
  EXPECT_EQ(s.prompt_tokens, 10 + 23 + 36 + 49);
}

TEST(LlmEngine, RepeatedPromptHitsThePrefixCacheWithSameTokens) {
  auto e = make_engine();
  const auto p = prompt(70, 9);
  auto a = submit(*e, "a", p, greedy(6));
  a->wait();
  auto b = submit(*e, "b", p, greedy(6));
  const EngineOutput fb = b->wait();
  EXPECT_EQ(a->tokens(), b->tokens());
  EXPECT_EQ(fb.num_cached_tokens, 64);  // 4 full blocks of the 70-token prompt
  const EngineStats s = e->stats();
  EXPECT_GE(s.prefix_cache_hits, 64);
  EXPECT_GE(s.prefix_cache_queries, 140);
}

TEST(LlmEngine, AbortEndsTheRequestAndFreesItsBlocks) {
  auto e = make_engine();
  auto c = submit(*e, "long", prompt(40, 2), greedy(200));
  while (c->tokens().size() < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  e->abort("long");
  const EngineOutput f = c->wait();
  EXPECT_EQ(f.finish_reason, FinishReason::kAbort);
  EXPECT_LT(c->tokens().size(), 200u);
  for (int i = 0; i < 100 && e->stats().kv_cache_usage > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_DOUBLE_EQ(e->stats().kv_cache_usage, 0.0);
}

TEST(LlmEngine, StopStringEndsGenerationAndIsNotEmitted) {
  auto e = make_engine();
  auto free_run = submit(*e, "free", prompt(8, 4), greedy(30));
  free_run->wait();
  const std::string text = free_run->text();
  ASSERT_GE(text.size(), 6u);
  // Stop on a piece of what the model generates after its first few characters.
  const std::string stop = text.substr(3, 2);
  SamplingParams sp = greedy(30);
  sp.stop = {stop};
  auto c = submit(*e, "stopped", prompt(8, 4), sp);
  const EngineOutput f = c->wait();
  EXPECT_EQ(f.finish_reason, FinishReason::kStop);
  EXPECT_EQ(std::get<std::string>(f.stop_reason), stop);
  EXPECT_EQ(c->text(), text.substr(0, text.find(stop)));
}

TEST(LlmEngine, WaitingQueueIsBoundedAndBadPromptsAreRejected) {
  auto e = make_engine(64, true, /*max_waiting=*/2);
  NewRequest bad;
  bad.request_id = "bad";
  bad.prompt_token_ids = {1, 999999};
  bad.sink = std::make_shared<Collector>();
  EXPECT_TRUE(absl::IsInvalidArgument(e->add_request(bad)));
  bad.prompt_token_ids = prompt(300, 1);  // beyond max_model_len 256
  EXPECT_TRUE(absl::IsInvalidArgument(e->add_request(bad)));
  int accepted = 0, refused = 0;
  std::vector<std::shared_ptr<Collector>> cs;
  for (int i = 0; i < 40; ++i) {
    auto c = std::make_shared<Collector>();
    NewRequest r;
    r.request_id = "q" + std::to_string(i);
    r.prompt_token_ids = prompt(20, i);
    r.params = greedy(50);
    r.sink = c;
    Status st = e->add_request(std::move(r));
    if (st.ok()) {
      ++accepted;
      cs.push_back(c);
    } else {
      EXPECT_TRUE(absl::IsUnavailable(st)) << st;
      ++refused;
    }
  }
  EXPECT_GT(refused, 0);
  for (auto& c : cs) EXPECT_EQ(c->wait().finish_reason, FinishReason::kLength);
  EXPECT_GT(accepted, 0);
}

TEST(LlmEngine, CountsTokensRoutedToEachExpert) {
  auto e = make_engine(64, /*prefix_caching=*/false);
  const auto before = e->expert_load();
  ASSERT_NE(before, nullptr);
  EXPECT_EQ(before->steps_in_window, 0);
  auto a = submit(*e, "a", prompt(20, 1), greedy(6));
  auto b = submit(*e, "b", prompt(9, 2), greedy(4));
  a->wait();
  b->wait();
  // Outputs go out before the step's statistics are published; the engine publishes once it
  // has nothing left to run.
  const EngineStats s = e->stats();
  std::shared_ptr<const ExpertLoadSnapshot> load;
  for (int i = 0; i < 500; ++i) {
    load = e->expert_load();
    if (load->steps_in_window == s.steps) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(load->steps_in_window, s.steps);
  int64_t tokens = 0;
  for (int32_t t : s.iteration_tokens) tokens += t;
  EXPECT_EQ(tokens, 20 + 9 + 5 + 3);  // prompts, then every generated token but the last
  const ModelConfig& mc = e->model_config();
  ASSERT_EQ(load->tokens.size(), load->layer_ids.size());
  ASSERT_FALSE(load->layer_ids.empty());
  EXPECT_EQ(load->layer_ids[0], mc.first_k_dense_replace);
  for (const std::vector<int64_t>& layer : load->tokens) {
    ASSERT_EQ(static_cast<int64_t>(layer.size()), mc.n_routed_experts);
    int64_t routed = 0;
    for (int64_t t : layer) routed += t;
    EXPECT_EQ(routed, tokens * mc.num_experts_per_tok);
  }
  EXPECT_EQ(load->num_ranks, 1);
  EXPECT_DOUBLE_EQ(load->balancedness[0], 1.0);
}

TEST(LlmEngine, ShutdownDrainsInFlightRequests) {
  auto e = make_engine();
  auto c = submit(*e, "inflight", prompt(12, 5), greedy(20));
  e->shutdown(/*drain=*/true);
  const EngineOutput f = c->wait();
  EXPECT_EQ(f.finish_reason, FinishReason::kLength);
  EXPECT_EQ(c->tokens().size(), 20u);
  NewRequest late;
  late.request_id = "late";
  late.prompt_token_ids = prompt(5, 1);
  late.sink = std::make_shared<Collector>();
  EXPECT_TRUE(absl::IsUnavailable(e->add_request(late)));
}

}  // namespace
}  // namespace moeserve::engine
