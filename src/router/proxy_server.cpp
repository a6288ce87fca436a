#include "router/proxy_server.h"

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <optional>
#include <set>
#include <utility>  // before Asio: its awaitable.hpp uses std::exchange
#include <vector>

#include "absl/strings/str_cat.h"
#include "boost/asio/co_spawn.hpp"
#include "boost/asio/ip/address.hpp"
#include "boost/asio/redirect_error.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/this_coro.hpp"
#include "boost/asio/use_awaitable.hpp"
#include "core/logging.h"
#include "net/http_client.h"
#include "net/http_error.h"
#include "net/http_server.h"
#include "net/http_server_asio.h"
#include "net/json_intake.h"
#include "net/prometheus_text.h"
#include "nlohmann/json.hpp"
#include "router/affinity_scorers.h"
#include "router/precise_prefix_cache_scorer.h"
#include "router/request_parser.h"

namespace moeserve::router {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::awaitable;
using asio::use_awaitable;
using json = nlohmann::json;

uint64_t raise_open_file_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit want = rl;
    want.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
  }
  return static_cast<uint64_t>(rl.rlim_cur);
}

namespace {

constexpr char kMetricsContentType[] = "text/plain; version=0.0.4";

json prefill_kv_transfer_params() {
  return json{{"do_remote_decode", true},    {"do_remote_prefill", false},
              {"remote_engine_id", nullptr}, {"remote_block_ids", nullptr},
              {"remote_host", nullptr},      {"remote_port", nullptr}};
}

// In-flight count of one endpoint for the request's lifetime.
class ActiveGuard {
 public:
  ActiveGuard(EndpointPool& pool, std::string address) : pool_(pool), address_(std::move(address)) {
    pool_.add_active(address_, 1);
  }
  ~ActiveGuard() { pool_.add_active(address_, -1); }
  ActiveGuard(const ActiveGuard&) = delete;
  ActiveGuard& operator=(const ActiveGuard&) = delete;

 private:
  EndpointPool& pool_;
  std::string address_;
};

enum class Forward { kDone, kRetry, kClientBroken };

struct UnaryResponse {
  int status = 0;
  std::string content_type;
  std::string body;
};

// One client request being answered. Lives on the connection's strand: the coroutine that
// answers it and the Responder's callbacks (on_close, on_drained) share it without locks.
//
// While the proxy waits for an upstream (a non-streaming answer arrives whole, at the end of
// generation) nothing is written to the client, so a client that left would go unnoticed until
// then; the HTTP server keeps reading the client socket and runs on_close when it goes away:
// the upstream connection is then cancelled, so that the engine aborts the request and frees
// what it held.
struct Exchange {
  Exchange(net::HttpRequest r, std::shared_ptr<net::Responder> s, asio::any_io_executor executor)
      : req(std::move(r)), res(std::move(s)), wake(std::move(executor)) {}

  net::HttpRequest req;
  std::shared_ptr<net::Responder> res;
  bool gone = false;                          // the client left
  net::ClientConnection* upstream = nullptr;  // the relayed connection, while one is open
  bool drained = false;
  asio::steady_timer wake;  // wakes the coroutine when `drained` or `gone` changes
};

// Waits until the client has taken every byte written so far, so that a slow reader slows the
// upstream down instead of filling memory; false when the client left.
awaitable<bool> wait_drained(const std::shared_ptr<Exchange>& ex) {
  ex->drained = false;
  ex->res->on_drained([ex] {
    ex->drained = true;
    ex->wake.cancel();
  });
  while (!ex->drained && !ex->gone) {
    ex->wake.expires_at(asio::steady_timer::time_point::max());
    beast::error_code ec;
    co_await ex->wake.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  co_return !ex->gone;
}

// Clears Exchange::upstream when the relayed connection goes out of scope.
class UpstreamWatch {
 public:
  UpstreamWatch(Exchange& ex, net::ClientConnection& upstream) : ex_(ex) {
    ex_.upstream = &upstream;
  }
  ~UpstreamWatch() { ex_.upstream = nullptr; }
  UpstreamWatch(const UpstreamWatch&) = delete;
  UpstreamWatch& operator=(const UpstreamWatch&) = delete;

 private:
  Exchange& ex_;
};

}  // namespace

struct ProxyServer::Impl final : net::HttpHandler {
  Impl(ProxyOptions o, const Scheduler& s, EndpointPool& p, RouterMetrics& m)
      : options(std::move(o)),
        scheduler(s),
        pool(p),
        metrics(m),
        session_tokens(s.has_plugin_type(SessionAffinityScorer::kType)),
        tokenize_prompts(wants_prompt_tokens(s)) {}

