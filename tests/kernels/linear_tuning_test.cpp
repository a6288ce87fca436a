// Kernel selection by measurement: the table's file format and its validation, the machine
// check, the measurement itself on small shapes, and Linear following an installed table.
#include "kernels/linear_tuning.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "core/tensor.h"
#include "gtest/gtest.h"
#include "kernels/linear.h"
#include "nlohmann/json.hpp"

namespace moeserve {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& tag) {
  fs::path d = fs::path(::testing::TempDir()) / absl::StrCat("tuning_", tag, "_", getpid());
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

KernelTable two_shape_table() {
  KernelTable t;
  t.machine = this_kernel_machine();
  t.put({{256, 128, DType::kBF16}, {IsaLevel::kAvx2, 6}, {{1, "gemv_avx2", 3.5}}});
  t.put({{64, 32, DType::kF32}, {IsaLevel::kPortable, 1}, {}});
  return t;
}

TEST(KernelTable, RoundTripsThroughJsonSortedByShape) {
  const KernelTable t = two_shape_table();
  auto back = KernelTable::from_json(t.to_json());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->machine, t.machine);
  ASSERT_EQ(back->linears.size(), 2u);
  EXPECT_EQ(back->linears[0].shape, (LinearShape{64, 32, DType::kF32}));
  auto c = back->find({256, 128, DType::kBF16});
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->gemv_isa, IsaLevel::kAvx2);
  EXPECT_EQ(c->small_m_max, 6);
  EXPECT_FALSE(back->find({256, 128, DType::kF32}).has_value());
  ASSERT_EQ(back->linears[1].timings.size(), 1u);
  EXPECT_DOUBLE_EQ(back->linears[1].timings[0].microseconds, 3.5);
}

TEST(KernelTable, PutReplacesTheEntryOfTheSameShape) {
  KernelTable t = two_shape_table();
  t.put({{256, 128, DType::kBF16}, {IsaLevel::kPortable, 2}, {}});
  EXPECT_EQ(t.linears.size(), 2u);
  EXPECT_EQ(t.find({256, 128, DType::kBF16})->small_m_max, 2);
}

TEST(KernelTable, RefusesMalformedTablesNamingTheProblem) {
  const std::string good = two_shape_table().to_json();
  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    const size_t at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return s.replace(at, from.size(), to);
  };
  nlohmann::json dup = nlohmann::json::parse(good);
  dup["linear"].push_back(dup["linear"][0]);
  const std::string duplicated = dup.dump();
  const struct {
    std::string text;
    std::string message;
  } cases[] = {
      {"", "not a JSON object"},
      {"[1, 2]", "not a JSON object"},
      {good.substr(0, good.size() / 2), "not a JSON object"},
      {with("moeserve-kernel-table-1", "other-format"), "format"},
      {with("\"small_m_max\": 6", "\"small_m_max\": -1"), "small_m_max must be in"},
      {with("\"small_m_max\": 6", "\"small_m_max\": 100000"), "small_m_max must be in"},
      {with("\"dtype\": \"BF16\"", "\"dtype\": \"F8_E4M3\""), "dtype must be BF16 or F32"},
      {with("\"n\": 256", "\"n\": -256"), "n and k must be positive"},
      {with("\"gemv_isa\": \"avx2\"", "\"gemv_isa\": \"sve\""), "unknown gemv_isa"},
      {duplicated, "shape listed twice"},
  };
  for (const auto& c : cases) {
    auto t = KernelTable::from_json(c.text);
    ASSERT_FALSE(t.ok()) << c.text;
    EXPECT_NE(std::string(t.status().message()).find(c.message), std::string::npos)
        << t.status() << " for " << c.message;
  }
}

TEST(KernelTableFile, WritesAtomicallyAndReadsBackOnlyOnItsOwnMachine) {
  const fs::path dir = temp_dir("file");
  const std::string path = kernel_table_path((dir / "sub").string(), this_kernel_machine());
  EXPECT_TRUE(absl::IsNotFound(read_kernel_table(path).status()));
  ASSERT_TRUE(write_kernel_table(path, two_shape_table()).ok());
  auto t = read_kernel_table(path);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->linears.size(), 2u);
  // No temporary file left beside it.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir / "sub"), fs::directory_iterator()), 1);

  // Another machine's table (same file name forced) is refused, naming both machines.
  KernelTable other = two_shape_table();
  other.machine.cpu = "Some Other CPU";
  ASSERT_TRUE(write_kernel_table(path, other).ok());
  auto refused = read_kernel_table(path);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(std::string(refused.status().message()).find("Some Other CPU"), std::string::npos);

  // Different machines get different files.
  KernelMachine m = this_kernel_machine();
  m.threads += 1;
  EXPECT_NE(kernel_table_path("d", m), kernel_table_path("d", this_kernel_machine()));

  // A truncated file is an error, not a crash.
  const std::string text = two_shape_table().to_json();
  std::ofstream(path, std::ios::trunc) << text.substr(0, text.size() / 3);
  auto truncated = read_kernel_table(path);
  ASSERT_FALSE(truncated.ok());
  EXPECT_FALSE(absl::IsNotFound(truncated.status()));
  fs::remove_all(dir);
}

