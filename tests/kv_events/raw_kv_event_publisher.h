// Test helper: a raw ZMQ PUB socket that sends KV-event messages with sequence numbers the test
// chooses (gaps, restarts), encoded with kv_events' own encoder. Kept here so that tests of
// other layers (the router's feeder) need no ZMQ code of their own.
// Thread-safety: one thread.
#pragma once

#include <zmq.h>

#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "kv_events/kv_event_codec.h"

namespace moeserve::kv_events::testing {

class RawKvEventPublisher {
 public:
  // Binds an ephemeral loopback port.
  RawKvEventPublisher() {
    ctx_ = zmq_ctx_new();
    sock_ = zmq_socket(ctx_, ZMQ_PUB);
    const int zero = 0;
    zmq_setsockopt(sock_, ZMQ_LINGER, &zero, sizeof(zero));
    EXPECT_EQ(zmq_bind(sock_, "tcp://127.0.0.1:*"), 0);
    char buf[256];
    size_t len = sizeof(buf);
    zmq_getsockopt(sock_, ZMQ_LAST_ENDPOINT, buf, &len);
    endpoint_.assign(buf, len - 1);
  }
  ~RawKvEventPublisher() {
    zmq_close(sock_);
    zmq_ctx_term(ctx_);
  }
  RawKvEventPublisher(const RawKvEventPublisher&) = delete;
  RawKvEventPublisher& operator=(const RawKvEventPublisher&) = delete;

  const std::string& endpoint() const { return endpoint_; }

  // One batch (ts 1.0, data-parallel rank 0) as message number `seq`; events without a medium
  // get "GPU", as the publisher's.
  void send(const std::string& topic, uint64_t seq, std::vector<KvCacheEvent> events) {
    KvEventBatch batch;
    batch.ts = 1.0;
    batch.data_parallel_rank = 0;
    for (KvCacheEvent& e : events) {
      if (auto* s = std::get_if<BlockStored>(&e); s != nullptr && !s->medium) s->medium = "GPU";
      if (auto* r = std::get_if<BlockRemoved>(&e); r != nullptr && !r->medium) r->medium = "GPU";
    }
    batch.events = std::move(events);
    const std::string seq_bytes = encode_kv_event_seq(seq);
    const std::string payload = encode_kv_event_batch(batch);
    zmq_send(sock_, topic.data(), topic.size(), ZMQ_SNDMORE);
    zmq_send(sock_, seq_bytes.data(), seq_bytes.size(), ZMQ_SNDMORE);
    zmq_send(sock_, payload.data(), payload.size(), 0);
  }

 private:
  void* ctx_ = nullptr;
  void* sock_ = nullptr;
  std::string endpoint_;
};

}  // namespace moeserve::kv_events::testing
