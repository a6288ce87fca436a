// Parser for the Jinja subset used by chat templates: turns lexer tokens into a Body.
//
// Statements: if/elif/else, for (with tuple targets, `if` filter, else, loop controls
// break/continue), set (names, tuples, `ns.attr`, block form), macro, generation (rendered
// in place). Expressions follow Jinja2's precedence: ternary < or < and < not < comparisons
// (chained, `in`, `not in`) < + - < ~ < * / // % < ** < unary - + < postfix (.attr,
// [item], [a:b:c], call) and filters/tests (`|f(args)`, `is [not] t args`).
//
// Thread-safety: stateless free function.
#pragma once

#include <string_view>
#include <vector>

#include "chat_template/jinja_ast.h"
#include "chat_template/jinja_lexer.h"
#include "core/status.h"

namespace moeserve::jinja {

// Parses `tokens` (from lex(source)); `source` only serves error positions. Nesting deeper
// than a fixed bound is a syntax error rather than a stack overflow.
StatusOr<Body> parse(const std::vector<Token>& tokens, std::string_view source);

}  // namespace moeserve::jinja
