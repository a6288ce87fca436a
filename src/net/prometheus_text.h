// The Prometheus text exposition format 0.0.4, both ways. Writing: numbers in Python
// prometheus_client's format (what vLLM serves: "1.0", "0.001", "1e+06", "+Inf"), escaped
// label values and HELP text, family headers and sample lines; every /metrics of this project
// (the server's MetricsRegistry, the router's own metrics and collectors) is written with
// these. Reading: the sample lines of a scraped exposition (the router's scraper) and the
// merge of several expositions into one (the data-parallel front's /metrics).
//
// Thread-safety: pure functions.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace moeserve::net {

// Label name/value pairs, written in the given order.
using Labels = std::vector<std::pair<std::string, std::string>>;

// prometheus_client's floatToGoString.
std::string prometheus_number(double v);
// Escapes a label value (backslash, double quote, newline).
std::string escape_label_value(std::string_view v);
// Escapes HELP text (backslash, newline).
std::string escape_help(std::string_view v);

// Appends `# HELP <name> <help>` and `# TYPE <name> <type>` ("counter", "gauge", "histogram").
void append_family_header(std::string* out, std::string_view name, std::string_view type,
                          std::string_view help);
// `{k="v",…}` with the values escaped, and `le="<le>"` last when `le` is given; "" when there
// is neither.
std::string label_set(const Labels& labels, const std::string* le = nullptr);
// Appends one sample line: `<name><label_set> <prometheus_number(value)>`.
void append_sample(std::string* out, std::string_view name, const Labels& labels, double value,
                   const std::string* le = nullptr);

struct PromSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// Parses every sample line; comments and blank lines are skipped. A malformed line is an error
// naming its line number.
StatusOr<std::vector<PromSample>> parse_prometheus_text(std::string_view text);

// Merges several expositions (e.g. the /metrics of every data-parallel rank) into one: each
// metric family whose name starts with `name_prefix` appears once, with its HELP and TYPE lines
// from the first text that has it and the sample lines of every text, in order. Samples must
// already differ by their labels (vLLM's `engine` label does that for DP ranks). Families are
// recognised by their `# TYPE` / `# HELP` lines (histogram _bucket/_sum/_count samples belong to
// the family declared before them).
std::string merge_exposition_families(const std::vector<std::string>& texts,
                                      std::string_view name_prefix);

}  // namespace moeserve::net
