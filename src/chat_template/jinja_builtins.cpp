#include "chat_template/jinja_builtins.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <unordered_map>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"

namespace moeserve::jinja {
namespace {

Status type_error(std::string_view what, const Value& v) {
  return absl::InvalidArgumentError(
      absl::StrCat(std::string(what), ": unsupported value of type '", v.type_name(), "'"));
}

bool is_py_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string strip_chars(std::string_view s, const Value* chars, bool left, bool right) {
  auto strip_this = [&](char c) {
    if (chars == nullptr || chars->is_none() || !chars->is_string()) return is_py_space(c);
    return chars->as_string().find(c) != std::string::npos;
  };
  size_t b = 0;
  size_t e = s.size();
  if (left) {
    while (b < e && strip_this(s[b])) ++b;
  }
  if (right) {
    while (e > b && strip_this(s[e - 1])) --e;
  }
  return std::string(s.substr(b, e - b));
}

StatusOr<Value> split(const std::string& s, const Value* sep_v, const Value* max_v,
                      bool from_right) {
  int64_t maxsplit = -1;
  if (max_v != nullptr && max_v->is_int()) maxsplit = max_v->as_int();
  ValueList out;
  if (sep_v == nullptr || sep_v->is_none()) {
    // Whitespace split, runs collapse, ends ignored.
    std::vector<std::pair<size_t, size_t>> words;
    size_t i = 0;
    while (i < s.size()) {
      while (i < s.size() && is_py_space(s[i])) ++i;
      if (i >= s.size()) break;
      size_t j = i;
      while (j < s.size() && !is_py_space(s[j])) ++j;
      words.emplace_back(i, j);
      i = j;
    }
    if (maxsplit >= 0 && static_cast<int64_t>(words.size()) > maxsplit + 1) {
      if (!from_right) {
        size_t keep = static_cast<size_t>(maxsplit);
        for (size_t k = 0; k < keep; ++k) {
          out.emplace_back(s.substr(words[k].first, words[k].second - words[k].first));
        }
        out.emplace_back(strip_chars(s.substr(words[keep].first), nullptr, false, true));
      } else {
        size_t first_tail = words.size() - static_cast<size_t>(maxsplit);
        out.emplace_back(
            strip_chars(s.substr(0, words[first_tail - 1].second), nullptr, true, false));
        for (size_t k = first_tail; k < words.size(); ++k) {
          out.emplace_back(s.substr(words[k].first, words[k].second - words[k].first));
        }
      }
    } else {
      for (auto [a, b] : words) out.emplace_back(s.substr(a, b - a));
    }
    return Value::list(std::move(out));
  }
  if (!sep_v->is_string()) return type_error("split separator", *sep_v);
  const std::string& sep = sep_v->as_string();
  if (sep.empty()) return absl::InvalidArgumentError("split: empty separator");
  std::vector<size_t> hits;
  for (size_t p = s.find(sep); p != std::string::npos; p = s.find(sep, p + sep.size())) {
    hits.push_back(p);
  }
  if (maxsplit >= 0 && static_cast<int64_t>(hits.size()) > maxsplit) {
    if (from_right) {
      hits.erase(hits.begin(), hits.end() - maxsplit);
    } else {
      hits.resize(static_cast<size_t>(maxsplit));
    }
  }
  size_t start = 0;
  for (size_t h : hits) {
    out.emplace_back(s.substr(start, h - start));
    start = h + sep.size();
  }
  out.emplace_back(s.substr(start));
  return Value::list(std::move(out));
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to,
                        int64_t count) {
  if (from.empty()) {
    // Python inserts `to` between every character (and at both ends).
    std::string out;
    int64_t n = 0;
    for (size_t i = 0; i <= s.size(); ++i) {
      if (count < 0 || n < count) {
        out += to;
        ++n;
      }
      if (i < s.size()) out += s[i];
    }
    return out;
  }
  std::string out;
  size_t start = 0;
  int64_t n = 0;
  for (size_t p = s.find(from); p != std::string::npos && (count < 0 || n < count);
       p = s.find(from, start)) {
    out.append(s, start, p - start);
    out += to;
    start = p + from.size();
    ++n;
  }
  out.append(s, start);
  return out;
}

std::string capitalize(const std::string& s) {
  std::string out = absl::AsciiStrToLower(s);
  if (!out.empty()) out[0] = absl::ascii_toupper(out[0]);
  return out;
}

std::string title(const std::string& s) {
  std::string out = s;
  bool prev_alpha = false;
  for (char& c : out) {
    bool alpha = absl::ascii_isalpha(c);
    if (alpha) c = prev_alpha ? absl::ascii_tolower(c) : absl::ascii_toupper(c);
    prev_alpha = alpha;
  }
  return out;
}

// Items of an iterable: list elements, dict keys, string characters (UTF-8 code points).
StatusOr<ValueList> iterate(const Value& v) {
  if (v.is_list()) return v.as_list();
  if (v.is_dict()) {
    ValueList keys;
    for (const auto& [k, _] : v.as_dict().items) keys.emplace_back(k);
    return keys;
  }
  if (v.is_string()) {
    ValueList chars;
    const std::string& s = v.as_string();
    for (size_t i = 0; i < s.size();) {
      size_t n = 1;
      unsigned char c = static_cast<unsigned char>(s[i]);
      if (c >= 0xF0)
        n = 4;
      else if (c >= 0xE0)
        n = 3;
      else if (c >= 0xC0)
        n = 2;
      n = std::min(n, s.size() - i);
      chars.emplace_back(s.substr(i, n));
      i += n;
    }
    return chars;
  }
  if (v.is_undefined() || v.is_none()) return ValueList{};
  return type_error("iteration", v);
}

// Attribute lookup for filters with attribute= (dotted paths like "function.name").
Value get_attribute(const Value& v, std::string_view path) {
  Value cur = v;
  while (!path.empty()) {
    size_t dot = path.find('.');
    std::string_view part = path.substr(0, dot);
    path = dot == std::string_view::npos ? std::string_view() : path.substr(dot + 1);
    if (cur.is_dict()) {
      const Value* f = cur.as_dict().find(part);
      cur = f ? *f : Value::undefined(std::string(part));
    } else if (cur.is_list()) {
      int64_t idx = 0;
      bool ok = !part.empty() && absl::SimpleAtoi(std::string(part), &idx);
      const ValueList& l = cur.as_list();
      if (ok && idx < 0) idx += static_cast<int64_t>(l.size());
      cur = ok && idx >= 0 && idx < static_cast<int64_t>(l.size())
                ? l[static_cast<size_t>(idx)]
                : Value::undefined(std::string(part));
    } else {
      return Value::undefined(std::string(part));
    }
  }
  return cur;
}

StatusOr<Value> length_of(const Value& v) {
  if (v.is_string()) {
    int64_t n = 0;
    for (unsigned char c : v.as_string()) {
      if ((c & 0xC0) != 0x80) ++n;
    }
    return Value(n);
  }
  if (v.is_list()) return Value(static_cast<int64_t>(v.as_list().size()));
  if (v.is_dict()) return Value(static_cast<int64_t>(v.as_dict().items.size()));
  if (v.is_undefined()) return Value(int64_t{0});
  return type_error("length", v);
}

StatusOr<Value> sort_values(ValueList items, bool reverse, const Value* attribute,
                            bool case_sensitive) {
  Status err = absl::OkStatus();
  auto key = [&](const Value& v) {
    Value k = attribute && attribute->is_string() ? get_attribute(v, attribute->as_string()) : v;
    if (!case_sensitive && k.is_string()) return Value(absl::AsciiStrToLower(k.as_string()));
    return k;
  };
  std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
    if (!err.ok()) return false;
    StatusOr<bool> lt = reverse ? value_less(key(b), key(a)) : value_less(key(a), key(b));
    if (!lt.ok()) {
      err = lt.status();
      return false;
    }
    return *lt;
  });
  MS_RETURN_IF_ERROR(err);
  return Value::list(std::move(items));
}

