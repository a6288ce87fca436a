// Lexer for the Jinja subset used by Hugging Face chat templates.
//
// Splits template source into text and tag tokens, applying Jinja2's whitespace rules as
// transformers configures them: `{%-`/`-%}` (and the `{{`/`{#` forms) strip all whitespace
// on that side, trim_blocks drops the first newline after a block or comment tag,
// lstrip_blocks drops spaces and tabs before a block or comment tag that starts its line,
// `+` disables either, and one trailing newline of the source is dropped
// (keep_trailing_newline=False). Comments vanish; `{% raw %}…{% endraw %}` becomes text.
//
// Thread-safety: stateless free function.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace moeserve::jinja {

enum class TokenKind {
  kText,
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,  // text holds the unescaped value
  kInt,
  kFloat,
  kOp,  // text holds the operator: + - * / // % ** ~ == != < > <= >= = ( ) [ ] { } , . : |
  kEof,
};

struct Token {
  TokenKind kind = TokenKind::kEof;
  std::string text;
  int64_t int_value = 0;
  double float_value = 0.0;
  size_t pos = 0;  // byte offset into the source
};

struct LexOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
  bool keep_trailing_newline = false;
};

// Tokenizes `source`. The result always ends with a kEof token. Errors (unterminated tag,
// string or comment; stray character) carry the line and column.
StatusOr<std::vector<Token>> lex(std::string_view source, const LexOptions& options = {});

// "line L, column C" (1-based) of byte offset `pos` in `source`.
std::string describe_position(std::string_view source, size_t pos);

}  // namespace moeserve::jinja
