#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/utf8.h"

namespace moeserve {
namespace {

struct ByteLevelTables {
  std::array<std::string, 256> byte_to_char;
  std::array<int16_t, 324> cp_to_byte;  // code points < 0x144 cover the whole image; -1 = none

  ByteLevelTables() {
    cp_to_byte.fill(-1);
    int next = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const char32_t cp = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + next++);
      utf8_append(cp, &byte_to_char[b]);
      cp_to_byte[cp] = static_cast<int16_t>(b);
    }
  }
};

const ByteLevelTables& tables() {
  static const ByteLevelTables t;
  return t;
}

}  // namespace

std::string_view byte_level_char(uint8_t b) { return tables().byte_to_char[b]; }

void byte_level_encode(std::string_view bytes, std::string* out) {
  const ByteLevelTables& t = tables();
  for (char c : bytes) out->append(t.byte_to_char[static_cast<uint8_t>(c)]);
}

std::optional<uint8_t> byte_level_byte(char32_t cp) {
  const ByteLevelTables& t = tables();
  if (cp >= t.cp_to_byte.size() || t.cp_to_byte[cp] < 0) return std::nullopt;
  return static_cast<uint8_t>(t.cp_to_byte[cp]);
}

bool byte_level_decode_token(std::string_view token, std::string* out) {
  const size_t start = out->size();
  size_t pos = 0;
  while (pos < token.size()) {
    const size_t len = utf8_valid_char_len(token, pos);
    std::optional<uint8_t> b;
    if (len != 0) b = byte_level_byte(utf8_decode_at(token, pos, len));
    if (!b) {
      out->resize(start);
      return false;
    }
    out->push_back(static_cast<char>(*b));
    pos += len;
  }
  return true;
}

}  // namespace moeserve
