#include "cli/serve.h"

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <thread>

#include "cli/cli.h"
#include "raftd/base/log.h"
#include "raftd/config/config.h"
#include "raftd/node/node.h"

namespace raftd::cli {

// SIGTERM and SIGINT are blocked in every thread and taken by one thread with sigtimedwait, which
// asks the node to stop; the node's reactor thread never sees a signal handler run under it.
int serve(const std::string& config_file) {
  Result<config::Config> cfg = config::load_config(config_file);
  if (!cfg) {
    std::fprintf(stderr, "%s\n", cfg.status().message().c_str());
    return kExitUsage;
  }
  log::set_level(cfg->log.level);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  auto node = node::Node::start(*cfg);
  if (!node) {
    log::error("raftd serve: {}", node.status().to_string());
    return node.status().code() == Code::kInvalidArgument ? kExitUsage : kExitFailed;
  }
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    const timespec poll{0, 100 * 1000 * 1000};
    while (!done.load()) {
      int sig = sigtimedwait(&stop_signals, nullptr, &poll);
      if (sig == SIGTERM || sig == SIGINT) {
        log::info("raftd serve: {} received", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        (*node)->request_stop();
      }
    }
  });
  Status s = (*node)->run();
  done.store(true);
  waiter.join();
  if (!s.is_ok()) {
    log::error("raftd serve: {}", s.to_string());
    return kExitFailed;
  }
  return kExitOk;
}

}  // namespace raftd::cli
