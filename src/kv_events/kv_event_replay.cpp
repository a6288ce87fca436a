#include "kv_events/kv_event_replay.h"

#include <zmq.h>

#include <cerrno>
#include <limits>

#include "absl/strings/str_cat.h"

namespace moeserve::kv_events {
namespace {

std::string big_endian_u64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i) {
    out[static_cast<size_t>(i)] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return out;
}

uint64_t read_u64(const std::string& b) {
  uint64_t v = 0;
  for (char c : b) v = (v << 8) | static_cast<uint8_t>(c);
  return v;
}

// Closes the socket and the context on every return path.
struct ZmqHandles {
  void* ctx = nullptr;
  void* sock = nullptr;
  ~ZmqHandles() {
    if (sock != nullptr) zmq_close(sock);
    if (ctx != nullptr) zmq_ctx_term(ctx);
  }
};

}  // namespace

StatusOr<std::vector<ReplayedBatch>> request_replay(const std::string& replay_endpoint,
                                                    uint64_t start_seq, uint64_t end_seq,
                                                    std::chrono::milliseconds timeout) {
  ZmqHandles h;
  h.ctx = zmq_ctx_new();
  if (h.ctx == nullptr) return absl::InternalError("zmq_ctx_new failed");
  h.sock = zmq_socket(h.ctx, ZMQ_DEALER);
  if (h.sock == nullptr) return absl::InternalError("zmq_socket(DEALER) failed");
  const int zero = 0;
  zmq_setsockopt(h.sock, ZMQ_LINGER, &zero, sizeof(zero));
  if (zmq_connect(h.sock, replay_endpoint.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat("KV event replay: cannot connect ", replay_endpoint,
                                               ": ", zmq_strerror(zmq_errno())));
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto remaining_ms = [&]() -> int {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    return left.count() > 0 ? static_cast<int>(left.count()) : 0;
  };
  const std::string start = big_endian_u64(start_seq);
  int to = remaining_ms();
  zmq_setsockopt(h.sock, ZMQ_SNDTIMEO, &to, sizeof(to));
  if (zmq_send(h.sock, "", 0, ZMQ_SNDMORE) < 0 ||
      zmq_send(h.sock, start.data(), start.size(), 0) < 0) {
    return absl::UnavailableError(absl::StrCat("KV event replay: cannot send to ", replay_endpoint,
                                               ": ", zmq_strerror(zmq_errno())));
  }
  std::vector<ReplayedBatch> out;
  std::vector<std::string> frames;
  for (;;) {
    frames.clear();
    bool more = true;
    while (more) {
      to = remaining_ms();
      if (to == 0) {
        return absl::UnavailableError(
            absl::StrCat("KV event replay: ", replay_endpoint, " did not finish in time"));
      }
      zmq_setsockopt(h.sock, ZMQ_RCVTIMEO, &to, sizeof(to));
      zmq_msg_t msg;
      zmq_msg_init(&msg);
      if (zmq_msg_recv(&msg, h.sock, 0) < 0) {
        const int err = zmq_errno();
        zmq_msg_close(&msg);
        if (err == EINTR) continue;
        return absl::UnavailableError(
            absl::StrCat("KV event replay: ", replay_endpoint, ": ",
                         err == EAGAIN ? "timed out" : zmq_strerror(err)));
      }
      more = zmq_msg_more(&msg) != 0;
      if (frames.size() < 4) {
        frames.emplace_back(static_cast<const char*>(zmq_msg_data(&msg)), zmq_msg_size(&msg));
      }
      zmq_msg_close(&msg);
    }
    if (frames.size() != 3 || !frames[0].empty() || frames[1].size() != 8) {
      return absl::InvalidArgumentError(
          absl::StrCat("KV event replay: malformed answer from ", replay_endpoint));
    }
    const uint64_t seq = read_u64(frames[1]);
    if (seq == std::numeric_limits<uint64_t>::max()) break;  // end marker
    if (seq < start_seq || seq >= end_seq) continue;
    MS_ASSIGN_OR_RETURN(KvEventBatch batch, decode_kv_event_payload(frames[2]));
    out.push_back(ReplayedBatch{seq, std::move(batch)});
  }
  return out;
}

}  // namespace moeserve::kv_events
