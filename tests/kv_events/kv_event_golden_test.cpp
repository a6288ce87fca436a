// The KV-event wire format against golden bytes written by an independent encoder (Python's
// msgpack; testdata/make_golden.py): our encoder must produce exactly those bytes in both
// encodings, and our decoder must read them back into the batch they encode.
#include <fstream>
#include <iterator>
#include <string>

#include "gtest/gtest.h"
#include "kv_events/kv_event_codec.h"

namespace moeserve::kv_events {
namespace {

std::string read_testdata(const std::string& name) {
  const std::string path = std::string(MOESERVE_SOURCE_DIR) + "/tests/kv_events/testdata/" + name;
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << path;
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// The batch make_golden.py writes; keep the two in sync.
KvEventBatch golden_batch() {
  BlockStored stored;
  stored.block_hashes = {0x1122334455667788ULL, 0xFEDCBA9876543210ULL};
  stored.parent_block_hash = 0x0123456789ABCDEFULL;
  stored.token_ids = {1, 127, 128, 255, 256, 65535, 65536, 100000};
  stored.block_size = 4;
  stored.medium = "GPU";

  BlockStored stored_lora;
  stored_lora.block_hashes = {0xA5A5A5A5A5A5A5A5ULL};
  stored_lora.token_ids = {7, 8, 9, 10};
  stored_lora.block_size = 4;
  stored_lora.lora_id = 3;
  stored_lora.medium = "CPU";
  stored_lora.lora_name = "adapter-a";

  BlockRemoved removed;
  removed.block_hashes = {0x8000000000000000ULL, 0x100000000ULL};
  removed.medium = "GPU";

  KvEventBatch batch;
  batch.ts = 1733616000.25;
  batch.events = {stored, stored_lora, removed, AllBlocksCleared{}};
  batch.data_parallel_rank = 2;
  return batch;
}

std::string hex(const std::string& bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

void expect_golden_batch(const KvEventBatch& got) {
  const KvEventBatch want = golden_batch();
  EXPECT_EQ(got.ts, want.ts);
  EXPECT_EQ(got.data_parallel_rank, want.data_parallel_rank);
  EXPECT_EQ(got.skipped_events, 0);
  ASSERT_EQ(got.events.size(), want.events.size());
  for (size_t i = 0; i < want.events.size(); ++i) EXPECT_TRUE(got.events[i] == want.events[i]) << i;
}

TEST(KvEventGolden, ArrayEncodingMatchesIndependentEncoder) {
  const std::string golden = read_testdata("kv_event_batch_array.msgpack");
  ASSERT_FALSE(golden.empty());
  EXPECT_EQ(hex(encode_kv_event_batch(golden_batch(), KvEventEncoding::kArray)), hex(golden));
}

TEST(KvEventGolden, MapEncodingMatchesIndependentEncoder) {
  const std::string golden = read_testdata("kv_event_batch_map.msgpack");
  ASSERT_FALSE(golden.empty());
  EXPECT_EQ(hex(encode_kv_event_batch(golden_batch(), KvEventEncoding::kMap)), hex(golden));
}

TEST(KvEventGolden, DecodesArrayEncoding) {
  auto b = decode_kv_event_payload(read_testdata("kv_event_batch_array.msgpack"));
  ASSERT_TRUE(b.ok()) << b.status();
  expect_golden_batch(*b);
}

TEST(KvEventGolden, DecodesMapEncoding) {
  auto b = decode_kv_event_payload(read_testdata("kv_event_batch_map.msgpack"));
  ASSERT_TRUE(b.ok()) << b.status();
  expect_golden_batch(*b);
}

TEST(KvEventGolden, SequenceFrameIsBigEndian) {
  EXPECT_EQ(hex(encode_kv_event_seq(0x0102030405060708ULL)), "0102030405060708");
  EXPECT_EQ(hex(encode_kv_event_seq(0)), "0000000000000000");
}

}  // namespace
}  // namespace moeserve::kv_events
