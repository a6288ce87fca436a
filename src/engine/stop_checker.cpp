#include "engine/stop_checker.h"

#include <algorithm>

namespace moeserve::engine {

StopChecker::StopChecker(std::vector<std::string> stop, bool include_stop_str_in_output)
    : stop_(std::move(stop)), include_stop_str_(include_stop_str_in_output) {
  std::erase_if(stop_, [](const std::string& s) { return s.empty(); });
}

StopCheckResult StopChecker::push(std::string_view new_text) {
  StopCheckResult r;
  if (stopped_ || new_text.empty()) return r;
  text_.append(new_text);
  for (const std::string& s : stop_) {
    // Python: output_text.find(stop, 1 - new_char_count - len(stop)).
    const size_t window = new_text.size() + s.size() - 1;
    const size_t start = text_.size() > window ? text_.size() - window : 0;
    const size_t pos = text_.find(s, start);
    if (pos == std::string::npos) continue;
    text_.resize(include_stop_str_ ? pos + s.size() : pos);
    stopped_ = true;
    r.stopped = true;
    r.stop_reason = s;
    break;
  }
  const size_t safe_end =
      stopped_ ? text_.size() : std::max(emitted_, text_.size() - held_back_length());
  if (safe_end > emitted_) {
    r.text_safe_to_emit = text_.substr(emitted_, safe_end - emitted_);
    emitted_ = safe_end;
  }
  return r;
}

std::string StopChecker::flush() {
  std::string rest = text_.substr(std::min(emitted_, text_.size()));
  emitted_ = text_.size();
  return rest;
}

size_t StopChecker::held_back_length() const {
  size_t best = 0;
  for (const std::string& s : stop_) {
    for (size_t len = std::min(s.size() - 1, text_.size()); len > best; --len) {
      if (std::string_view(text_).substr(text_.size() - len) ==
          std::string_view(s).substr(0, len)) {
        best = len;
        break;
      }
    }
  }
  return best;
}

}  // namespace moeserve::engine
