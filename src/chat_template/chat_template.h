// Hugging Face chat templates (tokenizer_config.json "chat_template"), rendered the way
// transformers' apply_chat_template renders them: Jinja2 with trim_blocks and
// lstrip_blocks, the variables messages / add_generation_prompt / bos_token / eos_token
// plus any extra keyword arguments (tools, enable_thinking, …), and raise_exception().
//
// The interpreter covers the Jinja subset real chat templates use (see jinja_parser.h and
// jinja_builtins.h for the list). Any template text and any messages JSON yield either a
// string or an error Status; nothing aborts.
//
// Dict order: nlohmann::json sorts object keys, so dicts from it iterate (and `tojson`) in
// sorted order; the nlohmann::ordered_json overloads keep document order, as Python does.
//
// Thread-safety: a parsed ChatTemplate is immutable; render() may run concurrently from any
// number of threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"
#include "nlohmann/json.hpp"

namespace moeserve {

class ChatTemplate {
 public:
  // Parses `source`; syntax errors name the line and column.
  static StatusOr<ChatTemplate> parse(std::string_view source);

  // Renders with the keys of `context` (a JSON object) as template variables.
  StatusOr<std::string> render(const nlohmann::json& context) const;
  // Same, keeping the key order of `context` (what tojson and dict iteration see), as
  // Python does; use this overload for byte-exact parity with transformers.
  StatusOr<std::string> render(const nlohmann::ordered_json& context) const;

  const std::string& source() const;

 private:
  struct Impl;
  explicit ChatTemplate(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

// transformers' apply_chat_template(messages, add_generation_prompt=…, **extra_kwargs) with
// the tokenizer's bos/eos tokens. `messages` must be a JSON array; `extra_kwargs` an object
// (or null) whose keys become variables too (they cannot override the four named ones).
StatusOr<std::string> apply_chat_template(const ChatTemplate& tmpl, const nlohmann::json& messages,
                                          bool add_generation_prompt, const std::string& bos_token,
                                          const std::string& eos_token,
                                          const nlohmann::json& extra_kwargs);
StatusOr<std::string> apply_chat_template(const ChatTemplate& tmpl,
                                          const nlohmann::ordered_json& messages,
                                          bool add_generation_prompt, const std::string& bos_token,
                                          const std::string& eos_token,
                                          const nlohmann::ordered_json& extra_kwargs);

}  // namespace moeserve