bool flag(const Value* v, bool def) {
  return v == nullptr ? def : v->truthy();
}

StatusOr<Value> filter_select_reject(std::string_view name, const Value& subject,
                                     const CallArgs& args) {
  // select/reject(test, args…) and selectattr/rejectattr(attr, test, args…).
  bool by_attr = name == "selectattr" || name == "rejectattr";
  bool keep_if = name == "select" || name == "selectattr";
  MS_ASSIGN_OR_RETURN(ValueList items, iterate(subject));
  size_t first_test_arg = by_attr ? 1 : 0;
  std::string attr;
  if (by_attr) {
    if (args.args.empty() || !args.args[0].is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(std::string(name), ": missing attribute name"));
    }
    attr = args.args[0].as_string();
  }
  std::string test_name = "truthy";
  CallArgs test_args;
  if (args.args.size() > first_test_arg) {
    if (!args.args[first_test_arg].is_string()) return type_error(name, args.args[first_test_arg]);
    test_name = args.args[first_test_arg].as_string();
    test_args.args.assign(args.args.begin() + static_cast<long>(first_test_arg) + 1,
                          args.args.end());
  }
  ValueList out;
  for (const Value& item : items) {
    Value v = by_attr ? get_attribute(item, attr) : item;
    bool pass;
    if (test_name == "truthy") {
      pass = v.truthy();
    } else {
      MS_ASSIGN_OR_RETURN(pass, apply_test(test_name, v, test_args));
    }
    if (pass == keep_if) out.push_back(item);
  }
  return Value::list(std::move(out));
}

