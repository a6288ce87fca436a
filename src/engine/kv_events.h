// The engine's side of KV-cache events: the BlockPool reports what the prefix cache gained or
// lost to a KVEventSink. The events and the sink interface are kv_events/kv_event.h (one set of
// structs for the engine, the wire format and the router); the ZMQ publisher is
// kv_events/kv_event_publisher.h, and KVEventBuffer below another sink.
//
// Hashes: the BlockPool reports BlockHash::to_u64() of each block hash (vLLM's integer form).
//
// Thread-safety: sinks are called on the engine-loop thread that mutates the BlockPool.
// KVEventBuffer is not synchronised; drain it on that thread.
//
// Batching: the engine calls end_step() once after every engine-loop iteration.
#pragma once

#include <utility>
#include <vector>

#include "kv_events/kv_event.h"

namespace moeserve::engine {

using kv_events::AllBlocksCleared;
using kv_events::BlockRemoved;
using kv_events::BlockStored;
using KVCacheEvent = kv_events::KvCacheEvent;
using KVEventSink = kv_events::KvEventSink;

// Collects events until taken (vLLM's BlockPool.take_events()).
class KVEventBuffer final : public KVEventSink {
 public:
  void publish(KVCacheEvent event) override { events_.push_back(std::move(event)); }
  std::vector<KVCacheEvent> take_events() { return std::exchange(events_, {}); }

 private:
  std::vector<KVCacheEvent> events_;
};

}  // namespace moeserve::engine
