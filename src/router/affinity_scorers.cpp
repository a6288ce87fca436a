#include "router/affinity_scorers.h"

#include <algorithm>

#include "absl/strings/escaping.h"

namespace moeserve::router {

std::string session_token(const std::string& endpoint_address) {
  return absl::Base64Escape(endpoint_address);
}

StatusOr<std::unique_ptr<Plugin>> SessionAffinityScorer::create(const PluginParams& params,
                                                                std::string name) {
  MS_RETURN_IF_ERROR(params.check_known({}));
  return std::unique_ptr<Plugin>(new SessionAffinityScorer(std::move(name)));
}

std::vector<double> SessionAffinityScorer::score(CycleState&, const SchedulingRequest& req,
                                                 std::span<const EndpointState* const> endpoints) {
  std::vector<double> scores(endpoints.size(), 0.0);
  auto it = req.headers.find(kSessionTokenHeader);
  if (it == req.headers.end()) return scores;
  std::string address;
  if (!absl::Base64Unescape(it->second, &address)) return scores;
  for (std::size_t i = 0; i < endpoints.size(); ++i) {
    if (endpoints[i]->address == address) scores[i] = 1.0;
  }
  return scores;
}

StatusOr<std::unique_ptr<Plugin>> NoHitLruScorer::create(const PluginParams& params,
                                                         std::string name) {
  MS_RETURN_IF_ERROR(params.check_known({"lruSize", "prefixPluginName", "prefixPluginType"}));
  std::unique_ptr<NoHitLruScorer> s(new NoHitLruScorer(std::move(name)));
  MS_ASSIGN_OR_RETURN(int64_t size, params.get_int("lruSize", 1024, 1, 1 << 24));
  s->lru_size_ = static_cast<std::size_t>(size);
  return std::unique_ptr<Plugin>(std::move(s));
}

bool NoHitLruScorer::is_cold(const CycleState& cycle) {
  for (const auto& [ep, info] : cycle.prefix_matches) {
    if (info.matched_blocks > 0) return false;
  }
  return true;
}

std::vector<double> NoHitLruScorer::score(CycleState& cycle, const SchedulingRequest&,
                                          std::span<const EndpointState* const> endpoints) {
  const std::size_t n = endpoints.size();
  if (!is_cold(cycle)) return std::vector<double>(n, 0.5);
  // Rank: endpoints never used come first (in candidate order), then least recently used.
  std::vector<std::pair<std::size_t, std::size_t>> order;  // (recency position, index)
  {
    absl::MutexLock lock(&mu_);
    for (std::size_t i = 0; i < n; ++i) {
      std::size_t pos = 0;  // 0 = never used; higher = older
      std::size_t k = 1;
      bool found = false;
      for (auto it = recent_.begin(); it != recent_.end(); ++it, ++k) {
        if (*it == endpoints[i]->address) {
          pos = k;
          found = true;
          break;
        }
      }
      order.emplace_back(found ? pos : recent_.size() + 1, i);
    }
  }
  // Larger position = older = better.
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<double> scores(n, 1.0);
  if (n <= 1) return scores;
  for (std::size_t rank = 0; rank < n; ++rank) {
    scores[order[rank].second] = static_cast<double>(n - 1 - rank) / static_cast<double>(n - 1);
  }
  return scores;
}

void NoHitLruScorer::pre_request(const SchedulingRequest&, const SchedulingResult& result,
                                 const CycleState& cycle) {
  if (!is_cold(cycle)) return;
  absl::MutexLock lock(&mu_);
  for (const auto& [profile, run] : result.profile_results) {
    if (!run || run->targets.empty()) continue;
    const std::string& target = run->targets.front();
    recent_.remove(target);
    recent_.push_front(target);
  }
  while (recent_.size() > lru_size_) recent_.pop_back();
}

void NoHitLruScorer::endpoint_removed(const std::string& address) {
  absl::MutexLock lock(&mu_);
  recent_.remove(address);
}

}  // namespace moeserve::router
