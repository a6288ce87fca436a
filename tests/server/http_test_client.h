// A small blocking HTTP/1.1 client over POSIX sockets for server tests (127.0.0.1 only).
// Every call has a receive timeout, so a broken server fails a test instead of hanging it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace moeserve::server::testing {

struct ClientResponse {
  int status = 0;  // 0: no parsable response (connection closed or timed out)
  std::map<std::string, std::string> headers;  // lowercase names
  std::string body;                            // de-chunked
  bool chunked = false;
};

// Opens a connection to 127.0.0.1:port (-1 on failure) with a receive timeout.
int connect_local(uint16_t port, int timeout_ms = 60000);
bool send_all(int fd, const std::string& data);
// Reads until EOF or timeout.
std::string read_all(int fd);
// Parses raw response bytes (status line, headers, content-length or chunked body).
ClientResponse parse_response(const std::string& raw);

// One request on a fresh connection with `Connection: close`.
ClientResponse http_request(uint16_t port, const std::string& method, const std::string& path,
                            const std::string& body = "",
                            const std::vector<std::pair<std::string, std::string>>& headers = {});

// The `data:` payloads of an SSE body, in order.
std::vector<std::string> sse_payloads(const std::string& body);

// Value of the first sample line of `metrics` that starts with `name{` (or `name `) and
// contains every string of `label_parts`; -1 when absent.
double metric_value(const std::string& metrics, const std::string& name,
                    const std::vector<std::string>& label_parts = {});

}  // namespace moeserve::server::testing
