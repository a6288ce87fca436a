// Human-readable integers for command-line flags.
//
// parse_human_int follows vLLM's `human_readable_int` (used by --max-model-len and
// --max-num-batched-tokens): a plain integer, or a number with one suffix where lowercase
// k/m/g/t are decimal (10^3..10^12, decimals allowed: "25.6k" = 25600) and uppercase
// K/M/G/T are binary (2^10..2^40, integers only: "1K" = 1024).
//
// parse_memory_size (--kv-cache-memory) accepts the same forms plus byte units:
// "B", IEC "KiB/MiB/GiB/TiB" (binary) and SI "KB/MB/GB/TB" (decimal), case-sensitive as
// written, decimals allowed ("1.5GiB"); an optional space may separate number and unit.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/status.h"

namespace moeserve {

absl::StatusOr<int64_t> parse_human_int(std::string_view text);
absl::StatusOr<int64_t> parse_memory_size(std::string_view text);

}  // namespace moeserve
