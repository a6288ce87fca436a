#include "serve_client.h"

#include <chrono>
#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "boost/asio/co_spawn.hpp"
#include "boost/asio/detached.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/redirect_error.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/use_awaitable.hpp"
#include "net/http_client.h"
#include "net/json_intake.h"
#include "sse_parser.h"

namespace moeserve::bench {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

bool is_chat_endpoint(const std::string& endpoint) {
  return endpoint.find("chat/completions") != std::string::npos;
}

nlohmann::json make_request_body(const ClientConfig& c, const SampleRequest& r) {
  nlohmann::json body;
  body["model"] = c.model;
  if (is_chat_endpoint(c.endpoint)) {
    body["messages"] = nlohmann::json::array({{{"role", "user"}, {"content", r.prompt}}});
    body["max_completion_tokens"] = r.expected_output_len;
  } else {
    body["prompt"] = r.prompt;
    body["max_tokens"] = r.expected_output_len;
  }
  body["temperature"] = 0.0;
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  if (c.ignore_eos) body["ignore_eos"] = true;
  return body;
}

namespace {

class Runner {
 public:
  Runner(const ClientConfig& c, const std::vector<SampleRequest>& requests,
         const std::vector<double>& arrivals, tcp::resolver::results_type endpoints)
      : cfg_(c),
        requests_(requests),
        arrivals_(arrivals),
        endpoints_(std::move(endpoints)),
        slot_timer_(ioc_),
        outputs_(requests.size()) {
    slot_timer_.expires_at(asio::steady_timer::time_point::max());
  }

  RunResult run() {
    start_ = Clock::now();
    for (size_t i = 0; i < requests_.size(); ++i) {
      asio::co_spawn(ioc_, one_request(i), asio::detached);
    }
    ioc_.run();
    RunResult r;
    r.duration_s = seconds_since_start();
    r.outputs = std::move(outputs_);
    if (cfg_.progress) std::fputc('\n', stderr);
    return r;
  }

 private:
  double seconds_since_start() const {
    return std::chrono::duration<double>(Clock::now() - start_).count();
  }

  asio::awaitable<void> one_request(size_t i) {
    beast::error_code ec;
    asio::steady_timer arrival(ioc_);
    arrival.expires_at(start_ + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(arrivals_[i])));
    co_await arrival.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (cfg_.max_concurrency) {
      while (in_flight_ >= *cfg_.max_concurrency) {
        co_await slot_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
    }
    ++in_flight_;
    RequestOutput& out = outputs_[i];
    out.prompt_len = requests_[i].prompt_len;
    co_await stream_one(requests_[i], out);
    --in_flight_;
    slot_timer_.cancel();  // wake waiters; they re-check the count
    ++done_;
    if (cfg_.progress) print_progress();
  }

  void print_progress() {
    size_t total = requests_.size();
    size_t width = 40;
    size_t filled = total == 0 ? width : done_ * width / total;
    std::fprintf(stderr, "\r[%s%s] %zu/%zu (%.1fs)", std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), done_, total, seconds_since_start());
    std::fflush(stderr);
  }

  // Handles one SSE payload; returns false when the stream reported an error.
  bool on_event(const std::string& data, RequestOutput& out, double& last, bool& done,
                int64_t& text_chunks) {
    if (data == "[DONE]") {
      done = true;
      return true;
    }
    auto parsed = net::parse_json<nlohmann::json>(data);
    if (!parsed.ok() || !parsed->is_object()) return true;  // not ours to judge
    nlohmann::json& j = *parsed;
    double now = seconds_since_start();
    if (j.contains("error")) {
      out.error = j["error"].is_object() && j["error"].contains("message")
                      ? j["error"]["message"].dump()
                      : j["error"].dump();
      return false;
    }
    const nlohmann::json* choices = j.contains("choices") ? &j["choices"] : nullptr;
    if (choices && choices->is_array() && !choices->empty() && (*choices)[0].is_object()) {
      const nlohmann::json& c0 = (*choices)[0];
      std::string text;
      if (c0.contains("text") && c0["text"].is_string()) {
        text = c0["text"].get<std::string>();
      } else if (c0.contains("delta") && c0["delta"].is_object() &&
                 c0["delta"].contains("content") && c0["delta"]["content"].is_string()) {
        text = c0["delta"]["content"].get<std::string>();
      }
      if (!text.empty()) {
        if (text_chunks == 0) {
          out.ttft = now - out.start_time;
        } else {
          out.itl.push_back(now - last);
        }
        last = now;
        ++text_chunks;
        out.generated_text += text;
      }
    }
    if (j.contains("usage") && j["usage"].is_object()) {
      const nlohmann::json& u = j["usage"];
      if (u.contains("completion_tokens") && u["completion_tokens"].is_number_integer()) {
        out.output_tokens = u["completion_tokens"].get<int64_t>();
      }
      if (u.contains("prompt_tokens") && u["prompt_tokens"].is_number_integer()) {
        out.prompt_len = u["prompt_tokens"].get<int64_t>();
      }
    }
    return true;
  }

