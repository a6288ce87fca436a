#include "kernels/linear.h"

#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <cstdlib>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/parallel.h"
#include "kernels/gemv.h"
#include "kernels/linear_tuning.h"
#include "kernels/onednn_util.h"
#include "kernels/ops.h"

namespace moeserve {
namespace {

// Output rows per thread chunk of the GEMV; keeps chunks long enough to stream.
constexpr int64_t kGemvMinRows = 16;
// Weight rows widened to f32 per oneDNN call in the bf16-weights/f32-GEMM fallback.
constexpr int64_t kWidenRows = 256;  // ~95% of plain sgemm at m=512 (measured)

// A buffer that grows to the largest request and is reused; every caller below asks for a
// bounded size (a fixed number of rows times the weight's k or n), so it never exceeds that.
struct AlignedBuffer {
  float* data = nullptr;
  size_t capacity = 0;  // floats
  ~AlignedBuffer() { std::free(data); }
  float* get(size_t n) {
    if (n > capacity) {
      std::free(data);
      data = static_cast<float*>(aligned_alloc64(n * sizeof(float)));
      capacity = n;
    }
    return data;
  }
};

// kWidenRows x k floats per thread (the widened weight block of large_m_widen).
float* thread_scratch(size_t n) {
  thread_local AlignedBuffer buf;
  return buf.get(n);
}

// kBf16ChunkRows x k bf16 per thread (one chunk of x converted for the bf16 matmul).
uint16_t* thread_bf16_scratch(size_t n) {
  thread_local AlignedBuffer buf;
  return reinterpret_cast<uint16_t*>(buf.get((n + 1) / 2));
}

// x[m, k] (row stride ldx) rounded to bf16 and widened back, dense, in the calling thread's
// scratch: the activations a bf16 matmul sees, for the paths that compute in f32. Callers pass
// at most kBf16ChunkRows rows (the GEMV's m <= 8; the widening fallback by chunks).
const float* bf16_rounded_copy(const float* x, int64_t m, int64_t ldx, int64_t k) {
  thread_local AlignedBuffer buf;
  float* out = buf.get(static_cast<size_t>(m * k));
  for (int64_t r = 0; r < m; ++r) {
    const float* src = x + r * ldx;
    float* dst = out + r * k;
    for (int64_t i = 0; i < k; ++i) dst[i] = bf16_to_f32(f32_to_bf16(src[i]));
  }
  return out;
}

// y[m, n0:n0+nb] = x[m, k] · W[n0:n0+nb, k]ᵀ with f32 W rows, single oneDNN sgemm call.
void sgemm_nt(const float* x, int64_t m, int64_t ldx, const float* w, int64_t nb, int64_t k,
              float* y, int64_t ldy) {
  dnnl_sgemm('N', 'T', m, nb, k, 1.0f, x, ldx, w, k, 0.0f, y, ldy);
}

void large_m_f32_weights(const float* x, int64_t m, int64_t ldx, const Tensor& w, float* y,
                         int64_t ldy) {
  sgemm_nt(x, m, ldx, w.data<float>(), w.dim(0), w.dim(1), y, ldy);
}

// bf16 weights without a bf16 matmul: each thread owns a contiguous range of output rows and
// widens kWidenRows of them at a time into its scratch, then runs a single-threaded sgemm.
void large_m_widen(const float* x, int64_t m, int64_t ldx, const Tensor& w, float* y, int64_t ldy) {
  const int64_t n = w.dim(0);
  const int64_t k = w.dim(1);
  const uint16_t* wb = w.data<uint16_t>();
  parallel_for(
      n,
      [&](int64_t b, int64_t e) {
        float* buf = thread_scratch(static_cast<size_t>(kWidenRows * k));
        for (int64_t n0 = b; n0 < e; n0 += kWidenRows) {
          const int64_t nb = std::min(kWidenRows, e - n0);
          moeserve::bf16_to_f32(wb + n0 * k, buf, nb * k);
          sgemm_nt(x, m, ldx, buf, nb, k, y + n0, ldy);
        }
      },
      kWidenRows);
}

// The bf16 matmul runs in chunks of at most kBf16ChunkRows rows; a chunk's row count is rounded
// up to a bucket (below) and the padding rows are zero in the bf16 copy of x and land in a
// scratch dst. So the primitives are keyed by (bucket, k, n, ldy) — a bounded set per weight
// shape however the batch shapes vary. oneDNN 2.6 does offer M as a run-time dimension, but it
// then falls back from brgemm to its gemm-based bf16 matmul ("gemm:jit"): measured 1.2-14x
// slower for m = 5-16 and 0.7-1.4x for larger m at k, n = 1408-3072 (docs/benchmarks.md).
constexpr int64_t kBf16ChunkRows = 256;
// Buckets: multiples of 8 up to 64, then of 16 up to kBf16ChunkRows (at most 7 padding rows
// per chunk where the padding costs most, 15 above 64 rows).
int64_t bf16_bucket_rows(int64_t rows) {
  if (rows <= 64) return (rows + 7) / 8 * 8;
  return std::min(kBf16ChunkRows, (rows + 15) / 16 * 16);
}
constexpr int64_t kNumBf16Buckets = 64 / 8 + (kBf16ChunkRows - 64) / 16;  // 20

// No bf16 primitive for a shape: the f32 GEMM on the activations the bf16 matmul would have
// seen (the precision contract), kBf16ChunkRows rows at a time so the rounded copy stays
// bounded.
void large_m_widen_rounded(const float* x, int64_t m, int64_t ldx, const Tensor& w, float* y,
                           int64_t ldy) {
  const int64_t k = w.dim(1);
  for (int64_t r0 = 0; r0 < m; r0 += kBf16ChunkRows) {
    const int64_t rows = std::min(kBf16ChunkRows, m - r0);
    large_m_widen(bf16_rounded_copy(x + r0 * ldx, rows, ldx, k), rows, k, w, y + r0 * ldy, ldy);
  }
}

// Primitives by (bucket rows, k, n, ldy): an LRU of at most kBf16MatmulCacheEntries entries,
// i.e. kNumBf16Buckets per weight shape for up to 24 distinct (k, n, ldy) — more than a model's
// linear layers have (a primitive holds ~0.1-0.3 MB of JIT code and descriptors). A model with
// more shapes evicts and rebuilds (slow, ~10-50 ms per build, but bounded in memory).
// Thread-safe (one mutex); a primitive is shared with its callers, so eviction never frees one
// in use.
class Bf16MatmulCache {
 public:
  static constexpr size_t kBf16MatmulCacheEntries = 24 * kNumBf16Buckets;

