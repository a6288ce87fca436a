#include "router/proxy_server.h"

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <optional>
#include <set>
#include <thread>
#include <utility>  // before Asio: its awaitable.hpp uses std::exchange
#include <vector>

#include "absl/strings/ascii.h"
#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "core/logging.h"
#include "net/json_intake.h"
#include "nlohmann/json.hpp"
#include "router/affinity_scorers.h"
#include "router/precise_prefix_cache_scorer.h"
#include "router/prometheus_text.h"
#include "router/request_parser.h"

namespace moeserve::router {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using asio::use_awaitable;
using tcp = asio::ip::tcp;
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

// Hop-by-hop and framing headers the proxy sets itself.
bool is_hop_header(beast::string_view name) {
  static const char* const kHop[] = {
      "connection", "keep-alive", "transfer-encoding", "content-length",
      "te",         "trailer",    "upgrade",           "proxy-connection",
      "host"};
  for (const char* h : kHop) {
    if (beast::iequals(name, h)) return true;
  }
  return false;
}

std::string error_body(int code, const std::string& type, const std::string& message) {
  // Messages can quote client bytes (a path); invalid UTF-8 is replaced, never thrown on.
  return json{{"error", {{"message", message}, {"type", type}, {"param", nullptr}, {"code", code}}}}
      .dump(-1, ' ', false, json::error_handler_t::replace);
}

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

// Reads the upstream's next body bytes into `chunk`; returns how many arrived (0 when only
// framing did). A failure is left in `ec`.
awaitable<std::size_t> read_body_piece(beast::tcp_stream& upstream, beast::flat_buffer& ubuf,
                                       http::response_parser<http::buffer_body>& parser,
                                       std::vector<char>& chunk, std::chrono::seconds timeout,
                                       beast::error_code& ec) {
  parser.get().body().data = chunk.data();
  parser.get().body().size = chunk.size();
  upstream.expires_after(timeout);
  co_await http::async_read_some(upstream, ubuf, parser, asio::redirect_error(use_awaitable, ec));
  if (ec == http::error::need_buffer) ec = {};
  co_return chunk.size() - parser.get().body().size;
}

// While the proxy waits for an upstream's first body byte (a non-streaming answer arrives
// whole, at the end of generation), nothing reads the client socket, so a client that left
// would go unnoticed until then. A watcher coroutine on the session's strand waits for the
// client socket to turn readable: end of stream or an error means the client is gone, and the
// upstream connection is cancelled, so that the engine aborts the request and frees what it
// held. Pipelined bytes from a client that is still there end the watch.
struct ClientWatch {
  beast::tcp_stream* upstream = nullptr;  // null once the wait for the first byte is over
  bool gone = false;
};

awaitable<void> watch_client(tcp::socket& client, std::shared_ptr<ClientWatch> watch) {
  beast::error_code ec;
  co_await client.async_wait(tcp::socket::wait_read, asio::redirect_error(use_awaitable, ec));
  // Past the wait only touch `client` while the forward is still waiting (it owns both).
  if (watch->upstream == nullptr) co_return;
  if (!ec) {
    char byte = 0;
    const ssize_t n = ::recv(client.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) co_return;
  }
  watch->gone = true;
  watch->upstream->cancel();
}

struct UnaryResponse {
  unsigned status = 0;
  std::string content_type;
  std::string body;
};

}  // namespace

struct ProxyServer::Impl {
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