  asio::awaitable<void> stream_one(const SampleRequest& req, RequestOutput& out) {
    net::ClientConnection conn(ioc_.get_executor());
    out.start_time = seconds_since_start();
    beast::error_code ec = co_await conn.connect(endpoints_);
    if (ec) {
      out.error = "connect: " + ec.message();
      co_return;
    }
    net::ClientRequest hreq;
    hreq.method = "POST";
    hreq.target = cfg_.endpoint;
    hreq.headers = {{"content-type", "application/json"},
                    {"accept", "text/event-stream"},
                    {"user-agent", "moeserve-bench-serve"}};
    hreq.body = make_request_body(cfg_, req).dump();
    ec = co_await conn.send(hreq, cfg_.host);
    if (ec) {
      out.error = "write: " + ec.message();
      co_return;
    }
    ec = co_await conn.read_header();
    if (ec) {
      out.error = "read header: " + ec.message();
      co_return;
    }
    int status = conn.status();
    SseParser sse;
    std::string error_body;
    double last = 0;
    bool done = false;
    int64_t text_chunks = 0;
    bool stream_error = false;
    char chunk[16384];
    while (!conn.done()) {
      const size_t got = co_await conn.read_body(chunk, sizeof(chunk), ec);
      if (status != 200) {
        if (error_body.size() < 4096) error_body.append(chunk, got);
      } else {
        for (const std::string& ev : sse.feed(std::string_view(chunk, got))) {
          if (!on_event(ev, out, last, done, text_chunks)) stream_error = true;
        }
      }
      if (ec) break;
    }
    if (!ec && status == 200) {
      for (const std::string& ev : sse.finish()) {
        if (!on_event(ev, out, last, done, text_chunks)) stream_error = true;
      }
    }
    conn.shutdown();
    if (status != 200) {
      out.error = absl::StrCat("HTTP ", status, ": ", error_body);
      co_return;
    }
    if (ec) {
      out.error = "stream: " + ec.message();
      co_return;
    }
    if (stream_error) co_return;
    if (text_chunks == 0) {
      out.error = "Never received a valid chunk to calculate TTFT.";
      co_return;
    }
    out.latency = last - out.start_time;
    if (out.output_tokens == 0) out.output_tokens = text_chunks;
    out.success = true;
  }

  const ClientConfig& cfg_;
  const std::vector<SampleRequest>& requests_;
  const std::vector<double>& arrivals_;
  asio::io_context ioc_;
  tcp::resolver::results_type endpoints_;
  asio::steady_timer slot_timer_;
  std::vector<RequestOutput> outputs_;
  Clock::time_point start_;
  int64_t in_flight_ = 0;
  size_t done_ = 0;
};

}  // namespace

StatusOr<RunResult> run_requests(const ClientConfig& c, const std::vector<SampleRequest>& requests,
                                 const std::vector<double>& arrival_s) {
  if (arrival_s.size() != requests.size()) {
    return absl::InvalidArgumentError("run_requests: one arrival time per request is needed");
  }
  if (c.max_concurrency && *c.max_concurrency < 1) {
    return absl::InvalidArgumentError("--max-concurrency must be >= 1");
  }
  asio::io_context resolve_ctx;
  tcp::resolver resolver(resolve_ctx);
  beast::error_code ec;
  auto endpoints = resolver.resolve(c.host, c.port, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot resolve ", c.host, ":", c.port, ": ", ec.message()));
  }
  Runner runner(c, requests, arrival_s, endpoints);
  return runner.run();
}

StatusOr<std::string> fetch_first_model(const std::string& host, const std::string& port) {
  net::ClientRequest req;
  req.target = "/v1/models";
  net::FetchOptions fo;
  fo.connect_timeout = std::chrono::seconds(30);
  fo.timeout = std::chrono::seconds(30);
  StatusOr<net::ClientResponse> res = net::fetch_blocking(host, port, std::move(req), fo);
  if (!res.ok()) return absl::UnavailableError(res.status().message());
  if (res->status != 200) {
    return absl::UnavailableError(
        absl::StrCat("GET /v1/models: HTTP ", res->status, ": ", res->body));
  }
  auto parsed = net::parse_json<nlohmann::json>(res->body);
  const nlohmann::json j = parsed.ok() ? std::move(*parsed) : nlohmann::json();
  if (!j.is_object() || !j.contains("data") || !j["data"].is_array() || j["data"].empty() ||
      !j["data"][0].is_object() || !j["data"][0].contains("id") ||
      !j["data"][0]["id"].is_string()) {
    return absl::InvalidArgumentError("GET /v1/models: no model listed; pass --model explicitly");
  }
  return j["data"][0]["id"].get<std::string>();
}

}  // namespace moeserve::bench
