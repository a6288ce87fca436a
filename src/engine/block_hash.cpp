#include "engine/block_hash.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <xxhash.h>

#include <cstdlib>
#include <random>

#include "absl/strings/escaping.h"

namespace moeserve::engine {
namespace {

// ---- pickle protocol 5 ----------------------------------------------------------------

constexpr char kProto = '\x80';
constexpr char kFrame = '\x95';
constexpr char kStop = '.';
constexpr char kNone = 'N';
constexpr char kBinInt = 'J';
constexpr char kBinInt1 = 'K';
constexpr char kBinInt2 = 'M';
constexpr char kLong1 = '\x8a';
constexpr char kShortBinBytes = 'C';
constexpr char kBinBytes = 'B';
constexpr char kBinBytes8 = '\x8e';
constexpr char kShortBinUnicode = '\x8c';
constexpr char kBinUnicode = 'X';
constexpr char kBinUnicode8 = '\x8d';
constexpr char kEmptyTuple = ')';
constexpr char kMark = '(';
constexpr char kTuple = 't';
constexpr char kTuple1 = '\x85';
constexpr char kTuple2 = '\x86';
constexpr char kTuple3 = '\x87';
constexpr char kMemoize = '\x94';

// Frames close once they reach 64 KiB, checked before each object is saved (CPython's
// framer.commit_frame()); frames shorter than 4 bytes carry no FRAME header.
constexpr size_t kFrameSizeTarget = 64 * 1024;
constexpr size_t kFrameSizeMin = 4;

void put_le(std::string& out, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

class Pickler {
 public:
  std::string dumps(const HashKey& obj) {
    out_.push_back(kProto);
    out_.push_back('\x05');
    save(obj);
    frame_.push_back(kStop);
    commit_frame();
    return std::move(out_);
  }

 private:
  void commit_frame() {
    if (frame_.size() >= kFrameSizeMin) {
      out_.push_back(kFrame);
      put_le(out_, frame_.size(), 8);
    }
    out_ += frame_;
    frame_.clear();
  }

  void save(const HashKey& obj) {
    if (frame_.size() >= kFrameSizeTarget) commit_frame();
    std::visit([this](const auto& v) { save_value(v); }, obj.value());
  }

  void save_value(std::monostate) { frame_.push_back(kNone); }

  void save_value(int64_t v) {
    if (v >= 0 && v <= 0xff) {
      frame_.push_back(kBinInt1);
      put_le(frame_, static_cast<uint64_t>(v), 1);
    } else if (v >= 0 && v <= 0xffff) {
      frame_.push_back(kBinInt2);
      put_le(frame_, static_cast<uint64_t>(v), 2);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      frame_.push_back(kBinInt);
      put_le(frame_, static_cast<uint64_t>(static_cast<uint32_t>(static_cast<int32_t>(v))), 4);
    } else {
      // LONG1: minimal little-endian two's complement.
      std::string bytes;
      uint64_t u = static_cast<uint64_t>(v);
      for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((u >> (8 * i)) & 0xff));
      while (bytes.size() > 1) {
        const auto last = static_cast<unsigned char>(bytes.back());
        const auto prev = static_cast<unsigned char>(bytes[bytes.size() - 2]);
        if ((last == 0x00 && !(prev & 0x80)) || (last == 0xff && (prev & 0x80))) {
          bytes.pop_back();
        } else {
          break;
        }
      }
      frame_.push_back(kLong1);
      frame_.push_back(static_cast<char>(bytes.size()));
      frame_ += bytes;
    }
  }

  void save_value(const std::string& text) {
    write_sized(text, kShortBinUnicode, kBinUnicode, kBinUnicode8);
  }

  void save_value(const HashKey::Bytes& b) {
    write_sized(b.data, kShortBinBytes, kBinBytes, kBinBytes8);
  }

  // Opcode with a 1-, 4- or 8-byte length, the payload, then MEMOIZE. Payloads of 64 KiB
  // or more go outside any frame, after closing the current one.
  void write_sized(const std::string& payload, char op1, char op4, char op8) {
    std::string header;
    if (payload.size() < 256) {
      header.push_back(op1);
      put_le(header, payload.size(), 1);
    } else if (payload.size() <= 0xffffffffULL) {
      header.push_back(op4);
      put_le(header, payload.size(), 4);
    } else {
      header.push_back(op8);
      put_le(header, payload.size(), 8);
    }
    if (payload.size() >= kFrameSizeTarget) {
      commit_frame();
      out_ += header;
      out_ += payload;
    } else {
      frame_ += header;
      frame_ += payload;
    }
    frame_.push_back(kMemoize);
  }

  void save_value(const HashKey::Tuple& items) {
    if (items.empty()) {
      frame_.push_back(kEmptyTuple);
      return;
    }
    if (items.size() <= 3) {
      for (const HashKey& item : items) save(item);
      frame_.push_back(items.size() == 1 ? kTuple1 : items.size() == 2 ? kTuple2 : kTuple3);
    } else {
      frame_.push_back(kMark);
      for (const HashKey& item : items) save(item);
      frame_.push_back(kTuple);
    }
    frame_.push_back(kMemoize);
  }

  std::string out_;
  std::string frame_;
};

// ---- canonical CBOR (RFC 8949 core deterministic encoding) ---------------------------

void cbor_head(std::string& out, int major, uint64_t arg) {
  const auto mt = static_cast<uint8_t>(major << 5);
  auto put_be = [&out](uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  if (arg < 24) {
    out.push_back(static_cast<char>(mt | arg));
  } else if (arg <= 0xff) {
    out.push_back(static_cast<char>(mt | 24));
    put_be(arg, 1);
  } else if (arg <= 0xffff) {
    out.push_back(static_cast<char>(mt | 25));
    put_be(arg, 2);
  } else if (arg <= 0xffffffffULL) {
    out.push_back(static_cast<char>(mt | 26));
    put_be(arg, 4);
  } else {
    out.push_back(static_cast<char>(mt | 27));
    put_be(arg, 8);
  }
}

void cbor_encode(std::string& out, const HashKey& obj) {
  struct Visitor {
    std::string& out;
    void operator()(std::monostate) { out.push_back(static_cast<char>(0xf6)); }
    void operator()(int64_t v) {
      if (v >= 0) {
        cbor_head(out, 0, static_cast<uint64_t>(v));
      } else {
        cbor_head(out, 1, static_cast<uint64_t>(-(v + 1)));
      }
    }
    void operator()(const std::string& s) {
      cbor_head(out, 3, s.size());
      out += s;
    }
    void operator()(const HashKey::Bytes& b) {
      cbor_head(out, 2, b.data.size());
      out += b.data;
    }
    void operator()(const HashKey::Tuple& items) {
      cbor_head(out, 4, items.size());
      for (const HashKey& item : items) cbor_encode(out, item);
    }
  };
  std::visit(Visitor{out}, obj.value());
}

std::string sha256_digest(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const int ok = EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  MS_CHECK(ok == 1 && len == 32);
  return std::string(reinterpret_cast<const char*>(md), len);
}

std::string xxh3_128_digest(const std::string& data) {
  const XXH128_hash_t h = XXH3_128bits(data.data(), data.size());
  XXH128_canonical_t canon;
  XXH128_canonicalFromHash(&canon, h);
  return std::string(reinterpret_cast<const char*>(canon.digest), sizeof(canon.digest));
}

std::optional<std::string> python_hash_seed() {
  const char* seed = std::getenv("PYTHONHASHSEED");
  if (seed == nullptr) return std::nullopt;
  return std::string(seed);
}

}  // namespace

absl::StatusOr<HashAlgo> parse_hash_algo(std::string_view name) {
  if (name == "sha256") return HashAlgo::kSha256;
  if (name == "sha256_cbor") return HashAlgo::kSha256Cbor;
  if (name == "xxhash") return HashAlgo::kXxhash;
  if (name == "xxhash_cbor") return HashAlgo::kXxhashCbor;
  return absl::InvalidArgumentError(
      absl::StrCat("--prefix-caching-hash-algo: unknown value '", std::string(name),
                   "'; choose one of sha256, sha256_cbor, xxhash, xxhash_cbor"));
}

std::string_view hash_algo_name(HashAlgo algo) {
  switch (algo) {
    case HashAlgo::kSha256:
      return "sha256";
    case HashAlgo::kSha256Cbor:
      return "sha256_cbor";
    case HashAlgo::kXxhash:
      return "xxhash";
    case HashAlgo::kXxhashCbor:
      return "xxhash_cbor";
  }
  return "unknown";
}

std::string pickle_dumps(const HashKey& obj) {
  return Pickler().dumps(obj);
}

std::string cbor_canonical_dumps(const HashKey& obj) {
  std::string out;
  cbor_encode(out, obj);
  return out;
}

uint64_t BlockHash::to_u64() const {
  uint64_t v = 0;
  // Only the last 8 bytes survive the mask of a big-endian integer.
  const size_t start = bytes_.size() > 8 ? bytes_.size() - 8 : 0;
  for (size_t i = start; i < bytes_.size(); ++i) {
    v = (v << 8) | static_cast<unsigned char>(bytes_[i]);
  }
  return v;
}

std::string BlockHash::hex() const {
  return absl::BytesToHexString(bytes_);
}

BlockHasher::BlockHasher(HashAlgo algo)
    : algo_(algo), none_hash_(make_none_hash(algo, python_hash_seed())) {}

BlockHasher::BlockHasher(HashAlgo algo, BlockHash none_hash)
    : algo_(algo), none_hash_(std::move(none_hash)) {}

BlockHash BlockHasher::make_none_hash(HashAlgo algo, const std::optional<std::string>& seed) {
  if (seed.has_value()) return BlockHasher(algo, BlockHash()).hash_object(HashKey::text(*seed));
  std::string random(32, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(random.data()), 32) != 1) {
    std::random_device rd;
    for (char& c : random) c = static_cast<char>(rd() & 0xff);
  }
  return BlockHash(std::move(random));
}

BlockHash BlockHasher::hash_object(const HashKey& obj) const {
  switch (algo_) {
    case HashAlgo::kSha256:
      return BlockHash(sha256_digest(pickle_dumps(obj)));
    case HashAlgo::kSha256Cbor:
      return BlockHash(sha256_digest(cbor_canonical_dumps(obj)));
    case HashAlgo::kXxhash:
      return BlockHash(xxh3_128_digest(pickle_dumps(obj)));
    case HashAlgo::kXxhashCbor:
      return BlockHash(xxh3_128_digest(cbor_canonical_dumps(obj)));
  }
  MS_CHECK(false);
  return BlockHash();
}

BlockHash BlockHasher::hash_block(const BlockHash* parent, std::span<const int32_t> token_ids,
                                  const std::optional<HashKey::Tuple>& extra_keys) const {
  HashKey::Tuple tokens;
  tokens.reserve(token_ids.size());
  for (int32_t t : token_ids) tokens.push_back(HashKey::integer(t));
  HashKey::Tuple key;
  key.reserve(3);
  key.push_back(
      HashKey::bytes(parent != nullptr && !parent->empty() ? parent->bytes() : none_hash_.bytes()));
  key.push_back(HashKey::tuple(std::move(tokens)));
  key.push_back(extra_keys.has_value() ? HashKey::tuple(*extra_keys) : HashKey::none());
  return hash_object(HashKey::tuple(std::move(key)));
}

}  // namespace moeserve::engine
