#include "tokenizer/utf8.h"

namespace moeserve {
namespace {

inline bool is_cont(unsigned char c) { return (c & 0xC0) == 0x80; }

// Length of the longest prefix of s[pos..] that is a valid beginning of a well-formed
// character (Unicode Table 3-7), and the full length that character would need.
// Returns {matched, needed}; matched == needed means a complete character; matched == 0 means
// the lead byte itself is invalid.
struct PrefixInfo {
  size_t matched;
  size_t needed;
};

PrefixInfo well_formed_prefix(std::string_view s, size_t pos) {
  const auto c0 = static_cast<unsigned char>(s[pos]);
  if (c0 < 0x80) return {1, 1};
  size_t needed;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c0 >= 0xC2 && c0 <= 0xDF) {
    needed = 2;
  } else if (c0 >= 0xE0 && c0 <= 0xEF) {
    needed = 3;
    if (c0 == 0xE0) lo = 0xA0;
    if (c0 == 0xED) hi = 0x9F;
  } else if (c0 >= 0xF0 && c0 <= 0xF4) {
    needed = 4;
    if (c0 == 0xF0) lo = 0x90;
    if (c0 == 0xF4) hi = 0x8F;
  } else {
    return {0, 1};
  }
  size_t matched = 1;
  while (matched < needed && pos + matched < s.size()) {
    const auto c = static_cast<unsigned char>(s[pos + matched]);
    if (matched == 1 ? (c < lo || c > hi) : !is_cont(c)) break;
    ++matched;
  }
  return {matched, needed};
}

}  // namespace

size_t utf8_valid_char_len(std::string_view s, size_t pos) {
  const PrefixInfo p = well_formed_prefix(s, pos);
  return p.matched == p.needed ? p.needed : 0;
}

char32_t utf8_decode_at(std::string_view s, size_t pos, size_t len) {
  const auto b = [&](size_t i) { return static_cast<char32_t>(static_cast<unsigned char>(s[pos + i])); };
  switch (len) {
    case 1: return b(0);
    case 2: return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    case 3: return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    default:
      return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
  }
}

void utf8_append(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t utf8_append_lossy(std::string_view bytes, bool final, std::string* out) {
  size_t pos = 0;
  size_t run_start = 0;  // start of the pending run of valid bytes not yet copied
  while (pos < bytes.size()) {
    const PrefixInfo p = well_formed_prefix(bytes, pos);
    if (p.matched == p.needed) {
      pos += p.needed;
      continue;
    }
    out->append(bytes.substr(run_start, pos - run_start));
    if (pos + p.matched == bytes.size() && p.matched > 0 && !final) {
      return pos;  // an incomplete but so far valid character: wait for more bytes
    }
    utf8_append(kReplacementChar, out);
    pos += p.matched == 0 ? 1 : p.matched;
    run_start = pos;
  }
  out->append(bytes.substr(run_start, pos - run_start));
  return pos;
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  utf8_append_lossy(bytes, /*final=*/true, &out);
  return out;
}

}  // namespace moeserve
