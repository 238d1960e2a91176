// app_client_probe: raftd's own application client (app::AppClient, the code raftd serve uses)
// against a running example application, so the examples are known to work with raftd's side
// of the wire, not only with the test's. app_test.py runs it against each example.
//
// Usage: app_client_probe --url http://127.0.0.1:PORT --group G --encoding binary|json
//                         [--token T] [--sync]
// The group must be new to the app. Exits 0 when every step gave what the KV language and the
// contract say, 1 with a message otherwise.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "raftd/app/app_client.h"
#include "raftd/io/reactor.h"

namespace {

using namespace raftd;  // NOLINT: a small test program

// Generous: the app may run under ASan on a shared machine; this only guards against a hang.
constexpr auto kDeadline = std::chrono::seconds(60);

struct Probe {
  io::Reactor& reactor;
  app::AppClient& client;
  GroupId group;
  LogIndex applied;
  std::vector<app::Record> results;

  bool run_until(const std::function<bool()>& pred) {
    const auto give_up = io::Reactor::now() + kDeadline;
    while (!pred() && io::Reactor::now() < give_up) {
      reactor.run_once(std::chrono::milliseconds(20));
    }
    return pred();
  }

  std::optional<LogIndex> last_log_index() {
    std::optional<LogIndex> got;
    client.last_log_index(group, [&got](LogIndex i) { got = i; });
    run_until([&got] { return got.has_value(); });
    return got;
  }

  // Committed entries 1..6: 1 and 6 are raftd's own (not sent), 2-5 are commands.
  bool apply() {
    std::vector<app::AppEntry> entries{
        {LogIndex(1), false, ""},
        {LogIndex(2), true, R"({"op":"put","key":"a","value":"1"})"},
        {LogIndex(3), true, R"({"op":"put","key":"a","value":"2"})"},
        {LogIndex(4), true, R"({"op":"cas","key":"a","expected":"1","value":"3"})"},
        {LogIndex(5), true, R"({"op":"delete","key":"b"})"},
        {LogIndex(6), false, ""},
    };
    if (Status s = client.enqueue(group, std::move(entries)); !s) {
      std::fprintf(stderr, "enqueue: %s\n", s.to_string().c_str());
      return false;
    }
    return run_until([this] { return applied == LogIndex(6); });
  }

  std::optional<app::AppReply> get(const std::string& key) {
    std::optional<app::AppReply> got;
    client.get_entry(group, R"({"op":"get","key":")" + key + R"("})",
                     [&got](Result<app::AppReply> r) {
                       if (r) got = std::move(r).value();
                     });
    run_until([&got] { return got.has_value(); });
    return got;
  }
};

int fail(const std::string& what) {
  std::fprintf(stderr, "app_client_probe: %s\n", what.c_str());
  return 1;
}

int probe(io::Reactor& reactor, app::AppOptions options, GroupId group, bool sync) {
  Probe* self = nullptr;
  options.on_applied = [&self](GroupId, LogIndex last, std::vector<app::Record> results) {
    self->applied = last;
    for (auto& r : results) self->results.push_back(std::move(r));
  };
  auto client = app::AppClient::create(reactor, std::move(options));
  if (!client) return fail(client.status().to_string());
  Probe p{reactor, *client.value(), group, LogIndex(), {}};
  self = &p;
  int rc = 0;
  const std::vector<std::string> want{
      R"({"ok":true,"prev":null})",
      R"({"ok":true,"prev":"1"})",
      R"({"error":"cas_failed","ok":false,"prev":"2"})",
      R"({"ok":true,"prev":null})",
  };
  if (auto i = p.last_log_index(); !i || *i != LogIndex(0)) {
    rc = fail("LastLogIndex of a new group is not 0");
  } else if (!p.apply()) {
    rc = fail("the batch was not acknowledged up to index 6");
  } else if (p.results.size() != want.size()) {
    rc = fail("expected 4 results, got " + std::to_string(p.results.size()));
  } else {
    for (std::size_t k = 0; k < want.size() && rc == 0; ++k) {
      if (p.results[k].index != LogIndex(k + 2) || p.results[k].data != want[k]) {
        rc = fail("result " + std::to_string(k) + ": " + p.results[k].data);
      }
    }
  }
  if (rc == 0 && sync) {
    std::optional<LogIndex> durable;
    p.client.sync(group, [&durable](LogIndex i) { durable = i; });
    p.run_until([&durable] { return durable.has_value(); });
    if (!durable || *durable != LogIndex(6)) rc = fail("Sync did not report index 6 durable");
  }
  if (rc == 0) {
    auto a = p.get("a");
    auto b = p.get("b");
    if (!a || a->status != 200 || a->body != "2") {
      rc = fail("GetEntry a: " + (a ? std::to_string(a->status) + " " + a->body : "no answer"));
    } else if (!b || b->status != 404) {
      rc = fail("GetEntry b is not 404");
    } else if (auto i = p.last_log_index(); !i || *i != LogIndex(6)) {
      rc = fail("LastLogIndex after the batch is not 6");
    } else if (p.client.stats().failures != 0) {
      rc = fail("the client saw failed calls");
    }
  }
  p.client.close();
  p.run_until([&p] { return p.client.closed(); });
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  std::string url;
  std::string encoding = "binary";
  std::string token;
  std::uint64_t group = 0;
  bool sync = false;
  CLI::App cli{"raftd's application client against a running example application"};
  cli.add_option("--url", url, "the app's base URL")->required();
  cli.add_option("--group", group, "a group id new to the app")->required();
  cli.add_option("--encoding", encoding, "binary or json");
  cli.add_option("--token", token, "bearer token");
  cli.add_flag("--sync", sync, "app.sync: durability from POST /Sync");
  CLI11_PARSE(cli, argc, argv);

  app::AppOptions options;
  auto parsed_url = app::parse_app_url(url);
  auto parsed_encoding = app::parse_encoding(encoding);
  if (!parsed_url) return fail(parsed_url.status().to_string());
  if (!parsed_encoding) return fail(parsed_encoding.status().to_string());
  options.url = *parsed_url;
  options.encoding = *parsed_encoding;
  options.token = token;
  options.sync = sync;
  options.jitter_seed = 1;
  auto reactor = io::Reactor::create();
  if (!reactor) return fail(reactor.status().to_string());
  const int rc = probe(*reactor.value(), std::move(options), GroupId(group), sync);
  reactor.value()->shutdown();
  return rc;
}
