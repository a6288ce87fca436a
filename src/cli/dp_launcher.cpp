#include "cli/dp_launcher.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/logging.h"
#include "core/parallel.h"
#include "router/router_app.h"

namespace moeserve {
namespace {

using Clock = std::chrono::steady_clock;

// After a rank died: how long the others get to fail their requests and exit on their own
// (a rank whose engine stopped exits after its own grace), before they are terminated.
constexpr auto kPeerExitGrace = std::chrono::seconds(4);
// After SIGTERM in a teardown: how long before SIGKILL.
constexpr auto kTerminateGrace = std::chrono::seconds(10);

struct RankProcess {
  int rank = 0;
  pid_t pid = -1;
  int ready_fd = -1;  // read end; -1 once ready or closed
  bool ready = false;
  bool exited = false;
  int status = 0;  // waitpid status once exited
};

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    return "was killed by signal " + std::to_string(sig) + " (" + strsignal(sig) + ")";
  }
  return "stopped (status " + std::to_string(status) + ")";
}

// Address the front connects to for a rank listening on `host`.
std::string connect_host(const std::string& host) {
  if (host.empty() || host == "0.0.0.0" || host == "::") return "127.0.0.1";
  return host;
}

class Launcher {
 public:
  explicit Launcher(const ServeCommand& command) : cmd_(command) {}
  ~Launcher() {
    for (RankProcess& r : ranks_) {
      if (r.ready_fd >= 0) ::close(r.ready_fd);
    }
    if (signal_fd_ >= 0) ::close(signal_fd_);
  }

  int run();

 private:
  enum class Event { kReady, kRankExited, kStopSignal };

  // Forks the local ranks; in a child, never returns.
  Status spawn();
  [[noreturn]] void run_child(int rank, int ready_write_fd);
  // Waits until every local rank is ready, one exited, or a stop signal came.
  Event wait_ready();
  // Blocks up to `timeout` (forever when negative) for a signal; reaps exited children.
  // Returns whether a stop signal came.
  bool wait_signal(std::chrono::milliseconds timeout);
  // Reaps exited children, logging each; returns how many exited now.
  int reap();
  int num_alive() const;
  void signal_alive(int sig);
  // Waits up to `timeout` for every rank to exit; returns whether they all did.
  bool wait_all_exited(std::chrono::milliseconds timeout);
  // Stops every remaining rank: SIGTERM, then SIGKILL after kTerminateGrace.
  void terminate_all();
  // A rank died: let the others fail fast, then tear down. Returns the exit status.
  int on_rank_died();
  // SIGINT/SIGTERM: drain every rank. Returns the exit status.
  int on_stop_signal();

  const ServeCommand& cmd_;
  std::vector<RankProcess> ranks_;
  int signal_fd_ = -1;
  bool stopping_ = false;             // the group is being stopped on purpose
  std::atomic<bool> healthy_{false};  // the front's /health
};