  awaitable<void> accept_loop();
  awaitable<void> session(tcp::socket socket);
  // Returns false when the client connection must be closed.
  awaitable<bool> handle(beast::tcp_stream& client, http::request<http::string_body>& req);
  awaitable<bool> handle_inference(beast::tcp_stream& client,
                                   http::request<http::string_body>& req);
  awaitable<bool> handle_models(beast::tcp_stream& client, http::request<http::string_body>& req);
  // Forwards the request as is to one healthy endpoint (round robin; the next one when the
  // connection fails) and relays its answer.
  awaitable<bool> forward_to_any(beast::tcp_stream& client, http::request<http::string_body>& req);
  // The router's own metrics, then every endpoint's vllm:* families merged.
  awaitable<bool> handle_front_metrics(beast::tcp_stream& client,
                                       http::request<http::string_body>& req);
  net::JsonLimits json_limits() const {
    net::JsonLimits l;
    l.max_bytes = options.max_body_bytes;
    l.max_depth = options.max_json_depth;
    l.max_values = options.max_json_values;
    return l;
  }
  awaitable<bool> send_simple(beast::tcp_stream& client,
                              const http::request<http::string_body>& req, unsigned status,
                              const std::string& content_type, std::string body);
  awaitable<bool> send_error(beast::tcp_stream& client, const http::request<http::string_body>& req,
                             unsigned status, const std::string& type, const std::string& message);
  awaitable<std::optional<tcp::socket>> connect(const std::string& address);
  awaitable<std::optional<UnaryResponse>> unary(const std::string& address, http::verb verb,
                                                const std::string& target,
                                                const http::request<http::string_body>& original,
                                                std::string body);
  awaitable<Forward> forward_streaming(beast::tcp_stream& client,
                                       const http::request<http::string_body>& req,
                                       const std::string& address, std::string body);
  void copy_request_headers(const http::request<http::string_body>& from,
                            http::request<http::string_body>& to, const std::string& address);
  // Fills req.prompt_tokens through POST /tokenize on a healthy endpoint; leaves it unset when
  // no endpoint answers (the precise scorer then scores 0).
  awaitable<void> tokenize(SchedulingRequest& sreq, const json& body,
                           const http::request<http::string_body>& original);

  ProxyOptions options;
  const Scheduler& scheduler;
  EndpointPool& pool;
  RouterMetrics& metrics;
  const bool session_tokens;
  const bool tokenize_prompts;
  std::atomic<uint64_t> next_request_id{1};
  std::atomic<uint64_t> next_tokenizer{0};
  std::atomic<uint64_t> next_forward{0};
  std::unique_ptr<tcp::acceptor> acceptor;
  std::vector<std::thread> threads;
  uint16_t bound_port = 0;
  // Last: destroyed first, so coroutine frames it still holds see the members above alive.
  std::unique_ptr<asio::io_context> ioc;
};

void ProxyServer::Impl::copy_request_headers(const http::request<http::string_body>& from,
                                             http::request<http::string_body>& to,
                                             const std::string& address) {
  for (const auto& field : from.base()) {
    if (is_hop_header(field.name_string())) continue;
    to.set(field.name_string(), field.value());
  }
  to.set(http::field::host, address);
  to.keep_alive(false);
}

