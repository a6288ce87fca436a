// Multi-process tests of ProcessGroup and RegisteredBuffer: real processes (forked before any
// UCX initialisation), 127.0.0.1 only, over UCX's default transports and over TCP.
#include "comm/process_group.h"

#include <signal.h>

#include <cstring>
#include <numeric>

#include "absl/strings/match.h"
#include "comm/registered_buffer.h"
#include "gtest/gtest.h"
#include "multi_process.h"

namespace moeserve {
namespace {

using testing::all_ok;
using testing::free_port;
using testing::local_options;
using testing::run_ranks;
using Clock = std::chrono::steady_clock;

uint8_t pattern(int src, size_t size, size_t i) {
  return static_cast<uint8_t>((src * 131 + size * 7 + i * 13 + (i >> 9)) & 0xff);
}

class Transports : public ::testing::TestWithParam<bool> {};  // true: UCX_TLS=tcp

TEST_P(Transports, RendezvousOfTwoAndFourRanks) {
  for (int n : {2, 4}) {
    const int port = free_port();
    auto rs = run_ranks(n, [&](int r) -> Status {
      MS_ASSIGN_OR_RETURN(auto g, ProcessGroup::create(local_options(r, n, port, GetParam())));
      MS_TEST_CHECK(g->rank() == r && g->world_size() == n, "rank %d", g->rank());
      return g->barrier();
    });
    EXPECT_TRUE(all_ok(rs)) << "world " << n;
  }
}

TEST_P(Transports, SendRecvOfEverySize) {
  const int n = 2, port = free_port();
  const bool tcp = GetParam();
  auto rs = run_ranks(n, [&](int r) -> Status {
    MS_ASSIGN_OR_RETURN(auto g, ProcessGroup::create(local_options(r, n, port, tcp)));
    const int peer = 1 - r;
    uint64_t tag = 1;
    for (size_t size : {size_t{0}, size_t{1}, size_t{7}, size_t{4096}, size_t{65537},
                        size_t{1} << 20, size_t{8} << 20}) {
      std::vector<uint8_t> out(size), in(size);
      for (size_t i = 0; i < size; ++i) out[i] = pattern(r, size, i);
      // Both directions at once: rank 0 sends first, rank 1 receives first.
      if (r == 0) {
        MS_RETURN_IF_ERROR(g->send(peer, tag, out.data(), size));
        MS_RETURN_IF_ERROR(g->recv(peer, tag, in.data(), size));
      } else {
        MS_RETURN_IF_ERROR(g->recv(peer, tag, in.data(), size));
        MS_RETURN_IF_ERROR(g->send(peer, tag, out.data(), size));
      }
      for (size_t i = 0; i < size; ++i) {
        MS_TEST_CHECK(in[i] == pattern(peer, size, i), "size %d byte %d", size, i);
      }
      ++tag;
      // Any-size receive.
      if (r == 0) {
        MS_RETURN_IF_ERROR(g->send(peer, tag, out.data(), size));
      } else {
        MS_ASSIGN_OR_RETURN(auto got, g->recv_any(peer, tag));
        MS_TEST_CHECK(got.size() == size, "recv_any size %d", got.size());
        for (size_t i = 0; i < size; ++i) {
          MS_TEST_CHECK(got[i] == pattern(peer, size, i), "recv_any size %d byte %d", size, i);
        }
      }
      ++tag;
    }
    // A message of the wrong size is an error, not a silent truncation.
    if (r == 0) {
      uint8_t big[16] = {};
      MS_RETURN_IF_ERROR(g->send(peer, 999, big, sizeof(big)));
    } else {
      uint8_t small[16];
      Status st = g->recv(peer, 999, small, 8);
      MS_TEST_CHECK(!st.ok(), "truncated receive succeeded");
    }
    return g->barrier();
  });
  EXPECT_TRUE(all_ok(rs));
}

TEST_P(Transports, Collectives) {
  const int n = 4, port = free_port();
  const bool tcp = GetParam();
  auto rs = run_ranks(n, [&](int r) -> Status {
    MS_ASSIGN_OR_RETURN(auto g, ProcessGroup::create(local_options(r, n, port, tcp)));
    // all_reduce of int64: sum and max.
    std::vector<int64_t> a = {r, 10 * r, -r, int64_t{1} << 40};
    MS_RETURN_IF_ERROR(g->all_reduce(std::span<int64_t>(a), ReduceOp::kSum));
    MS_TEST_CHECK(a[0] == 6 && a[1] == 60 && a[2] == -6 && a[3] == (int64_t{4} << 40), "sum %d",
                  a[0]);
    std::vector<int64_t> m = {r, -r, 3};
    MS_RETURN_IF_ERROR(g->all_reduce(std::span<int64_t>(m), ReduceOp::kMax));
    MS_TEST_CHECK(m[0] == 3 && m[1] == 0 && m[2] == 3, "max %d %d", m[0], m[1]);
    // f32: every rank gets bitwise the same sum.
    std::vector<float> f(100);
    for (int i = 0; i < 100; ++i) f[i] = 0.1f * (r + 1) * (i + 1);
    MS_RETURN_IF_ERROR(g->all_reduce(std::span<float>(f), ReduceOp::kSum));
    for (int i = 0; i < 100; ++i) {
      const float want =
          ((0.1f * 1 * (i + 1) + 0.1f * 2 * (i + 1)) + 0.1f * 3 * (i + 1)) + 0.1f * 4 * (i + 1);
      MS_TEST_CHECK(f[i] == want, "f32 sum %g vs %g", f[i], want);
    }
    std::vector<float> fm = {static_cast<float>(r), -1.0f * r};
    MS_RETURN_IF_ERROR(g->all_reduce(std::span<float>(fm), ReduceOp::kMax));
    MS_TEST_CHECK(fm[0] == 3.0f && fm[1] == 0.0f, "f32 max");
    // all_gather and all_gatherv (rank r contributes r bytes; rank 0 none).
    std::vector<int32_t> all(n);
    const int32_t mine = 100 + r;
    MS_RETURN_IF_ERROR(g->all_gather(&mine, sizeof(mine), all.data()));
    for (int q = 0; q < n; ++q) MS_TEST_CHECK(all[q] == 100 + q, "all_gather[%d]", q);
    std::vector<size_t> sizes(n);
    std::iota(sizes.begin(), sizes.end(), 0);
    std::vector<uint8_t> in(r, static_cast<uint8_t>(r)), out(6);
    MS_RETURN_IF_ERROR(g->all_gatherv(in.data(), sizes, out.data()));
    MS_TEST_CHECK((out == std::vector<uint8_t>{1, 2, 2, 3, 3, 3}), "all_gatherv");
    // all_to_allv: rank r sends (r + p) bytes of value r*16+p to rank p.
    std::vector<size_t> ss(n), rsz(n);
    std::vector<uint8_t> send;
    for (int p = 0; p < n; ++p) {
      ss[p] = r + p;
      rsz[p] = p + r;
      send.insert(send.end(), ss[p], static_cast<uint8_t>(r * 16 + p));
    }
    std::vector<uint8_t> recv(std::accumulate(rsz.begin(), rsz.end(), size_t{0}));
    MS_RETURN_IF_ERROR(g->all_to_allv(send.data(), ss, recv.data(), rsz));
    size_t off = 0;
    for (int p = 0; p < n; ++p) {
      for (size_t i = 0; i < rsz[p]; ++i) {
        MS_TEST_CHECK(recv[off + i] == p * 16 + r, "all_to_allv from %d", p);
      }
      off += rsz[p];
    }
    return g->barrier();
  });
  EXPECT_TRUE(all_ok(rs));
}

TEST_P(Transports, PutsAreVisibleOnceTheFlagIs) {
  const int n = 3, port = free_port();
  const bool tcp = GetParam();
  auto rs = run_ranks(n, [&](int r) -> Status {
    MS_ASSIGN_OR_RETURN(auto g, ProcessGroup::create(local_options(r, n, port, tcp)));
    const size_t block = (size_t{1} << 20) + 24;  // per sender
    const size_t flags_off = n * block + 64;
    MS_ASSIGN_OR_RETURN(auto buf, RegisteredBuffer::create(g.get(), flags_off + 8 * n));
    std::vector<uint8_t> src(block);
    for (uint64_t seq = 1; seq <= 4; ++seq) {
      for (size_t i = 0; i < block; ++i) src[i] = pattern(r, seq, i);
      for (int p = 0; p < n; ++p) {
        // Several puts per peer, then one flag.
        MS_RETURN_IF_ERROR(buf->put(p, src.data(), block / 2, r * block));
        MS_RETURN_IF_ERROR(
            buf->put(p, src.data() + block / 2, block - block / 2, r * block + block / 2));
        MS_RETURN_IF_ERROR(buf->put_flag(p, flags_off + 8 * r, seq));
      }
      std::vector<size_t> offs;
      std::vector<int> peers;
      for (int p = 0; p < n; ++p) {
        offs.push_back(flags_off + 8 * p);
        peers.push_back(p);
      }
      MS_RETURN_IF_ERROR(buf->wait_flags(offs, peers, seq, "put test"));
      for (int p = 0; p < n; ++p) {
        for (size_t i = 0; i < block; ++i) {
          MS_TEST_CHECK(buf->data()[p * block + i] == pattern(p, seq, i),
                        "seq %d from rank %d byte %d", seq, p, i);
        }
      }
      MS_RETURN_IF_ERROR(buf->flush());
      // Nobody overwrites a block before everyone has checked it.
      MS_RETURN_IF_ERROR(g->barrier());
    }
    Status st = buf->put(0, src.data(), 16, buf->size() - 8);
    MS_TEST_CHECK(!st.ok(), "out-of-range put accepted");
    return absl::OkStatus();
  });
  EXPECT_TRUE(all_ok(rs));
}

TEST_P(Transports, KilledRankFailsTheOthersFast) {
  const int n = 3, port = free_port();
  const bool tcp = GetParam();
  auto rs = run_ranks(
      n,
      [&](int r) -> Status {
        ProcessGroupOptions o = local_options(r, n, port, tcp);
        o.timeout = std::chrono::seconds(30);  // failure must be detected long before this
        MS_ASSIGN_OR_RETURN(auto g, ProcessGroup::create(o));
        MS_RETURN_IF_ERROR(g->barrier());
        if (r == 2) {
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
          ::kill(::getpid(), SIGKILL);
        }
        const auto t0 = Clock::now();
        std::vector<int64_t> v = {1};
        Status st = g->all_reduce(std::span<int64_t>(v), ReduceOp::kSum);  // pending at the kill
        const double s1 = std::chrono::duration<double>(Clock::now() - t0).count();
        MS_TEST_CHECK(!st.ok(), "all_reduce with a dead rank succeeded");
        MS_TEST_CHECK(absl::StrContains(st.message(), "rank 2"), "error does not name rank 2: %s",
                      st.message());
        MS_TEST_CHECK(s1 < 10.0, "failure took %g s: %s", s1, st.message());
        // Later operations fail at once, point-to-point with the dead rank too.
        const auto t1 = Clock::now();
        Status st2 = g->barrier();
        MS_TEST_CHECK(!st2.ok() && absl::StrContains(st2.message(), "rank 2"), "barrier: %s",
                      st2.message());
        uint8_t b = 0;
        Status st3 = g->recv(2, 5, &b, 1);
        MS_TEST_CHECK(!st3.ok(), "recv from dead rank succeeded");
        const double s2 = std::chrono::duration<double>(Clock::now() - t1).count();
        MS_TEST_CHECK(s2 < 1.0, "later operations took %g s", s2);
        std::fprintf(stderr, "[rank %d] detected in %.2f s: %s\n", r, s1,
                     std::string(st.message()).c_str());
        return absl::OkStatus();
      },
      std::chrono::seconds(60));
  EXPECT_EQ(rs[0].exit_code, 0);
  EXPECT_EQ(rs[1].exit_code, 0);
  EXPECT_EQ(rs[2].signal, SIGKILL);
}

INSTANTIATE_TEST_SUITE_P(Comm, Transports, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Tcp" : "Default"; });

TEST(Rendezvous, UnreachableRankZeroTimesOutWithAClearError) {
  const int port = free_port();
  auto rs = run_ranks(1, [&](int) -> Status {
    ProcessGroupOptions o = local_options(1, 2, port, false);
    o.timeout = std::chrono::milliseconds(1000);
    auto g = ProcessGroup::create(o);
    MS_TEST_CHECK(!g.ok(), "group formed without rank 0");
    const std::string want =
        absl::StrFormat("rank 1: could not reach rank 0 at 127.0.0.1:%d within 1 s", port);
    MS_TEST_CHECK(g.status().message() == want, "got '%s'", g.status().message());
    return absl::OkStatus();
  });
  EXPECT_TRUE(all_ok(rs));
}

TEST(Rendezvous, MissingRankIsNamedByRankZero) {
  const int port = free_port();
  auto rs = run_ranks(2, [&](int r) -> Status {
    ProcessGroupOptions o = local_options(r, 3, port, false);
    o.timeout = std::chrono::milliseconds(1500);
    auto g = ProcessGroup::create(o);
    MS_TEST_CHECK(!g.ok(), "group of 3 formed with 2 ranks");
    if (r == 0) {
      MS_TEST_CHECK(absl::StrContains(g.status().message(), "missing ranks: 2"), "got '%s'",
                    g.status().message());
    }
    return absl::OkStatus();
  });
  EXPECT_TRUE(all_ok(rs));
}

}  // namespace
}  // namespace moeserve
