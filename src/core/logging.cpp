#include "core/logging.h"

#include <cstdlib>
#include <mutex>
#include <string>

#include "spdlog/sinks/stdout_color_sinks.h"

namespace moeserve {

void init_logging() {
  static std::once_flag once;
  std::call_once(once, [] {
    auto logger = spdlog::stderr_color_mt("moeserve");
    spdlog::set_default_logger(logger);
    spdlog::set_pattern("%^%L%$ %m-%d %H:%M:%S.%e %v");
    const char* lvl = std::getenv("MOESERVE_LOG_LEVEL");
    set_log_level(lvl ? lvl : "info");
  });
}

void set_log_level(std::string_view level) {
  spdlog::set_level(spdlog::level::from_str(std::string(level)));
}

}  // namespace moeserve
