#include "raftd/node/node.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <random>

#include "node/node_impl.h"
#include "raftd/base/assert.h"
#include "raftd/base/log.h"
#include "raftd/wal/file.h"

namespace raftd::node {

// ---- Node ----------------------------------------------------------------------------------

Node::Node(std::unique_ptr<NodeImpl> impl) : impl_(std::move(impl)) {}
Node::~Node() = default;

Result<std::unique_ptr<Node>> Node::start(const config::Config& config) {
  auto impl = std::make_unique<NodeImpl>(config);
  if (Status s = impl->start(); !s.is_ok()) return s;
  return std::unique_ptr<Node>(new Node(std::move(impl)));
}

Status Node::run() { return impl_->run(); }
void Node::request_stop() { impl_->request_stop(); }

// ---- start-up ------------------------------------------------------------------------------

namespace {

// A random start in [1, 2^62): two processes of a node collide only if one's ids reach the
// other's start, about 10^-7 for processes that each made 10^12 proposals.
uint64_t first_request_id() {
  std::random_device rd;
  const uint64_t r = (uint64_t{rd()} << 32) | rd();
  return (r & ((uint64_t{1} << 62) - 1)) | 1;
}

}  // namespace

NodeImpl::NodeImpl(const config::Config& cfg)
    : cfg_(cfg), self_(cfg.node.id), keys_(cfg.limits.idempotency_keys) {
  next_request_ = first_request_id();
}

NodeImpl::~NodeImpl() {
  if (reactor_) reactor_->shutdown();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

Status NodeImpl::start() {
  if (Status s = lock_data_dir(); !s.is_ok()) return s;
  if (Status s = load_or_bootstrap_cluster(); !s.is_ok()) return s;
  auto r = io::Reactor::create();
  if (!r) return r.status();
  reactor_ = std::move(*r);
  if (joining_) return start_joining();  // the rest once a contact says it was added
  if (Status s = open_wal(); !s.is_ok()) return s;
  if (Status s = open_snapshots(); !s.is_ok()) return s;
  if (Status s = open_journal(); !s.is_ok()) return s;
  if (Status s = open_network(); !s.is_ok()) return s;
  log::info("raftd: node {} of cluster {:016x} serving clients on {}, peers on {}{}", self_.value(),
            cluster_.cluster_id, cfg_.listen.client.to_string(), cfg_.listen.peer.to_string(),
            bootstrapped_ ? " (bootstrapped)" : "");
  return Status::ok();
}

// One raftd per data directory: the WAL has one writer. flock is released by the kernel when the
// process dies, so a crash never leaves a stale lock behind.
Status NodeImpl::lock_data_dir() {
  const std::string& dir = cfg_.node.data_dir;
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return Status::from_errno(errno, "create data_dir " + dir);
  }
  const std::string path = dir + "/LOCK";
  lock_fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) return Status::from_errno(errno, "open " + path);
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return Status(Code::kAlreadyExists,
                    "data_dir " + dir + " is in use by another raftd (" + path + " is locked)");
    }
    return Status::from_errno(errno, "lock " + path);
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock_fd_, 0) != 0 || ::pwrite(lock_fd_, pid.data(), pid.size(), 0) < 0) {
    return Status::from_errno(errno, "write " + path);
  }
  return Status::ok();
}

Status NodeImpl::load_or_bootstrap_cluster() {
  auto f = read_cluster_file(cfg_.node.data_dir);
  if (f) {
    cluster_ = std::move(*f);
    if (cluster_.node != self_) {
      return Status(Code::kInvalidArgument,
                    fmt::format("data_dir {} belongs to node {}, but node.id is {}",
                                cfg_.node.data_dir, cluster_.node.value(), self_.value()));
    }
    return Status::ok();
  }
  if (f.status().code() != Code::kNotFound) return f.status();
  std::vector<NodeInfo> members;
  bool listed = false;
  for (const config::Member& m : cfg_.cluster.initial) {
    members.push_back(NodeInfo{m.id, m.peer.to_string(), m.client.to_string()});
    listed = listed || m.id == self_;
  }
  if (!listed) {
    // A joining node: [cluster].initial lists members to ask (node_cluster.cc).
    if (members.empty()) {
      return Status(Code::kInvalidArgument,
                    fmt::format("node {} has an empty data_dir and [cluster].initial is empty: "
                                "list the members to bootstrap with, or those of a running "
                                "cluster to join",
                                self_.value()));
    }
    joining_ = true;
    return Status::ok();
  }
  std::sort(members.begin(), members.end(),
            [](const NodeInfo& a, const NodeInfo& b) { return a.id < b.id; });
  cluster_ = ClusterFile{cluster_id_of(members), self_, std::move(members)};
  bootstrapped_ = true;
  return write_cluster_file(cfg_.node.data_dir, cluster_);
}

Status NodeImpl::open_wal() {
  executor_ = std::make_unique<wal::ReactorExecutor>(*reactor_);
  writer_ = std::make_unique<wal::UringSyncWriter>(*reactor_);
  wal::WalOptions o;
  o.segment_bytes = cfg_.wal.segment_bytes;
  o.batch_bytes_max = cfg_.wal.batch_bytes_max;
  o.cache_bytes_max = cfg_.wal.cache_bytes;
  o.on_durable = [this](std::span<const wal::Durable> d) { host_->on_durable(d); };
  auto w = wal::Wal::open(wal::posix_env(), cfg_.node.data_dir + "/wal", std::move(o), *executor_,
                          *writer_);
  if (!w) return w.status();
  wal_ = std::move(*w);
  if (const auto& torn = wal_->recovered_torn_tail()) {
    log::warn("wal: cut a torn last batch at recovery ({})", torn->path);
  }

  raft::Config rc;
  rc.id = self_;
  rc.election_tick = cfg_.raft.election_ticks;
  rc.heartbeat_tick = cfg_.raft.heartbeat_ticks;
  rc.pre_vote = cfg_.raft.pre_vote;
  rc.check_quorum = cfg_.raft.check_quorum;
  rc.quiesce_after_ticks = cfg_.raft.quiesce_after_ticks;
  rc.max_inflight_msgs = cfg_.raft.max_inflight_msgs;
  rc.max_msg_bytes = cfg_.raft.max_msg_bytes;
  rc.max_uncommitted_bytes = cfg_.raft.max_uncommitted_bytes;
  rc.random_seed = std::random_device{}();
  host_ = std::make_unique<GroupHost>(*wal_, rc, *this);

  // The meta group: its voters are the initial members, on every node alike; replaying its
  // committed entries (applied index 0: raftd keeps no other copy) rebuilds the meta state.
  meta_ = MetaState::bootstrap(cluster_.members);
  raft::ConfState conf;
  for (const NodeInfo& m : cluster_.members) conf.voters.push_back(m.id);
  // Every hard state of the meta group is written at once: its applied commands act outside
  // its log (groups started, a deleted group's log compacted), so its durable commit index must
  // not fall behind them (GroupHost::Commit).
  return host_->add_group(GroupId(0), conf, LogIndex(0), GroupHost::Commit::kEager);
}

}  // namespace raftd::node
