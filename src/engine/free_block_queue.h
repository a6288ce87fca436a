// KV-cache blocks and the free-block queue (vLLM V1 KVCacheBlock / FreeKVCacheBlockQueue).
//
// The queue is an intrusive doubly linked list with fake head and tail nodes, so that a
// block can be removed from the middle in O(1) when a prefix-cache hit "touches" it.
// Order is eviction order: the front is the least recently freed block and is allocated
// (and its cached hash evicted) first; freed blocks are appended at the tail.
//
// Thread-safety: none; owned by the BlockPool, used by the engine loop only.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/status.h"
#include "engine/block_hash.h"

namespace moeserve::engine {

struct KVCacheBlock {
  int32_t block_id = 0;
  int32_t ref_cnt = 0;
  // Set once the block is full and cached; kept after free until evicted.
  std::optional<BlockHash> block_hash;
  // Block 0: permanently allocated placeholder, never freed or cached.
  bool is_null = false;
  // Free-list links; both null while the block is not in the free queue.
  KVCacheBlock* prev_free = nullptr;
  KVCacheBlock* next_free = nullptr;
};

class FreeKVCacheBlockQueue {
 public:
  // Links `blocks` in the given order (vLLM: ordered by block id).
  explicit FreeKVCacheBlockQueue(const std::vector<KVCacheBlock*>& blocks) {
    head_.next_free = &tail_;
    tail_.prev_free = &head_;
    for (KVCacheBlock* b : blocks) append(b);
  }
  FreeKVCacheBlockQueue(const FreeKVCacheBlockQueue&) = delete;
  FreeKVCacheBlockQueue& operator=(const FreeKVCacheBlockQueue&) = delete;

  int32_t num_free_blocks() const { return num_free_blocks_; }

  // Pops the least recently freed block. Contract: the queue is not empty.
  KVCacheBlock* popleft() {
    MS_CHECK(num_free_blocks_ > 0);
    KVCacheBlock* b = head_.next_free;
    remove(b);
    return b;
  }

  // Pops `n` blocks from the front. Contract: n <= num_free_blocks().
  std::vector<KVCacheBlock*> popleft_n(int32_t n) {
    MS_CHECK(n <= num_free_blocks_);
    std::vector<KVCacheBlock*> out;
    out.reserve(n);
    for (int32_t i = 0; i < n; ++i) out.push_back(popleft());
    return out;
  }

  // Unlinks `b` in O(1). Contract: `b` is in this queue.
  void remove(KVCacheBlock* b) {
    MS_CHECK(b->prev_free != nullptr && b->next_free != nullptr);
    b->prev_free->next_free = b->next_free;
    b->next_free->prev_free = b->prev_free;
    b->prev_free = nullptr;
    b->next_free = nullptr;
    --num_free_blocks_;
  }

  // Appends `b` at the tail (most recently freed). Contract: `b` is not in the queue.
  void append(KVCacheBlock* b) {
    MS_CHECK(b->prev_free == nullptr && b->next_free == nullptr);
    KVCacheBlock* last = tail_.prev_free;
    last->next_free = b;
    b->prev_free = last;
    b->next_free = &tail_;
    tail_.prev_free = b;
    ++num_free_blocks_;
  }

  // Front-to-back snapshot (tests, debugging).
  std::vector<KVCacheBlock*> get_all_free_blocks() const {
    std::vector<KVCacheBlock*> out;
    for (KVCacheBlock* b = head_.next_free; b != &tail_; b = b->next_free) out.push_back(b);
    return out;
  }

 private:
  KVCacheBlock head_;
  KVCacheBlock tail_;
  int32_t num_free_blocks_ = 0;
};

}  // namespace moeserve::engine
