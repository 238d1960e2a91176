// The exposition format (Prometheus text 0.0.4) and the histogram behind it, checked line by line.
#include "raftd/node/metrics.h"

#include <doctest/doctest.h>

#include <sstream>
#include <string>
#include <vector>

#include "raftd/app/app_client.h"
#include "raftd/base/histogram.h"
#include "raftd/wal/wal.h"

namespace raftd::node {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

http::Request request(std::string method, std::string target) {
  http::Request r;
  r.method = std::move(method);
  r.target = std::move(target);
  return r;
}

constexpr std::array<double, 3> kBounds = {0.5, 1, 2.5};

}  // namespace

TEST_SUITE("node") {
  TEST_CASE("node::Histogram: counts per bucket, bounds inclusive, the rest in +Inf") {
    Histogram h(kBounds);
    for (double v : {0.1, 0.5, 0.7, 1.0, 3.0, 100.0}) h.observe(v);
    CHECK(h.cumulative(0) == 2);  // 0.1, 0.5 (a bound is inclusive)
    CHECK(h.cumulative(1) == 4);  // + 0.7, 1.0
    CHECK(h.cumulative(2) == 4);  // nothing in (1, 2.5]
    CHECK(h.cumulative(3) == 6);  // +Inf
    CHECK(h.count() == 6);
    CHECK(h.sum() == doctest::Approx(105.3));
  }

  TEST_CASE("node::MetricsText: families, labels and histograms in text format 0.0.4") {
    MetricsText m;
    m.family("raftd_x_total", MetricType::kCounter, "A help with a \\ and a\nline feed.");
    m.sample("raftd_x_total", {{"peer", "2"}, {"why", "a \"quoted\" \\ value\n"}},
             std::uint64_t{7});
    m.family("raftd_y", MetricType::kGauge, "A gauge.");
    m.sample("raftd_y", {}, 0.25);
    Histogram h(kBounds);
    h.observe(0.2);
    h.observe(2.0);
    m.family("raftd_z_seconds", MetricType::kHistogram, "A histogram.");
    m.histogram("raftd_z_seconds", {{"call", "Sync"}}, h);
    const std::vector<std::string> want = {
        "# HELP raftd_x_total A help with a \\\\ and a\\nline feed.",
        "# TYPE raftd_x_total counter",
        "raftd_x_total{peer=\"2\",why=\"a \\\"quoted\\\" \\\\ value\\n\"} 7",
        "# HELP raftd_y A gauge.",
        "# TYPE raftd_y gauge",
        "raftd_y 0.25",
        "# HELP raftd_z_seconds A histogram.",
        "# TYPE raftd_z_seconds histogram",
        "raftd_z_seconds_bucket{call=\"Sync\",le=\"0.5\"} 1",
        "raftd_z_seconds_bucket{call=\"Sync\",le=\"1\"} 1",
        "raftd_z_seconds_bucket{call=\"Sync\",le=\"2.5\"} 2",
        "raftd_z_seconds_bucket{call=\"Sync\",le=\"+Inf\"} 2",
        "raftd_z_seconds_sum{call=\"Sync\"} 2.2",
        "raftd_z_seconds_count{call=\"Sync\"} 2",
    };
    CHECK(lines_of(m.text()) == want);
    CHECK(m.text().ends_with("\n"));
  }

  TEST_CASE("node::ApiMetrics: proposals and reads by outcome, other requests ignored") {
    ApiMetrics a;
    a.observe(request("POST", "/v1/groups/7/propose"), 200, std::chrono::milliseconds(3));
    a.observe(request("POST", "/v1/groups/7/propose"), 200, std::chrono::milliseconds(30));
    a.observe(request("POST", "/v1/groups/7/propose"), 503, std::chrono::milliseconds(1));
    a.observe(request("POST", "/v1/groups/9/propose"), 0, std::chrono::seconds(5));
    a.observe(request("POST", "/v1/groups/7/read?consistency=stale"), 200,
              std::chrono::milliseconds(2));
    a.observe(request("GET", "/v1/groups/7"), 200, std::chrono::milliseconds(1));
    a.observe(request("POST", "/v1/groups/x/propose"), 200, std::chrono::milliseconds(1));
    a.observe(request("POST", "/v1/groups"), 201, std::chrono::milliseconds(1));
    const auto& p = a.proposals().outcomes;
    CHECK(p.size() == 3);
    CHECK(p.at("200") == 2);
    CHECK(p.at("503") == 1);
    CHECK(p.at("aborted") == 1);
    CHECK(a.proposals().seconds.count() == 3);  // the aborted one has no answer time
    CHECK(a.proposals().seconds.sum() == doctest::Approx(0.034));
    CHECK(a.reads().outcomes.at("200") == 1);
    CHECK(a.reads().seconds.count() == 1);

    MetricsSources s;
    s.api = &a;
    const std::string text = render_metrics(s);
    CHECK(text.find("raftd_proposals_total{outcome=\"aborted\"} 1\n") != std::string::npos);
    CHECK(text.find("raftd_proposals_total{outcome=\"200\"} 2\n") != std::string::npos);
    CHECK(text.find("raftd_proposal_duration_seconds_count 3\n") != std::string::npos);
    CHECK(text.find("raftd_reads_total{outcome=\"200\"} 1\n") != std::string::npos);
  }

  TEST_CASE("node::render_wal, render_app: the layers' counters and histograms") {
    wal::WalStats w;
    w.bytes_written = 8192;
    w.syncs = 2;
    w.sync_seconds.observe(0.002);
    w.sync_seconds.observe(0.3);
    w.batch_bytes.observe(4096);
    w.cache_hits = 40;
    w.file_reads = 3;
    app::AppStats ap;
    ap.get_entry.errors = 1;
    ap.get_entry.seconds.observe(0.5);
    ap.entries_applied = 12;
    MetricsText m;
    render_wal(m, w);
    render_app(m, ap);
    const std::string& t = m.text();
    for (const char* line : {
             "raftd_wal_bytes_written_total 8192\n",
             "raftd_wal_fsyncs_total 2\n",
             "raftd_wal_cache_hits_total 40\n",
             "raftd_wal_file_reads_total 3\n",
             "raftd_wal_fsync_duration_seconds_bucket{le=\"0.001\"} 0\n",
             "raftd_wal_fsync_duration_seconds_bucket{le=\"0.0025\"} 1\n",
             "raftd_wal_fsync_duration_seconds_bucket{le=\"0.5\"} 2\n",
             "raftd_wal_fsync_duration_seconds_count 2\n",
             "raftd_wal_batch_bytes_bucket{le=\"4096\"} 1\n",
             "raftd_app_call_errors_total{call=\"GetEntry\"} 1\n",
             "raftd_app_call_errors_total{call=\"UpdateEntries\"} 0\n",
             "raftd_app_call_duration_seconds_count{call=\"GetEntry\"} 1\n",
             "raftd_app_call_duration_seconds_bucket{call=\"Sync\",le=\"+Inf\"} 0\n",
             "raftd_app_entries_applied_total 12\n",
         }) {
      CHECK_MESSAGE(t.find(line) != std::string::npos, line);
    }
    // Every family once, every sample under its own family's TYPE line.
    std::string family;
    for (const std::string& line : lines_of(t)) {
      if (line.starts_with("# TYPE ")) {
        family = line.substr(7, line.find(' ', 7) - 7);
        CHECK(t.find(line) == t.rfind(line));
      } else if (!line.starts_with("# HELP ")) {
        CHECK_MESSAGE(line.starts_with(family), line);
      }
    }
    // Nothing rendered for sources that are absent.
    CHECK(render_metrics(MetricsSources{}).empty());
  }
}

}  // namespace raftd::node
