// The GPT-2 byte <-> unicode map used by byte-level BPE (ByteLevel pre-tokenizer and decoder):
// bytes '!'..'~', '¡'..'¬', '®'..'ÿ' map to the code point of the same value; the other 68
// bytes map to U+0100, U+0101, ... in increasing byte order. Immutable tables; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace moeserve {

// UTF-8 text of the character that byte `b` maps to (1 or 2 bytes long).
std::string_view byte_level_char(uint8_t b);

// Appends the byte-level image of every byte of `bytes` to *out.
void byte_level_encode(std::string_view bytes, std::string* out);

// The byte that the code point `cp` stands for, or nullopt if `cp` is not in the map's image.
std::optional<uint8_t> byte_level_byte(char32_t cp);

// Inverts byte_level_encode for one token: appends the bytes of `token` to *out and returns
// true when every character of `token` is in the map's image; otherwise appends nothing and
// returns false (the caller then uses the token's own UTF-8 bytes, as HF's decoder does).
bool byte_level_decode_token(std::string_view token, std::string* out);

}  // namespace moeserve
