// The client subcommands of `raftd`: status, cluster add-node|remove-node, group
// create|delete|list|show|..., propose and read.
// Each talks HTTP/1.1 to a node's client listener (API.md section 2) and shares the options
// --endpoint URL (env RAFTD_ENDPOINT, default http://127.0.0.1:7300; an IPv4 literal host),
// --token T (env RAFTD_TOKEN; sent as "Authorization: Bearer T") and --timeout-ms.
//
// Exit codes (cli.h): kExitOk on a 2xx answer; kExitFailed when the server answered an error
// (printed to stderr as "raftd CMD: STATUS CODE: MESSAGE") or no answer came (the message names
// the endpoint); kExitUsage for a bad option, argument or endpoint (CLI11 reports most of them).
// Only endpoints this release implements have a subcommand.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace raftd::cli {

// A response timeout above the node's own 10 s propose and read timeouts, so that the node's
// 503/504 answer arrives rather than a client-side timeout.
inline constexpr std::uint32_t kClientTimeoutMsDefault = 15000;
inline constexpr std::uint32_t kClientTimeoutMsMax = 3600 * 1000;

class ClientCommands {
 public:
  // Adds the subcommands to `app`; the object must outlive app.parse() and run().
  explicit ClientCommands(CLI::App& app);

  // After a successful parse: the exit code of the client subcommand that was given, having run
  // it, or nullopt when the command line named none of them.
  std::optional<int> run();

 private:
  int status();
  int group_create();
  int group_delete();
  int group_list();
  int group_show();
  int group_transfer_leader();
  int group_snapshot();
  int group_member(bool add);
  int cluster_node(bool add);
  int call_and_print(const char* name, std::string_view method, const std::string& target,
                     std::string body = {});
  int propose();
  int read();

  struct Connection {
    std::string endpoint = "http://127.0.0.1:7300";
    std::string token;
    std::uint32_t timeout_ms = kClientTimeoutMsDefault;
  };
  void add_connection_options(CLI::App* cmd);

  Connection conn_;
  std::vector<CLI::Option*> endpoint_options_;  // one per subcommand, all bound to conn_
  std::vector<CLI::Option*> token_options_;
  bool json_ = false;
  bool stale_ = false;
  std::string key_;  // propose --key: the Idempotency-Key
  std::uint64_t group_ = 0;
  std::vector<std::uint64_t> members_;
  std::uint64_t node_ = 0;  // group transfer-leader / add-member / remove-member NODE
  bool learner_ = false;    // group add-member --learner
  std::string peer_;        // cluster add-node --peer
  std::string client_;      // cluster add-node --client
  std::string data_ = "-";
  CLI::App* status_ = nullptr;
  CLI::App* create_ = nullptr;
  CLI::App* delete_ = nullptr;
  CLI::App* list_ = nullptr;
  CLI::App* show_ = nullptr;
  CLI::App* transfer_ = nullptr;
  CLI::App* snapshot_ = nullptr;
  CLI::App* add_member_ = nullptr;
  CLI::App* remove_member_ = nullptr;
  CLI::App* add_node_ = nullptr;
  CLI::App* remove_node_ = nullptr;
  CLI::App* propose_ = nullptr;
  CLI::App* read_ = nullptr;
};

}  // namespace raftd::cli
