// The router holds 1000 concurrent streaming connections (label "slow").
#include <atomic>
#include <thread>
#include <utility>  // before Asio: its awaitable.hpp uses std::exchange

#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "gtest/gtest.h"
#include "router/endpoint_pool.h"
#include "router/proxy_server.h"
#include "router/scheduler.h"
#include "test_upstream.h"

namespace moeserve::router {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::awaitable;
using asio::use_awaitable;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

constexpr int kStreams = 1000;

awaitable<void> one_stream(uint16_t port, std::atomic<int>& ok, std::atomic<int>& failed) {
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  beast::error_code ec;
  stream.expires_after(120s);
  co_await stream.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                                asio::redirect_error(use_awaitable, ec));
  std::string body = R"({"model":"m","prompt":"hello","stream":true})";
  std::string req =
      "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
      "Content-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  if (!ec)
    co_await asio::async_write(stream, asio::buffer(req), asio::redirect_error(use_awaitable, ec));
  std::string got;
  char buf[4096];
  while (!ec) {
    std::size_t n =
        co_await stream.async_read_some(asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
    got.append(buf, n);
  }
  if (got.rfind("HTTP/1.1 200", 0) == 0 && got.find("[DONE]") != std::string::npos) {
    ++ok;
  } else {
    ++failed;
  }
}

TEST(ProxyConcurrency, ThousandConcurrentStreams) {
  testing::UpstreamBehavior hold;
  hold.num_chunks = 3;
  hold.chunk_delay = 10ms;
  hold.hold_until_concurrent = kStreams;
  hold.hold_timeout = 90s;
  testing::TestUpstream up("u", hold, /*threads=*/2);

  auto cfg = parse_endpoint_picker_config("");
  ASSERT_TRUE(cfg.ok());
  auto scheduler = Scheduler::create(*cfg);
  ASSERT_TRUE(scheduler.ok());
  RouterMetrics metrics;
  EndpointPool pool;
  pool.set_endpoints({EndpointSpec{up.address(), {}}});
  ProxyOptions popts;
  popts.host = "127.0.0.1";
  popts.port = 0;
  popts.num_threads = 2;
  ProxyServer proxy(popts, **scheduler, pool, metrics);
  ASSERT_TRUE(proxy.start().ok());

  std::atomic<int> ok{0}, failed{0};
  asio::io_context ioc;
  for (int i = 0; i < kStreams; ++i) {
    asio::co_spawn(ioc, one_stream(proxy.port(), ok, failed), asio::detached);
  }
  std::thread t1([&] { ioc.run(); });
  ioc.run();
  t1.join();
  proxy.stop();
  EXPECT_EQ(ok.load(), kStreams);
  EXPECT_EQ(failed.load(), 0);
  // Every stream was open at the same time at the upstream (it held them until then).
  EXPECT_EQ(up.max_concurrent_streams(), kStreams);
  EXPECT_EQ(metrics.requests_to(up.address()), static_cast<uint64_t>(kStreams));
}

}  // namespace
}  // namespace moeserve::router
