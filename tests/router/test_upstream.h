// A small OpenAI-style HTTP server for the proxy tests (Boost.Beast, its own I/O thread):
// streams SSE chunks with delays, answers P/D prefill requests with kv_transfer_params, serves
// /metrics and /v1/models, and records what it received. It stands in for a model server only to
// test the proxy's mechanics; it generates nothing.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace moeserve::router::testing {

struct UpstreamBehavior {
  int num_chunks = 3;
  std::chrono::milliseconds chunk_delay{50};
  int fail_status = 0;  // non-zero: answer every inference request with this status
  // > 0: after the first chunk, hold every stream until this many streams are open at once
  // (bounded by hold_timeout).
  int hold_until_concurrent = 0;
  std::chrono::milliseconds hold_timeout{60000};
  // Streams: send the 200 header, then close the connection without a body byte (an engine
  // that dies after accepting a request, before its first token).
  bool close_after_header = false;
};

class TestUpstream {
 public:
  TestUpstream(std::string name, UpstreamBehavior behavior, int threads = 1);
  ~TestUpstream();

  uint16_t port() const;
  std::string address() const { return "127.0.0.1:" + std::to_string(port()); }
  std::vector<nlohmann::json> requests() const;  // inference bodies received, in order
  void set_metrics(std::string text, bool ok);
  int metrics_scrapes() const;
  int max_concurrent_streams() const;
  // Time the last stream had produced all its events (steady clock), set just before its
  // final [DONE] chunk is written.
  std::chrono::steady_clock::time_point last_stream_end() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// One HTTP/1.1 exchange over a fresh connection ("Connection: close"), read to EOF.
struct ClientResult {
  int status = 0;
  std::string raw;                                   // everything received
  std::string body;                                  // after the header (chunk framing left in)
  std::chrono::steady_clock::time_point first_data;  // first "data:" bytes received
  std::chrono::steady_clock::time_point done;
};
ClientResult http_exchange(uint16_t port, const std::string& method, const std::string& target,
                           const std::string& body,
                           std::chrono::milliseconds timeout = std::chrono::milliseconds(20000));

// A port on 127.0.0.1 where nothing listens (connections are refused), reserved for the rest
// of the process so no other server can take it.
uint16_t dead_port();

}  // namespace moeserve::router::testing
