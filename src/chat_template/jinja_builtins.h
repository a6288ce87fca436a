// Builtin filters, tests, methods and global functions of the Jinja-subset interpreter:
// the ones Hugging Face chat templates use, with Jinja2/Python semantics.
//
// Filters: abs capitalize count d default dictsort first float indent int items join last
//   length list lower map max min reject rejectattr replace reverse round safe select
//   selectattr sort string sum title tojson trim unique upper.
// Tests: boolean callable defined divisibleby eq equalto even false float ge gt in integer
//   iterable le lower lt mapping ne none number odd sameas sequence string true undefined
//   upper.
// Methods: str: startswith endswith split rsplit strip lstrip rstrip upper lower title
//   capitalize replace find count format join splitlines; dict: items keys values get;
//   list: append (mutates) index count.
// Globals: namespace range dict raise_exception strftime_now.
//
// Thread-safety: all functions are reentrant.
#pragma once

#include <string_view>

#include "chat_template/jinja_value.h"
#include "core/status.h"

namespace moeserve::jinja {

StatusOr<Value> apply_filter(std::string_view name, const Value& subject, const CallArgs& args);

StatusOr<bool> apply_test(std::string_view name, const Value& subject, const CallArgs& args);

StatusOr<Value> call_method(const Value& object, std::string_view name, const CallArgs& args);

// Builtin global function `name` as a callable value, or nullopt-like undefined when none.
Value global_function(std::string_view name);

// Cap on the size of any string or list a builtin builds (guards `'x' * 10**12`, range()).
inline constexpr size_t kMaxBuiltinSize = size_t{64} << 20;

}  // namespace moeserve::jinja