  // False when oneDNN has no bf16 matmul for this shape (the caller falls back).
  bool run(const float* x, int64_t m, int64_t ldx, const Tensor& w, float* y, int64_t ldy) {
    const int64_t n = w.dim(0);
    const int64_t k = w.dim(1);
    const dnnl::engine& eng = onednn::engine();
    dnnl::stream s(eng);
    dnnl::memory::desc wei_md({k, n}, dnnl::memory::data_type::bf16, {1, k});
    dnnl::memory wei(wei_md, eng, w.raw());
    for (int64_t r0 = 0; r0 < m; r0 += kBf16ChunkRows) {
      const int64_t rows = std::min(kBf16ChunkRows, m - r0);
      const int64_t mb = bf16_bucket_rows(rows);
      const bool padded = mb != rows;
      const int64_t ld_dst = padded ? n : ldy;
      std::shared_ptr<const dnnl::matmul> prim = get(mb, k, n, ld_dst);
      if (prim == nullptr) {
        if (r0 == 0) return false;
        large_m_widen_rounded(x + r0 * ldx, m - r0, ldx, w, y + r0 * ldy, ldy);
        return true;
      }
      uint16_t* xb = thread_bf16_scratch(static_cast<size_t>(mb * k));  // [mb, k]
      const float* xc = x + r0 * ldx;
      parallel_for(
          rows,
          [&](int64_t b, int64_t e) {
            for (int64_t r = b; r < e; ++r) moeserve::f32_to_bf16(xc + r * ldx, xb + r * k, k);
          },
          8);
      if (padded) std::fill(xb + rows * k, xb + mb * k, uint16_t{0});
      float* dst_ptr = padded ? thread_dst_scratch(static_cast<size_t>(mb * n)) : y + r0 * ldy;
      dnnl::memory src({{mb, k}, dnnl::memory::data_type::bf16, {k, 1}}, eng, xb);
      dnnl::memory dst({{mb, n}, dnnl::memory::data_type::f32, {ld_dst, 1}}, eng, dst_ptr);
      prim->execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}});
      s.wait();
      if (padded) {
        for (int64_t r = 0; r < rows; ++r) {
          std::copy(dst_ptr + r * n, dst_ptr + (r + 1) * n, y + (r0 + r) * ldy);
        }
      }
    }
    return true;
  }

  size_t size() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return lru_.size();
  }

 private:
  using Key = std::tuple<int64_t, int64_t, int64_t, int64_t>;  // (bucket rows, k, n, ldy)
  // nullptr: oneDNN has no bf16 matmul for this shape (remembered like a primitive).
  using Entry = std::pair<Key, std::shared_ptr<const dnnl::matmul>>;

  // Row-padded dst of a chunk whose row count is not its bucket: [bucket, n].
  static float* thread_dst_scratch(size_t n) {
    thread_local AlignedBuffer buf;
    return buf.get(n);
  }

  std::shared_ptr<const dnnl::matmul> get(int64_t mb, int64_t k, int64_t n, int64_t ldy)
      ABSL_LOCKS_EXCLUDED(mu_) {
    const Key key = std::make_tuple(mb, k, n, ldy);
    {
      absl::MutexLock lock(&mu_);
      auto it = index_.find(key);
      if (it != index_.end()) {
        lru_.splice(lru_.begin(), lru_, it->second);
        return it->second->second;
      }
    }
    // Built outside the lock (tens of ms); a racing builder of the same key loses its copy.
    std::shared_ptr<const dnnl::matmul> prim;
    if (auto pd = onednn::matmul_pd(mb, k, n, /*bf16=*/true, ldy)) {
      try {
        prim = std::make_shared<const dnnl::matmul>(*pd);
      } catch (const dnnl::error&) {
        prim.reset();
      }
    }
    absl::MutexLock lock(&mu_);
    auto it = index_.find(key);
    if (it != index_.end()) return it->second->second;
    lru_.emplace_front(key, prim);
    index_.emplace(key, lru_.begin());
    while (lru_.size() > kBf16MatmulCacheEntries) {
      index_.erase(lru_.back().first);
      lru_.pop_back();
    }
    return prim;
  }

  absl::Mutex mu_;
  std::list<Entry> lru_ ABSL_GUARDED_BY(mu_);  // front = most recently used
  std::map<Key, std::list<Entry>::iterator> index_ ABSL_GUARDED_BY(mu_);
};

