// The HTTP/1.1 client side, Beast over Asio coroutines: one connection per exchange, as the
// router's upstream calls, its /metrics scrapes, the data-parallel front's forwarding and
// `bench serve` all use it. A ClientConnection is the building block (connect, send, read the
// head, then the body piece by piece or whole); fetch() runs a whole unary exchange.
//
// Deadlines are the caller's: expires_after() bounds every operation started after it until
// it is changed (Beast's tcp_stream rule), so a caller can give one budget to a whole exchange
// or a fresh one to each read.
//
// Thread-safety: a ClientConnection is used from one coroutine (one strand) at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>  // before Asio: its awaitable.hpp uses std::exchange

#include "boost/asio/any_io_executor.hpp"
#include "boost/asio/awaitable.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/beast/core/error.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/core/tcp_stream.hpp"
#include "boost/beast/http/buffer_body.hpp"
#include "boost/beast/http/parser.hpp"
#include "core/status.h"
#include "net/http_server.h"

namespace moeserve::net {

struct ClientRequest {
  std::string method = "GET";
  std::string target = "/";
  HttpHeaders headers;  // sent as given; host and the framing headers are set by send()
  std::string body;     // sent with content-length for methods other than GET
};

struct ClientResponse {
  int status = 0;
  HttpHeaders headers;  // names lowercased
  std::string body;

  // First header named `name` (lowercase), if any.
  std::optional<std::string_view> header(std::string_view name) const;
};

// Hop-by-hop and framing headers (connection, keep-alive, transfer-encoding, content-length,
// te, trailer, upgrade, proxy-connection) and host: a proxy sets these itself.
bool is_hop_header(std::string_view name);

class ClientConnection {
 public:
  explicit ClientConnection(boost::asio::any_io_executor executor);

  void expires_after(std::chrono::milliseconds timeout) { stream_.expires_after(timeout); }
  void expires_never() { stream_.expires_never(); }

  // Resolves host and port, then connects.
  boost::asio::awaitable<boost::beast::error_code> connect(const std::string& host,
                                                           const std::string& port);
  // Connects to endpoints resolved beforehand.
  boost::asio::awaitable<boost::beast::error_code> connect(
      const boost::asio::ip::tcp::resolver::results_type& endpoints);
  // Writes `request` with `host: <host>` and connection: close.
  boost::asio::awaitable<boost::beast::error_code> send(const ClientRequest& request,
                                                        std::string_view host);
  // Reads the status line and headers; body bytes that came with them stay buffered.
  boost::asio::awaitable<boost::beast::error_code> read_header();
  int status() const;
  HttpHeaders headers() const;  // names lowercased
  std::optional<uint64_t> content_length() const;
  bool done() const { return parser_.is_done(); }
  // Reads the next body bytes into [data, data + size); returns how many arrived (0 when only
  // framing did). A failure is left in `ec`.
  boost::asio::awaitable<std::size_t> read_body(char* data, std::size_t size,
                                                boost::beast::error_code& ec);
  // Reads the rest of the body into `out`; more than `limit` bytes is http::error::body_limit.
  boost::asio::awaitable<boost::beast::error_code> read_body_all(std::string* out, uint64_t limit);
  // Pending operations complete with operation_aborted.
  void cancel() { stream_.cancel(); }
  // Shuts the socket down in both directions (errors ignored).
  void shutdown();

 private:
  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  boost::beast::http::response_parser<boost::beast::http::buffer_body> parser_;
};

struct FetchOptions {
  std::chrono::milliseconds connect_timeout{3000};
  std::chrono::milliseconds timeout{600000};  // the send and the whole response, after connect
  uint64_t body_limit = 64u << 20;
};

// One unary exchange on a new connection to `host`:`port`. Errors name the failed step.
boost::asio::awaitable<StatusOr<ClientResponse>> fetch(const std::string& host,
                                                       const std::string& port,
                                                       ClientRequest request, FetchOptions options);

// fetch() on a private I/O context, blocking the calling thread.
StatusOr<ClientResponse> fetch_blocking(const std::string& host, const std::string& port,
                                        ClientRequest request, FetchOptions options);

}  // namespace moeserve::net
