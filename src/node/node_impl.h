// NodeImpl: the parts of a node and the glue between them (include/raftd/node/node.h has the
// contract). node.cc: start-up, the Ready driver, the meta group, the application's results;
// node_api.cc: the client API and forwarded proposals.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "node/cluster_file.h"
#include "raftd/app/app_client.h"
#include "raftd/config/config.h"
#include "raftd/http/client.h"
#include "raftd/http/server.h"
#include "raftd/io/reactor.h"
#include "raftd/node/conf_marks.h"
#include "raftd/node/envelope.h"
#include "raftd/node/group_host.h"
#include "raftd/node/idempotency.h"
#include "raftd/node/meta.h"
#include "raftd/node/metrics.h"
#include "raftd/node/snapshot_transfer.h"
#include "raftd/transport/transport.h"
#include "raftd/wal/uring_sync_writer.h"
#include "raftd/wal/wal.h"

namespace raftd::node {

// A proposal waits this long for its entry to be applied on this node before the client gets
// 504 (outcome unknown). Ten election timeouts at the default tick: a leader change and a retry
// of the app's batch fit in it, and a client is not left hanging on a partitioned node.
inline constexpr uint32_t kProposeTimeoutMs = 10'000;
// A linearizable read waits this long for its read index and the local apply behind it.
inline constexpr uint32_t kReadTimeoutMs = 10'000;
// Forwarded proposals: the leader's answer (appended or not) comes within one turn; a leader
// that does not answer within this is treated as gone.
inline constexpr uint32_t kForwardTimeoutMs = 3'000;
// Requests waiting on this node (proposals and reads). Beyond it new ones get 503: a stalled
// group must not grow the node's memory without bound.
inline constexpr size_t kWaitersMax = 65'536;
// Paths on the peer listener.
// Ticks (100 ms each by default) without a WAL batch after which the node hands the heap pages
// it freed back to the system, once per quiet spell (NodeImpl::trim_heap_when_quiet).
inline constexpr uint64_t kHeapTrimQuietTicks = 50;
inline constexpr const char* kForwardPath = "/raft/v1/forward/";
// Forwarded proposals, batched: one POST per leader and reactor turn (envelope.h).
inline constexpr const char* kForwardBatchPath = "/raft/v1/forwards";
inline constexpr const char* kJoinPath = "/raft/v1/join";
inline constexpr const char* kHeaderRequest = "Raftd-Request";

class NodeImpl;

// A node's peer address as the transport's Peer. kInvalidArgument for a malformed one.
Result<transport::Peer> peer_of(const NodeInfo& n);

// A decimal id: digits only, no sign, no overflow.
bool parse_id(std::string_view s, uint64_t* out);

// A node's entry in GET /v1/cluster: {"id", "peer", "client", "reachable"}.
std::string node_json(const NodeInfo& n, bool reachable);

// An API error answer: {"error": code, "message": message}, with Retry-After on a 503.
void respond_error(http::Exchange& ex, int status, std::string_view code, std::string_view message);

// Copying group 0's log forward in the WAL (node_driver.cc relocate_meta_log): its last index
// when it did not fit one batch (not tried again until it grows), and whether that was logged.
struct MetaRelocation {
  LogIndex too_big_at;
  bool warned = false;
};

// The peer listener serves two things: the transport's message streams and proposals forwarded
// by followers. Every callback of one exchange goes to the same side (decided by its path).
class PeerRouter final : public http::Handler {
 public:
  explicit PeerRouter(NodeImpl& n) : n_(n) {}
  void on_headers(http::Exchange& ex) override;
  http::Flow on_body(http::Exchange& ex, std::string_view chunk) override;
  void on_end(http::Exchange& ex) override;
  void on_drained(http::Exchange& ex) override;
  void on_aborted(http::Exchange& ex) override;

 private:
  http::Handler& handler_of(const http::Exchange& ex);
  NodeImpl& n_;
};

class NodeImpl final : public GroupHost::Driver, public http::Handler {
 public:
  explicit NodeImpl(const config::Config& cfg);
  ~NodeImpl() override;

  Status start();
  Status run();
  void request_stop();

  // ---- GroupHost::Driver ----
  void send(raft::Message&& m) override;
  void apply(GroupId g, std::vector<raft::Entry>&& committed) override;
  void on_read_states(GroupId g, std::vector<raft::ReadState>&& states) override;
  void on_soft_state(GroupId g, const raft::SoftState& s) override;
  void on_snapshot_refused(GroupId g, const raft::SnapshotMeta& meta) override;
  void on_log_entries(GroupId g, const std::vector<raft::Entry>& entries) override;
  bool install_snapshot(GroupId g, const raft::SnapshotMeta& meta) override;
  void on_install_failed(GroupId g, const raft::SnapshotMeta& meta, const Status& why) override;
  bool on_snapshot_request(GroupId g, NodeId to) override;

