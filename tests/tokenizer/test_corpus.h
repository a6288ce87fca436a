// Generated text for tokenizer tests: an English-like corpus to train on and random UTF-8
// strings (ASCII, Latin, Greek, CJK, kana, combining marks, emoji, astral) to round-trip.
#pragma once

#include <algorithm>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/utf8.h"

namespace moeserve::testing_corpus {

inline std::string english_like(int num_words, unsigned seed) {
  static const std::vector<std::string_view> kWords = {
      "the", "model", "serves", "tokens", "expert", "mixture", "of", "and", "a", "to",
      "in", "is", "that", "for", "with", "request", "cache", "block", "prefix", "decode",
      "prefill", "router", "rank", "layer", "attention", "weights", "The", "Hello", "world",
      "it's", "they're", "we'll", "123", "2024", "3.14", "你好", "世界", "日本語", "🙂",
      "naïve", "café", "(x)", "x+y", "=", "...", "!", "?", "\n"};
  static const std::vector<std::string_view> kSyllables = {
      "ka", "ro", "ti", "men", "sa", "lo", "ver", "qu", "an", "del", "ship", "ing", "est",
      "pre", "con", "ly", "tion", "ble", "ex", "mo", "zu", "ri", "ne", "ta", "por"};
  std::mt19937 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, kWords.size() - 1);
  std::uniform_int_distribution<size_t> syllable(0, kSyllables.size() - 1);
  std::uniform_int_distribution<int> coin(0, 9);
  std::string out;
  for (int i = 0; i < num_words; ++i) {
    std::string word;
    if (coin(rng) < 3) {  // an invented word: many distinct words to learn merges from
      for (int k = 0, n = 1 + coin(rng) % 3; k < n; ++k) word += kSyllables[syllable(rng)];
    } else {  // Zipf-ish: low indices much more frequent
      word = kWords[std::min(pick(rng), pick(rng))];
    }
    if (!out.empty() && word != "\n") out.push_back(' ');
    out += word;
  }
  return out;
}

inline std::string random_utf8(std::mt19937& rng, int num_chars) {
  struct Range {
    char32_t lo, hi;
  };
  static const Range kRanges[] = {
      {0x20, 0x7E},     {0x0A, 0x0A},     {0x09, 0x09},     {0xA0, 0xFF},
      {0x370, 0x3FF},   {0x300, 0x36F},   {0x4E00, 0x9FA5}, {0x3040, 0x30FF},
      {0x1F600, 0x1F64F}, {0x1F300, 0x1F5FF}, {0x10000, 0x10FFFF}, {0xE000, 0xFFFD}};
  std::uniform_int_distribution<size_t> range(0, std::size(kRanges) - 1);
  std::string out;
  for (int i = 0; i < num_chars; ++i) {
    const Range r = kRanges[range(rng)];
    std::uniform_int_distribution<uint32_t> cp(r.lo, r.hi);
    utf8_append(static_cast<char32_t>(cp(rng)), &out);
  }
  return out;
}

}  // namespace moeserve::testing_corpus