int Launcher::run() {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGCHLD);
  // Every thread started later inherits the mask; signals arrive on the signalfd.
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  signal_fd_ = ::signalfd(-1, &mask, SFD_CLOEXEC);
  if (signal_fd_ < 0) {
    MS_LOG_ERROR("signalfd: {}", std::strerror(errno));
    return 1;
  }
  if (Status st = spawn(); !st.ok()) {
    MS_LOG_ERROR("{}", std::string(st.message()));
    terminate_all();
    return 1;
  }
  switch (wait_ready()) {
    case Event::kReady:
      break;
    case Event::kRankExited:
      return on_rank_died();
    case Event::kStopSignal:
      return on_stop_signal();
  }
  healthy_.store(true);

  const DataParallelConfig& dp = cmd_.data_parallel;
  // The front. Declared in this scope so that it stops before the function returns.
  std::unique_ptr<router::RouterApp> front;
  if (!dp.headless) {
    router::RouterAppOptions ro;  // llm-d's default scheduler
    std::string list;
    for (const RankProcess& r : ranks_) {
      router::EndpointSpec spec;
      spec.address = connect_host(cmd_.options.host) + ":" + std::to_string(cmd_.rank_port(r.rank));
      spec.labels["data_parallel_rank"] = std::to_string(r.rank);
      list += (list.empty() ? "" : ", ") + spec.address;
      ro.endpoints.push_back(std::move(spec));
    }
    ro.proxy.host = cmd_.options.host;
    ro.proxy.port = cmd_.options.port;
    ro.proxy.num_threads = std::max(2, cmd_.options.http_threads);
    ro.proxy.health = [this] { return healthy_.load(); };
    // The front speaks the whole API of `serve`: /tokenize, /detokenize and /version go to a
    // rank, /metrics carries the ranks' vllm:* series beside the front's own.
    ro.proxy.forward_engine_routes = true;
    ro.proxy.max_body_bytes = cmd_.options.http.body_limit;
    auto started = router::RouterApp::start(std::move(ro));
    if (!started.ok()) {
      MS_LOG_ERROR("front: {}", std::string(started.status().message()));
      terminate_all();
      return 1;
    }
    front = std::move(*started);
    MS_LOG_INFO(
        "moeserve API server listening on http://{}:{} (front over data-parallel ranks "
        "{})",
        cmd_.options.host, front->port(), list);
  } else {
    MS_LOG_INFO("headless: data-parallel ranks {}..{} serve on their own ports", dp.start_rank,
                dp.start_rank + dp.local_size() - 1);
  }

  int rc = 0;
  while (true) {
    if (wait_signal(std::chrono::milliseconds(-1))) {
      rc = on_stop_signal();
      break;
    }
    if (num_alive() < static_cast<int>(ranks_.size())) {
      rc = on_rank_died();
      break;
    }
  }
  if (front) front->stop();
  return rc;
}

Status Launcher::spawn() {
  const DataParallelConfig& dp = cmd_.data_parallel;
  const pid_t launcher = ::getpid();
  for (int rank : dp.local_ranks()) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
    }
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
      ::close(fds[0]);
      ::close(fds[1]);
      return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
    }
    if (pid == 0) {
      // Die with the launcher, also when it died before this line.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != launcher) ::_exit(1);
      ::close(fds[0]);
      run_child(rank, fds[1]);
    }
    ::close(fds[1]);
    RankProcess r;
    r.rank = rank;
    r.pid = pid;
    r.ready_fd = fds[0];
    ranks_.push_back(r);
    MS_LOG_INFO("started data-parallel rank {} (pid {}), HTTP port {}", rank, pid,
                cmd_.rank_port(rank));
  }
  return absl::OkStatus();
}

void Launcher::run_child(int rank, int ready_write_fd) {
  ::close(signal_fd_);
  for (RankProcess& r : ranks_) ::close(r.ready_fd);
  // SIGINT/SIGTERM stay blocked (the rank waits for them synchronously); SIGCHLD is not ours.
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  pthread_sigmask(SIG_UNBLOCK, &chld, nullptr);
  spdlog::set_pattern("%^%L%$ %m-%d %H:%M:%S.%e [rank " + std::to_string(rank) + "] %v");
  int threads = cmd_.threads_per_rank;
  if (threads <= 0) {
    const int hw = static_cast<int>(std::thread::hardware_concurrency());
    threads = std::max(1, hw / std::max(1, cmd_.data_parallel.local_size()));
  }
  omp_set_num_threads(threads);
  set_max_parallel_threads(threads);
  const int rc = run_data_parallel_rank(cmd_, rank, ready_write_fd);
  std::fflush(nullptr);
  ::_exit(rc);
}

Launcher::Event Launcher::wait_ready() {
  while (true) {
    std::vector<pollfd> fds;
    fds.push_back({signal_fd_, POLLIN, 0});
    std::vector<RankProcess*> polled;
    for (RankProcess& r : ranks_) {
      if (r.ready_fd < 0) continue;
      fds.push_back({r.ready_fd, POLLIN, 0});
      polled.push_back(&r);
    }
    if (polled.empty() &&
        std::all_of(ranks_.begin(), ranks_.end(), [](const RankProcess& r) { return r.ready; })) {
      return Event::kReady;
    }
    const int n = ::poll(fds.data(), fds.size(), -1);
    if (n < 0 && errno != EINTR) {
      MS_LOG_ERROR("poll: {}", std::strerror(errno));
      return Event::kRankExited;
    }
    for (size_t i = 0; i < polled.size(); ++i) {
      if (fds[i + 1].revents == 0) continue;
      RankProcess& r = *polled[i];
      char byte = 0;
      r.ready = ::read(r.ready_fd, &byte, 1) == 1;
      ::close(r.ready_fd);  // readiness, or EOF from a rank that failed (SIGCHLD follows)
      r.ready_fd = -1;
    }
    if (fds[0].revents != 0) {
      if (wait_signal(std::chrono::milliseconds(0))) return Event::kStopSignal;
      if (num_alive() < static_cast<int>(ranks_.size())) return Event::kRankExited;
    }
  }
}

