// Logging through spdlog. Level from MOESERVE_LOG_LEVEL (trace|debug|info|warn|error) or
// set_log_level; logs go to stderr so stdout stays clean for --json output.
#pragma once

#include <string_view>

#include "spdlog/spdlog.h"

namespace moeserve {

void init_logging();
void set_log_level(std::string_view level);

}  // namespace moeserve

#define MS_LOG_DEBUG(...) SPDLOG_DEBUG(__VA_ARGS__)
#define MS_LOG_INFO(...) ::spdlog::info(__VA_ARGS__)
#define MS_LOG_WARN(...) ::spdlog::warn(__VA_ARGS__)
#define MS_LOG_ERROR(...) ::spdlog::error(__VA_ARGS__)
