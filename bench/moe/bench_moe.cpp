#include "moe/bench_moe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "comm/comm_bench.h"
#include "moe/all2all_ht_prepare_finalize.h"
#include "moe/all2all_ll_prepare_finalize.h"
#include "moe/allgather_reducescatter_prepare_finalize.h"

namespace moeserve {
namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::vector<int> ep = {2, 4};
  std::vector<int64_t> hidden = {2048, 7168};
  std::vector<int64_t> top_k = {6, 8};
  std::vector<std::string> backends = {"allgather_reducescatter", "all2all_ht", "all2all_ll"};
  std::vector<int64_t> latency_tokens = {1, 2, 4, 8, 16, 32, 64, 128};
  int64_t bandwidth_tokens = 4096;
  int64_t num_experts = 64;
  int64_t max_tokens_per_rank = 256;  // all2all_ll chunk (VLLM_MOE_DP_CHUNK_SIZE)
  int latency_iters = 20;
  int bandwidth_iters = 3;
  std::string ucx_tls;
  bool no_peer_failure_detection = false;
  std::string address = "127.0.0.1";
  int port = 0;  // 0: pick a free one
  bool csv = false;
};

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

StatusOr<std::unique_ptr<PrepareFinalize>> make_backend(const std::string& name, ProcessGroup* g,
                                                        const Options& o, int64_t H, int64_t K) {
  if (name == "allgather_reducescatter") {
    MS_ASSIGN_OR_RETURN(auto pf, AllGatherReduceScatterPrepareFinalize::create(g, o.num_experts));
    return std::unique_ptr<PrepareFinalize>(std::move(pf));
  }
  if (name == "all2all_ht") {
    MS_ASSIGN_OR_RETURN(auto pf, All2AllHtPrepareFinalize::create(g, o.num_experts));
    return std::unique_ptr<PrepareFinalize>(std::move(pf));
  }
  if (name == "all2all_ll") {
    MS_ASSIGN_OR_RETURN(auto pf,
                        All2AllLlPrepareFinalize::create(
                            g, LowLatencyConfig{o.num_experts, H, K, o.max_tokens_per_rank}));
    return std::unique_ptr<PrepareFinalize>(std::move(pf));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "bench moe: unknown backend '", name, "' (allgather_reducescatter, all2all_ht, all2all_ll)"));
}

struct Workload {
  std::vector<float> x, w, y;  // [T, H], [T, K], [T, H]
  std::vector<int32_t> ids;    // [T, K]
  double offrank_bytes = 0;    // bytes this rank sends to other ranks, dispatch + combine
};

Workload make_workload(const std::string& backend, int rank, int n, int64_t T, int64_t H, int64_t K,
                       int64_t E) {
  Workload wl;
  std::mt19937 rng(1234 + rank);
  std::normal_distribution<float> nd;
  wl.x.resize(T * H);
  for (auto& v : wl.x) v = nd(rng);
  wl.w.assign(T * K, 1.0f / K);
  wl.y.resize(T * H);
  wl.ids.resize(T * K);
  std::vector<int32_t> perm(E);
  int64_t pairs_rank = 0, pairs_k = 0;
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t e = 0; e < E; ++e) perm[e] = static_cast<int32_t>(e);
    std::vector<bool> seen(n, false);
    for (int64_t k = 0; k < K; ++k) {
      std::swap(perm[k], perm[k + rng() % (E - k)]);
      wl.ids[t * K + k] = perm[k];
      const int owner = static_cast<int>(perm[k] * n / E);
      if (owner != rank) {
        ++pairs_k;
        if (!seen[owner]) ++pairs_rank;
        seen[owner] = true;
      }
    }
  }
  const double row = static_cast<double>(H) * sizeof(float);
  if (backend == "allgather_reducescatter") {
    wl.offrank_bytes = 2.0 * (n - 1) * T * row;
  } else if (backend == "all2all_ht") {
    wl.offrank_bytes = 2.0 * pairs_rank * row;
  } else {
    wl.offrank_bytes = 2.0 * pairs_k * row;
  }
  return wl;
}

