// The `raftd` command line: subcommands, their --help, and exit codes (0 success, 1 the command
// ran and found a problem, e.g. a damaged WAL, or the server answered an error or could not be
// reached, 2 usage errors, including a bad config file). The client subcommands (status, group,
// propose, read) are in client_commands.h.
#pragma once

namespace raftd::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

// Parses argv and runs the subcommand. Returns the process exit code.
int run(int argc, char** argv);

}  // namespace raftd::cli
