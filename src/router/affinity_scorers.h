// Affinity-style scorers of llm-d.
//  session-affinity-scorer: the request header `x-session-token` holds base64 of the endpoint
//    that served the session before (llm-d uses the pod's namespaced name; this router uses the
//    "host:port" address). That endpoint scores 1, others 0. The proxy sets the header on the
//    response (session_token()).
//  no-hit-lru-scorer: for cold requests (no endpoint has any approximate-prefix hit; requires
//    prefix-cache-scorer earlier in the same profile) endpoints score by how long ago they last
//    received a cold request: never used or least recent = 1, most recent = 0, linear in rank.
//    Warm requests: 0.5 for every endpoint. Parameter lruSize (1024) bounds the remembered
//    endpoints. Thread-safe (absl::Mutex).
#pragma once

#include <list>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "router/plugin.h"
#include "router/plugin_params.h"

namespace moeserve::router {

inline constexpr char kSessionTokenHeader[] = "x-session-token";
std::string session_token(const std::string& endpoint_address);

class SessionAffinityScorer final : public Scorer {
 public:
  static constexpr char kType[] = "session-affinity-scorer";
  static StatusOr<std::unique_ptr<Plugin>> create(const PluginParams& params, std::string name);
  std::string_view type() const override { return kType; }
  std::vector<double> score(CycleState& cycle, const SchedulingRequest& req,
                            std::span<const EndpointState* const> endpoints) override;

 private:
  using Scorer::Scorer;
};

class NoHitLruScorer final : public Scorer {
 public:
  static constexpr char kType[] = "no-hit-lru-scorer";
  static StatusOr<std::unique_ptr<Plugin>> create(const PluginParams& params, std::string name);
  std::string_view type() const override { return kType; }
  std::vector<double> score(CycleState& cycle, const SchedulingRequest& req,
                            std::span<const EndpointState* const> endpoints) override;
  void pre_request(const SchedulingRequest& req, const SchedulingResult& result,
                   const CycleState& cycle) override;
  void endpoint_removed(const std::string& address) override;

 private:
  using Scorer::Scorer;
  static bool is_cold(const CycleState& cycle);

  std::size_t lru_size_ = 1024;
  absl::Mutex mu_;
  std::list<std::string> recent_ ABSL_GUARDED_BY(mu_);  // front = most recently used, cold
};

}  // namespace moeserve::router
