// Helpers shared by the io tests: reactor creation that skips (exit 77) on kernels without the
// needed io_uring features, and bounded loops that turn the reactor until a condition holds.
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>

#include "raftd/io/reactor.h"

namespace raftd::io::testing {

// Generous: the test machine is shared by several compilers and test runs at once.
inline constexpr auto kWaitMax = std::chrono::seconds(20);

// Exit code meson treats as "skipped" for exitcode-protocol tests.
inline constexpr int kSkipExitCode = 77;

[[noreturn]] inline void skip(const std::string& why) {
  std::fprintf(stderr, "SKIP: %s\n", why.c_str());
  std::fflush(stderr);
  std::exit(kSkipExitCode);
}

// Options with small memory use (tests create many reactors).
inline ReactorOptions small_options() {
  ReactorOptions o;
  o.sq_entries = 64;
  o.recv_buffer_count = 64;
  o.recv_buffer_bytes = 4096;
  return o;
}

// A reactor, or a skip when the kernel lacks what the reactor needs.
inline std::unique_ptr<Reactor> make_reactor(const ReactorOptions& options = small_options()) {
  auto r = Reactor::create(options);
  if (!r.is_ok()) {
    if (r.status().code() == Code::kUnsupported) skip(r.status().to_string());
    FAIL("Reactor::create: " << r.status().to_string());
    return nullptr;
  }
  return std::move(r).value();
}

// Turns the reactor until pred() holds or kWaitMax passes; returns pred().
inline bool run_until(Reactor& r, const std::function<bool()>& pred,
                      std::chrono::milliseconds per_turn = std::chrono::milliseconds(20)) {
  const auto give_up = Reactor::now() + kWaitMax;
  while (!pred() && Reactor::now() < give_up) r.run_once(per_turn);
  return pred();
}

}  // namespace raftd::io::testing
