// Runtime values of the Jinja-subset interpreter used for Hugging Face chat templates.
//
// Values follow Python/Jinja2 semantics closely enough that chat templates render byte for
// byte as transformers' `apply_chat_template` renders them: lists and dicts have reference
// semantics (shared), dicts keep insertion order, `undefined` is distinct from `none`, and
// printing uses Python's str()/repr() conventions ("True", "None", "1.0", "['a', 1]").
//
// Thread-safety: a Value is not synchronised; values shared between threads must be
// read-only. ChatTemplate builds fresh values for every render.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "core/status.h"
#include "nlohmann/json.hpp"

namespace moeserve::jinja {

class Value;
struct CallArgs;

using ValueList = std::vector<Value>;

// Insertion-ordered string-keyed map (Python dict). Lookup is linear; templates hold few keys.
struct ValueDict {
  std::vector<std::pair<std::string, Value>> items;
  bool is_namespace = false;  // created by namespace(); the only dict `set x.a = …` may modify

  const Value* find(std::string_view key) const;
  void set(std::string key, Value value);
};

// A function value: a macro, a builtin such as namespace(), or a bound method.
struct Callable {
  std::string name;
  std::function<StatusOr<Value>(CallArgs&)> fn;
};

struct Undefined {
  std::string name;  // what was looked up, for error messages
};
struct None {};

class Value {
 public:
  using ListPtr = std::shared_ptr<ValueList>;
  using DictPtr = std::shared_ptr<ValueDict>;
  using CallablePtr = std::shared_ptr<Callable>;

  Value() : v_(Undefined{}) {}
  static Value undefined(std::string name = {}) { return Value(Undefined{std::move(name)}); }
  static Value none() { return Value(None{}); }
  Value(bool b) : v_(b) {}  // NOLINT: implicit on purpose, like Python literals
  Value(int64_t i) : v_(i) {}
  Value(int i) : v_(int64_t{i}) {}
  Value(double d) : v_(d) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(ListPtr l) : v_(std::move(l)) {}
  Value(DictPtr d) : v_(std::move(d)) {}
  Value(CallablePtr c) : v_(std::move(c)) {}
  static Value list(ValueList items = {});
  static Value dict();

  bool is_undefined() const { return std::holds_alternative<Undefined>(v_); }
  bool is_none() const { return std::holds_alternative<None>(v_); }
  bool is_bool() const { return std::holds_alternative<bool>(v_); }
  bool is_int() const { return std::holds_alternative<int64_t>(v_); }
  bool is_float() const { return std::holds_alternative<double>(v_); }
  bool is_number() const { return is_int() || is_float(); }
  bool is_string() const { return std::holds_alternative<std::string>(v_); }
  bool is_list() const { return std::holds_alternative<ListPtr>(v_); }
  bool is_dict() const { return std::holds_alternative<DictPtr>(v_); }
  bool is_callable() const { return std::holds_alternative<CallablePtr>(v_); }

  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return std::get<int64_t>(v_); }
  // Numeric value of an int, float or bool.
  double as_double() const;
  const std::string& as_string() const { return std::get<std::string>(v_); }
  ValueList& as_list() const { return *std::get<ListPtr>(v_); }
  ValueDict& as_dict() const { return *std::get<DictPtr>(v_); }
  const Callable& as_callable() const { return *std::get<CallablePtr>(v_); }
  const std::string& undefined_name() const { return std::get<Undefined>(v_).name; }

  // Python truthiness; undefined is false.
  bool truthy() const;
  // Python type name for error messages ("str", "int", "list", "dict", "undefined", …).
  std::string type_name() const;

  // Python str(): strings print raw, undefined prints "".
  std::string str() const;
  // Python repr(): strings quoted with single quotes.
  std::string repr() const;
  // json.dumps(ensure_ascii=False) with ", " / ": " separators, or indented when indent >= 0.
  StatusOr<std::string> to_json(int indent = -1) const;

  static Value from_json(const nlohmann::json& j);
  // Keeps the object key order of the document, as Python's json.loads does.
  static Value from_json(const nlohmann::ordered_json& j);

 private:
  explicit Value(Undefined u) : v_(std::move(u)) {}
  explicit Value(None n) : v_(n) {}

  std::variant<Undefined, None, bool, int64_t, double, std::string, ListPtr, DictPtr, CallablePtr>
      v_;
};

// Python ==: deep, numeric across int/float/bool, never true between different kinds.
bool values_equal(const Value& a, const Value& b);
// Python <: numbers with numbers, strings with strings, lists lexicographically; anything
// else is an error (TypeError in Python).
StatusOr<bool> value_less(const Value& a, const Value& b);

// Python float repr: shortest round-trip digits, "1.0", "1e-05", "1e+16", "inf", "nan".
std::string format_float(double d);
// Python repr of a string (single quotes unless the text holds ' and no ").
std::string python_repr_string(std::string_view s);

// Arguments of a call: positional then keyword, in source order.
struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;

  // Positional argument i, else keyword `name`, else nullptr.
  const Value* get(size_t i, std::string_view name) const;
};

}  // namespace moeserve::jinja
