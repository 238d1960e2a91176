// `raftd serve --config FILE`: runs a node in the foreground until SIGTERM or SIGINT (API.md
// section 1). Exit status: 0 after a clean shutdown, 2 for a bad config file or a data directory
// the config does not fit (a joining node, another node's directory), 1 for any other failure.
#pragma once

#include <string>

namespace raftd::cli {

int serve(const std::string& config_file);

}  // namespace raftd::cli