// Filters by name (Jinja2's names and aliases). Each takes the name it was called by, for
// the ones that share an implementation (first/last, min/max, select/reject, ...).
using FilterFn = StatusOr<Value> (*)(std::string_view name, const Value& subject,
                                     const CallArgs& args);

StatusOr<Value> filter_trim(std::string_view, const Value& v, const CallArgs& args) {
  if (!v.is_string()) return Value(strip_chars(v.str(), args.get(0, "chars"), true, true));
  return Value(strip_chars(v.as_string(), args.get(0, "chars"), true, true));
}

StatusOr<Value> filter_length(std::string_view, const Value& v, const CallArgs&) {
  return length_of(v);
}

StatusOr<Value> filter_tojson(std::string_view, const Value& v, const CallArgs& args) {
  const Value* indent = args.get(0, "indent");
  int ind = indent && indent->is_int()
                ? static_cast<int>(std::clamp<int64_t>(indent->as_int(), 0, 64))
                : -1;
  MS_ASSIGN_OR_RETURN(std::string s, v.to_json(ind));
  return Value(std::move(s));
}

StatusOr<Value> filter_string(std::string_view, const Value& v, const CallArgs&) {
  return Value(v.str());
}

StatusOr<Value> filter_escape(std::string_view name, const Value& v, const CallArgs&) {
  if (name == "safe") return v;
  // Autoescape is off for chat templates; escape still converts to HTML-safe text.
  std::string out;
  for (char c : v.str()) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return Value(std::move(out));
}

StatusOr<Value> filter_upper(std::string_view, const Value& v, const CallArgs&) {
  return Value(absl::AsciiStrToUpper(v.str()));
}

StatusOr<Value> filter_lower(std::string_view, const Value& v, const CallArgs&) {
  return Value(absl::AsciiStrToLower(v.str()));
}

StatusOr<Value> filter_capitalize(std::string_view, const Value& v, const CallArgs&) {
  return Value(capitalize(v.str()));
}

StatusOr<Value> filter_title(std::string_view, const Value& v, const CallArgs&) {
  return Value(title(v.str()));
}

StatusOr<Value> filter_default(std::string_view, const Value& v, const CallArgs& args) {
  const Value* def = args.get(0, "default_value");
  bool boolean = flag(args.get(1, "boolean"), false);
  if (v.is_undefined() || (boolean && !v.truthy())) return def ? *def : Value(std::string());
  return v;
}

StatusOr<Value> filter_join(std::string_view, const Value& v, const CallArgs& args) {
  const Value* sep = args.get(0, "d");
  const Value* attr = args.get(1, "attribute");
  std::string s = sep && sep->is_string() ? sep->as_string() : std::string();
  MS_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += s;
    out += attr && attr->is_string() ? get_attribute(items[i], attr->as_string()).str()
                                     : items[i].str();
    if (out.size() > kMaxBuiltinSize) return absl::ResourceExhaustedError("join: result too large");
  }
  return Value(std::move(out));
}

