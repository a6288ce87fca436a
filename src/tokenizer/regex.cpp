#include "tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer/utf8.h"

namespace moeserve {

struct Regex::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Code() { pcre2_code_free(code); }
};

namespace {

std::string pcre2_message(int error_code) {
  PCRE2_UCHAR buf[256];
  const int n = pcre2_get_error_message(error_code, buf, sizeof(buf));
  if (n < 0) return absl::StrCat("PCRE2 error ", error_code);
  return std::string(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

// One ovector pair is enough: only the whole match is used. The match data is per thread
// because pcre2_match writes into it; it is sized for any pattern (captures beyond the first
// pair are simply not recorded).
pcre2_match_data* thread_match_data() {
  struct Holder {
    pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
    ~Holder() { pcre2_match_data_free(md); }
  };
  thread_local Holder holder;
  return holder.md;
}

}  // namespace

StatusOr<Regex> Regex::compile(std::string_view pattern) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  const uint32_t options = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   options, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("regex /", std::string(pattern), "/ does not compile: ",
                                                   pcre2_message(error_code), " at offset ",
                                                   error_offset));
  }
  auto holder = std::make_shared<Code>();
  holder->code = code;
  uint32_t jit_available = 0;
  pcre2_config(PCRE2_CONFIG_JIT, &jit_available);
  if (jit_available != 0) holder->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return Regex(std::move(holder), std::string(pattern));
}

void Regex::find_all(std::string_view subject,
                     std::vector<std::pair<size_t, size_t>>* out) const {
  pcre2_match_data* md = thread_match_data();
  const auto* data = reinterpret_cast<PCRE2_SPTR>(subject.data());
  size_t start = 0;
  uint32_t extra = 0;  // PCRE2_NO_JIT after the JIT ran out of stack
  while (start < subject.size()) {
    int rc = pcre2_match(code_->code, data, subject.size(), start, extra, md, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && extra == 0) {
      extra = PCRE2_NO_JIT;  // the interpreter keeps its backtracking state on the heap
      continue;
    }
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
      // A resource limit (match/depth/heap) on hostile input: treat the rest as unmatched
      // rather than fail the request.
      return;
    }
    if (rc == PCRE2_ERROR_NOMATCH) return;
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t b = ov[0], e = ov[1];
    if (e > b) {
      out->emplace_back(b, e);
      start = e;
    } else {
      if (b >= subject.size()) return;
      start = b + utf8_step(subject, b);
    }
  }
}

}  // namespace moeserve
