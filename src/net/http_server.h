// An HTTP/1.1 server on Boost.Beast/Asio: a few I/O threads, keep-alive, a body-size limit
// (413), header/body read and idle timeouts, chunked streaming responses, and detection of
// clients that go away while their response is being produced.
//
// One connection handles one exchange at a time. While a response is pending, the server
// keeps a read outstanding on the socket: if the peer closes or resets the connection, the
// exchange's on_close callback runs (the handler aborts the engine request), and writes stop.
// A client that half-closes (shuts down its sending side) while waiting counts as gone, as
// under uvicorn. Pipelined requests are served in order; while one is already buffered,
// disconnects are noticed on the next failed write instead.
//
// Threads: HttpHandler::handle and every Responder callback run on the connection's strand
// (one of the I/O threads). Responder methods may be called from any thread (they post to
// the strand) and never block; a slow reader cannot make them block either: past
// `max_pending_write_bytes` of unsent output the connection is treated as gone.
//
// One implementation serves every HTTP port of the project: `moeserve serve`'s API, the
// router's proxy (`moeserve route`) and the data-parallel front. This header has no
// Beast/Asio includes; they are confined to http_server.cpp (and http_server_asio.h for the
// code that runs Asio coroutines on an exchange's strand).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace moeserve::net {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;   // "GET", "POST", …
  std::string target;   // as sent: path and query
  std::string path;     // target without the query
  HttpHeaders headers;  // names lowercased
  std::string body;

  // First header named `name` (lowercase), if any.
  std::optional<std::string_view> header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";  // empty: no content-type header
  HttpHeaders headers;                            // extra headers (e.g. Retry-After)
  std::string body;
};

// The answer channel of one exchange. Exactly one of send() or start_stream() … end_stream()
// is used; calls after the exchange ended (or after the client left) are ignored.
class Responder {
 public:
  virtual ~Responder() = default;
  virtual void send(HttpResponse response) = 0;
  // Status line and headers of a chunked (Transfer-Encoding: chunked) response, with
  // content-type and cache-control: no-cache.
  virtual void start_stream(int status, std::string content_type, HttpHeaders headers = {}) = 0;
  // Status line and exactly `headers` (a relayed response's), framed by content-length when
  // it is given (the writes then carry exactly that many bytes, unframed), else chunked.
  virtual void start_response(int status, HttpHeaders headers,
                              std::optional<uint64_t> content_length) = 0;
  virtual void write(std::string data) = 0;  // one chunk; empty data is skipped
  virtual void end_stream() = 0;
  // Closes the connection at once, cutting the response short (a relayed response whose
  // source failed midway); on_close does not run.
  virtual void abort() = 0;
  // `fn` runs once, on the strand, when every byte queued so far has been written or the
  // connection has closed (after on_close). For producers that must not outrun the client.
  virtual void on_drained(std::function<void()> fn) = 0;
  // Runs `fn` on the connection's strand (after what is already queued there).
  virtual void post(std::function<void()> fn) = 0;
  // `fn` runs once, on the strand, if the client disconnects before the response ends (or
  // the server closes the connection). Set it before the response can end.
  virtual void on_close(std::function<void()> fn) = 0;
};

class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  // Called on the connection's strand; must not block. Answers through `responder`,
  // now or later from any thread.
  virtual void handle(HttpRequest request, std::shared_ptr<Responder> responder) = 0;
};

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: an ephemeral port (see HttpServer::port())
  int num_threads = 2;
  size_t body_limit = 32u << 20;                   // larger bodies get 413
  size_t header_limit = 64u << 10;                 // larger headers get 431
  std::chrono::milliseconds read_timeout{30000};   // a whole request, from its first byte
  std::chrono::milliseconds idle_timeout{75000};   // keep-alive wait for the next request
  std::chrono::milliseconds write_timeout{60000};  // one write making no progress
  size_t max_pending_write_bytes = 64u << 20;
  int listen_backlog = 0;  // 0: the system's maximum (SOMAXCONN)
  // Called (on an I/O thread) with the status of every error the server answers by itself,
  // before any handler sees the request: 413 (body), 431 (headers), 400 (malformed).
  std::function<void(int status)> on_protocol_error;
};

class HttpServer {
 public:
  // Binds, listens and starts the I/O threads. `handler` must outlive the server.
  static StatusOr<std::unique_ptr<HttpServer>> start(const HttpServerOptions& options,
                                                     HttpHandler* handler);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const;
  // Closes the listening socket; open connections keep being served.
  void stop_accepting();
  // Closes every connection (their on_close callbacks run) and joins the I/O threads.
  void stop();
  // Connections currently open (for tests and drain logging).
  size_t num_connections() const;
  // Requests whose response has not been fully written yet (drain waits for 0).
  size_t num_active_exchanges() const;

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace moeserve::net
