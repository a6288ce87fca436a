// End-to-end: a generated tiny model, the real engine and the HTTP server in-process on an
// ephemeral 127.0.0.1 port, driven over real sockets.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "gtest/gtest.h"
#include "http_test_client.h"
#include "../gen/tiny_model.h"
#include "nlohmann/json.hpp"
#include "server/server_app.h"

namespace moeserve::server {
namespace {

using nlohmann::json;
using testing::ClientResponse;
using testing::http_request;
using testing::metric_value;
using testing::sse_payloads;

constexpr const char* kKey = "test-key";
constexpr const char* kName = "tiny";

const std::string& tiny_model() { return ::moeserve::testing::tiny_model("server_e2e", 5); }

ServeOptions base_options() {
  ServeOptions o;
  o.model_dir = tiny_model();
  o.port = 0;
  o.served_model_names = {kName, "alias"};
  o.max_model_len = 256;
  o.max_num_seqs = 8;
  o.max_num_batched_tokens = 128;
  o.num_kv_blocks = 96;
  o.enable_prompt_tokens_details = true;
  o.seed = 1;
  return o;
}

class ServerE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ServeOptions o = base_options();
    o.api_key = kKey;
    auto app = ServerApp::start(o);
    ASSERT_TRUE(app.ok()) << app.status();
    app_ = std::move(*app).release();
  }
  static void TearDownTestSuite() {
    delete app_;
    app_ = nullptr;
  }