Bf16MatmulCache& bf16_cache() {
  static Bf16MatmulCache* c = new Bf16MatmulCache();
  return *c;
}

}  // namespace

size_t linear_primitive_cache_entries() {
  return onednn::bf16_matmul_available() ? bf16_cache().size() : 0;
}

StatusOr<Linear> Linear::create(Tensor w) {
  if (w.rank() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("Linear: weight must be 2-D [out, in], got ", w.shape_string()));
  }
  if (w.dtype() != DType::kF32 && w.dtype() != DType::kBF16) {
    return absl::InvalidArgumentError(absl::StrCat("Linear: weight dtype ",
                                                   std::string(dtype_name(w.dtype())),
                                                   " unsupported (need F32 or BF16)"));
  }
  if (w.raw() == nullptr && w.numel() > 0) {
    return absl::InvalidArgumentError("Linear: weight has no storage");
  }
  note_linear_shape({w.dim(0), w.dim(1), w.dtype()});
  Linear l;
  l.w_ = std::move(w);
  return l;
}

void Linear::forward(const float* x, int64_t m, float* y, int64_t ldx, int64_t ldy) const {
  if (m <= 0) return;
  if (ldx == 0) ldx = in_features();
  if (ldy == 0) ldy = out_features();
  const LinearChoice c = linear_choice({out_features(), in_features(), w_.dtype()});
  if (m <= c.small_m_max) {
    linear_impl::small_m(x, m, ldx, w_, y, ldy, static_cast<int>(c.gemv_isa));
  } else {
    linear_impl::large_m(x, m, ldx, w_, y, ldy);
  }
}

