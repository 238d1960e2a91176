// raftd-load: the load generator for raftd and its peers (etcd's JSON gateway, any HTTP
// server). Closed loop (N connections, optional pipelining) or open loop at a fixed rate with
// latency measured from each request's due time; prints a log-linear latency histogram,
// throughput, errors by kind, and a last line of JSON for scripts. See bench/load/README.md.
//
// Exit status: 0 after a run (whatever its errors: they are in the report), 1 when the run
// could not start (no io_uring, a bad template), 2 for bad options.
#include <fmt/format.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "histogram.h"
#include "load_worker.h"
#include "raftd/io/socket.h"
#include "request_template.h"

namespace {

using raftd::bench::LatencyHistogram;
using raftd::bench::LoadConfig;
using raftd::bench::LoadCounters;
using raftd::bench::LoadWorker;

volatile std::sig_atomic_t g_interrupted = 0;
void on_signal(int) { g_interrupted = 1; }

// "HOST:PORT" or "http://HOST:PORT[/]" with an IPv4 HOST.
raftd::Result<raftd::bench::Endpoint> parse_endpoint(std::string text) {
  if (text.rfind("http://", 0) == 0) text.erase(0, 7);
  while (!text.empty() && text.back() == '/') text.pop_back();
  const std::size_t colon = text.rfind(':');
  if (colon == std::string::npos) {
    return raftd::Status(raftd::Code::kInvalidArgument, "target '" + text + "': no :PORT");
  }
  unsigned long port = 0;
  try {
    port = std::stoul(text.substr(colon + 1));
  } catch (...) {
    port = 0;
  }
  if (port == 0 || port > 65535) {
    return raftd::Status(raftd::Code::kInvalidArgument, "target '" + text + "': bad port");
  }
  auto addr = raftd::io::make_ipv4_address(text.substr(0, colon), static_cast<uint16_t>(port));
  if (!addr) return addr.status();
  return raftd::bench::Endpoint{text, addr.value()};
}

// "7" or "1-100".
bool parse_groups(const std::string& text, uint64_t& first, uint64_t& last) {
  try {
    const std::size_t dash = text.find('-');
    std::size_t used = 0;
    first = std::stoull(text.substr(0, dash), &used);
    if (used != text.substr(0, dash).size()) return false;
    last = first;
    if (dash != std::string::npos) {
      last = std::stoull(text.substr(dash + 1), &used);
      if (used != text.size() - dash - 1) return false;
    }
  } catch (...) {
    return false;
  }
  return first >= 1 && last >= first;
}

double us(uint64_t ns) { return static_cast<double>(ns) / 1000.0; }

double process_cpu_s() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// HdrHistogram's percentile distribution: the percentile steps halve the distance to 100%.
void print_distribution(const LatencyHistogram& h) {
  std::printf("%12s %14s %12s %18s\n", "Value(us)", "Percentile", "TotalCount", "1/(1-Percentile)");
  double q = 0.5;
  double gap = 0.5;
  for (;;) {
    const uint64_t v = h.percentile(q);
    std::printf("%12.1f %14.6f %12llu %18.2f\n", us(v), q,
                static_cast<unsigned long long>(h.count_at_or_below(v)), 1.0 / (1.0 - q));
    if (gap < 1e-5 || v >= h.max()) break;
    gap /= 2;
    q = 1.0 - gap;
  }
  std::printf("%12.1f %14.6f %12llu %18s\n", us(h.max()), 1.0,
              static_cast<unsigned long long>(h.count()), "inf");
}

nlohmann::json result_json(const LoadConfig& cfg, const raftd::bench::TemplateOptions& topt,
                           const LatencyHistogram& h, const LoadCounters& c, double elapsed_s,
                           double cpu_s) {
  nlohmann::json j;
  j["tool"] = "raftd-load";
  j["template"] = std::string(raftd::bench::template_kind_name(topt.kind));
  nlohmann::json targets = nlohmann::json::array();
  for (const auto& e : cfg.endpoints) targets.push_back(e.host_port);
  j["targets"] = targets;
  j["connections"] = cfg.connections;
  j["pipeline"] = cfg.depth;
  j["threads"] = cfg.threads;
  j["mode"] = cfg.rate > 0 ? "open" : "closed";
  j["rate"] = cfg.rate;
  j["elapsed_s"] = elapsed_s;
  j["sent"] = c.sent;
  j["requests"] = c.responses;
  j["ok"] = c.ok;
  j["rps"] = elapsed_s > 0 ? static_cast<double>(c.responses) / elapsed_s : 0.0;
  j["ok_rps"] = elapsed_s > 0 ? static_cast<double>(c.ok) / elapsed_s : 0.0;
  nlohmann::json lat;
  lat["min"] = us(h.min());
  lat["mean"] = h.mean() / 1000.0;
  lat["p50"] = us(h.percentile(0.5));
  lat["p90"] = us(h.percentile(0.9));
  lat["p99"] = us(h.percentile(0.99));
  lat["p999"] = us(h.percentile(0.999));
  lat["max"] = us(h.max());
  j["latency_us"] = lat;
  // Statuses that are not success, by class and by code (errors); every status (status).
  uint64_t classes[6] = {};
  nlohmann::json by_code = nlohmann::json::object();
  nlohmann::json bad_codes = nlohmann::json::object();
  for (std::size_t s = 100; s < c.status.size(); ++s) {
    if (c.status[s] == 0) continue;
    by_code[std::to_string(s)] = c.status[s];
    const bool ok =
        (s >= 200 && s < 300) || std::find(cfg.ok_statuses.begin(), cfg.ok_statuses.end(),
                                           static_cast<int>(s)) != cfg.ok_statuses.end();
    if (ok) continue;
    classes[s / 100] += c.status[s];
    bad_codes[std::to_string(s)] = c.status[s];
  }
  j["status"] = by_code;
  nlohmann::json err;
  err["total"] = c.errors();
  err["connect"] = c.connect_errors;
  err["connect_timeout"] = c.connect_timeouts;
  err["timeout"] = c.timeouts;
  err["io"] = c.io_errors;
  err["parse"] = c.parse_errors;
  err["backlog_full"] = c.backlog_full;
  err["unsent"] = c.unsent;
  err["status_not_ok"] = c.responses - c.ok;
  for (int k : {1, 3, 4, 5}) err[fmt::format("status_{}xx", k)] = classes[k];
  err["by_status"] = bad_codes;
  err["status_other"] = c.status_other;
  j["errors"] = err;
  j["reconnects"] = c.reconnects;
  j["cpu_s"] = cpu_s;
  j["cpu_us_per_request"] = c.responses > 0 ? cpu_s * 1e6 / static_cast<double>(c.responses) : 0;
  return j;
}

void print_report(const LoadConfig& cfg, const raftd::bench::TemplateOptions& topt,
                  const LatencyHistogram& h, const LoadCounters& c, double elapsed_s) {
  std::printf(
      "raftd-load %s: %zu target(s), %u connections, pipeline %u, %u thread(s), %s\n",
      std::string(raftd::bench::template_kind_name(topt.kind)).c_str(), cfg.endpoints.size(),
      cfg.connections, cfg.depth, cfg.threads,
      cfg.rate > 0 ? fmt::format("open loop at {} req/s", cfg.rate).c_str() : "closed loop");
  std::printf("\nLatency distribution (us; HDR-style log-linear buckets, 0.8%% precision):\n");
  print_distribution(h);
  std::printf("\nLatency (us): p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f\n",
              us(h.percentile(0.5)), us(h.percentile(0.9)), us(h.percentile(0.99)),
              us(h.percentile(0.999)), us(h.max()), h.mean() / 1000.0);
  std::printf("%llu requests in %.2f s: %.1f req/s (%llu ok: %.1f req/s), %llu sent\n",
              static_cast<unsigned long long>(c.responses), elapsed_s,
              elapsed_s > 0 ? static_cast<double>(c.responses) / elapsed_s : 0.0,
              static_cast<unsigned long long>(c.ok),
              elapsed_s > 0 ? static_cast<double>(c.ok) / elapsed_s : 0.0,
              static_cast<unsigned long long>(c.sent));
  std::string codes;
  for (std::size_t s = 100; s < c.status.size(); ++s) {
    if (c.status[s] != 0) codes += fmt::format(" {}:{}", s, c.status[s]);
  }
  std::printf("Status codes:%s\n", codes.empty() ? " none" : codes.c_str());
  std::printf(
      "Errors: %llu (connect %llu, connect timeout %llu, timeout %llu, io %llu, parse %llu, "
      "not ok status %llu, backlog full %llu, unsent %llu); reconnects %llu\n",
      static_cast<unsigned long long>(c.errors()),
      static_cast<unsigned long long>(c.connect_errors),
      static_cast<unsigned long long>(c.connect_timeouts),
      static_cast<unsigned long long>(c.timeouts), static_cast<unsigned long long>(c.io_errors),
      static_cast<unsigned long long>(c.parse_errors),
      static_cast<unsigned long long>(c.responses - c.ok),
      static_cast<unsigned long long>(c.backlog_full), static_cast<unsigned long long>(c.unsent),
      static_cast<unsigned long long>(c.reconnects));
}

}  // namespace

