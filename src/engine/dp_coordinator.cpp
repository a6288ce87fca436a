#include "engine/dp_coordinator.h"

#include <algorithm>
#include <cstring>

namespace moeserve::engine {
namespace {

constexpr int64_t kHasWork = 1, kStopNow = 2, kDraining = 4, kFailed = 8;

}  // namespace

bool DpStep::any_work() const {
  return std::any_of(ranks.begin(), ranks.end(), [](const DpRankState& r) { return r.has_work; });
}

int64_t DpStep::max_tokens() const {
  int64_t m = 0;
  for (const DpRankState& r : ranks) m = std::max(m, r.num_tokens);
  return m;
}

int64_t DpStep::total_tokens() const {
  int64_t t = 0;
  for (const DpRankState& r : ranks) t += r.num_tokens;
  return t;
}

int DpStep::leaving_rank() const {
  for (size_t i = 0; i < ranks.size(); ++i) {
    if (ranks[i].stop_now || ranks[i].failed) return static_cast<int>(i);
  }
  if (any_work()) return -1;
  for (size_t i = 0; i < ranks.size(); ++i) {
    if (ranks[i].draining) return static_cast<int>(i);
  }
  return -1;
}

StatusOr<DpStep> DpCoordinator::sync(const DpRankState& mine) {
  const int n = group_->world_size();
  const int64_t flags = (mine.has_work ? kHasWork : 0) | (mine.stop_now ? kStopNow : 0) |
                        (mine.draining ? kDraining : 0) | (mine.failed ? kFailed : 0);
  const int64_t in[2] = {flags, mine.num_tokens};
  std::vector<int64_t> out(2 * static_cast<size_t>(n));  // [world, 2]
  MS_RETURN_IF_ERROR(group_->all_gather(in, sizeof(in), out.data()));
  DpStep step;
  step.ranks.resize(n);
  for (int r = 0; r < n; ++r) {
    const int64_t f = out[2 * r];
    DpRankState& s = step.ranks[r];
    s.has_work = (f & kHasWork) != 0;
    s.stop_now = (f & kStopNow) != 0;
    s.draining = (f & kDraining) != 0;
    s.failed = (f & kFailed) != 0;
    s.num_tokens = out[2 * r + 1];
  }
  return step;
}

Status DpCoordinator::discard_wakes() {
  for (int p = 0; p < group_->world_size(); ++p) {
    if (p == group_->rank()) continue;
    while (true) {
      MS_ASSIGN_OR_RETURN(auto msg, group_->try_recv_any(p, kWakeTag));
      if (!msg) break;
    }
  }
  return absl::OkStatus();
}

StatusOr<DpCoordinator::Wake> DpCoordinator::wait_idle(
    const std::function<bool(std::chrono::microseconds)>& wait_local) {
  const uint64_t epoch = ++epoch_;
  const int n = group_->world_size(), me = group_->rank();
  std::chrono::microseconds interval = options_.min_poll;
  while (true) {
    if (wait_local(interval)) {
      for (int p = 0; p < n; ++p) {
        if (p == me) continue;
        MS_RETURN_IF_ERROR(group_->send(p, kWakeTag, &epoch, sizeof(epoch)));
      }
      return Wake::kLocal;
    }
    for (int p = 0; p < n; ++p) {
      if (p == me) continue;
      // Drain every wake message waiting from p; only this epoch's counts.
      while (true) {
        MS_ASSIGN_OR_RETURN(auto msg, group_->try_recv_any(p, kWakeTag));
        if (!msg) break;
        uint64_t e = 0;
        if (msg->size() == sizeof(e)) std::memcpy(&e, msg->data(), sizeof(e));
        if (e == epoch) return Wake::kPeer;
      }
    }
    MS_RETURN_IF_ERROR(group_->check_peer(-1, "data-parallel idle wait"));
    interval = std::min(interval * 2, options_.max_poll);
  }
}

}  // namespace moeserve::engine
