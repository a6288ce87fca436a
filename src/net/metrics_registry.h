// A small Prometheus registry: counter, gauge and histogram families with labels, rendered in
// the text exposition format 0.0.4 the way Python's prometheus_client writes it (what vLLM
// serves): `# HELP`/`# TYPE` per family, counters named `<name>_total`, histograms as
// `_bucket{le=…}` (cumulative, ending with le="+Inf"), `_count` and `_sum`, numbers in Go's
// float format ("1.0", "0.001", "1e+06", "+Inf"); the lines are written by
// net/prometheus_text.h.
//
// Thread-safety: every method may be called from any thread (one internal mutex).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "net/prometheus_text.h"

namespace moeserve::net {

class MetricsRegistry {
 public:
  // Registration (names are code constants; registering a name twice is a programming
  // error). Counter names are given without the `_total` suffix.
  void add_counter(std::string name, std::string help);
  void add_gauge(std::string name, std::string help);
  void add_histogram(std::string name, std::string help, std::vector<double> upper_bounds);

  // Updates; the family must be registered with the matching type.
  void counter_add(std::string_view name, const Labels& labels, double delta);
  // For totals kept elsewhere (the engine's counters): sets the value, never lowering it.
  void counter_set(std::string_view name, const Labels& labels, double total);
  void gauge_set(std::string_view name, const Labels& labels, double value);
  void histogram_observe(std::string_view name, const Labels& labels, double value);

  // Current value of a counter or gauge series (0 when absent); for tests.
  double value(std::string_view name, const Labels& labels) const;

  std::string render() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Series {
    double value = 0.0;
    std::vector<double> bucket_counts;  // histograms: per upper bound, not cumulative
    double sum = 0.0;
    double count = 0.0;
  };
  struct Family {
    Type type;
    std::string help;
    std::vector<double> upper_bounds;
    std::vector<std::pair<Labels, Series>> series;  // in creation order
  };
  Family& family(std::string_view name, Type type) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static Series& series(Family& f, const Labels& labels);

  mutable absl::Mutex mu_;
  std::vector<std::pair<std::string, Family>> families_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moeserve::net
