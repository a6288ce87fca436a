// A tiny generated checkpoint (preset "tiny", f32) for tests that need a real model directory:
// generated on first use into a directory under the test temp dir named after the test program
// and its pid, and removed when the process exits normally.
//
// Thread-safety: the first call generates (static initialisation); later calls only read.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "gen/gen_model.h"
#include "gtest/gtest.h"

namespace moeserve::testing {

// `tag` names the directory; `seed` seeds the weights. One model per process: the first call's
// arguments win.
inline const std::string& tiny_model(const std::string& tag, uint64_t seed) {
  struct ScratchModel {
    std::string path;
    ~ScratchModel() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static const ScratchModel model = [&] {
    const std::filesystem::path d =
        std::filesystem::path(::testing::TempDir()) / absl::StrCat(tag, "_", getpid());
    GenModelOptions o;
    o.preset = "tiny";
    o.dtype = DType::kF32;
    o.seed = seed;
    const Status st = generate_model(d.string(), o);
    EXPECT_TRUE(st.ok()) << st;
    return ScratchModel{d.string()};
  }();
  return model.path;
}

}  // namespace moeserve::testing
