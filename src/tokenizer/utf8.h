// UTF-8 helpers for the tokenizer: validating iteration over untrusted bytes, encoding, and
// lossy decoding with U+FFFD in the same places as Rust's String::from_utf8_lossy (one
// replacement per maximal invalid subpart, Unicode's "substitution of maximal subparts").
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace moeserve {

inline constexpr char32_t kReplacementChar = 0xFFFD;

// Length in bytes of the well-formed UTF-8 character starting at s[pos], or 0 when the bytes
// there are not a complete well-formed character (invalid, overlong, surrogate, > U+10FFFF, or
// cut off by the end of s). Requires pos < s.size().
size_t utf8_valid_char_len(std::string_view s, size_t pos);

// Length of the step an iterator over possibly invalid UTF-8 takes at s[pos]: the valid
// character's length, or 1 for an invalid byte. Requires pos < s.size().
inline size_t utf8_step(std::string_view s, size_t pos) {
  const size_t n = utf8_valid_char_len(s, pos);
  return n == 0 ? 1 : n;
}

// Decodes the well-formed character of length `len` at s[pos] (len from utf8_valid_char_len).
char32_t utf8_decode_at(std::string_view s, size_t pos, size_t len);

// Appends the UTF-8 encoding of `cp` (must be a Unicode scalar value) to *out.
void utf8_append(char32_t cp, std::string* out);

// Appends `bytes` to *out as valid UTF-8, replacing each maximal invalid subpart by U+FFFD.
// When `final` is false, a trailing sequence that is a proper prefix of some well-formed
// character is not consumed: the function returns how many bytes of `bytes` it consumed, and
// the caller keeps the rest until more bytes arrive. With `final` true everything is consumed.
size_t utf8_append_lossy(std::string_view bytes, bool final, std::string* out);

// Convenience: the whole of `bytes` as valid UTF-8 (final lossy conversion).
std::string utf8_lossy(std::string_view bytes);

}  // namespace moeserve
