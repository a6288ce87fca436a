#include "chat_template/jinja_interpreter.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/match.h"
#include "chat_template/jinja_builtins.h"
#include "chat_template/jinja_lexer.h"

namespace moeserve::jinja {

StatusOr<std::string> Interpreter::render(const Value& globals) {
  frames_.clear();
  frames_.emplace_back();
  if (globals.is_dict()) {
    for (const auto& [k, v] : globals.as_dict().items) frames_[0][k] = v;
  }
  base_ = 0;
  flow_ = Flow::kNormal;
  steps_ = 0;
  call_depth_ = 0;
  std::string out;
  MS_RETURN_IF_ERROR(exec_body(root_, out));
  return out;
}

Status Interpreter::error_at(size_t pos, std::string_view msg) const {
  return absl::InvalidArgumentError(absl::StrCat(
      "chat template error at ", describe_position(source_, pos), ": ", std::string(msg)));
}

Status Interpreter::error_at(size_t pos, const Status& cause) const {
  return Status(cause.code(), absl::StrCat("chat template error at ",
                                           describe_position(source_, pos), ": ", cause.message()));
}

Status Interpreter::step(size_t pos) {
  if (++steps_ > limits_.max_steps) {
    return error_at(pos, absl::ResourceExhaustedError("evaluation step limit exceeded"));
  }
  return absl::OkStatus();
}

Status Interpreter::append(std::string& out, std::string_view text, size_t pos) {
  if (out.size() + text.size() > limits_.max_output_bytes) {
    return error_at(pos, absl::ResourceExhaustedError("rendered output too large"));
  }
  out.append(text);
  return absl::OkStatus();
}

Value Interpreter::lookup(const std::string& name) const {
  size_t lowest = std::max<size_t>(base_, 1);
  for (size_t i = frames_.size(); i-- > lowest;) {
    auto it = frames_[i].find(name);
    if (it != frames_[i].end()) return it->second;
  }
  auto it = frames_[0].find(name);
  if (it != frames_[0].end()) return it->second;
  return global_function(name);
}

void Interpreter::assign(const std::string& name, Value v) {
  frames_.back()[name] = std::move(v);
}

Status Interpreter::exec_body(const Body& body, std::string& out) {
  for (const auto& s : body) {
    MS_RETURN_IF_ERROR(exec(*s, out));
    if (flow_ != Flow::kNormal) return absl::OkStatus();
  }
  return absl::OkStatus();
}

Status Interpreter::exec(const Stmt& s, std::string& out) {
  MS_RETURN_IF_ERROR(step(s.pos));
  switch (s.kind) {
    case StmtKind::kText:
      return append(out, s.text, s.pos);
    case StmtKind::kOutput: {
      MS_ASSIGN_OR_RETURN(Value v, eval(*s.expr));
      return append(out, v.str(), s.pos);
    }
    case StmtKind::kIf:
      for (const auto& [cond, body] : s.branches) {
        MS_ASSIGN_OR_RETURN(Value c, eval(*cond));
        if (c.truthy()) return exec_body(body, out);
      }
      return exec_body(s.else_body, out);
    case StmtKind::kFor:
      return exec_for(s, out);
    case StmtKind::kSet:
      return exec_set(s);
    case StmtKind::kSetBlock: {
      std::string captured;
      MS_RETURN_IF_ERROR(exec_body(s.body, captured));
      assign(s.targets[0], Value(std::move(captured)));
      return absl::OkStatus();
    }
    case StmtKind::kMacro:
      assign(s.name, make_macro(s));
      return absl::OkStatus();
    case StmtKind::kBreak:
    case StmtKind::kContinue:
      if (frames_.size() <= 1) return error_at(s.pos, "'break'/'continue' outside a loop");
      flow_ = s.kind == StmtKind::kBreak ? Flow::kBreak : Flow::kContinue;
      return absl::OkStatus();
    case StmtKind::kScope:
      return exec_body(s.body, out);
  }
  return absl::OkStatus();
}

Status Interpreter::exec_for(const Stmt& s, std::string& out) {
  MS_ASSIGN_OR_RETURN(Value iterable, eval(*s.expr));
  ValueList items;
  if (iterable.is_list()) {
    items = iterable.as_list();  // snapshot: the body may append to the list
  } else if (iterable.is_dict()) {
    for (const auto& [k, _] : iterable.as_dict().items) items.emplace_back(k);
  } else if (iterable.is_string()) {
    MS_ASSIGN_OR_RETURN(Value chars, apply_filter("list", iterable, CallArgs{}));
    items = chars.as_list();
  } else if (!iterable.is_undefined()) {
    return error_at(s.expr->pos,
                    absl::StrCat("'", iterable.type_name(), "' object is not iterable"));
  }
  frames_.emplace_back();
  auto bind = [&](const Value& item) -> Status {
    if (s.targets.size() == 1) {
      assign(s.targets[0], item);
      return absl::OkStatus();
    }
    if (!item.is_list() || item.as_list().size() != s.targets.size()) {
      return error_at(s.pos, absl::StrCat("cannot unpack ", item.type_name(), " into ",
                                          s.targets.size(), " loop variables"));
    }
    for (size_t i = 0; i < s.targets.size(); ++i) assign(s.targets[i], item.as_list()[i]);
    return absl::OkStatus();
  };
  Status st = absl::OkStatus();
  if (s.filter) {
    ValueList kept;
    for (const Value& item : items) {
      st = step(s.pos);
      if (st.ok()) st = bind(item);
      if (!st.ok()) break;
      StatusOr<Value> c = eval(*s.filter);
      if (!c.ok()) {
        st = c.status();
        break;
      }
      if (c->truthy()) kept.push_back(item);
    }
    items = std::move(kept);
  }
  const int64_t n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; st.ok() && i < n; ++i) {
    st = step(s.pos);
    if (!st.ok()) break;
    const Value& item = items[static_cast<size_t>(i)];
    st = bind(item);
    if (!st.ok()) break;
    Value loop = Value::dict();
    ValueDict& d = loop.as_dict();
    d.items.reserve(9);
    d.items.emplace_back("index", Value(i + 1));
    d.items.emplace_back("index0", Value(i));
    d.items.emplace_back("revindex", Value(n - i));
    d.items.emplace_back("revindex0", Value(n - i - 1));
    d.items.emplace_back("first", Value(i == 0));
    d.items.emplace_back("last", Value(i == n - 1));
    d.items.emplace_back("length", Value(n));
    d.items.emplace_back("previtem",
                         i > 0 ? items[static_cast<size_t>(i - 1)] : Value::undefined("previtem"));
    d.items.emplace_back(
        "nextitem", i + 1 < n ? items[static_cast<size_t>(i + 1)] : Value::undefined("nextitem"));
    assign("loop", std::move(loop));
    st = exec_body(s.body, out);
    if (flow_ == Flow::kBreak) {
      flow_ = Flow::kNormal;
      break;
    }
    flow_ = Flow::kNormal;
  }
  frames_.pop_back();
  MS_RETURN_IF_ERROR(st);
  if (items.empty()) return exec_body(s.else_body, out);
  return absl::OkStatus();
}

