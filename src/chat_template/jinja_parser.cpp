#include "chat_template/jinja_parser.h"

#include <initializer_list>

namespace moeserve::jinja {
namespace {

constexpr int kMaxDepth = 200;

using ExprPtr = std::unique_ptr<Expr>;

class Parser {
 public:
  Parser(const std::vector<Token>& tokens, std::string_view source) : toks_(tokens), src_(source) {}

  StatusOr<Body> parse_template() {
    std::string found;
    MS_ASSIGN_OR_RETURN(Body body, parse_body({}, &found));
    return body;
  }

 private:
  // Depth guard for recursive productions.
  class Nest {
   public:
    explicit Nest(Parser* p) : p_(p) { ++p_->depth_; }
    ~Nest() { --p_->depth_; }
    bool too_deep() const { return p_->depth_ > kMaxDepth; }

   private:
    Parser* p_;
  };

  const Token& cur() const { return toks_[i_]; }
  const Token& peek(size_t k = 1) const { return toks_[std::min(i_ + k, toks_.size() - 1)]; }
  void advance() {
    if (i_ + 1 < toks_.size()) ++i_;
  }
  bool is_op(std::string_view op) const { return cur().kind == TokenKind::kOp && cur().text == op; }
  bool is_name(std::string_view n) const {
    return cur().kind == TokenKind::kName && cur().text == n;
  }

  Status error(size_t pos, std::string_view msg) const {
    return absl::InvalidArgumentError(absl::StrCat(
        "chat template syntax error at ", describe_position(src_, pos), ": ", std::string(msg)));
  }
  Status unexpected(std::string_view expected) const {
    std::string got;
    switch (cur().kind) {
      case TokenKind::kEof:
        got = "end of template";
        break;
      case TokenKind::kVarEnd:
        got = "'}}'";
        break;
      case TokenKind::kBlockEnd:
        got = "'%}'";
        break;
      case TokenKind::kText:
        got = "text";
        break;
      default:
        got = absl::StrCat("'", cur().text, "'");
    }
    return error(cur().pos, absl::StrCat("expected ", std::string(expected), ", got ", got));
  }
  Status expect_op(std::string_view op) {
    if (!is_op(op)) return unexpected(absl::StrCat("'", std::string(op), "'"));
    advance();
    return absl::OkStatus();
  }
  Status expect_block_end() {
    if (cur().kind != TokenKind::kBlockEnd) return unexpected("'%}'");
    advance();
    return absl::OkStatus();
  }
  StatusOr<std::string> expect_name() {
    if (cur().kind != TokenKind::kName) return unexpected("a name");
    std::string n = cur().text;
    advance();
    return n;
  }

  static ExprPtr make(ExprKind kind, size_t pos) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->pos = pos;
    return e;
  }

  // ---- statements ----

