// vLLM's KV-event wire format, both directions: encoding a batch (what the publisher sends) and
// decoding one (what the subscriber and the replay client read), into and out of the structs of
// kv_event.h.
//
// A message is three ZMQ frames: [topic, sequence number as 8-byte big-endian uint64, payload].
// The payload is vLLM's KVEventBatch as msgspec writes it, in one of two encodings:
//  - array (msgspec `array_like=True`; what moeserve publishes and what llm-d-kv-cache decodes:
//    EventBatch and BlockStored are `msgpack:",array"` structs there): every struct is a msgpack
//    array of its fields in declaration order, tagged-union members carry their tag first:
//      batch            = [ts: float64, events: array, data_parallel_rank: int|nil]
//      BlockStored      = ["BlockStored", block_hashes: [uint64...], parent_block_hash:
//                          uint64|nil, token_ids: [int...], block_size: int, lora_id: int|nil,
//                          medium: str|nil(, lora_name: str when set)]
//      BlockRemoved     = ["BlockRemoved", block_hashes: [uint64...], medium: str|nil]
//      AllBlocksCleared = ["AllBlocksCleared"]
//  - map (current upstream vLLM, which no longer sets array_like): the same fields as maps keyed
//    by field name, in the same order; each event carries its tag under "type" first:
//      {"ts", "events", "data_parallel_rank"}, {"type": "BlockStored", "block_hashes", ...}.
// Encoding writes every block hash as msgpack uint64 (0xcf + 8 bytes), never shortened: msgspec
// reads any int width, and Go's msgpack decoder in llm-d-kv-cache only accepts hashes that decode
// to uint64/int64. Other integers use their shortest form, floats float64, strings str.
//
// Decoding accepts both encodings; trailing optional fields may be missing and extra trailing
// fields are ignored. Block hashes may be integers (uint64, or int64 read as its two's-complement
// bits) or bytes (the last 8 bytes, big-endian, as llm-d-kv-cache does). Events with an unknown
// tag are skipped and counted. Malformed input is an InvalidArgument error, never a crash.
//
// tests/kv_events/testdata holds golden payloads of both encodings written by an independent
// encoder (Python's msgpack).
//
// Thread-safety: all functions are pure and may be called concurrently.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/status.h"
#include "kv_events/kv_event.h"

namespace moeserve::kv_events {

enum class KvEventEncoding { kArray, kMap };

// The payload of one batch. batch.skipped_events is not encoded.
std::string encode_kv_event_batch(const KvEventBatch& batch,
                                  KvEventEncoding encoding = KvEventEncoding::kArray);

// The sequence frame: `seq` as 8 bytes, big-endian.
std::string encode_kv_event_seq(uint64_t seq);

// One ZMQ message: [topic, seq (8-byte big-endian), payload].
struct KvEventMessage {
  std::string topic;
  uint64_t seq = 0;
  KvEventBatch batch;
};

// "kv@<pod>@<model>" (llm-d's topic form); model is everything after the second '@'.
struct KvTopic {
  std::string pod_id;
  std::string model;
};
StatusOr<KvTopic> parse_kv_topic(std::string_view topic);

StatusOr<KvEventBatch> decode_kv_event_payload(std::string_view payload);
StatusOr<KvEventMessage> decode_kv_event_message(std::span<const std::string> frames);

}  // namespace moeserve::kv_events
