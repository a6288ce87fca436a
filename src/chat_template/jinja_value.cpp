#include "chat_template/jinja_value.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace moeserve::jinja {

const Value* ValueDict::find(std::string_view key) const {
  for (const auto& [k, v] : items) {
    if (k == key) return &v;
  }
  return nullptr;
}

void ValueDict::set(std::string key, Value value) {
  for (auto& [k, v] : items) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  items.emplace_back(std::move(key), std::move(value));
}

Value Value::list(ValueList items) {
  return Value(std::make_shared<ValueList>(std::move(items)));
}
Value Value::dict() {
  return Value(std::make_shared<ValueDict>());
}

double Value::as_double() const {
  if (is_int()) return static_cast<double>(as_int());
  if (is_bool()) return as_bool() ? 1.0 : 0.0;
  return std::get<double>(v_);
}

bool Value::truthy() const {
  if (is_undefined() || is_none()) return false;
  if (is_bool()) return as_bool();
  if (is_int()) return as_int() != 0;
  if (is_float()) return as_double() != 0.0;
  if (is_string()) return !as_string().empty();
  if (is_list()) return !as_list().empty();
  if (is_dict()) return !as_dict().items.empty();
  return true;
}

std::string Value::type_name() const {
  if (is_undefined()) return "undefined";
  if (is_none()) return "NoneType";
  if (is_bool()) return "bool";
  if (is_int()) return "int";
  if (is_float()) return "float";
  if (is_string()) return "str";
  if (is_list()) return "list";
  if (is_dict()) return as_dict().is_namespace ? "Namespace" : "dict";
  return "function";
}

std::string format_float(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  // sci looks like "-1.2345e+02": split sign, digits, exponent.
  bool neg = !sci.empty() && sci[0] == '-';
  if (neg) sci.erase(0, 1);
  size_t e = sci.find('e');
  std::string mant = sci.substr(0, e);
  int exp = std::stoi(sci.substr(e + 1));
  std::string digits;
  for (char c : mant) {
    if (c != '.') digits.push_back(c);
  }
  std::string out = neg ? "-" : "";
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      out += "0.";
      out.append(static_cast<size_t>(-exp - 1), '0');
      out += digits;
    } else {
      size_t int_len = static_cast<size_t>(exp) + 1;
      if (digits.size() <= int_len) {
        out += digits;
        out.append(int_len - digits.size(), '0');
        out += ".0";
      } else {
        out += digits.substr(0, int_len);
        out += '.';
        out += digits.substr(int_len);
      }
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  char eb[16];
  std::snprintf(eb, sizeof(eb), "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
  out += eb;
  return out;
}

std::string python_repr_string(std::string_view s) {
  bool has_single = s.find('\'') != std::string_view::npos;
  bool has_double = s.find('"') != std::string_view::npos;
  char q = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, q);
  for (unsigned char c : s) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c == static_cast<unsigned char>(q)) {
          out += '\\';
          out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f) {
          char b[8];
          std::snprintf(b, sizeof(b), "\\x%02x", c);
          out += b;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += q;
  return out;
}

std::string Value::str() const {
  if (is_undefined()) return "";
  if (is_string()) return as_string();
  return repr();
}

std::string Value::repr() const {
  if (is_undefined()) return "";
  if (is_none()) return "None";
  if (is_bool()) return as_bool() ? "True" : "False";
  if (is_int()) return std::to_string(as_int());
  if (is_float()) return format_float(as_double());
  if (is_string()) return python_repr_string(as_string());
  if (is_list()) {
    std::string out = "[";
    bool first = true;
    for (const Value& v : as_list()) {
      if (!first) out += ", ";
      first = false;
      out += v.repr();
    }
    return out + "]";
  }
  if (is_dict()) {
    const ValueDict& d = as_dict();
    std::string out = d.is_namespace ? "<Namespace {" : "{";
    bool first = true;
    for (const auto& [k, v] : d.items) {
      if (!first) out += ", ";
      first = false;
      out += python_repr_string(k) + ": " + v.repr();
    }
    return out + (d.is_namespace ? "}>" : "}");
  }
  return "<function " + as_callable().name + ">";
}

