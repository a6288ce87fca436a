// Golden values come from CPython 3 (pickle protocol 5 + hashlib), computed once offline.
#include "engine/block_hash.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <cstdlib>
#include <numeric>

#include "absl/strings/escaping.h"

namespace moeserve::engine {
namespace {

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

std::string unhex(std::string_view h) {
  return absl::HexStringToBytes(std::string(h));
}

HashKey ints(std::initializer_list<int64_t> v) {
  HashKey::Tuple t;
  for (int64_t x : v) t.push_back(HashKey::integer(x));
  return HashKey::tuple(std::move(t));
}

HashKey range_tuple(int64_t begin, int64_t end) {
  HashKey::Tuple t;
  for (int64_t x = begin; x < end; ++x) t.push_back(HashKey::integer(x));
  return HashKey::tuple(std::move(t));
}

std::vector<int32_t> range32(int32_t begin, int32_t end) {
  std::vector<int32_t> v(end - begin);
  std::iota(v.begin(), v.end(), begin);
  return v;
}

TEST(PickleTest, MatchesCPythonForIntsBytesNone) {
  // pickle.dumps((b'ab', (1, 300, 70000, -5, 2**31, -2**40), None), 5)
  const HashKey key = HashKey::tuple(
      {HashKey::bytes("ab"), ints({1, 300, 70000, -5, int64_t{1} << 31, -(int64_t{1} << 40)}),
       HashKey::none()});
  EXPECT_EQ(absl::BytesToHexString(pickle_dumps(key)),
            "8005952a000000000000004302616294284b014d2c014a701101004afbffffff8a0500000080008a06"
            "0000000000ff74944e87942e");
}

TEST(PickleTest, MatchesCPythonForLongStringsAndSmallTuples) {
  // pickle.dumps((b'x'*300, ('salt', 'y'*300), (), (7,)), 5)
  const HashKey key =
      HashKey::tuple({HashKey::bytes(std::string(300, 'x')),
                      HashKey::tuple({HashKey::text("salt"), HashKey::text(std::string(300, 'y'))}),
                      HashKey::tuple({}), ints({7})});
  const std::string expected = "800595760200000000000028422c010000" + repeat("78", 300) +
                               "948c0473616c7494582c010000" + repeat("79", 300) +
                               "948694294b07859474942e";
  EXPECT_EQ(absl::BytesToHexString(pickle_dumps(key)), expected);
}

TEST(PickleTest, MultiFrameAndLargePayloadsMatchCPython) {
  BlockHasher h(HashAlgo::kSha256, BlockHash("unused"));
  // sha256(pickle.dumps((b'\x01'*32, tuple(range(20000)), None), 5))
  EXPECT_EQ(h.hash_object(HashKey::tuple({HashKey::bytes(std::string(32, '\x01')),
                                          range_tuple(0, 20000), HashKey::none()}))
                .hex(),
            "65e4e403b869b2e62fb7fbfb594a069abf68a428c7072e7cc2606257cf7c223f");
  // sha256(pickle.dumps(('a'*70000, tuple(range(30000)), ('s',)), 5))
  EXPECT_EQ(
      h.hash_object(HashKey::tuple({HashKey::text(std::string(70000, 'a')), range_tuple(0, 30000),
                                    HashKey::tuple({HashKey::text("s")})}))
          .hex(),
      "5cf329751becfe0548d4247b1138f2e56015e334b4c64adf2dcc04f102279292");
}

TEST(CborTest, CanonicalEncoding) {
  const HashKey key =
      HashKey::tuple({HashKey::bytes("ab"), ints({1, 23, 24, 300, 70000, -5, int64_t{1} << 32}),
                      HashKey::none(), HashKey::text("salt")});
  EXPECT_EQ(absl::BytesToHexString(cbor_canonical_dumps(key)),
            "84"      // array(4)
            "426162"  // bytes "ab"
            "87"      // array(7)
            "01"
            "17"
            "1818"
            "19012c"
            "1a00011170"
            "24"
            "1b0000000100000000"
            "f6"            // null
            "6473616c74");  // text "salt"
}

TEST(BlockHasherTest, Sha256ChainMatchesVllmWithPythonHashSeed) {
  // NONE_HASH = sha256(pickle('0')) when PYTHONHASHSEED=0.
  const BlockHash none = BlockHasher::make_none_hash(HashAlgo::kSha256, std::string("0"));
  EXPECT_EQ(none.hex(), "1973e23848344dc43a988a9b478663803cfffe1243480253f9a3cf004b14aa7c");
  BlockHasher h(HashAlgo::kSha256, none);
  const std::vector<int32_t> b0 = range32(0, 16), b1 = range32(16, 32);
  const BlockHash h1 = h.hash_block(nullptr, b0, std::nullopt);
  const BlockHash h2 = h.hash_block(&h1, b1, std::nullopt);
  EXPECT_EQ(h1.hex(), "6358e31578a64b75ebe28cdb99d3beae65de82a2087321dc6ec84ae048faaaa6");
  EXPECT_EQ(h2.hex(), "3c3c50f324aefbdfbb124dfdc541efac3e94e59c40f4be08afe70601eeca92c8");
  EXPECT_EQ(h1.to_u64(), 7982712666671721126ULL);
  const BlockHash salted = h.hash_block(nullptr, b0, HashKey::Tuple{HashKey::text("salt1")});
  EXPECT_EQ(salted.hex(), "6741d51a32d554d02617f898ae7937c894ec40811ee8957e2befa40fa6f8cbd6");
}

TEST(BlockHasherTest, PythonHashSeedEnvironmentMakesNoneHashDeterministic) {
  ASSERT_EQ(setenv("PYTHONHASHSEED", "0", 1), 0);
  const BlockHasher a(HashAlgo::kSha256), b(HashAlgo::kSha256);
  EXPECT_EQ(a.none_hash(), b.none_hash());
  EXPECT_EQ(a.none_hash().hex(),
            "1973e23848344dc43a988a9b478663803cfffe1243480253f9a3cf004b14aa7c");
  ASSERT_EQ(unsetenv("PYTHONHASHSEED"), 0);
  const BlockHasher c(HashAlgo::kSha256), d(HashAlgo::kSha256);
  EXPECT_EQ(c.none_hash().bytes().size(), 32u);
  EXPECT_NE(c.none_hash(), d.none_hash());  // os.urandom(32)
  EXPECT_NE(c.none_hash(), a.none_hash());
}

TEST(BlockHasherTest, AllAlgorithmsWorkAndDiffer) {
  const std::vector<int32_t> b0 = range32(100, 116);
  std::vector<BlockHash> seen;
  for (HashAlgo algo :
       {HashAlgo::kSha256, HashAlgo::kSha256Cbor, HashAlgo::kXxhash, HashAlgo::kXxhashCbor}) {
    const BlockHasher h(algo, BlockHasher::make_none_hash(algo, std::string("7")));
    const BlockHash x = h.hash_block(nullptr, b0, std::nullopt);
    const BlockHash y = h.hash_block(nullptr, b0, std::nullopt);
    EXPECT_EQ(x, y);
    const bool is_xx = algo == HashAlgo::kXxhash || algo == HashAlgo::kXxhashCbor;
    EXPECT_EQ(x.bytes().size(), is_xx ? 16u : 32u);
    std::vector<int32_t> other = b0;
    other[15]++;
    EXPECT_NE(h.hash_block(nullptr, other, std::nullopt), x);
    EXPECT_NE(h.hash_block(&x, b0, std::nullopt), x);  // parent matters
    for (const BlockHash& s : seen) EXPECT_NE(s, x);
    seen.push_back(x);
  }
}

TEST(BlockHasherTest, XxhashIsXxh3Of128BitsOverPickleInBigEndianDigestForm) {
  const BlockHasher h(HashAlgo::kXxhash, BlockHash("n"));
  const HashKey key = HashKey::tuple({HashKey::bytes("p"), ints({1, 2, 3}), HashKey::none()});
  const std::string data = pickle_dumps(key);
  const XXH128_hash_t ref = XXH3_128bits(data.data(), data.size());
  // Python xxhash's digest(): high 64 bits then low 64 bits, each big-endian.
  std::string expected;
  for (uint64_t part : {ref.high64, ref.low64}) {
    for (int i = 7; i >= 0; --i) expected.push_back(static_cast<char>((part >> (8 * i)) & 0xff));
  }
  EXPECT_EQ(h.hash_object(key).bytes(), expected);
  const BlockHasher hc(HashAlgo::kXxhashCbor, BlockHash("n"));
  const std::string cbor = cbor_canonical_dumps(key);
  const XXH128_hash_t refc = XXH3_128bits(cbor.data(), cbor.size());
  EXPECT_EQ(hc.hash_object(key).to_u64(), refc.low64);
}

TEST(BlockHashTest, ToU64TakesLowEightBytesBigEndian) {
  EXPECT_EQ(BlockHash(unhex("0102030405060708090a0b0c0d0e0f10")).to_u64(), 0x090a0b0c0d0e0f10ULL);
  EXPECT_EQ(BlockHash(unhex("0102")).to_u64(), 0x0102ULL);
}

TEST(HashAlgoTest, ParsesFlagValues) {
  EXPECT_EQ(*parse_hash_algo("sha256"), HashAlgo::kSha256);
  EXPECT_EQ(*parse_hash_algo("xxhash_cbor"), HashAlgo::kXxhashCbor);
  EXPECT_FALSE(parse_hash_algo("md5").ok());
}

}  // namespace
}  // namespace moeserve::engine
