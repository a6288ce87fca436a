#include "net/http_client.h"

#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/co_spawn.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/redirect_error.hpp"
#include "boost/asio/this_coro.hpp"
#include "boost/asio/use_awaitable.hpp"
#include "boost/beast/core/string.hpp"
#include "boost/beast/http/read.hpp"
#include "boost/beast/http/string_body.hpp"
#include "boost/beast/http/write.hpp"

namespace moeserve::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using asio::use_awaitable;
using tcp = asio::ip::tcp;

std::optional<std::string_view> ClientResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return std::string_view(v);
  }
  return std::nullopt;
}

bool is_hop_header(std::string_view name) {
  static const char* const kHop[] = {
      "connection", "keep-alive", "transfer-encoding", "content-length",
      "te",         "trailer",    "upgrade",           "proxy-connection",
      "host"};
  for (const char* h : kHop) {
    if (beast::iequals(beast::string_view(name.data(), name.size()), h)) return true;
  }
  return false;
}

ClientConnection::ClientConnection(asio::any_io_executor executor) : stream_(std::move(executor)) {
  parser_.body_limit(std::numeric_limits<std::uint64_t>::max());
}

awaitable<beast::error_code> ClientConnection::connect(const std::string& host,
                                                       const std::string& port) {
  beast::error_code ec;
  tcp::resolver resolver(stream_.get_executor());
  auto results =
      co_await resolver.async_resolve(host, port, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return ec;
  co_return co_await connect(results);
}

awaitable<beast::error_code> ClientConnection::connect(
    const tcp::resolver::results_type& endpoints) {
  beast::error_code ec;
  co_await stream_.async_connect(endpoints, asio::redirect_error(use_awaitable, ec));
  co_return ec;
}

awaitable<beast::error_code> ClientConnection::send(const ClientRequest& request,
                                                    std::string_view host) {
  http::request<http::string_body> req{http::string_to_verb(request.method), request.target, 11};
  for (const auto& [name, value] : request.headers) req.set(name, value);
  req.set(http::field::host, beast::string_view(host.data(), host.size()));
  req.keep_alive(false);
  if (req.method() != http::verb::get) req.body() = request.body;
  req.prepare_payload();
  beast::error_code ec;
  co_await http::async_write(stream_, req, asio::redirect_error(use_awaitable, ec));
  co_return ec;
}

awaitable<beast::error_code> ClientConnection::read_header() {
  beast::error_code ec;
  co_await http::async_read_header(stream_, buffer_, parser_,
                                   asio::redirect_error(use_awaitable, ec));
  // Body bytes that arrived with the header ask for a body buffer; the header itself is fine.
  if (ec == http::error::need_buffer && parser_.is_header_done()) ec = {};
  co_return ec;
}

int ClientConnection::status() const {
  return static_cast<int>(parser_.get().result_int());
}

HttpHeaders ClientConnection::headers() const {
  HttpHeaders out;
  for (const auto& field : parser_.get().base()) {
    out.emplace_back(absl::AsciiStrToLower(std::string(field.name_string())),
                     std::string(field.value()));
  }
  return out;
}

std::optional<uint64_t> ClientConnection::content_length() const {
  auto length = parser_.content_length();
  if (!length) return std::nullopt;
  return static_cast<uint64_t>(*length);
}

awaitable<std::size_t> ClientConnection::read_body(char* data, std::size_t size,
                                                   beast::error_code& ec) {
  parser_.get().body().data = data;
  parser_.get().body().size = size;
  co_await http::async_read_some(stream_, buffer_, parser_,
                                 asio::redirect_error(use_awaitable, ec));
  if (ec == http::error::need_buffer) ec = {};
  co_return size - parser_.get().body().size;
}

awaitable<beast::error_code> ClientConnection::read_body_all(std::string* out, uint64_t limit) {
  char chunk[16 * 1024];
  beast::error_code ec;
  while (!parser_.is_done()) {
    const std::size_t n = co_await read_body(chunk, sizeof(chunk), ec);
    if (ec) co_return ec;
    if (out->size() + n > limit) co_return http::error::body_limit;
    out->append(chunk, n);
  }
  co_return ec;
}

void ClientConnection::shutdown() {
  beast::error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
}

awaitable<StatusOr<ClientResponse>> fetch(const std::string& host, const std::string& port,
                                          ClientRequest request, FetchOptions options) {
  const std::string what =
      absl::StrCat(request.method, " ", request.target, " on ", host, ":", port);
  ClientConnection conn(co_await asio::this_coro::executor);
  conn.expires_after(options.connect_timeout);
  beast::error_code ec = co_await conn.connect(host, port);
  if (ec) co_return absl::UnavailableError(absl::StrCat(what, ": connect: ", ec.message()));
  conn.expires_after(options.timeout);
  const bool v6 = host.find(':') != std::string::npos;
  const std::string host_header = absl::StrCat(v6 ? "[" : "", host, v6 ? "]:" : ":", port);
  ec = co_await conn.send(request, host_header);
  if (!ec) ec = co_await conn.read_header();
  ClientResponse out;
  if (!ec) ec = co_await conn.read_body_all(&out.body, options.body_limit);
  conn.shutdown();
  if (ec) co_return absl::UnavailableError(absl::StrCat(what, ": ", ec.message()));
  out.status = conn.status();
  out.headers = conn.headers();
  co_return out;
}

StatusOr<ClientResponse> fetch_blocking(const std::string& host, const std::string& port,
                                        ClientRequest request, FetchOptions options) {
  asio::io_context ioc;
  StatusOr<ClientResponse> result = absl::UnknownError("fetch did not complete");
  asio::co_spawn(ioc, fetch(host, port, std::move(request), options),
                 [&result](std::exception_ptr e, StatusOr<ClientResponse> r) {
                   if (!e) result = std::move(r);
                 });
  ioc.run();
  return result;
}

}  // namespace moeserve::net
