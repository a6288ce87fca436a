#include "server/metrics_registry.h"

#include <cmath>

#include "core/status.h"
#include "engine/sampling_params.h"

namespace moeserve::server {

std::string prometheus_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  std::string s = engine::py_float_repr(v);
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

namespace {

std::string render_labels(const Labels& labels, const std::string* le = nullptr) {
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

}  // namespace

void MetricsRegistry::add_counter(std::string name, std::string help) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& f : families_) MS_CHECK(f.first != name);
  families_.push_back({std::move(name), Family{Type::kCounter, std::move(help), {}, {}}});
}

void MetricsRegistry::add_gauge(std::string name, std::string help) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& f : families_) MS_CHECK(f.first != name);
  families_.push_back({std::move(name), Family{Type::kGauge, std::move(help), {}, {}}});
}

void MetricsRegistry::add_histogram(std::string name, std::string help,
                                    std::vector<double> upper_bounds) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& f : families_) MS_CHECK(f.first != name);
  for (size_t i = 1; i < upper_bounds.size(); ++i) MS_CHECK(upper_bounds[i - 1] < upper_bounds[i]);
  families_.push_back(
      {std::move(name), Family{Type::kHistogram, std::move(help), std::move(upper_bounds), {}}});
}

MetricsRegistry::Family& MetricsRegistry::family(std::string_view name, Type type) {
  for (auto& f : families_) {
    if (f.first == name) {
      MS_CHECK(f.second.type == type);
      return f.second;
    }
  }
  std::fprintf(stderr, "metric %.*s is not registered\n", static_cast<int>(name.size()),
               name.data());
  MS_CHECK(false);
  std::abort();
}

MetricsRegistry::Series& MetricsRegistry::series(Family& f, const Labels& labels) {
  for (auto& s : f.series) {
    if (s.first == labels) return s.second;
  }
  Series s;
  if (f.type == Type::kHistogram) s.bucket_counts.assign(f.upper_bounds.size(), 0.0);
  f.series.emplace_back(labels, std::move(s));
  return f.series.back().second;
}

void MetricsRegistry::counter_add(std::string_view name, const Labels& labels, double delta) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!(delta >= 0.0)) return;  // counters only go up
  series(family(name, Type::kCounter), labels).value += delta;
}

void MetricsRegistry::counter_set(std::string_view name, const Labels& labels, double total) {
  std::lock_guard<std::mutex> lock(mu_);
  Series& s = series(family(name, Type::kCounter), labels);
  if (total > s.value) s.value = total;
}

void MetricsRegistry::gauge_set(std::string_view name, const Labels& labels, double value) {
  std::lock_guard<std::mutex> lock(mu_);
  series(family(name, Type::kGauge), labels).value = value;
}

void MetricsRegistry::histogram_observe(std::string_view name, const Labels& labels, double value) {
  std::lock_guard<std::mutex> lock(mu_);
  Family& f = family(name, Type::kHistogram);
  Series& s = series(f, labels);
  for (size_t i = 0; i < f.upper_bounds.size(); ++i) {
    if (value <= f.upper_bounds[i]) {
      s.bucket_counts[i] += 1.0;
      break;
    }
  }
  s.sum += value;
  s.count += 1.0;
}

double MetricsRegistry::value(std::string_view name, const Labels& labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& f : families_) {
    if (f.first != name) continue;
    for (const auto& s : f.second.series) {
      if (s.first == labels)
        return f.second.type == Type::kHistogram ? s.second.count : s.second.value;
    }
  }
  return 0.0;
}

std::string MetricsRegistry::render() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& [name, f] : families_) {
    const std::string full = f.type == Type::kCounter ? name + "_total" : name;
    const char* type = f.type == Type::kCounter ? "counter"
                       : f.type == Type::kGauge ? "gauge"
                                                : "histogram";
    absl::StrAppend(&out, "# HELP ", full, " ", escape_help(f.help), "\n");
    absl::StrAppend(&out, "# TYPE ", full, " ", type, "\n");
    for (const auto& [labels, s] : f.series) {
      if (f.type != Type::kHistogram) {
        absl::StrAppend(&out, full, render_labels(labels), " ", prometheus_number(s.value), "\n");
        continue;
      }
      double cumulative = 0.0;
      for (size_t i = 0; i < f.upper_bounds.size(); ++i) {
        cumulative += s.bucket_counts[i];
        const std::string le = prometheus_number(f.upper_bounds[i]);
        absl::StrAppend(&out, name, "_bucket", render_labels(labels, &le), " ",
                        prometheus_number(cumulative), "\n");
      }
      const std::string inf = "+Inf";
      absl::StrAppend(&out, name, "_bucket", render_labels(labels, &inf), " ",
                      prometheus_number(s.count), "\n");
      absl::StrAppend(&out, name, "_count", render_labels(labels), " ", prometheus_number(s.count),
                      "\n");
      absl::StrAppend(&out, name, "_sum", render_labels(labels), " ", prometheus_number(s.sum),
                      "\n");
    }
  }
  return out;
}

}  // namespace moeserve::server
