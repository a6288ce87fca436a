// `moeserve tune MODEL [--output FILE] [--repeats N] [--stream-mib MiB] [--json]`: measures,
// for every Linear shape of the checkpoint, each GEMV kernel this machine may use and the
// GEMV / oneDNN crossover, and writes the choices to this machine's kernel table
// (kernels/linear_tuning.h), merged with the shapes already in it. serve, run and bench load the
// table at start.
#include <cstdio>
#include <iostream>

#include "CLI/CLI.hpp"
#include "cli/commands.h"
#include "core/cpu_features.h"
#include "core/parallel.h"
#include "kernels/linear_tuning.h"
#include "model/deepseek.h"
#include "nlohmann/json.hpp"

namespace moeserve {

int tune_main(int argc, char** argv) {
  CLI::App app{"Measure the fastest kernel per weight shape on this machine", "moeserve tune"};
  std::string dir, output;
  int repeats = 9;
  int64_t stream_mib = 96;
  bool json = false;
  app.add_option("MODEL", dir, "checkpoint directory (its Linear shapes are tuned)")->required();
  app.add_option("--output", output,
                 "table file (default: this machine's file in $MOESERVE_CACHE_DIR, "
                 "$XDG_CACHE_HOME/moeserve or ~/.cache/moeserve)");
  app.add_option("--repeats", repeats, "timed runs per kernel and row count (median kept)")
      ->check(CLI::Range(1, 1000));
  app.add_option("--stream-mib", stream_mib,
                 "weight MiB each timing streams (small weights are cycled through copies)")
      ->check(CLI::Range(1, 4096));
  app.add_flag("--json", json, "print the table as JSON");
  CLI11_PARSE(app, argc, argv);

  auto model = DeepseekModel::load(dir);
  if (!model.ok()) {
    std::fprintf(stderr, "moeserve tune: %s\n", std::string(model.status().message()).c_str());
    return 1;
  }
  const std::vector<LinearShape> shapes = created_linear_shapes();
  model->reset();  // the timings use their own weights; free the checkpoint's first

  const KernelMachine machine = this_kernel_machine();
  if (output.empty()) output = kernel_table_path(kernel_cache_dir(), machine);
  KernelTable table;
  table.machine = machine;
  if (auto old = read_kernel_table(output); old.ok()) {
    table = std::move(*old);
  } else if (!absl::IsNotFound(old.status())) {
    std::fprintf(stderr, "moeserve tune: replacing %s\n",
                 std::string(old.status().message()).c_str());
  }
  TuneOptions opt;
  opt.repeats = repeats;
  opt.stream_bytes = stream_mib << 20;
  if (!json) {
    std::printf("%s, ISA %s, %d threads: %zu shapes\n", machine.cpu.c_str(), machine.isa.c_str(),
                machine.threads, shapes.size());
    std::printf("%8s %8s %5s  %-12s %11s  %s\n", "n", "k", "dtype", "gemv", "small_m_max",
                "m=1 GB/s per GEMV");
  }
  for (const LinearShape& s : shapes) {
    auto t = tune_linear(s, opt);
    if (!t.ok()) {
      std::fprintf(stderr, "moeserve tune: %s\n", std::string(t.status().message()).c_str());
      return 1;
    }
    if (!json) {
      std::string rates;
      const double bytes = static_cast<double>(s.n * s.k * static_cast<int64_t>(dtype_size(s.dtype)));
      for (const LinearTimings& x : t->timings) {
        if (x.m == 1 && x.variant != "onednn" && x.microseconds > 0) {
          rates += " " + x.variant + " " + std::to_string(bytes / x.microseconds / 1e3).substr(0, 5);
        }
      }
      std::printf("%8lld %8lld %5s  gemv_%-7s %11lld %s\n", static_cast<long long>(s.n),
                  static_cast<long long>(s.k), std::string(dtype_name(s.dtype)).c_str(),
                  std::string(isa_name(t->choice.gemv_isa)).c_str(),
                  static_cast<long long>(t->choice.small_m_max), rates.c_str());
    }
    table.put(std::move(*t));
  }
  if (Status st = write_kernel_table(output, table); !st.ok()) {
    std::fprintf(stderr, "moeserve tune: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  if (json) {
    std::cout << table.to_json() << std::endl;
  } else {
    std::printf("wrote %s (%zu shapes)\n", output.c_str(), table.linears.size());
  }
  return 0;
}

}  // namespace moeserve
