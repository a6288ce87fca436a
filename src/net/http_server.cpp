#include "net/http_server.h"

#include <atomic>
#include <deque>
#include <future>
#include <list>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "core/logging.h"
#include "core/status.h"
#include "net/http_error.h"
#include "net/http_server_asio.h"

namespace moeserve::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::optional<std::string_view> HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return std::string_view(v);
  }
  return std::nullopt;
}

namespace {

std::string status_line(int status) {
  return absl::StrCat("HTTP/1.1 ", status, " ", http_reason(status), "\r\n");
}

bool is_peer_gone(const beast::error_code& ec) {
  return ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::operation_aborted || ec == asio::error::broken_pipe ||
         ec == asio::error::bad_descriptor || ec == http::error::end_of_stream;
}

}  // namespace

class Session;

struct HttpServer::Impl {
  HttpServerOptions opts;
  HttpHandler* handler = nullptr;
  asio::io_context ioc;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::optional<tcp::acceptor> acceptor;
  std::vector<std::thread> threads;
  uint16_t port = 0;
  std::atomic<size_t> num_connections{0};
  std::atomic<size_t> num_active{0};  // exchanges whose response is not fully written
  std::atomic<bool> stopped{false};
  absl::Mutex mu;
  std::list<std::weak_ptr<Session>> sessions ABSL_GUARDED_BY(mu);

