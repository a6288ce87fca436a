// Hostile clients against real processes on 127.0.0.1: `moeserve serve`, `moeserve route` in
// front of it, and the data-parallel front of `serve --data-parallel-size 2`. Each target gets
// the same battery: deep and huge JSON, every numeric field at its type's extremes, invalid
// UTF-8, oversized headers, slow senders, many idle connections and disconnects at every stage
// of a request. Every input must end in a clear 4xx (vLLM's error shape) or a closed
// connection; afterwards every process of the target is alive, healthy, has no request left
// in its engine, and its resident memory is back within 10% of where it started.
//
// Bounded: at most ~100 connections at once, every socket has a receive timeout, every wait a
// deadline.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
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
using moeserve::server::testing::metric_value;
using moeserve::server::testing::parse_response;
using moeserve::server::testing::read_all;
using moeserve::server::testing::send_all;

// The binary under test; MOESERVE_TEST_BINARY runs the suite against another build.
std::string binary() {
  const char* env = std::getenv("MOESERVE_TEST_BINARY");
  return env != nullptr && *env ? env : MOESERVE_BINARY;
}

const fs::path& work_dir() {
  static const fs::path d =
      fs::path(::testing::TempDir()) / ("hostile_" + std::to_string(getpid()));
  return d;
}

class Cleanup : public ::testing::Environment {
 public:
  void TearDown() override { fs::remove_all(work_dir()); }
};
const auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new Cleanup);

struct Child {
  pid_t pid = -1;
  std::string log;

