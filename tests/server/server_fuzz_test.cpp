// FUZZ: hostile input over real sockets — malformed JSON, wrong types, huge numbers, invalid
// UTF-8, truncated and oversized bodies, random bytes as HTTP. Every answer must be a 4xx
// JSON error (or a closed connection for garbage), and the server must keep answering
// /health.
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "gen/gen_model.h"
#include "gtest/gtest.h"
#include "http_test_client.h"
#include "nlohmann/json.hpp"
#include "server/server_app.h"

namespace moeserve::server {
namespace {

namespace fs = std::filesystem;
using testing::ClientResponse;
using testing::http_request;

class ServerFuzz : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = (fs::path(::testing::TempDir()) / ("server_fuzz_" + std::to_string(getpid()))).string();
    GenModelOptions g;
    g.preset = "tiny";
    g.dtype = DType::kF32;
    ASSERT_TRUE(generate_model(dir_, g).ok());
    ServeOptions o;
    o.model_dir = dir_;
    o.port = 0;
    o.max_model_len = 128;
    o.num_kv_blocks = 32;
    o.http.body_limit = 1 << 20;
    o.http.read_timeout = std::chrono::milliseconds(2000);
    o.http.idle_timeout = std::chrono::milliseconds(1500);
    auto app = ServerApp::start(o);
    ASSERT_TRUE(app.ok()) << app.status();
    app_ = std::move(*app).release();
  }
  static void TearDownTestSuite() {
    delete app_;
    fs::remove_all(dir_);
  }
  static void expect_healthy() {
    EXPECT_EQ(http_request(app_->port(), "GET", "/health").status, 200);
  }
  // The raw bytes sent on a fresh connection; the reply (possibly none) is returned.
  // With `half_close` the client also shuts down its sending side, which the server takes
  // as the client going away (no answer needed).
  static ClientResponse raw(const std::string& bytes, bool half_close = false) {
    int fd = testing::connect_local(app_->port(), 10000);
    EXPECT_GE(fd, 0);
    if (fd < 0) return {};
    testing::send_all(fd, bytes);
    if (half_close) ::shutdown(fd, SHUT_WR);
    ClientResponse r = testing::parse_response(testing::read_all(fd));
    ::close(fd);
    return r;
  }
  static std::string post_bytes(const std::string& path, const std::string& body) {
    return "POST " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
  }
  static std::string dir_;
  static ServerApp* app_;
};
std::string ServerFuzz::dir_;
ServerApp* ServerFuzz::app_ = nullptr;

TEST_F(ServerFuzz, BadBodiesGet400) {
  const std::vector<std::string> bodies = {
      "",
      "{",
      "}",
      "null",
      "[]",
      "\"s\"",
      "{\"prompt\":}",
      "{\"prompt\":\"x\",}",
      "{\"prompt\":\"\xff\xfe\xfd\"}",
      "{\"prompt\":[1e999]}",
      "{\"prompt\":\"x\",\"max_tokens\":-5}",
      "{\"prompt\":\"x\",\"n\":99999999999999999999999}",
      "{\"prompt\":\"x\",\"temperature\":-1e308}",
      "{\"prompt\":\"x\",\"top_p\":\"1\"}",
      "{\"prompt\":[[1,2],[\"a\"]]}",
      "{\"prompt\":true}",
      "{\"messages\":[{\"role\":1}]}",
      "{\"messages\":{\"role\":\"user\"}}",
      "{\"prompt\":\"x\",\"stop\":[[]]}",
      "{\"prompt\":\"x\",\"seed\":\"7\"}",
      std::string(5000, '[') + std::string(5000, ']'),
      "{\"prompt\":\"\\ud800\"}",
  };
  for (const auto& path : {"/v1/completions", "/v1/chat/completions", "/tokenize", "/detokenize"}) {
    const bool generation = std::string_view(path).rfind("/v1/", 0) == 0;
    for (const auto& b : bodies) {
      ClientResponse r = raw(post_bytes(path, b));
      if (generation || r.status != 200) {
        EXPECT_EQ(r.status, 400) << path << " " << b.substr(0, 80) << " -> " << r.body;
      }
      if (r.status == 200) continue;  // /tokenize ignores generation fields
      auto j = nlohmann::json::parse(r.body, nullptr, false);
      EXPECT_TRUE(!j.is_discarded() && j.contains("error")) << r.body;
    }
  }
  expect_healthy();
}

TEST_F(ServerFuzz, OversizedAndTruncatedBodies) {
  // Declared larger than the limit: 413 before the body is read.
  ClientResponse big =
      raw("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n{");
  EXPECT_EQ(big.status, 413) << big.body;
  // Actually larger than the limit, chunked.
  std::string chunked =
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string piece(1 << 16, 'a');
  for (int i = 0; i < 20; ++i) chunked += "10000\r\n" + piece + "\r\n";
  chunked += "0\r\n\r\n";
  EXPECT_EQ(raw(chunked).status, 413);
  // Truncated: fewer bytes than Content-Length, then the client half-closes.
  ClientResponse cut =
      raw("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"prompt\":",
          /*half_close=*/true);
  EXPECT_EQ(cut.status, 0);  // no response, the connection is simply closed
  // Headers that never end: the read timeout closes the connection.
  int fd = testing::connect_local(app_->port(), 10000);
  ASSERT_GE(fd, 0);
  testing::send_all(fd, "GET /health HTTP/1.1\r\nX-Slow: ");
  const auto t0 = std::chrono::steady_clock::now();
  testing::read_all(fd);
  ::close(fd);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(8));
  expect_healthy();
}

TEST_F(ServerFuzz, RandomBytesAsHttp) {
  std::mt19937_64 rng(7);
  const std::vector<std::string> seeds = {
      "GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
      post_bytes("/v1/completions", "{\"prompt\":\"hi\",\"max_tokens\":1}"),
      "POST /tokenize HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef",
      "GET / HTTP/9.9\r\n\r\n",
      "\r\n\r\n",
      "GARBAGE\r\n\r\n",
  };
  for (int i = 0; i < 150; ++i) {
    std::string s;
    if (i % 3 == 0) {
      s.resize(rng() % 512);
      for (auto& c : s) c = static_cast<char>(rng());
    } else {
      s = seeds[rng() % seeds.size()];
      for (int e = 0; e < 1 + static_cast<int>(rng() % 6); ++e) {
        s[rng() % s.size()] = static_cast<char>(rng());
      }
    }
    ClientResponse r = raw(s, /*half_close=*/true);
    if (r.status != 0) {
      EXPECT_TRUE(r.status == 200 || (r.status >= 400 && r.status < 500) || r.status == 503)
          << r.status;
    }
  }
  expect_healthy();
  // A valid generation still works after all that.
  ClientResponse ok = http_request(app_->port(), "POST", "/v1/completions",
                                   R"({"prompt":[1,2,3],"max_tokens":2,"ignore_eos":true})");
  EXPECT_EQ(ok.status, 200) << ok.body;
}

}  // namespace
}  // namespace moeserve::server