  void do_accept();
  void register_session(const std::shared_ptr<Session>& s);
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, HttpServer::Impl* server)
      : socket_(std::move(socket)),
        server_(server),
        read_timer_(socket_.get_executor()),
        write_timer_(socket_.get_executor()) {
    server_->num_connections.fetch_add(1);
  }

  asio::any_io_executor executor() { return socket_.get_executor(); }

  void start() {
    asio::post(executor(), [self = shared_from_this()] { self->read_request(); });
  }

  // Everything below runs on the strand.
  void close() {
    if (phase_ == Phase::kClosed) return;
    set_active(false);
    phase_ = Phase::kClosed;
    server_->num_connections.fetch_sub(1);
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
    read_timer_.cancel();
    write_timer_.cancel();
    out_.clear();
    out_bytes_ = 0;
    if (on_close_ && !response_done_) {
      auto fn = std::move(on_close_);
      on_close_ = nullptr;
      fn();
    }
    on_close_ = nullptr;
    run_drained();
  }

  void send(uint64_t ex, HttpResponse r) {
    if (!current(ex) || response_started_) return;
    response_started_ = true;
    response_done_ = true;
    on_close_ = nullptr;
    std::string out = status_line(r.status);
    if (!r.content_type.empty()) absl::StrAppend(&out, "content-type: ", r.content_type, "\r\n");
    absl::StrAppend(&out, "content-length: ", r.body.size(), "\r\n");
    for (const auto& [k, v] : r.headers) absl::StrAppend(&out, k, ": ", v, "\r\n");
    if (!keep_alive_) out += "connection: close\r\n";
    out += "\r\n";
    out += r.body;
    queue(std::move(out));
  }

  void start_stream(uint64_t ex, int status, const std::string& content_type,
                    const HttpHeaders& headers) {
    if (!current(ex) || response_started_) return;
    response_started_ = true;
    chunked_ = true;
    std::string out = status_line(status);
    absl::StrAppend(&out, "content-type: ", content_type, "\r\n");
    out += "transfer-encoding: chunked\r\ncache-control: no-cache\r\n";
    for (const auto& [k, v] : headers) absl::StrAppend(&out, k, ": ", v, "\r\n");
    if (!keep_alive_) out += "connection: close\r\n";
    out += "\r\n";
    queue(std::move(out));
  }

  void start_response(uint64_t ex, int status, const HttpHeaders& headers,
                      std::optional<uint64_t> content_length) {
    if (!current(ex) || response_started_) return;
    response_started_ = true;
    chunked_ = !content_length.has_value();
    std::string out = status_line(status);
    for (const auto& [k, v] : headers) absl::StrAppend(&out, k, ": ", v, "\r\n");
    if (content_length) {
      absl::StrAppend(&out, "content-length: ", *content_length, "\r\n");
    } else {
      out += "transfer-encoding: chunked\r\n";
    }
    if (!keep_alive_) out += "connection: close\r\n";
    out += "\r\n";
    queue(std::move(out));
  }

  void write_chunk(uint64_t ex, std::string data) {
    if (!current(ex) || !response_started_ || response_done_ || data.empty()) return;
    if (!chunked_) return queue(std::move(data));
    std::string out = absl::StrCat(absl::Hex(data.size()), "\r\n");
    out += data;
    out += "\r\n";
    queue(std::move(out));
  }

  void end_stream(uint64_t ex) {
    if (!current(ex) || !response_started_ || response_done_) return;
    response_done_ = true;
    on_close_ = nullptr;
    if (!chunked_) {
      // Nothing to frame: the exchange ends once the queued bytes are out.
      if (out_.empty() && !writing_) finish_exchange();
      return;
    }
    queue("0\r\n\r\n");
  }

  void abort(uint64_t ex) {
    if (ex != exchange_ || phase_ == Phase::kClosed) return;
    on_close_ = nullptr;
    close();
  }

  void add_drained(uint64_t ex, std::function<void()> fn) {
    if (ex != exchange_ || phase_ == Phase::kClosed || (out_.empty() && !writing_)) {
      fn();
      return;
    }
    drained_.push_back(std::move(fn));
  }

  void set_on_close(uint64_t ex, std::function<void()> fn) {
    if (ex != exchange_ || response_done_) return;
    if (phase_ == Phase::kClosed) {
      fn();  // the client left before the callback was set
      return;
    }
    on_close_ = std::move(fn);
  }

 private:
  enum class Phase { kReading, kHandling, kWaitingNext, kClosed };

  void set_active(bool active) {
    if (active == active_) return;
    active_ = active;
    if (active) {
      server_->num_active.fetch_add(1);
    } else {
      server_->num_active.fetch_sub(1);
    }
  }

  bool current(uint64_t ex) const { return ex == exchange_ && phase_ == Phase::kHandling; }

  void arm(asio::steady_timer& timer, std::chrono::milliseconds after) {
    timer.expires_after(after);
    timer.async_wait([self = shared_from_this()](const beast::error_code& ec) {
      if (!ec) self->close();  // deadline passed
    });
  }

  void read_request() {
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kReading;
    parser_.emplace();
    parser_->body_limit(server_->opts.body_limit);
    parser_->header_limit(static_cast<uint32_t>(server_->opts.header_limit));
    arm(read_timer_, server_->opts.read_timeout);
    http::async_read_header(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec) return on_read_error(ec);
    const auto& req = parser_->get();
    auto expect = req.find(http::field::expect);
    if (expect != req.end() && beast::iequals(expect->value(), "100-continue")) {
      queue_raw("HTTP/1.1 100 Continue\r\n\r\n");
    }
    http::async_read(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec2, size_t) { self->on_body(ec2); });
  }

  void on_read_error(beast::error_code ec) {
    read_timer_.cancel();
    if (phase_ == Phase::kClosed) return;
    const auto answered = [this](int status) {
      if (server_->opts.on_protocol_error) server_->opts.on_protocol_error(status);
    };
    if (ec == http::error::body_limit) {
      answered(413);
      return reply_and_close(413, absl::StrCat("Request body too large (the limit is ",
                                               server_->opts.body_limit, " bytes)."));
    }
    if (ec == http::error::header_limit) {
      answered(431);
      return reply_and_close(431, "Request headers too large.");
    }
    if (is_peer_gone(ec) ||
        ec.category() != http::make_error_code(http::error::bad_target).category() ||
        ec == http::error::partial_message) {
      close();
      return;
    }
    answered(400);
    reply_and_close(400, absl::StrCat("Malformed HTTP request: ", ec.message()));
  }

  // A new request/response exchange: the response state starts over.
  void begin_exchange() {
    phase_ = Phase::kHandling;
    set_active(true);
    ++exchange_;
    response_started_ = false;
    response_done_ = false;
    chunked_ = false;
  }

  // An error answer outside any handler; the connection closes after it.
  void reply_and_close(int status, std::string message) {
    begin_exchange();
    keep_alive_ = false;
    const char* type = status == 413 ? "PayloadTooLargeError" : "BadRequestError";
    send(exchange_,
         HttpResponse{status, "application/json", {}, error_body(status, type, message)});
  }

  void on_body(beast::error_code ec) {
    read_timer_.cancel();
    if (ec) return on_read_error(ec);
    http::request<http::string_body> msg = parser_->release();
    parser_.reset();
    HttpRequest req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    req.path = req.target.substr(0, req.target.find('?'));
    for (const auto& f : msg) {
      req.headers.emplace_back(absl::AsciiStrToLower(std::string(f.name_string())),
                               std::string(f.value()));
    }
    req.body = std::move(msg.body());
    keep_alive_ = msg.keep_alive() && !server_->stopped.load();
    begin_exchange();
    on_close_ = nullptr;
    start_watch();
    server_->handler->handle(std::move(req), make_responder());
  }

  std::shared_ptr<Responder> make_responder();

  // A read kept pending while the response is produced: it completes with an error when the
  // client goes away, or with the start of the client's next request.
  void start_watch() {
    if (watch_pending_ || phase_ == Phase::kClosed) return;
    // Bytes of a pipelined next request are already here: read it after this response
    // instead (a second pending read is not allowed); disconnects then show up on writes.
    if (buffer_.size() > 0) return;
    watch_pending_ = true;
    socket_.async_read_some(
        buffer_.prepare(4096),
        [self = shared_from_this()](beast::error_code ec, size_t n) { self->on_watch(ec, n); });
  }

  void on_watch(beast::error_code ec, size_t n) {
    watch_pending_ = false;
    if (phase_ == Phase::kClosed) return;
    if (ec) {
      close();
      return;
    }
    buffer_.commit(n);
    if (phase_ == Phase::kHandling) {
      start_watch();
    } else if (phase_ == Phase::kWaitingNext) {
      read_timer_.cancel();
      read_request();
    }
  }

  void queue_raw(std::string data) {
    if (phase_ == Phase::kClosed) return;
    out_bytes_ += data.size();
    out_.push_back(std::move(data));
    do_write();
  }

  void queue(std::string data) {
    if (phase_ == Phase::kClosed) return;
    if (out_bytes_ + data.size() > server_->opts.max_pending_write_bytes) {
      MS_LOG_WARN("closing a connection whose client does not read its response");
      close();
      return;
    }
    queue_raw(std::move(data));
  }

  void do_write() {
    if (writing_ || out_.empty() || phase_ == Phase::kClosed) return;
    writing_ = true;
    arm(write_timer_, server_->opts.write_timeout);
    asio::async_write(
        socket_, asio::buffer(out_.front()),
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_write(ec); });
  }

  void on_write(beast::error_code ec) {
    writing_ = false;
    write_timer_.cancel();
    if (phase_ == Phase::kClosed) return;
    if (ec) {
      close();
      return;
    }
    out_bytes_ -= out_.front().size();
    out_.pop_front();
    if (!out_.empty()) return do_write();
    run_drained();
    if (phase_ == Phase::kHandling && response_done_) finish_exchange();
  }

  void run_drained() {
    std::vector<std::function<void()>> fns;
    fns.swap(drained_);
    for (auto& fn : fns) fn();
  }

  void finish_exchange() {
    set_active(false);
    if (!keep_alive_) {
      beast::error_code ec;
      socket_.shutdown(tcp::socket::shutdown_send, ec);
      close();
      return;
    }
    if (watch_pending_) {
      phase_ = Phase::kWaitingNext;
      arm(read_timer_, server_->opts.idle_timeout);
    } else {
      read_request();
    }
  }

  tcp::socket socket_;
  HttpServer::Impl* server_;
  asio::steady_timer read_timer_;
  asio::steady_timer write_timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Phase phase_ = Phase::kReading;
  uint64_t exchange_ = 0;
  bool keep_alive_ = true;
  bool response_started_ = false;
  bool response_done_ = false;
  bool chunked_ = false;  // the current response's writes are chunk-framed
  bool watch_pending_ = false;
  bool writing_ = false;
  bool active_ = false;
  std::function<void()> on_close_;
  std::vector<std::function<void()>> drained_;  // on_drained callbacks waiting for the queue
  std::deque<std::string> out_;
  size_t out_bytes_ = 0;
};