Status Interpreter::exec_set(const Stmt& s) {
  MS_ASSIGN_OR_RETURN(Value v, eval(*s.expr));
  if (!s.attr.empty()) {
    Value target = lookup(s.targets[0]);
    if (!target.is_dict() || !target.as_dict().is_namespace) {
      return error_at(s.pos, absl::StrCat("cannot assign attribute '", s.attr, "' on '",
                                          s.targets[0], "': not a namespace()"));
    }
    target.as_dict().set(s.attr, std::move(v));
    return absl::OkStatus();
  }
  if (s.targets.size() == 1) {
    assign(s.targets[0], std::move(v));
    return absl::OkStatus();
  }
  if (!v.is_list() || v.as_list().size() != s.targets.size()) {
    return error_at(s.pos, absl::StrCat("cannot unpack ", v.type_name(), " into ", s.targets.size(),
                                        " variables"));
  }
  ValueList items = v.as_list();
  for (size_t i = 0; i < s.targets.size(); ++i) assign(s.targets[i], items[i]);
  return absl::OkStatus();
}

Value Interpreter::make_macro(const Stmt& s) {
  auto c = std::make_shared<Callable>();
  c->name = s.name;
  const Stmt* def = &s;
  c->fn = [this, def](CallArgs& args) -> StatusOr<Value> {
    if (call_depth_ >= limits_.max_call_depth) {
      return error_at(def->pos, absl::ResourceExhaustedError("macro recursion too deep"));
    }
    if (args.args.size() > def->params.size()) {
      return error_at(def->pos, absl::StrCat("macro '", def->name, "' takes ", def->params.size(),
                                             " arguments"));
    }
    Frame frame;
    size_t saved_base = base_;
    frames_.emplace_back();
    base_ = frames_.size() - 1;
    ++call_depth_;
    Status st = absl::OkStatus();
    for (size_t i = 0; i < def->params.size() && st.ok(); ++i) {
      const auto& [pname, pdefault] = def->params[i];
      const Value* given = args.get(i, pname);
      if (given != nullptr) {
        assign(pname, *given);
      } else if (pdefault) {
        StatusOr<Value> d = eval(*pdefault);
        if (d.ok()) {
          assign(pname, *d);
        } else {
          st = d.status();
        }
      } else {
        assign(pname, Value::undefined(pname));
      }
    }
    std::string out;
    if (st.ok()) st = exec_body(def->body, out);
    flow_ = Flow::kNormal;
    --call_depth_;
    frames_.pop_back();
    base_ = saved_base;
    MS_RETURN_IF_ERROR(st);
    return Value(std::move(out));
  };
  return Value(std::move(c));
}

