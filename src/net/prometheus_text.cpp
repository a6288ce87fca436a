#include "net/prometheus_text.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "core/py_float_repr.h"

namespace moeserve::net {

std::string prometheus_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  std::string s = py_float_repr(v);
  if (v > 0) {
    const size_t dot = s.find('.');
    if (dot != std::string::npos && dot > 6 && s.find('e') == std::string::npos) {
      std::string mantissa = s.substr(0, 1) + "." + s.substr(1, dot - 1) + s.substr(dot + 1);
      while (!mantissa.empty() && (mantissa.back() == '0' || mantissa.back() == '.')) {
        mantissa.pop_back();
      }
      const size_t exp = dot - 1;
      return absl::StrCat(mantissa, "e+", exp < 10 ? "0" : "", exp);
    }
  }
  return s;
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string label_set(const Labels& labels, const std::string* le) {
  if (labels.empty() && le == nullptr) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ",";
    first = false;
    absl::StrAppend(&out, k, "=\"", escape_label_value(v), "\"");
  }
  if (le != nullptr) {
    if (!first) out += ",";
    absl::StrAppend(&out, "le=\"", *le, "\"");
  }
  out += "}";
  return out;
}

std::string escape_help(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void append_family_header(std::string* out, std::string_view name, std::string_view type,
                          std::string_view help) {
  out->append("# HELP ").append(name).append(" ").append(escape_help(help)).append("\n");
  out->append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void append_sample(std::string* out, std::string_view name, const Labels& labels, double value,
                   const std::string* le) {
  out->append(name).append(label_set(labels, le)).append(" ");
  out->append(prometheus_number(value)).append("\n");
}

namespace {

bool is_name_char(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
         (!first && c >= '0' && c <= '9');
}

StatusOr<double> parse_value(std::string_view s) {
  if (s == "+Inf" || s == "Inf") return HUGE_VAL;
  if (s == "-Inf") return -HUGE_VAL;
  if (s == "NaN") return std::nan("");
  std::string tmp(s);
  char* end = nullptr;
  double v = std::strtod(tmp.c_str(), &end);
  if (tmp.empty() || end != tmp.c_str() + tmp.size()) {
    return absl::InvalidArgumentError(absl::StrCat("bad sample value '", tmp, "'"));
  }
  return v;
}

StatusOr<PromSample> parse_line(std::string_view line) {
  PromSample s;
  std::size_t i = 0;
  while (i < line.size() && is_name_char(line[i], i == 0)) ++i;
  if (i == 0) return absl::InvalidArgumentError("expected a metric name");
  s.name = std::string(line.substr(0, i));
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (true) {
      while (i < line.size() && (line[i] == ' ' || line[i] == ',')) ++i;
      if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      }
      std::size_t start = i;
      while (i < line.size() && is_name_char(line[i], i == start)) ++i;
      if (i == start || i >= line.size() || line[i] != '=') {
        return absl::InvalidArgumentError("bad label name");
      }
      std::string key(line.substr(start, i - start));
      ++i;
      if (i >= line.size() || line[i] != '"')
        return absl::InvalidArgumentError("label value must be quoted");
      ++i;
      std::string value;
      bool closed = false;
      while (i < line.size()) {
        char c = line[i++];
        if (c == '\\' && i < line.size()) {
          char e = line[i++];
          value.push_back(e == 'n' ? '\n' : e);
        } else if (c == '"') {
          closed = true;
          break;
        } else {
          value.push_back(c);
        }
      }
      if (!closed) return absl::InvalidArgumentError("unterminated label value");
      s.labels[key] = std::move(value);
    }
  }
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  std::size_t vstart = i;
  while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
  MS_ASSIGN_OR_RETURN(s.value, parse_value(line.substr(vstart, i - vstart)));
  return s;  // an optional timestamp after the value is ignored
}

}  // namespace

StatusOr<std::vector<PromSample>> parse_prometheus_text(std::string_view text) {
  std::vector<PromSample> out;
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty() || line.front() == '#') continue;
    auto sample = parse_line(line);
    if (!sample.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("metrics line ", line_no, ": ", sample.status().message()));
    }
    out.push_back(std::move(*sample));
  }
  return out;
}

std::string merge_exposition_families(const std::vector<std::string>& texts,
                                      std::string_view name_prefix) {
  struct Family {
    std::string help;
    std::string type;
    std::string samples;
  };
  std::vector<std::string> order;
  std::map<std::string, Family> families;
  auto family = [&](const std::string& name) -> Family& {
    auto [it, inserted] = families.try_emplace(name);
    if (inserted) order.push_back(name);
    return it->second;
  };
  for (std::string_view text : texts) {
    std::string current;  // family declared by the last HELP/TYPE line
    while (!text.empty()) {
      const std::size_t nl = text.find('\n');
      std::string_view line = text.substr(0, nl);
      text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
      while (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty()) continue;
      if (line.front() == '#') {
        std::string_view rest = line.substr(1);
        while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
        const bool help = rest.substr(0, 5) == "HELP ";
        const bool type = rest.substr(0, 5) == "TYPE ";
        if (!help && !type) continue;
        rest.remove_prefix(5);
        const std::string name(rest.substr(0, rest.find(' ')));
        current = name;
        if (name.substr(0, name_prefix.size()) != name_prefix) continue;
        Family& f = family(name);
        std::string& slot = help ? f.help : f.type;
        if (slot.empty()) slot = std::string(line);
        continue;
      }
      const std::string name(line.substr(0, line.find_first_of("{ \t")));
      const bool in_current = !current.empty() && name.substr(0, current.size()) == current;
      const std::string& fam = in_current ? current : name;
      if (fam.substr(0, name_prefix.size()) != name_prefix) continue;
      Family& f = family(fam);
      f.samples.append(line);
      f.samples.push_back('\n');
    }
  }
  std::string out;
  for (const std::string& name : order) {
    const Family& f = families[name];
    if (!f.help.empty()) absl::StrAppend(&out, f.help, "\n");
    if (!f.type.empty()) absl::StrAppend(&out, f.type, "\n");
    out += f.samples;
  }
  return out;
}

}  // namespace moeserve::net
