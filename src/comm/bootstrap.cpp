#include "comm/bootstrap.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace moeserve {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint32_t kMagic = 0x4d4f4531;  // "MOE1"
constexpr uint32_t kMaxBlob = 1u << 20;

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.fd_;
      o.fd_ = -1;
    }
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

double seconds(std::chrono::milliseconds ms) {
  return ms.count() / 1000.0;
}

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() <= 0 ? 0 : static_cast<int>(left.count());
}

StatusOr<sockaddr_in> resolve(const std::string& host, int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) == 1) return addr;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || res == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("rendezvous: cannot resolve --data-parallel-address '", host, "'"));
  }
  addr.sin_addr = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
  ::freeaddrinfo(res);
  return addr;
}

// Full read/write with a deadline; false on EOF, error or timeout.
bool io_all(int fd, void* buf, size_t n, bool write, Clock::time_point deadline) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    pollfd pfd{fd, static_cast<short>(write ? POLLOUT : POLLIN), 0};
    const int ms = remaining_ms(deadline);
    if (ms == 0) return false;
    const int pr = ::poll(&pfd, 1, ms);
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) return false;
    const ssize_t r = write ? ::send(fd, p, n, MSG_NOSIGNAL) : ::recv(fd, p, n, 0);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool send_u32(int fd, uint32_t v, Clock::time_point d) {
  return io_all(fd, &v, 4, true, d);
}
bool recv_u32(int fd, uint32_t* v, Clock::time_point d) {
  return io_all(fd, v, 4, false, d);
}
bool send_blob(int fd, const std::string& b, Clock::time_point d) {
  return send_u32(fd, static_cast<uint32_t>(b.size()), d) &&
         io_all(fd, const_cast<char*>(b.data()), b.size(), true, d);
}
bool recv_blob(int fd, std::string* b, Clock::time_point d) {
  uint32_t n = 0;
  if (!recv_u32(fd, &n, d) || n > kMaxBlob) return false;
  b->resize(n);
  return io_all(fd, b->data(), n, false, d);
}

StatusOr<std::vector<std::string>> serve_as_root(const RendezvousParams& p,
                                                 const std::string& my_blob,
                                                 Clock::time_point deadline) {
  MS_ASSIGN_OR_RETURN(sockaddr_in addr, resolve(p.host, p.port));
  Fd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (listener.get() < 0) return absl::InternalError("rendezvous: socket() failed");
  const int one = 1;
  ::setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return absl::UnavailableError(absl::StrFormat(
        "rank 0: cannot listen on %s:%d (%s); pick another --data-parallel-rpc-port", p.host,
        p.port, std::strerror(errno)));
  }
  if (::listen(listener.get(), p.world_size) != 0) {
    return absl::InternalError(absl::StrCat("rendezvous: listen failed: ", std::strerror(errno)));
  }
  std::vector<std::string> table(p.world_size);
  std::vector<Fd> conns(p.world_size);
  table[0] = my_blob;
  int joined = 1;
  while (joined < p.world_size) {
    pollfd pfd{listener.get(), POLLIN, 0};
    const int ms = remaining_ms(deadline);
    const int pr = ms == 0 ? 0 : ::poll(&pfd, 1, ms);
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) {
      std::string missing;
      for (int r = 1; r < p.world_size; ++r) {
        if (conns[r].get() < 0) absl::StrAppend(&missing, missing.empty() ? "" : ",", r);
      }
      return absl::DeadlineExceededError(absl::StrFormat(
          "rank 0: only %d of %d ranks joined at %s:%d within %g s (missing ranks: %s)", joined,
          p.world_size, p.host, p.port, seconds(p.timeout), missing));
    }
    Fd c(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (c.get() < 0) continue;
    uint32_t magic = 0, rank = 0, world = 0;
    std::string blob;
    if (!recv_u32(c.get(), &magic, deadline) || magic != kMagic ||
        !recv_u32(c.get(), &rank, deadline) || !recv_u32(c.get(), &world, deadline) ||
        !recv_blob(c.get(), &blob, deadline)) {
      continue;  // not one of ours, or a peer that went away mid-hello
    }
    if (static_cast<int>(world) != p.world_size) {
      return absl::InvalidArgumentError(
          absl::StrFormat("rank 0: rank %u joined with world size %u, this group has %d", rank,
                          world, p.world_size));
    }
    if (rank == 0 || static_cast<int>(rank) >= p.world_size || conns[rank].get() >= 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("rank 0: a second process claimed rank %u", rank));
    }
    table[rank] = std::move(blob);
    conns[rank] = std::move(c);
    ++joined;
  }
  for (int r = 1; r < p.world_size; ++r) {
    bool ok = true;
    for (int q = 0; q < p.world_size && ok; ++q) ok = send_blob(conns[r].get(), table[q], deadline);
    if (!ok) {
      return absl::UnavailableError(
          absl::StrFormat("rank 0: rank %d went away during rendezvous", r));
    }
  }
  return table;
}

StatusOr<std::vector<std::string>> join_root(const RendezvousParams& p, const std::string& my_blob,
                                             Clock::time_point deadline) {
  MS_ASSIGN_OR_RETURN(sockaddr_in addr, resolve(p.host, p.port));
  const auto unreachable = [&] {
    return absl::DeadlineExceededError(
        absl::StrFormat("rank %d: could not reach rank 0 at %s:%d within %g s", p.rank, p.host,
                        p.port, seconds(p.timeout)));
  };
  Fd c;
  while (true) {
    c = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (c.get() < 0) return absl::InternalError("rendezvous: socket() failed");
    if (::connect(c.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) break;
    if (remaining_ms(deadline) == 0) return unreachable();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // rank 0 not listening yet
  }
  const int one = 1;
  ::setsockopt(c.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (!send_u32(c.get(), kMagic, deadline) ||
      !send_u32(c.get(), static_cast<uint32_t>(p.rank), deadline) ||
      !send_u32(c.get(), static_cast<uint32_t>(p.world_size), deadline) ||
      !send_blob(c.get(), my_blob, deadline)) {
    return unreachable();
  }
  std::vector<std::string> table(p.world_size);
  for (int q = 0; q < p.world_size; ++q) {
    if (!recv_blob(c.get(), &table[q], deadline)) {
      return absl::DeadlineExceededError(absl::StrFormat(
          "rank %d: rank 0 at %s:%d did not complete the rendezvous within %g s (are all %d "
          "ranks started?)",
          p.rank, p.host, p.port, seconds(p.timeout), p.world_size));
    }
  }
  return table;
}

}  // namespace

StatusOr<std::vector<std::string>> rendezvous_exchange(const RendezvousParams& p,
                                                       const std::string& my_blob) {
  if (p.world_size < 1 || p.rank < 0 || p.rank >= p.world_size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("rendezvous: rank %d is outside world size %d", p.rank, p.world_size));
  }
  if (p.port <= 0 || p.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrFormat("rendezvous: --data-parallel-rpc-port %d is not a TCP port", p.port));
  }
  if (p.world_size == 1) return std::vector<std::string>{my_blob};
  const auto deadline = Clock::now() + p.timeout;
  return p.rank == 0 ? serve_as_root(p, my_blob, deadline) : join_root(p, my_blob, deadline);
}

}  // namespace moeserve