TEST(TuneLinear, PicksAnAvailableGemvAndACrossoverFromItsTimings) {
  TuneOptions opt;
  opt.repeats = 3;
  opt.stream_bytes = int64_t{2} << 20;
  opt.crossover_m = {1, 2, 4, 8};
  for (DType dt : {DType::kBF16, DType::kF32}) {
    auto t = tune_linear({96, 160, dt}, opt);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_LE(static_cast<int>(t->choice.gemv_isa), static_cast<int>(isa_level()));
    EXPECT_GE(t->choice.small_m_max, 0);
    EXPECT_LE(t->choice.small_m_max, 8);
    bool gemv_m1 = false;
    for (const LinearTimings& x : t->timings) {
      EXPECT_GT(x.microseconds, 0) << x.variant << " m=" << x.m;
      gemv_m1 |= x.m == 1 && x.variant == absl::StrCat("gemv_", std::string(isa_name(t->choice.gemv_isa)));
    }
    EXPECT_TRUE(gemv_m1);
    // A vector GEMV keeps m = 1 whatever the timings say (memory-bound: one pass is optimal).
    if (t->choice.gemv_isa != IsaLevel::kPortable) {
      EXPECT_GE(t->choice.small_m_max, 1);
    }
    // The chosen crossover follows the timings: oneDNN was not clearly faster (10% margin) at
    // any listed m in (1, small_m_max].
    for (const LinearTimings& d : t->timings) {
      if (d.variant != "onednn" || d.m <= 1 || d.m > t->choice.small_m_max) continue;
      for (const LinearTimings& g : t->timings) {
        if (g.m == d.m && g.variant.rfind("gemv_", 0) == 0 &&
            g.variant == absl::StrCat("gemv_", std::string(isa_name(t->choice.gemv_isa)))) {
          EXPECT_LE(0.9 * g.microseconds, d.microseconds) << "m=" << d.m;
        }
      }
    }
  }
  EXPECT_FALSE(tune_linear({0, 16, DType::kF32}, opt).ok());
  EXPECT_FALSE(tune_linear({16, 16, DType::kF8E4M3}, opt).ok());
}

// Linear follows the installed table, and every choice computes the same product.
TEST(LinearChoice, LinearFollowsTheInstalledTableAndStaysCorrect) {
  const int64_t n = 40, k = 72;
  Tensor w = Tensor::empty(DType::kBF16, {n, k});
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-1, 1);
  for (int64_t i = 0; i < n * k; ++i) w.data<uint16_t>()[i] = f32_to_bf16(dist(rng));
  auto lin = Linear::create(w);
  ASSERT_TRUE(lin.ok());
  const LinearShape s{n, k, DType::kBF16};
  EXPECT_EQ(linear_choice(s).small_m_max, default_linear_choice(DType::kBF16).small_m_max);

  for (int64_t small_max : {int64_t{0}, int64_t{1}, int64_t{12}}) {
    auto t = std::make_shared<KernelTable>();
    t->machine = this_kernel_machine();
    t->put({s, {IsaLevel::kAmx, small_max}, {}});
    install_kernel_table(t);
    const LinearChoice c = linear_choice(s);
    EXPECT_EQ(c.small_m_max, small_max);
    // Never above this process's level, whatever the table says.
    EXPECT_LE(static_cast<int>(c.gemv_isa), static_cast<int>(isa_level()));
    for (int64_t m : {1, 5, 12, 13}) {
      std::vector<float> x(static_cast<size_t>(m * k)), y(static_cast<size_t>(m * n)),
          ref(static_cast<size_t>(m * n));
      for (auto& v : x) v = dist(rng);
      lin->forward(x.data(), m, y.data());
      linear_ref(x.data(), m, w, ref.data(), linear_rounds_activations(DType::kBF16));
      for (size_t i = 0; i < y.size(); ++i) {
        ASSERT_NEAR(y[i], ref[i], 1e-3 * (1 + std::fabs(ref[i]))) << "m=" << m << " i=" << i;
      }
    }
  }
  install_kernel_table(nullptr);
  EXPECT_EQ(installed_kernel_table(), nullptr);
  EXPECT_EQ(linear_choice(s).small_m_max, default_linear_choice(DType::kBF16).small_m_max);
}

TEST(LinearChoice, CreatedShapesAreRecorded) {
  Tensor w = Tensor::empty(DType::kF32, {24, 56});
  ASSERT_TRUE(Linear::create(w).ok());
  const auto shapes = created_linear_shapes();
  EXPECT_NE(std::find(shapes.begin(), shapes.end(), LinearShape{24, 56, DType::kF32}),
            shapes.end());
}

}  // namespace
}  // namespace moeserve
