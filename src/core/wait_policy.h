// The compute threads' wait policy: how long an idle OpenMP worker spins before it sleeps.
//
// libgomp (ours and oneDNN's OpenMP runtime) spins 300,000 iterations by default after a
// parallel region before it sleeps on a futex, and forever with OMP_WAIT_POLICY=active. On
// a core another process needs (a second engine, the router, a client) that spinning steals
// the time the working threads need: three engines and a router on two cores ran 33x slower
// than with passive waiting, and still 9x slower with a 10,000-iteration spin. moeserve
// therefore bounds the spin itself (kDefaultSpinCount, measured in docs/benchmarks.md), so
// speed does not hinge on a variable the user has to know about.
//
// libgomp reads OMP_WAIT_POLICY and GOMP_SPINCOUNT once, when it is loaded (before main), so
// apply_wait_policy_default() re-executes the binary once with GOMP_SPINCOUNT set. Values
// the user set (OMP_WAIT_POLICY or GOMP_SPINCOUNT) are kept untouched; MOESERVE_SPINCOUNT
// overrides the project's default ("" or "default": libgomp's own behaviour).
//
// Thread-safety: call apply_wait_policy_default() first thing in main, before any thread.
#pragma once

namespace moeserve {

// Iterations an idle compute thread spins before sleeping (GOMP_SPINCOUNT).
inline constexpr const char* kDefaultSpinCount = "100";

// Returns only when nothing is to be done (the policy is in effect, the user chose one, or
// the re-exec failed, which is logged to stderr and leaves libgomp's default); otherwise
// replaces the process image with `argv` run again under the default.
void apply_wait_policy_default(char** argv);

// A one-line description of the compute threads' wait policy in effect, for logs and
// benchmark output, e.g. "GOMP_SPINCOUNT=10000 (moeserve default)".
const char* wait_policy_description();

}  // namespace moeserve
