// Per-test scratch directories for model tests: unique per process and test (so ctest -j
// never lets two tests share one), removed when the test binary finishes.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace moeserve::testing_dirs {

inline std::vector<std::string>& created() {
  static std::vector<std::string> dirs;
  return dirs;
}

class RemoveCreatedDirs : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ec;
    for (const std::string& d : created()) std::filesystem::remove_all(d, ec);
  }
};

inline ::testing::Environment* const kCleanup =
    ::testing::AddGlobalTestEnvironment(new RemoveCreatedDirs);

// An empty path (the directory does not exist yet) named after the running test and `label`.
inline std::string temp_dir(const std::string& label) {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string leaf = absl::StrCat("moeserve_", getpid(), "_", info ? info->test_suite_name() : "",
                                  "_", info ? info->name() : "", "_", label);
  std::replace(leaf.begin(), leaf.end(), '/', '_');
  const std::string dir = ::testing::TempDir() + "/" + leaf;
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  created().push_back(dir);
  return dir;
}

}  // namespace moeserve::testing_dirs
