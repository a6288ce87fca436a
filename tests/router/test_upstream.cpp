#include "test_upstream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <mutex>
#include <thread>
#include <utility>  // before Asio: its awaitable.hpp uses std::exchange

#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "gtest/gtest.h"

namespace moeserve::router::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using asio::use_awaitable;
using tcp = asio::ip::tcp;
using json = nlohmann::json;

// JSON built outside coroutines: GCC 12 rejects braced lists of string literals in coroutine
// bodies ("array used as initializer").
std::string sse_event(const std::string& name, int i) {
  return "data: " +
         json{{"upstream", name}, {"choices", {{{"text", "tok" + std::to_string(i)}}}}}.dump() +
         "\n\n";
}

std::string models_body(const std::string& name) {
  return json{{"object", "list"}, {"data", {{{"id", "m"}, {"owned_by", name}}}}}.dump();
}

std::string completion_body(const std::string& name, const json& request) {
  json out = {{"id", "cmpl-" + name}, {"choices", {{{"text", "x"}}}}};
  if (request.is_object() && request.contains("kv_transfer_params") &&
      request["kv_transfer_params"].value("do_remote_decode", false)) {
    out["kv_transfer_params"] = {{"do_remote_prefill", true},
                                 {"do_remote_decode", false},
                                 {"remote_engine_id", "engine-" + name},
                                 {"remote_block_ids", {4, 5, 6}},
                                 {"remote_request_id", "req-" + name},
                                 {"remote_host", "127.0.0.1"},
                                 {"remote_port", 5600}};
  }
  return out.dump();
}

bool wants_stream(const json& body) {
  return body.is_object() && body.value("stream", false);
}

struct TestUpstream::Impl {
  std::string name;
  UpstreamBehavior behavior;
  mutable std::mutex mu;
  std::vector<json> received;
  std::string metrics_text =
      "vllm:num_requests_waiting{engine=\"0\"} 0\nvllm:num_requests_running{engine=\"0\"} 0\n";
  bool metrics_ok = true;
  std::atomic<int> scrapes{0};
  std::atomic<int> open_streams{0};
  std::atomic<int> max_streams{0};
  std::chrono::steady_clock::time_point last_end{};
  std::vector<std::thread> threads;
  uint16_t port = 0;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::unique_ptr<asio::io_context> ioc;

  awaitable<void> accept_loop() {
    for (;;) {
      beast::error_code ec;
      tcp::socket s = co_await acceptor->async_accept(asio::redirect_error(use_awaitable, ec));
      if (ec) co_return;
      asio::co_spawn(*ioc, session(std::move(s)), asio::detached);
    }
  }

  awaitable<void> send(beast::tcp_stream& stream, const http::request<http::string_body>& req,
                       unsigned status, std::string type, std::string body) {
    http::response<http::string_body> res{static_cast<http::status>(status), 11};
    res.set(http::field::content_type, type);
    res.keep_alive(req.keep_alive());
    res.body() = std::move(body);
    res.prepare_payload();
    beast::error_code ec;
    co_await http::async_write(stream, res, asio::redirect_error(use_awaitable, ec));
  }

  awaitable<void> stream_sse(beast::tcp_stream& stream,
                             const http::request<http::string_body>& req) {
    int now = ++open_streams;
    int prev = max_streams.load();
    while (now > prev && !max_streams.compare_exchange_weak(prev, now)) {
    }
    http::response<http::empty_body> res{http::status::ok, 11};
    res.set(http::field::content_type, "text/event-stream");
    res.chunked(true);
    res.keep_alive(false);
    http::response_serializer<http::empty_body> sr{res};
    beast::error_code ec;
    co_await http::async_write_header(stream, sr, asio::redirect_error(use_awaitable, ec));
    if (behavior.close_after_header) {
      --open_streams;
      co_return;
    }
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (int i = 0; i < behavior.num_chunks && !ec; ++i) {
      if (i > 0) {
        timer.expires_after(behavior.chunk_delay);
        co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
      }
      if (i == 1 && behavior.hold_until_concurrent > 0) {
        auto deadline = std::chrono::steady_clock::now() + behavior.hold_timeout;
        while (max_streams.load() < behavior.hold_until_concurrent &&
               std::chrono::steady_clock::now() < deadline) {
          timer.expires_after(std::chrono::milliseconds(10));
          co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
        }
      }
      std::string event = sse_event(name, i);
      co_await asio::async_write(stream, http::make_chunk(asio::buffer(event)),
                                 asio::redirect_error(use_awaitable, ec));
    }
    {
      // Recorded before the last bytes go out: once they are written the client may return
      // and read this before this coroutine resumes.
      std::lock_guard<std::mutex> lock(mu);
      last_end = std::chrono::steady_clock::now();
    }
    std::string done = "data: [DONE]\n\n";
    if (!ec) {
      co_await asio::async_write(stream, http::make_chunk(asio::buffer(done)),
                                 asio::redirect_error(use_awaitable, ec));
    }
    if (!ec) {
      co_await asio::async_write(stream, http::make_chunk_last(),
                                 asio::redirect_error(use_awaitable, ec));
    }
    --open_streams;
    (void)req;
  }

