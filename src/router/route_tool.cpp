// Standalone `moeserve-route` for testing the router alone; same flags as `moeserve route`.
#include "router/route_command.h"

int main(int argc, char** argv) {
  return moeserve::router::route_main(argc, argv);
}
