#include "net/metrics_registry.h"

#include <cstdio>
#include <cstdlib>

#include "core/status.h"
#include "net/prometheus_text.h"

namespace moeserve::net {

void MetricsRegistry::add_counter(std::string name, std::string help) {
  absl::MutexLock lock(&mu_);
  for (const auto& f : families_) MS_CHECK(f.first != name);
  families_.push_back({std::move(name), Family{Type::kCounter, std::move(help), {}, {}}});
}

void MetricsRegistry::add_gauge(std::string name, std::string help) {
  absl::MutexLock lock(&mu_);
  for (const auto& f : families_) MS_CHECK(f.first != name);
  families_.push_back({std::move(name), Family{Type::kGauge, std::move(help), {}, {}}});
}

void MetricsRegistry::add_histogram(std::string name, std::string help,
                                    std::vector<double> upper_bounds) {
  absl::MutexLock lock(&mu_);
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
  absl::MutexLock lock(&mu_);
  if (!(delta >= 0.0)) return;  // counters only go up
  series(family(name, Type::kCounter), labels).value += delta;
}

void MetricsRegistry::counter_set(std::string_view name, const Labels& labels, double total) {
  absl::MutexLock lock(&mu_);
  Series& s = series(family(name, Type::kCounter), labels);
  if (total > s.value) s.value = total;
}

void MetricsRegistry::gauge_set(std::string_view name, const Labels& labels, double value) {
  absl::MutexLock lock(&mu_);
  series(family(name, Type::kGauge), labels).value = value;
}

void MetricsRegistry::histogram_observe(std::string_view name, const Labels& labels, double value) {
  absl::MutexLock lock(&mu_);
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
  absl::MutexLock lock(&mu_);
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
  absl::MutexLock lock(&mu_);
  std::string out;
  for (const auto& [name, f] : families_) {
    const std::string full = f.type == Type::kCounter ? name + "_total" : name;
    const char* type = f.type == Type::kCounter ? "counter"
                       : f.type == Type::kGauge ? "gauge"
                                                : "histogram";
    append_family_header(&out, full, type, f.help);
    for (const auto& [labels, s] : f.series) {
      if (f.type != Type::kHistogram) {
        append_sample(&out, full, labels, s.value);
        continue;
      }
      const std::string bucket = name + "_bucket";
      double cumulative = 0.0;
      for (size_t i = 0; i < f.upper_bounds.size(); ++i) {
        cumulative += s.bucket_counts[i];
        const std::string le = prometheus_number(f.upper_bounds[i]);
        append_sample(&out, bucket, labels, cumulative, &le);
      }
      const std::string inf = "+Inf";
      append_sample(&out, bucket, labels, s.count, &inf);
      append_sample(&out, name + "_count", labels, s.count);
      append_sample(&out, name + "_sum", labels, s.sum);
    }
  }
  return out;
}

}  // namespace moeserve::net
