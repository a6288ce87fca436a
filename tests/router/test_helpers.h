// Helpers shared by the router unit tests.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "router/plugin_registry.h"

namespace moeserve::router::testing {

inline EndpointState make_endpoint(const std::string& address, double waiting = 0,
                                   double kv_usage = 0, int64_t active = 0,
                                   const std::string& role = "") {
  EndpointState e;
  e.address = address;
  e.metrics.valid = true;
  e.metrics.waiting = waiting;
  e.metrics.kv_usage = kv_usage;
  e.active_requests = active;
  if (!role.empty()) e.labels[kRoleLabel] = role;
  return e;
}

inline std::vector<const EndpointState*> ptrs(const std::vector<EndpointState>& eps) {
  std::vector<const EndpointState*> out;
  for (const auto& e : eps) out.push_back(&e);
  return out;
}

inline std::unique_ptr<Plugin> make_plugin(const std::string& type,
                                           nlohmann::json params = nullptr) {
  PluginContext ctx;
  ctx.seed = 42;
  auto p = PluginRegistry::builtin().create(PluginSpec{type, type, std::move(params)}, ctx);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? std::move(*p) : nullptr;
}

template <typename T>
T* as(const std::unique_ptr<Plugin>& p) {
  return dynamic_cast<T*>(p.get());
}

}  // namespace moeserve::router::testing
