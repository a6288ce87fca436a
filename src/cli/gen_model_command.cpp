// `moeserve gen-model OUT --arch deepseek_v3|deepseek_v2 --preset tiny|small|v2-lite-4l|v3-4l
//  [--dtype f32|bf16|fp8] [--seed N] [--shards N]`
#include <cstdio>

#include "CLI/CLI.hpp"
#include "cli/commands.h"
#include "core/logging.h"
#include "gen/gen_model.h"

namespace moeserve {

int gen_model_main(int argc, char** argv) {
  CLI::App app{"Write a random Hugging Face DeepSeek-V2/V3 checkpoint directory", "moeserve gen-model"};
  std::string out, arch, preset = "tiny", dtype = "bf16";
  uint64_t seed = 0;
  int shards = 1;
  app.add_option("OUT", out, "output directory")->required();
  app.add_option("--arch", arch, "deepseek_v3 | deepseek_v2 (default: the preset's)")
     ->check(CLI::IsMember({"deepseek_v3", "deepseek_v2"}));
  app.add_option("--preset", preset, "tiny | small | v2-lite-4l | v3-4l")
      ->check(CLI::IsMember({"tiny", "small", "v2-lite-4l", "v3-4l"}));
  app.add_option("--dtype", dtype, "f32 | bf16 | fp8")->check(CLI::IsMember({"f32", "bf16", "fp8"}));
  app.add_option("--seed", seed, "random seed");
  app.add_option("--shards", shards, "number of safetensors shards")->check(CLI::Range(1, 10000));
  CLI11_PARSE(app, argc, argv);

  GenModelOptions opts;
  opts.arch = arch;
  opts.preset = preset;
  opts.dtype = dtype == "f32" ? DType::kF32 : dtype == "bf16" ? DType::kBF16 : DType::kF8E4M3;
  opts.seed = seed;
  opts.num_shards = shards;
  Status st = generate_model(out, opts);
  if (!st.ok()) {
    std::fprintf(stderr, "moeserve gen-model: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  MS_LOG_INFO("wrote {} ({} {}, {} shard(s))", out, preset, dtype, shards);
  return 0;
}

}  // namespace moeserve
