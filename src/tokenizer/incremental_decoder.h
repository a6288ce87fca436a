// IncrementalDecoder: streaming detokenization for SSE output. Each push() returns only text
// that is final: a multi-byte UTF-8 character split across tokens is held back until its last
// byte arrives, so no chunk ever ends in half a character. Invalid byte sequences become U+FFFD
// as soon as they are known to be invalid, and flush() turns a still-incomplete tail into
// U+FFFD. The concatenation of every push() and the final flush() equals
// Tokenizer::decode(all ids, skip_special_tokens) exactly.
// Thread-safety: one decoder per sequence, used by one thread at a time; the Tokenizer must
// outlive it.
#pragma once

#include <cstdint>
#include <string>

#include "tokenizer/tokenizer.h"

namespace moeserve {

class IncrementalDecoder {
 public:
  IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
      : tokenizer_(&tokenizer), skip_special_tokens_(skip_special_tokens) {}

  // Adds one generated token; returns the newly complete text (possibly empty).
  std::string push(int32_t id);
  // Ends the stream: returns whatever is still held back, repaired with U+FFFD.
  std::string flush();

  // Bytes currently held back (at most 3: an incomplete UTF-8 character).
  size_t num_pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_tokens_;
  bool emitted_token_ = false;  // for decoders that join tokens with spaces
  std::string pending_;
};

}  // namespace moeserve
