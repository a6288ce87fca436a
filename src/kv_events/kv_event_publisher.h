// vLLM-format KV-cache events over ZMQ (vllm/distributed/kv_events.py ZmqEventPublisher), as
// llm-d's precise-prefix-cache scorer (llm-d-kv-cache pkg/kvcache/kvevents) and moeserve's
// own router consume them.
//
// Configuration: vLLM's `--kv-events-config` JSON,
//   {"enable_kv_cache_events": true, "publisher": "zmq", "endpoint": "tcp://*:5557",
//    "topic": "kv@<host:port>@<model>", "replay_endpoint": "tcp://*:5558",
//    "buffer_steps": 10000, "hwm": 100000, "max_queue_size": 100000}
// Events are off unless enable_kv_cache_events is true and the publisher is "zmq" (the
// default publisher when events are enabled); "null" disables them; other publishers are
// an error, as are unknown keys.
//
// Sockets: one PUB socket. It binds when the endpoint contains '*' (or "::", or is ipc:// or
// inproc://) and connects otherwise. As in vLLM the data-parallel rank is added to the tcp port
// (`tcp://*:5557` on rank 2 is `tcp://*:5559`; an inproc endpoint gets "_dp<rank>"); a
// wildcard port ("tcp://127.0.0.1:*", tests) is kept as is. With replay_endpoint a ROUTER
// socket answers replay requests from the last buffer_steps batches (below).
//
// Wire format (kv_event_codec.h): each batch is one multipart message of three frames,
//   [topic bytes, sequence number as 8-byte big-endian uint64, msgpack payload],
// the payload in the array encoding. Sequence numbers start at 0 and grow by one per batch,
// including batches dropped because the send queue was full, so a subscriber sees a gap exactly
// when it lost information. Events without a medium get the publisher's (Options::medium, "GPU"
// by default: vLLM's name for the engine's primary KV cache; llm-d maps it to its top "gpu"
// tier). Why the array encoding: that is the layout llm-d-kv-cache decodes. Compatibility risk:
// current upstream vLLM no longer sets array_like=True, i.e. it sends msgpack *maps* keyed by
// field name; a consumer built only for that form would not read these messages.
// kv_event_codec.h reads both forms.
//
// Replay (vLLM protocol): a DEALER sends [b"", start_seq as 8-byte big-endian]; the ROUTER
// answers each buffered batch with seq >= start_seq as [b"", seq (8 bytes), payload], then the
// end marker [b"", 0xFFFFFFFFFFFFFFFF, b""].
//
// Threading: publish() and end_step() run on the engine-loop thread and never block on the
// network: end_step() stamps the batch and appends it to a queue bounded by max_queue_size
// (a full queue drops the batch and counts it). A background thread encodes, sends and serves
// replay requests; it owns the sockets. stats() may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "core/status.h"
#include "kv_events/kv_event.h"

namespace moeserve::kv_events {

// vLLM's KVEventsConfig.
struct KvEventsConfig {
  bool enable_kv_cache_events = false;
  std::string publisher = "null";  // "null" | "zmq" (after parsing; absent → zmq when enabled)
  std::string endpoint = "tcp://*:5557";
  std::optional<std::string> replay_endpoint;
  int64_t buffer_steps = 10000;     // batches kept for replay
  int64_t hwm = 100000;             // ZMQ send high-water mark (0: unlimited)
  int64_t max_queue_size = 100000;  // batches waiting for the sender thread
  std::string topic;

  bool enabled() const { return enable_kv_cache_events && publisher == "zmq"; }
};

// Parses and validates a `--kv-events-config` JSON object.
StatusOr<KvEventsConfig> parse_kv_events_config(std::string_view json);

// vLLM's offset_endpoint_port: the endpoint the given data-parallel rank uses. Rank 0 uses the
// endpoint unchanged for every scheme; rank r > 0 adds r to a tcp port (a `*` port stays
// ephemeral) and appends `_dp<r>` to an inproc:// or ipc:// address.
StatusOr<std::string> offset_endpoint_port(std::string_view endpoint, int dp_rank);

// Whether the publisher binds (true) or connects (false) to `endpoint`.
bool endpoint_binds(std::string_view endpoint);

struct KvEventPublisherStats {
  uint64_t batches_queued = 0;   // accepted by end_step()
  uint64_t batches_dropped = 0;  // queue full
  uint64_t batches_sent = 0;
  uint64_t send_errors = 0;
  uint64_t replay_requests = 0;
};

class ZmqKvEventPublisher final : public KvEventSink {
 public:
  struct Options {
    int data_parallel_rank = 0;
    std::string medium = "GPU";
    int linger_ms = 500;  // how long close() tries to deliver what is queued
  };

  // Opens (binds or connects) the sockets and starts the sender thread. `config` must be
  // enabled(). Errors: bad endpoint, address in use, invalid options.
  static StatusOr<std::unique_ptr<ZmqKvEventPublisher>> create(const KvEventsConfig& config,
                                                               Options options);
  // Sends what is queued (bounded by linger_ms), then closes the sockets.
  ~ZmqKvEventPublisher() override;
  ZmqKvEventPublisher(const ZmqKvEventPublisher&) = delete;
  ZmqKvEventPublisher& operator=(const ZmqKvEventPublisher&) = delete;

  // Engine-loop thread.
  void publish(KvCacheEvent event) override;
  void end_step() ABSL_LOCKS_EXCLUDED(mu_) override;

  // The endpoint the PUB socket actually uses (a bound wildcard port resolved), and the replay
  // socket's (empty without replay).
  const std::string& endpoint() const { return endpoint_; }
  const std::string& replay_endpoint() const { return replay_endpoint_; }
  const std::string& topic() const { return config_.topic; }
  KvEventPublisherStats stats() const;

 private:
  struct Batch {
    uint64_t seq = 0;
    double ts = 0.0;
    std::vector<KvCacheEvent> events;
  };
  ZmqKvEventPublisher() = default;
  void run() ABSL_LOCKS_EXCLUDED(mu_);
  void send_batch(Batch& batch);
  void serve_replay();
  void close_sockets();

  KvEventsConfig config_;
  Options options_;
  std::string endpoint_;
  std::string replay_endpoint_;

  void* ctx_ = nullptr;     // zmq context
  void* pub_ = nullptr;     // sender thread after start
  void* replay_ = nullptr;  // sender thread after start; null without replay
  int wake_fd_ = -1;        // eventfd: end_step() and the destructor wake the sender thread

  // Engine-loop thread only.
  std::vector<KvCacheEvent> pending_;
  uint64_t next_seq_ = 0;

  // Sender thread only: (seq, payload) of the last buffer_steps batches.
  std::deque<std::pair<uint64_t, std::string>> history_;

  absl::Mutex mu_;
  std::deque<Batch> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;

  std::atomic<uint64_t> queued_{0}, dropped_{0}, sent_{0}, send_errors_{0}, replays_{0};
};

// For `moeserve serve`: the publisher `--kv-events-config` asks for on data-parallel rank
// `dp_rank`, or a null pointer when events are disabled (empty JSON included).
StatusOr<std::unique_ptr<ZmqKvEventPublisher>> make_kv_event_publisher(
    std::string_view kv_events_config_json, int dp_rank);

}  // namespace moeserve::kv_events
