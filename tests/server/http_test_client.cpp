#include "http_test_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>

namespace moeserve::server::testing {

int connect_local(uint16_t port, int timeout_ms) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

std::string read_all(int fd) {
  std::string out;
  char buf[16384];
  for (int i = 0; i < 1000000; ++i) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

ClientResponse parse_response(const std::string& raw) {
  ClientResponse r;
  const size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos || raw.compare(0, 9, "HTTP/1.1 ") != 0) return r;
  r.status = std::atoi(raw.c_str() + 9);
  std::istringstream head(raw.substr(0, head_end));
  std::string line;
  std::getline(head, line);
  while (std::getline(head, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string k = line.substr(0, colon);
    for (auto& c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    size_t v = colon + 1;
    while (v < line.size() && line[v] == ' ') ++v;
    r.headers[k] = line.substr(v);
  }
  std::string rest = raw.substr(head_end + 4);
  auto te = r.headers.find("transfer-encoding");
  if (te != r.headers.end() && te->second == "chunked") {
    r.chunked = true;
    size_t pos = 0;
    for (int i = 0; i < 10000000; ++i) {
      const size_t eol = rest.find("\r\n", pos);
      if (eol == std::string::npos) break;
      const size_t size = std::strtoul(rest.substr(pos, eol - pos).c_str(), nullptr, 16);
      if (size == 0) break;
      r.body += rest.substr(eol + 2, size);
      pos = eol + 2 + size + 2;
    }
  } else {
    auto cl = r.headers.find("content-length");
    r.body = cl == r.headers.end() ? rest
                                   : rest.substr(0, std::strtoul(cl->second.c_str(), nullptr, 10));
  }
  return r;
}

ClientResponse http_request(uint16_t port, const std::string& method, const std::string& path,
                            const std::string& body,
                            const std::vector<std::pair<std::string, std::string>>& headers) {
  int fd = connect_local(port);
  if (fd < 0) return {};
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
  if (!body.empty() || method == "POST") {
    req +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  req += "\r\n" + body;
  ClientResponse r;
  if (send_all(fd, req)) r = parse_response(read_all(fd));
  ::close(fd);
  return r;
}

std::vector<std::string> sse_payloads(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  for (int i = 0; i < 10000000; ++i) {
    const size_t start = body.find("data: ", pos);
    if (start == std::string::npos) break;
    const size_t end = body.find("\n\n", start);
    if (end == std::string::npos) break;
    out.push_back(body.substr(start + 6, end - start - 6));
    pos = end + 2;
  }
  return out;
}

double metric_value(const std::string& metrics, const std::string& name,
                    const std::vector<std::string>& label_parts) {
  std::istringstream in(metrics);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + "{", 0) != 0 && line.rfind(name + " ", 0) != 0) continue;
    bool all = true;
    for (const auto& p : label_parts) all = all && line.find(p) != std::string::npos;
    if (!all) continue;
    const size_t sp = line.rfind(' ');
    return std::strtod(line.c_str() + sp + 1, nullptr);
  }
  return -1;
}

}  // namespace moeserve::server::testing
