// KV-cache events (vLLM's vllm/distributed/kv_events.py): what an engine's prefix cache gained
// or lost, so that a router can keep a precise prefix index. One set of structs for both sides:
// the engine's block pool produces them, the publisher encodes them (kv_event_codec.h), and the
// subscriber and replay client decode into them.
//
// Block hashes are vLLM's integer form (VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES): the low 64 bits of
// the engine's block hash. Optional fields are absent when the producer does not know them; the
// publisher fills `medium` with its own before encoding.
//
// Thread-safety: plain data. A KvEventSink is called by one thread (the producer's); see each
// implementation.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace moeserve::kv_events {

// New full blocks entered the prefix cache. `token_ids` covers all of them in order
// (block_hashes.size() * block_size ids); `parent_block_hash` is the hash of the block before
// the first one, nullopt for a prompt's first block.
struct BlockStored {
  std::vector<uint64_t> block_hashes;
  std::optional<uint64_t> parent_block_hash;
  std::vector<int32_t> token_ids;
  int64_t block_size = 0;
  std::optional<int64_t> lora_id;
  std::optional<std::string> medium;  // "GPU", "CPU", ...
  std::optional<std::string> lora_name;

  friend bool operator==(const BlockStored&, const BlockStored&) = default;
};

// Blocks were evicted from the prefix cache.
struct BlockRemoved {
  std::vector<uint64_t> block_hashes;
  std::optional<std::string> medium;

  friend bool operator==(const BlockRemoved&, const BlockRemoved&) = default;
};

// The whole prefix cache was reset.
struct AllBlocksCleared {
  friend bool operator==(const AllBlocksCleared&, const AllBlocksCleared&) = default;
};

using KvCacheEvent = std::variant<BlockStored, BlockRemoved, AllBlocksCleared>;

// vLLM's KVEventBatch: the events of one engine step.
struct KvEventBatch {
  double ts = 0.0;  // Unix seconds
  std::vector<KvCacheEvent> events;
  std::optional<int64_t> data_parallel_rank;
  int64_t skipped_events = 0;  // decoding only: events with an unknown tag (not encoded)
};

// Where a producer reports events (the ZMQ publisher is one; engine/kv_events.h has a buffer).
// Batching: the producer calls end_step() once after every step, so a sink that ships events in
// batches (vLLM's KVEventBatch per scheduler step) knows where a step ends. Sinks that keep
// events one by one ignore it.
class KvEventSink {
 public:
  virtual ~KvEventSink() = default;
  virtual void publish(KvCacheEvent event) = 0;
  // The step that produced the events published since the last call is over.
  virtual void end_step() {}
};

}  // namespace moeserve::kv_events
