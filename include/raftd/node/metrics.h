// /metrics: the node's state and counters in the Prometheus text exposition format 0.0.4
// (doc/node.md, "Metrics", lists every metric).
//
// Where the numbers come from: each layer keeps the counters of the events it sees (WalStats,
// TransportStats, AppStats, http::ServerStats; the WAL's and the app client's latency and size
// histograms are raftd::Histogram, base/histogram.h), and the node's client API requests are
// counted here (ApiMetrics, fed by the client listener's ServerOptions::on_exchange_end).
// render_metrics() reads them all at scrape time; nothing is sampled in between.
//
// Threading: everything here, and every counter it reads, belongs to the reactor thread (the WAL's
// segment preparer thread only posts results back to it), so nothing needs a lock or an atomic.
// ApiMetrics is one per process (a raftd process runs one node).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "raftd/base/histogram.h"
#include "raftd/base/ids.h"
#include "raftd/http/message.h"
#include "raftd/io/reactor.h"

namespace raftd::wal {
class Wal;
struct WalStats;
}  // namespace raftd::wal
namespace raftd::transport {
class Transport;
}
namespace raftd::app {
class AppClient;
struct AppStats;
}  // namespace raftd::app
namespace raftd::http {
class Server;
}

namespace raftd::node {

class GroupHost;
class MetaState;

// The Content-Type of the exposition format.
inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

enum class MetricType { kCounter, kGauge, kHistogram };

using MetricLabels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

// Writes the text format: a family's `# HELP` and `# TYPE` lines, then its samples. Label values
// and help texts are escaped as the format requires (backslash, double quote in label values,
// line feed). Asserts that every sample belongs to the family opened last and that no family is
// opened twice (a scraper rejects both).
class MetricsText {
 public:
  void family(std::string_view name, MetricType type, std::string_view help);
  void sample(std::string_view name, MetricLabels labels, double value);
  void sample(std::string_view name, MetricLabels labels, std::uint64_t value);
  // A family with one unlabelled sample: most counters and gauges.
  void single(std::string_view name, MetricType type, std::string_view help, std::uint64_t value);
  // The family's `_bucket` (cumulative, `le` last), `_sum` and `_count` samples.
  void histogram(std::string_view name, MetricLabels labels, const Histogram& h);
  const std::string& text() const { return out_; }

 private:
  void begin_sample(std::string_view name, MetricLabels labels, std::string_view le);

  std::string out_;
  std::string family_;
  MetricType type_ = MetricType::kGauge;
  std::set<std::string, std::less<>> seen_;
};

// The client API requests that matter for operations, counted when the HTTP server ends their
// exchange: proposals (POST /v1/groups/{id}/propose) and reads (POST /v1/groups/{id}/read), by
// outcome (the HTTP status answered, or "aborted": the client went away first), with the time
// from the request head to the answer of those answered.
class ApiMetrics {
 public:
  struct Kind {
    std::map<std::string, std::uint64_t, std::less<>> outcomes;  // "200", "503", "aborted", ...
    Histogram seconds{kSecondsBuckets};                          // answered ones only
  };

  // For http::ServerOptions::on_exchange_end of the client listener.
  void observe(const http::Request& request, int status, io::Duration elapsed);

  const Kind& proposals() const { return proposals_; }
  const Kind& reads() const { return reads_; }

 private:
  Kind proposals_;
  Kind reads_;
};

// The process's ApiMetrics (the node's client listener reports to it).
ApiMetrics& api_metrics();

// What render_metrics() reads; every pointer may be null (that part is then left out), except
// that groups need both host and applied.
// Snapshot streams and compaction (node_snapshots.cc): what the node counts itself, and its
// sender's and receiver's counters.
struct SnapshotMetrics {
  std::uint64_t sent = 0;         // streams the follower confirmed, the core told
  std::uint64_t send_failed = 0;  // prepare, save or stream failed
  std::uint64_t bytes_sent = 0;
  std::uint64_t received = 0;  // spooled, verified and durable
  std::uint64_t receive_failed = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t installed = 0;  // installed in the app and the core
  std::uint64_t install_failed = 0;
  std::uint64_t compactions = 0;
};

// Proposals a follower forwarded to their group's leader (node_api.cc): each batch is one request
// on the peer connection.
struct ForwardMetrics {
  std::uint64_t proposals = 0;
  std::uint64_t requests = 0;
};

struct MetricsSources {
  NodeId self;
  const GroupHost* host = nullptr;
  // What the app acknowledged, per group (the applied_index of GET /v1/groups/{id}).
  const std::unordered_map<GroupId, LogIndex>* applied = nullptr;
  const MetaState* meta = nullptr;  // the peers: every node of the cluster but self
  const wal::Wal* wal = nullptr;
  const transport::Transport* transport = nullptr;
  const app::AppClient* app = nullptr;
  const http::Server* client_server = nullptr;
  const ApiMetrics* api = nullptr;
  const SnapshotMetrics* snapshots = nullptr;
  const ForwardMetrics* forwards = nullptr;
  const io::Reactor* reactor = nullptr;
};

// The whole exposition, every family in a fixed order (doc/node.md, "Metrics").
std::string render_metrics(const MetricsSources& sources);
// Parts of it, for the tests.
void render_wal(MetricsText& m, const wal::WalStats& stats);
void render_app(MetricsText& m, const app::AppStats& stats);

}  // namespace raftd::node
