// BpeModel: the tokenizer.json "model" of type BPE: a vocabulary, ranked merges, and the
// merge loop that turns one pre-tokenized word (in model space) into token ids.
//
// Semantics follow HF tokenizers' BPE: a word starts as one symbol per character (with
// continuing_subword_prefix on non-initial and end_of_word_suffix on the final character when
// set); characters missing from the vocab become <0xXX> byte tokens with byte_fallback, else
// unk_token (consecutive ones fused with fuse_unk), else are dropped. Adjacent pairs are then
// merged lowest rank first (leftmost first among equal ranks) until no ranked pair remains,
// in O(n log n) with a priority queue over a linked list of symbols. With ignore_merges a
// word that is itself in the vocab maps straight to its id. dropout must be null or 0.
//
// Thread-safety: immutable after construction except for the internal word cache, which is
// sharded and mutex-protected; tokenize() may run on many threads at once.
//
// The word cache (word -> ids) is bounded: kNumCacheShards x kCacheCapacityPerShard entries
// (65,536) of words up to kMaxCachedWordBytes; a full shard is cleared. Its size over every
// BpeModel of the process is cache_entries_in_process() (exported as
// moeserve:tokenizer_cache_entries).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "core/status.h"
#include "tokenizer/tokenizer_json.h"

namespace moeserve {

class BpeModel {
 public:
  // Largest token id accepted from a file (bounds the id -> token table).
  static constexpr int32_t kMaxTokenId = (1 << 24) - 1;

  // `model` is the JSON object at `path` ("model") of the file `fields` describes.
  static StatusOr<BpeModel> from_json(const Json& model, const JsonFields& fields,
                                      std::string_view path);

  // Appends the ids of `word` (model space, may hold invalid UTF-8) to *out.
  void tokenize(std::string_view word, std::vector<int32_t>* out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The vocab entry for `id`, or empty when `id` is not a vocab id.
  std::string_view id_to_token(int32_t id) const;
  // One past the largest vocab id.
  int32_t id_limit() const { return static_cast<int32_t>(id_to_token_.size()); }
  size_t num_merges() const { return merges_.size(); }

  // Entries of the word caches of every BpeModel alive in this process.
  static int64_t cache_entries_in_process();

 private:
  struct Merge {
    uint32_t rank;
    int32_t new_id;
  };
  struct CacheShard {
    absl::Mutex mu;
    absl::flat_hash_map<std::string, std::vector<int32_t>> map ABSL_GUARDED_BY(mu);
  };
  static constexpr size_t kNumCacheShards = 16;
  static constexpr size_t kCacheCapacityPerShard = 4096;
  static constexpr size_t kMaxCachedWordBytes = 256;
  // Keeps the process-wide entry count in step (cache_entries_in_process).
  struct Cache {
    std::array<CacheShard, kNumCacheShards> shards;
    ~Cache();
  };

  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void tokenize_uncached(std::string_view word, std::vector<int32_t>* out) const;

  absl::flat_hash_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  absl::flat_hash_map<uint64_t, Merge> merges_;
  std::optional<int32_t> unk_id_;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::array<std::optional<int32_t>, 256> byte_fallback_ids_;  // "<0xXX>" tokens
  std::unique_ptr<Cache> cache_ = std::make_unique<Cache>();
};

}  // namespace moeserve