StatusOr<Value> filter_replace(std::string_view, const Value& v, const CallArgs& args) {
  const Value* from = args.get(0, "old");
  const Value* to = args.get(1, "new");
  const Value* count = args.get(2, "count");
  if (!from || !to) return absl::InvalidArgumentError("replace: expects (old, new)");
  std::string out =
      replace_all(v.str(), from->str(), to->str(), count && count->is_int() ? count->as_int() : -1);
  if (out.size() > kMaxBuiltinSize)
    return absl::ResourceExhaustedError("replace: result too large");
  return Value(std::move(out));
}

StatusOr<Value> filter_first_last(std::string_view name, const Value& v, const CallArgs&) {
  MS_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  if (items.empty()) return Value::undefined(std::string(name));
  return name == "first" ? items.front() : items.back();
}

StatusOr<Value> filter_list(std::string_view, const Value& v, const CallArgs&) {
  MS_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  return Value::list(std::move(items));
}

StatusOr<Value> filter_reverse(std::string_view, const Value& v, const CallArgs&) {
  if (v.is_string()) {
    MS_ASSIGN_OR_RETURN(ValueList chars, iterate(v));
    std::string out;
    for (auto it = chars.rbegin(); it != chars.rend(); ++it) out += it->as_string();
    return Value(std::move(out));
  }
  MS_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}

StatusOr<Value> filter_dict_items(std::string_view name, const Value& v, const CallArgs& args) {
  if (v.is_undefined()) return Value::list();
  if (!v.is_dict()) return type_error(name, v);
  ValueList out;
  for (const auto& [k, e] : v.as_dict().items) out.push_back(Value::list({Value(k), e}));
  if (name == "dictsort") {
    Value by_key("0");
    return sort_values(std::move(out), flag(args.get(2, "reverse"), false), &by_key,
                       flag(args.get(0, "case_sensitive"), false));
  }
  return Value::list(std::move(out));
}

StatusOr<Value> filter_sort(std::string_view, const Value& v, const CallArgs& args) {
  MS_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  return sort_values(std::move(items), flag(args.get(0, "reverse"), false),
                     args.get(2, "attribute"), flag(args.get(1, "case_sensitive"), false));
}

StatusOr<Value> filter_unique(std::string_view, const Value& v, const CallArgs&) {
  MS_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  ValueList out;
  for (const Value& item : items) {
    bool seen = false;
    for (const Value& o : out) seen = seen || values_equal(o, item);
    if (!seen) out.push_back(item);
  }
  return Value::list(std::move(out));
}

StatusOr<Value> filter_int(std::string_view, const Value& v, const CallArgs& args) {
  if (v.is_int()) return v;
  if (v.is_bool()) return Value(int64_t{v.as_bool() ? 1 : 0});
  if (v.is_float() && std::isfinite(v.as_double()) && std::fabs(v.as_double()) < 9.2e18) {
    return Value(static_cast<int64_t>(v.as_double()));
  }
  int64_t i = 0;
  if (v.is_string() && absl::SimpleAtoi(absl::StripAsciiWhitespace(v.as_string()), &i))
    return Value(i);
  const Value* def = args.get(0, "default");
  return def ? *def : Value(int64_t{0});
}

StatusOr<Value> filter_float(std::string_view, const Value& v, const CallArgs& args) {
  if (v.is_number() || v.is_bool()) return Value(v.as_double());
  double d = 0;
  if (v.is_string() && absl::SimpleAtod(absl::StripAsciiWhitespace(v.as_string()), &d))
    return Value(d);
  const Value* def = args.get(0, "default");
  return def ? *def : Value(0.0);
}

StatusOr<Value> filter_abs(std::string_view, const Value& v, const CallArgs&) {
  if (v.is_int()) {
    if (v.as_int() == INT64_MIN) return absl::InvalidArgumentError("abs: integer overflow");
    return Value(v.as_int() < 0 ? -v.as_int() : v.as_int());
  }
  if (v.is_float()) return Value(std::fabs(v.as_double()));
  return type_error("abs", v);
}

