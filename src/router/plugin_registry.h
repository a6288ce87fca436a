// Creates plugins by llm-d type name. The built-in registry knows every plugin of this router;
// tests or later layers may add types. Thread-safety: create() is const and safe to call
// concurrently; add() only during setup.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "router/config.h"
#include "router/kv_event_index.h"
#include "router/plugin.h"
#include "router/plugin_params.h"

namespace moeserve::router {

// Shared things factories may need.
struct PluginContext {
  // Precise-prefix index fed by KV events; created by the scorer when null.
  std::shared_ptr<KvEventIndex> kv_index;
  uint64_t seed = 0;  // pickers' random seed; 0 = from std::random_device
};

using PluginFactory = std::function<StatusOr<std::unique_ptr<Plugin>>(
    const PluginParams& params, std::string name, PluginContext& ctx)>;

class PluginRegistry final {
 public:
  static const PluginRegistry& builtin();

  void add(const std::string& type, PluginFactory factory) {
    factories_[type] = std::move(factory);
  }
  bool has(const std::string& type) const { return factories_.count(type) != 0; }
  std::vector<std::string> types() const;
  // Errors name the plugin: unknown type, or a bad parameter.
  StatusOr<std::unique_ptr<Plugin>> create(const PluginSpec& spec, PluginContext& ctx) const;

 private:
  std::map<std::string, PluginFactory> factories_;
};

}  // namespace moeserve::router
