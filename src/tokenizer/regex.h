// Regex: a compiled PCRE2 pattern (UTF + UCP, JIT-compiled when the platform supports it) for
// the tokenizer's pre-tokenizer patterns. Subjects may hold invalid UTF-8: the pattern is
// compiled with PCRE2_MATCH_INVALID_UTF, so invalid bytes simply never match.
// Thread-safety: a compiled Regex is immutable; find_all may be called from many threads at
// once (match data is per thread). Copies share the compiled code.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace moeserve {

class Regex {
 public:
  // InvalidArgument with PCRE2's message and the offset of the error in `pattern`.
  static StatusOr<Regex> compile(std::string_view pattern);

  // Appends the [begin, end) byte ranges of the successive non-overlapping, non-empty matches
  // of the pattern in `subject` (scanning left to right, as Rust's find_iter does; empty
  // matches are skipped) to *out.
  void find_all(std::string_view subject, std::vector<std::pair<size_t, size_t>>* out) const;

  const std::string& pattern() const { return pattern_; }

 private:
  struct Code;
  Regex(std::shared_ptr<const Code> code, std::string pattern)
      : code_(std::move(code)), pattern_(std::move(pattern)) {}

  std::shared_ptr<const Code> code_;
  std::string pattern_;
};

}  // namespace moeserve