StatusOr<Value> filter_round(std::string_view, const Value& v, const CallArgs& args) {
  if (!v.is_number()) return type_error("round", v);
  const Value* prec = args.get(0, "precision");
  int64_t p = prec && prec->is_int() ? std::clamp<int64_t>(prec->as_int(), 0, 15) : 0;
  double scale = std::pow(10.0, static_cast<double>(p));
  return Value(std::round(v.as_double() * scale) / scale);
}

StatusOr<Value> filter_indent(std::string_view, const Value& v, const CallArgs& args) {
  const Value* width_v = args.get(0, "width");
  int64_t width = width_v && width_v->is_int() ? std::clamp<int64_t>(width_v->as_int(), 0, 256) : 4;
  std::string pad = width_v && width_v->is_string() ? width_v->as_string()
                                                    : std::string(static_cast<size_t>(width), ' ');
  bool first = flag(args.get(1, "first"), false);
  bool blank = flag(args.get(2, "blank"), false);
  std::string s = v.str();
  std::string out;
  size_t start = 0;
  bool is_first = true;
  while (start <= s.size()) {
    size_t nl = s.find('\n', start);
    std::string_view line =
        std::string_view(s).substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    if ((!is_first || first) && (blank || !line.empty())) out += pad;
    out += line;
    if (nl == std::string::npos) break;
    out += '\n';
    start = nl + 1;
    is_first = false;
  }
  return Value(std::move(out));
}

StatusOr<Value> filter_map(std::string_view, const Value& v, const CallArgs& args) {
  MS_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  const Value* attr = nullptr;
  for (const auto& [k, a] : args.kwargs) {
    if (k == "attribute") attr = &a;
  }
  ValueList out;
  if (attr != nullptr) {
    const Value* def = nullptr;
    for (const auto& [k, a] : args.kwargs) {
      if (k == "default") def = &a;
    }
    for (const Value& item : items) {
      Value r = get_attribute(item, attr->str());
      out.push_back(r.is_undefined() && def ? *def : r);
    }
    return Value::list(std::move(out));
  }
  if (args.args.empty() || !args.args[0].is_string()) {
    return absl::InvalidArgumentError("map: expects a filter name or attribute=");
  }
  CallArgs rest;
  rest.args.assign(args.args.begin() + 1, args.args.end());
  for (const Value& item : items) {
    MS_ASSIGN_OR_RETURN(Value r, apply_filter(args.args[0].as_string(), item, rest));
    out.push_back(std::move(r));
  }
  return Value::list(std::move(out));
}

StatusOr<Value> filter_min_max(std::string_view name, const Value& v, const CallArgs&) {
  MS_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  if (items.empty()) return Value::undefined(std::string(name));
  Value best = items[0];
  for (size_t i = 1; i < items.size(); ++i) {
    MS_ASSIGN_OR_RETURN(bool lt,
                        name == "min" ? value_less(items[i], best) : value_less(best, items[i]));
    if (lt) best = items[i];
  }
  return best;
}

StatusOr<Value> filter_sum(std::string_view, const Value& v, const CallArgs& args) {
  MS_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  const Value* start = args.get(1, "start");
  Value total = start ? *start : Value(int64_t{0});
  for (const Value& item : items) {
    if (!item.is_number() || !total.is_number()) return type_error("sum", item);
    if (item.is_int() && total.is_int()) {
      int64_t r;
      if (__builtin_add_overflow(total.as_int(), item.as_int(), &r)) {
        return absl::InvalidArgumentError("sum: integer overflow");
      }
      total = Value(r);
    } else {
      total = Value(total.as_double() + item.as_double());
    }
  }
  return total;
}