namespace {

void json_escape(std::string_view s, std::string& out) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char b[8];
          std::snprintf(b, sizeof(b), "\\u%04x", c);
          out += b;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

constexpr int kMaxJsonDepth = 256;

Status to_json_impl(const Value& v, int indent, int depth, std::string& out) {
  if (depth > kMaxJsonDepth) return absl::InvalidArgumentError("tojson: value nested too deeply");
  auto newline = [&](int level) {
    if (indent < 0) return;
    out += '\n';
    out.append(static_cast<size_t>(indent) * static_cast<size_t>(level), ' ');
  };
  const char* item_sep = indent < 0 ? ", " : ",";
  if (v.is_none()) {
    out += "null";
  } else if (v.is_bool()) {
    out += v.as_bool() ? "true" : "false";
  } else if (v.is_int()) {
    out += std::to_string(v.as_int());
  } else if (v.is_float()) {
    double d = v.as_double();
    if (std::isnan(d)) {
      out += "NaN";
    } else if (std::isinf(d)) {
      out += d > 0 ? "Infinity" : "-Infinity";
    } else {
      out += format_float(d);
    }
  } else if (v.is_string()) {
    json_escape(v.as_string(), out);
  } else if (v.is_list()) {
    const ValueList& l = v.as_list();
    out += '[';
    for (size_t i = 0; i < l.size(); ++i) {
      if (i > 0) out += item_sep;
      newline(depth + 1);
      MS_RETURN_IF_ERROR(to_json_impl(l[i], indent, depth + 1, out));
    }
    if (!l.empty()) newline(depth);
    out += ']';
  } else if (v.is_dict()) {
    const ValueDict& d = v.as_dict();
    out += '{';
    for (size_t i = 0; i < d.items.size(); ++i) {
      if (i > 0) out += item_sep;
      newline(depth + 1);
      json_escape(d.items[i].first, out);
      out += ": ";
      MS_RETURN_IF_ERROR(to_json_impl(d.items[i].second, indent, depth + 1, out));
    }
    if (!d.items.empty()) newline(depth);
    out += '}';
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("tojson: object of type '", v.type_name(), "' is not JSON serializable"));
  }
  return absl::OkStatus();
}

template <typename Json>
Value from_json_impl(const Json& j, int depth) {
  if (depth > kMaxJsonDepth) return Value::none();
  switch (j.type()) {
    case Json::value_t::null:
      return Value::none();
    case Json::value_t::boolean:
      return Value(j.template get<bool>());
    case Json::value_t::number_integer:
      return Value(j.template get<int64_t>());
    case Json::value_t::number_unsigned: {
      uint64_t u = j.template get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value(static_cast<double>(u));
      return Value(static_cast<int64_t>(u));
    }
    case Json::value_t::number_float:
      return Value(j.template get<double>());
    case Json::value_t::string:
      return Value(j.template get<std::string>());
    case Json::value_t::array: {
      ValueList items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json_impl(e, depth + 1));
      return Value::list(std::move(items));
    }
    case Json::value_t::object: {
      Value d = Value::dict();
      for (const auto& [k, e] : j.items()) {
        d.as_dict().items.emplace_back(k, from_json_impl(e, depth + 1));
      }
      return d;
    }
    default:
      return Value::none();  // binary / discarded: not produced by JSON parsing
  }
}

}  // namespace

StatusOr<std::string> Value::to_json(int indent) const {
  std::string out;
  MS_RETURN_IF_ERROR(to_json_impl(*this, indent, 0, out));
  return out;
}

Value Value::from_json(const nlohmann::json& j) {
  return from_json_impl(j, 0);
}
Value Value::from_json(const nlohmann::ordered_json& j) {
  return from_json_impl(j, 0);
}

bool values_equal(const Value& a, const Value& b) {
  if (a.is_number() || a.is_bool()) {
    if (!(b.is_number() || b.is_bool())) return false;
    if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
    int64_t x = a.is_bool() ? (a.as_bool() ? 1 : 0) : a.as_int();
    int64_t y = b.is_bool() ? (b.as_bool() ? 1 : 0) : b.as_int();
    return x == y;
  }
  if (a.is_string()) return b.is_string() && a.as_string() == b.as_string();
  if (a.is_none()) return b.is_none();
  if (a.is_undefined()) return b.is_undefined();
  if (a.is_list()) {
    if (!b.is_list()) return false;
    const ValueList& x = a.as_list();
    const ValueList& y = b.as_list();
    if (&x == &y) return true;
    if (x.size() != y.size()) return false;
    for (size_t i = 0; i < x.size(); ++i) {
      if (!values_equal(x[i], y[i])) return false;
    }
    return true;
  }
  if (a.is_dict()) {
    if (!b.is_dict()) return false;
    const ValueDict& x = a.as_dict();
    const ValueDict& y = b.as_dict();
    if (&x == &y) return true;
    if (x.items.size() != y.items.size()) return false;
    for (const auto& [k, v] : x.items) {
      const Value* o = y.find(k);
      if (o == nullptr || !values_equal(v, *o)) return false;
    }
    return true;
  }
  if (a.is_callable()) return b.is_callable() && &a.as_callable() == &b.as_callable();
  return false;
}

StatusOr<bool> value_less(const Value& a, const Value& b) {
  if ((a.is_number() || a.is_bool()) && (b.is_number() || b.is_bool())) {
    if (a.is_int() && b.is_int()) return a.as_int() < b.as_int();
    return a.as_double() < b.as_double();
  }
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();
  if (a.is_list() && b.is_list()) {
    const ValueList& x = a.as_list();
    const ValueList& y = b.as_list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (values_equal(x[i], y[i])) continue;
      return value_less(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  return absl::InvalidArgumentError(absl::StrCat("'<' not supported between instances of '",
                                                 a.type_name(), "' and '", b.type_name(), "'"));
}

const Value* CallArgs::get(size_t i, std::string_view name) const {
  if (i < args.size()) return &args[i];
  for (const auto& [k, v] : kwargs) {
    if (k == name) return &v;
  }
  return nullptr;
}

}  // namespace moeserve::jinja