StatusOr<CallArgs> Interpreter::eval_args(const Expr& e) {
  CallArgs args;
  for (size_t i = 1; i < e.children.size(); ++i) {
    MS_ASSIGN_OR_RETURN(Value v, eval(*e.children[i]));
    args.args.push_back(std::move(v));
  }
  for (const auto& [k, ke] : e.kwargs) {
    MS_ASSIGN_OR_RETURN(Value v, eval(*ke));
    args.kwargs.emplace_back(k, std::move(v));
  }
  return args;
}

StatusOr<Value> Interpreter::eval_call(const Expr& e) {
  const Expr& callee = *e.children[0];
  if (callee.kind == ExprKind::kAttr) {
    MS_ASSIGN_OR_RETURN(Value obj, eval(*callee.children[0]));
    if (obj.is_undefined()) {
      return error_at(callee.pos, absl::StrCat("'", obj.undefined_name(), "' is undefined"));
    }
    MS_ASSIGN_OR_RETURN(CallArgs args, eval_args(e));
    if (obj.is_dict()) {
      const Value* member = obj.as_dict().find(callee.name);
      if (member != nullptr && member->is_callable()) {
        StatusOr<Value> r = member->as_callable().fn(args);
        return r;
      }
    }
    StatusOr<Value> r = call_method(obj, callee.name, args);
    if (!r.ok()) return error_at(callee.pos, r.status());
    return r;
  }
  MS_ASSIGN_OR_RETURN(Value fn, eval(callee));
  if (!fn.is_callable()) {
    if (fn.is_undefined()) {
      return error_at(callee.pos,
                      absl::StrCat("'", fn.undefined_name(), "' is undefined (no such function)"));
    }
    return error_at(callee.pos, absl::StrCat("'", fn.type_name(), "' object is not callable"));
  }
  MS_ASSIGN_OR_RETURN(CallArgs args, eval_args(e));
  StatusOr<Value> r = fn.as_callable().fn(args);
  if (!r.ok() && !absl::StartsWith(r.status().message(), "chat template error at")) {
    return error_at(e.pos, r.status());
  }
  return r;
}

StatusOr<Value> Interpreter::eval_item(const Value& obj, const Value& key, size_t pos) {
  if (obj.is_undefined()) {
    return error_at(pos, absl::StrCat("'", obj.undefined_name(), "' is undefined"));
  }
  if (obj.is_dict()) {
    std::string k = key.is_string() ? key.as_string() : key.str();
    const Value* f = obj.as_dict().find(k);
    return f ? *f : Value::undefined(k);
  }
  if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    int64_t idx = key.is_int() ? key.as_int() : (key.as_bool() ? 1 : 0);
    if (obj.is_list()) {
      const ValueList& l = obj.as_list();
      int64_t n = static_cast<int64_t>(l.size());
      if (idx < 0) idx += n;
      if (idx < 0 || idx >= n) return Value::undefined("list index");
      return l[static_cast<size_t>(idx)];
    }
    MS_ASSIGN_OR_RETURN(Value chars, apply_filter("list", obj, CallArgs{}));
    return eval_item(chars, Value(idx), pos);
  }
  if (key.is_string() && (obj.is_string() || obj.is_list()))
    return Value::undefined(key.as_string());
  return error_at(
      pos, absl::StrCat("cannot index '", obj.type_name(), "' with '", key.type_name(), "'"));
}

