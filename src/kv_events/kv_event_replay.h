// Client side of vLLM's KV-event replay protocol (vllm/distributed/kv_events.py): a DEALER
// connects to the publisher's ROUTER replay socket, sends [b"", start_seq as 8-byte big-endian]
// and receives every buffered batch with seq >= start_seq as [b"", seq (8 bytes), payload],
// then the end marker [b"", 0xFFFFFFFFFFFFFFFF, b""].
//
// Thread-safety: a pure function; each call opens and closes its own socket, so calls may run
// concurrently (each on its own thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "kv_events/kv_event_codec.h"

namespace moeserve::kv_events {

struct ReplayedBatch {
  uint64_t seq = 0;
  KvEventBatch batch;
};

// Asks `replay_endpoint` for the batches with start_seq <= seq < end_seq, in order. Batches the
// publisher no longer buffers are simply absent (the caller checks the first seq). Errors:
// Unavailable when nothing (or no end marker) arrives within `timeout`, InvalidArgument for a
// malformed answer. Never blocks longer than `timeout` in total.
StatusOr<std::vector<ReplayedBatch>> request_replay(const std::string& replay_endpoint,
                                                    uint64_t start_seq, uint64_t end_seq,
                                                    std::chrono::milliseconds timeout);

}  // namespace moeserve::kv_events
