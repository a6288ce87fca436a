// Decoding vLLM KV-cache event messages (engine/kv_event_publisher.h has the wire format) into
// plain structs, for routers that keep a prefix index per engine. Knows nothing of the engine:
// the library moeserve_kv_events (this file and kv_event_subscriber.h) depends only on core,
// msgpack and ZMQ.
//
// Accepted payloads:
//  - msgspec array_like (what moeserve and vLLM up to the array_like change send):
//    [ts, events, data_parallel_rank?], each event [tag, fields...] in declaration order;
//    trailing optional fields may be missing and extra trailing fields are ignored.
//  - msgspec map encoding (current upstream vLLM): {"ts", "events", "data_parallel_rank"},
//    each event a map with its tag under "type" and its fields by name.
// Block hashes may be integers (uint64, or int64 read as its two's-complement bits) or bytes
// (the last 8 bytes, big-endian, as llm-d-kv-cache does). Events with an unknown tag are
// skipped and counted. Malformed input is an InvalidArgument error, never a crash.
//
// Thread-safety: all functions are pure and may be called concurrently.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/status.h"

namespace moeserve::kv_events {

struct DecodedBlockStored {
  std::vector<uint64_t> block_hashes;
  std::optional<uint64_t> parent_block_hash;
  std::vector<int32_t> token_ids;
  int64_t block_size = 0;
  std::optional<int64_t> lora_id;
  std::optional<std::string> medium;
  std::optional<std::string> lora_name;
};

struct DecodedBlockRemoved {
  std::vector<uint64_t> block_hashes;
  std::optional<std::string> medium;
};

struct DecodedAllBlocksCleared {};

using DecodedKvEvent =
    std::variant<DecodedBlockStored, DecodedBlockRemoved, DecodedAllBlocksCleared>;

struct DecodedKvEventBatch {
  double ts = 0.0;  // Unix seconds
  std::vector<DecodedKvEvent> events;
  std::optional<int64_t> data_parallel_rank;
  int64_t skipped_events = 0;  // unknown tags
};

// One ZMQ message: [topic, seq (8-byte big-endian), payload].
struct KvEventMessage {
  std::string topic;
  uint64_t seq = 0;
  DecodedKvEventBatch batch;
};

// "kv@<pod>@<model>" (llm-d's topic form); model is everything after the second '@'.
struct KvTopic {
  std::string pod_id;
  std::string model;
};
StatusOr<KvTopic> parse_kv_topic(std::string_view topic);

StatusOr<DecodedKvEventBatch> decode_kv_event_payload(std::string_view payload);
StatusOr<KvEventMessage> decode_kv_event_message(std::span<const std::string> frames);

}  // namespace moeserve::kv_events