StatusOr<Value> Interpreter::eval_slice(const Expr& e) {
  MS_ASSIGN_OR_RETURN(Value obj, eval(*e.children[0]));
  int64_t parts[3] = {0, 0, 1};
  bool given[3] = {false, false, false};
  for (int i = 0; i < 3; ++i) {
    if (!e.children[static_cast<size_t>(i) + 1]) continue;
    MS_ASSIGN_OR_RETURN(Value v, eval(*e.children[static_cast<size_t>(i) + 1]));
    if (v.is_none()) continue;
    if (!v.is_int()) return error_at(e.pos, "slice indices must be integers");
    parts[i] = v.as_int();
    given[i] = true;
  }
  ValueList items;
  bool is_str = obj.is_string();
  if (is_str) {
    MS_ASSIGN_OR_RETURN(Value chars, apply_filter("list", obj, CallArgs{}));
    items = chars.as_list();
  } else if (obj.is_list()) {
    items = obj.as_list();
  } else {
    return error_at(e.pos, absl::StrCat("cannot slice '", obj.type_name(), "'"));
  }
  int64_t n = static_cast<int64_t>(items.size());
  int64_t step = parts[2];
  if (step == 0) return error_at(e.pos, "slice step cannot be zero");
  auto norm = [&](int64_t v, bool has, int64_t def) {
    if (!has) return def;
    if (v < 0) v += n;
    if (step > 0) return std::clamp<int64_t>(v, 0, n);
    return std::clamp<int64_t>(v, -1, n - 1);
  };
  int64_t start = norm(parts[0], given[0], step > 0 ? 0 : n - 1);
  int64_t stop = norm(parts[1], given[1], step > 0 ? n : -1);
  ValueList out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    out.push_back(items[static_cast<size_t>(i)]);
  }
  if (!is_str) return Value::list(std::move(out));
  std::string s;
  for (const Value& c : out) s += c.as_string();
  return Value(std::move(s));
}

namespace {

bool checked_int(const Value& v) {
  return v.is_int() || v.is_bool();
}
int64_t to_int(const Value& v) {
  return v.is_int() ? v.as_int() : (v.as_bool() ? 1 : 0);
}

}  // namespace

