#include "chat_template/jinja_lexer.h"

#include <cctype>
#include <charconv>
#include <cmath>

namespace moeserve::jinja {

std::string describe_position(std::string_view source, size_t pos) {
  size_t line = 1;
  size_t col = 1;
  for (size_t i = 0; i < pos && i < source.size(); ++i) {
    if (source[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return absl::StrCat("line ", line, ", column ", col);
}

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool is_name_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_';
}
bool is_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

void append_utf8(uint32_t cp, std::string& out) {
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class Lexer {
 public:
  Lexer(std::string_view src, const LexOptions& opts) : src_(src), opts_(opts) {}

  StatusOr<std::vector<Token>> run() {
    if (!opts_.keep_trailing_newline) {
      if (src_.ends_with("\r\n")) {
        src_.remove_suffix(2);
      } else if (src_.ends_with("\n")) {
        src_.remove_suffix(1);
      }
    }
    bool strip_next = false;  // previous tag ended with '-'
    size_t pos = 0;
    while (pos <= src_.size()) {
      size_t start = find_tag(pos);
      std::string text(src_.substr(pos, start - pos));
      if (strip_next) {
        size_t i = 0;
        while (i < text.size() && is_space(text[i])) ++i;
        text.erase(0, i);
        strip_next = false;
      }
      if (start == src_.size()) {
        emit_text(std::move(text), pos);
        break;
      }
      char type = src_[start + 1];  // '{', '%' or '#'
      char sign = start + 2 < src_.size() ? src_[start + 2] : '\0';
      bool line_starting = pos == 0 || src_[pos - 1] == '\n';
      if (sign == '-') {
        size_t end = text.size();
        while (end > 0 && is_space(text[end - 1])) --end;
        text.resize(end);
      } else if (sign != '+' && type != '{' && opts_.lstrip_blocks) {
        size_t nl = text.rfind('\n');
        size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
        if (l_pos > 0 || line_starting) {
          bool only_ws = true;
          for (size_t i = l_pos; i < text.size(); ++i) {
            if (text[i] != ' ' && text[i] != '\t') only_ws = false;
          }
          if (only_ws) text.resize(l_pos);
        }
      }
      emit_text(std::move(text), pos);
      size_t body = start + 2 + ((sign == '-' || (sign == '+' && type != '{')) ? 1 : 0);
      StatusOr<size_t> after = type == '#'   ? lex_comment(start, body, &strip_next)
                               : type == '{' ? lex_tag(start, body, false, &strip_next)
                                             : lex_block(start, body, &strip_next);
      if (!after.ok()) return after.status();
      pos = *after;
    }
    Token eof;
    eof.kind = TokenKind::kEof;
    eof.pos = src_.size();
    tokens_.push_back(std::move(eof));
    return std::move(tokens_);
  }

 private:
  size_t find_tag(size_t from) const {
    for (size_t i = from; i + 1 < src_.size(); ++i) {
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) {
        return i;
      }
    }
    return src_.size();
  }

  Status error(size_t pos, std::string_view msg) const {
    return absl::InvalidArgumentError(absl::StrCat(
        "chat template syntax error at ", describe_position(src_, pos), ": ", std::string(msg)));
  }

  void emit_text(std::string text, size_t pos) {
    if (text.empty()) return;
    Token t;
    t.kind = TokenKind::kText;
    t.text = std::move(text);
    t.pos = pos;
    tokens_.push_back(std::move(t));
  }

  void emit(TokenKind kind, std::string text, size_t pos) {
    Token t;
    t.kind = kind;
    t.text = std::move(text);
    t.pos = pos;
    tokens_.push_back(std::move(t));
  }

  // Position just after a closing tag at `close` (pointing at '%' or '#'), applying
  // trim_blocks unless `keep` ('+' before the close).
  size_t after_block_close(size_t close, bool keep) const {
    size_t p = close + 2;
    if (!keep && opts_.trim_blocks) {
      if (src_.substr(p, 2) == "\r\n") return p + 2;
      if (p < src_.size() && src_[p] == '\n') return p + 1;
    }
    return p;
  }

  StatusOr<size_t> lex_comment(size_t start, size_t body, bool* strip_next) {
    size_t close = src_.find("#}", body);
    if (close == std::string_view::npos) return error(start, "unterminated comment '{#'");
    char before = close > body ? src_[close - 1] : '\0';
    if (before == '-') {
      *strip_next = true;
      return close + 2;
    }
    return after_block_close(close, before == '+');
  }

  StatusOr<size_t> lex_block(size_t start, size_t body, bool* strip_next) {
    // {% raw %} … {% endraw %} is copied verbatim.
    size_t p = body;
    while (p < src_.size() && is_space(src_[p])) ++p;
    if (src_.substr(p, 3) == "raw" && (p + 3 >= src_.size() || !is_name_char(src_[p + 3]))) {
      size_t q = p + 3;
      while (q < src_.size() && is_space(src_[q])) ++q;
      bool minus = q < src_.size() && (src_[q] == '-' || src_[q] == '+');
      bool strip_after_open = minus && src_[q] == '-';
      if (minus) ++q;
      if (src_.substr(q, 2) == "%}") {
        return lex_raw(start, q, strip_after_open, strip_next);
      }
    }
    return lex_tag(start, body, true, strip_next);
  }

  StatusOr<size_t> lex_raw(size_t start, size_t open_close, bool strip_after_open,
                           bool* strip_next) {
    size_t content = strip_after_open ? open_close + 2 : after_block_close(open_close, false);
    size_t search = content;
    while (true) {
      size_t tag = src_.find("{%", search);
      if (tag == std::string_view::npos) return error(start, "unterminated '{% raw %}' block");
      size_t p = tag + 2;
      bool strip_before = p < src_.size() && src_[p] == '-';
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ++p;
      while (p < src_.size() && is_space(src_[p])) ++p;
      if (src_.substr(p, 6) != "endraw") {
        search = tag + 2;
        continue;
      }
      p += 6;
      while (p < src_.size() && is_space(src_[p])) ++p;
      char sign = p < src_.size() ? src_[p] : '\0';
      if (sign == '-' || sign == '+') ++p;
      if (src_.substr(p, 2) != "%}") {
        search = tag + 2;
        continue;
      }
      std::string text(src_.substr(content, tag - content));
      if (strip_after_open) {
        size_t i = 0;
        while (i < text.size() && is_space(text[i])) ++i;
        text.erase(0, i);
      }
      if (strip_before) {
        size_t end = text.size();
        while (end > 0 && is_space(text[end - 1])) --end;
        text.resize(end);
      }
      emit_text(std::move(text), content);
      if (sign == '-') {
        *strip_next = true;
        return p + 2;
      }
      return after_block_close(p, sign == '+');
    }
  }

  // Lexes expression tokens of a {{ }} (is_block=false) or {% %} tag starting at `body`.
  StatusOr<size_t> lex_tag(size_t start, size_t body, bool is_block, bool* strip_next) {
    emit(is_block ? TokenKind::kBlockBegin : TokenKind::kVarBegin, "", start);
    const char close_char = is_block ? '%' : '}';
    size_t p = body;
    while (true) {
      while (p < src_.size() && is_space(src_[p])) ++p;
      if (p >= src_.size()) {
        return error(start, is_block ? "unterminated block tag '{%'" : "unterminated '{{'");
      }
      char c = src_[p];
      // Closing delimiter, with optional '-' or '+' (the latter for blocks only).
      if ((c == '-' || (c == '+' && is_block)) && p + 2 < src_.size() &&
          src_[p + 1] == close_char && src_[p + 2] == '}') {
        emit(is_block ? TokenKind::kBlockEnd : TokenKind::kVarEnd, "", p);
        if (c == '-') {
          *strip_next = true;
          return p + 3;
        }
        return after_block_close(p + 1, true);
      }
      if (c == close_char && p + 1 < src_.size() && src_[p + 1] == '}') {
        emit(is_block ? TokenKind::kBlockEnd : TokenKind::kVarEnd, "", p);
        if (!is_block) return p + 2;
        return after_block_close(p, false);
      }
      if (is_name_start(c)) {
        size_t q = p;
        while (q < src_.size() && is_name_char(src_[q])) ++q;
        emit(TokenKind::kName, std::string(src_.substr(p, q - p)), p);
        p = q;
        continue;
      }
      if (std::isdigit(static_cast<unsigned char>(c))) {
        StatusOr<size_t> q = lex_number(p);
        if (!q.ok()) return q.status();
        p = *q;
        continue;
      }
      if (c == '\'' || c == '"') {
        StatusOr<size_t> q = lex_string(p);
        if (!q.ok()) return q.status();
        p = *q;
        continue;
      }
      static constexpr std::string_view kTwo[] = {"//", "**", "==", "!=", "<=", ">="};
      bool matched = false;
      for (std::string_view op : kTwo) {
        if (src_.substr(p, 2) == op) {
          emit(TokenKind::kOp, std::string(op), p);
          p += 2;
          matched = true;
          break;
        }
      }
      if (matched) continue;
      if (std::string_view("+-*/%~<>=()[]{},.:|").find(c) != std::string_view::npos) {
        emit(TokenKind::kOp, std::string(1, c), p);
        ++p;
        continue;
      }
      return error(p, absl::StrCat("unexpected character '", std::string(1, c), "'"));
    }
  }

  StatusOr<size_t> lex_number(size_t p) {
    size_t q = p;
    while (q < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[q])) || src_[q] == '_'))
      ++q;
    bool is_float = false;
    if (q + 1 < src_.size() && src_[q] == '.' &&
        std::isdigit(static_cast<unsigned char>(src_[q + 1]))) {
      is_float = true;
      ++q;
      while (q < src_.size() && std::isdigit(static_cast<unsigned char>(src_[q]))) ++q;
    }
    if (q < src_.size() && (src_[q] == 'e' || src_[q] == 'E')) {
      size_t r = q + 1;
      if (r < src_.size() && (src_[r] == '+' || src_[r] == '-')) ++r;
      if (r < src_.size() && std::isdigit(static_cast<unsigned char>(src_[r]))) {
        is_float = true;
        q = r;
        while (q < src_.size() && std::isdigit(static_cast<unsigned char>(src_[q]))) ++q;
      }
    }
    std::string text;
    for (size_t i = p; i < q; ++i) {
      if (src_[i] != '_') text += src_[i];
    }
    Token t;
    t.pos = p;
    t.text = text;
    if (is_float) {
      t.kind = TokenKind::kFloat;
      t.float_value = std::strtod(text.c_str(), nullptr);
    } else {
      t.kind = TokenKind::kInt;
      auto res = std::from_chars(text.data(), text.data() + text.size(), t.int_value);
      if (res.ec != std::errc()) return error(p, "integer literal out of range");
    }
    tokens_.push_back(std::move(t));
    return q;
  }