  Child() = default;
  Child(Child&& o) noexcept : pid(o.pid), log(std::move(o.log)) { o.pid = -1; }
  Child& operator=(Child&&) = delete;
  ~Child() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      for (int i = 0; i < 500 && ::waitpid(pid, nullptr, WNOHANG) == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  bool alive() const { return pid > 0 && ::waitpid(pid, nullptr, WNOHANG) == 0; }
  std::string output() const {
    std::ifstream f(log);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
};

Child spawn(const std::vector<std::string>& args, const std::string& log_name) {
  fs::create_directories(work_dir());
  Child c;
  c.log = (work_dir() / log_name).string();
  std::vector<std::string> argv_s = {binary()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::fflush(nullptr);
  c.pid = ::fork();
  if (c.pid == 0) {
    const int fd = ::open(c.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
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

bool wait_healthy(int port, const Child& c, std::chrono::seconds timeout) {
  const auto until = Clock::now() + timeout;
  while (Clock::now() < until) {
    if (!c.alive()) return false;
    if (http_request(static_cast<uint16_t>(port), "GET", "/health").status == 200) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

const std::string& tiny_model() {
  static const std::string dir = [] {
    const std::string d = (work_dir() / "tiny").string();
    Child g = spawn({"gen-model", d, "--preset", "tiny", "--seed", "5"}, "gen_model.log");
    int status = -1;
    ::waitpid(g.pid, &status, 0);
    g.pid = -1;
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << g.output();
    return d;
  }();
  return dir;
}

std::vector<std::string> serve_args(int port) {
  return {"serve",
          tiny_model(),
          "--host",
          "127.0.0.1",
          "--port",
          std::to_string(port),
          "--served-model-name",
          "tiny",
          "--max-num-seqs",
          "8",
          "--max-model-len",
          "128",
          "--num-gpu-blocks-override",
          "200"};
}

// Resident set of `pid` in KiB (0 when gone).
int64_t rss_kib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6);
  }
  return 0;
}

// Children of `pid` (the data-parallel ranks of a launcher).
std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::ifstream f("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  pid_t c = 0;
  while (f >> c) out.push_back(c);
  return out;
}

enum class Kind { kServer, kRouter, kDataParallelFront };

std::string kind_name(Kind k) {
  switch (k) {
    case Kind::kServer:
      return "Server";
    case Kind::kRouter:
      return "Router";
    case Kind::kDataParallelFront:
      return "DataParallelFront";
  }
  return "?";
}

// One request on a fresh connection; the raw answer parsed (status 0: the connection closed
// without an answer).
ClientResponse raw_exchange(uint16_t port, const std::string& bytes, int timeout_ms = 30000) {
  const int fd = connect_local(port, timeout_ms);
  if (fd < 0) return {};
  send_all(fd, bytes);
  const std::string raw = read_all(fd);
  ::close(fd);
  return parse_response(raw);
}

std::string post(const std::string& path, const std::string& body,
                 const std::string& extra_headers = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
         extra_headers + "Content-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
}

// A 4xx with vLLM's error shape {"error":{"message","type","param","code"}}.
void expect_vllm_error(const ClientResponse& r, int status, const std::string& what) {
  SCOPED_TRACE(what);
  EXPECT_EQ(r.status, status) << r.body.substr(0, 300);
  const json j = json::parse(r.body, nullptr, false);
  ASSERT_TRUE(j.is_object() && j.contains("error") && j["error"].is_object())
      << r.body.substr(0, 300);
  const json& e = j["error"];
  EXPECT_TRUE(e.contains("message") && e["message"].is_string());
  EXPECT_TRUE(e.contains("type") && e["type"].is_string());
  EXPECT_TRUE(e.contains("param"));
  EXPECT_EQ(e.value("code", 0), status);
}

void expect_4xx_or_closed(const ClientResponse& r, const std::string& what) {
  EXPECT_TRUE(r.status == 0 || (r.status >= 400 && r.status < 500))
      << what << ": " << r.status << " " << r.body.substr(0, 300);
}

class Hostile : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    const int base = free_ports(4);
    ASSERT_GT(base, 0);
    engine_ports_ = {base};
    switch (GetParam()) {
      case Kind::kServer:
        procs_.push_back(spawn(serve_args(base), "serve.log"));
        ASSERT_TRUE(wait_healthy(base, procs_[0], std::chrono::seconds(120))) << procs_[0].output();
        port_ = static_cast<uint16_t>(base);
        break;
      case Kind::kRouter: {
        procs_.push_back(spawn(serve_args(base), "serve.log"));
        ASSERT_TRUE(wait_healthy(base, procs_[0], std::chrono::seconds(120))) << procs_[0].output();
        const int rport = base + 1;
        procs_.push_back(
            spawn({"route", "--endpoints", "127.0.0.1:" + std::to_string(base), "--host",
                   "127.0.0.1", "--port", std::to_string(rport), "--threads", "2"},
                  "route.log"));
        ASSERT_TRUE(wait_healthy(rport, procs_[1], std::chrono::seconds(60))) << procs_[1].output();
        port_ = static_cast<uint16_t>(rport);
        break;
      }
      case Kind::kDataParallelFront: {
        std::vector<std::string> args = serve_args(base);
        const int rpc = free_ports(1);
        for (const char* s : {"--data-parallel-size", "2", "--enable-expert-parallel",
                              "--data-parallel-address", "127.0.0.1", "--data-parallel-rpc-port"}) {
          args.push_back(s);
        }
        args.push_back(std::to_string(rpc));
        procs_.push_back(spawn(args, "dp.log"));
        ASSERT_TRUE(wait_healthy(base, procs_[0], std::chrono::seconds(180))) << procs_[0].output();
        port_ = static_cast<uint16_t>(base);
        engine_ports_ = {base + 1, base + 2};
        break;
      }
    }
    // Warm up every code path at full batch (allocator arenas, thread stacks, per-step
    // buffers sized by the largest batch, KV blocks), so that the baseline below is the steady
    // state that well-behaved clients leave.
    // Each engine directly too: the front may send all of the warm-up to one rank.
    std::vector<uint16_t> warm = {port_};
    for (int p : engine_ports_) warm.push_back(static_cast<uint16_t>(p));
    for (int round = 0; round < 2; ++round) {
      std::vector<std::thread> clients;
      for (uint16_t port : warm) {
        for (bool stream : {false, true}) {
          clients.emplace_back([port, stream] {
            json body = {{"model", "tiny"},    {"prompt", "warm up the server"},
                         {"max_tokens", 24},   {"n", 8},
                         {"ignore_eos", true}, {"stream", stream},
                         {"logprobs", 5}};
            ClientResponse r = http_request(port, "POST", "/v1/completions", body.dump(),
                                            {{"Content-Type", "application/json"}});
            EXPECT_EQ(r.status, 200) << r.body;
          });
        }
      }
      for (auto& t : clients) t.join();
      ASSERT_FALSE(HasFailure());
    }
    baseline_ = memory();
  }

  // Every process of the target: the launcher's ranks too.
  std::vector<pid_t> pids() const {
    std::vector<pid_t> out;
    for (const Child& c : procs_) {
      out.push_back(c.pid);
      if (GetParam() == Kind::kDataParallelFront) {
        for (pid_t r : children_of(c.pid)) out.push_back(r);
      }
    }
    return out;
  }
  std::vector<int64_t> memory() const {
    std::vector<int64_t> m;
    for (pid_t p : pids()) m.push_back(rss_kib(p));
    return m;
  }

  // Healthy, idle engines, every process alive and its memory back near the baseline.
  void expect_recovered() {
    for (const Child& c : procs_) ASSERT_TRUE(c.alive()) << c.output().substr(0, 20000);
    EXPECT_EQ(http_request(port_, "GET", "/health").status, 200);
    // Everything a disconnected client held is released: no request left in any engine.
    const auto until = Clock::now() + std::chrono::seconds(60);
    double left = -1;
    while (Clock::now() < until) {
      left = 0;
      for (int p : engine_ports_) {
        const std::string m = http_request(static_cast<uint16_t>(p), "GET", "/metrics").body;
        left += metric_value(m, "vllm:num_requests_running") +
                metric_value(m, "vllm:num_requests_waiting");
      }
      if (left == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_EQ(left, 0) << "requests left in the engine";
    // And serves the next client.
    json ok = {{"model", "tiny"}, {"prompt", "still here"}, {"max_tokens", 2}};
    ClientResponse r = http_request(port_, "POST", "/v1/completions", ok.dump(),
                                    {{"Content-Type", "application/json"}});
    EXPECT_EQ(r.status, 200) << r.body;
    // Memory: each process back within 10% of its baseline (allocators return freed pages
    // lazily, so allow a few seconds).
    std::vector<int64_t> now;
    const auto mem_until = Clock::now() + std::chrono::seconds(15);
    const std::vector<pid_t> ps = pids();
    ASSERT_EQ(ps.size(), baseline_.size());
    bool within = false;
    while (!within && Clock::now() < mem_until) {
      now = memory();
      within = true;
      for (size_t i = 0; i < now.size(); ++i) within &= now[i] <= baseline_[i] * 11 / 10;
      if (!within) std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    for (size_t i = 0; i < now.size(); ++i) {
      EXPECT_LE(now[i], baseline_[i] * 11 / 10)
          << "process " << i << " (pid " << ps[i] << ", "
          << (i < procs_.size() ? "spawned" : "rank") << "): RSS " << baseline_[i] << " KiB -> "
          << now[i] << " KiB";
    }
  }

  std::vector<Child> procs_;
  uint16_t port_ = 0;
  std::vector<int> engine_ports_;  // where /metrics shows each engine's request gauges
  std::vector<int64_t> baseline_;
};

void deep_and_huge_json(uint16_t port_) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  expect_vllm_error(raw_exchange(port_, post("/v1/chat/completions",
                                             R"({"model":"tiny","messages":)" + deep + "}")),
                    400, "deep chat body");
  expect_vllm_error(
      raw_exchange(port_, post("/v1/completions", R"({"model":"tiny","prompt":)" + deep + "}")),
      400, "deep completion body");
  expect_vllm_error(raw_exchange(port_, post("/v1/completions", std::string(300000, '{'))), 400,
                    "unbalanced deep body");
  // Declared larger than any limit: refused from the header, the body is never read.
  const std::string huge_head =
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: 1000000000\r\n\r\n{\"prompt\":\"";
  expect_vllm_error(raw_exchange(port_, huge_head), 413, "huge declared body");
  // Many values in a body of acceptable size.
  std::string wide = R"({"model":"tiny","max_tokens":1,"prompt":[)";
  for (int i = 0; i < 5'000'000; ++i) wide += i ? ",1" : "1";
  wide += "]}";
  expect_vllm_error(raw_exchange(port_, post("/v1/completions", wide)), 400, "five million values");
}

void client_sized_quantities(uint16_t port_) {
  ClientResponse n = raw_exchange(
      port_, post("/v1/completions", R"({"model":"tiny","prompt":"hi","n":20000000})"));
  expect_vllm_error(n, 400, "n=20000000");
  EXPECT_NE(n.body.find("n must be at most"), std::string::npos) << n.body;
  ClientResponse queue = raw_exchange(
      port_, post("/v1/completions", R"({"model":"tiny","prompt":"hi","n":5000,"max_tokens":1})"));
  expect_vllm_error(queue, 400, "n beyond the waiting queue");
  ClientResponse lp = raw_exchange(
      port_, post("/v1/completions", R"({"model":"tiny","prompt":"hi","logprobs":-1})"));
  expect_vllm_error(lp, 400, "logprobs=-1");
  EXPECT_NE(lp.body.find("which is greater than max allowed: 20"), std::string::npos) << lp.body;
  expect_vllm_error(raw_exchange(port_, post("/v1/completions",
                                             R"({"model":"tiny","prompt":"hi","logprobs":21})")),
                    400, "logprobs=21");
  expect_vllm_error(
      raw_exchange(port_, post("/v1/chat/completions",
                               R"({"model":"tiny","messages":[{"role":"user","content":"hi"}],)"
                               R"("logprobs":true,"top_logprobs":100000})")),
      400, "top_logprobs=100000");
  std::string stops = R"({"model":"tiny","prompt":"hi","stop":[)";
  for (int i = 0; i < 1000; ++i) stops += i ? ",\"x\"" : "\"x\"";
  stops += "]}";
  expect_vllm_error(raw_exchange(port_, post("/v1/completions", stops)), 400, "1000 stop strings");
  expect_vllm_error(
      raw_exchange(port_, post("/v1/completions", R"({"model":"tiny","prompt":"hi","stop":")" +
                                                      std::string(100000, 's') + "\"}")),
      400, "a 100 KB stop string");
  expect_vllm_error(
      raw_exchange(port_, post("/v1/completions", R"({"model":"tiny","prompt":"hi","logit_bias":)"
                                                  R"({"1":100,"2":-100}})")),
      400, "logit_bias");
}

void numeric_extremes(uint16_t port_) {
  const std::vector<std::string> extremes = {"-9223372036854775808",
                                             "9223372036854775807",
                                             "18446744073709551615",
                                             "-2147483649",
                                             "2147483648",
                                             "1e308",
                                             "-1e308",
                                             "1e400",
                                             "-0.5",
                                             "0",
                                             "-1",
                                             "123456789012345678901234567890"};
  const std::vector<std::string> fields = {"n",
                                           "max_tokens",
                                           "logprobs",
                                           "seed",
                                           "top_k",
                                           "min_tokens",
                                           "temperature",
                                           "top_p",
                                           "min_p",
                                           "presence_penalty",
                                           "frequency_penalty",
                                           "repetition_penalty",
                                           "truncate_prompt_tokens",
                                           "prompt_logprobs"};
  for (const std::string& f : fields) {
    for (const std::string& v : extremes) {
      // max_tokens is kept small unless it is the field under test.
      std::string body = R"({"model":"tiny","prompt":"hi",)";
      if (f != "max_tokens") body += R"("max_tokens":2,)";
      body += "\"" + f + "\":" + v + "}";
      // A huge max_tokens runs to --max-model-len: allow for a loaded machine.
      ClientResponse r = raw_exchange(port_, post("/v1/completions", body), 180000);
      EXPECT_TRUE(r.status == 200 || (r.status >= 400 && r.status < 500))
          << f << "=" << v << ": " << r.status << " " << r.body.substr(0, 300);
      if (r.status != 200) expect_vllm_error(r, r.status, f + "=" + v);
    }
  }
  for (const std::string& v : extremes) {
    ClientResponse r = raw_exchange(
        port_, post("/v1/completions", R"({"model":"tiny","max_tokens":1,"prompt":[)" + v + "]}"));
    EXPECT_TRUE(r.status == 200 || (r.status >= 400 && r.status < 500))
        << "prompt token " << v << ": " << r.status << " " << r.body.substr(0, 300);
    ClientResponse c = raw_exchange(
        port_, post("/v1/chat/completions",
                    R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"max_tokens":1,)"
                    R"("logprobs":true,"top_logprobs":)" +
                        v + "}"));
    EXPECT_TRUE(c.status == 200 || (c.status >= 400 && c.status < 500)) << v << ": " << c.body;
  }
}

void invalid_utf8_and_oversized_headers(uint16_t port_) {
  const std::string bad = "\xff\xfe\xc3\x28\xed\xa0\x80";
  expect_vllm_error(
      raw_exchange(port_, post("/v1/completions", R"({"model":"tiny","prompt":")" + bad + "\"}")),
      400, "invalid UTF-8 in a string");
  expect_vllm_error(raw_exchange(port_, post("/v1/completions", bad)), 400, "invalid UTF-8 body");
  expect_4xx_or_closed(raw_exchange(port_, "GET /v1/" + bad +
                                               " HTTP/1.1\r\nHost: x\r\n"
                                               "Connection: close\r\n\r\n"),
                       "invalid UTF-8 in the path");
  expect_4xx_or_closed(raw_exchange(port_, post("/v1/completions", "{}",
                                                "X-Junk: " + std::string(200000, 'j') + "\r\n")),
                       "a 200 KB header");
  std::string many_headers;
  for (int i = 0; i < 5000; ++i) many_headers += "X-H" + std::to_string(i) + ": v\r\n";
  expect_4xx_or_closed(raw_exchange(port_, post("/v1/completions", "{}", many_headers)),
                       "5000 headers");
  expect_4xx_or_closed(raw_exchange(port_, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage"),
                       "TLS hello");
}

void slow_senders_and_idle_connections(uint16_t port_) {
  std::vector<int> idle;
  for (int i = 0; i < 100; ++i) {
    const int fd = connect_local(port_, 5000);
    if (fd >= 0) idle.push_back(fd);
  }
  const std::string request =
      post("/v1/completions", R"({"model":"tiny","prompt":"slow","max_tokens":1})");
  std::vector<int> slow;
  for (int i = 0; i < 8; ++i) {
    const int fd = connect_local(port_, 5000);
    if (fd >= 0) slow.push_back(fd);
  }
  // Trickle the first half of each request, a byte at a time, while a normal client is served.
  const size_t half = request.size() / 2;
  std::thread normal([&] {
    json ok = {{"model", "tiny"}, {"prompt", "meanwhile"}, {"max_tokens", 2}};
    ClientResponse r = http_request(port_, "POST", "/v1/completions", ok.dump(),
                                    {{"Content-Type", "application/json"}});
    EXPECT_EQ(r.status, 200) << r.body;
  });
  for (size_t b = 0; b < half; b += 8) {
    for (int fd : slow) send_all(fd, request.substr(b, 8));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  normal.join();
  EXPECT_EQ(http_request(port_, "GET", "/health").status, 200);
  for (int fd : slow) ::close(fd);
  for (int fd : idle) ::close(fd);
}

void disconnects_at_every_stage(uint16_t port_) {
  const std::string body =
      R"({"model":"tiny","prompt":"disconnect me","n":4,"max_tokens":60,"ignore_eos":true})";
  const std::string request = post("/v1/completions", body);
  const std::string stream_request = post(
      "/v1/completions",
      R"({"model":"tiny","prompt":"disconnect me","n":4,"max_tokens":60,"ignore_eos":true,"stream":true})");
  for (int round = 0; round < 3; ++round) {
    // Mid-header, after the header, mid-body.
    for (size_t cut : {size_t{10}, request.find("\r\n\r\n") + 4, request.size() - 5}) {
      const int fd = connect_local(port_, 5000);
      ASSERT_GE(fd, 0);
      send_all(fd, request.substr(0, cut));
      ::close(fd);
    }
    // The whole request, gone before the answer (queued / running choices are released).
    for (int i = 0; i < 6; ++i) {
      const int fd = connect_local(port_, 5000);
      ASSERT_GE(fd, 0);
      send_all(fd, request);
      std::this_thread::sleep_for(std::chrono::milliseconds(i * 20));
      ::close(fd);
    }
    // Mid-stream: after the first bytes of the answer.
    {
      const int fd = connect_local(port_, 30000);
      ASSERT_GE(fd, 0);
      send_all(fd, stream_request);
      char buf[256];
      EXPECT_GT(::recv(fd, buf, sizeof(buf), 0), 0);
      ::close(fd);
    }
    // Reset instead of close.
    {
      const int fd = connect_local(port_, 5000);
      ASSERT_GE(fd, 0);
      send_all(fd, request);
      linger l{1, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
      ::close(fd);
    }
  }
}

// One test per target (its processes start once): every part of the battery, each followed by
// the recovery checks, so that a failure names the part that left something behind.
TEST_P(Hostile, EveryInputEndsIn4xxOrCloseAndLeavesNoTrace) {
  {
    SCOPED_TRACE("deep_and_huge_json");
    deep_and_huge_json(port_);
    expect_recovered();
    if (HasFatalFailure()) return;
  }
  {
    SCOPED_TRACE("client_sized_quantities");
    client_sized_quantities(port_);
    expect_recovered();
    if (HasFatalFailure()) return;
  }
  {
    SCOPED_TRACE("numeric_extremes");
    numeric_extremes(port_);
    expect_recovered();
    if (HasFatalFailure()) return;
  }
  {
    SCOPED_TRACE("invalid_utf8_and_oversized_headers");
    invalid_utf8_and_oversized_headers(port_);
    expect_recovered();
    if (HasFatalFailure()) return;
  }
  {
    SCOPED_TRACE("slow_senders_and_idle_connections");
    slow_senders_and_idle_connections(port_);
    expect_recovered();
    if (HasFatalFailure()) return;
  }
  {
    SCOPED_TRACE("disconnects_at_every_stage");
    disconnects_at_every_stage(port_);
    expect_recovered();
    if (HasFatalFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, Hostile,
                         ::testing::Values(Kind::kServer, Kind::kRouter, Kind::kDataParallelFront),
                         [](const ::testing::TestParamInfo<Kind>& i) {
                           return kind_name(i.param);
                         });

}  // namespace
