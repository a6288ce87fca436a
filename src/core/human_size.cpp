#include "core/human_size.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <string>

namespace moeserve {
namespace {

std::string_view strip(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Splits "<digits>[.<digits>]<rest>"; false if the number part is malformed.
bool split_number(std::string_view s, std::string_view* number, std::string_view* unit,
                  bool* has_fraction) {
  size_t i = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  if (i == 0) return false;
  *has_fraction = false;
  if (i < s.size() && s[i] == '.') {
    size_t j = i + 1;
    while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
    if (j == i + 1) return false;
    *has_fraction = true;
    i = j;
  }
  *number = s.substr(0, i);
  *unit = s.substr(i);
  return true;
}

absl::Status bad(std::string_view text, std::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid size '", std::string(text), "': ", std::string(why)));
}

absl::StatusOr<int64_t> scale(std::string_view text, std::string_view number, bool has_fraction,
                              double multiplier) {
  if (!has_fraction) {
    int64_t v = 0;
    auto res = std::from_chars(number.data(), number.data() + number.size(), v);
    if (res.ec != std::errc()) return bad(text, "number out of range");
    const auto m = static_cast<int64_t>(multiplier);
    if (m != 0 && v > std::numeric_limits<int64_t>::max() / m) {
      return bad(text, "number out of range");
    }
    return v * m;
  }
  const double v = std::stod(std::string(number)) * multiplier;
  if (!(v < 9.2e18)) return bad(text, "number out of range");
  return static_cast<int64_t>(v);  // truncates, like Python int()
}

absl::StatusOr<double> unit_multiplier(std::string_view unit, bool memory) {
  struct Unit {
    std::string_view name;
    double multiplier;
  };
  static constexpr Unit kCommon[] = {{"", 1.0},        {"k", 1e3},          {"m", 1e6},
                                     {"g", 1e9},       {"t", 1e12},         {"K", 1024.0},
                                     {"M", 1048576.0}, {"G", 1073741824.0}, {"T", 1099511627776.0}};
  static constexpr Unit kMemory[] = {{"B", 1.0},
                                     {"KiB", 1024.0},
                                     {"MiB", 1048576.0},
                                     {"GiB", 1073741824.0},
                                     {"TiB", 1099511627776.0},
                                     {"KB", 1e3},
                                     {"MB", 1e6},
                                     {"GB", 1e9},
                                     {"TB", 1e12}};
  for (const Unit& u : kCommon) {
    if (u.name == unit) return u.multiplier;
  }
  if (memory) {
    for (const Unit& u : kMemory) {
      if (u.name == unit) return u.multiplier;
    }
  }
  return absl::NotFoundError("unknown unit");
}

absl::StatusOr<int64_t> parse(std::string_view text, bool memory) {
  const std::string_view s = strip(text);
  std::string_view number, unit;
  bool has_fraction = false;
  if (!split_number(s, &number, &unit, &has_fraction)) {
    return bad(text, memory ? "expected a number with an optional unit such as 4GiB or 512M"
                            : "expected an integer with an optional suffix k/m/g/t or K/M/G/T");
  }
  if (memory) unit = strip(unit);
  auto mult = unit_multiplier(unit, memory);
  if (!mult.ok()) {
    return bad(text, memory ? "unknown unit; use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB, k/m/g/t "
                              "(decimal) or K/M/G/T (binary)"
                            : "unknown suffix; use k/m/g/t (decimal) or K/M/G/T (binary)");
  }
  if (has_fraction) {
    if (unit.empty() || unit == "B") return bad(text, "a plain number must be an integer");
    if (!memory && (unit == "K" || unit == "M" || unit == "G" || unit == "T")) {
      return bad(text, absl::StrCat(
                           "Decimals are not allowed with binary suffixes like ", std::string(unit),
                           ". Did you mean to use ", std::string(number),
                           std::string(1, static_cast<char>(std::tolower(unit[0]))), " instead?"));
    }
  }
  return scale(text, number, has_fraction, *mult);
}

}  // namespace

absl::StatusOr<int64_t> parse_human_int(std::string_view text) {
  return parse(text, false);
}
absl::StatusOr<int64_t> parse_memory_size(std::string_view text) {
  return parse(text, true);
}

}  // namespace moeserve
