// One generation request as the engine loop sees it (vLLM V1 vllm/v1/request.py).
// Token glossary: num_tokens = prompt + output; num_computed_tokens = tokens whose KV is
// in the cache (or being written by the step just scheduled).
//
// Thread-safety: owned by the Scheduler on the engine-loop thread.
#pragma once

#include <climits>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine/block_hash.h"
#include "engine/finish_reason.h"
#include "engine/sampling_params.h"

namespace moeserve::engine {

enum class RequestStatus {
  kWaiting,
  kRunning,
  kPreempted,
  kFinishedStopped,
  kFinishedLengthCapped,
  kFinishedAborted,
};

inline bool is_finished(RequestStatus s) {
  return s >= RequestStatus::kFinishedStopped;
}

// The finish reason of a finished status; nullopt otherwise.
inline std::optional<FinishReason> finish_reason(RequestStatus s) {
  switch (s) {
    case RequestStatus::kFinishedStopped:
      return FinishReason::kStop;
    case RequestStatus::kFinishedLengthCapped:
      return FinishReason::kLength;
    case RequestStatus::kFinishedAborted:
      return FinishReason::kAbort;
    default:
      return std::nullopt;
  }
}

// Why a request stopped: a stop token id, a stop string, or nothing (EOS / length).
using StopReason = std::variant<std::monostate, int32_t, std::string>;

struct Request {
  Request(std::string id, std::vector<int32_t> prompt, SamplingParams params,
          std::optional<int32_t> eos = std::nullopt, std::string salt = "")
      : request_id(std::move(id)),
        prompt_token_ids(std::move(prompt)),
        all_token_ids(prompt_token_ids),
        sampling_params(std::move(params)),
        eos_token_id(eos),
        cache_salt(std::move(salt)) {
    if (sampling_params.seed.has_value()) {
      generator.emplace(static_cast<uint64_t>(*sampling_params.seed));
    }
  }

  std::string request_id;
  std::vector<int32_t> prompt_token_ids;
  std::vector<int32_t> output_token_ids;
  std::vector<int32_t> all_token_ids;  // prompt followed by output
  SamplingParams sampling_params;
  std::optional<int32_t> eos_token_id;
  std::string cache_salt;  // extra key of the first block's hash when non-empty

  RequestStatus status = RequestStatus::kWaiting;
  int32_t num_computed_tokens = 0;
  int32_t num_cached_tokens = -1;  // prefix-cache hit at first scheduling; -1 before
  int32_t num_preemptions = 0;
  StopReason stop_reason;
  // Chained hashes of the full blocks of all_token_ids, filled by the KVCacheManager.
  std::vector<BlockHash> block_hashes;
  // The request's own random stream when it has a seed (reproducible whatever the batch);
  // unseeded requests draw from the sampler's shared source.
  std::optional<std::mt19937_64> generator;

  int32_t num_tokens() const { return static_cast<int32_t>(all_token_ids.size()); }
  int32_t num_prompt_tokens() const { return static_cast<int32_t>(prompt_token_ids.size()); }
  int32_t num_output_tokens() const { return static_cast<int32_t>(output_token_ids.size()); }
  int32_t max_tokens() const { return sampling_params.max_tokens.value_or(INT32_MAX); }

  void append_output_token(int32_t token) {
    output_token_ids.push_back(token);
    all_token_ids.push_back(token);
  }
};

}  // namespace moeserve::engine