  static bool wants_prompt_tokens(const Scheduler& s) {
    for (Plugin* p : s.plugins_of_type(PrecisePrefixCacheScorer::kType)) {
      if (static_cast<PrecisePrefixCacheScorer*>(p)->tokenize_with_endpoint()) return true;
    }
    return false;
  }

  // net::HttpHandler: on the connection's strand.
  void handle(net::HttpRequest request, std::shared_ptr<net::Responder> responder) override;

  awaitable<void> route(std::shared_ptr<Exchange> ex);
  awaitable<void> handle_inference(std::shared_ptr<Exchange> ex);
  awaitable<void> handle_models(std::shared_ptr<Exchange> ex);
  // Forwards the request as is to one healthy endpoint (round robin; the next one when the
  // connection fails) and relays its answer.
  awaitable<void> forward_to_any(std::shared_ptr<Exchange> ex);
  // The router's own metrics, then every endpoint's vllm:* families merged.
  awaitable<void> handle_front_metrics(std::shared_ptr<Exchange> ex);
  net::JsonLimits json_limits() const {
    net::JsonLimits l;
    l.max_bytes = options.max_body_bytes;
    l.max_depth = options.max_json_depth;
    l.max_values = options.max_json_values;
    return l;
  }
  static void send_simple(Exchange& ex, int status, std::string content_type, std::string body);
  void send_error(Exchange& ex, int status, const std::string& type, const std::string& message);
  // The original request's headers without the hop-by-hop ones.
  static net::HttpHeaders upstream_headers(const net::HttpHeaders& original);
  awaitable<std::optional<UnaryResponse>> unary(const std::string& address,
                                                const std::string& method,
                                                const std::string& target,
                                                const net::HttpHeaders& original, std::string body);
  awaitable<Forward> forward_streaming(std::shared_ptr<Exchange> ex, const std::string& address,
                                       std::string body);
  // Fills req.prompt_tokens through POST /tokenize on a healthy endpoint; leaves it unset when
  // no endpoint answers (the precise scorer then scores 0).
  awaitable<void> tokenize(SchedulingRequest& sreq, const json& body,
                           const net::HttpHeaders& original);

