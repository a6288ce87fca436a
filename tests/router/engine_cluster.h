// Real `moeserve serve` engines and a real `moeserve route` router as child processes, for the
// router's end-to-end tests: ports and KV-event addresses are read from the processes' logs
// (everything binds ephemeral 127.0.0.1 ports), and every child is killed when the test ends.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace moeserve::router::testing {

struct ChildProcess {
  pid_t pid = -1;
  std::string log_path;
  uint16_t port = 0;      // HTTP port read from the log
  std::string kv_events;  // engines: their PUB address
  std::string kv_replay;  // engines: their replay address
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }
};

// Directory for one test's files; removed with the cluster.
class EngineCluster {
 public:
  EngineCluster();
  ~EngineCluster();
  EngineCluster(const EngineCluster&) = delete;
  EngineCluster& operator=(const EngineCluster&) = delete;

  const std::string& dir() const { return dir_; }
  // Generates the tiny model once per cluster (`moeserve gen-model --preset tiny`).
  bool make_model();
  // Starts an engine (served model name "tiny") publishing KV events with a replay socket, and
  // waits until /health answers. Returns its index or -1 (the log is printed).
  int start_engine(const std::vector<std::string>& extra_args = {});
  // Starts the router in front of every engine started so far, through an endpoints file that
  // carries the engines' KV-event addresses as labels, with the given EndpointPickerConfig.
  bool start_router(const std::string& config_yaml, const std::vector<std::string>& extra = {});

  ChildProcess& engine(int i) { return engines_[static_cast<std::size_t>(i)]; }
  ChildProcess& router() { return router_; }
  int num_engines() const { return static_cast<int>(engines_.size()); }
  void kill_engine(int i, int signal);
  std::string log(const ChildProcess& p) const;

 private:
  bool spawn(ChildProcess& p, const std::vector<std::string>& args, const std::string& log_name);
  bool wait_ready(ChildProcess& p, const std::string& listen_marker, std::chrono::seconds limit);

  std::string dir_;
  std::string model_dir_;
  std::vector<ChildProcess> engines_;
  ChildProcess router_;
};

// Path of the moeserve binary of this build.
std::string moeserve_binary();

}  // namespace moeserve::router::testing
