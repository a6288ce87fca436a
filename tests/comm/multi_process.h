// Runs one function per rank in forked child processes (fork happens before any UCX
// initialisation: the parent never creates a ProcessGroup). Children report through their
// exit code and stderr; the parent kills every child still running after the deadline.
// Used by the comm and MoE multi-process tests; test-only.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "comm/process_group.h"

namespace moeserve::testing {

// A TCP port on 127.0.0.1 that was free a moment ago.
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

struct RankResult {
  int exit_code = -1;  // 0 = body returned Ok
  int signal = 0;      // non-zero when the child died of a signal
};

// Forks `n` children; child r runs body(r) and exits 0 on Ok, 1 otherwise (printing the
// status). Returns one result per rank; children left after `deadline` are SIGKILLed.
inline std::vector<RankResult> run_ranks(int n, const std::function<Status(int)>& body,
                                         std::chrono::seconds deadline = std::chrono::seconds(60)) {
  std::fflush(nullptr);
  std::vector<pid_t> pids(n, -1);
  for (int r = 0; r < n; ++r) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      Status st = body(r);
      if (!st.ok()) std::fprintf(stderr, "[rank %d] %s\n", r, st.ToString().c_str());
      std::fflush(nullptr);
      ::_exit(st.ok() ? 0 : 1);
    }
    pids[r] = pid;
  }
  std::vector<RankResult> out(n);
  const auto end = std::chrono::steady_clock::now() + deadline;
  int left = n;
  while (left > 0) {
    for (int r = 0; r < n; ++r) {
      if (pids[r] < 0) continue;
      int status = 0;
      if (::waitpid(pids[r], &status, WNOHANG) == pids[r]) {
        out[r].exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        out[r].signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
        pids[r] = -1;
        --left;
      }
    }
    if (left == 0) break;
    if (std::chrono::steady_clock::now() > end) {
      for (int r = 0; r < n; ++r) {
        if (pids[r] < 0) continue;
        std::fprintf(stderr, "[rank %d] still running at the deadline: killed\n", r);
        ::kill(pids[r], SIGKILL);
        ::waitpid(pids[r], nullptr, 0);
        out[r].signal = SIGKILL;
        pids[r] = -1;
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return out;
}

inline bool all_ok(const std::vector<RankResult>& rs) {
  for (const auto& r : rs) {
    if (r.exit_code != 0 || r.signal != 0) return false;
  }
  return true;
}

// Group options for rank r of an n-rank group on 127.0.0.1:port; `tcp` forces UCX_TLS=tcp
// over the loopback device (emulating separate hosts).
inline ProcessGroupOptions local_options(int r, int n, int port, bool tcp) {
  ProcessGroupOptions o;
  o.rank = r;
  o.world_size = n;
  o.master_addr = "127.0.0.1";
  o.master_port = port;
  o.timeout = std::chrono::seconds(20);
  if (tcp) {
    o.ucx_tls = "tcp";
    o.ucx_net_devices = "lo";
  }
  return o;
}

}  // namespace moeserve::testing

#define MS_TEST_CHECK(cond, ...)                                                                 \
  do {                                                                                           \
    if (!(cond)) {                                                                               \
      return absl::InternalError(                                                                \
          absl::StrCat(#cond " failed at line ", __LINE__, ": ", absl::StrFormat(__VA_ARGS__))); \
    }                                                                                            \
  } while (0)
