// `moeserve serve --data-parallel-size 2 --enable-expert-parallel` as real processes on a
// generated tiny model: the front and each rank's port answer with the single-process server's
// greedy output; two launchers ("hosts", UCX over TCP) form one group; killing a rank fails the
// other rank's stream with a clear error within seconds, the launcher exits non-zero naming the
// dead rank, nothing is left running, and starting the group again on the same ports works.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../server/http_test_client.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
using moeserve::server::testing::ClientResponse;
using moeserve::server::testing::connect_local;
using moeserve::server::testing::http_request;
using moeserve::server::testing::read_all;
using moeserve::server::testing::send_all;
using moeserve::server::testing::sse_payloads;

const fs::path& work_dir() {
  static const fs::path d =
      fs::path(::testing::TempDir()) / ("serve_dp_" + std::to_string(getpid()));
  return d;
}

// A child process (the `moeserve` binary) with stdout and stderr in a log file.
struct Child {
  pid_t pid = -1;
  std::string log;
  int status = -1;  // waitpid status once reaped

  Child() = default;
  Child(Child&& o) noexcept : pid(o.pid), log(std::move(o.log)), status(o.status) { o.pid = -1; }
  Child& operator=(Child&&) = delete;

  // Waits up to `timeout` for the process to exit; false if it is still running.
  bool wait(std::chrono::seconds timeout) {
    if (pid < 0) return true;
    const auto until = Clock::now() + timeout;
    while (Clock::now() < until) {
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  // Stops it (SIGTERM), waits up to `timeout`, SIGKILLs it if needed; returns the status.
  int stop(std::chrono::seconds timeout = std::chrono::seconds(30)) {
    if (pid < 0) return status;
    ::kill(pid, SIGTERM);
    if (!wait(timeout)) {
      ADD_FAILURE() << "pid " << pid << " did not stop within " << timeout.count() << " s";
      ::kill(pid, SIGKILL);
      wait(std::chrono::seconds(10));
    }
    return status;
  }
  std::string output() const {
    std::ifstream f(log);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  ~Child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

Child spawn(const std::vector<std::string>& args, const std::string& log_name,
            const std::vector<std::pair<std::string, std::string>>& env = {}) {
  Child c;
  c.log = (work_dir() / log_name).string();
  std::vector<std::string> argv_s = {MOESERVE_BINARY};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::fflush(nullptr);
  c.pid = ::fork();
  if (c.pid == 0) {
    const int fd = ::open(c.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return c;
}

bool port_free(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  ::close(fd);
  return ok;
}

// `n` consecutive free ports.
int free_ports(int n) {
  std::mt19937 rng(
      static_cast<uint32_t>(getpid() * 7919 + Clock::now().time_since_epoch().count()));
  for (int attempt = 0; attempt < 200; ++attempt) {
    const int base = 20000 + static_cast<int>(rng() % 30000);
    bool ok = true;
    for (int i = 0; i < n && ok; ++i) ok = port_free(base + i);
    if (ok) return base;
  }
  ADD_FAILURE() << "no free port range";
  return 0;
}

// Waits until GET /health on `port` answers 200, the process exits, or the timeout.
bool wait_healthy(int port, Child& c, std::chrono::seconds timeout = std::chrono::seconds(60)) {
  const auto until = Clock::now() + timeout;
  while (Clock::now() < until) {
    if (http_request(static_cast<uint16_t>(port), "GET", "/health").status == 200) return true;
    if (c.wait(std::chrono::seconds(0))) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

const std::string& tiny_model() {
  static const std::string dir = [] {
    fs::create_directories(work_dir());
    const std::string d = (work_dir() / "tiny").string();
    Child g = spawn({"gen-model", d, "--preset", "tiny", "--dtype", "f32", "--seed", "5"},
                    "gen_model.log");
    EXPECT_TRUE(g.wait(std::chrono::seconds(120)));
    EXPECT_TRUE(WIFEXITED(g.status) && WEXITSTATUS(g.status) == 0) << g.output();
    return d;
  }();
  return dir;
}

class Cleanup : public ::testing::Environment {
 public:
  void TearDown() override { fs::remove_all(work_dir()); }
};
const auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new Cleanup);

std::vector<std::string> serve_args(int port) {
  return {"serve",
          tiny_model(),
          "--port",
          std::to_string(port),
          "--served-model-name",
          "tiny",
          "--max-num-seqs",
          "8",
          "--max-model-len",
          "2048",
          "--num-gpu-blocks-override",
          "400"};
}

std::vector<std::string> dp_args(int port, int rpc_port) {
  std::vector<std::string> a = serve_args(port);
  for (const char* s : {"--data-parallel-size", "2", "--enable-expert-parallel",
                        "--data-parallel-address", "127.0.0.1"}) {
    a.emplace_back(s);
  }
  a.emplace_back("--data-parallel-rpc-port");
  a.push_back(std::to_string(rpc_port));
  return a;
}

json completion_body(const std::string& prompt, int max_tokens, bool stream = false) {
  return {{"model", "tiny"},    {"prompt", prompt},   {"max_tokens", max_tokens},
          {"temperature", 0.0}, {"ignore_eos", true}, {"stream", stream}};
}

// The greedy completion text, or "" (with a test failure) when the request failed.
std::string complete(int port, const std::string& prompt, int max_tokens = 12) {
  ClientResponse r = http_request(static_cast<uint16_t>(port), "POST", "/v1/completions",
                                  completion_body(prompt, max_tokens).dump(),
                                  {{"Content-Type", "application/json"}});
  EXPECT_EQ(r.status, 200) << "port " << port << ": " << r.body;
  if (r.status != 200) return "";
  const json j = json::parse(r.body, nullptr, false);
  EXPECT_FALSE(j.is_discarded());
  if (j.is_discarded()) return "";
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["completion_tokens"], max_tokens);
  return j["choices"][0]["text"].get<std::string>();
}

// pid of data-parallel rank `rank` from the launcher's log; -1 when absent.
pid_t rank_pid(const Child& launcher, int rank) {
  const std::regex re("started data-parallel rank " + std::to_string(rank) + R"( \(pid (\d+)\))");
  std::smatch m;
  const std::string out = launcher.output();
  if (!std::regex_search(out, m, re)) return -1;
  return static_cast<pid_t>(std::stol(m[1].str()));
}

// CPU seconds (user + system) the process has used; -1 when unreadable.
double cpu_seconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream in(stat.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(field);  // utime, stime
  }
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

bool process_gone(pid_t pid) {
  return pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH;
}

const char* const kPrompts[] = {"The quick brown fox", "hello world, hello"};

// Greedy outputs of the single-process server for kPrompts.
const std::vector<std::string>& single_process_outputs() {
  static const std::vector<std::string> out = [] {
    const int port = free_ports(1);
    Child s = spawn(serve_args(port), "single.log");
    EXPECT_TRUE(wait_healthy(port, s)) << s.output();
    std::vector<std::string> texts;
    for (const char* p : kPrompts) texts.push_back(complete(port, p));
    EXPECT_EQ(s.stop(), 0) << s.output();
    return texts;
  }();
  return out;
}

TEST(ServeDataParallel, FrontAndRankPortsGiveSingleProcessOutput) {
  const std::vector<std::string>& want = single_process_outputs();
  ASSERT_EQ(want.size(), 2u);
  ASSERT_FALSE(want[0].empty());
  const int port = free_ports(3);
  const int rpc = free_ports(1);
  Child launcher = spawn(dp_args(port, rpc), "dp.log");
  ASSERT_TRUE(wait_healthy(port, launcher)) << launcher.output();
  EXPECT_EQ(http_request(static_cast<uint16_t>(port + 1), "GET", "/health").status, 200);
  EXPECT_EQ(http_request(static_cast<uint16_t>(port + 2), "GET", "/health").status, 200);

  // One rank at a time (the other runs dummy steps), through the front, then both at once.
  EXPECT_EQ(complete(port + 1, kPrompts[0]), want[0]);
  EXPECT_EQ(complete(port + 2, kPrompts[1]), want[1]);
  for (int i = 0; i < 2; ++i) EXPECT_EQ(complete(port, kPrompts[i]), want[i]);
  std::string both[2];
  std::thread t0([&] { both[0] = complete(port + 1, kPrompts[1]); });
  std::thread t1([&] { both[1] = complete(port + 2, kPrompts[0]); });
  t0.join();
  t1.join();
  EXPECT_EQ(both[0], want[1]);
  EXPECT_EQ(both[1], want[0]);

  // Streaming through the front.
  ClientResponse s = http_request(static_cast<uint16_t>(port), "POST", "/v1/completions",
                                  completion_body(kPrompts[0], 12, true).dump(),
                                  {{"Content-Type", "application/json"}});
  EXPECT_EQ(s.status, 200);
  const std::vector<std::string> events = sse_payloads(s.body);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  for (const std::string& e : events) {
    const json j = json::parse(e, nullptr, false);
    if (!j.is_discarded() && j.contains("choices") && !j["choices"].empty()) {
      text += j["choices"][0].value("text", "");
    }
  }
  EXPECT_EQ(text, want[0]);

  // Each rank reports its own engine label.
  const std::string m1 = http_request(static_cast<uint16_t>(port + 2), "GET", "/metrics").body;
  EXPECT_NE(m1.find("engine=\"1\""), std::string::npos);

  // Idle ranks sleep (the front still scrapes their /metrics every 50 ms).
  const pid_t r0 = rank_pid(launcher, 0), r1 = rank_pid(launcher, 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const double c0 = cpu_seconds(r0), c1 = cpu_seconds(r1);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_LT(cpu_seconds(r0) - c0, 0.3) << "rank 0 busy while idle";
  EXPECT_LT(cpu_seconds(r1) - c1, 0.3) << "rank 1 busy while idle";
  EXPECT_EQ(launcher.stop(), 0) << launcher.output();
  EXPECT_TRUE(process_gone(r0) && process_gone(r1));
}

// The front speaks the API a single `serve` does: /tokenize, /detokenize and /version go to a
// rank, and /metrics shows both ranks' vllm:* series (one HELP/TYPE per family) beside the
// front's own.
TEST(ServeDataParallel, FrontServesTokenizeDetokenizeVersionAndRankMetrics) {
  const int port = free_ports(3);
  const int rpc = free_ports(1);
  Child launcher = spawn(dp_args(port, rpc), "front_api.log");
  ASSERT_TRUE(wait_healthy(port, launcher)) << launcher.output();
  const uint16_t front = static_cast<uint16_t>(port);
  const std::vector<std::pair<std::string, std::string>> ct = {
      {"Content-Type", "application/json"}};

  ClientResponse tok = http_request(front, "POST", "/tokenize",
                                    json{{"model", "tiny"}, {"prompt", kPrompts[0]}}.dump(), ct);
  ASSERT_EQ(tok.status, 200) << tok.body;
  const json t = json::parse(tok.body, nullptr, false);
  ASSERT_TRUE(t.is_object() && t.contains("tokens") && t["tokens"].is_array()) << tok.body;
  ClientResponse direct = http_request(static_cast<uint16_t>(port + 1), "POST", "/tokenize",
                                       json{{"model", "tiny"}, {"prompt", kPrompts[0]}}.dump(), ct);
  EXPECT_EQ(tok.body, direct.body);

  ClientResponse detok = http_request(front, "POST", "/detokenize",
                                      json{{"model", "tiny"}, {"tokens", t["tokens"]}}.dump(), ct);
  ASSERT_EQ(detok.status, 200) << detok.body;
  EXPECT_NE(json::parse(detok.body, nullptr, false).value("prompt", "").find("quick brown fox"),
            std::string::npos)
      << detok.body;

  ClientResponse version = http_request(front, "GET", "/version");
  ASSERT_EQ(version.status, 200) << version.body;
  EXPECT_TRUE(json::parse(version.body, nullptr, false).contains("version")) << version.body;
  EXPECT_EQ(http_request(front, "GET", "/tokenize").status, 405);

  EXPECT_FALSE(complete(port, kPrompts[0]).empty());
  const std::string m = http_request(front, "GET", "/metrics").body;
  EXPECT_NE(m.find("vllm:num_requests_running{"), std::string::npos) << m;
  EXPECT_NE(m.find("engine=\"0\""), std::string::npos) << m;
  EXPECT_NE(m.find("engine=\"1\""), std::string::npos) << m;
  size_t type_lines = 0;
  for (size_t p = m.find("# TYPE vllm:num_requests_running "); p != std::string::npos;
       p = m.find("# TYPE vllm:num_requests_running ", p + 1)) {
    ++type_lines;
  }
  EXPECT_EQ(type_lines, 1u) << m;
  EXPECT_NE(m.find("vllm:request_success_total{"), std::string::npos) << m;
  // The front's own series are still there.
  EXPECT_NE(m.find("moeserve_router_endpoint_healthy"), std::string::npos) << m.substr(0, 2000);
  EXPECT_EQ(launcher.stop(), 0) << launcher.output();
}

TEST(ServeDataParallel, TwoHostsOverTcp) {
  const std::vector<std::string>& want = single_process_outputs();
  const int port = free_ports(3);
  const int rpc = free_ports(1);
  const std::vector<std::pair<std::string, std::string>> tcp = {{"UCX_TLS", "tcp"},
                                                                {"UCX_NET_DEVICES", "lo"}};
  std::vector<std::string> a = dp_args(port, rpc);
  a.insert(a.end(), {"--data-parallel-size-local", "1"});
  std::vector<std::string> b = dp_args(port, rpc);
  b.insert(b.end(),
           {"--headless", "--data-parallel-start-rank", "1", "--data-parallel-size-local", "1"});
  Child host_a = spawn(a, "host_a.log", tcp);
  Child host_b = spawn(b, "host_b.log", tcp);
  ASSERT_TRUE(wait_healthy(port, host_a)) << host_a.output() << host_b.output();
  ASSERT_TRUE(wait_healthy(port + 2, host_b)) << host_b.output();
  // Over TCP every MoE exchange costs a round trip: two requests keep the test short.
  EXPECT_EQ(complete(port, kPrompts[0]), want[0]);      // host A's front (its rank 0)
  EXPECT_EQ(complete(port + 2, kPrompts[1]), want[1]);  // rank 1 on host B
  EXPECT_TRUE(rank_pid(host_b, 0) < 0 && rank_pid(host_b, 1) > 0);
  const pid_t r0 = rank_pid(host_a, 0), r1 = rank_pid(host_b, 1);
  ::kill(host_a.pid, SIGTERM);
  ::kill(host_b.pid, SIGTERM);
  EXPECT_TRUE(host_a.wait(std::chrono::seconds(30))) << host_a.output();
  EXPECT_TRUE(host_b.wait(std::chrono::seconds(30))) << host_b.output();
  EXPECT_TRUE(process_gone(r0) && process_gone(r1));
}

TEST(ServeDataParallel, KilledRankFailsPeerFastAndRestartRecovers) {
  const std::vector<std::string>& want = single_process_outputs();
  const int port = free_ports(3);
  const int rpc = free_ports(1);
  {
    Child launcher = spawn(dp_args(port, rpc), "kill.log");
    ASSERT_TRUE(wait_healthy(port, launcher)) << launcher.output();
    const pid_t r0 = rank_pid(launcher, 0), r1 = rank_pid(launcher, 1);
    ASSERT_GT(r0, 0);
    ASSERT_GT(r1, 0);

    // A long stream on rank 1.
    const int fd = connect_local(static_cast<uint16_t>(port + 2), 30000);
    ASSERT_GE(fd, 0);
    const std::string body = completion_body(kPrompts[0], 2000, true).dump();
    ASSERT_TRUE(send_all(fd,
                         "POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                         "Content-Type: application/json\r\nContent-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n" + body));
    std::string raw;
    char buf[4096];
    while (raw.find("data: ") == std::string::npos ||
           std::count(raw.begin(), raw.end(), '\n') < 12) {
      const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      ASSERT_GT(n, 0) << raw;
      raw.append(buf, static_cast<size_t>(n));
    }
    ASSERT_EQ(raw.find("[DONE]"), std::string::npos) << "the stream ended before the kill";

    const auto t0 = Clock::now();
    ASSERT_EQ(::kill(r0, SIGKILL), 0);
    raw += read_all(fd);  // until the rank closes the connection (or the 30 s timeout)
    ::close(fd);
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    EXPECT_LT(secs, 10.0) << "the stream took " << secs << " s to end after the kill";
    const size_t err = raw.find("\"error\"");
    ASSERT_NE(err, std::string::npos) << raw.substr(raw.size() > 2000 ? raw.size() - 2000 : 0);
    EXPECT_NE(raw.find("rank 0", err), std::string::npos) << raw.substr(err);
    EXPECT_NE(raw.find("[DONE]", err), std::string::npos);
    std::fprintf(stderr, "stream ended %.2f s after the kill: %s\n", secs,
                 raw.substr(err, 300).c_str());

    // Rank 1 is unhealthy (or already gone); the launcher stops the group and fails.
    const int health = http_request(static_cast<uint16_t>(port + 2), "GET", "/health").status;
    EXPECT_TRUE(health == 503 || health == 0) << health;
    // The launcher learns of the death from SIGCHLD, which can come a little after the peer
    // noticed it (the killed process's memory is still being freed).
    int front = 200;
    for (int i = 0; i < 100 && front == 200; ++i) {
      front = http_request(static_cast<uint16_t>(port), "GET", "/health").status;
      if (front == 200) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_TRUE(front == 503 || front == 0) << front;
    std::fprintf(stderr, "after the kill: rank 1 /health %d, front /health %d\n", health, front);
    ASSERT_TRUE(launcher.wait(std::chrono::seconds(20))) << launcher.output();
    EXPECT_TRUE(WIFEXITED(launcher.status) && WEXITSTATUS(launcher.status) != 0);
    const std::string out = launcher.output();
    EXPECT_NE(
        out.find("data-parallel rank 0 (pid " + std::to_string(r0) + ") was killed by signal 9"),
        std::string::npos)
        << out;
    EXPECT_TRUE(process_gone(r0));
    EXPECT_TRUE(process_gone(r1));
  }
  // Restarting the group on the same ports recovers.
  Child again = spawn(dp_args(port, rpc), "restart.log");
  ASSERT_TRUE(wait_healthy(port, again)) << again.output();
  EXPECT_EQ(complete(port, kPrompts[1]), want[1]);
  EXPECT_EQ(complete(port + 2, kPrompts[0]), want[0]);
  EXPECT_EQ(again.stop(), 0) << again.output();
}

}  // namespace
