// Chained hashes of full KV-cache blocks, as vLLM V1 computes them
// (vllm/v1/core/kv_cache_utils.py hash_block_tokens):
//
//   hash(block) = f((parent_hash or NONE_HASH, tuple(token_ids), extra_keys))
//
// where f is one of `--prefix-caching-hash-algo`:
//   sha256       SHA-256 over pickle protocol 5 of the tuple
//   sha256_cbor  SHA-256 over canonical CBOR of the tuple
//   xxhash       XXH3-128 over pickle protocol 5 of the tuple
//   xxhash_cbor  XXH3-128 over canonical CBOR of the tuple
//
// Serialisation. Both encoders cover exactly the value kinds a block-hash input holds
// (None, int, str, bytes, tuple) and are byte-compatible with CPython's
// `pickle.dumps(obj, protocol=5)` and `cbor2.dumps(obj, canonical=True)` for those kinds,
// with one documented limit of the pickle encoder: it never emits BINGET (CPython only
// does when the very same str/bytes/tuple object appears twice inside one key, e.g. one
// string object used as both lora name and cache salt). Protocol-5 framing (64 KiB frames,
// large str/bytes payloads outside frames) is reproduced.
//
// NONE_HASH is 32 random bytes, unless PYTHONHASHSEED is set: then f(seed string).
//
// Thread-safety: BlockHasher is immutable after construction; all functions may be called
// concurrently.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "core/status.h"

namespace moeserve::engine {

enum class HashAlgo { kSha256, kSha256Cbor, kXxhash, kXxhashCbor };

// Parses a `--prefix-caching-hash-algo` value.
absl::StatusOr<HashAlgo> parse_hash_algo(std::string_view name);
std::string_view hash_algo_name(HashAlgo algo);

// A Python value of the kinds that appear in block-hash inputs.
class HashKey {
 public:
  struct Bytes {
    std::string data;
  };
  using Tuple = std::vector<HashKey>;

  static HashKey none() { return HashKey(std::in_place_index<0>); }
  static HashKey integer(int64_t v) { return HashKey(std::in_place_index<1>, v); }
  static HashKey text(std::string s) { return HashKey(std::in_place_index<2>, std::move(s)); }
  static HashKey bytes(std::string raw) {
    return HashKey(std::in_place_index<3>, Bytes{std::move(raw)});
  }
  static HashKey tuple(Tuple items) { return HashKey(std::in_place_index<4>, std::move(items)); }

  using Value = std::variant<std::monostate, int64_t, std::string, Bytes, Tuple>;
  const Value& value() const { return value_; }

 private:
  template <size_t I, typename... Args>
  explicit HashKey(std::in_place_index_t<I> index, Args&&... args)
      : value_(index, std::forward<Args>(args)...) {}
  Value value_;
};

// `pickle.dumps(obj, protocol=5)` for the kinds HashKey holds (limits in the file comment).
std::string pickle_dumps(const HashKey& obj);
// `cbor2.dumps(obj, canonical=True)` for the kinds HashKey holds.
std::string cbor_canonical_dumps(const HashKey& obj);

// The digest of one block: 32 bytes (sha256*) or 16 bytes (xxhash*).
class BlockHash {
 public:
  BlockHash() = default;
  explicit BlockHash(std::string bytes) : bytes_(std::move(bytes)) {}

  const std::string& bytes() const { return bytes_; }
  bool empty() const { return bytes_.empty(); }
  // int.from_bytes(hash, "big") & (2**64 - 1): the form KV events carry when integer
  // block hashes are requested (VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES).
  uint64_t to_u64() const;
  std::string hex() const;

  friend bool operator==(const BlockHash& a, const BlockHash& b) = default;
  template <typename H>
  friend H AbslHashValue(H h, const BlockHash& b) {
    return H::combine(std::move(h), b.bytes_);
  }

 private:
  std::string bytes_;
};

class BlockHasher {
 public:
  // NONE_HASH from the environment: f(PYTHONHASHSEED) if set, else 32 random bytes.
  explicit BlockHasher(HashAlgo algo);
  BlockHasher(HashAlgo algo, BlockHash none_hash);

  // NONE_HASH for `algo`: f(seed) when a seed is given, else 32 random bytes.
  static BlockHash make_none_hash(HashAlgo algo, const std::optional<std::string>& seed);

  // f(obj): the configured digest over the configured serialisation.
  BlockHash hash_object(const HashKey& obj) const;

  // hash_block_tokens: `parent` null means the first block (NONE_HASH is used);
  // `extra_keys` nullopt serialises as None.
  BlockHash hash_block(const BlockHash* parent, std::span<const int32_t> token_ids,
                       const std::optional<HashKey::Tuple>& extra_keys) const;

  HashAlgo algo() const { return algo_; }
  const BlockHash& none_hash() const { return none_hash_; }

 private:
  HashAlgo algo_;
  BlockHash none_hash_;
};

}  // namespace moeserve::engine
