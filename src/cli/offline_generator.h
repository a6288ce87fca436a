// Single-sequence generation for `moeserve run` and `moeserve bench model`: prefill the
// prompt in one chunk, then decode one token per step over a private latent cache.
// Thread-safety: one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "model/deepseek.h"

namespace moeserve {

struct TokenLogprob {
  int32_t id;
  float logprob;
};

struct GenerateOptions {
  int64_t max_tokens = 16;
  float temperature = 0.0f;  // 0 = greedy
  uint64_t seed = 0;
  bool ignore_eos = false;
  int64_t top_logprobs = 0;  // K highest raw log-softmax entries per generated token
  std::vector<int64_t> eos_ids;
};

struct GenerateResult {
  std::vector<int32_t> token_ids;
  std::vector<std::vector<TokenLogprob>> logprobs;
  double prefill_seconds = 0;
  double decode_seconds = 0;  // for tokens after the first
};

// Calls on_token(id) after each token is chosen (for streaming); may be empty.
StatusOr<GenerateResult> generate(DeepseekModel& model, const std::vector<int32_t>& prompt,
                                  const GenerateOptions& opts,
                                  const std::function<void(int32_t)>& on_token = {});

// Index of the largest value (lowest index on ties).
int32_t argmax(const float* x, int64_t n);
// The k largest entries of log_softmax(x), highest first.
std::vector<TokenLogprob> top_logprobs(const float* x, int64_t n, int64_t k);

}  // namespace moeserve