  // ---- http::Handler (client API, node_api.cc) ----
  void on_headers(http::Exchange& ex) override;
  http::Flow on_body(http::Exchange& ex, std::string_view chunk) override;
  void on_end(http::Exchange& ex) override;
  void on_aborted(http::Exchange& ex) override;

  // ---- forwarded proposals on the peer listener (node_api.cc) ----
  void forward_headers(http::Exchange& ex);
  http::Flow forward_body(http::Exchange& ex, std::string_view chunk);
  void forward_end(http::Exchange& ex);
  void join_request(http::Exchange& ex);  // GET /raft/v1/join (node_cluster.cc)
  transport::Transport& transport() { return *transport_; }
  SnapshotReceiver& snapshot_receiver() { return *receiver_; }

 private:
  // A client waiting for its proposal (or meta command) to be applied on this node.
  struct Waiter {
    http::Exchange* ex = nullptr;
    GroupId group;
    io::TimePoint deadline;
    LogIndex keyed_at;      // a replay waiting in keyed_waits_ for the entry here (0: none)
    NodeId transfer_to;     // a leader transfer, answered once this node sees it (0: none)
    LogIndex conf_applied;  // a relayed membership change: answered once applied here (0: none)
  };
  // A linearizable read: waits for its read index, then for the app to have applied it.
  struct ReadWait {
    http::Exchange* ex = nullptr;
    GroupId group;
    std::string query;
    bool has_index = false;
    LogIndex index;
    io::TimePoint deadline;
  };

  // node.cc
  Status lock_data_dir();
  Status load_or_bootstrap_cluster();
  Status open_wal();
  Status open_network();
  Status open_client_server();
  void on_turn_end();
  void on_tick();
  void begin_shutdown();
  void apply_meta(const raft::Entry& e);
  void after_meta(const MetaCommand& c, MetaOutcome o);
  void start_group(GroupId g);
  void stop_group(GroupId g);
  void update_peers();
  void on_applied(GroupId g, LogIndex last, std::vector<app::Record> results);
  void offer_to_app(GroupId g);
  void on_peer_down(NodeId peer);
  void serve_ready_reads(GroupId g);
  Status open_journal();
  void scan_keys(GroupId g);
  void journal_applied(GroupId g, LogIndex last, const std::vector<app::Record>& results);

  // node_snapshots.cc: compaction and snapshots (doc/node.md "Compaction", "Snapshots")
  Status open_snapshots();
  LogIndex app_durable(GroupId g) const;
  void with_durable(GroupId g, std::function<void(LogIndex)> then);
  void maybe_compact(GroupId g);
  void compact_pinning();
  void trim_heap_when_quiet();
  bool compact_to(GroupId g, LogIndex index, std::string_view why);
  void api_snapshot(http::Exchange& ex, GroupId g);
  void forget_snapshots(GroupId g);
  Status open_snapshot_streams();
  Status accept_snapshot(const SnapshotId& id, NodeId from);
  void start_send(GroupId g, NodeId to);
  void finish_send(GroupId g, NodeId to, const Status& status);
  void start_next_send();
  void on_install_done(GroupId g, const raft::SnapshotMeta& meta, const Status& status);
  void finish_missing_installs();
  SnapshotMetrics snapshot_metrics() const;
  void finish_snapshot_requests();
  struct SnapshotRequest {
    uint64_t rid;
    GroupId group;
    LogIndex durable;  // what the app made durable when asked
  };
  std::vector<SnapshotRequest> snapshot_requests_;  // POST /snapshot waiting for a durable commit

  // node_cluster.cc: nodes joining and leaving the cluster (doc/node.md "Joining a running
  // cluster")
  Status start_joining();
  Status run_joining();
  Status stop_joining(Status why);
  void poll_join();
  void on_join_answer(NodeId contact, Result<http::Response> r);
  Status finish_join();
  bool known_node(NodeId id) const;
  void api_cluster_nodes(http::Exchange& ex, const std::vector<std::string>& parts,
                         std::string body);

  // node_api.cc
  void dispatch(http::Exchange& ex);
  void api_groups(http::Exchange& ex, const std::vector<std::string>& parts);
  void api_create_group(http::Exchange& ex);
  void api_delete_group(http::Exchange& ex, GroupId g);
  void api_propose(http::Exchange& ex, GroupId g);
  void add_waiter(http::Exchange& ex, GroupId g, uint64_t rid);
  void api_read(http::Exchange& ex, GroupId g);
  void api_transfer_leader(http::Exchange& ex, GroupId g);
  void finish_transfers(GroupId g, NodeId leader);