StatusOr<Value> Interpreter::eval_binary(const Expr& e, const Value& a, const Value& b) {
  const std::string& op = e.name;
  if (op == "~") {
    std::string s = a.str() + b.str();
    if (s.size() > limits_.max_output_bytes) return error_at(e.pos, "string too large");
    return Value(std::move(s));
  }
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      if (a.as_string().size() + b.as_string().size() > limits_.max_output_bytes) {
        return error_at(e.pos, "string too large");
      }
      return Value(a.as_string() + b.as_string());
    }
    if (a.is_list() && b.is_list()) {
      ValueList l = a.as_list();
      l.insert(l.end(), b.as_list().begin(), b.as_list().end());
      return Value::list(std::move(l));
    }
  }
  if (op == "*" && ((a.is_string() && checked_int(b)) || (checked_int(a) && b.is_string()))) {
    const std::string& s = a.is_string() ? a.as_string() : b.as_string();
    int64_t times = std::max<int64_t>(0, to_int(a.is_string() ? b : a));
    if (!s.empty() && static_cast<double>(s.size()) * static_cast<double>(times) >
                          static_cast<double>(limits_.max_output_bytes)) {
      return error_at(e.pos, "string too large");
    }
    std::string out;
    for (int64_t i = 0; i < times && !s.empty(); ++i) out += s;
    return Value(std::move(out));
  }
  bool a_num = a.is_number() || a.is_bool();
  bool b_num = b.is_number() || b.is_bool();
  if (!a_num || !b_num) {
    return error_at(e.pos, absl::StrCat("unsupported operand types for ", std::string(op), ": '",
                                        a.type_name(), "' and '", b.type_name(), "'"));
  }
  bool ints = checked_int(a) && checked_int(b);
  if (ints && op != "/" && op != "**") {
    int64_t x = to_int(a);
    int64_t y = to_int(b);
    int64_t r = 0;
    bool overflow = false;
    if (op == "+") {
      overflow = __builtin_add_overflow(x, y, &r);
    } else if (op == "-") {
      overflow = __builtin_sub_overflow(x, y, &r);
    } else if (op == "*") {
      overflow = __builtin_mul_overflow(x, y, &r);
    } else if (op == "//" || op == "%") {
      if (y == 0) return error_at(e.pos, "integer division or modulo by zero");
      if (x == INT64_MIN && y == -1) {
        overflow = op == "//";
      } else {
        int64_t q = x / y;
        int64_t m = x % y;
        if (m != 0 && ((m < 0) != (y < 0))) {
          --q;
          m += y;
        }
        r = op == "//" ? q : m;
      }
    }
    if (overflow) return error_at(e.pos, "integer overflow");
    return Value(r);
  }
  if (ints && op == "**" && to_int(b) >= 0) {
    int64_t base = to_int(a);
    int64_t exp = to_int(b);
    int64_t r = 1;
    for (int64_t i = 0; i < exp; ++i) {
      if (__builtin_mul_overflow(r, base, &r)) return error_at(e.pos, "integer overflow");
      if (r == 0 || r == 1) break;
    }
    if (r == 1 && base == -1 && exp % 2 == 1) r = -1;
    return Value(r);
  }
  double x = a.as_double();
  double y = b.as_double();
  if (op == "+") return Value(x + y);
  if (op == "-") return Value(x - y);
  if (op == "*") return Value(x * y);
  if (op == "**") return Value(std::pow(x, y));
  if (y == 0.0) return error_at(e.pos, "float division by zero");
  if (op == "/") return Value(x / y);
  if (op == "//") return Value(std::floor(x / y));
  if (op == "%") {
    double m = std::fmod(x, y);
    if (m != 0 && ((m < 0) != (y < 0))) m += y;
    return Value(m);
  }
  return error_at(e.pos, absl::StrCat("unknown operator ", std::string(op)));
}

StatusOr<bool> Interpreter::eval_compare(const std::string& op, const Value& a, const Value& b,
                                         size_t pos) {
  if (op == "==") return values_equal(a, b);
  if (op == "!=") return !values_equal(a, b);
  if (op == "in" || op == "not in") {
    bool found = false;
    if (b.is_string()) {
      if (!a.is_string()) {
        return error_at(pos, absl::StrCat("'in <string>' requires string as left operand, not ",
                                          a.type_name()));
      }
      found = b.as_string().find(a.as_string()) != std::string::npos;
    } else if (b.is_list()) {
      for (const Value& v : b.as_list()) found = found || values_equal(v, a);
    } else if (b.is_dict()) {
      found = a.is_string() && b.as_dict().find(a.as_string()) != nullptr;
    } else if (!b.is_undefined()) {
      return error_at(pos, absl::StrCat("argument of type '", b.type_name(), "' is not iterable"));
    }
    return op == "in" ? found : !found;
  }
  StatusOr<bool> r = (op == "<" || op == ">=") ? value_less(a, b) : value_less(b, a);
  if (!r.ok()) return error_at(pos, r.status());
  if (op == "<" || op == ">") return *r;
  return !*r;  // >= is !(a<b); <= is !(b<a)
}