  ProxyOptions options;
  const Scheduler& scheduler;
  EndpointPool& pool;
  RouterMetrics& metrics;
  const bool session_tokens;
  const bool tokenize_prompts;
  std::atomic<uint64_t> next_request_id{1};
  std::atomic<uint64_t> next_tokenizer{0};
  std::atomic<uint64_t> next_forward{0};
  // Last: destroyed first, so coroutine frames it still holds see the members above alive.
  std::unique_ptr<net::HttpServer> http;
};

net::HttpHeaders ProxyServer::Impl::upstream_headers(const net::HttpHeaders& original) {
  net::HttpHeaders out;
  for (const auto& [name, value] : original) {
    if (!net::is_hop_header(name)) out.emplace_back(name, value);
  }
  return out;
}

awaitable<std::optional<UnaryResponse>> ProxyServer::Impl::unary(const std::string& address,
                                                                 const std::string& method,
                                                                 const std::string& target,
                                                                 const net::HttpHeaders& original,
                                                                 std::string body) {
  auto hp = split_host_port(address);
  if (!hp.ok()) co_return std::nullopt;
  net::ClientRequest req;
  req.method = method;
  req.target = target;
  req.headers = upstream_headers(original);
  if (method == "POST") {
    req.headers.emplace_back("content-type", "application/json");
    req.body = std::move(body);
  }
  net::FetchOptions fo;
  fo.connect_timeout = options.connect_timeout;
  fo.timeout = options.upstream_idle_timeout;
  fo.body_limit = options.max_body_bytes;
  StatusOr<net::ClientResponse> res =
      co_await net::fetch(hp->first, hp->second, std::move(req), fo);
  if (!res.ok()) co_return std::nullopt;
  UnaryResponse out;
  out.status = res->status;
  out.content_type = std::string(res->header("content-type").value_or(""));
  out.body = std::move(res->body);
  co_return out;
}

awaitable<void> ProxyServer::Impl::tokenize(SchedulingRequest& sreq, const json& body,
                                            const net::HttpHeaders& original) {
  // The same fields the engine reads when it tokenizes the request itself (vLLM's
  // TokenizeCompletionRequest / TokenizeChatRequest).
  json tok = json::object();
  static const char* const kChatFields[] = {"messages",
                                            "add_generation_prompt",
                                            "continue_final_message",
                                            "add_special_tokens",
                                            "chat_template",
                                            "chat_template_kwargs",
                                            "tools"};
  static const char* const kCompletionFields[] = {"prompt", "add_special_tokens"};
  if (body.contains("model")) tok["model"] = body["model"];
  if (sreq.target_path.find("chat") != std::string::npos) {
    for (const char* f : kChatFields) {
      if (body.contains(f)) tok[f] = body[f];
    }
  } else {
    if (!body.contains("prompt") || !body["prompt"].is_string()) co_return;
    for (const char* f : kCompletionFields) {
      if (body.contains(f)) tok[f] = body[f];
    }
  }
  std::vector<EndpointState> healthy = pool.healthy_snapshot();
  if (healthy.empty()) co_return;
  const std::size_t first = next_tokenizer.fetch_add(1) % healthy.size();
  for (std::size_t i = 0; i < std::min<std::size_t>(2, healthy.size()); ++i) {
    const std::string& address = healthy[(first + i) % healthy.size()].address;
    auto res = co_await unary(address, "POST", "/tokenize", original, tok.dump());
    if (!res || res->status != 200) continue;
    StatusOr<json> answer = net::parse_json<json>(res->body, json_limits());
    if (!answer.ok()) continue;
    const json& parsed = *answer;
    if (!parsed.is_object() || !parsed.contains("tokens") || !parsed["tokens"].is_array()) {
      continue;
    }
    std::vector<uint32_t> tokens;
    tokens.reserve(parsed["tokens"].size());
    for (const auto& t : parsed["tokens"]) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0) co_return;
      tokens.push_back(static_cast<uint32_t>(t.get<int64_t>()));
    }
    sreq.prompt_tokens = std::move(tokens);
    co_return;
  }
  MS_LOG_DEBUG("request {}: no endpoint tokenized the prompt", sreq.request_id);
}

awaitable<Forward> ProxyServer::Impl::forward_streaming(std::shared_ptr<Exchange> ex,
                                                        const std::string& address,
                                                        std::string body) {
  auto hp = split_host_port(address);
  if (!hp.ok()) co_return Forward::kRetry;
  net::ClientConnection upstream(co_await asio::this_coro::executor);
  UpstreamWatch watch(*ex, upstream);
  upstream.expires_after(options.connect_timeout);
  beast::error_code ec = co_await upstream.connect(hp->first, hp->second);
  if (ex->gone) co_return Forward::kClientBroken;
  if (ec) co_return Forward::kRetry;
  net::ClientRequest up;
  up.method = ex->req.method;
  up.target = ex->req.target;
  up.headers = upstream_headers(ex->req.headers);
  up.body = std::move(body);
  upstream.expires_after(options.upstream_idle_timeout);
  ec = co_await upstream.send(up, address);
  if (ex->gone) co_return Forward::kClientBroken;
  if (ec) co_return Forward::kRetry;
  ec = co_await upstream.read_header();
  if (ex->gone) co_return Forward::kClientBroken;
  if (ec) {
    MS_LOG_WARN("upstream {}: no response header: {}", address, ec.message());
    co_return Forward::kRetry;
  }

  // Hold the header back until the first body bytes arrive (a streaming engine answers its
  // header at once and its first token later): until a byte has gone to the client, an upstream
  // that dies can still be replaced by another endpoint.
  std::vector<char> chunk(16 * 1024);
  std::size_t first_bytes = 0;
  while (!upstream.done() && first_bytes == 0) {
    upstream.expires_after(options.upstream_idle_timeout);
    first_bytes = co_await upstream.read_body(chunk.data(), chunk.size(), ec);
    if (ex->gone) break;
    if (ec) {
      MS_LOG_WARN("upstream {}: failed before its first body byte: {}", address, ec.message());
      co_return Forward::kRetry;
    }
  }
  if (ex->gone) {
    MS_LOG_DEBUG("client left while {} was working on its request", address);
    co_return Forward::kClientBroken;
  }

  // From here on bytes go to the client: no more retries.
  net::HttpHeaders headers;
  for (auto& [name, value] : upstream.headers()) {
    if (net::is_hop_header(name)) continue;
    if (session_tokens && name == kSessionTokenHeader) continue;
    headers.emplace_back(std::move(name), std::move(value));
  }
  if (session_tokens) headers.emplace_back(kSessionTokenHeader, session_token(address));
  ex->res->start_response(upstream.status(), std::move(headers), upstream.content_length());
  if (first_bytes > 0) {
    ex->res->write(std::string(chunk.data(), first_bytes));
    if (!co_await wait_drained(ex)) co_return Forward::kClientBroken;
  }
  while (!upstream.done()) {
    upstream.expires_after(options.upstream_idle_timeout);
    const std::size_t n = co_await upstream.read_body(chunk.data(), chunk.size(), ec);
    if (ex->gone) co_return Forward::kClientBroken;
    if (ec) {
      MS_LOG_WARN("upstream {} failed mid-response: {}", address, ec.message());
      ex->res->abort();
      co_return Forward::kClientBroken;
    }
    if (n == 0) continue;
    ex->res->write(std::string(chunk.data(), n));
    if (!co_await wait_drained(ex)) co_return Forward::kClientBroken;
  }
  ex->res->end_stream();
  co_return Forward::kDone;
}

