// `moeserve route`: runs the router (RouterApp: scheduler, endpoint pool, scraper, proxy)
// until SIGINT/SIGTERM. The `moeserve` binary dispatches its `route` subcommand here with argv
// starting at the subcommand name.
#pragma once

namespace moeserve::router {

int route_main(int argc, char** argv);

}  // namespace moeserve::router