  // node_members.cc
  void api_members(http::Exchange& ex, GroupId g, const std::vector<std::string>& parts,
                   std::string body);
  void relay_members(http::Exchange& ex, GroupId g, NodeId leader, std::string body);
  void finish_relayed(GroupId g);
  void on_conf_applied(GroupId g, const raft::Entry& e);
  bool reconcile_hosts(GroupId g);
  void reconcile_all_hosts();
  void reconcile_meta_members();
  void prune_departing();
  void propose_meta(const MetaCommand& cmd);
  void api_cluster(http::Exchange& ex);
  void propose_entry(http::Exchange& ex, GroupId g, EntryKind kind, std::string payload,
                     std::string key);
  // A follower's proposal for a group `leader` leads: queued for the turn's batch to that leader
  // (flush_forwards), or sent alone to a leader that does not take batches.
  struct Forward {
    uint64_t rid;
    GroupId group;
    std::string entry;
    std::string key;
  };
  void forward(uint64_t rid, GroupId g, NodeId leader, std::string entry, std::string key);
  void forward_one(NodeId leader, Forward f);
  void flush_forwards();
  void send_forwards(NodeId leader, std::vector<Forward> batch);
  void on_forward_answer(const Forward& f, const ForwardAnswer& a);
  // The leader's side of one forwarded entry, single or batched; `why` names a refusal.
  ForwardAnswer accept_forward(GroupId g, NodeId from, std::string entry, std::string* why);
  void await_keyed(uint64_t rid, GroupId g, LogIndex index, std::string key);
  void finish_keyed(uint64_t rid, LogIndex index, const std::optional<std::string>& result);
  void erase_waiter(std::unordered_map<uint64_t, Waiter>::iterator it);
  void finish_waiter(uint64_t rid, int status, std::string body, std::string content_type,
                     LogIndex index);
  void fail_waiter(uint64_t rid, int status, std::string_view code, std::string_view message);
  std::string group_status_json(GroupId g) const;
  void sweep_timeouts();

  config::Config cfg_;
  NodeId self_;
  int lock_fd_ = -1;
  ClusterFile cluster_;
  bool bootstrapped_ = false;
  ClusterCheck cluster_check_;  // peers of another cluster at start-up (cluster_file.h)
  // A joining node (empty data_dir, not in [cluster].initial) until a contact said it was added:
  // the next contact to ask, whether an ask is under way, the answer (taken by run_joining) or
  // why joining cannot succeed, and when the wait was last logged.
  bool joining_ = false;
  std::unique_ptr<io::RepeatingTimer> join_timer_;
  size_t join_next_ = 0;
  bool join_asking_ = false;
  std::optional<JoinAnswer> join_answer_;
  Status join_error_;
  io::TimePoint join_logged_;
  // When this meta leader last proposed a change of the meta group's own membership.
  io::TimePoint meta_conf_sent_;
  // Nodes removed from the cluster that are still members of the meta group: peers until the
  // meta group's configuration drops them, so that a removed meta leader hands over cleanly.
  std::map<NodeId, NodeInfo> departing_;

  std::unique_ptr<io::Reactor> reactor_;
  std::unique_ptr<wal::ReactorExecutor> executor_;
  std::unique_ptr<wal::UringSyncWriter> writer_;
  std::unique_ptr<wal::Wal> wal_;
  std::unique_ptr<GroupHost> host_;
  MetaState meta_;
  std::unique_ptr<transport::Transport> transport_;
  std::unique_ptr<app::AppClient> app_;
  std::unique_ptr<http::Client> http_;                         // forwarded proposals
  std::unordered_map<NodeId, std::vector<Forward>> forwards_;  // per leader, sent at turn end
  std::unordered_set<NodeId> forward_singly_;  // leaders that answered 404 to a batch (older)
  ForwardMetrics forward_metrics_;
  std::unique_ptr<PeerRouter> peer_router_;
  std::unique_ptr<http::Server> peer_server_;
  std::unique_ptr<http::Server> client_server_;
  std::unique_ptr<io::RepeatingTimer> ticker_;
  io::Reactor::HookId hook_ = 0;
  bool stopping_ = false;
  bool lazy_flush_due_ = false;  // a tick passed: write lazy hard states (on_turn_end)
  std::atomic<bool> stop_requested_{false};

