// Run-time CPU feature detection and the ISA level kernels dispatch on.
// The level can be capped with MOESERVE_ISA=portable|avx2|avx512|avx512_bf16|amx (tests use
// this to force the portable path); the cap is also passed to oneDNN (ONEDNN_MAX_CPU_ISA).
// Thread-safe: detection happens once.
#pragma once

#include <string>
#include <string_view>

namespace moeserve {

enum class IsaLevel : int { kPortable = 0, kAvx2 = 1, kAvx512 = 2, kAvx512Bf16 = 3, kAmx = 4 };

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512_bf16 = false;
  bool amx_bf16 = false;
  bool amx_tile = false;
};

const CpuFeatures& cpu_features();
// Highest level this CPU supports, capped by MOESERVE_ISA (or set_isa_cap).
IsaLevel isa_level();
// Overrides the cap for this process (tests). Returns the effective level.
IsaLevel set_isa_cap(IsaLevel cap);
std::string_view isa_name(IsaLevel level);
// Highest level the hardware supports, ignoring any cap.
IsaLevel hardware_isa_level();
// The processor's brand string (CPUID 0x80000002..4), trimmed, e.g. "AMD EPYC 7B13 64-Core
// Processor"; "unknown x86-64" when the CPU does not report one.
const std::string& cpu_model_name();

}  // namespace moeserve
