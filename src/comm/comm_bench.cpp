#include "comm/comm_bench.h"

#include <chrono>
#include <cstring>
#include <vector>

#include "comm/registered_buffer.h"

namespace moeserve {
namespace {

using Clock = std::chrono::steady_clock;

// Enough repetitions to move ~256 MiB, between 4 and 10000.
int default_iterations(size_t bytes, int requested) {
  if (requested > 0) return requested;
  const size_t target = size_t{256} << 20;
  const size_t n = bytes == 0 ? 10000 : target / bytes;
  return static_cast<int>(std::clamp<size_t>(n, 4, 10000));
}

BandwidthResult finish(size_t bytes, int iters, Clock::time_point t0) {
  BandwidthResult r;
  r.bytes = bytes;
  r.iterations = iters;
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.gbytes_per_s = r.seconds > 0 ? static_cast<double>(bytes) * iters / r.seconds / 1e9 : 0;
  return r;
}

Status need_two(ProcessGroup* g) {
  if (g->world_size() < 2) {
    return absl::FailedPreconditionError("bandwidth probes need at least 2 ranks");
  }
  return absl::OkStatus();
}

}  // namespace

StatusOr<BandwidthResult> measure_sendrecv_bandwidth(ProcessGroup* g, size_t bytes,
                                                     int iterations) {
  MS_RETURN_IF_ERROR(need_two(g));
  const int iters = default_iterations(bytes, iterations);
  std::vector<uint8_t> buf(std::max<size_t>(bytes, 1), 1);
  constexpr int kWindow = 8;  // messages in flight
  MS_RETURN_IF_ERROR(g->barrier());
  const auto t0 = Clock::now();
  const uint64_t tag = 0x5eed;
  if (g->rank() <= 1) {
    const int peer = 1 - g->rank();
    for (int i = 0; i < iters; i += kWindow) {
      OpBatch b(g);
      for (int j = i; j < std::min(iters, i + kWindow); ++j) {
        if (g->rank() == 0) {
          g->isend(&b, peer, tag, buf.data(), bytes);
        } else {
          g->irecv(&b, peer, tag, buf.data(), bytes);
        }
      }
      MS_RETURN_IF_ERROR(g->wait(&b, "bandwidth probe"));
    }
    uint8_t ack = 0;
    if (g->rank() == 1) {
      MS_RETURN_IF_ERROR(g->send(0, tag + 1, &ack, 1));
    } else {
      MS_RETURN_IF_ERROR(g->recv(1, tag + 1, &ack, 1));
    }
  }
  BandwidthResult r = finish(bytes, iters, t0);
  MS_RETURN_IF_ERROR(g->barrier());
  return r;
}

StatusOr<BandwidthResult> measure_put_bandwidth(ProcessGroup* g, size_t bytes, int iterations) {
  MS_RETURN_IF_ERROR(need_two(g));
  const int iters = default_iterations(bytes, iterations);
  MS_ASSIGN_OR_RETURN(auto target, RegisteredBuffer::create(g, std::max<size_t>(bytes, 8) + 64));
  MS_ASSIGN_OR_RETURN(auto source, RegisteredBuffer::create(g, std::max<size_t>(bytes, 8)));
  std::memset(source->data(), 1, source->size());
  MS_RETURN_IF_ERROR(g->barrier());
  const size_t flag_off = (std::max<size_t>(bytes, 8) + 7) / 8 * 8;
  const auto t0 = Clock::now();
  if (g->rank() == 0) {
    for (int i = 0; i < iters; ++i) MS_RETURN_IF_ERROR(target->put(1, source->data(), bytes, 0));
    MS_RETURN_IF_ERROR(target->put_flag(1, flag_off, 1));
    MS_RETURN_IF_ERROR(target->flush(1));
  } else if (g->rank() == 1) {
    const size_t off[1] = {flag_off};
    const int peer[1] = {0};
    MS_RETURN_IF_ERROR(target->wait_flags(off, peer, 1, "bandwidth probe"));
  }
  BandwidthResult r = finish(bytes, iters, t0);
  MS_RETURN_IF_ERROR(g->barrier());
  return r;
}

BandwidthResult measure_memcpy_bandwidth(size_t bytes, int iterations) {
  const int iters = default_iterations(bytes, iterations);
  std::vector<uint8_t> a(std::max<size_t>(bytes, 1), 1), b(std::max<size_t>(bytes, 1), 0);
  std::memcpy(b.data(), a.data(), bytes);  // fault the pages in
  const auto t0 = Clock::now();
  for (int i = 0; i < iters; ++i) {
    std::memcpy((i & 1) ? a.data() : b.data(), (i & 1) ? b.data() : a.data(), bytes);
  }
  return finish(bytes, iters, t0);
}

}  // namespace moeserve