void ProxyServer::Impl::send_simple(Exchange& ex, int status, std::string content_type,
                                    std::string body) {
  ex.res->send(net::HttpResponse{status, std::move(content_type), {}, std::move(body)});
}

void ProxyServer::Impl::send_error(Exchange& ex, int status, const std::string& type,
                                   const std::string& message) {
  metrics.record_request_error(status);
  send_simple(ex, status, "application/json", net::error_body(status, type, message));
}

awaitable<void> ProxyServer::Impl::handle_models(std::shared_ptr<Exchange> ex) {
  for (const auto& ep : pool.healthy_snapshot()) {
    auto res = co_await unary(ep.address, "GET", ex->req.target, ex->req.headers, "");
    if (!res) {
      pool.record_failure(ep.address);
      continue;
    }
    co_return send_simple(*ex, res->status, std::move(res->content_type), std::move(res->body));
  }
  send_error(*ex, 503, "ServiceUnavailableError", "no healthy endpoint answered /v1/models");
}

awaitable<void> ProxyServer::Impl::forward_to_any(std::shared_ptr<Exchange> ex) {
  std::vector<EndpointState> healthy = pool.healthy_snapshot();
  const std::size_t first = healthy.empty() ? 0 : next_forward.fetch_add(1) % healthy.size();
  for (std::size_t i = 0; i < std::min<std::size_t>(2, healthy.size()); ++i) {
    const std::string& address = healthy[(first + i) % healthy.size()].address;
    auto res =
        co_await unary(address, ex->req.method, ex->req.target, ex->req.headers, ex->req.body);
    if (!res) {
      pool.record_failure(address);
      continue;
    }
    co_return send_simple(*ex, res->status, std::move(res->content_type), std::move(res->body));
  }
  send_error(*ex, 503, "ServiceUnavailableError",
             absl::StrCat("no healthy endpoint answered ", ex->req.target));
}

awaitable<void> ProxyServer::Impl::handle_front_metrics(std::shared_ptr<Exchange> ex) {
  std::vector<std::string> texts;
  for (const EndpointState& ep : pool.snapshot()) {
    auto res = co_await unary(ep.address, "GET", "/metrics", {}, "");
    if (res && res->status == 200) texts.push_back(std::move(res->body));
  }
  std::string body = metrics.render(pool.snapshot());
  body += net::merge_exposition_families(texts, "vllm:");
  send_simple(*ex, 200, kMetricsContentType, std::move(body));
}

