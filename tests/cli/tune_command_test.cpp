// `moeserve tune` on a generated tiny model: it measures every Linear shape of the checkpoint,
// writes this machine's table where serve/run/bench look for it, and `bench model` then reports
// each shape's kernel as tuned.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "core/logging.h"
#include "gen/gen_model.h"
#include "gtest/gtest.h"
#include "kernels/linear_tuning.h"
#include "nlohmann/json.hpp"

namespace moeserve {
namespace {

namespace fs = std::filesystem;

int call(int (*fn)(int, char**), std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return fn(static_cast<int>(argv.size()), argv.data());
}

TEST(TuneCommand, WritesThisMachinesTableAndBenchModelUsesIt) {
  init_logging();  // logs to stderr, as in the binary: stdout carries only the JSON
  const fs::path root = fs::path(::testing::TempDir()) / absl::StrCat("tune_cmd_", getpid());
  fs::remove_all(root);
  const fs::path model = root / "model";
  const fs::path cache = root / "cache";
  GenModelOptions o;
  o.preset = "tiny";
  o.dtype = DType::kBF16;
  ASSERT_TRUE(generate_model(model.string(), o).ok());
  ASSERT_EQ(setenv("MOESERVE_CACHE_DIR", cache.c_str(), 1), 0);

  // Nothing tuned yet: the start-up load says so and installs nothing.
  EXPECT_NE(load_kernel_table_at_start().find("none for this machine"), std::string::npos);
  EXPECT_EQ(installed_kernel_table(), nullptr);

  ::testing::internal::CaptureStdout();
  const int rc = call(tune_main, {"moeserve tune", model.string(), "--repeats", "2",
                                  "--stream-mib", "2", "--json"});
  const std::string out = ::testing::internal::GetCapturedStdout();
  ASSERT_EQ(rc, 0) << out;
  auto printed = KernelTable::from_json(out);
  ASSERT_TRUE(printed.ok()) << printed.status() << "\n" << out;
  const std::vector<LinearShape> shapes = created_linear_shapes();
  ASSERT_FALSE(shapes.empty());
  for (const LinearShape& s : shapes) EXPECT_TRUE(printed->find(s).has_value()) << s.n << "x" << s.k;

  const std::string path = kernel_table_path(cache.string(), this_kernel_machine());
  ASSERT_TRUE(fs::exists(path));
  EXPECT_NE(load_kernel_table_at_start().find(path), std::string::npos);
  ASSERT_NE(installed_kernel_table(), nullptr);

  ::testing::internal::CaptureStdout();
  const int brc = call(bench_main, {"moeserve bench", "model", model.string(), "--prompt-len",
                                    "8", "--decode-tokens", "2", "--runs", "1", "--json"});
  const std::string bout = ::testing::internal::GetCapturedStdout();
  ASSERT_EQ(brc, 0) << bout;
  const auto j = nlohmann::json::parse(bout, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(j.is_discarded()) << bout;
  EXPECT_FALSE(j.at("cpu").get<std::string>().empty());
  ASSERT_EQ(j.at("kernels").size(), shapes.size());
  for (const auto& k : j.at("kernels")) EXPECT_EQ(k.at("source"), "tuned") << k.dump();

  // A corrupt table is reported and ignored; the built-in choices stay usable.
  install_kernel_table(nullptr);
  std::ofstream(path, std::ios::trunc) << "{\"format\": \"moeserve-kernel-table-1\", \"machine\":";
  EXPECT_NE(load_kernel_table_at_start().find("ignored"), std::string::npos);
  EXPECT_EQ(installed_kernel_table(), nullptr);
  // Re-tuning replaces it.
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(call(tune_main, {"moeserve tune", model.string(), "--repeats", "1", "--stream-mib", "1"}),
            0);
  const std::string again = ::testing::internal::GetCapturedStdout();
  EXPECT_NE(again.find("wrote " + path), std::string::npos) << again;
  EXPECT_TRUE(read_kernel_table(path).ok());

  ASSERT_EQ(setenv("MOESERVE_KERNEL_TUNING", "off", 1), 0);
  EXPECT_NE(load_kernel_table_at_start().find("off"), std::string::npos);
  unsetenv("MOESERVE_KERNEL_TUNING");
  unsetenv("MOESERVE_CACHE_DIR");
  fs::remove_all(root);
}

TEST(TuneCommand, RefusesAMissingModel) {
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(call(tune_main, {"moeserve tune", "/nonexistent/model/dir"}), 1);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("moeserve tune:"), std::string::npos) << err;
}

}  // namespace
}  // namespace moeserve