const std::unordered_map<std::string_view, FilterFn>& filter_table() {
  static const auto* table = new std::unordered_map<std::string_view, FilterFn>{
      {"abs", filter_abs},
      {"capitalize", filter_capitalize},
      {"count", filter_length},
      {"d", filter_default},
      {"default", filter_default},
      {"dictsort", filter_dict_items},
      {"e", filter_escape},
      {"escape", filter_escape},
      {"first", filter_first_last},
      {"float", filter_float},
      {"forceescape", filter_escape},
      {"indent", filter_indent},
      {"int", filter_int},
      {"items", filter_dict_items},
      {"join", filter_join},
      {"last", filter_first_last},
      {"length", filter_length},
      {"list", filter_list},
      {"lower", filter_lower},
      {"map", filter_map},
      {"max", filter_min_max},
      {"min", filter_min_max},
      {"reject", filter_select_reject},
      {"rejectattr", filter_select_reject},
      {"replace", filter_replace},
      {"reverse", filter_reverse},
      {"round", filter_round},
      {"safe", filter_escape},
      {"select", filter_select_reject},
      {"selectattr", filter_select_reject},
      {"sort", filter_sort},
      {"string", filter_string},
      {"sum", filter_sum},
      {"title", filter_title},
      {"tojson", filter_tojson},
      {"trim", filter_trim},
      {"unique", filter_unique},
      {"upper", filter_upper},
  };
  return *table;
}

}  // namespace

StatusOr<Value> apply_filter(std::string_view name, const Value& v, const CallArgs& args) {
  const auto& table = filter_table();
  auto it = table.find(name);
  if (it == table.end()) {
    return absl::NotFoundError(absl::StrCat("no filter named '", std::string(name), "'"));
  }
  return it->second(name, v, args);
}

StatusOr<bool> apply_test(std::string_view name, const Value& v, const CallArgs& args) {
  const Value* arg = args.get(0, "value");
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "mapping") return v.is_dict();
  if (name == "sequence") return v.is_list() || v.is_string() || v.is_dict();
  if (name == "iterable") return v.is_list() || v.is_string() || v.is_dict();
  if (name == "callable") return v.is_callable();
  if (name == "lower")
    return v.is_string() && absl::AsciiStrToLower(v.as_string()) == v.as_string();
  if (name == "upper")
    return v.is_string() && absl::AsciiStrToUpper(v.as_string()) == v.as_string();
  if (name == "odd" || name == "even") {
    if (!v.is_int()) return type_error(name, v);
    return ((v.as_int() % 2) != 0) == (name == "odd");
  }
  if (name == "divisibleby") {
    if (!v.is_int() || arg == nullptr || !arg->is_int() || arg->as_int() == 0) {
      return absl::InvalidArgumentError("divisibleby: expects two integers, divisor non-zero");
    }
    if (arg->as_int() == -1) return true;
    return v.as_int() % arg->as_int() == 0;
  }
  if (arg == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("test '", std::string(name), "' needs an argument"));
  }
  if (name == "eq" || name == "equalto" || name == "==") return values_equal(v, *arg);
  if (name == "ne" || name == "!=") return !values_equal(v, *arg);
  if (name == "sameas") {
    if (v.is_list() && arg->is_list()) return &v.as_list() == &arg->as_list();
    if (v.is_dict() && arg->is_dict()) return &v.as_dict() == &arg->as_dict();
    return values_equal(v, *arg) && v.type_name() == arg->type_name();
  }
  if (name == "lt" || name == "lessthan") return value_less(v, *arg);
  if (name == "gt" || name == "greaterthan") return value_less(*arg, v);
  if (name == "le" || name == "ge") {
    MS_ASSIGN_OR_RETURN(bool lt, name == "le" ? value_less(*arg, v) : value_less(v, *arg));
    return !lt;
  }
  if (name == "in") {
    if (arg->is_string())
      return v.is_string() && arg->as_string().find(v.as_string()) != std::string::npos;
    MS_ASSIGN_OR_RETURN(ValueList items, iterate(*arg));
    for (const Value& item : items) {
      if (values_equal(item, v)) return true;
    }
    return false;
  }
  return absl::NotFoundError(absl::StrCat("no test named '", std::string(name), "'"));
}

