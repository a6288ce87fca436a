#include "tokenizer/pretokenizer.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "tokenizer/byte_level.h"
#include "tokenizer/regex.h"

namespace moeserve {

// One stage of the pipeline: replaces each word of `in` by its sub-words, appended to *out.
class PreTokenizerStep {
 public:
  virtual ~PreTokenizerStep() = default;
  virtual void apply(std::vector<std::string>& in, std::vector<std::string>* out) const = 0;
};

namespace {

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct Segment {
  size_t begin;
  size_t end;
  bool flag;  // is_match while classifying; "remove" after the behavior is applied
};

// HF's NormalizedString::split, on byte ranges: `segments` covers the word, each marked
// whether it is a match; returns the ranges to keep.
void apply_behavior(std::vector<Segment>& segs, SplitBehavior behavior, bool invert,
                    std::vector<Segment>* out) {
  if (invert) {
    for (Segment& s : segs) s.flag = !s.flag;
  }
  out->clear();
  switch (behavior) {
    case SplitBehavior::kRemoved:
      for (const Segment& s : segs) out->push_back(s);  // matches are removed
      break;
    case SplitBehavior::kIsolated:
      for (const Segment& s : segs) out->push_back({s.begin, s.end, false});
      break;
    case SplitBehavior::kContiguous: {
      bool previous_match = false;
      for (const Segment& s : segs) {
        if (s.flag == previous_match && !out->empty()) {
          out->back().end = s.end;
        } else {
          out->push_back({s.begin, s.end, false});
        }
        previous_match = s.flag;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const Segment& s : segs) {
        if (s.flag && !previous_match && !out->empty()) {
          out->back().end = s.end;
        } else {
          out->push_back({s.begin, s.end, false});
        }
        previous_match = s.flag;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous_match = false;
      for (auto it = segs.rbegin(); it != segs.rend(); ++it) {
        if (it->flag && !previous_match && !out->empty()) {
          out->back().begin = it->begin;
        } else {
          out->push_back({it->begin, it->end, false});
        }
        previous_match = it->flag;
      }
      std::reverse(out->begin(), out->end());
      break;
    }
  }
}

class SplitStep final : public PreTokenizerStep {
 public:
  SplitStep(std::optional<Regex> regex, std::string literal, SplitBehavior behavior, bool invert)
      : regex_(std::move(regex)), literal_(std::move(literal)), behavior_(behavior),
        invert_(invert) {}

  void apply(std::vector<std::string>& in, std::vector<std::string>* out) const override {
    std::vector<std::pair<size_t, size_t>> matches;
    std::vector<Segment> segs, kept;
    for (const std::string& word : in) {
      matches.clear();
      find_matches(word, &matches);
      segs.clear();
      size_t prev = 0;
      for (const auto& [b, e] : matches) {
        if (b > prev) segs.push_back({prev, b, false});
        segs.push_back({b, e, true});
        prev = e;
      }
      if (prev < word.size()) segs.push_back({prev, word.size(), false});
      apply_behavior(segs, behavior_, invert_, &kept);
      for (const Segment& s : kept) {
        if (!s.flag && s.end > s.begin) out->emplace_back(word, s.begin, s.end - s.begin);
      }
    }
  }

 private:
  void find_matches(std::string_view word, std::vector<std::pair<size_t, size_t>>* out) const {
    if (regex_) {
      regex_->find_all(word, out);
      return;
    }
    if (literal_.empty()) return;
    for (size_t pos = word.find(literal_); pos != std::string_view::npos;
         pos = word.find(literal_, pos + literal_.size())) {
      out->emplace_back(pos, pos + literal_.size());
    }
  }

  std::optional<Regex> regex_;  // Regex pattern, or
  std::string literal_;         // String pattern
  SplitBehavior behavior_;
  bool invert_;
};

const StatusOr<Regex>& gpt2_regex() {
  static const StatusOr<Regex> re = Regex::compile(kGpt2SplitRegex);
  return re;
}

class ByteLevelStep final : public PreTokenizerStep {
 public:
  ByteLevelStep(bool add_prefix_space, const Regex* regex)
      : add_prefix_space_(add_prefix_space), regex_(regex) {}

  void apply(std::vector<std::string>& in, std::vector<std::string>* out) const override {
    std::vector<std::pair<size_t, size_t>> matches;
    std::string word;
    for (std::string& original : in) {
      word.clear();
      if (add_prefix_space_ && (original.empty() || original[0] != ' ')) word.push_back(' ');
      word += original;
      if (regex_ == nullptr) {
        emit(word, out);
        continue;
      }
      matches.clear();
      regex_->find_all(word, &matches);
      size_t prev = 0;  // Isolated: gaps between matches are words too
      for (const auto& [b, e] : matches) {
        if (b > prev) emit(std::string_view(word).substr(prev, b - prev), out);
        emit(std::string_view(word).substr(b, e - b), out);
        prev = e;
      }
      if (prev < word.size()) emit(std::string_view(word).substr(prev), out);
    }
  }

 private:
  static void emit(std::string_view bytes, std::vector<std::string>* out) {
    if (bytes.empty()) return;
    out->emplace_back();
    out->back().reserve(bytes.size() * 2);
    byte_level_encode(bytes, &out->back());
  }

  bool add_prefix_space_;
  const Regex* regex_;  // the static GPT-2 regex, or nullptr without use_regex
};

}  // namespace

StatusOr<PreTokenizer> PreTokenizer::from_json(const Json& value, const JsonFields& fields,
                                               std::string_view path) {
  PreTokenizer pt;
  if (value.is_null()) return pt;
  MS_RETURN_IF_ERROR(pt.add_from_json(value, fields, std::string(path)));
  return pt;
}

StatusOr<PreTokenizer> PreTokenizer::gpt2_byte_level() {
  const Json value = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  return from_json(value, JsonFields("built-in ByteLevel"), "pre_tokenizer");
}

Status PreTokenizer::add_from_json(const Json& value, const JsonFields& fields,
                                   const std::string& path) {
  MS_ASSIGN_OR_RETURN(std::string type, fields.require_string(value, "type", path));
  if (type == "Sequence") {
    MS_ASSIGN_OR_RETURN(const Json* list, fields.require_array(value, "pretokenizers", path));
    const std::string list_path = JsonFields::join(path, "pretokenizers");
    for (size_t i = 0; i < list->size(); ++i) {
      MS_RETURN_IF_ERROR(add_from_json((*list)[i], fields, JsonFields::index(list_path, i)));
    }
    return absl::OkStatus();
  }
  if (type == "ByteLevel") {
    MS_ASSIGN_OR_RETURN(bool add_prefix_space,
                        fields.optional_bool(value, "add_prefix_space", path, true));
    MS_ASSIGN_OR_RETURN(bool use_regex, fields.optional_bool(value, "use_regex", path, true));
    MS_ASSIGN_OR_RETURN(bool trim_offsets, fields.optional_bool(value, "trim_offsets", path, true));
    (void)trim_offsets;  // affects offsets only, which this tokenizer does not report
    const Regex* regex = nullptr;
    if (use_regex) {
      if (!gpt2_regex().ok()) return gpt2_regex().status();
      regex = &*gpt2_regex();
    }
    steps_.push_back(std::make_shared<ByteLevelStep>(add_prefix_space, regex));
    byte_level_ = true;
    return absl::OkStatus();
  }
  if (type == "Split") {
    MS_ASSIGN_OR_RETURN(const Json* pattern, fields.require_object(value, "pattern", path));
    const std::string pattern_path = JsonFields::join(path, "pattern");
    std::optional<Regex> regex;
    std::string literal;
    if (const Json* re = JsonFields::find(*pattern, "Regex")) {
      MS_ASSIGN_OR_RETURN(std::string text,
                          fields.as_string(*re, JsonFields::join(pattern_path, "Regex")));
      auto compiled = Regex::compile(text);
      if (!compiled.ok()) {
        return fields.error(JsonFields::join(pattern_path, "Regex"), std::string(compiled.status().message()));
      }
      regex = std::move(*compiled);
    } else if (const Json* str = JsonFields::find(*pattern, "String")) {
      MS_ASSIGN_OR_RETURN(literal, fields.as_string(*str, JsonFields::join(pattern_path, "String")));
    } else {
      return fields.error(pattern_path, "expected {\"Regex\": ...} or {\"String\": ...}");
    }
    MS_ASSIGN_OR_RETURN(std::string behavior_name, fields.require_string(value, "behavior", path));
    SplitBehavior behavior;
    if (behavior_name == "Removed") {
      behavior = SplitBehavior::kRemoved;
    } else if (behavior_name == "Isolated") {
      behavior = SplitBehavior::kIsolated;
    } else if (behavior_name == "MergedWithPrevious") {
      behavior = SplitBehavior::kMergedWithPrevious;
    } else if (behavior_name == "MergedWithNext") {
      behavior = SplitBehavior::kMergedWithNext;
    } else if (behavior_name == "Contiguous") {
      behavior = SplitBehavior::kContiguous;
    } else {
      return fields.error(JsonFields::join(path, "behavior"),
                          absl::StrCat("unknown split behavior \"", behavior_name, "\""));
    }
    MS_ASSIGN_OR_RETURN(bool invert, fields.optional_bool(value, "invert", path, false));
    steps_.push_back(std::make_shared<SplitStep>(std::move(regex), std::move(literal), behavior,
                                                 invert));
    return absl::OkStatus();
  }
  return fields.error(JsonFields::join(path, "type"),
                      absl::StrCat("unsupported pre-tokenizer type \"", type,
                                   "\" (supported: ByteLevel, Split, Sequence)"));
}

void PreTokenizer::split(std::string_view text, std::vector<std::string>* out) const {
  if (text.empty()) return;
  std::vector<std::string> cur;
  cur.emplace_back(text);
  std::vector<std::string> next;
  for (const auto& step : steps_) {
    next.clear();
    step->apply(cur, &next);
    cur.swap(next);
  }
  for (std::string& w : cur) {
    if (!w.empty()) out->push_back(std::move(w));
  }
}

}  // namespace moeserve
