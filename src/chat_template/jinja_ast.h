// Syntax tree of the Jinja-subset interpreter. Built once by the parser, then read-only;
// safe to share between threads that render concurrently.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat_template/jinja_value.h"

namespace moeserve::jinja {

enum class ExprKind {
  kLiteral,  // literal (scalar only)
  kName,     // name
  kList,     // children = items
  kTuple,    // children = items (evaluates to a list)
  kDict,     // children = key, value, key, value, …
  kAttr,     // children[0].name
  kItem,     // children[0][children[1]]
  kSlice,    // children[0][children[1]:children[2]:children[3]]; absent parts are null
  kCall,     // children[0](children[1..], kwargs)
  kFilter,   // children[0] | name(children[1..], kwargs)
  kTest,     // children[0] is [not] name(children[1..])
  kUnary,    // name ("-", "+") children[0]
  kBinary,   // children[0] name children[1]; name in + - * / // % ** ~
  kAnd,
  kOr,
  kNot,
  kCompare,  // children[0] ops[0] children[1] ops[1] children[2] … (chained)
  kTernary,  // children[0] if children[1] else children[2] (children[2] may be null)
};

struct Expr {
  ExprKind kind = ExprKind::kLiteral;
  size_t pos = 0;
  Value literal;
  std::string name;
  std::vector<std::unique_ptr<Expr>> children;
  std::vector<std::pair<std::string, std::unique_ptr<Expr>>> kwargs;
  std::vector<std::string> ops;
  bool negated = false;
};

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

enum class StmtKind {
  kText,      // text
  kOutput,    // {{ expr }}
  kIf,        // branches (cond, body) …, else_body
  kFor,       // for targets in expr [if filter] body [else else_body]
  kSet,       // set targets = expr  |  set targets[0].attr = expr
  kSetBlock,  // set targets[0] %} body {% endset
  kMacro,     // macro name(params) body
  kBreak,
  kContinue,
  kScope,  // a block whose body runs in place ({% generation %}, {% filter %}-less)
};

struct Stmt {
  StmtKind kind = StmtKind::kText;
  size_t pos = 0;
  std::string text;
  std::unique_ptr<Expr> expr;
  std::vector<std::pair<std::unique_ptr<Expr>, Body>> branches;
  Body body;
  Body else_body;
  std::vector<std::string> targets;
  std::string attr;
  std::unique_ptr<Expr> filter;
  std::string name;
  std::vector<std::pair<std::string, std::unique_ptr<Expr>>> params;  // default may be null
};

}  // namespace moeserve::jinja