awaitable<void> ProxyServer::Impl::handle_inference(std::shared_ptr<Exchange> ex) {
  net::HttpRequest& req = ex->req;
  StatusOr<json> parsed = net::parse_json<json>(req.body, json_limits());
  if (!parsed.ok()) {
    const int status = net::intake_http_status(parsed.status());
    const std::string type = status == 413 ? "PayloadTooLargeError" : "BadRequestError";
    co_return send_error(*ex, status, type, std::string(parsed.status().message()));
  }
  json body = std::move(*parsed);
  std::map<std::string, std::string> headers;
  for (const auto& [name, value] : req.headers) headers[name] = value;
  std::string request_id = headers.count("x-request-id")
                               ? headers["x-request-id"]
                               : absl::StrCat("router-", next_request_id.fetch_add(1));
  if (!headers.count("x-request-id")) req.headers.emplace_back("x-request-id", request_id);
  auto sreq = make_scheduling_request(req.target, body, std::move(headers), request_id);
  if (!sreq.ok()) {
    co_return send_error(*ex, 400, "BadRequestError", std::string(sreq.status().message()));
  }

  if (tokenize_prompts && !sreq->prompt_tokens) co_await tokenize(*sreq, body, req.headers);

  std::set<std::string> excluded;
  std::optional<json> kv_params;
  bool prefill_tried = false;
  for (int attempt = 0; attempt < options.max_attempts; ++attempt) {
    std::vector<EndpointState> candidates = pool.healthy_snapshot();
    std::erase_if(candidates, [&](const EndpointState& e) { return excluded.count(e.address); });
    CycleState cycle;
    auto result = scheduler.schedule(*sreq, candidates, cycle);
    if (!result.ok()) {
      if (!excluded.empty()) break;  // every remaining endpoint failed to connect: 502 below
      co_return send_error(*ex, 503, "ServiceUnavailableError",
                           std::string(result.status().message()));
    }
    scheduler.pre_request(*sreq, *result, cycle);
    const std::string decode_address = *result->target(result->primary_profile);

    for (const auto& [profile, run] : result->profile_results) {
      if (profile == result->primary_profile || !run || run->targets.empty() || prefill_tried) {
        continue;
      }
      prefill_tried = true;
      const std::string& prefill_address = run->targets.front();
      json pre = body;
      pre["max_tokens"] = 1;
      pre["max_completion_tokens"] = 1;
      pre["stream"] = false;
      pre.erase("stream_options");
      pre["kv_transfer_params"] = prefill_kv_transfer_params();
      std::optional<UnaryResponse> pre_res;
      {
        ActiveGuard guard(pool, prefill_address);
        metrics.record_request(prefill_address);
        pre_res = co_await unary(prefill_address, "POST", req.target, req.headers, pre.dump());
      }
      if (!pre_res || pre_res->status != 200) {
        if (!pre_res) pool.record_failure(prefill_address);
        MS_LOG_WARN("request {}: prefill on {} failed ({}); decoding without P/D", request_id,
                    prefill_address, pre_res ? std::to_string(pre_res->status) : "no response");
        continue;
      }
      if (ex->gone) co_return;
      StatusOr<json> pre_parsed = net::parse_json<json>(pre_res->body, json_limits());
      const json pre_body = pre_parsed.ok() ? std::move(*pre_parsed) : json();
      if (pre_body.is_object() && pre_body.contains("kv_transfer_params") &&
          pre_body["kv_transfer_params"].is_object()) {
        kv_params = pre_body["kv_transfer_params"];
      } else {
        MS_LOG_WARN("request {}: prefill response from {} has no kv_transfer_params", request_id,
                    prefill_address);
      }
    }

    std::string out_body;
    if (kv_params) {
      json dec = body;
      dec["kv_transfer_params"] = *kv_params;
      out_body = dec.dump();
    } else {
      out_body = req.body;
    }
    Forward outcome;
    {
      ActiveGuard guard(pool, decode_address);
      metrics.record_request(decode_address);
      outcome = co_await forward_streaming(ex, decode_address, std::move(out_body));
    }
    if (outcome != Forward::kRetry) co_return;
    pool.record_failure(decode_address);
    excluded.insert(decode_address);
    MS_LOG_WARN("request {}: endpoint {} failed before responding; retrying elsewhere", request_id,
                decode_address);
    if (attempt + 1 < options.max_attempts) metrics.record_retry();
  }
  send_error(*ex, 502, "BadGatewayError", "no endpoint could be reached for the request");
}