  // Request ids name a proposal in its envelope (origin, id), and applied entries are matched
  // to waiters by them, also entries a previous process of this node proposed (applied again
  // after a restart): each process starts at a random point of a 2^62 range, so ids do not
  // repeat across restarts (first_request_id()).
  uint64_t next_request_ = 1;
  std::unordered_map<uint64_t, Waiter> waiters_;               // proposals by request id
  std::map<std::pair<GroupId, LogIndex>, uint64_t> by_index_;  // applied here, awaiting the app
  std::unordered_map<uint64_t, ReadWait> reads_;               // reads by request id
  // Looked up on every app call of every group: hashed, not ordered (thousands of groups).
  std::unordered_map<GroupId, LogIndex> applied_;  // what the app acknowledged, per group
  // The app's LastLogIndex when the group started here: entries at or below it were applied
  // before this process started, and come again only as re-deliveries (the durable commit
  // index was behind the app: raft.h "Lazy commit"), which the app skips; its answers for them
  // are not their results.
  std::unordered_map<GroupId, LogIndex> app_start_;
  LogIndex app_start(GroupId g) const {
    auto it = app_start_.find(g);
    return it == app_start_.end() ? LogIndex(0) : it->second;
  }
  // Compaction (node_snapshots.cc): what the app's Sync answers made durable (app.sync only),
  // entry bytes appended since the group's last compaction, groups with a Sync under way for a
  // compaction, and when pinning groups were last compacted.
  std::unique_ptr<ConfMarks> conf_marks_;
  std::unordered_map<GroupId, LogIndex> synced_;
  std::unordered_map<GroupId, uint64_t> log_bytes_;
  std::set<GroupId> compacting_;
  io::TimePoint pins_checked_;
  // Snapshot streams (doc/node.md "Snapshots"): what this node, as a leader, sends to each
  // follower that needs one (at most snapshot.sends_max at once, the rest queued), and the
  // receiving side on the peer listener. Installs finished by the app wait in install_done_ for
  // the end of the turn (the host takes them in process()).
  struct Outgoing {
    bool started = false;
    app::SaveId save = 0;
    SnapshotSender::TransferId transfer = 0;
    raft::SnapshotMeta meta;
    io::TimePoint since;
  };
  std::unique_ptr<SnapshotSender> sender_;
  std::unique_ptr<SnapshotReceiver> receiver_;
  std::map<std::pair<GroupId, NodeId>, Outgoing> sends_;
  std::deque<std::pair<GroupId, NodeId>> send_queue_;
  // After a failed send to (group, follower): not before .first; .second the current delay.
  std::map<std::pair<GroupId, NodeId>, std::pair<io::TimePoint, io::Duration>> send_backoff_;
  size_t sends_active_ = 0;
  std::vector<std::pair<GroupId, raft::SnapshotMeta>> installs_missing_;
  uint64_t snapshots_sent_ = 0, snapshots_send_failed_ = 0;
  std::unordered_map<GroupId, std::vector<app::AppEntry>> app_backlog_;  // refused by enqueue
  // Idempotency-Key (idempotency.h): the keys of this node's logs, their results, the journal
  // that carries them across restarts and its watermark per group; and retries waiting for the
  // entry that carries their key to be applied here: (group, index) -> (request id, key).
  KeyTable keys_;
  std::unique_ptr<ResultsJournal> journal_;
  Watermarks journal_mark_;
  std::multimap<std::pair<GroupId, LogIndex>, std::pair<uint64_t, std::string>> keyed_waits_;
  // Membership changes proposed here, by (group, index): (request id, term of the entry).
  std::map<std::pair<GroupId, LogIndex>, std::pair<uint64_t, Term>> conf_waits_;
  // When this leader last proposed a hosting record for (group, node).
  std::map<std::pair<GroupId, NodeId>, io::TimePoint> hosting_sent_;
  size_t relays_waiting_ = 0;  // waiters with conf_applied set (scanned only when nonzero)
  std::set<GroupId> hosting_check_;
  MetaRelocation meta_relocation_;  // groups whose hosting records may lag their configuration
  // trim_heap_when_quiet(): the WAL's batch count last seen and the ticks since it last moved
  // (the trim runs when they reach kHeapTrimQuietTicks, so once per quiet spell).
  uint64_t trim_batches_seen_ = 0;
  uint64_t trim_quiet_ticks_ = 0;
  // Creations taken by this node for a group it is a member of: answered once the group has
  // started here (after the app's LastLogIndex), so that its status is whole and a GET through
  // this node right after the 201 finds it.
  std::map<GroupId, std::pair<uint64_t, LogIndex>> creating_;  // request id, meta index
};

}  // namespace raftd::node
