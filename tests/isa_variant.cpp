// Linked into the tests that run once per ISA level (moeserve_add_isa_variants in
// tests/CMakeLists.txt). Each variant sets MOESERVE_ISA (the cap every kernel dispatch reads)
// and MOESERVE_TEST_ISA_VARIANT to one level; this guard skips the whole binary, saying why,
// where that level is not a separate run on this CPU: the CPU lacks it, or it is the CPU's own
// level, which the unsuffixed tests already run. It skips by exiting with kSkipExitCode, which
// the variants declare as ctest's SKIP_RETURN_CODE (a GTEST_SKIP in a global environment
// would report every test as passed).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/cpu_features.h"
#include "gtest/gtest.h"

namespace moeserve {
namespace {

constexpr int kSkipExitCode = 77;

[[noreturn]] void skip_all(const std::string& why) {
  std::printf("[  SKIPPED ] %s\n", why.c_str());
  std::fflush(stdout);
  std::exit(kSkipExitCode);
}

class IsaVariantGuard : public ::testing::Environment {
 public:
  void SetUp() override {
    const char* v = std::getenv("MOESERVE_TEST_ISA_VARIANT");
    if (v == nullptr) return;
    const IsaLevel hw = hardware_isa_level();
    for (IsaLevel l : {IsaLevel::kPortable, IsaLevel::kAvx2, IsaLevel::kAvx512,
                       IsaLevel::kAvx512Bf16, IsaLevel::kAmx}) {
      if (isa_name(l) != v) continue;
      if (l > hw) {
        skip_all(std::string("this CPU has no ") + v + " path (it has up to " +
                 std::string(isa_name(hw)) + ")");
      }
      if (l == hw) {
        skip_all(std::string(v) + " is this CPU's own level: the tests without the suffix run it");
      }
      if (isa_level() != l) {
        GTEST_FAIL() << "MOESERVE_ISA=" << v << " did not take effect (level "
                     << isa_name(isa_level()) << ")";
      }
      return;
    }
    GTEST_FAIL() << "MOESERVE_TEST_ISA_VARIANT=" << v << " names no ISA level";
  }
};

const auto* const kGuard = ::testing::AddGlobalTestEnvironment(new IsaVariantGuard);

}  // namespace
}  // namespace moeserve