bool Launcher::wait_signal(std::chrono::milliseconds timeout) {
  pollfd p{signal_fd_, POLLIN, 0};
  const int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
  bool stop = false;
  if (n > 0) {
    signalfd_siginfo si{};
    while (::read(signal_fd_, &si, sizeof(si)) == static_cast<ssize_t>(sizeof(si))) {
      if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM) {
        MS_LOG_INFO("received {}", si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
        stop = true;
      }
      pollfd again{signal_fd_, POLLIN, 0};
      if (::poll(&again, 1, 0) <= 0) break;
    }
  }
  reap();
  return stop;
}

int Launcher::reap() {
  int count = 0;
  while (true) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) break;
    for (RankProcess& r : ranks_) {
      if (r.pid != pid) continue;
      r.exited = true;
      r.status = status;
      ++count;
      const bool clean = stopping_ && WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (clean) {
        MS_LOG_INFO("data-parallel rank {} (pid {}) stopped", r.rank, pid);
      } else {
        MS_LOG_ERROR("data-parallel rank {} (pid {}) {}", r.rank, pid, describe_status(status));
      }
    }
  }
  if (count > 0) healthy_.store(false);
  return count;
}

int Launcher::num_alive() const {
  return static_cast<int>(
      std::count_if(ranks_.begin(), ranks_.end(), [](const RankProcess& r) { return !r.exited; }));
}

void Launcher::signal_alive(int sig) {
  for (const RankProcess& r : ranks_) {
    if (!r.exited) ::kill(r.pid, sig);
  }
}

bool Launcher::wait_all_exited(std::chrono::milliseconds timeout) {
  const auto until = Clock::now() + timeout;
  while (num_alive() > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{signal_fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 100))) > 0) {
      signalfd_siginfo si{};
      while (::read(signal_fd_, &si, sizeof(si)) == static_cast<ssize_t>(sizeof(si))) {
        pollfd again{signal_fd_, POLLIN, 0};
        if (::poll(&again, 1, 0) <= 0) break;
      }
    }
    reap();
  }
  return true;
}

void Launcher::terminate_all() {
  healthy_.store(false);
  reap();
  if (num_alive() == 0) return;
  signal_alive(SIGTERM);
  if (wait_all_exited(kTerminateGrace)) return;
  for (const RankProcess& r : ranks_) {
    if (!r.exited)
      MS_LOG_ERROR("data-parallel rank {} (pid {}) did not stop: killing it", r.rank, r.pid);
  }
  signal_alive(SIGKILL);
  wait_all_exited(std::chrono::minutes(10));
}

int Launcher::on_rank_died() {
  healthy_.store(false);
  MS_LOG_ERROR(
      "a data-parallel rank has stopped: the group cannot serve; stopping the other "
      "ranks (restart `moeserve serve` to recover)");
  wait_all_exited(std::chrono::duration_cast<std::chrono::milliseconds>(kPeerExitGrace));
  terminate_all();
  MS_LOG_ERROR("data-parallel group stopped after a rank failure; exiting with status 1");
  return 1;
}

int Launcher::on_stop_signal() {
  stopping_ = true;
  healthy_.store(false);
  MS_LOG_INFO("stopping: the ranks drain their in-flight requests (signal again to kill them)");
  signal_alive(SIGTERM);
  while (num_alive() > 0) {
    if (wait_signal(std::chrono::milliseconds(-1))) {
      MS_LOG_WARN("second stop signal: killing the ranks");
      signal_alive(SIGKILL);
    }
  }
  bool clean = true;
  for (const RankProcess& r : ranks_) {
    clean = clean && WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0;
  }
  MS_LOG_INFO("all data-parallel ranks stopped");
  return clean ? 0 : 1;
}

}  // namespace

int run_data_parallel(const ServeCommand& command) {
  Launcher launcher(command);
  return launcher.run();
}

}  // namespace moeserve
