// KV-cache events (vLLM's vllm/distributed/kv_events.py): what the prefix cache gained or
// lost, so that a router can keep a precise prefix index. The BlockPool reports them to
// a KVEventSink; a ZMQ/msgpack publisher is one such sink, KVEventBuffer another.
//
// Thread-safety: sinks are called on the engine-loop thread that mutates the BlockPool.
// KVEventBuffer is not synchronised; drain it on that thread.
//
// Batching: the engine calls end_step() once after every engine-loop iteration, so a sink
// that ships events in batches (vLLM's KVEventBatch per scheduler step) knows where a step
// ends. Sinks that keep events one by one ignore it.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <variant>
#include <vector>

#include "engine/block_hash.h"

namespace moeserve::engine {

// New full blocks entered the prefix cache. `token_ids` covers all of them in order
// (block_hashes.size() * block_size ids); `parent_block_hash` is the hash of the block
// before the first one, nullopt for a prompt's first block.
struct BlockStored {
  std::vector<BlockHash> block_hashes;
  std::optional<BlockHash> parent_block_hash;
  std::vector<int32_t> token_ids;
  int32_t block_size = 0;
};

// Blocks were evicted from the prefix cache.
struct BlockRemoved {
  std::vector<BlockHash> block_hashes;
};

// The whole prefix cache was reset.
struct AllBlocksCleared {};

using KVCacheEvent = std::variant<BlockStored, BlockRemoved, AllBlocksCleared>;

class KVEventSink {
 public:
  virtual ~KVEventSink() = default;
  virtual void publish(KVCacheEvent event) = 0;
  // The engine step that produced the events published since the last call is over.
  virtual void end_step() {}
};

// Collects events until taken (vLLM's BlockPool.take_events()).
class KVEventBuffer final : public KVEventSink {
 public:
  void publish(KVCacheEvent event) override { events_.push_back(std::move(event)); }
  std::vector<KVCacheEvent> take_events() { return std::exchange(events_, {}); }

 private:
  std::vector<KVCacheEvent> events_;
};

}  // namespace moeserve::engine
