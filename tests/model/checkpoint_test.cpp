#include "model/checkpoint.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "nlohmann/json.hpp"

namespace moeserve {
namespace {

namespace fs = std::filesystem;

std::string temp_dir(const std::string& name) {
  const fs::path p =
      fs::path(testing::TempDir()) / ("moeserve_ckpt_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

// A float tensor [rows, 4] whose element i holds `seed + i`.
Tensor filled(int64_t rows, float seed) {
  Tensor t = Tensor::empty(DType::kF32, {rows, 4});
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = seed + static_cast<float>(i);
  return t;
}

void expect_filled(const StatusOr<Tensor>& t, int64_t rows, float seed) {
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->shape(), (std::vector<int64_t>{rows, 4}));
  for (int64_t i = 0; i < t->numel(); ++i) {
    ASSERT_EQ(t->data<float>()[i], seed + static_cast<float>(i)) << i;
  }
}

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

bool contains(const Status& s, const std::string& needle) {
  return std::string(s.message()).find(needle) != std::string::npos;
}

TEST(CheckpointTest, SingleFileRoundTrip) {
  const std::string dir = temp_dir("single");
  CheckpointWriter w;
  w.add("model.embed_tokens.weight", filled(8, 1));
  w.add("model.norm.weight", filled(1, 100));
  ASSERT_TRUE(w.write(dir, 1).ok());
  EXPECT_TRUE(fs::exists(dir + "/model.safetensors"));
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors.index.json"));
  auto ckpt = Checkpoint::open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ(ckpt->names(),
            (std::vector<std::string>{"model.embed_tokens.weight", "model.norm.weight"}));
  expect_filled(ckpt->get("model.embed_tokens.weight"), 8, 1);
  expect_filled(ckpt->get("model.norm.weight"), 1, 100);
  EXPECT_TRUE(ckpt->has("model.norm.weight"));
  EXPECT_FALSE(ckpt->has("lm_head.weight"));
  EXPECT_EQ(ckpt->file_of("model.norm.weight"), dir + "/model.safetensors");
  const Status missing = ckpt->get("lm_head.weight").status();
  EXPECT_TRUE(contains(missing, "lm_head.weight")) << missing;
  EXPECT_TRUE(contains(missing, dir)) << missing;
}

TEST(CheckpointTest, ShardedRoundTripThroughIndex) {
  const std::string dir = temp_dir("sharded");
  CheckpointWriter w;
  for (int i = 0; i < 7; ++i) w.add("t" + std::to_string(i), filled(1 + i, 10.0f * i));
  ASSERT_TRUE(w.write(dir, 3).ok());
  for (int i = 1; i <= 3; ++i) {
    EXPECT_TRUE(fs::exists(dir + "/model-0000" + std::to_string(i) + "-of-00003.safetensors"));
  }
  const auto index = nlohmann::json::parse(read(dir + "/model.safetensors.index.json"));
  uint64_t total = 0;
  for (int i = 0; i < 7; ++i) total += (1 + i) * 4 * 4;
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  ASSERT_EQ(index["weight_map"].size(), 7u);
  // Split in insertion order: shard numbers never decrease and every shard is used.
  int prev = 1;
  std::set<std::string> used;
  for (int i = 0; i < 7; ++i) {
    const std::string f = index["weight_map"]["t" + std::to_string(i)];
    used.insert(f);
    const int shard = f[10] - '0';
    EXPECT_GE(shard, prev) << f;
    prev = shard;
  }
  EXPECT_EQ(used.size(), 3u);

  std::vector<std::pair<size_t, size_t>> calls;
  auto ckpt = Checkpoint::open(dir, [&](size_t done, size_t n) { calls.emplace_back(done, n); });
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ(calls, (std::vector<std::pair<size_t, size_t>>{{0, 3}, {1, 3}, {2, 3}, {3, 3}}));
  for (int i = 0; i < 7; ++i) {
    const std::string name = "t" + std::to_string(i);
    expect_filled(ckpt->get(name), 1 + i, 10.0f * i);
    EXPECT_EQ(ckpt->file_of(name), dir + "/" + index["weight_map"][name].get<std::string>());
  }
}

TEST(CheckpointTest, WriterRejectsBadShardCounts) {
  const std::string dir = temp_dir("badshards");
  CheckpointWriter w;
  w.add("a", filled(1, 0));
  w.add("b", filled(1, 0));
  EXPECT_FALSE(w.write(dir, 0).ok());
  EXPECT_FALSE(w.write(dir, 3).ok());
  EXPECT_TRUE(w.write(dir, 2).ok());
}

TEST(CheckpointTest, IndexOpensOnlyListedFiles) {
  const std::string dir = temp_dir("listed");
  CheckpointWriter w;
  w.add("a", filled(2, 1));
  w.add("b", filled(2, 2));
  ASSERT_TRUE(w.write(dir, 2).ok());
  // A stray, corrupt safetensors file that the index does not list must be ignored.
  write(dir + "/consolidated.safetensors", "garbage");
  auto ckpt = Checkpoint::open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ(ckpt->names().size(), 2u);
}

TEST(CheckpointTest, IndexErrors) {
  const std::string dir = temp_dir("indexerr");
  CheckpointWriter w;
  w.add("a", filled(2, 1));
  w.add("b", filled(2, 2));
  ASSERT_TRUE(w.write(dir, 2).ok());
  const std::string index_path = dir + "/model.safetensors.index.json";
  const std::string good = read(index_path);

  write(index_path, "{not json");
  Status s = Checkpoint::open(dir).status();
  EXPECT_TRUE(contains(s, "model.safetensors.index.json") && contains(s, "JSON")) << s;

  write(index_path, R"({"metadata":{}})");
  s = Checkpoint::open(dir).status();
  EXPECT_TRUE(contains(s, "model.safetensors.index.json") && contains(s, "weight_map")) << s;

  write(index_path, R"({"weight_map":{"a":7}})");
  s = Checkpoint::open(dir).status();
  EXPECT_TRUE(contains(s, "weight_map entry for 'a'")) << s;

  write(index_path, R"({"weight_map":{"a":"../elsewhere.safetensors"}})");
  s = Checkpoint::open(dir).status();
  EXPECT_TRUE(contains(s, "../elsewhere.safetensors")) << s;

  write(index_path, R"({"weight_map":{"a":"model-00001-of-00002.safetensors",)"
                    R"("b":"model-00009-of-00009.safetensors"}})");
  s = Checkpoint::open(dir).status();
  EXPECT_TRUE(contains(s, "model-00009-of-00009.safetensors") && contains(s, "missing")) << s;

  // Listed in the index under a file that does not hold it.
  write(index_path, R"({"weight_map":{"a":"model-00001-of-00002.safetensors",)"
                    R"("b":"model-00001-of-00002.safetensors",)"
                    R"("c":"model-00002-of-00002.safetensors"}})");
  s = Checkpoint::open(dir).status();
  EXPECT_TRUE(contains(s, "'b'") && contains(s, "model-00001-of-00002.safetensors")) << s;

  write(index_path, good);
  EXPECT_TRUE(Checkpoint::open(dir).ok());

  // A corrupt shard: the error names it.
  write(dir + "/model-00002-of-00002.safetensors", "short");
  s = Checkpoint::open(dir).status();
  EXPECT_TRUE(contains(s, "model-00002-of-00002.safetensors")) << s;
}

TEST(CheckpointTest, GlobsSortedFilesAndRejectsDuplicates) {
  const std::string dir = temp_dir("glob");
  SafetensorsWriter a;
  a.add("x", filled(1, 1));
  ASSERT_TRUE(a.write(dir + "/b.safetensors").ok());
  SafetensorsWriter b;
  b.add("y", filled(2, 2));
  ASSERT_TRUE(b.write(dir + "/a.safetensors").ok());
  write(dir + "/notes.txt", "ignored");
  std::vector<std::pair<size_t, size_t>> calls;
  auto ckpt = Checkpoint::open(dir, [&](size_t d, size_t n) { calls.emplace_back(d, n); });
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ(calls.back(), (std::pair<size_t, size_t>{2, 2}));
  expect_filled(ckpt->get("x"), 1, 1);
  expect_filled(ckpt->get("y"), 2, 2);
  EXPECT_EQ(ckpt->file_of("y"), dir + "/a.safetensors");

  SafetensorsWriter dup;
  dup.add("x", filled(1, 5));
  ASSERT_TRUE(dup.write(dir + "/c.safetensors").ok());
  const Status s = Checkpoint::open(dir).status();
  EXPECT_TRUE(contains(s, "'x'") && contains(s, "b.safetensors") && contains(s, "c.safetensors"))
      << s;
}

TEST(CheckpointTest, MissingOrEmptyDirectory) {
  const std::string dir = temp_dir("empty");
  Status s = Checkpoint::open(dir).status();
  EXPECT_TRUE(contains(s, "no .safetensors")) << s;
  s = Checkpoint::open(dir + "/nope").status();
  EXPECT_TRUE(contains(s, dir + "/nope")) << s;
}

}  // namespace
}  // namespace moeserve
