#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "core/status.h"

namespace moeserve::engine {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

double uniform01(std::mt19937_64& gen) {
  return static_cast<double>(gen() >> 11) * 0x1.0p-53;
}

int32_t argmax(std::span<const float> x) {
  int32_t best = 0;
  for (int32_t i = 1; i < static_cast<int32_t>(x.size()); ++i) {
    if (x[i] > x[best]) best = i;
  }
  return best;
}

// Higher value first, lower id on ties.
struct ByValueDesc {
  std::span<const float> x;
  bool operator()(int32_t a, int32_t b) const { return x[a] > x[b] || (x[a] == x[b] && a < b); }
};

// Ids of the tokens that survive top_k: all of them, or those tied with or above the
// k-th largest value. O(V) selection, no full sort.
std::vector<int32_t> top_k_candidates(std::span<const float> x, int32_t top_k) {
  const auto vocab = static_cast<int32_t>(x.size());
  std::vector<int32_t> ids(vocab);
  std::iota(ids.begin(), ids.end(), 0);
  if (top_k <= 0 || top_k >= vocab) return ids;
  std::nth_element(ids.begin(), ids.begin() + (top_k - 1), ids.end(), ByValueDesc{x});
  const float threshold = x[ids[top_k - 1]];
  std::vector<int32_t> kept;
  kept.reserve(top_k);
  for (int32_t i = 0; i < vocab; ++i) {
    if (x[i] >= threshold) kept.push_back(i);
  }
  return kept;
}

void fill_logprobs(std::span<const float> raw_logits, int32_t requested, SampleResult& result) {
  const std::vector<float> lp = log_softmax(raw_logits);
  const auto vocab = static_cast<int32_t>(lp.size());
  const float sampled = lp[result.token_id];
  result.logprob = sampled;
  result.rank = 1 + static_cast<int32_t>(
                        std::count_if(lp.begin(), lp.end(), [&](float v) { return v > sampled; }));
  const int32_t n = requested < 0 ? vocab : std::min(requested, vocab);
  std::vector<int32_t> ids(vocab);
  std::iota(ids.begin(), ids.end(), 0);
  std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), ByValueDesc{lp});
  result.top_logprobs.reserve(n);
  for (int32_t i = 0; i < n; ++i) result.top_logprobs.push_back({ids[i], lp[ids[i]]});
}

}  // namespace

std::vector<float> log_softmax(std::span<const float> logits) {
  std::vector<float> out(logits.size());
  if (logits.empty()) return out;
  const float mx = *std::max_element(logits.begin(), logits.end());
  if (!std::isfinite(mx)) {
    for (size_t i = 0; i < logits.size(); ++i) out[i] = logits[i] == mx ? 0.0f : kNegInf;
    return out;
  }
  double sum = 0.0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - mx);
  const double lse = mx + std::log(sum);
  for (size_t i = 0; i < logits.size(); ++i) {
    out[i] = static_cast<float>(static_cast<double>(logits[i]) - lse);
  }
  return out;
}

void apply_penalties(std::span<float> logits, const SampleInput& input) {
  const SamplingParams& p = *input.params;
  const auto vocab = static_cast<int32_t>(logits.size());
  auto in_vocab = [vocab](int32_t t) { return t >= 0 && t < vocab; };

  if (static_cast<int32_t>(input.output_token_ids.size()) < p.min_tokens) {
    auto mask = [&](int32_t t) {
      if (in_vocab(t)) logits[t] = kNegInf;
    };
    for (int32_t t : p.stop_token_ids) mask(t);
    for (int32_t t : p.all_stop_token_ids) mask(t);
    if (input.eos_token_id.has_value()) mask(*input.eos_token_id);
  }

  if (p.repetition_penalty != 1.0) {
    absl::flat_hash_set<int32_t> seen;
    for (auto span : {input.prompt_token_ids, input.output_token_ids}) {
      for (int32_t t : span) {
        if (in_vocab(t)) seen.insert(t);
      }
    }
    const auto rep = static_cast<float>(p.repetition_penalty);
    for (int32_t t : seen) logits[t] = logits[t] > 0 ? logits[t] / rep : logits[t] * rep;
  }

  if (p.frequency_penalty != 0.0 || p.presence_penalty != 0.0) {
    absl::flat_hash_map<int32_t, int32_t> counts;
    for (int32_t t : input.output_token_ids) {
      if (in_vocab(t)) counts[t]++;
    }
    const auto freq = static_cast<float>(p.frequency_penalty);
    const auto pres = static_cast<float>(p.presence_penalty);
    for (const auto& [t, c] : counts) logits[t] -= freq * static_cast<float>(c) + pres;
  }
}

Sampler::Sampler(std::optional<uint64_t> seed)
    : shared_(seed.has_value() ? *seed : std::random_device{}()) {}

SampleResult Sampler::sample(const SampleInput& input) {
  MS_CHECK(input.params != nullptr && !input.logits.empty());
  const SamplingParams& p = *input.params;
  std::vector<float> x(input.logits.begin(), input.logits.end());  // [vocab]
  apply_penalties(x, input);

  SampleResult result;
  if (p.is_greedy()) {
    result.token_id = argmax(x);
  } else {
    const auto inv_t = static_cast<float>(1.0 / p.temperature);
    for (float& v : x) v *= inv_t;
    const float mx = *std::max_element(x.begin(), x.end());
    if (!std::isfinite(mx)) {
      result.token_id = argmax(x);
    } else {
      // Unnormalised probabilities; every step below only compares ratios or renormalises.
      std::vector<double> prob(x.size(), 0.0);
      std::vector<int32_t> cand;
      cand.reserve(x.size());
      for (int32_t i = 0; i < static_cast<int32_t>(x.size()); ++i) {
        prob[i] = std::exp(static_cast<double>(x[i]) - mx);  // the max token has 1.0
      }
      // min_p: keep p_i >= min_p * p_max.
      for (int32_t i = 0; i < static_cast<int32_t>(x.size()); ++i) {
        if (prob[i] >= p.min_p) cand.push_back(i);
      }
      if (p.top_k > 0 && p.top_k < static_cast<int32_t>(cand.size())) {
        std::vector<float> sub(cand.size());
        for (size_t j = 0; j < cand.size(); ++j) sub[j] = x[cand[j]];
        std::vector<int32_t> kept_pos = top_k_candidates(sub, p.top_k);
        std::vector<int32_t> kept;
        kept.reserve(kept_pos.size());
        for (int32_t j : kept_pos) kept.push_back(cand[j]);
        cand = std::move(kept);
      }
      double total = 0.0;
      for (int32_t i : cand) total += prob[i];
      if (p.top_p < 1.0) {
        std::sort(cand.begin(), cand.end(), [&](int32_t a, int32_t b) {
          return prob[a] > prob[b] || (prob[a] == prob[b] && a < b);
        });
        // Keep a token while the mass of the more probable tokens is still below top_p.
        double before = 0.0;
        size_t keep = 0;
        while (keep < cand.size() && before < p.top_p * total) before += prob[cand[keep++]];
        keep = std::max<size_t>(keep, 1);
        cand.resize(keep);
        total = before;
      }
      std::mt19937_64& gen = input.generator != nullptr ? *input.generator : shared_;
      const double u = uniform01(gen) * total;
      double acc = 0.0;
      result.token_id = cand.back();
      for (int32_t i : cand) {
        acc += prob[i];
        if (u < acc) {
          result.token_id = i;
          break;
        }
      }
    }
  }

  if (p.logprobs.has_value()) fill_logprobs(input.logits, *p.logprobs, result);
  return result;
}

}  // namespace moeserve::engine
