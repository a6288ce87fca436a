// `moeserve serve`: one engine in this process, or (--data-parallel-size N) the data-parallel
// launcher (cli/dp_launcher.h).
#include "cli/commands.h"
#include "cli/dp_launcher.h"
#include "server/serve_command.h"

namespace moeserve {

int serve_main(int argc, char** argv) {
  int exit_code = 0;
  std::optional<ServeCommand> command = parse_serve_command(argc, argv, &exit_code);
  if (!command) return exit_code;
  if (command->data_parallel_mode()) return run_data_parallel(*command);
  return run_single_server(command->options);
}

}  // namespace moeserve