StatusOr<Value> call_method(const Value& obj, std::string_view name, const CallArgs& args) {
  if (obj.is_string()) {
    const std::string& s = obj.as_string();
    if (name == "startswith" || name == "endswith") {
      const Value* p = args.get(0, "prefix");
      if (p == nullptr)
        return absl::InvalidArgumentError(absl::StrCat(std::string(name), ": missing argument"));
      ValueList options = p->is_list() ? p->as_list() : ValueList{*p};
      for (const Value& o : options) {
        if (!o.is_string()) return type_error(name, o);
        if (name == "startswith" ? std::string_view(s).starts_with(o.as_string())
                                 : std::string_view(s).ends_with(o.as_string())) {
          return Value(true);
        }
      }
      return Value(false);
    }
    if (name == "split" || name == "rsplit") {
      return split(s, args.get(0, "sep"), args.get(1, "maxsplit"), name == "rsplit");
    }
    if (name == "strip") return Value(strip_chars(s, args.get(0, "chars"), true, true));
    if (name == "lstrip") return Value(strip_chars(s, args.get(0, "chars"), true, false));
    if (name == "rstrip") return Value(strip_chars(s, args.get(0, "chars"), false, true));
    if (name == "upper") return Value(absl::AsciiStrToUpper(s));
    if (name == "lower") return Value(absl::AsciiStrToLower(s));
    if (name == "title") return Value(title(s));
    if (name == "capitalize") return Value(capitalize(s));
    if (name == "replace") {
      const Value* from = args.get(0, "old");
      const Value* to = args.get(1, "new");
      const Value* count = args.get(2, "count");
      if (!from || !to || !from->is_string() || !to->is_string()) {
        return absl::InvalidArgumentError("replace: expects two strings");
      }
      std::string out = replace_all(s, from->as_string(), to->as_string(),
                                    count && count->is_int() ? count->as_int() : -1);
      if (out.size() > kMaxBuiltinSize)
        return absl::ResourceExhaustedError("replace: result too large");
      return Value(std::move(out));
    }
    if (name == "find" || name == "count") {
      const Value* sub = args.get(0, "sub");
      if (!sub || !sub->is_string())
        return absl::InvalidArgumentError(absl::StrCat(std::string(name), ": expects a string"));
      const std::string& t = sub->as_string();
      if (name == "find") {
        size_t p = s.find(t);
        return Value(p == std::string::npos ? int64_t{-1} : static_cast<int64_t>(p));
      }
      if (t.empty()) return Value(static_cast<int64_t>(s.size() + 1));
      int64_t n = 0;
      for (size_t p = s.find(t); p != std::string::npos; p = s.find(t, p + t.size())) ++n;
      return Value(n);
    }
    if (name == "splitlines") {
      ValueList out;
      size_t start = 0;
      for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\n' || s[i] == '\r') {
          out.emplace_back(s.substr(start, i - start));
          if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
          start = i + 1;
        }
      }
      if (start < s.size()) out.emplace_back(s.substr(start));
      return Value::list(std::move(out));
    }
    if (name == "join") {
      if (args.args.empty()) return absl::InvalidArgumentError("join: missing argument");
      MS_ASSIGN_OR_RETURN(ValueList items, iterate(args.args[0]));
      std::string out;
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out += s;
        out += items[i].str();
        if (out.size() > kMaxBuiltinSize)
          return absl::ResourceExhaustedError("join: result too large");
      }
      return Value(std::move(out));
    }
    if (name == "format") {
      // Only positional "{}" placeholders, as templates use them.
      std::string out;
      size_t next = 0;
      for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '{' && i + 1 < s.size() && s[i + 1] == '}') {
          if (next >= args.args.size())
            return absl::InvalidArgumentError("format: too few arguments");
          out += args.args[next++].str();
          ++i;
        } else {
          out += s[i];
        }
      }
      return Value(std::move(out));
    }
  }
  if (obj.is_dict()) {
    const ValueDict& d = obj.as_dict();
    if (name == "items" || name == "keys" || name == "values") {
      ValueList out;
      for (const auto& [k, e] : d.items) {
        if (name == "items")
          out.push_back(Value::list({Value(k), e}));
        else if (name == "keys")
          out.emplace_back(k);
        else
          out.push_back(e);
      }
      return Value::list(std::move(out));
    }
    if (name == "get") {
      const Value* key = args.get(0, "key");
      const Value* def = args.get(1, "default");
      if (key == nullptr) return absl::InvalidArgumentError("get: missing key");
      const Value* f = key->is_string() ? d.find(key->as_string()) : nullptr;
      if (f != nullptr) return *f;
      return def ? *def : Value::none();
    }
  }
  if (obj.is_list()) {
    ValueList& l = obj.as_list();
    if (name == "append") {
      if (args.args.size() != 1) return absl::InvalidArgumentError("append: expects one argument");
      if (l.size() >= kMaxBuiltinSize)
        return absl::ResourceExhaustedError("append: list too large");
      l.push_back(args.args[0]);
      return Value::none();
    }
    if (name == "index" || name == "count") {
      if (args.args.size() != 1)
        return absl::InvalidArgumentError(
            absl::StrCat(std::string(name), ": expects one argument"));
      int64_t n = 0;
      for (size_t i = 0; i < l.size(); ++i) {
        if (values_equal(l[i], args.args[0])) {
          if (name == "index") return Value(static_cast<int64_t>(i));
          ++n;
        }
      }
      if (name == "index") return absl::InvalidArgumentError("index: value is not in list");
      return Value(n);
    }
  }
  return absl::NotFoundError(
      absl::StrCat("'", obj.type_name(), "' object has no method '", std::string(name), "'"));
}

