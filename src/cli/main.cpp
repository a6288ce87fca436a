// moeserve: serve DeepSeek-style MoE models. Dispatches to the subcommand.
#include <cstdio>
#include <cstring>
#include <string>

#include "cli/commands.h"
#include "core/logging.h"
#include "core/wait_policy.h"
#include "kernels/linear_tuning.h"
#include "router/route_command.h"

namespace {

void usage() {
  std::fprintf(stderr,
               "usage: moeserve <command> [options]\n"
               "commands:\n"
               "  serve [MODEL]   OpenAI-compatible HTTP server (vLLM's flags)\n"
               "  gen-model OUT   write a random Hugging Face DeepSeek-V2/V3 checkpoint\n"
               "  run MODEL       generate text offline\n"
               "  route           llm-d-style router in front of moeserve or vLLM engines\n"
               "  tune MODEL      measure the fastest kernel per weight shape on this machine\n"
               "  bench model     prefill/decode speed against this machine's ceilings\n"
               "  bench decode    batched-decode throughput against its bound\n"
               "  bench moe       dispatch/combine and MoE-layer speed across ranks\n"
               "  bench serve     load generator with vllm bench serve's metrics\n"
               "  eplb plan       expert placement (with redundant experts) for a load\n"
               "run 'moeserve <command> --help' for its options\n");
}

}  // namespace

int main(int argc, char** argv) {
  // First, before any thread exists: libgomp has read its wait policy already (core/wait_policy.h).
  moeserve::apply_wait_policy_default(argv);
  moeserve::init_logging();
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage();
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  // Subcommands see "moeserve <cmd>" as their program name.
  if (cmd == "gen-model") return moeserve::gen_model_main(argc - 1, argv + 1);
  if (cmd == "tune") return moeserve::tune_main(argc - 1, argv + 1);
  if (cmd == "serve" || cmd == "run" || cmd == "bench") {
    // This machine's measured kernel choices, when `moeserve tune` has written them.
    MS_LOG_INFO("{}", moeserve::load_kernel_table_at_start());
  }
  if (cmd == "serve") return moeserve::serve_main(argc - 1, argv + 1);
  if (cmd == "run") return moeserve::run_main(argc - 1, argv + 1);
  if (cmd == "bench") return moeserve::bench_main(argc - 1, argv + 1);
  if (cmd == "eplb") return moeserve::eplb_main(argc - 1, argv + 1);
  if (cmd == "route") return moeserve::router::route_main(argc - 1, argv + 1);
  std::fprintf(stderr, "moeserve: unknown command '%s'\n", cmd.c_str());
  usage();
  return 2;
}
