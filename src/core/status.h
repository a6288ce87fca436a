// Status helpers: recoverable failures travel as absl::Status / absl::StatusOr<T>;
// invariant violations go through MS_CHECK, which logs file and line and aborts.
#pragma once

#include <cstdio>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace moeserve {

using absl::Status;
using absl::StatusOr;

}  // namespace moeserve

#define MS_CONCAT_INNER(a, b) a##b
#define MS_CONCAT(a, b) MS_CONCAT_INNER(a, b)

#define MS_RETURN_IF_ERROR(expr)                \
  do {                                          \
    ::absl::Status _ms_status = (expr);         \
    if (!_ms_status.ok()) return _ms_status;    \
  } while (0)

#define MS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(*tmp)

#define MS_ASSIGN_OR_RETURN(lhs, expr) \
  MS_ASSIGN_OR_RETURN_IMPL(MS_CONCAT(_ms_statusor_, __LINE__), lhs, expr)

// For invariants only: a request or a file must never be able to trigger this.
#define MS_CHECK(cond)                                                              \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)
