#include "cli/cli.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <optional>
#include <string>

#include "cli/client_commands.h"
#include "cli/serve.h"
#include "raftd/config/config.h"
#include "raftd/wal/file.h"
#include "raftd/wal/inspect.h"

#ifndef RAFTD_VERSION
#error "RAFTD_VERSION is set by the build"
#endif

namespace raftd::cli {

namespace {

// A DIR that is not a directory is a usage error (exit 2), not a damaged WAL.
bool check_dir(const char* cmd, const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return true;
  std::fprintf(stderr, "raftd wal %s: %s is not a directory\n", cmd, dir.c_str());
  return false;
}

int wal_verify(const std::string& dir) {
  if (!check_dir("verify", dir)) return kExitUsage;
  std::string report;
  Status s = wal::verify_dir(wal::posix_env(), dir, &report);
  if (!s) {
    std::fprintf(stderr, "raftd wal verify: %s: %s\n",
                 s.code() == Code::kCorruption ? "damaged" : "error", s.message().c_str());
    return kExitFailed;
  }
  std::fputs(report.c_str(), stdout);
  return kExitOk;
}

int wal_inspect(const std::string& dir, bool frames) {
  if (!check_dir("inspect", dir)) return kExitUsage;
  std::string report;
  Status s = wal::inspect_dir(wal::posix_env(), dir, wal::InspectOptions{frames}, &report);
  if (!s) {
    std::fputs(report.c_str(), stdout);
    std::fprintf(stderr, "raftd wal inspect: %s: %s\n",
                 s.code() == Code::kCorruption ? "damaged" : "error", s.message().c_str());
    return kExitFailed;
  }
  std::fputs(report.c_str(), stdout);
  return kExitOk;
}

// A bad file is a usage error (exit 2), like a bad option: the daemon refuses to start with it.
int check_config(const std::string& file) {
  Result<config::Config> cfg = config::load_config(file);
  if (!cfg) {
    std::fprintf(stderr, "%s\n", cfg.status().message().c_str());
    return kExitUsage;
  }
  std::printf("%s: ok\n", file.c_str());
  return kExitOk;
}

}  // namespace

int run(int argc, char** argv) {
  CLI::App app{"raftd: multi-group Raft as a daemon", "raftd"};
  app.footer(
      "Exit status: 0 success, 1 the command failed or found damage, or the server answered an "
      "error, 2 usage error.");
  app.require_subcommand(1);

  CLI::App* version = app.add_subcommand("version", "Print the version and exit");

  std::string config_file;
  CLI::App* check = app.add_subcommand(
      "check-config", "Load and validate a configuration file (raftd.toml(5)) and exit");
  check->add_option("FILE", config_file, "Configuration file")->required();
  check->footer(
      "Prints \"FILE: ok\" and exits 0 when the file is valid; otherwise prints one line, "
      "\"FILE:LINE: key 'section.key': what is wrong\", to stderr and exits 2. RAFT_SYNC in "
      "the environment is read as raftd serve reads it.");

  std::string serve_config;
  CLI::App* serve_cmd = app.add_subcommand("serve", "Run a node in the foreground");
  serve_cmd->add_option("--config", serve_config, "Configuration file (raftd.toml(5))")->required();
  serve_cmd->footer(
      "Logs to stderr; SIGTERM or SIGINT stop it cleanly. Exit status: 0 after a clean "
      "shutdown, 2 for a bad config file or a data directory the config does not fit, 1 for "
      "any other failure.");

  ClientCommands client(app);

  CLI::App* wal = app.add_subcommand("wal", "Offline tools for a WAL directory");
  wal->require_subcommand(1);
  std::string dir;
  CLI::App* verify =
      wal->add_subcommand("verify", "Check every segment and frame of a WAL directory (read-only)");
  verify->footer(
      "Exit status: 0 clean (a torn, never acknowledged tail is reported as a warning; the "
      "next start cuts it), 1 damaged (the message names the file and byte offset), 2 usage "
      "error.");
  verify->add_option("DIR", dir, "WAL directory")->required();
  bool frames = false;
  CLI::App* inspect = wal->add_subcommand(
      "inspect", "Describe a WAL directory: segments, frames, groups and their entry indexes");
  inspect->add_option("DIR", dir, "WAL directory")->required();
  inspect->add_flag("--frames", frames, "List every frame");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  if (version->parsed()) {
    std::printf("raftd %s\n", RAFTD_VERSION);
    return kExitOk;
  }
  if (serve_cmd->parsed()) return serve(serve_config);
  if (std::optional<int> rc = client.run()) return *rc;
  if (check->parsed()) return check_config(config_file);
  if (verify->parsed()) return wal_verify(dir);
  if (inspect->parsed()) return wal_inspect(dir, frames);
  return kExitUsage;
}

}  // namespace raftd::cli
