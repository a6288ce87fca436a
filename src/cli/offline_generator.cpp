#include "cli/offline_generator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

namespace moeserve {

int32_t argmax(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (x[i] > x[best]) best = i;
  }
  return static_cast<int32_t>(best);
}

std::vector<TokenLogprob> top_logprobs(const float* x, int64_t n, int64_t k) {
  const float mx = *std::max_element(x, x + n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(x[i]) - mx);
  const double lse = mx + std::log(sum);
  k = std::min(k, n);
  std::vector<int32_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [x](int32_t a, int32_t b) {
    return x[a] > x[b] || (x[a] == x[b] && a < b);
  });
  std::vector<TokenLogprob> out;
  for (int64_t i = 0; i < k; ++i) {
    out.push_back({idx[i], static_cast<float>(x[idx[i]] - lse)});
  }
  return out;
}

namespace {

int32_t sample(const float* logits, int64_t n, float temperature, std::mt19937_64& rng) {
  if (temperature < 1e-5f) return argmax(logits, n);
  const float mx = *std::max_element(logits, logits + n);
  std::vector<double> p(n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += (p[i] = std::exp((logits[i] - mx) / temperature));
  double r = std::uniform_real_distribution<double>(0.0, sum)(rng);
  for (int64_t i = 0; i < n; ++i) {
    r -= p[i];
    if (r <= 0) return static_cast<int32_t>(i);
  }
  return static_cast<int32_t>(n - 1);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

StatusOr<GenerateResult> generate(DeepseekModel& model, const std::vector<int32_t>& prompt,
                                  const GenerateOptions& opts,
                                  const std::function<void(int32_t)>& on_token) {
  const ModelConfig& cfg = model.config();
  if (prompt.empty()) return absl::InvalidArgumentError("the prompt is empty");
  if (opts.max_tokens < 1) return absl::InvalidArgumentError("max_tokens must be at least 1");
  const int64_t total = static_cast<int64_t>(prompt.size()) + opts.max_tokens;
  if (total > cfg.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "prompt (%d tokens) plus max_tokens (%d) exceeds the model's maximum context length (%d)",
        prompt.size(), opts.max_tokens, cfg.max_position_embeddings));
  }
  constexpr int64_t kBlock = 16;
  const int64_t num_blocks = (total + kBlock - 1) / kBlock;
  MS_ASSIGN_OR_RETURN(LatentCache cache, LatentCache::create(cfg.num_hidden_layers, num_blocks,
                                                             kBlock, model.cache_entry_dim()));
  std::vector<int32_t> blocks(num_blocks);
  std::iota(blocks.begin(), blocks.end(), 0);
  std::mt19937_64 rng(opts.seed);
  const int64_t V = cfg.vocab_size;

  GenerateResult res;
  std::vector<float> logits;
  ForwardBatch prefill;
  prefill.add(prompt, 0, blocks, true);
  auto t0 = std::chrono::steady_clock::now();
  MS_RETURN_IF_ERROR(model.forward(prefill, cache, &logits));
  res.prefill_seconds = seconds_since(t0);

  int64_t computed = static_cast<int64_t>(prompt.size());
  t0 = std::chrono::steady_clock::now();
  for (int64_t step = 0; step < opts.max_tokens; ++step) {
    const int32_t tok = sample(logits.data(), V, opts.temperature, rng);
    res.token_ids.push_back(tok);
    if (opts.top_logprobs > 0) res.logprobs.push_back(top_logprobs(logits.data(), V, opts.top_logprobs));
    if (on_token) on_token(tok);
    const bool eos = !opts.ignore_eos &&
                     std::find(opts.eos_ids.begin(), opts.eos_ids.end(), tok) != opts.eos_ids.end();
    if (eos || step + 1 == opts.max_tokens) break;
    ForwardBatch decode;
    decode.add({tok}, computed, blocks, true);
    MS_RETURN_IF_ERROR(model.forward(decode, cache, &logits));
    ++computed;
  }
  res.decode_seconds = seconds_since(t0);
  return res;
}

}  // namespace moeserve
