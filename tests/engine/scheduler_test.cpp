// V1 scheduler behaviour, after vLLM's tests/v1/core/test_scheduler.py.
#include "engine/scheduler.h"

#include <gtest/gtest.h>

#include <numeric>

namespace moeserve::engine {
namespace {

constexpr int32_t kEos = 2;

struct Setup {
  int32_t num_blocks = 100;
  int32_t block_size = 4;
  int32_t budget = 32;
  int32_t max_num_seqs = 8;
  int32_t max_model_len = 256;
  int32_t threshold = 0;
  bool chunked = true;
  int32_t max_waiting = 0;
};

std::unique_ptr<Scheduler> make_scheduler(const Setup& s) {
  SchedulerConfig sc;
  sc.max_num_batched_tokens = s.budget;
  sc.max_num_seqs = s.max_num_seqs;
  sc.max_model_len = s.max_model_len;
  sc.long_prefill_token_threshold = s.threshold;
  sc.enable_chunked_prefill = s.chunked;
  sc.max_waiting_requests = s.max_waiting;
  KVCacheConfig kc;
  kc.num_blocks = s.num_blocks;
  kc.block_size = s.block_size;
  auto sched = Scheduler::create(sc, kc);
  EXPECT_TRUE(sched.ok()) << sched.status();
  return std::move(*sched);
}

std::unique_ptr<Request> req(const std::string& id, int32_t prompt_len, int32_t max_tokens = 16,
                             int32_t first_token = 100) {
  std::vector<int32_t> prompt(prompt_len);
  std::iota(prompt.begin(), prompt.end(), first_token);
  SamplingParams sp;
  sp.max_tokens = max_tokens;
  return std::make_unique<Request>(id, std::move(prompt), sp, kEos);
}

const ScheduledRequest* find(const SchedulerOutput& out, const std::string& id) {
  for (const auto& s : out.scheduled) {
    if (s.request_id == id) return &s;
  }
  return nullptr;
}

// Feeds token `tok` to every request that needs logits.
std::vector<RequestOutput> step_tokens(Scheduler& s, const SchedulerOutput& out, int32_t tok = 7) {
  absl::flat_hash_map<std::string, std::vector<int32_t>> sampled;
  for (const auto& r : out.scheduled) {
    if (r.needs_logits) sampled[r.request_id] = {tok};
  }
  return s.update_from_output(out, sampled);
}

TEST(SchedulerTest, BudgetSplitsAcrossRequestsAndChunksTheLastPrefill) {
  auto s = make_scheduler({.budget = 32});
  ASSERT_TRUE(s->add_request(req("a", 20)).ok());
  ASSERT_TRUE(s->add_request(req("b", 20, 16, 300)).ok());
  SchedulerOutput out = s->schedule();
  ASSERT_EQ(out.scheduled.size(), 2u);
  EXPECT_EQ(out.total_num_scheduled_tokens, 32);
  const ScheduledRequest* a = find(out, "a");
  const ScheduledRequest* b = find(out, "b");
  EXPECT_EQ(a->token_ids.size(), 20u);
  EXPECT_TRUE(a->needs_logits);
  EXPECT_TRUE(a->is_new);
  EXPECT_EQ(a->block_ids.size(), 5u);
  EXPECT_EQ(b->token_ids.size(), 12u);  // chunked
  EXPECT_FALSE(b->needs_logits);
  EXPECT_EQ(b->position_start, 0);
  EXPECT_EQ(b->token_ids.front(), 300);
  EXPECT_EQ(b->block_ids.size(), 3u);

  step_tokens(*s, out);
  out = s->schedule();
  // Running first: a decodes 1 token, b finishes its prompt (8 tokens).
  ASSERT_EQ(out.scheduled.size(), 2u);
  EXPECT_EQ(out.scheduled[0].request_id, "a");
  EXPECT_EQ(out.scheduled[0].token_ids, (std::vector<int32_t>{7}));
  EXPECT_EQ(out.scheduled[0].position_start, 20);
  EXPECT_FALSE(out.scheduled[0].is_new);
  EXPECT_EQ(out.scheduled[1].request_id, "b");
  EXPECT_EQ(out.scheduled[1].num_computed_tokens, 12);
  EXPECT_EQ(out.scheduled[1].token_ids.size(), 8u);
  EXPECT_EQ(out.scheduled[1].token_ids.front(), 312);
  EXPECT_TRUE(out.scheduled[1].needs_logits);
}

TEST(SchedulerTest, LongPromptChunkedAcrossSteps) {
  auto s = make_scheduler({.budget = 16});
  ASSERT_TRUE(s->add_request(req("a", 40)).ok());
  std::vector<int32_t> chunks;
  for (int i = 0; i < 3; ++i) {
    SchedulerOutput out = s->schedule();
    ASSERT_EQ(out.scheduled.size(), 1u);
    chunks.push_back(static_cast<int32_t>(out.scheduled[0].token_ids.size()));
    EXPECT_EQ(out.scheduled[0].position_start, 16 * i);
    EXPECT_EQ(out.scheduled[0].needs_logits, i == 2);
    auto res = step_tokens(*s, out);
    EXPECT_EQ(res.size(), i == 2 ? 1u : 0u);  // partial prefills sample nothing
  }
  EXPECT_EQ(chunks, (std::vector<int32_t>{16, 16, 8}));
  EXPECT_EQ(s->get_request("a")->output_token_ids, (std::vector<int32_t>{7}));
}

TEST(SchedulerTest, LongPrefillThresholdCapsPerRequestTokens) {
  auto s = make_scheduler({.budget = 64, .threshold = 10});
  ASSERT_TRUE(s->add_request(req("a", 30)).ok());
  ASSERT_TRUE(s->add_request(req("b", 30, 16, 300)).ok());
  SchedulerOutput out = s->schedule();
  ASSERT_EQ(out.scheduled.size(), 2u);
  EXPECT_EQ(out.scheduled[0].token_ids.size(), 10u);
  EXPECT_EQ(out.scheduled[1].token_ids.size(), 10u);
}

TEST(SchedulerTest, DecodesComeBeforeNewPrefills) {
  auto s = make_scheduler({.budget = 16});
  ASSERT_TRUE(s->add_request(req("a", 8)).ok());
  SchedulerOutput out = s->schedule();
  step_tokens(*s, out);
  ASSERT_TRUE(s->add_request(req("b", 40)).ok());
  out = s->schedule();
  ASSERT_EQ(out.scheduled.size(), 2u);
  EXPECT_EQ(out.scheduled[0].request_id, "a");
  EXPECT_EQ(out.scheduled[0].token_ids.size(), 1u);
  EXPECT_EQ(out.scheduled[1].request_id, "b");
  EXPECT_EQ(out.scheduled[1].token_ids.size(), 15u);
}

TEST(SchedulerTest, MaxNumSeqsLimitsRunning) {
  auto s = make_scheduler({.budget = 64, .max_num_seqs = 2});
  for (const char* id : {"a", "b", "c"}) ASSERT_TRUE(s->add_request(req(id, 4)).ok());
  SchedulerOutput out = s->schedule();
  EXPECT_EQ(out.scheduled.size(), 2u);
  EXPECT_EQ(s->num_running(), 2);
  EXPECT_EQ(s->num_waiting(), 1);
  EXPECT_EQ(find(out, "c"), nullptr);
}

TEST(SchedulerTest, ChunkedPrefillDisabledWaitsForBudget) {
  auto s = make_scheduler({.budget = 32, .max_model_len = 32, .chunked = false});
  ASSERT_TRUE(s->add_request(req("a", 20)).ok());
  ASSERT_TRUE(s->add_request(req("b", 20, 16, 300)).ok());
  SchedulerOutput out = s->schedule();
  ASSERT_EQ(out.scheduled.size(), 1u);  // b does not fit whole: not chunked
  EXPECT_EQ(out.scheduled[0].request_id, "a");
}

TEST(SchedulerTest, PreemptsLastRunningWhenBlocksRunOutThenRecomputes) {
  // 6 usable blocks of 4 tokens. a and b take 3 blocks each (prompt 12).
  auto s = make_scheduler({.num_blocks = 7, .budget = 64});
  ASSERT_TRUE(s->add_request(req("a", 12, 16, 100)).ok());
  ASSERT_TRUE(s->add_request(req("b", 12, 16, 500)).ok());
  SchedulerOutput out = s->schedule();
  ASSERT_EQ(out.scheduled.size(), 2u);
  EXPECT_EQ(s->kv_cache_manager().num_free_blocks(), 0);
  step_tokens(*s, out);
  // Both need a 4th block for token 13: a is served by preempting b (the last one).
  out = s->schedule();
  EXPECT_EQ(out.preempted_request_ids, (std::vector<std::string>{"b"}));
  ASSERT_EQ(out.scheduled.size(), 1u);  // nothing admitted in a preempting step
  EXPECT_EQ(out.scheduled[0].request_id, "a");
  EXPECT_EQ(s->get_request("b")->status, RequestStatus::kPreempted);
  EXPECT_EQ(s->get_request("b")->num_computed_tokens, 0);
  EXPECT_EQ(s->num_waiting(), 1);
  EXPECT_EQ(s->stats().num_preemptions, 1);
  step_tokens(*s, out);

  // Finish a: its blocks come back, b resumes and re-prefills prompt + its output token.
  ASSERT_TRUE(s->abort("a"));
  out = s->schedule();
  EXPECT_EQ(out.finished_request_ids, (std::vector<std::string>{"a"}));
  ASSERT_EQ(out.scheduled.size(), 1u);
  const ScheduledRequest& b = out.scheduled[0];
  EXPECT_EQ(b.request_id, "b");
  EXPECT_TRUE(b.is_new);
  // b's blocks were freed tail first, so a's new block evicted b's third block; its first
  // two blocks are still cached.
  EXPECT_EQ(b.num_computed_tokens, 8);
  EXPECT_EQ(b.token_ids, (std::vector<int32_t>{508, 509, 510, 511, 7}));
  EXPECT_TRUE(b.needs_logits);
  EXPECT_EQ(s->get_request("b")->num_preemptions, 1);
}

TEST(SchedulerTest, PreemptingItselfStopsTheRunningPass) {
  // 3 usable blocks; a single request that outgrows them is preempted by itself.
  auto s = make_scheduler({.num_blocks = 4, .budget = 64});
  ASSERT_TRUE(s->add_request(req("a", 12, 100)).ok());
  SchedulerOutput out = s->schedule();
  step_tokens(*s, out);
  out = s->schedule();
  EXPECT_EQ(out.preempted_request_ids, (std::vector<std::string>{"a"}));
  EXPECT_TRUE(out.scheduled.empty());
  EXPECT_EQ(s->kv_cache_manager().num_free_blocks(), 3);
}

TEST(SchedulerTest, AbortFreesBlocksImmediately) {
  auto s = make_scheduler({.num_blocks = 11});
  ASSERT_TRUE(s->add_request(req("a", 20)).ok());
  SchedulerOutput out = s->schedule();
  EXPECT_EQ(s->kv_cache_manager().num_free_blocks(), 5);
  ASSERT_TRUE(s->abort("a"));
  EXPECT_EQ(s->kv_cache_manager().num_free_blocks(), 10);
  EXPECT_EQ(s->num_running(), 0);
  EXPECT_FALSE(s->has_unfinished_requests());
  EXPECT_FALSE(s->abort("a"));
  // Tokens arriving for an aborted request are ignored.
  EXPECT_TRUE(step_tokens(*s, out).empty());
  // Aborting a waiting request removes it from the queue.
  ASSERT_TRUE(s->add_request(req("w", 4)).ok());
  ASSERT_TRUE(s->abort("w"));
  EXPECT_EQ(s->num_waiting(), 0);
}

TEST(SchedulerTest, StopsOnMaxTokensEosStopTokenAndMaxModelLen) {
  auto s = make_scheduler({.max_model_len = 12});
  ASSERT_TRUE(s->add_request(req("len", 4, 2)).ok());
  auto eos = req("eos", 4);
  ASSERT_TRUE(s->add_request(std::move(eos)).ok());
  auto stop = req("stop", 4);
  stop->sampling_params.stop_token_ids = {42};
  ASSERT_TRUE(s->add_request(std::move(stop)).ok());
  auto model_len = req("ml", 10, 100);
  ASSERT_TRUE(s->add_request(std::move(model_len)).ok());
  auto ignore = req("ign", 4, 3);
  ignore->sampling_params.ignore_eos = true;
  ASSERT_TRUE(s->add_request(std::move(ignore)).ok());

  SchedulerOutput out = s->schedule();
  absl::flat_hash_map<std::string, std::vector<int32_t>> sampled = {
      {"len", {5}}, {"eos", {kEos}}, {"stop", {42}}, {"ml", {5}}, {"ign", {kEos}}};
  auto res = s->update_from_output(out, sampled);
  absl::flat_hash_map<std::string, RequestOutput> by_id;
  for (auto& r : res) by_id[r.request_id] = r;
  EXPECT_FALSE(by_id["len"].finished);
  EXPECT_TRUE(by_id["eos"].finished);
  EXPECT_EQ(by_id["eos"].status, RequestStatus::kFinishedStopped);
  EXPECT_TRUE(std::holds_alternative<std::monostate>(by_id["eos"].stop_reason));
  EXPECT_TRUE(by_id["stop"].finished);
  EXPECT_EQ(std::get<int32_t>(by_id["stop"].stop_reason), 42);
  EXPECT_FALSE(by_id["ml"].finished);
  EXPECT_FALSE(by_id["ign"].finished);

  out = s->schedule();
  EXPECT_EQ(out.finished_request_ids.size(), 2u);
  sampled = {{"len", {5}}, {"ml", {5}}, {"ign", {kEos}}};
  res = s->update_from_output(out, sampled);
  by_id.clear();
  for (auto& r : res) by_id[r.request_id] = r;
  EXPECT_TRUE(by_id["len"].finished);  // max_tokens = 2
  EXPECT_EQ(by_id["len"].status, RequestStatus::kFinishedLengthCapped);
  EXPECT_TRUE(by_id["ml"].finished);  // 10 + 2 = max_model_len
  EXPECT_EQ(by_id["ml"].status, RequestStatus::kFinishedLengthCapped);
  EXPECT_FALSE(by_id["ign"].finished);
  EXPECT_EQ(s->num_running(), 1);
}

TEST(SchedulerTest, MinTokensDefersEosAndStopTokens) {
  auto s = make_scheduler({});
  auto r = req("a", 4);
  r->sampling_params.min_tokens = 2;
  ASSERT_TRUE(s->add_request(std::move(r)).ok());
  SchedulerOutput out = s->schedule();
  auto res = step_tokens(*s, out, kEos);
  ASSERT_EQ(res.size(), 1u);
  EXPECT_FALSE(res[0].finished);
  out = s->schedule();
  res = step_tokens(*s, out, kEos);
  EXPECT_TRUE(res[0].finished);
  EXPECT_EQ(res[0].status, RequestStatus::kFinishedStopped);
}

TEST(SchedulerTest, MultipleTokensPerStepAreTrimmedAtStop) {
  auto s = make_scheduler({});
  ASSERT_TRUE(s->add_request(req("a", 4, 16)).ok());
  SchedulerOutput out = s->schedule();
  auto res = s->update_from_output(out, {{"a", {5, kEos, 9}}});
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0].new_token_ids, (std::vector<int32_t>{5, kEos}));
  EXPECT_TRUE(res[0].finished);
}

