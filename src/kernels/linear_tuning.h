// Kernel selection by measurement for Linear. For each weight shape a model uses, `moeserve
// tune` times the GEMV of every ISA level this process may use (capped by MOESERVE_ISA) and the
// oneDNN large-m path, and records per shape the fastest GEMV and the largest m at which the
// GEMV still beats oneDNN. The table is a JSON file per machine (CPU model, ISA level, thread
// count) in the kernel cache directory; serve/run/bench load it at start when it exists, and a
// shape the table lacks keeps the built-in default. A kernel tuned on one CPU can be the slowest
// on another, so the file of another machine is never used.
//
// Precision: every candidate obeys Linear's precision contract (linear.h), so the choice moves
// only f32 summation order, never the activations' rounding.
// Thread-safety: install_kernel_table() may race with Linear::forward (the table is swapped
// atomically and never freed); tune_linear() uses every OpenMP thread, call it from one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/status.h"

namespace moeserve {

// A Linear's weight [n, k] in F32 or BF16.
struct LinearShape {
  int64_t n = 0;
  int64_t k = 0;
  DType dtype = DType::kBF16;
  bool operator==(const LinearShape&) const = default;
  bool operator<(const LinearShape& o) const;
};

struct LinearChoice {
  IsaLevel gemv_isa = IsaLevel::kPortable;  // the GEMV kernel for m <= small_m_max
  int64_t small_m_max = 1;  // largest m that takes the GEMV; above: oneDNN (0: oneDNN for all)
};

// The built-in choice (no table): the highest GEMV this level has, and crossovers measured
// once on AVX2 / AVX512-BF16 machines (linear.cpp).
LinearChoice default_linear_choice(DType weights);

// The machine a table belongs to.
struct KernelMachine {
  std::string cpu;  // cpu_model_name()
  std::string isa;  // isa_name(isa_level())
  int threads = 0;  // num_threads()
  bool operator==(const KernelMachine&) const = default;
};
KernelMachine this_kernel_machine();

struct LinearTimings {
  int64_t m = 0;
  std::string variant;  // "gemv_avx2", "gemv_avx512", "gemv_portable", "onednn"
  double microseconds = 0;
};

struct TunedLinear {
  LinearShape shape;
  LinearChoice choice;
  std::vector<LinearTimings> timings;  // what the choice was made from (median per variant)
};

class KernelTable {
 public:
  KernelMachine machine;
  std::vector<TunedLinear> linears;  // sorted by shape, one per shape

  std::optional<LinearChoice> find(const LinearShape& s) const;
  // Adds or replaces the shape's entry.
  void put(TunedLinear t);

  std::string to_json() const;
  // Parses and validates (shapes positive, dtypes F32/BF16, ISA names known, small_m_max in
  // [0, 64]); a malformed file is an error naming what is wrong.
  static StatusOr<KernelTable> from_json(const std::string& text);
};

// Directory of the kernel cache: $MOESERVE_CACHE_DIR, else $XDG_CACHE_HOME/moeserve, else
// $HOME/.cache/moeserve.
std::string kernel_cache_dir();
// The table file of `machine` in `dir`: kernels-<hash of machine>.json.
std::string kernel_table_path(const std::string& dir, const KernelMachine& machine);

// Reads the table file; NotFound when it does not exist; an error for a malformed file or one
// that belongs to another machine.
StatusOr<KernelTable> read_kernel_table(const std::string& path);
// Writes atomically (temporary file + rename), creating the directory.
Status write_kernel_table(const std::string& path, const KernelTable& table);

// The table Linear consults (nullptr: defaults everywhere). Installing replaces it for every
// later forward; earlier tables stay alive for calls in flight.
void install_kernel_table(std::shared_ptr<const KernelTable> table);
const KernelTable* installed_kernel_table();
// Linear's choice for a shape: the installed table's, else the default; gemv_isa never above
// isa_level().
LinearChoice linear_choice(const LinearShape& s);

// At process start (serve, run, bench): installs this machine's table from kernel_cache_dir()
// when one exists; MOESERVE_KERNEL_TUNING=off skips it. Returns a one-line description for
// the log ("kernel table: <path> (N shapes)", "no kernel table ...").
std::string load_kernel_table_at_start();

struct TuneOptions {
  // Timed repetitions per (variant, m); the median is kept.
  int repeats = 9;
  // Weight bytes each timing streams through, at least: several copies of a small weight are
  // cycled so that the GEMV reads DRAM as in a model's decode, not a cache-resident copy.
  int64_t stream_bytes = int64_t{96} << 20;
  // Row counts tried for the GEMV / oneDNN crossover.
  std::vector<int64_t> crossover_m = {1, 2, 3, 4, 5, 6, 8, 10, 12, 16};
};

// Times the candidates for one shape on random weights of that shape and picks.
StatusOr<TunedLinear> tune_linear(const LinearShape& s, const TuneOptions& opt = {});

// Shapes of every Linear this process has created (a model's shapes after it is loaded).
std::vector<LinearShape> created_linear_shapes();
// Called by Linear::create.
void note_linear_shape(const LinearShape& s);

}  // namespace moeserve
