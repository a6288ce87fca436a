// A ZMQ SUB client for vLLM-format KV-cache events (llm-d-kv-cache's zmq_subscriber, in C++):
// subscribes with a topic prefix (default "kv@"), decodes every message with
// kv_events/kv_event_codec.h on a background thread and hands it to a callback, with sequence
// gap detection per publisher stream.
//
// Endpoints follow the publisher's rule: one containing '*' is bound (a central collector,
// engines connect to it), any other is connected to (one per engine). A publisher stream is
// identified by (topic, data_parallel_rank), since vLLM's data-parallel ranks share a topic
// and each numbers its own batches from 0.
//
// Thread-safety: the callback runs on the subscriber's thread, one message at a time, in
// arrival order; it must not call the subscriber's destructor. stats() and endpoints() may be
// called from any thread. The destructor stops the thread (it never waits for a publisher).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "kv_events/kv_event_codec.h"

namespace moeserve::kv_events {

struct KvEventSubscriberOptions {
  std::vector<std::string> endpoints;
  std::string topic_filter = "kv@";
  int rcvhwm = 100000;
};

// One decoded message and what the sequence numbers say about it.
struct KvEventDelivery {
  KvEventMessage message;
  bool first_of_stream = false;     // first message seen from this (topic, rank)
  uint64_t missed_before = 0;       // batches lost just before this one (a gap in seq)
  bool sequence_restarted = false;  // seq went backwards: the publisher restarted
};

struct KvEventSubscriberStats {
  uint64_t messages = 0;        // decoded and delivered
  uint64_t decode_errors = 0;   // dropped
  uint64_t gaps = 0;            // deliveries with missed_before > 0
  uint64_t missed_batches = 0;  // sum of missed_before
};

class KvEventSubscriber {
 public:
  using Callback = std::function<void(const KvEventDelivery&)>;

  // Opens the socket (bind/connect every endpoint) and starts the thread.
  static StatusOr<std::unique_ptr<KvEventSubscriber>> start(KvEventSubscriberOptions options,
                                                            Callback callback);
  ~KvEventSubscriber();
  KvEventSubscriber(const KvEventSubscriber&) = delete;
  KvEventSubscriber& operator=(const KvEventSubscriber&) = delete;

  // The endpoints in use (bound wildcard ports resolved), in the order given.
  const std::vector<std::string>& endpoints() const { return endpoints_; }
  KvEventSubscriberStats stats() const;

 private:
  KvEventSubscriber() = default;
  void run();

  Callback callback_;
  std::vector<std::string> endpoints_;
  void* ctx_ = nullptr;
  void* sub_ = nullptr;  // owned by the thread once started
  std::thread thread_;
  std::atomic<uint64_t> messages_{0}, decode_errors_{0}, gaps_{0}, missed_{0};
};

}  // namespace moeserve::kv_events
