#include "kernels/linear_tuning.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include <unistd.h>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/parallel.h"
#include "core/tensor.h"
#include "kernels/linear.h"
#include "kernels/onednn_util.h"
#include "nlohmann/json.hpp"

namespace moeserve {
namespace {

// Built-in crossovers (no table). Measured on AVX2 (2048 in, 8k-16k out, one thread): the GEMV
// (one pass over the weights per 8 rows) beats oneDNN's f32 GEMM, for bf16 (widened) and f32
// weights alike, up to m ~ 10-12. Where oneDNN has a native bf16 matmul (AVX512-BF16/AMX) it
// wins earlier; the portable GEMV is scalar and loses to oneDNN beyond one row.
constexpr int64_t kSmallMMaxAvx = 8;
constexpr int64_t kSmallMMaxNativeBf16 = 4;
constexpr int64_t kSmallMMaxPortable = 1;
constexpr int64_t kMaxSmallM = 64;  // largest small_m_max a table may hold

constexpr const char* kFormat = "moeserve-kernel-table-1";

IsaLevel min_level(IsaLevel a, IsaLevel b) {
  return static_cast<int>(a) < static_cast<int>(b) ? a : b;
}

std::optional<IsaLevel> isa_from_name(const std::string& s) {
  for (int l = 0; l <= static_cast<int>(IsaLevel::kAmx); ++l) {
    if (isa_name(static_cast<IsaLevel>(l)) == s) return static_cast<IsaLevel>(l);
  }
  return std::nullopt;
}

// The GEMV kernels that exist: one per level up to AVX-512 (linear_impl::small_m maps higher
// levels to the AVX-512 kernel).
IsaLevel gemv_kernel_level(IsaLevel l) { return min_level(l, IsaLevel::kAvx512); }

std::string gemv_variant_name(IsaLevel l) {
  return absl::StrCat("gemv_", std::string(isa_name(gemv_kernel_level(l))));
}

std::atomic<const KernelTable*> g_table{nullptr};

// Tables ever installed, kept alive for the process (a handful at most).
std::vector<std::shared_ptr<const KernelTable>>& installed_tables() {
  static auto* v = new std::vector<std::shared_ptr<const KernelTable>>();
  return *v;
}
absl::Mutex& install_mu() {
  static auto* mu = new absl::Mutex();
  return *mu;
}

struct ShapeRegistry {
  absl::Mutex mu;
  std::set<LinearShape> shapes ABSL_GUARDED_BY(mu);
};
ShapeRegistry& shape_registry() {
  static auto* r = new ShapeRegistry();
  return *r;
}

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

bool LinearShape::operator<(const LinearShape& o) const {
  return std::tie(n, k, dtype) < std::tie(o.n, o.k, o.dtype);
}

LinearChoice default_linear_choice(DType weights) {
  LinearChoice c;
  c.gemv_isa = gemv_kernel_level(isa_level());
  if (isa_level() == IsaLevel::kPortable) {
    c.small_m_max = kSmallMMaxPortable;
  } else if (weights == DType::kBF16 && onednn::bf16_matmul_available()) {
    c.small_m_max = kSmallMMaxNativeBf16;
  } else {
    c.small_m_max = kSmallMMaxAvx;
  }
  return c;
}

KernelMachine this_kernel_machine() {
  return KernelMachine{cpu_model_name(), std::string(isa_name(isa_level())), num_threads()};
}

std::optional<LinearChoice> KernelTable::find(const LinearShape& s) const {
  auto it = std::lower_bound(linears.begin(), linears.end(), s,
                             [](const TunedLinear& t, const LinearShape& x) { return t.shape < x; });
  if (it == linears.end() || !(it->shape == s)) return std::nullopt;
  return it->choice;
}

void KernelTable::put(TunedLinear t) {
  auto it = std::lower_bound(linears.begin(), linears.end(), t.shape,
                             [](const TunedLinear& a, const LinearShape& x) { return a.shape < x; });
  if (it != linears.end() && it->shape == t.shape) {
    *it = std::move(t);
  } else {
    linears.insert(it, std::move(t));
  }
}

std::string KernelTable::to_json() const {
  nlohmann::json j;
  j["format"] = kFormat;
  j["machine"] = {{"cpu", machine.cpu}, {"isa", machine.isa}, {"threads", machine.threads}};
  nlohmann::json arr = nlohmann::json::array();
  for (const TunedLinear& t : linears) {
    nlohmann::json tim = nlohmann::json::array();
    for (const LinearTimings& x : t.timings) {
      tim.push_back({{"m", x.m}, {"variant", x.variant}, {"us", x.microseconds}});
    }
    arr.push_back({{"n", t.shape.n},
                   {"k", t.shape.k},
                   {"dtype", std::string(dtype_name(t.shape.dtype))},
                   {"gemv", gemv_variant_name(t.choice.gemv_isa)},
                   {"gemv_isa", std::string(isa_name(t.choice.gemv_isa))},
                   {"small_m_max", t.choice.small_m_max},
                   {"timings", std::move(tim)}});
  }
  j["linear"] = std::move(arr);
  return j.dump(1);
}

StatusOr<KernelTable> KernelTable::from_json(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return absl::InvalidArgumentError("not a JSON object");
  if (j.value("format", std::string()) != kFormat) {
    return absl::InvalidArgumentError(absl::StrCat("\"format\" is not \"", kFormat, "\""));
  }
  KernelTable t;
  const auto& m = j.value("machine", nlohmann::json());
  if (!m.is_object() || !m.contains("cpu") || !m["cpu"].is_string() || !m.contains("isa") ||
      !m["isa"].is_string() || !m.contains("threads") || !m["threads"].is_number_integer()) {
    return absl::InvalidArgumentError("\"machine\" must hold cpu, isa and threads");
  }
  t.machine = {m["cpu"].get<std::string>(), m["isa"].get<std::string>(), m["threads"].get<int>()};
  const auto& arr = j.value("linear", nlohmann::json());
  if (!arr.is_array()) return absl::InvalidArgumentError("\"linear\" must be an array");
  for (const auto& e : arr) {
    const auto bad = [&](const std::string& why) {
      return absl::InvalidArgumentError(absl::StrCat("linear entry ", e.dump(), ": ", why));
    };
    if (!e.is_object()) return bad("not an object");
    TunedLinear x;
    if (!e.contains("n") || !e["n"].is_number_integer() || !e.contains("k") ||
        !e["k"].is_number_integer() || e["n"].get<int64_t>() <= 0 || e["k"].get<int64_t>() <= 0) {
      return bad("n and k must be positive integers");
    }
    x.shape.n = e["n"].get<int64_t>();
    x.shape.k = e["k"].get<int64_t>();
    const std::string dt = e.value("dtype", std::string());
    if (dt == dtype_name(DType::kBF16)) {
      x.shape.dtype = DType::kBF16;
    } else if (dt == dtype_name(DType::kF32)) {
      x.shape.dtype = DType::kF32;
    } else {
      return bad("dtype must be BF16 or F32");
    }
    const auto isa = isa_from_name(e.value("gemv_isa", std::string()));
    if (!isa) return bad("unknown gemv_isa");
    x.choice.gemv_isa = *isa;
    if (!e.contains("small_m_max") || !e["small_m_max"].is_number_integer()) {
      return bad("small_m_max must be an integer");
    }
    x.choice.small_m_max = e["small_m_max"].get<int64_t>();
    if (x.choice.small_m_max < 0 || x.choice.small_m_max > kMaxSmallM) {
      return bad(absl::StrCat("small_m_max must be in [0, ", kMaxSmallM, "]"));
    }
    if (e.contains("timings") && e["timings"].is_array()) {
      for (const auto& tm : e["timings"]) {
        if (!tm.is_object()) continue;
        x.timings.push_back({tm.value("m", int64_t{0}), tm.value("variant", std::string()),
                             tm.value("us", 0.0)});
      }
    }
    if (t.find(x.shape)) return bad("shape listed twice");
    t.put(std::move(x));
  }
  return t;
}

std::string kernel_cache_dir() {
  if (const char* d = std::getenv("MOESERVE_CACHE_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return absl::StrCat(x, "/moeserve");
  if (const char* h = std::getenv("HOME"); h && *h) return absl::StrCat(h, "/.cache/moeserve");
  return ".moeserve-cache";
}

std::string kernel_table_path(const std::string& dir, const KernelMachine& machine) {
  // FNV-1a over the machine's fields: a stable file name per machine.
  uint64_t h = 1469598103934665603ull;
  const std::string key = absl::StrCat(machine.cpu, "|", machine.isa, "|", machine.threads);
  for (unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(h));
  return absl::StrCat(dir, "/kernels-", hex, ".json");
}

StatusOr<KernelTable> read_kernel_table(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat(path, ": ", ec.message()));
  if (size > (int64_t{16} << 20)) return absl::InvalidArgumentError(absl::StrCat(path, ": larger than 16 MiB"));
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::InvalidArgumentError(absl::StrCat(path, ": cannot open"));
  std::stringstream ss;
  ss << f.rdbuf();
  auto t = KernelTable::from_json(ss.str());
  if (!t.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", t.status().message()));
  const KernelMachine here = this_kernel_machine();
  if (!(t->machine == here)) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": tuned on another machine (", t->machine.cpu, ", ", t->machine.isa, ", ",
        t->machine.threads, " threads), this is ", here.cpu, ", ", here.isa, ", ", here.threads,
        " threads"));
  }
  return t;
}

Status write_kernel_table(const std::string& path, const KernelTable& table) {
  std::error_code ec;
  const std::filesystem::path p(path);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path(), ec);
  if (ec) return absl::InternalError(absl::StrCat(p.parent_path().string(), ": ", ec.message()));
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return absl::InternalError(absl::StrCat(tmp, ": cannot create"));
    f << table.to_json() << "\n";
    if (!f.flush()) return absl::InternalError(absl::StrCat(tmp, ": write failed"));
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return absl::InternalError(absl::StrCat(path, ": rename failed"));
  }
  return absl::OkStatus();
}