  // Parses until a block tag whose keyword is in `ends`; leaves the cursor on that keyword
  // (after '{%') and stores it in *found. With empty `ends`, parses to end of input.
  StatusOr<Body> parse_body(std::initializer_list<std::string_view> ends, std::string* found) {
    Nest nest(this);
    if (nest.too_deep()) return error(cur().pos, "statements nested too deeply");
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.kind == TokenKind::kEof) {
        if (ends.size() == 0) return body;
        std::string want;
        for (std::string_view e : ends) {
          if (!want.empty()) want += " or ";
          want += absl::StrCat("'", std::string(e), "'");
        }
        return error(t.pos, absl::StrCat("unexpected end of template, expected ", want));
      }
      if (t.kind == TokenKind::kText) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kText;
        s->pos = t.pos;
        s->text = t.text;
        body.push_back(std::move(s));
        advance();
        continue;
      }
      if (t.kind == TokenKind::kVarBegin) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kOutput;
        s->pos = t.pos;
        advance();
        MS_ASSIGN_OR_RETURN(s->expr, parse_expression(true));
        if (cur().kind != TokenKind::kVarEnd) return unexpected("'}}'");
        advance();
        body.push_back(std::move(s));
        continue;
      }
      if (t.kind != TokenKind::kBlockBegin) return unexpected("text or a tag");
      const Token& kw = peek();
      if (kw.kind != TokenKind::kName) {
        advance();
        return unexpected("a statement keyword");
      }
      for (std::string_view e : ends) {
        if (kw.text == e) {
          *found = kw.text;
          advance();  // '{%'
          advance();  // keyword
          return body;
        }
      }
      advance();  // '{%'
      MS_ASSIGN_OR_RETURN(auto stmt, parse_statement());
      body.push_back(std::move(stmt));
    }
  }

  StatusOr<std::unique_ptr<Stmt>> parse_statement() {
    size_t pos = cur().pos;
    std::string kw = cur().text;
    advance();
    auto s = std::make_unique<Stmt>();
    s->pos = pos;
    if (kw == "if") return parse_if(std::move(s));
    if (kw == "for") return parse_for(std::move(s));
    if (kw == "set") return parse_set(std::move(s));
    if (kw == "macro") return parse_macro(std::move(s));
    if (kw == "break" || kw == "continue") {
      s->kind = kw == "break" ? StmtKind::kBreak : StmtKind::kContinue;
      MS_RETURN_IF_ERROR(expect_block_end());
      return s;
    }
    if (kw == "generation") {
      s->kind = StmtKind::kScope;
      MS_RETURN_IF_ERROR(expect_block_end());
      std::string found;
      MS_ASSIGN_OR_RETURN(s->body, parse_body({"endgeneration"}, &found));
      MS_RETURN_IF_ERROR(expect_block_end());
      return s;
    }
    return error(pos, absl::StrCat("unknown or unsupported tag '", kw, "'"));
  }

  StatusOr<std::unique_ptr<Stmt>> parse_if(std::unique_ptr<Stmt> s) {
    s->kind = StmtKind::kIf;
    MS_ASSIGN_OR_RETURN(ExprPtr cond, parse_expression(true));
    MS_RETURN_IF_ERROR(expect_block_end());
    while (true) {
      std::string found;
      MS_ASSIGN_OR_RETURN(Body body, parse_body({"elif", "else", "endif"}, &found));
      s->branches.emplace_back(std::move(cond), std::move(body));
      if (found == "elif") {
        MS_ASSIGN_OR_RETURN(cond, parse_expression(true));
        MS_RETURN_IF_ERROR(expect_block_end());
        continue;
      }
      if (found == "else") {
        MS_RETURN_IF_ERROR(expect_block_end());
        MS_ASSIGN_OR_RETURN(s->else_body, parse_body({"endif"}, &found));
      }
      MS_RETURN_IF_ERROR(expect_block_end());
      return s;
    }
  }

  StatusOr<std::vector<std::string>> parse_targets() {
    std::vector<std::string> targets;
    bool paren = is_op("(");
    if (paren) advance();
    while (true) {
      MS_ASSIGN_OR_RETURN(std::string n, expect_name());
      targets.push_back(std::move(n));
      if (!is_op(",")) break;
      advance();
    }
    if (paren) MS_RETURN_IF_ERROR(expect_op(")"));
    return targets;
  }

  StatusOr<std::unique_ptr<Stmt>> parse_for(std::unique_ptr<Stmt> s) {
    s->kind = StmtKind::kFor;
    MS_ASSIGN_OR_RETURN(s->targets, parse_targets());
    if (!is_name("in")) return unexpected("'in'");
    advance();
    MS_ASSIGN_OR_RETURN(s->expr, parse_expression(false));
    if (is_name("if")) {
      advance();
      MS_ASSIGN_OR_RETURN(s->filter, parse_expression(false));
    }
    if (is_name("recursive")) return error(cur().pos, "recursive loops are not supported");
    MS_RETURN_IF_ERROR(expect_block_end());
    std::string found;
    MS_ASSIGN_OR_RETURN(s->body, parse_body({"else", "endfor"}, &found));
    if (found == "else") {
      MS_RETURN_IF_ERROR(expect_block_end());
      MS_ASSIGN_OR_RETURN(s->else_body, parse_body({"endfor"}, &found));
    }
    MS_RETURN_IF_ERROR(expect_block_end());
    return s;
  }

  StatusOr<std::unique_ptr<Stmt>> parse_set(std::unique_ptr<Stmt> s) {
    MS_ASSIGN_OR_RETURN(std::string first, expect_name());
    s->targets.push_back(first);
    if (is_op(".")) {
      advance();
      MS_ASSIGN_OR_RETURN(s->attr, expect_name());
    } else {
      while (is_op(",")) {
        advance();
        MS_ASSIGN_OR_RETURN(std::string n, expect_name());
        s->targets.push_back(std::move(n));
      }
    }
    if (cur().kind == TokenKind::kBlockEnd && s->attr.empty() && s->targets.size() == 1) {
      s->kind = StmtKind::kSetBlock;
      advance();
      std::string found;
      MS_ASSIGN_OR_RETURN(s->body, parse_body({"endset"}, &found));
      MS_RETURN_IF_ERROR(expect_block_end());
      return s;
    }
    s->kind = StmtKind::kSet;
    MS_RETURN_IF_ERROR(expect_op("="));
    MS_ASSIGN_OR_RETURN(s->expr, parse_tuple_or_expression());
    MS_RETURN_IF_ERROR(expect_block_end());
    return s;
  }

  StatusOr<std::unique_ptr<Stmt>> parse_macro(std::unique_ptr<Stmt> s) {
    s->kind = StmtKind::kMacro;
    MS_ASSIGN_OR_RETURN(s->name, expect_name());
    MS_RETURN_IF_ERROR(expect_op("("));
    while (!is_op(")")) {
      MS_ASSIGN_OR_RETURN(std::string p, expect_name());
      ExprPtr def;
      if (is_op("=")) {
        advance();
        MS_ASSIGN_OR_RETURN(def, parse_expression(true));
      }
      s->params.emplace_back(std::move(p), std::move(def));
      if (!is_op(",")) break;
      advance();
    }
    MS_RETURN_IF_ERROR(expect_op(")"));
    MS_RETURN_IF_ERROR(expect_block_end());
    std::string found;
    MS_ASSIGN_OR_RETURN(s->body, parse_body({"endmacro"}, &found));
    MS_RETURN_IF_ERROR(expect_block_end());
    return s;
  }

  // ---- expressions ----

  // `a, b` → tuple; otherwise a single expression.
  StatusOr<ExprPtr> parse_tuple_or_expression() {
    size_t pos = cur().pos;
    MS_ASSIGN_OR_RETURN(ExprPtr first, parse_expression(true));
    if (!is_op(",")) return first;
    ExprPtr t = make(ExprKind::kTuple, pos);
    t->children.push_back(std::move(first));
    while (is_op(",")) {
      advance();
      if (cur().kind == TokenKind::kBlockEnd || is_op(")")) break;
      MS_ASSIGN_OR_RETURN(ExprPtr e, parse_expression(true));
      t->children.push_back(std::move(e));
    }
    return t;
  }

  StatusOr<ExprPtr> parse_expression(bool allow_ternary) {
    Nest nest(this);
    if (nest.too_deep()) return error(cur().pos, "expression nested too deeply");
    MS_ASSIGN_OR_RETURN(ExprPtr e, parse_or());
    if (allow_ternary && is_name("if")) {
      size_t pos = cur().pos;
      advance();
      MS_ASSIGN_OR_RETURN(ExprPtr cond, parse_or());
      ExprPtr t = make(ExprKind::kTernary, pos);
      t->children.push_back(std::move(e));
      t->children.push_back(std::move(cond));
      if (is_name("else")) {
        advance();
        MS_ASSIGN_OR_RETURN(ExprPtr other, parse_expression(true));
        t->children.push_back(std::move(other));
      } else {
        t->children.push_back(nullptr);
      }
      return t;
    }
    return e;
  }

  StatusOr<ExprPtr> parse_or() {
    MS_ASSIGN_OR_RETURN(ExprPtr left, parse_and());
    while (is_name("or")) {
      ExprPtr n = make(ExprKind::kOr, cur().pos);
      advance();
      MS_ASSIGN_OR_RETURN(ExprPtr right, parse_and());
      n->children.push_back(std::move(left));
      n->children.push_back(std::move(right));
      left = std::move(n);
    }
    return left;
  }

  StatusOr<ExprPtr> parse_and() {
    MS_ASSIGN_OR_RETURN(ExprPtr left, parse_not());
    while (is_name("and")) {
      ExprPtr n = make(ExprKind::kAnd, cur().pos);
      advance();
      MS_ASSIGN_OR_RETURN(ExprPtr right, parse_not());
      n->children.push_back(std::move(left));
      n->children.push_back(std::move(right));
      left = std::move(n);
    }
    return left;
  }

  StatusOr<ExprPtr> parse_not() {
    if (is_name("not")) {
      Nest nest(this);
      if (nest.too_deep()) return error(cur().pos, "expression nested too deeply");
      ExprPtr n = make(ExprKind::kNot, cur().pos);
      advance();
      MS_ASSIGN_OR_RETURN(ExprPtr operand, parse_not());
      n->children.push_back(std::move(operand));
      return n;
    }
    return parse_compare();
  }

  StatusOr<ExprPtr> parse_compare() {
    size_t pos = cur().pos;
    MS_ASSIGN_OR_RETURN(ExprPtr left, parse_math1());
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (cur().kind == TokenKind::kOp &&
          (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == ">" ||
           cur().text == "<=" || cur().text == ">=")) {
        op = cur().text;
        advance();
      } else if (is_name("in")) {
        op = "in";
        advance();
      } else if (is_name("not") && peek().kind == TokenKind::kName && peek().text == "in") {
        op = "not in";
        advance();
        advance();
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(ExprKind::kCompare, pos);
        cmp->children.push_back(std::move(left));
      }
      MS_ASSIGN_OR_RETURN(ExprPtr right, parse_math1());
      cmp->ops.push_back(op);
      cmp->children.push_back(std::move(right));
    }
    return cmp ? std::move(cmp) : std::move(left);
  }

  using SubParser = StatusOr<ExprPtr> (Parser::*)();
  StatusOr<ExprPtr> parse_binary_level(std::initializer_list<std::string_view> ops,
                                       SubParser next) {
    MS_ASSIGN_OR_RETURN(ExprPtr left, (this->*next)());
    while (cur().kind == TokenKind::kOp) {
      bool match = false;
      for (std::string_view op : ops) match = match || cur().text == op;
      if (!match) break;
      ExprPtr n = make(ExprKind::kBinary, cur().pos);
      n->name = cur().text;
      advance();
      MS_ASSIGN_OR_RETURN(ExprPtr right, (this->*next)());
      n->children.push_back(std::move(left));
      n->children.push_back(std::move(right));
      left = std::move(n);
    }
    return left;
  }
  StatusOr<ExprPtr> parse_math1() { return parse_binary_level({"+", "-"}, &Parser::parse_concat); }
  StatusOr<ExprPtr> parse_concat() { return parse_binary_level({"~"}, &Parser::parse_math2); }
  StatusOr<ExprPtr> parse_math2() {
    return parse_binary_level({"*", "/", "//", "%"}, &Parser::parse_pow);
  }
  StatusOr<ExprPtr> parse_pow() { return parse_binary_level({"**"}, &Parser::parse_unary_f); }
  StatusOr<ExprPtr> parse_unary_f() { return parse_unary(true); }

  StatusOr<ExprPtr> parse_unary(bool with_filter) {
    Nest nest(this);
    if (nest.too_deep()) return error(cur().pos, "expression nested too deeply");
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      node = make(ExprKind::kUnary, cur().pos);
      node->name = cur().text;
      advance();
      MS_ASSIGN_OR_RETURN(ExprPtr operand, parse_unary(false));
      node->children.push_back(std::move(operand));
    } else {
      MS_ASSIGN_OR_RETURN(node, parse_primary());
    }
    MS_ASSIGN_OR_RETURN(node, parse_postfix(std::move(node)));
    if (with_filter) return parse_filter_expr(std::move(node));
    return node;
  }

  StatusOr<ExprPtr> parse_primary() {
    const Token& t = cur();
    size_t pos = t.pos;
    switch (t.kind) {
      case TokenKind::kName: {
        ExprPtr e = make(ExprKind::kLiteral, pos);
        if (t.text == "true" || t.text == "True") {
          e->literal = Value(true);
        } else if (t.text == "false" || t.text == "False") {
          e->literal = Value(false);
        } else if (t.text == "none" || t.text == "None") {
          e->literal = Value::none();
        } else {
          e->kind = ExprKind::kName;
          e->name = t.text;
        }
        advance();
        return e;
      }
      case TokenKind::kString: {
        std::string s;
        while (cur().kind == TokenKind::kString) {  // adjacent literals concatenate
          s += cur().text;
          advance();
        }
        ExprPtr e = make(ExprKind::kLiteral, pos);
        e->literal = Value(std::move(s));
        return e;
      }
      case TokenKind::kInt: {
        ExprPtr e = make(ExprKind::kLiteral, pos);
        e->literal = Value(t.int_value);
        advance();
        return e;
      }
      case TokenKind::kFloat: {
        ExprPtr e = make(ExprKind::kLiteral, pos);
        e->literal = Value(t.float_value);
        advance();
        return e;
      }
      case TokenKind::kOp:
        if (t.text == "(") {
          advance();
          if (is_op(")")) {
            advance();
            return make(ExprKind::kTuple, pos);
          }
          MS_ASSIGN_OR_RETURN(ExprPtr e, parse_expression(true));
          if (is_op(",")) {
            ExprPtr tup = make(ExprKind::kTuple, pos);
            tup->children.push_back(std::move(e));
            while (is_op(",")) {
              advance();
              if (is_op(")")) break;
              MS_ASSIGN_OR_RETURN(ExprPtr item, parse_expression(true));
              tup->children.push_back(std::move(item));
            }
            e = std::move(tup);
          }
          MS_RETURN_IF_ERROR(expect_op(")"));
          return e;
        }
        if (t.text == "[") {
          advance();
          ExprPtr l = make(ExprKind::kList, pos);
          while (!is_op("]")) {
            MS_ASSIGN_OR_RETURN(ExprPtr item, parse_expression(true));
            l->children.push_back(std::move(item));
            if (!is_op(",")) break;
            advance();
          }
          MS_RETURN_IF_ERROR(expect_op("]"));
          return l;
        }
        if (t.text == "{") {
          advance();
          ExprPtr d = make(ExprKind::kDict, pos);
          while (!is_op("}")) {
            MS_ASSIGN_OR_RETURN(ExprPtr k, parse_expression(true));
            MS_RETURN_IF_ERROR(expect_op(":"));
            MS_ASSIGN_OR_RETURN(ExprPtr v, parse_expression(true));
            d->children.push_back(std::move(k));
            d->children.push_back(std::move(v));
            if (!is_op(",")) break;
            advance();
          }
          MS_RETURN_IF_ERROR(expect_op("}"));
          return d;
        }
        break;
      default:
        break;
    }
    return unexpected("an expression");
  }

  StatusOr<ExprPtr> parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".")) {
        size_t pos = cur().pos;
        advance();
        ExprPtr a;
        if (cur().kind == TokenKind::kName) {
          a = make(ExprKind::kAttr, pos);
          a->name = cur().text;
        } else if (cur().kind == TokenKind::kInt) {  // x.0 is x[0] in Jinja
          a = make(ExprKind::kItem, pos);
          ExprPtr idx = make(ExprKind::kLiteral, cur().pos);
          idx->literal = Value(cur().int_value);
          a->children.push_back(std::move(node));
          a->children.push_back(std::move(idx));
          advance();
          node = std::move(a);
          continue;
        } else {
          return unexpected("an attribute name");
        }
        advance();
        a->children.push_back(std::move(node));
        node = std::move(a);
      } else if (is_op("[")) {
        MS_ASSIGN_OR_RETURN(node, parse_subscript(std::move(node)));
      } else if (is_op("(")) {
        MS_ASSIGN_OR_RETURN(node, parse_call(std::move(node), ExprKind::kCall, ""));
      } else {
        return node;
      }
    }
  }

  StatusOr<ExprPtr> parse_subscript(ExprPtr node) {
    size_t pos = cur().pos;
    advance();  // '['
    ExprPtr parts[3];
    int n = 0;
    bool is_slice = false;
    while (true) {
      if (!is_op(":") && !is_op("]")) {
        MS_ASSIGN_OR_RETURN(parts[n], parse_expression(true));
      }
      if (is_op(":") && n < 2) {
        is_slice = true;
        ++n;
        advance();
        continue;
      }
      break;
    }
    MS_RETURN_IF_ERROR(expect_op("]"));
    if (!is_slice) {
      if (!parts[0]) return error(pos, "empty subscript");
      ExprPtr item = make(ExprKind::kItem, pos);
      item->children.push_back(std::move(node));
      item->children.push_back(std::move(parts[0]));
      return item;
    }
    ExprPtr s = make(ExprKind::kSlice, pos);
    s->children.push_back(std::move(node));
    for (auto& p : parts) s->children.push_back(std::move(p));
    return s;
  }

  // Parses "(args)" when present and builds a call/filter/test node around `subject`.
  StatusOr<ExprPtr> parse_call(ExprPtr subject, ExprKind kind, std::string name) {
    ExprPtr c = make(kind, subject ? subject->pos : cur().pos);
    c->name = std::move(name);
    c->children.push_back(std::move(subject));
    if (!is_op("(")) return c;
    advance();
    while (!is_op(")")) {
      if (cur().kind == TokenKind::kName && peek().kind == TokenKind::kOp && peek().text == "=") {
        std::string key = cur().text;
        advance();
        advance();
        MS_ASSIGN_OR_RETURN(ExprPtr v, parse_expression(true));
        c->kwargs.emplace_back(std::move(key), std::move(v));
      } else {
        if (!c->kwargs.empty()) return error(cur().pos, "positional argument follows keyword");
        MS_ASSIGN_OR_RETURN(ExprPtr v, parse_expression(true));
        c->children.push_back(std::move(v));
      }
      if (!is_op(",")) break;
      advance();
    }
    MS_RETURN_IF_ERROR(expect_op(")"));
    return c;
  }

  StatusOr<ExprPtr> parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        size_t pos = cur().pos;
        advance();
        MS_ASSIGN_OR_RETURN(std::string name, expect_name());
        MS_ASSIGN_OR_RETURN(node, parse_call(std::move(node), ExprKind::kFilter, name));
        node->pos = pos;
      } else if (is_name("is")) {
        size_t pos = cur().pos;
        advance();
        bool negated = false;
        if (is_name("not")) {
          negated = true;
          advance();
        }
        MS_ASSIGN_OR_RETURN(std::string name, expect_name());
        ExprPtr t;
        if (is_op("(")) {
          MS_ASSIGN_OR_RETURN(t, parse_call(std::move(node), ExprKind::kTest, name));
        } else {
          t = make(ExprKind::kTest, pos);
          t->name = name;
          t->children.push_back(std::move(node));
          const Token& a = cur();
          bool arg_start = a.kind == TokenKind::kString || a.kind == TokenKind::kInt ||
                           a.kind == TokenKind::kFloat ||
                           (a.kind == TokenKind::kOp && (a.text == "[" || a.text == "{")) ||
                           (a.kind == TokenKind::kName && a.text != "else" && a.text != "or" &&
                            a.text != "and" && a.text != "if" && a.text != "in" &&
                            a.text != "not" && a.text != "is");
          if (arg_start) {
            MS_ASSIGN_OR_RETURN(ExprPtr arg, parse_primary());
            MS_ASSIGN_OR_RETURN(arg, parse_postfix(std::move(arg)));
            t->children.push_back(std::move(arg));
          }
        }
        t->pos = pos;
        t->negated = negated;
        node = std::move(t);
      } else if (is_op("(")) {
        MS_ASSIGN_OR_RETURN(node, parse_call(std::move(node), ExprKind::kCall, ""));
      } else {
        return node;
      }
    }
  }

  const std::vector<Token>& toks_;
  std::string_view src_;
  size_t i_ = 0;
  int depth_ = 0;
};

}  // namespace

StatusOr<Body> parse(const std::vector<Token>& tokens, std::string_view source) {
  if (tokens.empty() || tokens.back().kind != TokenKind::kEof) {
    return absl::InternalError("jinja parse: token stream must end with EOF");
  }
  return Parser(tokens, source).parse_template();
}

}  // namespace moeserve::jinja
