#include "core/wait_policy.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace moeserve {
namespace {

// Set (to the chosen spin count) in the re-executed process, so it does not re-execute
// again and can tell the project's default from a user's setting.
constexpr const char* kMarker = "MOESERVE_WAIT_POLICY_APPLIED";

bool is_set(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0';
}

std::string& description() {
  static std::string d;
  return d;
}

}  // namespace

void apply_wait_policy_default(char** argv) {
  if (const char* applied = std::getenv(kMarker); applied != nullptr) {
    description() = std::string("GOMP_SPINCOUNT=") + applied + " (moeserve default)";
    return;
  }
  if (is_set("OMP_WAIT_POLICY") || is_set("GOMP_SPINCOUNT")) {
    description() = "user-set:";
    for (const char* name : {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"}) {
      if (is_set(name)) description() += std::string(" ") + name + "=" + std::getenv(name);
    }
    return;
  }
  const char* spin = kDefaultSpinCount;
  if (const char* v = std::getenv("MOESERVE_SPINCOUNT"); v != nullptr) {
    if (*v == '\0' || std::strcmp(v, "default") == 0) {
      description() = "libgomp default (MOESERVE_SPINCOUNT=default)";
      return;
    }
    spin = v;
  }
  setenv("GOMP_SPINCOUNT", spin, 1);
  setenv(kMarker, spin, 1);
  execv("/proc/self/exe", argv);
  // Still here: exec failed (no /proc, say). Keep running under libgomp's default.
  std::fprintf(stderr,
               "moeserve: could not re-execute to apply GOMP_SPINCOUNT=%s (%s); idle compute "
               "threads spin libgomp's default; set OMP_WAIT_POLICY=passive when sharing cores\n",
               spin, std::strerror(errno));
  unsetenv("GOMP_SPINCOUNT");
  unsetenv(kMarker);
  description() = "libgomp default (re-exec failed)";
}

const char* wait_policy_description() {
  return description().empty() ? "libgomp default" : description().c_str();
}

}  // namespace moeserve
