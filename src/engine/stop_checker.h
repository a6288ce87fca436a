// Stop strings over a detokenised text stream (vLLM's StopChecker.check_stop_strings plus
// stream hold-back).
//
// Detection follows vLLM: after each push, stop strings are tried in the order given and
// the first one found wins; only occurrences that end inside the newly pushed text are
// searched (so a stop string split across pushes is found once its last part arrives).
// The output is truncated before the stop string, or after it with
// include_stop_str_in_output.
//
// Streaming: push() returns only text that can no longer change. While the text ends with
// a proper prefix of some stop string, that suffix is held back, so a partial stop string
// never reaches a client; flush() releases it when generation ends for another reason.
// Text is handled as UTF-8 bytes; stop strings match byte-wise, which for valid UTF-8 is
// the same as matching characters.
//
// Thread-safety: none; one checker per output stream.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace moeserve::engine {

struct StopCheckResult {
  std::string text_safe_to_emit;  // new text for the stream
  bool stopped = false;
  std::string stop_reason;  // the matched stop string when stopped
};

class StopChecker {
 public:
  StopChecker(std::vector<std::string> stop, bool include_stop_str_in_output);

  // Appends `new_text`. After a stop, further pushes are ignored.
  StopCheckResult push(std::string_view new_text);
  // Releases any held-back text (generation finished without a stop string).
  std::string flush();

  // All text so far, truncated at the stop string if one matched.
  const std::string& output_text() const { return text_; }
  bool stopped() const { return stopped_; }

 private:
  // Length of the longest suffix of text_ that is a proper prefix of a stop string.
  size_t held_back_length() const;

  std::vector<std::string> stop_;
  bool include_stop_str_;
  std::string text_;
  size_t emitted_ = 0;
  bool stopped_ = false;
};

}  // namespace moeserve::engine
