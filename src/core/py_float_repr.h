// Python's repr() of a float: the shortest text that reads back to the same double ("1.0",
// "0.1", "1e-05", "1e+16", "inf", "nan"). vLLM's messages and Prometheus' number format
// (prometheus_client's floatToGoString starts from it) quote floats this way.
//
// Thread-safety: a pure function.
#pragma once

#include <string>

namespace moeserve {

std::string py_float_repr(double v);

}  // namespace moeserve
