// Tree-walking evaluator for parsed Jinja templates.
//
// Scoping follows Jinja2: `set` inside a for loop or macro is local to it (which is why chat
// templates carry state across iterations with namespace()); `if` blocks do not open a
// scope. Undefined names and missing keys evaluate to `undefined` (printed as ""), while
// attribute access on undefined, type errors, unknown filters/tests/functions and
// raise_exception() stop rendering with an error that names the line and column.
//
// Work is bounded: output size, total evaluation steps and macro recursion are capped, so
// no template or input can hang or exhaust the process.
//
// Thread-safety: an Interpreter renders one template once on one thread; the Body it reads
// may be shared.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "chat_template/jinja_ast.h"
#include "chat_template/jinja_value.h"
#include "core/status.h"

namespace moeserve::jinja {

struct RenderLimits {
  size_t max_output_bytes = size_t{32} << 20;
  uint64_t max_steps = 5'000'000;
  int max_call_depth = 64;
};

class Interpreter {
 public:
  Interpreter(const Body& root, std::string_view source, RenderLimits limits = {})
      : root_(root), source_(source), limits_(limits) {}

  // Renders the template with `globals` (a dict) as the outermost scope.
  StatusOr<std::string> render(const Value& globals);

 private:
  enum class Flow { kNormal, kBreak, kContinue };
  using Frame = std::unordered_map<std::string, Value>;

  Status exec_body(const Body& body, std::string& out);
  Status exec(const Stmt& s, std::string& out);
  Status exec_for(const Stmt& s, std::string& out);
  Status exec_set(const Stmt& s);
  StatusOr<Value> eval(const Expr& e);
  StatusOr<Value> eval_binary(const Expr& e, const Value& a, const Value& b);
  StatusOr<bool> eval_compare(const std::string& op, const Value& a, const Value& b, size_t pos);
  StatusOr<Value> eval_call(const Expr& e);
  StatusOr<CallArgs> eval_args(const Expr& e);
  StatusOr<Value> eval_item(const Value& obj, const Value& key, size_t pos);
  StatusOr<Value> eval_slice(const Expr& e);
  Value make_macro(const Stmt& s);

  Value lookup(const std::string& name) const;
  void assign(const std::string& name, Value v);
  Status step(size_t pos);
  Status error_at(size_t pos, const Status& cause) const;
  Status error_at(size_t pos, std::string_view msg) const;
  Status append(std::string& out, std::string_view text, size_t pos);

  const Body& root_;
  std::string_view source_;
  RenderLimits limits_;
  std::vector<Frame> frames_;
  size_t base_ = 0;  // lowest frame visible besides frame 0 (macro bodies see only their own)
  Flow flow_ = Flow::kNormal;
  uint64_t steps_ = 0;
  int call_depth_ = 0;
};

}  // namespace moeserve::jinja