bool linear_rounds_activations(DType weights) {
  return weights == DType::kBF16 && onednn::bf16_matmul_available();
}

void linear_ref(const float* x, int64_t m, const Tensor& w, float* y, bool round_x_to_bf16) {
  const int64_t n = w.dim(0);
  const int64_t k = w.dim(1);
  const bool bf16 = w.dtype() == DType::kBF16;
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t i = 0; i < k; ++i) {
        const float wv =
            bf16 ? bf16_to_f32(w.data<uint16_t>()[j * k + i]) : w.data<float>()[j * k + i];
        const float xv = round_x_to_bf16 ? bf16_to_f32(f32_to_bf16(x[r * k + i])) : x[r * k + i];
        s += static_cast<double>(wv) * xv;
      }
      y[r * n + j] = static_cast<float>(s);
    }
  }
}

namespace linear_impl {

void small_m(const float* x, int64_t m, int64_t ldx, const Tensor& w, float* y, int64_t ldy,
             int isa) {
  const int hw = static_cast<int>(hardware_isa_level());
  isa = std::min(isa, hw);
  void (*kernel)(const gemv::GemvArgs&, int64_t, int64_t) = gemv::gemv_portable;
  if (isa >= static_cast<int>(IsaLevel::kAvx512)) {
    kernel = gemv::gemv_avx512;
  } else if (isa >= static_cast<int>(IsaLevel::kAvx2)) {
    kernel = gemv::gemv_avx2;
  }
  const int64_t n = w.dim(0);
  if (linear_rounds_activations(w.dtype())) {
    x = bf16_rounded_copy(x, m, ldx, w.dim(1));
    ldx = w.dim(1);
  }
  gemv::GemvArgs a{x, ldx, 0, w.raw(), w.dtype() == DType::kBF16, w.dim(1), y, ldy};
  parallel_for(
      n,
      [&](int64_t b, int64_t e) {
        for (int64_t r0 = 0; r0 < m; r0 += gemv::kGemvMaxRows) {
          gemv::GemvArgs part = a;
          part.x = x + r0 * ldx;
          part.y = y + r0 * ldy;
          part.m = std::min(gemv::kGemvMaxRows, m - r0);
          kernel(part, b, e);
        }
      },
      kGemvMinRows);
}

void large_m(const float* x, int64_t m, int64_t ldx, const Tensor& w, float* y, int64_t ldy) {
  if (w.dtype() == DType::kF32) {
    large_m_f32_weights(x, m, ldx, w, y, ldy);
  } else if (!onednn::bf16_matmul_available()) {
    large_m_widen(x, m, ldx, w, y, ldy);
  } else if (!bf16_cache().run(x, m, ldx, w, y, ldy)) {
    large_m_widen_rounded(x, m, ldx, w, y, ldy);
  }
}

}  // namespace linear_impl
}  // namespace moeserve
