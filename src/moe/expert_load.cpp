#include "moe/expert_load.h"

#include <algorithm>
#include <numeric>

#include "core/status.h"

namespace moeserve {

ExpertLoadWindow::ExpertLoadWindow(int num_layers, int64_t num_experts, int window_size)
    : num_layers_(num_layers), num_experts_(num_experts), window_size_(window_size) {
  MS_CHECK(num_layers >= 0 && num_experts >= 0 && window_size >= 1);
  const size_t n = static_cast<size_t>(num_layers) * static_cast<size_t>(num_experts);
  pass_.assign(n, 0);
  sum_.assign(n, 0);
  ring_.assign(n * static_cast<size_t>(window_size), 0);
}

void ExpertLoadWindow::end_step(bool is_dummy) {
  if (is_dummy) {
    std::fill(pass_.begin(), pass_.end(), 0);
    return;
  }
  const size_t n = pass_.size();
  int32_t* slot = ring_.data() + static_cast<size_t>(next_) * n;
  for (size_t i = 0; i < n; ++i) {
    sum_[i] += pass_[i] - slot[i];
    slot[i] = static_cast<int32_t>(pass_[i]);  // a step routes < 2^31 tokens per expert
    pass_[i] = 0;
  }
  next_ = (next_ + 1) % window_size_;
  filled_ = std::min<int64_t>(filled_ + 1, window_size_);
  ++recorded_;
}

double balancedness(std::span<const int64_t> rank_tokens) {
  if (rank_tokens.empty()) return 1.0;
  const int64_t max = *std::max_element(rank_tokens.begin(), rank_tokens.end());
  if (max <= 0) return 1.0;
  const double total =
      static_cast<double>(std::accumulate(rank_tokens.begin(), rank_tokens.end(), int64_t{0}));
  return total / static_cast<double>(rank_tokens.size()) / static_cast<double>(max);
}

ExpertLoadSnapshot make_expert_load_snapshot(std::span<const int64_t> tokens,
                                             std::vector<int> layer_ids, int64_t num_experts,
                                             int num_ranks, int window_size,
                                             int64_t steps_in_window) {
  ExpertLoadSnapshot s;
  const size_t num_layers = layer_ids.size();
  MS_CHECK(tokens.size() == num_layers * static_cast<size_t>(num_experts) && num_ranks >= 1);
  s.layer_ids = std::move(layer_ids);
  s.num_experts = num_experts;
  s.num_ranks = num_ranks;
  s.window_size = window_size;
  s.steps_in_window = steps_in_window;
  for (size_t l = 0; l < num_layers; ++l) {
    const int64_t* row = tokens.data() + l * num_experts;
    s.tokens.emplace_back(row, row + num_experts);
    std::vector<int64_t>& ranks = s.rank_tokens.emplace_back(num_ranks, 0);
    for (int r = 0; r < num_ranks; ++r) {
      for (int64_t e = r * num_experts / num_ranks; e < (r + 1) * num_experts / num_ranks; ++e) {
        ranks[r] += row[e];
      }
    }
    s.balancedness.push_back(balancedness(ranks));
  }
  return s;
}

}  // namespace moeserve
