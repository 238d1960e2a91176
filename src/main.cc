// raftd entry point: only wires the command line (src/cli).
#include "cli/cli.h"

int main(int argc, char** argv) { return raftd::cli::run(argc, argv); }
