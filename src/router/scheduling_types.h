// Plain data passed through one scheduling cycle: the request as the scheduler sees it, the
// per-cycle scratch state plugins share, and the results. Not thread-safe: one cycle runs on
// one thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "router/endpoint.h"

namespace moeserve::router {

struct SchedulingRequest {
  std::string request_id;
  std::string target_path;  // "/v1/completions" or "/v1/chat/completions"
  std::string model;
  // Text hashed by the approximate prefix index: the raw completion prompt, or the
  // JSON-serialised chat `messages` (llm-d's approximateprefix hashing input).
  std::string prompt_text;
  // Set when the completion `prompt` is a list of token ids (used by the precise scorer).
  std::optional<std::vector<uint32_t>> prompt_tokens;
  std::string cache_salt;
  std::map<std::string, std::string> headers;  // lower-case names
};

// Approximate-prefix match of the request on one endpoint, stored by prefix-cache-scorer for
// later plugins (the P/D decider, no-hit-lru-scorer).
struct PrefixMatchInfo {
  int matched_blocks = 0;
  int total_blocks = 0;
  int block_size_tokens = 0;
};

// Scratch state of one scheduling cycle.
struct CycleState {
  std::map<std::string, PrefixMatchInfo> prefix_matches;  // by endpoint address
  bool prefix_info_present = false;
  std::vector<uint64_t> prefix_hashes;  // chained hashes of the request (approximate index)
  int prefix_block_size_tokens = 0;
  std::map<std::string, std::size_t> prefix_lru_capacity;  // by endpoint address
};

struct ScoredEndpoint {
  const EndpointState* endpoint;
  double score;
};

struct ProfileRunResult {
  std::vector<std::string> targets;  // endpoint addresses, best first
};

struct SchedulingResult {
  std::string primary_profile;
  // nullopt: the profile ran but found no endpoint.
  std::map<std::string, std::optional<ProfileRunResult>> profile_results;

  // First target of the named profile, or nullptr.
  const std::string* target(const std::string& profile) const {
    auto it = profile_results.find(profile);
    if (it == profile_results.end() || !it->second || it->second->targets.empty()) return nullptr;
    return &it->second->targets.front();
  }
};

}  // namespace moeserve::router
