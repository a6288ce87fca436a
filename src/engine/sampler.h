// Token sampling over one request's logits, in vLLM V1's order
// (vllm/v1/sample/sampler.py):
//   raw logprobs (log_softmax of the unprocessed logits, vLLM's default "raw_logprobs")
//   -> min_tokens (stop tokens masked while output < min_tokens)
//   -> penalties: repetition over prompt+output (positive logits divided, negative
//      multiplied), then frequency (x count) and presence (x [count > 0]) over output
//   -> greedy argmax if temperature < 1e-5
//   -> temperature -> min_p -> top_k -> top_p -> one draw.
// top_k keeps every token tied with the k-th largest logit; top_p keeps the smallest
// most-probable set whose mass reaches p (at least one token). min_p before top_k/top_p is
// vLLM V1's order (min_p and top_k commute; min_p renormalises before top_p).
//
// Randomness: a seeded request passes its own generator, so its draws depend only on its
// seed and its logits, never on the rest of the batch; unseeded requests share the
// sampler's source. A draw is u = (gen() >> 11) * 2^-53, walked over the surviving tokens'
// cumulative probabilities: in descending-probability order (ties: lower id first) when
// top_p < 1, which needs that sort anyway, else in token-id order (no O(V log V) sort).
//
// Thread-safety: a Sampler is not thread-safe (its shared source mutates); use one per
// engine-loop thread.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <vector>

#include "engine/sampling_params.h"

namespace moeserve::engine {

struct SampleInput {
  std::span<const float> logits;  // [vocab]
  const SamplingParams* params = nullptr;
  std::span<const int32_t> prompt_token_ids;
  std::span<const int32_t> output_token_ids;
  std::optional<int32_t> eos_token_id;   // masked with the stop ids while < min_tokens
  std::mt19937_64* generator = nullptr;  // the request's own; null: the shared source
};

struct TokenLogprob {
  int32_t token_id = 0;
  float logprob = 0.0f;
};

// Per generated token, when the request asked for logprobs.
struct TokenLogprobs {
  int32_t token_id = 0;
  float logprob = 0.0f;
  int32_t rank = 0;
  std::vector<TokenLogprob> top;  // highest first
};

struct SampleResult {
  int32_t token_id = 0;
  // Filled when params->logprobs is set: the sampled token's raw logprob and rank
  // (1 = most likely), and the top-N raw logprobs, highest first (N = vocab for -1).
  std::optional<float> logprob;
  int32_t rank = 0;
  std::vector<TokenLogprob> top_logprobs;
};

class Sampler {
 public:
  // `seed` fixes the shared source (tests); otherwise it is seeded from the OS.
  explicit Sampler(std::optional<uint64_t> seed = std::nullopt);

  SampleResult sample(const SampleInput& input);

 private:
  std::mt19937_64 shared_;
};

// log_softmax of `logits` in double precision. [vocab] -> [vocab]
std::vector<float> log_softmax(std::span<const float> logits);

// Applies min_tokens masking and the three penalties to `logits` in place. [vocab]
void apply_penalties(std::span<float> logits, const SampleInput& input);

}  // namespace moeserve::engine