TEST(SchedulerTest, WaitingQueueLimitAndValidation) {
  auto s = make_scheduler({.max_model_len = 16, .max_waiting = 2});
  ASSERT_TRUE(s->add_request(req("a", 4)).ok());
  EXPECT_TRUE(s->can_accept());
  ASSERT_TRUE(s->add_request(req("b", 4)).ok());
  EXPECT_FALSE(s->can_accept());
  EXPECT_EQ(s->add_request(req("c", 4)).code(), absl::StatusCode::kUnavailable);
  s->schedule();  // both admitted: the queue empties
  EXPECT_TRUE(s->can_accept());
  EXPECT_EQ(s->add_request(req("a", 4)).code(), absl::StatusCode::kAlreadyExists);
  absl::Status too_long = s->add_request(req("x", 17));
  EXPECT_EQ(too_long.message(), "Input length (17) exceeds model's maximum context length (16).");
  EXPECT_EQ(s->add_request(req("e", 0)).code(), absl::StatusCode::kInvalidArgument);
}

TEST(SchedulerTest, PrefixHitSkipsComputedBlocksForNewRequest) {
  auto s = make_scheduler({.budget = 64});
  ASSERT_TRUE(s->add_request(req("a", 18)).ok());
  SchedulerOutput out = s->schedule();
  step_tokens(*s, out);
  ASSERT_TRUE(s->add_request(req("b", 18)).ok());
  out = s->schedule();
  const ScheduledRequest* b = find(out, "b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->num_computed_tokens, 16);
  EXPECT_EQ(b->token_ids, (std::vector<int32_t>{116, 117}));
  EXPECT_EQ(std::vector<int32_t>(b->block_ids.begin(), b->block_ids.begin() + 4),
            std::vector<int32_t>(find(out, "a")->block_ids.begin(),
                                 find(out, "a")->block_ids.begin() + 4));
  auto st = s->stats();
  EXPECT_EQ(st.prefix_cache.queries, 36);
  EXPECT_EQ(st.prefix_cache.hits, 16);
}

TEST(SchedulerConfigTest, RejectsInconsistentLimits) {
  SchedulerConfig c;
  c.max_model_len = 100;
  c.max_num_batched_tokens = 64;
  c.max_num_seqs = 128;
  EXPECT_EQ(c.validate().message(),
            "max_num_batched_tokens (64) must be greater than or equal to max_num_seqs (128).");
  c.max_num_seqs = 8;
  c.enable_chunked_prefill = false;
  EXPECT_FALSE(c.validate().ok());
  c.enable_chunked_prefill = true;
  EXPECT_TRUE(c.validate().ok());
}

}  // namespace
}  // namespace moeserve::engine