namespace {

class ExchangeResponder final : public Responder {
 public:
  ExchangeResponder(std::shared_ptr<Session> session, uint64_t exchange)
      : session_(std::move(session)), exchange_(exchange) {}

  void send(HttpResponse response) override {
    asio::post(session_->executor(), [s = session_, ex = exchange_, r = std::move(response)]() {
      s->send(ex, std::move(r));
    });
  }
  void start_stream(int status, std::string content_type, HttpHeaders headers) override {
    asio::post(session_->executor(),
               [s = session_, ex = exchange_, status, ct = std::move(content_type),
                h = std::move(headers)]() { s->start_stream(ex, status, ct, h); });
  }
  void write(std::string data) override {
    asio::post(session_->executor(), [s = session_, ex = exchange_, d = std::move(data)]() {
      s->write_chunk(ex, std::move(d));
    });
  }
  void start_response(int status, HttpHeaders headers,
                      std::optional<uint64_t> content_length) override {
    asio::post(session_->executor(),
               [s = session_, ex = exchange_, status, h = std::move(headers), content_length]() {
                 s->start_response(ex, status, h, content_length);
               });
  }
  void end_stream() override {
    asio::post(session_->executor(), [s = session_, ex = exchange_]() { s->end_stream(ex); });
  }
  void abort() override {
    asio::post(session_->executor(), [s = session_, ex = exchange_]() { s->abort(ex); });
  }
  void on_drained(std::function<void()> fn) override {
    asio::post(session_->executor(), [s = session_, ex = exchange_, f = std::move(fn)]() mutable {
      s->add_drained(ex, std::move(f));
    });
  }
  asio::any_io_executor executor() const { return session_->executor(); }
  void post(std::function<void()> fn) override { asio::post(session_->executor(), std::move(fn)); }
  void on_close(std::function<void()> fn) override {
    asio::post(session_->executor(), [s = session_, ex = exchange_, f = std::move(fn)]() mutable {
      s->set_on_close(ex, std::move(f));
    });
  }

