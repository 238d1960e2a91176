#include "cli/serve.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <thread>

#include "cli/cli.h"
#include "raftd/base/log.h"
#include "raftd/config/config.h"
#include "raftd/node/node.h"

namespace raftd::cli {

namespace {

// How long one readiness probe may wait for connect, send and answer: the probe runs on the
// signal thread, whose SIGTERM handling it delays by at most about this much.
constexpr int kReadyProbeTimeoutMs = 500;

// systemd's readiness protocol (sd_notify(3), "Type=notify"), without libsystemd: each state is
// one datagram ("READY=1", "STOPPING=1", "STATUS=...") to the AF_UNIX datagram socket named by
// $NOTIFY_SOCKET, a path or, starting with '@', a name in the abstract namespace. Unset (not run
// by systemd) or unusable: every send is a no-op. Best effort: a lost datagram is logged, never
// fatal (systemd then times the start out, which is its report).
class Notifier {
 public:
  Notifier() {
    const char* env = std::getenv("NOTIFY_SOCKET");
    if (env == nullptr || env[0] == '\0') return;
    const std::string_view name(env);
    if ((name[0] != '/' && name[0] != '@') || name.size() >= sizeof(addr_.sun_path)) {
      log::warn("raftd serve: NOTIFY_SOCKET={} is not a usable socket name; not notifying", name);
      return;
    }
    addr_.sun_family = AF_UNIX;
    std::memcpy(addr_.sun_path, name.data(), name.size());
    if (name[0] == '@') addr_.sun_path[0] = '\0';  // abstract: no terminating NUL counted
    addr_len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() +
                                       (name[0] == '@' ? 0 : 1));
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) log::warn("raftd serve: notify socket: {}", std::strerror(errno));
  }
  ~Notifier() {
    if (fd_ >= 0) ::close(fd_);
  }
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  bool enabled() const { return fd_ >= 0; }
  void send(std::string_view state) const {
    if (fd_ < 0) return;
    if (::sendto(fd_, state.data(), state.size(), MSG_NOSIGNAL,
                 reinterpret_cast<const sockaddr*>(&addr_), addr_len_) < 0) {
      log::warn("raftd serve: notify {}: {}", state, std::strerror(errno));
    }
  }

 private:
  int fd_ = -1;
  sockaddr_un addr_{};
  socklen_t addr_len_ = 0;
};

// GET /readyz on the node's own client listener answered 200: the node is ready exactly when
// its readiness probe says so (WAL recovered, meta group has a leader; API.md section 2), and
// its client API is accepting. A listener on the wildcard address is reached on loopback.
bool probe_ready(const config::Address& client) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const timeval tv{0, kReadyProbeTimeoutMs * 1000};
  (void)::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  (void)::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(client.port);
  const std::string host = client.host == "0.0.0.0" ? "127.0.0.1" : client.host;
  bool ready = false;
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) == 1 &&
      ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string request =
        "GET /readyz HTTP/1.1\r\nHost: " + client.to_string() + "\r\nConnection: close\r\n\r\n";
    char status[16] = {};
    std::size_t got = 0;
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      while (got < sizeof status - 1) {
        const ssize_t n = ::recv(fd, status + got, sizeof status - 1 - got, 0);
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
      }
    }
    ready = std::string_view(status, got).starts_with("HTTP/1.1 200 ");
  }
  ::close(fd);
  return ready;
}

}  // namespace

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
  // Under systemd (Type=notify) this thread also reports readiness, probing /readyz until it
  // answers 200, and the stop.
  const Notifier notifier;
  notifier.send("STATUS=recovered; waiting for the meta group to have a leader");
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    const timespec poll{0, 100 * 1000 * 1000};
    bool ready = !notifier.enabled();
    bool stopping = false;
    while (!done.load()) {
      int sig = sigtimedwait(&stop_signals, nullptr, &poll);
      if (sig == SIGTERM || sig == SIGINT) {
        log::info("raftd serve: {} received", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        stopping = true;
        notifier.send("STOPPING=1\nSTATUS=stopping");
        (*node)->request_stop();
      }
      if (!ready && !stopping && probe_ready(cfg->listen.client)) {
        ready = true;
        log::info("raftd serve: ready; notifying systemd");
        notifier.send("READY=1\nSTATUS=ready");
      }
    }
  });
  Status s = (*node)->run();
  done.store(true);
  waiter.join();
  if (!s.is_ok()) {
    log::error("raftd serve: {}", s.to_string());
    // As at start-up: kInvalidArgument is a configuration that does not fit (doc/node.md).
    return s.code() == Code::kInvalidArgument ? kExitUsage : kExitFailed;
  }
  return kExitOk;
}

}  // namespace raftd::cli
