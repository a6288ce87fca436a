#include "tokenizer/incremental_decoder.h"

#include "tokenizer/utf8.h"

namespace moeserve {

std::string IncrementalDecoder::push(int32_t id) {
  std::string out;
  if (tokenizer_->id_to_token(id).empty()) return out;
  if (skip_special_tokens_ && tokenizer_->is_special(id)) return out;
  if (tokenizer_->joins_with_spaces() && emitted_token_) pending_.push_back(' ');
  pending_.append(tokenizer_->token_bytes(id));
  emitted_token_ = true;
  const size_t consumed = utf8_append_lossy(pending_, /*final=*/false, &out);
  pending_.erase(0, consumed);
  return out;
}

std::string IncrementalDecoder::flush() {
  std::string out;
  utf8_append_lossy(pending_, /*final=*/true, &out);
  pending_.clear();
  return out;
}

}  // namespace moeserve
