// The model runner's input for one step: many sequences, each contributing a chunk of new
// tokens (a prefill chunk or one decode token) whose KV latents go to the paged cache.
// Plain data, built once per step by the caller and read by every layer.
#pragma once

#include <cstdint>
#include <vector>

namespace moeserve {

struct SeqChunk {
  int64_t token_begin = 0;        // first row of this chunk in ForwardBatch::tokens
  int64_t num_tokens = 0;         // rows in this chunk (>= 1)
  int64_t num_computed = 0;       // tokens already in the cache; the chunk covers positions
                                  // [num_computed, num_computed + num_tokens)
  int64_t block_table_begin = 0;  // into ForwardBatch::block_tables
  int64_t num_blocks = 0;         // must cover num_computed + num_tokens positions
  bool need_logits = false;       // produce logits for the chunk's last token
};

struct ForwardBatch {
  std::vector<int32_t> tokens;        // [T]
  std::vector<SeqChunk> seqs;         // chunks in row order
  std::vector<int32_t> block_tables;  // flat, per sequence slice
  // Expert parallel: the largest num_tokens() of this step over every rank, when the caller
  // already agreed on it with its peers (the engine's DP coordinator); -1: unknown.
  int64_t max_tokens_across_dp = -1;

  int64_t num_tokens() const { return static_cast<int64_t>(tokens.size()); }
  int64_t num_logit_rows() const {
    int64_t n = 0;
    for (const auto& s : seqs) n += s.need_logits ? 1 : 0;
    return n;
  }
  // Appends a chunk; blocks are the sequence's whole block table.
  void add(const std::vector<int32_t>& chunk_tokens, int64_t num_computed,
           const std::vector<int32_t>& blocks, bool need_logits) {
    SeqChunk s;
    s.token_begin = num_tokens();
    s.num_tokens = static_cast<int64_t>(chunk_tokens.size());
    s.num_computed = num_computed;
    s.block_table_begin = static_cast<int64_t>(block_tables.size());
    s.num_blocks = static_cast<int64_t>(blocks.size());
    s.need_logits = need_logits;
    tokens.insert(tokens.end(), chunk_tokens.begin(), chunk_tokens.end());
    block_tables.insert(block_tables.end(), blocks.begin(), blocks.end());
    seqs.push_back(s);
  }
};

}  // namespace moeserve