awaitable<void> ProxyServer::Impl::route(std::shared_ptr<Exchange> ex) {
  const net::HttpRequest& req = ex->req;
  const std::string& path = req.path;
  if (options.forward_engine_routes) {
    if (req.method == "GET" && path == "/metrics") co_return co_await handle_front_metrics(ex);
    const bool post_route = path == "/tokenize" || path == "/detokenize";
    if ((post_route && req.method == "POST") || (path == "/version" && req.method == "GET")) {
      co_return co_await forward_to_any(ex);
    }
    if (post_route || path == "/version") {
      const std::string message = post_route ? "use POST" : "use GET";
      co_return send_error(*ex, 405, "MethodNotAllowed", message);
    }
  }
  if (req.method == "GET" && path == "/v1/models") co_return co_await handle_models(ex);
  if (path == "/v1/completions" || path == "/v1/chat/completions") {
    if (req.method != "POST") co_return send_error(*ex, 405, "MethodNotAllowed", "use POST");
    co_return co_await handle_inference(ex);
  }
  send_error(*ex, 404, "NotFoundError", absl::StrCat("no route for ", req.target));
}

void ProxyServer::Impl::handle(net::HttpRequest request,
                               std::shared_ptr<net::Responder> responder) {
  // Answered at once: the router's own routes.
  if (request.method == "GET" && request.path == "/health") {
    const bool ok = !options.health || options.health();
    responder->send(net::HttpResponse{ok ? 200 : 503, "", {}, ""});
    return;
  }
  if (request.method == "GET" && request.path == "/metrics" && !options.forward_engine_routes) {
    responder->send(
        net::HttpResponse{200, kMetricsContentType, {}, metrics.render(pool.snapshot())});
    return;
  }
  // Everything else talks to endpoints: a coroutine on the connection's strand.
  asio::any_io_executor strand = net::exchange_executor(*responder);
  auto ex = std::make_shared<Exchange>(std::move(request), std::move(responder), strand);
  ex->res->on_close([ex] {
    ex->gone = true;
    if (ex->upstream != nullptr) ex->upstream->cancel();
    ex->wake.cancel();
  });
  asio::co_spawn(strand, route(ex), [ex](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& err) {
      MS_LOG_ERROR("request failed: {}", err.what());
    }
    ex->res->abort();
  });
}

ProxyServer::ProxyServer(ProxyOptions options, const Scheduler& scheduler, EndpointPool& pool,
                         RouterMetrics& metrics)
    : impl_(std::make_unique<Impl>(std::move(options), scheduler, pool, metrics)) {}

ProxyServer::~ProxyServer() {
  stop();
}

uint16_t ProxyServer::port() const {
  return impl_->http ? impl_->http->port() : 0;
}

Status ProxyServer::start() {
  if (impl_->http) return absl::FailedPreconditionError("proxy already started");
  const uint64_t limit = raise_open_file_limit();
  if (limit < 4096) MS_LOG_WARN("open file limit is {}; concurrent streams are limited", limit);
  const ProxyOptions& o = impl_->options;
  beast::error_code ec;
  asio::ip::make_address(o.host, ec);
  if (ec)
    return absl::InvalidArgumentError(absl::StrCat("--host '", o.host, "' is not an IP address"));
  net::HttpServerOptions ho;
  ho.host = o.host;
  ho.port = o.port;
  ho.num_threads = std::max(1, o.num_threads);
  ho.body_limit = o.max_body_bytes;
  ho.header_limit = 8u << 10;
  // A client has 300 s to send a request and may keep an idle connection open as long; the
  // router caps neither the number of connections nor (beyond the open-file limit) their sum.
  ho.read_timeout = std::chrono::seconds(300);
  ho.idle_timeout = std::chrono::seconds(300);
  ho.write_timeout = o.upstream_idle_timeout;
  ho.listen_backlog = 4096;
  RouterMetrics* metrics = &impl_->metrics;
  ho.on_protocol_error = [metrics](int status) { metrics->record_request_error(status); };
  MS_ASSIGN_OR_RETURN(impl_->http, net::HttpServer::start(ho, impl_.get()));
  MS_LOG_INFO("router listening on {}:{}", o.host, impl_->http->port());
  return absl::OkStatus();
}

void ProxyServer::stop() {
  if (!impl_->http) return;
  // Closes every client connection (their exchanges cancel their upstreams), joins the I/O
  // threads and drops the coroutine frames still queued.
  impl_->http->stop();
  impl_->http.reset();
}

}  // namespace moeserve::router