 private:
  std::shared_ptr<Session> session_;
  uint64_t exchange_;
};

}  // namespace

boost::asio::any_io_executor exchange_executor(const Responder& responder) {
  const auto* r = dynamic_cast<const ExchangeResponder*>(&responder);
  MS_CHECK(r != nullptr);
  return r->executor();
}

std::shared_ptr<Responder> Session::make_responder() {
  return std::make_shared<ExchangeResponder>(shared_from_this(), exchange_);
}

void HttpServer::Impl::register_session(const std::shared_ptr<Session>& s) {
  absl::MutexLock lock(&mu);
  for (auto it = sessions.begin(); it != sessions.end();) {
    it = it->expired() ? sessions.erase(it) : std::next(it);
  }
  sessions.push_back(s);
}

void HttpServer::Impl::do_accept() {
  acceptor->async_accept(asio::make_strand(ioc), [this](beast::error_code ec, tcp::socket sock) {
    if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
    if (!ec) {
      auto s = std::make_shared<Session>(std::move(sock), this);
      register_session(s);
      s->start();
    } else {
      MS_LOG_WARN("accept failed: {}", ec.message());
    }
    do_accept();
  });
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() {
  stop();
}

StatusOr<std::unique_ptr<HttpServer>> HttpServer::start(const HttpServerOptions& options,
                                                        HttpHandler* handler) {
  if (handler == nullptr) return absl::InvalidArgumentError("HttpServer: no handler");
  if (options.num_threads < 1) {
    return absl::InvalidArgumentError("HttpServer: num_threads must be at least 1");
  }
  auto impl = std::make_unique<Impl>();
  impl->opts = options;
  impl->handler = handler;
  beast::error_code ec;
  tcp::resolver resolver(impl->ioc);
  auto results =
      resolver.resolve(options.host, std::to_string(options.port), tcp::resolver::passive, ec);
  if (ec || results.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot resolve host '", options.host, "': ", ec.message()));
  }
  const tcp::endpoint endpoint = results.begin()->endpoint();
  impl->acceptor.emplace(asio::make_strand(impl->ioc));
  impl->acceptor->open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor->bind(endpoint, ec);
  if (!ec) {
    impl->acceptor->listen(options.listen_backlog > 0 ? options.listen_backlog
                                                      : asio::socket_base::max_listen_connections,
                           ec);
  }
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.host, ":", options.port, ": ", ec.message()));
  }
  impl->port = impl->acceptor->local_endpoint().port();
  impl->work.emplace(impl->ioc.get_executor());
  impl->do_accept();
  Impl* raw = impl.get();
  for (int i = 0; i < options.num_threads; ++i) {
    impl->threads.emplace_back([raw] {
      // Bounded: run() returns once stop() released the work guard and the sockets closed.
      for (int attempts = 0; attempts < 1000000 && !raw->ioc.stopped(); ++attempts) {
        try {
          raw->ioc.run();
          break;
        } catch (const std::exception& e) {
          MS_LOG_ERROR("http: handler threw: {}", e.what());
        }
      }
    });
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

uint16_t HttpServer::port() const {
  return impl_->port;
}

size_t HttpServer::num_connections() const {
  return impl_->num_connections.load();
}

size_t HttpServer::num_active_exchanges() const {
  return impl_->num_active.load();
}

void HttpServer::stop_accepting() {
  impl_->stopped.store(true);
  std::promise<void> done;
  auto fut = done.get_future();
  asio::post(impl_->acceptor->get_executor(), [this, &done] {
    beast::error_code ec;
    impl_->acceptor->close(ec);
    done.set_value();
  });
  if (impl_->threads.empty()) return;
  fut.wait_for(std::chrono::seconds(5));
}

void HttpServer::stop() {
  if (impl_ == nullptr || impl_->threads.empty()) return;
  stop_accepting();
  {
    absl::MutexLock lock(&impl_->mu);
    for (auto& w : impl_->sessions) {
      if (auto s = w.lock()) asio::post(s->executor(), [s] { s->close(); });
    }
    impl_->sessions.clear();
  }
  impl_->work.reset();
  // Give closing connections a moment to run their callbacks, then stop hard.
  for (int i = 0; i < 200 && !impl_->ioc.stopped(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  impl_->ioc.stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
}

}  // namespace moeserve::net