// One dispatch + combine of T tokens per rank (chunked as the backend asks), no experts.
// Every rank brings T tokens, which the serving path knows from its data-parallel lockstep,
// so the chunk count needs no collective here either.
Status dispatch_combine(PrepareFinalize& pf, Workload& wl, int64_t T, int64_t H, int64_t K,
                        ExpertBatch* batch) {
  MS_ASSIGN_OR_RETURN(const int64_t chunks, pf.num_chunks(T, T));
  const int64_t limit = pf.max_tokens_per_chunk();
  const int64_t step = limit > 0 ? limit : T;
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t t0 = std::min(T, c * step), t1 = std::min(T, t0 + step);
    RoutedTokens in{wl.x.data() + t0 * H, t1 - t0, H, wl.ids.data() + t0 * K,
                    wl.w.data() + t0 * K, K};
    MS_RETURN_IF_ERROR(pf.prepare(in, batch));
    MS_RETURN_IF_ERROR(pf.finalize_begin(*batch, batch->a1.data()));
    MS_RETURN_IF_ERROR(pf.finalize_end(wl.y.data() + t0 * H));
  }
  return absl::OkStatus();
}

// Median over iterations of the slowest rank's time, in seconds.
StatusOr<double> time_it(ProcessGroup* g, PrepareFinalize& pf, Workload& wl, int64_t T, int64_t H,
                         int64_t K, int iters) {
  ExpertBatch batch;
  MS_RETURN_IF_ERROR(dispatch_combine(pf, wl, T, H, K, &batch));  // warm-up
  std::vector<float> times;
  for (int i = 0; i < iters; ++i) {
    MS_RETURN_IF_ERROR(g->barrier());
    const auto t0 = Clock::now();
    MS_RETURN_IF_ERROR(dispatch_combine(pf, wl, T, H, K, &batch));
    float s = std::chrono::duration<float>(Clock::now() - t0).count();
    MS_RETURN_IF_ERROR(g->all_reduce(std::span<float>(&s, 1), ReduceOp::kMax));
    times.push_back(s);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

void print_row(const Options& o, int ep, int64_t H, int64_t K, const std::string& backend,
               const char* mode, int64_t T, double seconds, double gbps) {
  if (o.csv) {
    std::printf("%d,%ld,%ld,%s,%s,%ld,%.1f,%.3f\n", ep, H, K, backend.c_str(), mode, T,
                seconds * 1e6, gbps);
  } else {
    std::printf("%3d %6ld %4ld  %-24s %-9s %6ld %12.1f %9.3f\n", ep, H, K, backend.c_str(), mode, T,
                seconds * 1e6, gbps);
  }
  std::fflush(stdout);
}

Status run_rank(const Options& o, int ep, int rank, int port) {
  ProcessGroupOptions go;
  go.rank = rank;
  go.world_size = ep;
  go.master_addr = o.address;
  go.master_port = port;
  go.ucx_tls = o.ucx_tls;
  go.detect_peer_failure = !o.no_peer_failure_detection;
  go.timeout = std::chrono::seconds(120);
  MS_ASSIGN_OR_RETURN(auto g, ProcessGroup::create(go));
  const bool lead = rank == 0;
  // Ceilings: UCX between ranks 0 and 1, memcpy on one core.
  const size_t probe = size_t{8} << 20;
  MS_ASSIGN_OR_RETURN(auto sr, measure_sendrecv_bandwidth(g.get(), probe));
  MS_ASSIGN_OR_RETURN(auto put, measure_put_bandwidth(g.get(), probe));
  if (lead) {
    const auto mc = measure_memcpy_bandwidth(probe);
    std::printf("# ep=%d transports=%s experts=%ld ll_max_tokens_per_rank=%ld (f32 activations)\n",
                ep, o.ucx_tls.empty() ? "ucx-default" : o.ucx_tls.c_str(), o.num_experts,
                o.max_tokens_per_rank);
    std::printf(
        "# ceilings (8 MiB): memcpy %.2f GB/s, ucx tag send/recv %.2f GB/s, ucx put %.2f "
        "GB/s\n",
        mc.gbytes_per_s, sr.gbytes_per_s, put.gbytes_per_s);
    if (!o.csv) {
      std::printf("%3s %6s %4s  %-24s %-9s %6s %12s %9s\n", "ep", "hidden", "topk", "backend",
                  "mode", "tokens", "latency_us", "GB/s");
    }
    std::fflush(stdout);
  }
  for (int64_t H : o.hidden) {
    for (int64_t K : o.top_k) {
      for (const std::string& backend : o.backends) {
        MS_ASSIGN_OR_RETURN(auto pf, make_backend(backend, g.get(), o, H, K));
        for (int64_t T : o.latency_tokens) {
          Workload wl = make_workload(backend, rank, ep, T, H, K, o.num_experts);
          MS_ASSIGN_OR_RETURN(double s, time_it(g.get(), *pf, wl, T, H, K, o.latency_iters));
          if (lead) print_row(o, ep, H, K, backend, "latency", T, s, wl.offrank_bytes / s / 1e9);
        }
        if (o.bandwidth_tokens > 0) {
          const int64_t T = o.bandwidth_tokens;
          Workload wl = make_workload(backend, rank, ep, T, H, K, o.num_experts);
          MS_ASSIGN_OR_RETURN(double s, time_it(g.get(), *pf, wl, T, H, K, o.bandwidth_iters));
          if (lead) print_row(o, ep, H, K, backend, "bandwidth", T, s, wl.offrank_bytes / s / 1e9);
        }
        MS_RETURN_IF_ERROR(g->barrier());  // backends' registered buffers go collectively
      }
    }
  }
  return g->barrier();
}

// Forks `ep` rank processes and waits for them; non-zero if any failed.
int run_group(const Options& o, int ep) {
  const int port = o.port > 0 ? o.port : free_port();
  std::fflush(nullptr);
  std::vector<pid_t> pids;
  for (int r = 0; r < ep; ++r) {
    const pid_t pid = ::fork();
    if (pid < 0) {
      std::fprintf(stderr, "bench moe: fork failed\n");
      for (pid_t p : pids) ::kill(p, SIGKILL);
      return 1;
    }
    if (pid == 0) {
      Status st = run_rank(o, ep, r, port);
      if (!st.ok()) std::fprintf(stderr, "bench moe: %s\n", std::string(st.message()).c_str());
      std::fflush(nullptr);
      ::_exit(st.ok() ? 0 : 1);
    }
    pids.push_back(pid);
  }
  int rc = 0;
  for (pid_t p : pids) {
    int status = 0;
    ::waitpid(p, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) rc = 1;
  }
  return rc;
}

}  // namespace

int bench_moe_main(int argc, char** argv) {
  Options o;
  CLI::App app("MoE dispatch/combine benchmark over UCX (local rank processes)", "moe");
  app.add_option("--ep", o.ep, "expert-parallel sizes (ranks)")->delimiter(',');
  app.add_option("--hidden", o.hidden, "hidden sizes")->delimiter(',');
  app.add_option("--topk", o.top_k, "experts per token")->delimiter(',');
  app.add_option("--backends", o.backends, "allgather_reducescatter,all2all_ht,all2all_ll")
      ->delimiter(',');
  app.add_option("--latency-tokens", o.latency_tokens, "tokens per rank for latency")
      ->delimiter(',');
  app.add_option("--bandwidth-tokens", o.bandwidth_tokens, "tokens per rank (0: skip)");
  app.add_option("--num-experts", o.num_experts, "routed experts (divisible by each --ep)");
  app.add_option("--max-tokens-per-rank", o.max_tokens_per_rank, "all2all_ll chunk size");
  app.add_option("--latency-iters", o.latency_iters);
  app.add_option("--bandwidth-iters", o.bandwidth_iters);
  app.add_option("--ucx-tls", o.ucx_tls, "UCX transports, e.g. tcp (default: UCX's choice)");
  app.add_option("--data-parallel-address", o.address, "rendezvous address");
  app.add_option("--data-parallel-rpc-port", o.port, "rendezvous port (0: any free port)");
  app.add_flag("--no-peer-failure-detection", o.no_peer_failure_detection,
               "UCX error mode NONE, which lets UCX use shared memory between local ranks "
               "(serving keeps PEER mode, whose dead-peer detection rules shared memory out)");
  app.add_flag("--csv", o.csv, "CSV rows instead of a table");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  for (int ep : o.ep) {
    if (ep < 2 || o.num_experts % ep != 0) {
      std::fprintf(stderr,
                   "bench moe: --ep %d needs at least 2 ranks and to divide --num-experts %ld\n",
                   ep, o.num_experts);
      return 2;
    }
  }
  if (o.csv) std::printf("ep,hidden,topk,backend,mode,tokens,latency_us,gbytes_per_s\n");
  for (int ep : o.ep) {
    if (int rc = run_group(o, ep); rc != 0) return rc;
  }
  return 0;
}

}  // namespace moeserve