void install_kernel_table(std::shared_ptr<const KernelTable> table) {
  absl::MutexLock lock(&install_mu());
  const KernelTable* raw = table.get();
  if (table) installed_tables().push_back(std::move(table));
  g_table.store(raw, std::memory_order_release);
}

const KernelTable* installed_kernel_table() { return g_table.load(std::memory_order_acquire); }

LinearChoice linear_choice(const LinearShape& s) {
  const KernelTable* t = installed_kernel_table();
  if (t != nullptr) {
    if (auto c = t->find(s)) {
      c->gemv_isa = min_level(c->gemv_isa, isa_level());
      return *c;
    }
  }
  return default_linear_choice(s.dtype);
}

std::string load_kernel_table_at_start() {
  if (const char* e = std::getenv("MOESERVE_KERNEL_TUNING"); e && std::string(e) == "off") {
    return "kernel table: off (MOESERVE_KERNEL_TUNING=off), built-in kernel choices";
  }
  const std::string path = kernel_table_path(kernel_cache_dir(), this_kernel_machine());
  auto t = read_kernel_table(path);
  if (!t.ok()) {
    if (absl::IsNotFound(t.status())) {
      return absl::StrCat("kernel table: none for this machine (", path,
                          "), built-in kernel choices; `moeserve tune MODEL` measures them");
    }
    return absl::StrCat("kernel table ignored: ", t.status().message(), "; built-in kernel choices");
  }
  const size_t n = t->linears.size();
  install_kernel_table(std::make_shared<const KernelTable>(std::move(*t)));
  return absl::StrCat("kernel table: ", path, " (", n, " shapes)");
}