StatusOr<Value> Interpreter::eval(const Expr& e) {
  MS_RETURN_IF_ERROR(step(e.pos));
  switch (e.kind) {
    case ExprKind::kLiteral:
      return e.literal;
    case ExprKind::kName: {
      Value v = lookup(e.name);
      if (v.is_undefined()) return Value::undefined(e.name);
      return v;
    }
    case ExprKind::kList:
    case ExprKind::kTuple: {
      ValueList items;
      for (const auto& c : e.children) {
        MS_ASSIGN_OR_RETURN(Value v, eval(*c));
        items.push_back(std::move(v));
      }
      return Value::list(std::move(items));
    }
    case ExprKind::kDict: {
      Value d = Value::dict();
      for (size_t i = 0; i + 1 < e.children.size(); i += 2) {
        MS_ASSIGN_OR_RETURN(Value k, eval(*e.children[i]));
        MS_ASSIGN_OR_RETURN(Value v, eval(*e.children[i + 1]));
        d.as_dict().set(k.is_string() ? k.as_string() : k.str(), std::move(v));
      }
      return d;
    }
    case ExprKind::kAttr: {
      MS_ASSIGN_OR_RETURN(Value obj, eval(*e.children[0]));
      if (obj.is_undefined()) {
        return error_at(e.pos, absl::StrCat("'", obj.undefined_name(),
                                            "' is undefined (reading attribute '", e.name, "')"));
      }
      if (obj.is_dict()) {
        const Value* f = obj.as_dict().find(e.name);
        return f ? *f : Value::undefined(e.name);
      }
      return Value::undefined(e.name);
    }
    case ExprKind::kItem: {
      MS_ASSIGN_OR_RETURN(Value obj, eval(*e.children[0]));
      MS_ASSIGN_OR_RETURN(Value key, eval(*e.children[1]));
      return eval_item(obj, key, e.pos);
    }
    case ExprKind::kSlice:
      return eval_slice(e);
    case ExprKind::kCall:
      return eval_call(e);
    case ExprKind::kFilter: {
      MS_ASSIGN_OR_RETURN(Value subject, eval(*e.children[0]));
      MS_ASSIGN_OR_RETURN(CallArgs args, eval_args(e));
      StatusOr<Value> r = apply_filter(e.name, subject, args);
      if (!r.ok()) return error_at(e.pos, r.status());
      return r;
    }
    case ExprKind::kTest: {
      MS_ASSIGN_OR_RETURN(Value subject, eval(*e.children[0]));
      MS_ASSIGN_OR_RETURN(CallArgs args, eval_args(e));
      StatusOr<bool> r = apply_test(e.name, subject, args);
      if (!r.ok()) return error_at(e.pos, r.status());
      return Value(*r != e.negated);
    }
    case ExprKind::kUnary: {
      MS_ASSIGN_OR_RETURN(Value v, eval(*e.children[0]));
      if (e.name == "+" && (v.is_number() || v.is_bool()))
        return v.is_bool() ? Value(to_int(v)) : v;
      if (v.is_float()) return Value(-v.as_double());
      if (checked_int(v)) {
        if (to_int(v) == INT64_MIN) return error_at(e.pos, "integer overflow");
        return Value(-to_int(v));
      }
      return error_at(
          e.pos, absl::StrCat("bad operand type for unary ", e.name, ": '", v.type_name(), "'"));
    }
    case ExprKind::kBinary: {
      MS_ASSIGN_OR_RETURN(Value a, eval(*e.children[0]));
      MS_ASSIGN_OR_RETURN(Value b, eval(*e.children[1]));
      return eval_binary(e, a, b);
    }
    case ExprKind::kAnd: {
      MS_ASSIGN_OR_RETURN(Value a, eval(*e.children[0]));
      if (!a.truthy()) return a;
      return eval(*e.children[1]);
    }
    case ExprKind::kOr: {
      MS_ASSIGN_OR_RETURN(Value a, eval(*e.children[0]));
      if (a.truthy()) return a;
      return eval(*e.children[1]);
    }
    case ExprKind::kNot: {
      MS_ASSIGN_OR_RETURN(Value a, eval(*e.children[0]));
      return Value(!a.truthy());
    }
    case ExprKind::kCompare: {
      MS_ASSIGN_OR_RETURN(Value left, eval(*e.children[0]));
      for (size_t i = 0; i < e.ops.size(); ++i) {
        MS_ASSIGN_OR_RETURN(Value right, eval(*e.children[i + 1]));
        MS_ASSIGN_OR_RETURN(bool ok, eval_compare(e.ops[i], left, right, e.pos));
        if (!ok) return Value(false);
        left = std::move(right);
      }
      return Value(true);
    }
    case ExprKind::kTernary: {
      MS_ASSIGN_OR_RETURN(Value c, eval(*e.children[1]));
      if (c.truthy()) return eval(*e.children[0]);
      if (e.children[2]) return eval(*e.children[2]);
      return Value::undefined();
    }
  }
  return error_at(e.pos, "unknown expression");
}

}  // namespace moeserve::jinja
