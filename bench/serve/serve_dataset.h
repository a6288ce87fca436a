// Request sets and arrival schedules for `moeserve bench serve`, with the definitions of
// `vllm bench serve`:
//  - random: input length uniform in [L(1-r), L(1+r)] (integers, inclusive), likewise the
//    output length, plus a shared random prefix of --random-prefix-len tokens. Prompts are
//    token-id lists drawn uniformly from [token_low, token_high), so input lengths are exact
//    without a tokenizer (the completions API accepts `prompt: [ids]`).
//  - prefix-repetition: num_prefixes random prefixes of prefix_len tokens, each followed by
//    a random suffix_len-token suffix; requests are spread evenly over the prefixes and
//    shuffled.
//  - custom: prompts (text) from a JSON array or JSONL file: strings or objects with
//    "prompt" and optional "output_tokens"/"max_tokens".
//  - arrivals: all at t=0 for an infinite rate, else gamma-distributed gaps with shape
//    `burstiness` and mean 1/rate (Poisson when burstiness = 1).
//
// Thread-safety: pure functions of their inputs (and the seed).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "nlohmann/json.hpp"

namespace moeserve::bench {

struct SampleRequest {
  nlohmann::json prompt;   // string, or array of token ids
  int64_t prompt_len = 0;  // tokens (exact for id prompts; -1 when unknown: text prompts)
  int64_t expected_output_len = 0;
};

struct RandomDatasetOptions {
  int64_t num_prompts = 1000;
  int64_t input_len = 1024;
  int64_t output_len = 128;
  double range_ratio = 0.0;
  int64_t prefix_len = 0;
  int64_t token_low = 10;
  int64_t token_high = 1000;
  uint64_t seed = 0;
};

struct PrefixRepetitionOptions {
  int64_t num_prompts = 1000;
  int64_t prefix_len = 256;
  int64_t suffix_len = 256;
  int64_t num_prefixes = 10;
  int64_t output_len = 128;
  int64_t token_low = 10;
  int64_t token_high = 1000;
  uint64_t seed = 0;
};

StatusOr<std::vector<SampleRequest>> make_random_dataset(const RandomDatasetOptions& o);
StatusOr<std::vector<SampleRequest>> make_prefix_repetition_dataset(
    const PrefixRepetitionOptions& o);
// Reads prompts from `path`; takes the first `num_prompts` (all when <= 0).
StatusOr<std::vector<SampleRequest>> load_custom_dataset(const std::string& path,
                                                         int64_t num_prompts,
                                                         int64_t default_output_len);

// Send times (seconds from the start) of `n` requests. `request_rate` <= 0 or infinite:
// all zero.
StatusOr<std::vector<double>> arrival_times(int64_t n, double request_rate, double burstiness,
                                            uint64_t seed);

}  // namespace moeserve::bench
