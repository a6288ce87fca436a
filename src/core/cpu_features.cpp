#include "core/cpu_features.h"

#include <cpuid.h>

#include <atomic>
#include <cstdlib>
#include <string>

namespace moeserve {
namespace {

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27);
  f.fma = c & (1u << 12);
  f.f16c = c & (1u << 29);
  unsigned long long xcr0 = 0;
  if (osxsave) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = (static_cast<unsigned long long>(hi) << 32) | lo;
  }
  const bool ymm_os = (xcr0 & 0x6) == 0x6;
  const bool zmm_os = (xcr0 & 0xe6) == 0xe6;
  const bool amx_os = (xcr0 & (3ull << 17)) == (3ull << 17);
  if (__get_cpuid_max(0, nullptr) >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = ymm_os && (b & (1u << 5));
    f.avx512f = zmm_os && (b & (1u << 16));
    f.avx512bw = zmm_os && (b & (1u << 30));
    f.avx512vl = zmm_os && (b & (1u << 31));
    f.amx_bf16 = amx_os && (d & (1u << 22));
    f.amx_tile = amx_os && (d & (1u << 24));
    __cpuid_count(7, 1, a, b, c, d);
    f.avx512_bf16 = zmm_os && (a & (1u << 5));
  }
  if (!ymm_os) f.fma = f.f16c = false;
  return f;
}

IsaLevel level_from(const CpuFeatures& f) {
  if (!(f.avx2 && f.fma && f.f16c)) return IsaLevel::kPortable;
  if (!(f.avx512f && f.avx512bw && f.avx512vl)) return IsaLevel::kAvx2;
  if (!f.avx512_bf16) return IsaLevel::kAvx512;
  if (!(f.amx_bf16 && f.amx_tile)) return IsaLevel::kAvx512Bf16;
  return IsaLevel::kAmx;
}

const char* onednn_isa(IsaLevel l) {
  switch (l) {
    case IsaLevel::kPortable: return "SSE41";
    case IsaLevel::kAvx2: return "AVX2";
    case IsaLevel::kAvx512: return "AVX512_CORE";
    case IsaLevel::kAvx512Bf16: return "AVX512_CORE_BF16";
    case IsaLevel::kAmx: return "ALL";
  }
  return "ALL";
}

IsaLevel env_cap() {
  const char* e = std::getenv("MOESERVE_ISA");
  if (!e) return IsaLevel::kAmx;
  std::string s(e);
  if (s == "portable" || s == "scalar") return IsaLevel::kPortable;
  if (s == "avx2") return IsaLevel::kAvx2;
  if (s == "avx512") return IsaLevel::kAvx512;
  if (s == "avx512_bf16") return IsaLevel::kAvx512Bf16;
  return IsaLevel::kAmx;
}

std::atomic<int> g_level{-1};

IsaLevel apply_cap(IsaLevel cap) {
  IsaLevel hw = hardware_isa_level();
  IsaLevel eff = static_cast<int>(cap) < static_cast<int>(hw) ? cap : hw;
  // oneDNN reads this once, at its first primitive creation.
  if (eff != hw) setenv("ONEDNN_MAX_CPU_ISA", onednn_isa(eff), 1);
  if (eff != hw) setenv("DNNL_MAX_CPU_ISA", onednn_isa(eff), 1);
  g_level.store(static_cast<int>(eff));
  return eff;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

IsaLevel hardware_isa_level() { return level_from(cpu_features()); }

const std::string& cpu_model_name() {
  static const std::string name = [] {
    unsigned regs[12] = {};
    if (__get_cpuid_max(0x80000000u, nullptr) < 0x80000004u) return std::string("unknown x86-64");
    for (unsigned i = 0; i < 3; ++i) {
      __get_cpuid(0x80000002u + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2],
                  &regs[4 * i + 3]);
    }
    std::string s(reinterpret_cast<const char*>(regs), sizeof(regs));
    s = s.substr(0, s.find('\0'));
    const size_t b = s.find_first_not_of(' ');
    const size_t e = s.find_last_not_of(' ');
    return b == std::string::npos ? std::string("unknown x86-64") : s.substr(b, e - b + 1);
  }();
  return name;
}

IsaLevel isa_level() {
  int l = g_level.load();
  if (l >= 0) return static_cast<IsaLevel>(l);
  return apply_cap(env_cap());
}

IsaLevel set_isa_cap(IsaLevel cap) { return apply_cap(cap); }

std::string_view isa_name(IsaLevel level) {
  switch (level) {
    case IsaLevel::kPortable: return "portable";
    case IsaLevel::kAvx2: return "avx2";
    case IsaLevel::kAvx512: return "avx512";
    case IsaLevel::kAvx512Bf16: return "avx512_bf16";
    case IsaLevel::kAmx: return "amx";
  }
  return "?";
}

}  // namespace moeserve