Value global_function(std::string_view name) {
  auto make = [&](std::function<StatusOr<Value>(CallArgs&)> fn) {
    auto c = std::make_shared<Callable>();
    c->name = std::string(name);
    c->fn = std::move(fn);
    return Value(std::move(c));
  };
  if (name == "namespace" || name == "dict") {
    bool ns = name == "namespace";
    return make([ns](CallArgs& a) -> StatusOr<Value> {
      Value d = Value::dict();
      d.as_dict().is_namespace = ns;
      for (const Value& pos : a.args) {  // dict(mapping) / namespace(mapping)
        if (!pos.is_dict()) return type_error(ns ? "namespace" : "dict", pos);
        for (const auto& [k, v] : pos.as_dict().items) d.as_dict().set(k, v);
      }
      for (auto& [k, v] : a.kwargs) d.as_dict().set(k, v);
      return d;
    });
  }
  if (name == "range") {
    return make([](CallArgs& a) -> StatusOr<Value> {
      int64_t start = 0;
      int64_t stop = 0;
      int64_t step = 1;
      for (const Value& v : a.args) {
        if (!v.is_int()) return type_error("range", v);
      }
      if (a.args.size() == 1) {
        stop = a.args[0].as_int();
      } else if (a.args.size() == 2 || a.args.size() == 3) {
        start = a.args[0].as_int();
        stop = a.args[1].as_int();
        if (a.args.size() == 3) step = a.args[2].as_int();
      } else {
        return absl::InvalidArgumentError("range: expects 1 to 3 integer arguments");
      }
      if (step == 0) return absl::InvalidArgumentError("range: step must not be zero");
      double count = std::ceil((static_cast<double>(stop) - static_cast<double>(start)) /
                               static_cast<double>(step));
      if (count > static_cast<double>(kMaxBuiltinSize) / 16) {
        return absl::ResourceExhaustedError("range: too many items");
      }
      ValueList out;
      for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
        out.emplace_back(i);
        if (out.size() >= kMaxBuiltinSize / 16) break;
      }
      return Value::list(std::move(out));
    });
  }
  if (name == "raise_exception") {
    return make([](CallArgs& a) -> StatusOr<Value> {
      std::string msg = a.args.empty() ? std::string("raise_exception called") : a.args[0].str();
      return absl::InvalidArgumentError(absl::StrCat("chat template raised: ", std::string(msg)));
    });
  }
  if (name == "strftime_now") {
    return make([](CallArgs& a) -> StatusOr<Value> {
      if (a.args.empty() || !a.args[0].is_string()) {
        return absl::InvalidArgumentError("strftime_now: expects a format string");
      }
      std::time_t now = std::time(nullptr);
      std::tm tm{};
      localtime_r(&now, &tm);
      char buf[256];
      size_t n = std::strftime(buf, sizeof(buf), a.args[0].as_string().c_str(), &tm);
      return Value(std::string(buf, n));
    });
  }
  return Value::undefined(std::string(name));
}

}  // namespace moeserve::jinja
