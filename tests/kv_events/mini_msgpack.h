// A minimal msgpack reader and writer for tests, written from the msgpack spec and independent
// of msgpack-c, so that the publisher's bytes are checked by a second implementation.
// Reader: nil, bool, all int widths, float32/64, str, bin, array, map. Every value remembers the
// marker byte it was encoded with (to check e.g. that hashes use uint64 0xcf).
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace moeserve::testing_msgpack {

struct MapEntry;

struct Value {
  enum class Kind { kNil, kBool, kUint, kInt, kFloat, kStr, kBin, kArray, kMap };
  Kind kind = Kind::kNil;
  uint8_t marker = 0;
  bool b = false;
  uint64_t u = 0;  // kUint
  int64_t i = 0;   // kInt (negative)
  double f = 0.0;
  std::string s;                             // kStr, kBin
  std::vector<Value> items;                  // kArray
  std::vector<MapEntry> map;  // kMap

  bool is_nil() const { return kind == Kind::kNil; }
  bool is_array() const { return kind == Kind::kArray; }
};

// A key and its value. Not a std::pair<Value, Value>: a pair member would need Value complete
// inside Value's own definition (clang rejects it; a vector of an incomplete type is allowed).
struct MapEntry {
  Value first;
  Value second;
};

class Reader {
 public:
  explicit Reader(std::string_view data) : d_(data) {}

  // The whole input as exactly one value; nullopt when malformed or with trailing bytes.
  static std::optional<Value> parse(std::string_view data) {
    Reader r(data);
    std::optional<Value> v = r.value(0);
    if (!v || r.pos_ != data.size()) return std::nullopt;
    return v;
  }

 private:
  bool need(size_t n) const { return d_.size() - pos_ >= n; }
  uint64_t be(size_t n) {
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v = (v << 8) | static_cast<uint8_t>(d_[pos_ + k]);
    pos_ += n;
    return v;
  }
  std::optional<Value> bytes(Value v, size_t n) {
    if (!need(n)) return std::nullopt;
    v.s.assign(d_.substr(pos_, n));
    pos_ += n;
    return v;
  }
  std::optional<Value> array(Value v, size_t n, int depth) {
    v.kind = Value::Kind::kArray;
    for (size_t k = 0; k < n; ++k) {
      std::optional<Value> e = value(depth + 1);
      if (!e) return std::nullopt;
      v.items.push_back(std::move(*e));
    }
    return v;
  }
  std::optional<Value> map(Value v, size_t n, int depth) {
    v.kind = Value::Kind::kMap;
    for (size_t k = 0; k < n; ++k) {
      std::optional<Value> key = value(depth + 1);
      if (!key) return std::nullopt;
      std::optional<Value> val = value(depth + 1);
      if (!val) return std::nullopt;
      v.map.push_back(MapEntry{std::move(*key), std::move(*val)});
    }
    return v;
  }

  std::optional<Value> value(int depth) {
    if (depth > 32 || !need(1)) return std::nullopt;
    Value v;
    const uint8_t m = static_cast<uint8_t>(d_[pos_++]);
    v.marker = m;
    using K = Value::Kind;
    if (m <= 0x7f) {
      v.kind = K::kUint;
      v.u = m;
      return v;
    }
    if (m >= 0xe0) {
      v.kind = K::kInt;
      v.i = static_cast<int8_t>(m);
      return v;
    }
    if ((m & 0xf0) == 0x80) return map(v, m & 0x0f, depth);
    if ((m & 0xf0) == 0x90) return array(v, m & 0x0f, depth);
    if ((m & 0xe0) == 0xa0) {
      v.kind = K::kStr;
      return bytes(v, m & 0x1f);
    }
    switch (m) {
      case 0xc0:
        v.kind = K::kNil;
        return v;
      case 0xc2:
        v.kind = K::kBool;
        v.b = false;
        return v;
      case 0xc3:
        v.kind = K::kBool;
        v.b = true;
        return v;
      case 0xcc:
      case 0xcd:
      case 0xce:
      case 0xcf: {
        const size_t n = size_t{1} << (m - 0xcc);
        if (!need(n)) return std::nullopt;
        v.kind = K::kUint;
        v.u = be(n);
        return v;
      }
      case 0xd0:
      case 0xd1:
      case 0xd2:
      case 0xd3: {
        const size_t n = size_t{1} << (m - 0xd0);
        if (!need(n)) return std::nullopt;
        const uint64_t raw = be(n);
        const int shift = static_cast<int>(64 - 8 * n);
        v.i = static_cast<int64_t>(raw << shift) >> shift;  // sign-extend
        v.kind = v.i < 0 ? K::kInt : K::kUint;
        if (v.i >= 0) v.u = static_cast<uint64_t>(v.i);
        return v;
      }
      case 0xca: {
        if (!need(4)) return std::nullopt;
        const uint32_t raw = static_cast<uint32_t>(be(4));
        float x;
        std::memcpy(&x, &raw, 4);
        v.kind = K::kFloat;
        v.f = x;
        return v;
      }
      case 0xcb: {
        if (!need(8)) return std::nullopt;
        const uint64_t raw = be(8);
        std::memcpy(&v.f, &raw, 8);
        v.kind = K::kFloat;
        return v;
      }
      case 0xd9:
      case 0xda:
      case 0xdb:
      case 0xc4:
      case 0xc5:
      case 0xc6: {
        const bool str = m >= 0xd9;
        const size_t w = size_t{1} << (str ? m - 0xd9 : m - 0xc4);
        if (!need(w)) return std::nullopt;
        v.kind = str ? K::kStr : K::kBin;
        return bytes(v, be(w));
      }
      case 0xdc:
      case 0xdd: {
        const size_t w = m == 0xdc ? 2 : 4;
        if (!need(w)) return std::nullopt;
        return array(v, be(w), depth);
      }
      case 0xde:
      case 0xdf: {
        const size_t w = m == 0xde ? 2 : 4;
        if (!need(w)) return std::nullopt;
        return map(v, be(w), depth);
      }
      default:
        return std::nullopt;  // ext types and the unused marker
    }
  }

  std::string_view d_;
  size_t pos_ = 0;
};

// Writes msgpack with the smallest headers for the few kinds the tests build by hand.
class Writer {
 public:
  Writer& nil() {
    out_.push_back('\xc0');
    return *this;
  }
  Writer& uint(uint64_t v) {
    if (v <= 0x7f) {
      out_.push_back(static_cast<char>(v));
      return *this;
    }
    out_.push_back('\xcf');
    return be(v, 8);
  }
  Writer& f64(double x) {
    uint64_t raw;
    std::memcpy(&raw, &x, 8);
    out_.push_back('\xcb');
    return be(raw, 8);
  }
  Writer& str(std::string_view s) {
    out_.push_back('\xd9');
    out_.push_back(static_cast<char>(s.size()));
    out_.append(s);
    return *this;
  }
  Writer& bin(std::string_view s) {
    out_.push_back('\xc4');
    out_.push_back(static_cast<char>(s.size()));
    out_.append(s);
    return *this;
  }
  Writer& array(uint16_t n) {
    out_.push_back('\xdc');
    return be(n, 2);
  }
  Writer& map(uint16_t n) {
    out_.push_back('\xde');
    return be(n, 2);
  }
  const std::string& bytes() const { return out_; }

 private:
  Writer& be(uint64_t v, int n) {
    for (int k = n - 1; k >= 0; --k) out_.push_back(static_cast<char>((v >> (8 * k)) & 0xff));
    return *this;
  }
  std::string out_;
};

}  // namespace moeserve::testing_msgpack