  StatusOr<size_t> lex_string(size_t p) {
    char quote = src_[p];
    std::string out;
    size_t q = p + 1;
    while (true) {
      if (q >= src_.size()) return error(p, "unterminated string literal");
      char c = src_[q];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        ++q;
        continue;
      }
      if (q + 1 >= src_.size()) return error(p, "unterminated string literal");
      char e = src_[q + 1];
      q += 2;
      switch (e) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'v':
          out += '\v';
          break;
        case 'a':
          out += '\a';
          break;
        case '0':
          out += '\0';
          break;
        case '\\':
          out += '\\';
          break;
        case '\'':
          out += '\'';
          break;
        case '"':
          out += '"';
          break;
        case '\n':
          break;  // line continuation
        case 'x':
        case 'u':
        case 'U': {
          size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          uint32_t cp = 0;
          if (q + n > src_.size()) return error(q, "truncated escape sequence");
          for (size_t i = 0; i < n; ++i) {
            char h = src_[q + i];
            if (!std::isxdigit(static_cast<unsigned char>(h))) {
              return error(q, "invalid escape sequence");
            }
            cp = cp * 16 + static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(h))
                                                     ? h - '0'
                                                     : std::tolower(h) - 'a' + 10);
          }
          q += n;
          append_utf8(cp, out);
          break;
        }
        default:  // Python keeps unknown escapes as written
          out += '\\';
          out += e;
      }
    }
    emit(TokenKind::kString, std::move(out), p);
    return q + 1;
  }

  std::string_view src_;
  LexOptions opts_;
  std::vector<Token> tokens_;
};

}  // namespace

StatusOr<std::vector<Token>> lex(std::string_view source, const LexOptions& options) {
  return Lexer(source, options).run();
}

}  // namespace moeserve::jinja
