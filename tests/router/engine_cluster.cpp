#include "engine_cluster.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "gtest/gtest.h"
#include "http_test_client.h"

namespace moeserve::router::testing {
namespace {

namespace fs = std::filesystem;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string first_match(const std::string& text, const std::regex& re) {
  std::smatch m;
  return std::regex_search(text, m, re) ? m[1].str() : "";
}

}  // namespace

std::string moeserve_binary() {
  return std::string(MOESERVE_BINARY_DIR) + "/src/cli/moeserve";
}

EngineCluster::EngineCluster() {
  std::string templ = (fs::path(::testing::TempDir()) / "router_e2e_XXXXXX").string();
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  const char* made = mkdtemp(buf.data());
  dir_ = made != nullptr ? made : templ;
  model_dir_ = dir_ + "/model";
}

EngineCluster::~EngineCluster() {
  if (router_.pid > 0) {
    kill(router_.pid, SIGKILL);
    waitpid(router_.pid, nullptr, 0);
  }
  for (auto& e : engines_) {
    if (e.pid > 0) {
      kill(e.pid, SIGKILL);
      waitpid(e.pid, nullptr, 0);
    }
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::string EngineCluster::log(const ChildProcess& p) const {
  return read_file(p.log_path);
}

bool EngineCluster::spawn(ChildProcess& p, const std::vector<std::string>& args,
                          const std::string& log_name) {
  p.log_path = dir_ + "/" + log_name;
  std::vector<std::string> argv_s = {moeserve_binary()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    FILE* f = std::fopen(p.log_path.c_str(), "w");
    if (f != nullptr) {
      dup2(fileno(f), STDOUT_FILENO);
      dup2(fileno(f), STDERR_FILENO);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  p.pid = pid;
  return true;
}

bool EngineCluster::wait_ready(ChildProcess& p, const std::string& listen_marker,
                               std::chrono::seconds limit) {
  const std::regex port_re(listen_marker + "[^\\n]*?:([0-9]+)");
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    int status = 0;
    if (waitpid(p.pid, &status, WNOHANG) == p.pid) {
      p.pid = -1;
      ADD_FAILURE() << "process exited early:\n" << log(p);
      return false;
    }
    const std::string text = log(p);
    const std::string port = first_match(text, port_re);
    if (!port.empty()) {
      p.port = static_cast<uint16_t>(std::stoi(port));
      auto res = server::testing::http_request(p.port, "GET", "/health");
      if (res.status == 200) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "process not ready in time:\n" << log(p);
  return false;
}

bool EngineCluster::make_model() {
  ChildProcess gen;
  if (!spawn(gen, {"gen-model", model_dir_, "--preset", "tiny"}, "gen-model.log")) return false;
  int status = 0;
  waitpid(gen.pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    ADD_FAILURE() << "gen-model failed:\n" << log(gen);
    return false;
  }
  return true;
}

int EngineCluster::start_engine(const std::vector<std::string>& extra_args) {
  const int i = num_engines();
  engines_.emplace_back();
  ChildProcess& p = engines_.back();
  // Wildcard ports: each engine binds its own PUB and replay sockets; the topic's pod id is
  // not used in per-endpoint mode (the router knows which socket is which engine).
  const std::string kv =
      R"({"enable_kv_cache_events":true,"publisher":"zmq","endpoint":"tcp://127.0.0.1:*",)"
      R"("replay_endpoint":"tcp://127.0.0.1:*","topic":"kv@engine)" +
      std::to_string(i) + R"(@tiny"})";
  std::vector<std::string> args = {"serve",
                                   model_dir_,
                                   "--host",
                                   "127.0.0.1",
                                   "--port",
                                   "0",
                                   "--served-model-name",
                                   "tiny",
                                   "--max-model-len",
                                   "1024",
                                   "--kv-cache-memory",
                                   "64MiB",
                                   "--kv-events-config",
                                   kv};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  if (!spawn(p, args, "engine" + std::to_string(i) + ".log")) return -1;
  if (!wait_ready(p, "listening on http://127\\.0\\.0\\.1", std::chrono::seconds(120))) return -1;
  const std::string text = log(p);
  p.kv_events = first_match(text, std::regex("publishing on (tcp://[0-9.]+:[0-9]+)"));
  p.kv_replay = first_match(text, std::regex("replay on (tcp://[0-9.]+:[0-9]+)"));
  if (p.kv_events.empty() || p.kv_replay.empty()) {
    ADD_FAILURE() << "no KV-event addresses in the engine log:\n" << text;
    return -1;
  }
  return i;
}

bool EngineCluster::start_router(const std::string& config_yaml,
                                 const std::vector<std::string>& extra) {
  const std::string config = dir_ + "/epp.yaml";
  std::ofstream(config) << config_yaml;
  const std::string endpoints = dir_ + "/endpoints.yaml";
  {
    std::ofstream out(endpoints);
    out << "endpoints:\n";
    for (const auto& e : engines_) {
      out << "- address: " << e.address() << "\n"
          << "  model: tiny\n"
          << "  labels:\n"
          << "    moeserve.ai/kv-events: " << e.kv_events << "\n"
          << "    moeserve.ai/kv-events-replay: " << e.kv_replay << "\n";
    }
  }
  std::vector<std::string> args = {"route",   "--config", config,      "--endpoints-file",
                                   endpoints, "--host",   "127.0.0.1", "--port",
                                   "0"};
  args.insert(args.end(), extra.begin(), extra.end());
  if (!spawn(router_, args, "router.log")) return false;
  return wait_ready(router_, "router listening on 127\\.0\\.0\\.1", std::chrono::seconds(30));
}

void EngineCluster::kill_engine(int i, int signal) {
  ChildProcess& p = engine(i);
  if (p.pid <= 0) return;
  kill(p.pid, signal);
  waitpid(p.pid, nullptr, 0);
  p.pid = -1;
}

}  // namespace moeserve::router::testing