StatusOr<TunedLinear> tune_linear(const LinearShape& s, const TuneOptions& opt) {
  if (s.n <= 0 || s.k <= 0) return absl::InvalidArgumentError("tune_linear: empty shape");
  if (s.dtype != DType::kBF16 && s.dtype != DType::kF32) {
    return absl::InvalidArgumentError("tune_linear: weights must be BF16 or F32");
  }
  const int64_t bytes = s.n * s.k * static_cast<int64_t>(dtype_size(s.dtype));
  const int64_t copies = std::clamp<int64_t>((opt.stream_bytes + bytes - 1) / bytes, 1, 4096);
  std::vector<Tensor> w;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-0.05f, 0.05f);
  for (int64_t c = 0; c < copies; ++c) {
    Tensor t = Tensor::empty(s.dtype, {s.n, s.k});
    if (s.dtype == DType::kBF16) {
      uint16_t* p = t.data<uint16_t>();
      // One random row pattern per copy, repeated: filling hundreds of MB element by element
      // would take longer than the timings.
      std::vector<uint16_t> row(static_cast<size_t>(s.k));
      for (auto& v : row) v = f32_to_bf16(dist(rng));
      for (int64_t r = 0; r < s.n; ++r) std::copy(row.begin(), row.end(), p + r * s.k);
    } else {
      float* p = t.data<float>();
      std::vector<float> row(static_cast<size_t>(s.k));
      for (auto& v : row) v = dist(rng);
      for (int64_t r = 0; r < s.n; ++r) std::copy(row.begin(), row.end(), p + r * s.k);
    }
    w.push_back(std::move(t));
  }
  const int64_t max_m = std::max<int64_t>(
      4, opt.crossover_m.empty() ? 4 : *std::max_element(opt.crossover_m.begin(), opt.crossover_m.end()));
  std::vector<float> x(static_cast<size_t>(max_m * s.k));
  for (auto& v : x) v = dist(rng);
  std::vector<float> y(static_cast<size_t>(max_m * s.n));

  size_t next = 0;
  // Median microseconds of `run` over the repetitions, each on the next weight copy.
  const auto time_us = [&](const std::function<void(const Tensor&)>& run) {
    run(w[next++ % w.size()]);  // warm-up: primitives, scratch, page faults
    std::vector<double> us;
    double spent = 0;
    for (int r = 0; r < opt.repeats; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      run(w[next++ % w.size()]);
      const double d =
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
      us.push_back(d);
      spent += d;
      if (r >= 2 && spent > 3e5) break;  // a huge shape: three timings are enough
    }
    return median_of(us);
  };

  TunedLinear out;
  out.shape = s;
  // GEMV candidates: each kernel level this process may use; the scalar one only at the
  // portable level (it never wins where a vector kernel exists).
  std::vector<IsaLevel> gemvs;
  const IsaLevel top = gemv_kernel_level(min_level(isa_level(), hardware_isa_level()));
  if (top == IsaLevel::kPortable) {
    gemvs.push_back(IsaLevel::kPortable);
  } else {
    for (int l = static_cast<int>(IsaLevel::kAvx2); l <= static_cast<int>(top); ++l) {
      gemvs.push_back(static_cast<IsaLevel>(l));
    }
  }
  std::map<std::pair<IsaLevel, int64_t>, double> gemv_memo;
  const auto gemv_us = [&](IsaLevel l, int64_t m) {
    auto [it, fresh] = gemv_memo.try_emplace({l, m}, 0.0);
    if (fresh) {
      it->second = time_us([&](const Tensor& wt) {
        linear_impl::small_m(x.data(), m, s.k, wt, y.data(), s.n, static_cast<int>(l));
      });
    }
    return it->second;
  };
  // The decode shapes (m = 1, 2, 4) pick the GEMV kernel.
  IsaLevel best = gemvs.front();
  double best_total = 0;
  for (IsaLevel l : gemvs) {
    double total = 0;
    for (int64_t m : {1, 2, 4}) {
      const double us = gemv_us(l, m);
      out.timings.push_back({m, gemv_variant_name(l), us});
      total += us;
    }
    if (l == gemvs.front() || total < best_total) {
      best = l;
      best_total = total;
    }
  }
  out.choice.gemv_isa = best;
  // The crossover: the GEMV keeps every m up to the first at which oneDNN is clearly faster
  // (by kSwitchMargin: one noisy timing on a shared machine must not move a shape to the slower
  // path). A vector GEMV always keeps m = 1: it reads each weight once, which is all a
  // memory-bound m = 1 product can do, so oneDNN can only look faster there by noise (seen:
  // a decode-critical expert shape sent to oneDNN by one loaded timing).
  constexpr double kSwitchMargin = 0.9;
  out.choice.small_m_max = best == IsaLevel::kPortable ? 0 : 1;
  std::vector<int64_t> ms = opt.crossover_m;
  std::sort(ms.begin(), ms.end());
  for (int64_t m : ms) {
    if (m < 1 || m > kMaxSmallM) continue;
    const bool known = gemv_memo.count({best, m}) > 0;
    const double g = gemv_us(best, m);
    const double d = time_us([&](const Tensor& wt) {
      linear_impl::large_m(x.data(), m, s.k, wt, y.data(), s.n);
    });
    if (!known) out.timings.push_back({m, gemv_variant_name(best), g});
    out.timings.push_back({m, "onednn", d});
    if (d < kSwitchMargin * g) break;
    out.choice.small_m_max = std::max(out.choice.small_m_max, m);
  }
  return out;
}

std::vector<LinearShape> created_linear_shapes() {
  ShapeRegistry& r = shape_registry();
  absl::MutexLock lock(&r.mu);
  return {r.shapes.begin(), r.shapes.end()};
}

void note_linear_shape(const LinearShape& s) {
  ShapeRegistry& r = shape_registry();
  absl::MutexLock lock(&r.mu);
  r.shapes.insert(s);
}

}  // namespace moeserve
