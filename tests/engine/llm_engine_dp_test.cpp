// Two data-parallel engine ranks (forked processes) over an expert-parallel tiny model, in
// lockstep through the DpCoordinator: requests to one rank only (the other runs dummy
// forwards), then to both, give the tokens the single-process engine gives; idle ranks sleep
// (little CPU); killing one rank fails the other's in-flight request within seconds and makes
// it unhealthy.
#include <omp.h>
#include <poll.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <random>

#include "../comm/multi_process.h"
#include "absl/strings/match.h"
#include "core/parallel.h"
#include "engine/llm_engine.h"
#include "gen/gen_model.h"
#include "gtest/gtest.h"
#include "model/deepseek.h"

namespace moeserve::engine {
namespace {

namespace fs = std::filesystem;
using moeserve::testing::all_ok;
using moeserve::testing::free_port;
using moeserve::testing::local_options;
using moeserve::testing::run_ranks;

// Generated in a child: the parent must not start OpenMP's pool before forking the ranks.
const std::string& tiny_model() {
  static const std::string dir = [] {
    const fs::path d =
        fs::path(::testing::TempDir()) / absl::StrCat("llm_engine_dp_test_", getpid());
    auto rs = run_ranks(1, [&](int) {
      GenModelOptions o;
      o.preset = "tiny";
      o.dtype = DType::kF32;
      o.seed = 3;
      return generate_model(d.string(), o);
    });
    EXPECT_TRUE(all_ok(rs));
    return d.string();
  }();
  return dir;
}

class Cleanup : public ::testing::Environment {
 public:
  void TearDown() override { fs::remove_all(tiny_model()); }
};
const auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new Cleanup);

// The finish reason of a final output, for messages.
std::string reason_name(const EngineOutput& o) {
  return o.finish_reason ? std::string(finish_reason_name(*o.finish_reason)) : "none";
}

// Ranks share the machine's few cores: one compute thread each.
void one_thread_per_rank() {
  omp_set_num_threads(1);
  set_max_parallel_threads(1);
}

class Collector final : public OutputSink {
 public:
  void on_output(EngineOutput o) override {
    std::lock_guard<std::mutex> lk(mu_);
    tokens_.insert(tokens_.end(), o.token_ids.begin(), o.token_ids.end());
    if (o.finished) {
      final_ = o;
      done_ = true;
    }
    cv_.notify_all();
  }
  // The final output, or nullopt after `timeout`.
  std::optional<EngineOutput> wait(std::chrono::seconds timeout = std::chrono::seconds(60)) {
    std::unique_lock<std::mutex> lk(mu_);
    if (!cv_.wait_for(lk, timeout, [&] { return done_; })) return std::nullopt;
    return final_;
  }
  size_t num_tokens() {
    std::lock_guard<std::mutex> lk(mu_);
    return tokens_.size();
  }
  void wait_tokens(size_t n) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait_for(lk, std::chrono::seconds(30), [&] { return done_ || tokens_.size() >= n; });
  }
  std::vector<int32_t> tokens() {
    std::lock_guard<std::mutex> lk(mu_);
    return tokens_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int32_t> tokens_;
  EngineOutput final_;
  bool done_ = false;
};

EngineConfig engine_config() {
  EngineConfig c;
  c.scheduler.max_num_batched_tokens = 24;  // chunked prefill: mixed steps
  c.scheduler.max_num_seqs = 8;
  c.scheduler.max_model_len = 256;
  c.cache.num_blocks = 64;
  c.cache.block_size = 16;
  c.cache.enable_prefix_caching = true;
  c.sampler_seed = 1;
  return c;
}

std::vector<int32_t> prompt(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> p(n);
  for (auto& t : p) t = 4 + static_cast<int32_t>(rng() % 400);
  return p;
}

SamplingParams greedy(int max_tokens) {
  SamplingParams p;
  p.temperature = 0.0;
  p.max_tokens = max_tokens;
  p.ignore_eos = true;
  return p;
}

StatusOr<std::shared_ptr<Collector>> submit(LlmEngine& e, const std::string& id,
                                            std::vector<int32_t> p, SamplingParams sp) {
  auto c = std::make_shared<Collector>();
  NewRequest r;
  r.request_id = id;
  r.prompt_token_ids = std::move(p);
  r.params = std::move(sp);
  r.sink = c;
  MS_RETURN_IF_ERROR(e.add_request(std::move(r)));
  return c;
}

// The tokens the single-process engine gives each prompt alone.
StatusOr<std::vector<std::vector<int32_t>>> solo_tokens(
    const std::vector<std::vector<int32_t>>& prompts, int max_tokens) {
  MS_ASSIGN_OR_RETURN(auto model, DeepseekModel::load(tiny_model()));
  MS_ASSIGN_OR_RETURN(auto e, LlmEngine::create(engine_config(), std::move(model), nullptr));
  std::vector<std::vector<int32_t>> out;
  for (size_t i = 0; i < prompts.size(); ++i) {
    MS_ASSIGN_OR_RETURN(auto c,
                        submit(*e, absl::StrCat("solo", i), prompts[i], greedy(max_tokens)));
    auto f = c->wait();
    MS_TEST_CHECK(f && f->finish_reason == FinishReason::kLength, "solo request %d did not finish",
                  i);
    out.push_back(c->tokens());
  }
  return out;
}

StatusOr<std::unique_ptr<LlmEngine>> ep_engine(ProcessGroup* group) {
  ModelLoadOptions o;
  o.expert_parallel = ExpertParallelOptions{group, All2AllBackend::kAuto, 4};
  MS_ASSIGN_OR_RETURN(auto model, DeepseekModel::load(tiny_model(), o));
  return LlmEngine::create(engine_config(), std::move(model), nullptr);
}

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

Status write_byte(int fd) {
  const char b = 1;
  MS_TEST_CHECK(::write(fd, &b, 1) == 1, "pipe write failed");
  return absl::OkStatus();
}

Status read_byte(int fd) {
  pollfd p{fd, POLLIN, 0};
  MS_TEST_CHECK(::poll(&p, 1, 60000) == 1, "no signal from the peer within 60 s");
  char b = 0;
  MS_TEST_CHECK(::read(fd, &b, 1) == 1, "pipe read failed");
  return absl::OkStatus();
}

struct Pipe {
  int fd[2] = {-1, -1};
  Pipe() { EXPECT_EQ(::pipe(fd), 0); }
  ~Pipe() {
    ::close(fd[0]);
    ::close(fd[1]);
  }
};

TEST(LlmEngineDp, LockstepRanksGiveSingleEngineTokens) {
  tiny_model();
  const int port = free_port();
  Pipe phase;  // rank 0 -> rank 1: phase 1 is over; later: rank 0 has shut down
  Pipe back;   // rank 1 -> rank 0: rank 1's checks are done
  Pipe done[2];  // rank r -> the other: rank r's phase 2 requests have finished
  Pipe checked;  // rank 1 -> rank 0: rank 1 has checked the phase-1 expert load
  constexpr int kMax = 10;
  auto rs = run_ranks(
      2,
      [&](int r) -> Status {
        one_thread_per_rank();
        // Phase 1: two requests to rank 0 only. Phase 2: two requests to each rank.
        const std::vector<std::vector<int32_t>> phase1 = {prompt(11, 1), prompt(30, 2)};
        const std::vector<std::vector<int32_t>> phase2 = {prompt(7 + 9 * r, 10 + r),
                                                          prompt(26 - 5 * r, 20 + r)};
        std::vector<std::vector<int32_t>> all = phase2;
        if (r == 0) all.insert(all.begin(), phase1.begin(), phase1.end());
        MS_ASSIGN_OR_RETURN(auto want, solo_tokens(all, kMax));

        MS_ASSIGN_OR_RETURN(auto group, ProcessGroup::create(local_options(r, 2, port, false)));
        MS_ASSIGN_OR_RETURN(auto engine, ep_engine(group.get()));
        size_t next = 0;
        auto run_phase = [&](const std::vector<std::vector<int32_t>>& prompts,
                             const std::string& tag) -> Status {
          std::vector<std::shared_ptr<Collector>> cs;
          for (size_t i = 0; i < prompts.size(); ++i) {
            MS_ASSIGN_OR_RETURN(auto c,
                                submit(*engine, absl::StrCat(tag, i), prompts[i], greedy(kMax)));
            cs.push_back(c);
          }
          for (size_t i = 0; i < cs.size(); ++i, ++next) {
            auto f = cs[i]->wait();
            MS_TEST_CHECK(f.has_value(), "rank %d %s%d: no final output", r, tag, i);
            MS_TEST_CHECK(f->finish_reason == FinishReason::kLength, "rank %d %s%d: %s %s", r, tag,
                          i, reason_name(*f), f->error);
            MS_TEST_CHECK(cs[i]->tokens() == want[next], "rank %d %s%d: tokens differ", r, tag, i);
          }
          return absl::OkStatus();
        };
        if (r == 0) {
          MS_RETURN_IF_ERROR(run_phase(phase1, "one"));
          MS_RETURN_IF_ERROR(write_byte(phase.fd[1]));
          MS_RETURN_IF_ERROR(read_byte(checked.fd[0]));
        } else {
          MS_RETURN_IF_ERROR(read_byte(phase.fd[0]));
          const EngineStats s = engine->stats();
          // Rank 1 had nothing to do but ran every step's exchanges.
          MS_TEST_CHECK(s.dp_dummy_steps > 0 && s.steps == 0, "rank 1: %d dummy, %d real steps",
                        s.dp_dummy_steps, s.steps);
          // Expert load: rank 1's dummy steps recorded nothing, yet what it publishes is the
          // group's sum, i.e. rank 0's phase-1 tokens (published when the group went idle;
          // rank 0 starts phase 2 only after this check).
          const int64_t want_routed =
              (11 + 30 + 2 * (kMax - 1)) * engine->model_config().num_experts_per_tok;
          auto routed = [](const std::vector<int64_t>& layer) {
            int64_t n = 0;
            for (int64_t t : layer) n += t;
            return n;
          };
          std::shared_ptr<const ExpertLoadSnapshot> load;
          for (int i = 0; i < 1000; ++i) {
            load = engine->expert_load();
            if (load && !load->tokens.empty() && routed(load->tokens[0]) > 0) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
          }
          MS_TEST_CHECK(load && !load->tokens.empty(), "rank 1: no expert load");
          MS_TEST_CHECK(load->steps_in_window == 0, "rank 1 recorded %d steps",
                        load->steps_in_window);
          MS_TEST_CHECK(load->num_ranks == 2, "%d ranks", load->num_ranks);
          for (const std::vector<int64_t>& layer : load->tokens) {
            MS_TEST_CHECK(routed(layer) == want_routed, "rank 1 sees %d routed tokens, not %d",
                          routed(layer), want_routed);
          }
          MS_RETURN_IF_ERROR(write_byte(checked.fd[1]));
        }
        MS_RETURN_IF_ERROR(run_phase(phase2, "both"));
        // Until the other rank's requests finish too, this rank runs dummy steps (real CPU
        // work; a loaded machine can make that last long), so wait for it first.
        MS_RETURN_IF_ERROR(write_byte(done[r].fd[1]));
        MS_RETURN_IF_ERROR(read_byte(done[1 - r].fd[0]));
        // Both idle now: they sleep instead of spinning.
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        const double cpu0 = cpu_seconds();
        std::this_thread::sleep_for(std::chrono::seconds(1));
        const double idle_cpu = cpu_seconds() - cpu0;
        MS_TEST_CHECK(idle_cpu < 0.25, "rank %d used %g s of CPU in 1 s idle", r, idle_cpu);
        const EngineStats s = engine->stats();
        MS_TEST_CHECK(s.dp_idle_waits >= 1, "rank %d never idled", r);
        MS_TEST_CHECK(engine->healthy(), "rank %d unhealthy", r);
        // Rank 0 shuts down first (after rank 1's checks); rank 1 then cannot serve alone.
        if (r == 0) {
          MS_RETURN_IF_ERROR(read_byte(back.fd[0]));
          engine->shutdown(/*drain=*/true);
          return write_byte(phase.fd[1]);
        }
        MS_RETURN_IF_ERROR(write_byte(back.fd[1]));
        MS_RETURN_IF_ERROR(read_byte(phase.fd[0]));
        for (int i = 0; i < 500 && engine->healthy(); ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        MS_TEST_CHECK(!engine->healthy(), "rank 1 still healthy after rank 0 shut down");
        engine->shutdown(/*drain=*/true);
        return absl::OkStatus();
      },
      std::chrono::seconds(120));
  EXPECT_TRUE(all_ok(rs));
}

TEST(LlmEngineDp, KilledPeerFailsInFlightRequestsAndHealth) {
  tiny_model();
  const int port = free_port();
  Pipe started;  // rank 0 -> rank 1: the request is generating; die now
  auto rs = run_ranks(
      2,
      [&](int r) -> Status {
        one_thread_per_rank();
        MS_ASSIGN_OR_RETURN(auto group, ProcessGroup::create(local_options(r, 2, port, false)));
        MS_ASSIGN_OR_RETURN(auto engine, ep_engine(group.get()));
        if (r == 1) {
          MS_RETURN_IF_ERROR(read_byte(started.fd[0]));
          ::kill(::getpid(), SIGKILL);
        }
        MS_ASSIGN_OR_RETURN(auto c, submit(*engine, "long", prompt(20, 7), greedy(200)));
        c->wait_tokens(3);
        MS_TEST_CHECK(c->num_tokens() >= 3, "only %d tokens", c->num_tokens());
        const auto t0 = std::chrono::steady_clock::now();
        MS_RETURN_IF_ERROR(write_byte(started.fd[1]));
        auto f = c->wait(std::chrono::seconds(20));
        const double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        MS_TEST_CHECK(f.has_value(), "the request did not fail within 20 s of the kill");
        MS_TEST_CHECK(
            f->finish_reason == FinishReason::kError && absl::StrContains(f->error, "rank 1"),
            "finish %s: %s", reason_name(*f), f->error);
        MS_TEST_CHECK(secs < 5, "failing took %g s", secs);
        MS_TEST_CHECK(c->num_tokens() < 200, "the request finished");
        MS_TEST_CHECK(!engine->healthy(), "still healthy after the peer died");
        NewRequest late;
        late.request_id = "late";
        late.prompt_token_ids = prompt(5, 1);
        late.sink = std::make_shared<Collector>();
        MS_TEST_CHECK(absl::IsUnavailable(engine->add_request(late)), "dead engine took a request");
        std::fprintf(stderr, "[rank 0] request failed %.2f s after the kill: %s\n", secs,
                     f->error.c_str());
        return absl::OkStatus();
      },
      std::chrono::seconds(90));
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_EQ(rs[0].exit_code, 0);
  EXPECT_EQ(rs[0].signal, 0);
  EXPECT_EQ(rs[1].signal, SIGKILL);
}

}  // namespace
}  // namespace moeserve::engine
