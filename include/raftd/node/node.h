// Node: one raftd process (`raftd serve`): the WAL, every hosted group (GroupHost), the meta
// group's state machine, the transport to the other nodes, the application client, and the
// client API on listen.client. doc/node.md describes the write and read paths end to end.
//
// Start-up (Node::start, on the thread that will run the reactor):
//   1. Lock data_dir (data_dir/LOCK, flock): a second raftd on the same directory is refused.
//   2. data_dir/cluster (doc/node.md "Cluster file") records the cluster's identity and its
//      initial members. Absent: the node bootstraps, if its id is in [cluster].initial, by
//      writing it (fsync'd, then the directory); a node not in initial is joining a running
//      cluster: it serves /healthz (and /readyz 503) and asks the members listed in initial,
//      until one says it was added (POST /v1/cluster/nodes), then writes the file from that
//      answer and goes on with step 3 (doc/node.md "Joining a running cluster"). Present:
//      [cluster].initial is ignored and the node recovers.
//   3. The WAL (data_dir/wal) is recovered; group 0 (the meta group, voters = the initial
//      members) starts from it, and replaying its committed entries rebuilds the meta state,
//      which starts every group this node is a member of (after asking the application its
//      LastLogIndex for that group).
//   4. Listeners open: listen.peer (the transport's streams and forwarded proposals) and
//      listen.client (API.md section 2).
// Every reactor turn ends with GroupHost::process(), Transport::flush() and Wal::flush(), in
// that order: a leader's appends leave in the same turn as its own WAL write starts.
//
// Shutdown (request_stop(), safe from any thread; SIGTERM/SIGINT call it): listeners close,
// waiting clients get 503, the WAL finishes its batch in flight, streams and app calls end, and
// run() returns.
//
// Threading: everything on the reactor's thread, except request_stop().
#pragma once

#include <memory>

#include "raftd/base/status.h"
#include "raftd/config/config.h"

namespace raftd::node {

class NodeImpl;

class Node {
 public:
  // Steps 1-4 above (a joining node: 1, 2 and its client listener; run() waits for the rest).
  // Errors: kAlreadyExists (data_dir locked), kInvalidArgument (a cluster file that disagrees
  // with the config's node id, an empty data_dir and an empty [cluster].initial), kCorruption (WAL
  // or cluster file), I/O errors (listeners, files), kUnsupported (io_uring).
  static Result<std::unique_ptr<Node>> start(const config::Config& config);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Runs until request_stop() and the clean shutdown after it. OK, or the reason it stopped
  // (kInvalidArgument for a joining node whose id was removed from the cluster, or whose
  // addresses are not those the cluster recorded for it).
  Status run();
  void request_stop();

 private:
  explicit Node(std::unique_ptr<NodeImpl> impl);
  std::unique_ptr<NodeImpl> impl_;
};

}  // namespace raftd::node
