// Incremental parser for Server-Sent Events (text/event-stream) as OpenAI-compatible servers
// send them: bytes arrive in arbitrary pieces; complete events come out in order.
//
// Follows the WHATWG rules that matter here: events end at a blank line; "data:" lines
// (one optional space after the colon) are joined with '\n'; comment lines (":…") and other
// fields are ignored; CR, LF and CRLF all end lines, even when CR and LF arrive in
// different pieces.
//
// Thread-safety: one parser per stream, used from one thread at a time.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace moeserve::bench {

class SseParser {
 public:
  // Appends bytes; returns the data payloads of the events they complete.
  std::vector<std::string> feed(std::string_view bytes);
  // Payload of a trailing event not closed by a blank line (call at end of stream).
  std::vector<std::string> finish();

 private:
  void process_line(std::string_view line, std::vector<std::string>& out);

  std::string line_;
  std::string data_;
  bool has_data_ = false;
  bool last_was_cr_ = false;
};

}  // namespace moeserve::bench