  static ClientResponse post(const std::string& path, const json& body) {
    return http_request(app_->port(), "POST", path, body.dump(),
                        {{"Authorization", std::string("Bearer ") + kKey}});
  }
  static ClientResponse get(const std::string& path) {
    return http_request(app_->port(), "GET", path, "",
                        {{"Authorization", std::string("Bearer ") + kKey}});
  }
  static json body_json(const ClientResponse& r) {
    json j = json::parse(r.body, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.body;
    return j;
  }
  static std::string metrics() { return get("/metrics").body; }
  // Polls /metrics until `pred` holds (bounded).
  template <typename Pred>
  static bool wait_metrics(Pred pred) {
    for (int i = 0; i < 500; ++i) {
      if (pred(metrics())) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  static void expect_error(const ClientResponse& r, int status, const std::string& type,
                           const std::string& message_part) {
    EXPECT_EQ(r.status, status) << r.body;
    json j = body_json(r);
    ASSERT_TRUE(j.contains("error")) << r.body;
    EXPECT_EQ(j["error"]["type"], type);
    EXPECT_EQ(j["error"]["code"], status);
    EXPECT_TRUE(j["error"].contains("param"));
    EXPECT_NE(j["error"]["message"].get<std::string>().find(message_part), std::string::npos)
        << j["error"]["message"];
  }

  static ServerApp* app_;
};
ServerApp* ServerE2E::app_ = nullptr;

TEST_F(ServerE2E, HealthVersionModels) {
  ClientResponse h = http_request(app_->port(), "GET", "/health");  // no key needed
  EXPECT_EQ(h.status, 200);
  EXPECT_TRUE(h.body.empty());
  ClientResponse v = http_request(app_->port(), "GET", "/version");
  EXPECT_EQ(v.status, 200);
  EXPECT_TRUE(body_json(v).contains("version"));
  json m = body_json(get("/v1/models"));
  EXPECT_EQ(m["object"], "list");
  ASSERT_EQ(m["data"].size(), 2u);
  EXPECT_EQ(m["data"][0]["id"], kName);
  EXPECT_EQ(m["data"][1]["id"], "alias");
  EXPECT_EQ(m["data"][0]["object"], "model");
  EXPECT_EQ(m["data"][0]["owned_by"], "vllm");
  EXPECT_EQ(m["data"][0]["max_model_len"], 256);
  EXPECT_EQ(m["data"][0]["root"], tiny_model());
  EXPECT_EQ(m["data"][0]["permission"][0]["object"], "model_permission");
  EXPECT_EQ(http_request(app_->port(), "GET", "/nope").status, 404);
  EXPECT_EQ(http_request(app_->port(), "GET", "/v1/completions", "",
                         {{"Authorization", std::string("Bearer ") + kKey}})
                .status,
            405);
}

TEST_F(ServerE2E, AuthGuardsV1Only) {
  ClientResponse r = http_request(app_->port(), "GET", "/v1/models");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(body_json(r), json({{"error", "Unauthorized"}}));
  r = http_request(app_->port(), "POST", "/v1/completions", R"({"prompt":"a"})",
                   {{"Authorization", "Bearer wrong"}});
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(http_request(app_->port(), "GET", "/metrics").status, 200);
}

TEST_F(ServerE2E, CompletionStringPrompt) {
  ClientResponse r = post("/v1/completions", {{"model", kName},
                                              {"prompt", "hello world"},
                                              {"max_tokens", 5},
                                              {"ignore_eos", true},
                                              {"temperature", 0}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers["content-type"], "application/json");
  json j = body_json(r);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["id"].get<std::string>().rfind("cmpl-", 0), 0u);
  EXPECT_EQ(j["model"], kName);
  EXPECT_TRUE(j["created"].is_number_integer());
  ASSERT_EQ(j["choices"].size(), 1u);
  EXPECT_EQ(j["choices"][0]["index"], 0);
  EXPECT_TRUE(j["choices"][0]["text"].is_string());
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(j["choices"][0]["stop_reason"].is_null());
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(j["usage"]["completion_tokens"], 5);
  EXPECT_GT(j["usage"]["prompt_tokens"].get<int>(), 0);
  EXPECT_EQ(j["usage"]["total_tokens"].get<int>(), j["usage"]["prompt_tokens"].get<int>() + 5);
  EXPECT_TRUE(j["usage"]["prompt_tokens_details"].contains("cached_tokens"));
}

TEST_F(ServerE2E, CompletionTokenIdsListsAndN) {
  json j = body_json(post("/v1/completions",
                          {{"prompt", json::array({json::array({5, 6, 7}), json::array({8, 9})})},
                           {"n", 2},
                           {"max_tokens", 3},
                           {"ignore_eos", true},
                           {"seed", 11}}));
  ASSERT_EQ(j["choices"].size(), 4u) << j;
  for (int i = 0; i < 4; ++i) EXPECT_EQ(j["choices"][i]["index"], i);
  EXPECT_EQ(j["usage"]["prompt_tokens"], 5);  // each prompt once
  EXPECT_EQ(j["usage"]["completion_tokens"], 12);
  // Seeded sampling is reproducible: the same request gives the same texts.
  json again = body_json(post(
      "/v1/completions", {{"prompt", json::array({json::array({5, 6, 7}), json::array({8, 9})})},
                          {"n", 2},
                          {"max_tokens", 3},
                          {"ignore_eos", true},
                          {"seed", 11}}));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(j["choices"][i]["text"], again["choices"][i]["text"]);
  json flat = body_json(
      post("/v1/completions",
           {{"prompt", json::array({5, 6, 7})}, {"max_tokens", 2}, {"ignore_eos", true}}));
  ASSERT_EQ(flat["choices"].size(), 1u);
  EXPECT_EQ(flat["usage"]["prompt_tokens"], 3);
  json strs = body_json(
      post("/v1/completions",
           {{"prompt", json::array({"a b", "c"})}, {"max_tokens", 2}, {"ignore_eos", true}}));
  EXPECT_EQ(strs["choices"].size(), 2u);
}

TEST_F(ServerE2E, CompletionLogprobsAndEcho) {
  json j = body_json(post("/v1/completions", {{"prompt", "abc"},
                                              {"max_tokens", 4},
                                              {"ignore_eos", true},
                                              {"logprobs", 2},
                                              {"temperature", 0}}));
  const json& lp = j["choices"][0]["logprobs"];
  ASSERT_TRUE(lp.is_object()) << j;
  ASSERT_EQ(lp["tokens"].size(), 4u);
  ASSERT_EQ(lp["token_logprobs"].size(), 4u);
  ASSERT_EQ(lp["text_offset"].size(), 4u);
  ASSERT_EQ(lp["top_logprobs"].size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_LE(lp["token_logprobs"][i].get<double>(), 0.0);
    EXPECT_GE(lp["top_logprobs"][i].size(), 1u);
    EXPECT_LE(lp["top_logprobs"][i].size(), 3u);
    // Greedy: the chosen token is the most likely one.
    double best = -1e30;
    for (auto& [k, v] : lp["top_logprobs"][i].items()) best = std::max(best, v.get<double>());
    EXPECT_NEAR(lp["token_logprobs"][i].get<double>(), best, 1e-4);
  }
  EXPECT_EQ(lp["text_offset"][0], 0);
  json echo =
      body_json(post("/v1/completions",
                     {{"prompt", "abc"}, {"max_tokens", 2}, {"ignore_eos", true}, {"echo", true}}));
  EXPECT_EQ(echo["choices"][0]["text"].get<std::string>().rfind("abc", 0), 0u);
}

TEST_F(ServerE2E, StopStrings) {
  const json base = {
      {"prompt", "the"}, {"max_tokens", 24}, {"ignore_eos", true}, {"temperature", 0}};
  const std::string full = body_json(post("/v1/completions", base))["choices"][0]["text"];
  // A two-byte ASCII stop string from the middle of the greedy output.
  std::string stop;
  for (size_t i = 2; i + 2 <= full.size() && stop.empty(); ++i) {
    if (static_cast<unsigned char>(full[i]) < 0x80 &&
        static_cast<unsigned char>(full[i + 1]) < 0x80) {
      stop = full.substr(i, 2);
    }
  }
  if (stop.empty()) GTEST_SKIP() << "no ASCII pair in the output: " << full;
  json req = base;
  req["stop"] = stop;
  json j = body_json(post("/v1/completions", req));
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop") << j;
  EXPECT_EQ(j["choices"][0]["stop_reason"], stop);
  EXPECT_EQ(j["choices"][0]["text"], full.substr(0, full.find(stop)));
  req["include_stop_str_in_output"] = true;
  json k = body_json(post("/v1/completions", req));
  EXPECT_EQ(k["choices"][0]["text"], full.substr(0, full.find(stop) + stop.size()));
}

TEST_F(ServerE2E, CompletionStreamMatchesNonStream) {
  json req = {{"prompt", "stream me"}, {"max_tokens", 8}, {"ignore_eos", true}, {"temperature", 0}};
  const std::string full = body_json(post("/v1/completions", req))["choices"][0]["text"];
  req["stream"] = true;
  req["stream_options"] = {{"include_usage", true}};
  ClientResponse r = post("/v1/completions", req);
  ASSERT_EQ(r.status, 200);
  EXPECT_TRUE(r.chunked);
  EXPECT_EQ(r.headers["content-type"].rfind("text/event-stream", 0), 0u);
  auto events = sse_payloads(r.body);
  ASSERT_GE(events.size(), 3u) << r.body;
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  json usage;
  std::string last_finish;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    json e = json::parse(events[i]);
    EXPECT_EQ(e["object"], "text_completion");
    if (e.contains("usage") && e["choices"].empty()) {
      usage = e["usage"];
      continue;
    }
    text += e["choices"][0]["text"].get<std::string>();
    if (!e["choices"][0]["finish_reason"].is_null()) last_finish = e["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(text, full);
  EXPECT_EQ(last_finish, "length");
  EXPECT_EQ(usage["completion_tokens"], 8);
}

TEST_F(ServerE2E, ChatCompletionAndStreamWithUsage) {
  json req = {{"model", "alias"},
              {"messages", {{{"role", "user"}, {"content", "hi there"}}}},
              {"max_completion_tokens", 6},
              {"ignore_eos", true},
              {"temperature", 0}};
  json j = body_json(post("/v1/chat/completions", req));
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(j["model"], kName);  // responses use the first served name
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  const std::string content = j["choices"][0]["message"]["content"];
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["completion_tokens"], 6);

  // The prompt is the chat template's rendering: /tokenize with the same messages agrees.
  json tok = body_json(post("/tokenize", {{"messages", req["messages"]}}));
  EXPECT_EQ(tok["count"], j["usage"]["prompt_tokens"]);

  req["stream"] = true;
  req["stream_options"] = {{"include_usage", true}};
  ClientResponse r = post("/v1/chat/completions", req);
  ASSERT_EQ(r.status, 200);
  auto events = sse_payloads(r.body);
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back(), "[DONE]");
  json first = json::parse(events[0]);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"], json({{"role", "assistant"}, {"content", ""}}));
  json usage_chunk = json::parse(events[events.size() - 2]);
  EXPECT_TRUE(usage_chunk["choices"].empty());
  EXPECT_EQ(usage_chunk["usage"]["completion_tokens"], 6);
  std::string streamed;
  std::string finish;
  for (size_t i = 1; i + 2 < events.size(); ++i) {
    json e = json::parse(events[i]);
    const json& d = e["choices"][0]["delta"];
    if (d.contains("content")) streamed += d["content"].get<std::string>();
    if (!e["choices"][0]["finish_reason"].is_null()) finish = e["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(streamed, content);
  EXPECT_EQ(finish, "length");
}

TEST_F(ServerE2E, ChatLogprobsAndContentParts) {
  json req = {
      {"messages",
       {{{"role", "user"},
         {"content", {{{"type", "text"}, {"text", "a"}}, {{"type", "text"}, {"text", "b"}}}}}}},
      {"max_tokens", 3},
      {"ignore_eos", true},
      {"logprobs", true},
      {"top_logprobs", 2}};
  json j = body_json(post("/v1/chat/completions", req));
  const json& content = j["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 3u) << j;
  EXPECT_TRUE(content[0]["token"].is_string());
  EXPECT_TRUE(content[0]["bytes"].is_array());
  EXPECT_EQ(content[0]["top_logprobs"].size(), 2u);
}

TEST_F(ServerE2E, ErrorShapes) {
  expect_error(post("/v1/completions", {{"model", "gpt-4"}, {"prompt", "x"}}), 404, "NotFoundError",
               "The model `gpt-4` does not exist.");
  expect_error(post("/v1/completions", {{"prompt", "x"}, {"temperature", -1}}), 400,
               "BadRequestError", "temperature must be non-negative");
  expect_error(post("/v1/completions", {{"prompt", "x"}, {"max_tokens", "many"}}), 400,
               "BadRequestError", "max_tokens");
  expect_error(
      post("/v1/completions", {{"prompt", "x"}, {"stream_options", {{"include_usage", true}}}}),
      400, "BadRequestError", "Stream options can only be defined when `stream=True`.");
  expect_error(post("/v1/completions", {{"prompt", json(std::vector<int>(300, 7))}}), 400,
               "BadRequestError",
               "Input length (300) exceeds model's maximum context length (256).");
  expect_error(post("/v1/completions", {{"prompt", json::array({100000})}}), 400, "BadRequestError",
               "out of vocabulary");
  expect_error(http_request(app_->port(), "POST", "/v1/completions", "{not json",
                            {{"Authorization", std::string("Bearer ") + kKey}}),
               400, "BadRequestError", "not valid JSON");
  expect_error(post("/v1/chat/completions", {{"messages", json::array()}}), 400, "BadRequestError",
               "messages");
  // Unknown fields are ignored.
  EXPECT_EQ(post("/v1/completions", {{"prompt", "x"}, {"max_tokens", 1}, {"frobnicate", 1}}).status,
            200);
}

TEST_F(ServerE2E, TokenizeRoundTrip) {
  json t = body_json(post(
      "/tokenize",
      {{"prompt", "hello world"}, {"add_special_tokens", false}, {"return_token_strs", true}}));
  ASSERT_TRUE(t["tokens"].is_array()) << t;
  EXPECT_EQ(t["count"], t["tokens"].size());
  EXPECT_EQ(t["max_model_len"], 256);
  EXPECT_EQ(t["token_strs"].size(), t["tokens"].size());
  json d = body_json(post("/detokenize", {{"tokens", t["tokens"]}}));
  EXPECT_EQ(d["prompt"], "hello world");
  json with_bos = body_json(post("/tokenize", {{"prompt", "hello world"}}));
  EXPECT_EQ(with_bos["count"].get<int>(), t["count"].get<int>() + 1);  // BOS
  expect_error(post("/detokenize", {{"tokens", json::array({-1})}}), 400, "BadRequestError", "");
}

TEST_F(ServerE2E, MetricsMoveAndIdleCacheIsEmpty) {
  const std::string before = metrics();
  const double gen_before = metric_value(before, "vllm:generation_tokens_total");
  const double ok_before =
      metric_value(before, "vllm:request_success_total", {"finished_reason=\"length\""});
  // A histogram has no series before its first observation (metric_value gives -1).
  const double queued_before =
      std::max(0.0, metric_value(before, "vllm:request_queue_time_seconds_count"));
  ASSERT_EQ(
      post("/v1/completions", {{"prompt", "m"}, {"max_tokens", 4}, {"ignore_eos", true}}).status,
      200);
  ASSERT_TRUE(wait_metrics(
      [&](const std::string& m) { return metric_value(m, "vllm:num_requests_running") == 0.0; }));
  const std::string after = metrics();
  EXPECT_NE(after.find("# TYPE vllm:prompt_tokens_total counter"), std::string::npos);
  EXPECT_NE(after.find("# TYPE vllm:time_to_first_token_seconds histogram"), std::string::npos);
  EXPECT_NE(after.find("vllm:cache_config_info{block_size=\"16\""), std::string::npos);
  EXPECT_GE(metric_value(after, "vllm:generation_tokens_total"), gen_before + 4);
  EXPECT_EQ(metric_value(after, "vllm:request_success_total", {"finished_reason=\"length\""}),
            ok_before + 1);
  EXPECT_GT(
      metric_value(after, "vllm:prompt_tokens_total", {"model_name=\"tiny\"", "engine=\"0\""}), 0);
  EXPECT_GT(metric_value(after, "vllm:time_to_first_token_seconds_count"), 0);
  EXPECT_GT(metric_value(after, "vllm:e2e_request_latency_seconds_count"), 0);
  // Engine-side phases: one observation each for the request, and they nest inside e2e.
  EXPECT_EQ(metric_value(after, "vllm:request_queue_time_seconds_count"), queued_before + 1);
  for (const char* phase : {"inference", "prefill", "decode"}) {
    const std::string name = std::string("vllm:request_") + phase + "_time_seconds";
    EXPECT_EQ(metric_value(after, name + "_count"),
              metric_value(after, "vllm:request_queue_time_seconds_count"))
        << name;
    EXPECT_LE(metric_value(after, name + "_sum"),
              metric_value(after, "vllm:e2e_request_latency_seconds_sum"))
        << name;
  }
  EXPECT_GT(metric_value(after, "vllm:request_decode_time_seconds_sum"), 0.0);
  EXPECT_EQ(metric_value(after, "vllm:kv_cache_usage_perc"), 0.0);
  EXPECT_EQ(metric_value(after, "vllm:num_requests_waiting"), 0.0);
  // The sizes of the caches that fill with traffic (each bounded; see their headers).
  EXPECT_GT(metric_value(after, "moeserve:tokenizer_cache_entries", {"model_name=\"tiny\""}), 0);
  EXPECT_GE(metric_value(after, "moeserve:prefix_cache_entries"), 0);
  EXPECT_GE(metric_value(after, "moeserve:linear_primitive_cache_entries"), 0);
}

TEST_F(ServerE2E, RepeatedLongPromptHitsThePrefixCache) {
  std::vector<int> ids;
  for (int i = 0; i < 100; ++i) ids.push_back(10 + (i * 7) % 300);
  const json req = {{"prompt", ids}, {"max_tokens", 2}, {"ignore_eos", true}};
  ASSERT_EQ(post("/v1/completions", req).status, 200);
  const double hits = metric_value(metrics(), "vllm:prefix_cache_hits_total");
  json second = body_json(post("/v1/completions", req));
  EXPECT_GE(second["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(), 96);
  EXPECT_GE(metric_value(metrics(), "vllm:prefix_cache_hits_total"), hits + 96);
  EXPECT_GT(metric_value(metrics(), "vllm:prefix_cache_queries_total"), 0);
}

TEST_F(ServerE2E, ClientDisconnectMidStreamAbortsTheRequest) {
  const double aborts_before =
      metric_value(metrics(), "vllm:request_success_total", {"finished_reason=\"abort\""});
  int fd = testing::connect_local(app_->port());
  ASSERT_GE(fd, 0);
  const std::string body =
      json({{"prompt", "long"}, {"max_tokens", 200}, {"ignore_eos", true}, {"stream", true}})
          .dump();
  ASSERT_TRUE(testing::send_all(
      fd,
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-key\r\n"
      "Content-Length: " +
          std::to_string(body.size()) + "\r\n\r\n" + body));
  std::string got;
  char buf[4096];
  for (int i = 0; i < 1000 && got.find("\"text\"") == std::string::npos; ++i) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  ASSERT_NE(got.find("\"text\""), std::string::npos) << got;
  ::close(fd);  // gone mid-stream
  EXPECT_TRUE(wait_metrics([&](const std::string& m) {
    return metric_value(m, "vllm:request_success_total", {"finished_reason=\"abort\""}) ==
               aborts_before + 1 &&
           metric_value(m, "vllm:num_requests_running") == 0.0 &&
           metric_value(m, "vllm:kv_cache_usage_perc") == 0.0;
  })) << metrics();
  // The server still answers.
  EXPECT_EQ(http_request(app_->port(), "GET", "/health").status, 200);
}

TEST_F(ServerE2E, KeepAliveServesSeveralRequestsOnOneConnection) {
  int fd = testing::connect_local(app_->port());
  ASSERT_GE(fd, 0);
  std::string req = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_TRUE(testing::send_all(
      fd, req + req + "GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  const std::string all = testing::read_all(fd);
  ::close(fd);
  size_t count = 0;
  for (size_t p = all.find("HTTP/1.1 200"); p != std::string::npos;
       p = all.find("HTTP/1.1 200", p + 1))
    ++count;
  EXPECT_EQ(count, 3u) << all;
  EXPECT_NE(all.find("\"version\""), std::string::npos);
}

// A separate server with one running slot and one waiting slot: the third concurrent request
// is refused with 503 and Retry-After.
TEST(ServerOverload, QueueFullGives503WithRetryAfter) {
  ServeOptions o = base_options();
  o.max_num_seqs = 1;
  o.max_waiting_requests = 1;
  auto app = ServerApp::start(o);
  ASSERT_TRUE(app.ok()) << app.status();
  const uint16_t port = (*app)->port();
  const std::string body =
      json({{"prompt", "x"}, {"max_tokens", 120}, {"ignore_eos", true}}).dump();
  constexpr int kClients = 6;
  std::vector<int> fds;
  for (int i = 0; i < kClients; ++i) {
    int fd = testing::connect_local(port);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(
        testing::send_all(fd,
                          "POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                          "Content-Length: " +
                              std::to_string(body.size()) + "\r\n\r\n" + body));
    fds.push_back(fd);
  }
  int ok = 0, unavailable = 0;
  for (int fd : fds) {
    ClientResponse r = testing::parse_response(testing::read_all(fd));
    ::close(fd);
    if (r.status == 200) ++ok;
    if (r.status == 503) {
      ++unavailable;
      EXPECT_EQ(r.headers.count("retry-after"), 1u);
      json j = json::parse(r.body);
      EXPECT_EQ(j["error"]["code"], 503);
    }
  }
  EXPECT_GE(ok, 1);
  EXPECT_GE(unavailable, 1);
  EXPECT_EQ(ok + unavailable, kClients);
  (*app)->shutdown(/*drain=*/true, 30);
}

// Draining shutdown lets an in-flight request finish.
TEST(ServerShutdown, DrainFinishesInFlightRequests) {
  ServeOptions o = base_options();
  auto app = ServerApp::start(o);
  ASSERT_TRUE(app.ok()) << app.status();
  const uint16_t port = (*app)->port();
  ClientResponse r;
  std::thread client([&] {
    r = http_request(port, "POST", "/v1/completions",
                     json({{"prompt", "x"}, {"max_tokens", 60}, {"ignore_eos", true}}).dump());
  });
  for (int i = 0; i < 500 && (*app)->engine().stats().num_running == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  (*app)->shutdown(/*drain=*/true, 30);
  client.join();
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["usage"]["completion_tokens"], 60);
}

}  // namespace
}  // namespace moeserve::server