  awaitable<void> session(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
      http::request<http::string_body> req;
      beast::error_code ec;
      co_await http::async_read(stream, buffer, req, asio::redirect_error(use_awaitable, ec));
      if (ec) break;
      const std::string target(req.target());
      if (target == "/metrics") {
        ++scrapes;
        std::string text;
        bool ok;
        {
          std::lock_guard<std::mutex> lock(mu);
          text = metrics_text;
          ok = metrics_ok;
        }
        std::string reply = ok ? text : std::string("down");
        std::string type = "text/plain";
        co_await send(stream, req, ok ? 200u : 500u, type, std::move(reply));
      } else if (target == "/v1/models") {
        std::string reply = models_body(name);
        std::string type = "application/json";
        co_await send(stream, req, 200u, type, std::move(reply));
      } else {
        json body = json::parse(req.body(), nullptr, false);
        {
          std::lock_guard<std::mutex> lock(mu);
          received.push_back(body);
        }
        if (behavior.fail_status != 0) {
          std::string reply = "{\"error\":{}}";
          std::string type = "application/json";
          co_await send(stream, req, static_cast<unsigned>(behavior.fail_status), type,
                        std::move(reply));
        } else if (wants_stream(body)) {
          co_await stream_sse(stream, req);
          break;
        } else {
          std::string reply = completion_body(name, body);
          std::string type = "application/json";
          co_await send(stream, req, 200u, type, std::move(reply));
        }
      }
      if (!req.keep_alive()) break;
    }
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  }
};

TestUpstream::TestUpstream(std::string name, UpstreamBehavior behavior, int threads)
    : impl_(std::make_unique<Impl>()) {
  impl_->name = std::move(name);
  impl_->behavior = behavior;
  impl_->ioc = std::make_unique<asio::io_context>(threads);
  impl_->acceptor = std::make_unique<tcp::acceptor>(*impl_->ioc);
  tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor->open(ep.protocol());
  impl_->acceptor->set_option(asio::socket_base::reuse_address(true));
  impl_->acceptor->bind(ep);
  impl_->acceptor->listen(4096);
  impl_->port = impl_->acceptor->local_endpoint().port();
  asio::co_spawn(*impl_->ioc, impl_->accept_loop(), asio::detached);
  for (int i = 0; i < threads; ++i) impl_->threads.emplace_back([this] { impl_->ioc->run(); });
}

TestUpstream::~TestUpstream() {
  impl_->ioc->stop();
  for (auto& t : impl_->threads) t.join();
  impl_->acceptor.reset();
  impl_->ioc.reset();
}

uint16_t TestUpstream::port() const {
  return impl_->port;
}

std::vector<json> TestUpstream::requests() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->received;
}

void TestUpstream::set_metrics(std::string text, bool ok) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->metrics_text = std::move(text);
  impl_->metrics_ok = ok;
}

int TestUpstream::metrics_scrapes() const {
  return impl_->scrapes.load();
}
int TestUpstream::max_concurrent_streams() const {
  return impl_->max_streams.load();
}

std::chrono::steady_clock::time_point TestUpstream::last_stream_end() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->last_end;
}

ClientResult http_exchange(uint16_t port, const std::string& method, const std::string& target,
                           const std::string& body, std::chrono::milliseconds timeout) {
  ClientResult out;
  asio::io_context ioc;
  tcp::socket sock(ioc);
  beast::error_code ec;
  sock.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
  if (ec) return out;
  timeval tv{};
  tv.tv_sec = static_cast<long>(timeout.count() / 1000);
  tv.tv_usec = static_cast<long>((timeout.count() % 1000) * 1000);
  setsockopt(sock.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (!body.empty()) {
    req +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  req += "\r\n" + body;
  asio::write(sock, asio::buffer(req), ec);
  if (ec) return out;
  char buf[8192];
  bool seen_data = false;
  for (;;) {
    std::size_t n = sock.read_some(asio::buffer(buf), ec);
    if (n > 0) {
      out.raw.append(buf, n);
      if (!seen_data && out.raw.find("data:") != std::string::npos) {
        seen_data = true;
        out.first_data = std::chrono::steady_clock::now();
      }
    }
    if (ec) break;
  }
  out.done = std::chrono::steady_clock::now();
  if (out.raw.rfind("HTTP/1.1 ", 0) == 0 && out.raw.size() >= 12) {
    out.status = std::stoi(out.raw.substr(9, 3));
  }
  auto hdr_end = out.raw.find("\r\n\r\n");
  if (hdr_end != std::string::npos) out.body = out.raw.substr(hdr_end + 4);
  return out;
}

uint16_t dead_port() {
  // A socket bound to the port but never listening, kept open for the rest of the process:
  // connections to it are refused, and no other process (tests run in parallel) can take the
  // port meanwhile — a port merely freed again could be bound by another test's server.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ADD_FAILURE() << "dead_port: cannot reserve a port";
    return 1;
  }
  return ntohs(addr.sin_port);
}

}  // namespace moeserve::router::testing
