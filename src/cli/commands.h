// Entry points of the `moeserve` subcommands; each parses its own arguments.
#pragma once

namespace moeserve {

int gen_model_main(int argc, char** argv);
// `moeserve serve`: the single-process server or the data-parallel launcher.
int serve_main(int argc, char** argv);
int run_main(int argc, char** argv);
int bench_main(int argc, char** argv);
// `moeserve tune`: kernel selection by measurement (tune_command.cpp).
int tune_main(int argc, char** argv);
// `moeserve bench decode`: batched-decode throughput through the engine (bench_decode.cpp).
int bench_decode_main(int argc, char** argv);
// `moeserve eplb plan`: expert placement for a load file (eplb_command.cpp).
int eplb_main(int argc, char** argv);

}  // namespace moeserve