awaitable<std::optional<tcp::socket>> ProxyServer::Impl::connect(const std::string& address) {
  auto hp = split_host_port(address);
  if (!hp.ok()) co_return std::nullopt;
  auto executor = co_await asio::this_coro::executor;
  beast::error_code ec;
  tcp::resolver resolver(executor);
  auto results = co_await resolver.async_resolve(hp->first, hp->second,
                                                 asio::redirect_error(use_awaitable, ec));
  if (ec) co_return std::nullopt;
  beast::tcp_stream stream(executor);
  stream.expires_after(options.connect_timeout);
  co_await stream.async_connect(results, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return std::nullopt;
  stream.expires_never();
  co_return stream.release_socket();
}

awaitable<std::optional<UnaryResponse>> ProxyServer::Impl::unary(
    const std::string& address, http::verb verb, const std::string& target,
    const http::request<http::string_body>& original, std::string body) {
  auto socket = co_await connect(address);
  if (!socket) co_return std::nullopt;
  beast::tcp_stream stream(std::move(*socket));
  http::request<http::string_body> req{verb, target, 11};
  copy_request_headers(original, req, address);
  if (verb == http::verb::post) {
    req.set(http::field::content_type, "application/json");
    req.body() = std::move(body);
  }
  req.prepare_payload();
  beast::error_code ec;
  stream.expires_after(options.upstream_idle_timeout);
  co_await http::async_write(stream, req, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return std::nullopt;
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(options.max_body_bytes);
  co_await http::async_read(stream, buffer, parser, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return std::nullopt;
  UnaryResponse out;
  out.status = parser.get().result_int();
  out.content_type = std::string(parser.get()[http::field::content_type]);
  out.body = std::move(parser.get().body());
  co_return out;
}

awaitable<void> ProxyServer::Impl::tokenize(SchedulingRequest& sreq, const json& body,
                                            const http::request<http::string_body>& original) {
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
    auto res = co_await unary(address, http::verb::post, "/tokenize", original, tok.dump());
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

awaitable<Forward> ProxyServer::Impl::forward_streaming(beast::tcp_stream& client,
                                                        const http::request<http::string_body>& req,
                                                        const std::string& address,
                                                        std::string body) {
  auto socket = co_await connect(address);
  if (!socket) co_return Forward::kRetry;
  beast::tcp_stream upstream(std::move(*socket));
  http::request<http::string_body> up{req.method(), req.target(), 11};
  copy_request_headers(req, up, address);
  up.body() = std::move(body);
  up.prepare_payload();

  beast::error_code ec;
  upstream.expires_after(options.upstream_idle_timeout);
  co_await http::async_write(upstream, up, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return Forward::kRetry;
  beast::flat_buffer ubuf;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  auto watch = std::make_shared<ClientWatch>();
  watch->upstream = &upstream;
  asio::co_spawn(co_await asio::this_coro::executor, watch_client(client.socket(), watch),
                 asio::detached);
  // Ends the watch (its pending wait completes aborted and touches nothing).
  auto stop_watch = [&] {
    watch->upstream = nullptr;
    beast::error_code ignored;
    client.socket().cancel(ignored);
  };
  co_await http::async_read_header(upstream, ubuf, parser, asio::redirect_error(use_awaitable, ec));
  if (watch->gone) co_return Forward::kClientBroken;
  // Body bytes that arrived with the header ask for a body buffer; the header itself is fine.
  if (ec == http::error::need_buffer && parser.is_header_done()) ec = {};
  if (ec) {
    stop_watch();
    MS_LOG_WARN("upstream {}: no response header: {}", address, ec.message());
    co_return Forward::kRetry;
  }

  // Hold the header back until the first body bytes arrive (a streaming engine answers its
  // header at once and its first token later): until a byte has gone to the client, an upstream
  // that dies can still be replaced by another endpoint.
  std::vector<char> chunk(16 * 1024);
  std::size_t first_bytes = 0;
  while (!parser.is_done() && first_bytes == 0 && !watch->gone) {
    first_bytes = co_await read_body_piece(upstream, ubuf, parser, chunk,
                                           options.upstream_idle_timeout, ec);
    if (watch->gone) break;
    if (ec) {
      stop_watch();
      MS_LOG_WARN("upstream {}: failed before its first body byte: {}", address, ec.message());
      co_return Forward::kRetry;
    }
  }
  if (watch->gone) {
    MS_LOG_DEBUG("client left while {} was working on its request", address);
    co_return Forward::kClientBroken;
  }
  stop_watch();

  // From here on bytes go to the client: no more retries.
  http::response<http::buffer_body> res;
  res.version(11);
  res.result(parser.get().result_int());
  for (const auto& field : parser.get().base()) {
    if (is_hop_header(field.name_string())) continue;
    res.set(field.name_string(), field.value());
  }
  if (session_tokens) res.set(kSessionTokenHeader, session_token(address));
  auto length = parser.content_length();
  if (length) {
    res.content_length(*length);
  } else {
    res.chunked(true);
  }
  res.keep_alive(req.keep_alive());
  res.body().data = nullptr;
  res.body().size = 0;
  res.body().more = true;
  http::response_serializer<http::buffer_body> sr{res};
  client.expires_after(options.upstream_idle_timeout);
  co_await http::async_write_header(client, sr, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return Forward::kClientBroken;
  if (first_bytes > 0) {
    res.body().data = chunk.data();
    res.body().size = first_bytes;
    res.body().more = true;
    co_await http::async_write(client, sr, asio::redirect_error(use_awaitable, ec));
    if (ec == http::error::need_buffer) ec = {};
    if (ec) co_return Forward::kClientBroken;
  }

  while (!parser.is_done()) {
    const std::size_t n = co_await read_body_piece(upstream, ubuf, parser, chunk,
                                                   options.upstream_idle_timeout, ec);
    if (ec) {
      MS_LOG_WARN("upstream {} failed mid-response: {}", address, ec.message());
      co_return Forward::kClientBroken;
    }
    if (n == 0) continue;
    res.body().data = chunk.data();
    res.body().size = n;
    res.body().more = true;
    client.expires_after(options.upstream_idle_timeout);
    co_await http::async_write(client, sr, asio::redirect_error(use_awaitable, ec));
    if (ec == http::error::need_buffer) ec = {};
    if (ec) co_return Forward::kClientBroken;
  }
  res.body().data = nullptr;
  res.body().size = 0;
  res.body().more = false;
  co_await http::async_write(client, sr, asio::redirect_error(use_awaitable, ec));
  if (ec == http::error::need_buffer) ec = {};
  if (ec) co_return Forward::kClientBroken;
  co_return Forward::kDone;
}

awaitable<bool> ProxyServer::Impl::send_simple(beast::tcp_stream& client,
                                               const http::request<http::string_body>& req,
                                               unsigned status, const std::string& content_type,
                                               std::string body) {
  http::response<http::string_body> res{static_cast<http::status>(status), 11};
  if (!content_type.empty()) res.set(http::field::content_type, content_type);
  res.keep_alive(req.keep_alive());
  res.body() = std::move(body);
  res.prepare_payload();
  beast::error_code ec;
  client.expires_after(std::chrono::seconds(30));
  co_await http::async_write(client, res, asio::redirect_error(use_awaitable, ec));
  co_return !ec;
}

awaitable<bool> ProxyServer::Impl::send_error(beast::tcp_stream& client,
                                              const http::request<http::string_body>& req,
                                              unsigned status, const std::string& type,
                                              const std::string& message) {
  metrics.record_request_error(static_cast<int>(status));
  co_return co_await send_simple(client, req, status, "application/json",
                                 error_body(static_cast<int>(status), type, message));
}

awaitable<bool> ProxyServer::Impl::handle_models(beast::tcp_stream& client,
                                                 http::request<http::string_body>& req) {
  for (const auto& ep : pool.healthy_snapshot()) {
    auto res = co_await unary(ep.address, http::verb::get, std::string(req.target()), req, "");
    if (!res) {
      pool.record_failure(ep.address);
      continue;
    }
    co_return co_await send_simple(client, req, res->status, res->content_type,
                                   std::move(res->body));
  }
  co_return co_await send_error(client, req, 503, "ServiceUnavailableError",
                                "no healthy endpoint answered /v1/models");
}

awaitable<bool> ProxyServer::Impl::forward_to_any(beast::tcp_stream& client,
                                                  http::request<http::string_body>& req) {
  std::vector<EndpointState> healthy = pool.healthy_snapshot();
  const std::size_t first = healthy.empty() ? 0 : next_forward.fetch_add(1) % healthy.size();
  for (std::size_t i = 0; i < std::min<std::size_t>(2, healthy.size()); ++i) {
    const std::string& address = healthy[(first + i) % healthy.size()].address;
    auto res = co_await unary(address, req.method(), std::string(req.target()), req, req.body());
    if (!res) {
      pool.record_failure(address);
      continue;
    }
    co_return co_await send_simple(client, req, res->status, res->content_type,
                                   std::move(res->body));
  }
  co_return co_await send_error(
      client, req, 503, "ServiceUnavailableError",
      absl::StrCat("no healthy endpoint answered ", std::string(req.target())));
}

awaitable<bool> ProxyServer::Impl::handle_front_metrics(beast::tcp_stream& client,
                                                        http::request<http::string_body>& req) {
  std::vector<std::string> texts;
  for (const EndpointState& ep : pool.snapshot()) {
    http::request<http::string_body> get{http::verb::get, "/metrics", 11};
    auto res = co_await unary(ep.address, http::verb::get, "/metrics", get, "");
    if (res && res->status == 200) texts.push_back(std::move(res->body));
  }
  std::string body = metrics.render(pool.snapshot());
  body += merge_exposition_families(texts, "vllm:");
  co_return co_await send_simple(client, req, 200, "text/plain; version=0.0.4", std::move(body));
}

awaitable<bool> ProxyServer::Impl::handle_inference(beast::tcp_stream& client,
                                                    http::request<http::string_body>& req) {
  StatusOr<json> parsed = net::parse_json<json>(req.body(), json_limits());
  if (!parsed.ok()) {
    const unsigned status = static_cast<unsigned>(net::intake_http_status(parsed.status()));
    const std::string type = status == 413 ? "PayloadTooLargeError" : "BadRequestError";
    const std::string message(parsed.status().message());
    co_return co_await send_error(client, req, status, type, message);
  }
  json body = std::move(*parsed);
  std::map<std::string, std::string> headers;
  for (const auto& field : req.base()) {
    headers[absl::AsciiStrToLower(std::string(field.name_string()))] = std::string(field.value());
  }
  std::string request_id = headers.count("x-request-id")
                               ? headers["x-request-id"]
                               : absl::StrCat("router-", next_request_id.fetch_add(1));
  if (!headers.count("x-request-id")) req.set("x-request-id", request_id);
  auto sreq =
      make_scheduling_request(std::string(req.target()), body, std::move(headers), request_id);
  if (!sreq.ok()) {
    co_return co_await send_error(client, req, 400, "BadRequestError",
                                  std::string(sreq.status().message()));
  }

  if (tokenize_prompts && !sreq->prompt_tokens) co_await tokenize(*sreq, body, req);

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
      co_return co_await send_error(client, req, 503, "ServiceUnavailableError",
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
        pre_res = co_await unary(prefill_address, http::verb::post, std::string(req.target()), req,
                                 pre.dump());
      }
      if (!pre_res || pre_res->status != 200) {
        if (!pre_res) pool.record_failure(prefill_address);
        MS_LOG_WARN("request {}: prefill on {} failed ({}); decoding without P/D", request_id,
                    prefill_address, pre_res ? std::to_string(pre_res->status) : "no response");
        continue;
      }
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
      out_body = req.body();
    }
    Forward outcome;
    {
      ActiveGuard guard(pool, decode_address);
      metrics.record_request(decode_address);
      outcome = co_await forward_streaming(client, req, decode_address, std::move(out_body));
    }
    if (outcome == Forward::kDone) co_return true;
    if (outcome == Forward::kClientBroken) co_return false;
    pool.record_failure(decode_address);
    excluded.insert(decode_address);
    MS_LOG_WARN("request {}: endpoint {} failed before responding; retrying elsewhere", request_id,
                decode_address);
    if (attempt + 1 < options.max_attempts) metrics.record_retry();
  }
  co_return co_await send_error(client, req, 502, "BadGatewayError",
                                "no endpoint could be reached for the request");
}

awaitable<bool> ProxyServer::Impl::handle(beast::tcp_stream& client,
                                          http::request<http::string_body>& req) {
  const std::string target(req.target());
  const std::string path = target.substr(0, target.find('?'));
  if (req.method() == http::verb::get && path == "/health") {
    const bool ok = !options.health || options.health();
    co_return co_await send_simple(client, req, ok ? 200 : 503, "", "");
  }
  if (req.method() == http::verb::get && path == "/metrics") {
    if (options.forward_engine_routes) co_return co_await handle_front_metrics(client, req);
    co_return co_await send_simple(client, req, 200, "text/plain; version=0.0.4",
                                   metrics.render(pool.snapshot()));
  }
  if (options.forward_engine_routes) {
    const bool post_route = path == "/tokenize" || path == "/detokenize";
    if ((post_route && req.method() == http::verb::post) ||
        (path == "/version" && req.method() == http::verb::get)) {
      co_return co_await forward_to_any(client, req);
    }
    if (post_route || path == "/version") {
      const std::string message = post_route ? "use POST" : "use GET";
      co_return co_await send_error(client, req, 405, "MethodNotAllowed", message);
    }
  }
  if (req.method() == http::verb::get && path == "/v1/models") {
    co_return co_await handle_models(client, req);
  }
  if (path == "/v1/completions" || path == "/v1/chat/completions") {
    if (req.method() != http::verb::post) {
      co_return co_await send_error(client, req, 405, "MethodNotAllowed", "use POST");
    }
    co_return co_await handle_inference(client, req);
  }
  co_return co_await send_error(client, req, 404, "NotFoundError",
                                absl::StrCat("no route for ", target));
}

awaitable<void> ProxyServer::Impl::session(tcp::socket socket) {
  beast::tcp_stream client(std::move(socket));
  beast::flat_buffer buffer;
  beast::error_code ec;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(options.max_body_bytes);
    client.expires_after(std::chrono::seconds(300));
    co_await http::async_read(client, buffer, parser, asio::redirect_error(use_awaitable, ec));
    if (ec == http::error::body_limit || ec == http::error::header_limit) {
      // Answer, then close: the rest of the request is not read. (Named locals, not
      // conditional temporaries, in the co_await: GCC 12 destroys such temporaries twice.)
      const bool body = ec == http::error::body_limit;
      http::request<http::string_body> head;
      head.version(11);
      head.keep_alive(false);
      const unsigned status = body ? 413 : 431;
      const std::string type = body ? "PayloadTooLargeError" : "BadRequestError";
      const std::string message = body ? absl::StrCat("Request body too large (the limit is ",
                                                      options.max_body_bytes, " bytes).")
                                       : std::string("Request headers too large.");
      co_await send_error(client, head, status, type, message);
      break;
    }
    if (ec) break;
    http::request<http::string_body> req = parser.release();
    const bool keep_alive = req.keep_alive();
    bool ok = false;
    try {
      ok = co_await handle(client, req);
    } catch (const std::exception& e) {
      MS_LOG_ERROR("request failed: {}", e.what());
      ok = false;
    }
    if (!ok || !keep_alive) break;
  }
  client.socket().shutdown(tcp::socket::shutdown_send, ec);
}

awaitable<void> ProxyServer::Impl::accept_loop() {
  for (;;) {
    beast::error_code ec;
    // One strand per connection: the session and its client watcher never run at once.
    auto strand = asio::make_strand(*ioc);
    tcp::socket socket =
        co_await acceptor->async_accept(strand, asio::redirect_error(use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
    if (ec) {
      // Out of descriptors and similar: back off briefly instead of spinning.
      MS_LOG_WARN("accept failed: {}", ec.message());
      asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(10));
      co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
      continue;
    }
    asio::co_spawn(strand, session(std::move(socket)), asio::detached);
  }
}

ProxyServer::ProxyServer(ProxyOptions options, const Scheduler& scheduler, EndpointPool& pool,
                         RouterMetrics& metrics)
    : impl_(std::make_unique<Impl>(std::move(options), scheduler, pool, metrics)) {}

ProxyServer::~ProxyServer() {
  stop();
}

uint16_t ProxyServer::port() const {
  return impl_->bound_port;
}

Status ProxyServer::start() {
  if (impl_->ioc) return absl::FailedPreconditionError("proxy already started");
  const uint64_t limit = raise_open_file_limit();
  if (limit < 4096) MS_LOG_WARN("open file limit is {}; concurrent streams are limited", limit);
  const int threads = std::max(1, impl_->options.num_threads);
  impl_->ioc = std::make_unique<asio::io_context>(threads);
  beast::error_code ec;
  auto address = asio::ip::make_address(impl_->options.host, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("--host '", impl_->options.host, "' is not an IP address"));
  }
  tcp::endpoint endpoint(address, impl_->options.port);
  auto acceptor = std::make_unique<tcp::acceptor>(*impl_->ioc);
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(4096, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", impl_->options.host, ":",
                                               impl_->options.port, ": ", ec.message()));
  }
  impl_->bound_port = acceptor->local_endpoint().port();
  impl_->acceptor = std::move(acceptor);
  asio::co_spawn(*impl_->ioc, impl_->accept_loop(), asio::detached);
  for (int i = 0; i < threads; ++i) {
    impl_->threads.emplace_back([this] { impl_->ioc->run(); });
  }
  MS_LOG_INFO("router listening on {}:{}", impl_->options.host, impl_->bound_port);
  return absl::OkStatus();
}

void ProxyServer::stop() {
  if (!impl_->ioc) return;
  impl_->ioc->stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
  // No thread runs the context now: close the acceptor (its pending accept is queued and
  // dropped), then destroy the context with the sessions it still holds.
  impl_->acceptor.reset();
  impl_->ioc.reset();
}

}  // namespace moeserve::router