int main(int argc, char** argv) {
  LoadConfig cfg;
  raftd::bench::TemplateOptions topt;
  std::vector<std::string> targets;
  std::string template_name = "raftd-put";
  std::string groups = "1";
  bool quiet = false;

  CLI::App app{
      "raftd-load: HTTP/1.1 load generator for raftd, etcd's JSON gateway and any HTTP server, "
      "on io_uring. Closed loop by default (each connection keeps --pipeline requests "
      "outstanding); --rate makes it open loop (requests due at fixed intervals, latency from "
      "the due time, so a slow server cannot hide its queueing). Prints a latency histogram "
      "(microseconds), throughput, errors by kind, and a last line of JSON.",
      "raftd-load"};
  app.add_option("targets", targets,
                 "Target HOST:PORT (or http://HOST:PORT), IPv4; several: connections are spread "
                 "round-robin over them")
      ->required();
  app.add_option("-T,--template", template_name,
                 "Request: raftd-put (propose {\"op\":\"put\",...} to /v1/groups/G/propose), "
                 "raftd-get (linearizable read {\"op\":\"get\",...} at /v1/groups/G/read), "
                 "etcd-put (/v3/kv/put {\"key\":b64,\"value\":b64}), etcd-range (/v3/kv/range "
                 "{\"key\":b64}), http-get (GET --path)")
      ->capture_default_str();
  app.add_option("-c,--connections", cfg.connections, "Connections in all (over all threads)")
      ->check(CLI::Range(1u, raftd::bench::kConnectionsMax))
      ->capture_default_str();
  app.add_option("-p,--pipeline", cfg.depth,
                 "Requests outstanding per connection (HTTP/1.1 pipelining when > 1)")
      ->check(CLI::Range(1u, raftd::bench::kDepthMax))
      ->capture_default_str();
  app.add_option("-r,--rate", cfg.rate,
                 "Open loop: requests per second in all (0: closed loop). Latency is measured "
                 "from each request's due time")
      ->check(CLI::Range(0.0, 1e8))
      ->capture_default_str();
  app.add_option("-d,--duration", cfg.duration_s, "Seconds of load (when --requests is 0)")
      ->check(CLI::Range(0.001, 1e6))
      ->capture_default_str();
  app.add_option("-n,--requests", cfg.requests,
                 "Requests to send in all, then stop (0: use --duration)")
      ->capture_default_str();
  app.add_option("-t,--threads", cfg.threads,
                 "Threads, each with its own io_uring and a share of the connections and rate")
      ->check(CLI::Range(1u, 256u))
      ->capture_default_str();
  app.add_option("--timeout", cfg.timeout_ms,
                 "Milliseconds without a response before a request counts as a timeout (its "
                 "connection is then reopened); also the longest wait for responses at the end")
      ->check(CLI::Range(1u, 3600000u))
      ->capture_default_str();
  app.add_option("--connect-timeout", cfg.connect_timeout_ms, "Milliseconds for a TCP connect")
      ->check(CLI::Range(1u, 3600000u))
      ->capture_default_str();
  app.add_option("-k,--keyspace", topt.keyspace,
                 "Distinct keys; each request picks one uniformly at random (keys are "
                 "PREFIX%08d)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 62))
      ->capture_default_str();
  app.add_option("-s,--value-size", topt.value_bytes, "Value bytes of puts (letters a-z)")
      ->check(CLI::Range(std::size_t{0}, raftd::bench::kTemplateValueBytesMax))
      ->capture_default_str();
  app.add_option("--key-prefix", topt.key_prefix, "Key prefix (letters, digits, _-.:/)")
      ->capture_default_str();
  app.add_option("-g,--groups", groups,
                 "raftd templates: group id, or a range FIRST-LAST; each request picks one "
                 "uniformly at random")
      ->capture_default_str();
  app.add_flag("--stale", topt.stale_reads, "raftd-get: ?consistency=stale (no ReadIndex round)");
  app.add_option("--path", topt.path, "http-get: the request target")->capture_default_str();
  app.add_option("--ok-status", cfg.ok_statuses,
                 "Status codes besides 2xx that count as success (e.g. 404 for reads of keys "
                 "never written)");
  app.add_option("--seed", cfg.seed, "Seed of the key and group choices and of the value")
      ->capture_default_str();
  app.add_flag("-q,--quiet", quiet, "Print only the JSON result line");
  CLI11_PARSE(app, argc, argv);

  auto kind = raftd::bench::parse_template_kind(template_name);
  if (!kind) {
    std::fprintf(stderr, "raftd-load: %s\n", kind.status().message().c_str());
    return 2;
  }
  topt.kind = kind.value();
  topt.seed = cfg.seed;
  if (!parse_groups(groups, topt.group_first, topt.group_last)) {
    std::fprintf(stderr, "raftd-load: --groups: an id or a range FIRST-LAST, ids >= 1\n");
    return 2;
  }
  for (const auto& t : targets) {
    auto ep = parse_endpoint(t);
    if (!ep) {
      std::fprintf(stderr, "raftd-load: %s\n", ep.status().message().c_str());
      return 2;
    }
    cfg.endpoints.push_back(ep.value());
  }
  if (cfg.threads > cfg.connections) cfg.threads = cfg.connections;
  auto tpl = raftd::bench::RequestTemplate::make(topt);
  if (!tpl) {
    std::fprintf(stderr, "raftd-load: %s\n", tpl.status().message().c_str());
    return 2;
  }

  // Connection i goes to endpoint i % E and thread i % T; the rate and the request count are
  // shared out evenly, and the threads' schedules are offset so their requests interleave.
  std::vector<std::unique_ptr<LoadWorker>> workers;
  for (unsigned w = 0; w < cfg.threads; ++w) {
    std::vector<unsigned> eps;
    for (unsigned i = w; i < cfg.connections; i += cfg.threads) {
      eps.push_back(static_cast<unsigned>(i % cfg.endpoints.size()));
    }
    const double rate = cfg.rate / cfg.threads;
    const uint64_t quota = cfg.requests / cfg.threads + (w < cfg.requests % cfg.threads ? 1 : 0);
    if (cfg.requests > 0 && quota == 0) continue;
    const int64_t offset = cfg.rate > 0 ? static_cast<int64_t>(1e9 / cfg.rate * w) : 0;
    workers.push_back(
        std::make_unique<LoadWorker>(cfg, tpl.value(), w, std::move(eps), rate, quota, offset));
  }

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::vector<raftd::Status> statuses(workers.size());
  std::atomic<unsigned> running{static_cast<unsigned>(workers.size())};
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < workers.size(); ++i) {
    threads.emplace_back([&, i] {
      statuses[i] = workers[i]->run();
      running.fetch_sub(1);
    });
  }
  bool stop_sent = false;
  while (running.load() > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (g_interrupted != 0 && !stop_sent) {
      for (auto& w : workers) w->request_stop();
      stop_sent = true;
    }
  }
  for (auto& t : threads) t.join();
  for (const auto& s : statuses) {
    if (!s.is_ok()) {
      std::fprintf(stderr, "raftd-load: %s\n", s.to_string().c_str());
      return 1;
    }
  }

  LatencyHistogram hist;
  LoadCounters counters;
  int64_t elapsed_ns = 0;
  for (const auto& w : workers) {
    hist.merge(w->histogram());
    counters.merge(w->counters());
    elapsed_ns = std::max(elapsed_ns, w->elapsed_ns());
  }
  const double elapsed_s = static_cast<double>(elapsed_ns) / 1e9;
  if (!quiet) {
    print_report(cfg, topt, hist, counters, elapsed_s);
  }
  std::printf("%s\n",
              result_json(cfg, topt, hist, counters, elapsed_s, process_cpu_s()).dump().c_str());
  return 0;
}
