// End to end: the load generator against a small real HTTP server (Beast) in this test
// that streams SSE completions with a usage chunk, and cuts some streams short.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "bench_serve.h"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "gtest/gtest.h"
#include "serve_client.h"

namespace moeserve::bench {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr int64_t kCutMarker = 5;  // a prompt starting with this id gets its stream cut

// Streams one text chunk per requested token (split across two TCP writes), then a usage
// chunk and [DONE], with HTTP chunked encoding.
class FakeOpenAIServer {
 public:
  FakeOpenAIServer() : acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { accept_loop(); });
  }
  ~FakeOpenAIServer() {
    stop_ = true;
    beast::error_code ec;
    {  // a blocked accept() only returns for a connection
      tcp::socket wake(ioc_);
      wake.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port_)),
                   ec);
    }
    thread_.join();
    acceptor_.close(ec);
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& t : workers_) t.join();
  }
  int port() const { return port_; }
  int max_in_flight() const { return max_in_flight_; }
  int completions() const { return completions_; }

 private:
  void accept_loop() {
    while (!stop_) {
      tcp::socket sock(ioc_);
      beast::error_code ec;
      acceptor_.accept(sock, ec);
      if (ec || stop_) return;
      std::lock_guard<std::mutex> lock(mu_);
      workers_.emplace_back([this, s = std::move(sock)]() mutable { serve(std::move(s)); });
    }
  }

  static void write_chunk(tcp::socket& s, const std::string& payload, bool split) {
    std::string framed;
    char size[32];
    std::snprintf(size, sizeof(size), "%zx\r\n", payload.size());
    framed = size + payload + "\r\n";
    beast::error_code ec;
    if (split) {
      size_t half = framed.size() / 2;
      asio::write(s, asio::buffer(framed.data(), half), ec);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      asio::write(s, asio::buffer(framed.data() + half, framed.size() - half), ec);
    } else {
      asio::write(s, asio::buffer(framed), ec);
    }
  }

  void serve(tcp::socket sock) {
    beast::flat_buffer buf;
    http::request<http::string_body> req;
    beast::error_code ec;
    http::read(sock, buf, req, ec);
    if (ec) return;
    if (req.method() == http::verb::get && req.target() == "/v1/models") {
      http::response<http::string_body> res{http::status::ok, 11};
      res.set(http::field::content_type, "application/json");
      res.body() = R"({"object":"list","data":[{"id":"org/test-model","object":"model"}]})";
      res.prepare_payload();
      http::write(sock, res, ec);
      return;
    }
    nlohmann::json body = nlohmann::json::parse(req.body(), nullptr, false);
    if (body.is_discarded() || !body.contains("prompt") || !body["prompt"].is_array() ||
        body.value("stream", false) != true || body["model"] != "org/test-model") {
      http::response<http::string_body> res{http::status::bad_request, 11};
      res.body() = R"({"error":{"message":"bad request"}})";
      res.prepare_payload();
      http::write(sock, res, ec);
      return;
    }
    ++completions_;
    int now = ++in_flight_;
    int prev = max_in_flight_.load();
    while (now > prev && !max_in_flight_.compare_exchange_weak(prev, now)) {
    }
    int64_t n = body["max_tokens"].get<int64_t>();
    int64_t p = static_cast<int64_t>(body["prompt"].size());
    bool cut = !body["prompt"].empty() && body["prompt"][0] == kCutMarker;
    std::string head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
    asio::write(sock, asio::buffer(head), ec);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // "prefill"
    for (int64_t i = 0; i < n; ++i) {
      nlohmann::json chunk = {
          {"id", "cmpl-1"},
          {"object", "text_completion"},
          {"choices", {{{"index", 0}, {"text", " tok"}, {"finish_reason", nullptr}}}}};
      write_chunk(sock, "data: " + chunk.dump() + "\n\n", i % 2 == 1);
      if (cut && i == 1) {  // die mid-stream
        sock.close(ec);
        --in_flight_;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    nlohmann::json usage = {
        {"id", "cmpl-1"},
        {"object", "text_completion"},
        {"choices", nlohmann::json::array()},
        {"usage", {{"prompt_tokens", p}, {"completion_tokens", n}, {"total_tokens", p + n}}}};
    write_chunk(sock, "data: " + usage.dump() + "\n\n", false);
    write_chunk(sock, "data: [DONE]\n\n", true);
    asio::write(sock, asio::buffer(std::string("0\r\n\r\n")), ec);
    --in_flight_;
    sock.shutdown(tcp::socket::shutdown_send, ec);
  }

  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> in_flight_{0};
  std::atomic<int> max_in_flight_{0};
  std::atomic<int> completions_{0};  // well-formed completion requests served
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::thread> workers_;
};

TEST(BenchServeE2E, TimesStreamsAndCountsFailures) {
  FakeOpenAIServer server;
  ClientConfig c;
  c.port = std::to_string(server.port());
  c.progress = false;
  auto model = fetch_first_model(c.host, c.port);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(*model, "org/test-model");
  c.model = *model;
  c.max_concurrency = 2;

  std::vector<SampleRequest> reqs;
  for (int i = 0; i < 6; ++i) {
    SampleRequest r;
    r.prompt = nlohmann::json::array({i == 3 ? kCutMarker : 100, 11, 12, 13});
    r.prompt_len = 4;
    r.expected_output_len = 3 + i;
    reqs.push_back(r);
  }
  std::vector<double> arrivals = {0, 0, 0.01, 0.02, 0.02, 0.03};
  auto res = run_requests(c, reqs, arrivals);
  ASSERT_TRUE(res.ok()) << res.status();
  ASSERT_EQ(res->outputs.size(), 6u);
  // The cap holds on the client: no three request intervals overlap. The server's own count
  // may lag one connection behind (it decrements after its last write, the client releases its
  // slot on the last read), so it is only bounded by cap + 1.
  for (size_t i = 0; i < res->outputs.size(); ++i) {
    const double t = res->outputs[i].start_time + 1e-6;
    int live = 0;
    for (const RequestOutput& o : res->outputs) {
      if (o.start_time <= t && t < o.start_time + o.latency) ++live;
    }
    EXPECT_LE(live, 2) << "at the start of request " << i;
  }
  EXPECT_LE(server.max_in_flight(), 3);
  for (int i = 0; i < 6; ++i) {
    const RequestOutput& o = res->outputs[static_cast<size_t>(i)];
    if (i == 3) {
      EXPECT_FALSE(o.success);
      EXPECT_FALSE(o.error.empty());
      continue;
    }
    ASSERT_TRUE(o.success) << i << ": " << o.error;
    EXPECT_GT(o.ttft, 0.015);  // server waits 20 ms before the first token
    EXPECT_LT(o.ttft, o.latency);
    EXPECT_EQ(o.output_tokens, 3 + i);
    EXPECT_EQ(o.prompt_len, 4);
    EXPECT_EQ(o.itl.size(), static_cast<size_t>(2 + i));
    double sum = o.ttft;
    for (double g : o.itl) sum += g;
    EXPECT_NEAR(sum, o.latency, 1e-9);
    EXPECT_GE(o.start_time, arrivals[static_cast<size_t>(i)]);
  }
  BenchmarkMetrics m = compute_metrics(res->outputs, res->duration_s, {99}, {});
  EXPECT_EQ(m.completed, 5);
  EXPECT_EQ(m.failed, 1);
  EXPECT_EQ(m.total_output, 3 + 4 + 5 + 7 + 8);
  EXPECT_GT(m.stats["tpot"].mean_ms, 1.0);
}

TEST(BenchServeE2E, ConnectionRefusedIsAFailureNotACrash) {
  int port;
  {
    FakeOpenAIServer s;
    port = s.port();
  }
  ClientConfig c;
  c.port = std::to_string(port);
  c.model = "m";
  c.progress = false;
  SampleRequest r;
  r.prompt = nlohmann::json::array({1, 2});
  r.expected_output_len = 2;
  auto res = run_requests(c, {r, r}, {0, 0});
  ASSERT_TRUE(res.ok());
  for (const auto& o : res->outputs) {
    EXPECT_FALSE(o.success);
    EXPECT_NE(o.error.find("connect"), std::string::npos) << o.error;
  }
}

TEST(BenchServeE2E, CommandLineWritesVllmResultJson) {
  FakeOpenAIServer server;
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("bench_serve_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::vector<std::string> args = {"bench serve",
                                   "--base-url",
                                   "http://127.0.0.1:" + std::to_string(server.port()),
                                   "--dataset-name",
                                   "random",
                                   "--num-prompts",
                                   "6",
                                   "--random-input-len",
                                   "8",
                                   "--random-output-len",
                                   "4",
                                   "--request-rate",
                                   "200",
                                   "--max-concurrency",
                                   "3",
                                   "--percentile-metrics",
                                   "ttft,tpot,itl,e2el",
                                   "--metric-percentiles",
                                   "50,99",
                                   "--goodput",
                                   "ttft:10000",
                                   "--disable-tqdm",
                                   "--save-result",
                                   "--result-dir",
                                   dir.string(),
                                   "--result-filename",
                                   "out.json"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  testing::internal::CaptureStdout();
  int rc = bench_serve_main(static_cast<int>(argv.size()), argv.data());
  std::string printed = testing::internal::GetCapturedStdout();
  EXPECT_EQ(rc, 0);
  EXPECT_NE(printed.find("Successful requests:                     6"), std::string::npos)
      << printed;
  EXPECT_NE(printed.find("Request goodput (req/s):"), std::string::npos);
  EXPECT_NE(printed.find("P50 E2EL (ms):"), std::string::npos);
  std::ifstream f(dir / "out.json");
  ASSERT_TRUE(f.good());
  nlohmann::json j = nlohmann::json::parse(f);
  EXPECT_EQ(j["completed"], 6);
  EXPECT_EQ(j["failed"], 0);
  EXPECT_EQ(j["total_input_tokens"], 48);
  EXPECT_EQ(j["total_output_tokens"], 24);
  EXPECT_EQ(j["model_id"], "org/test-model");
  EXPECT_EQ(j["max_concurrency"], 3);
  EXPECT_GT(j["request_goodput"].get<double>(), 0.0);
  EXPECT_GT(j["mean_ttft_ms"].get<double>(), 0.0);
  EXPECT_TRUE(j.contains("p99_e2el_ms"));
  EXPECT_TRUE(j.contains("p50_tpot_ms"));
  EXPECT_EQ(j["input_lens"].size(), 6u);
  EXPECT_EQ(j["itls"][0].size(), 3u);
  // One untimed initial test request before the six timed ones, as vllm bench serve.
  EXPECT_EQ(server.completions(), 7);
  std::filesystem::remove_all(dir);
}

TEST(BenchServeE2E, FailedInitialTestRunStopsBeforeTheBenchmark) {
  int port = 0;
  {
    // A port that was free a moment ago: nothing listens there.
    asio::io_context ioc;
    tcp::acceptor a(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = a.local_endpoint().port();
  }
  std::vector<std::string> args = {"bench serve",   "--base-url",
                                   "http://127.0.0.1:" + std::to_string(port),
                                   "--model",       "m",
                                   "--num-prompts", "3",
                                   "--random-input-len", "4",
                                   "--random-output-len", "2",
                                   "--disable-tqdm"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  testing::internal::CaptureStderr();
  testing::internal::CaptureStdout();
  int rc = bench_serve_main(static_cast<int>(argv.size()), argv.data());
  const std::string printed = testing::internal::GetCapturedStdout();
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(rc, 1);
  EXPECT_NE(err.find("Initial test run failed"), std::string::npos) << err;
  EXPECT_EQ(err.find("Starting benchmark"), std::string::npos) << err;
  EXPECT_EQ(printed.find("Serving Benchmark Result"), std::string::npos) << printed;
}

}  // namespace
}  // namespace moeserve::bench
