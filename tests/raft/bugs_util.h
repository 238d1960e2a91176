// Helpers shared by the scenario tests for the subtle Raft bugs (research checklist #1..#17):
// small builders for configuration changes and a few driving loops on top of harness.h.
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "harness.h"

namespace raftd::raft::test {

// Ticks of one node before a scenario gives up waiting for it to win: several randomized
// election timeouts, so a split vote or a lost first round is retried.
inline constexpr int kCampaignTicksMax = 200;

inline std::vector<NodeId> node_ids(std::initializer_list<uint64_t> ids) {
  std::vector<NodeId> out;
  for (uint64_t id : ids) out.push_back(NodeId(id));
  return out;
}

inline ConfChange cc_one(ConfChangeType type, uint64_t node) {
  ConfChange cc;
  cc.changes.push_back(ConfChangeItem{type, NodeId(node)});
  return cc;
}
inline ConfChange cc_add_voter(uint64_t node) { return cc_one(ConfChangeType::kAddVoter, node); }
inline ConfChange cc_add_learner(uint64_t node) {
  return cc_one(ConfChangeType::kAddLearner, node);
}
inline ConfChange cc_remove(uint64_t node) { return cc_one(ConfChangeType::kRemove, node); }

// Ticks only `id` (stabilizing after every tick) until it leads. Unlike Cluster::elect() this
// survives a lost first round (the node retries at its next timeout with a higher term), which
// the scenarios need when some voters already moved to a higher term.
inline void campaign_until_leader(Cluster& c, uint64_t id) {
  for (int i = 0; i < kCampaignTicksMax && c.g(id).role() != Role::kLeader; ++i) {
    c.tick(id);
    c.stabilize();
  }
  REQUIRE_MESSAGE(c.g(id).role() == Role::kLeader, "node ", id, " did not win an election");
}

// A message a leader of `term` could send to `to`: prev (index, log_term), entries, commit.
inline Message append_msg(uint64_t from, uint64_t to, Term term, LogIndex prev, Term prev_term,
                          std::vector<Entry> entries, LogIndex commit) {
  Message m;
  m.type = MessageType::kAppend;
  m.group = kTestGroup;
  m.from = NodeId(from);
  m.to = NodeId(to);
  m.term = term;
  m.index = prev;
  m.log_term = prev_term;
  m.entries = std::move(entries);
  m.commit = commit;
  return m;
}

// True when the entry's indexes include `index`.
inline bool carries_index(const Message& m, LogIndex index) {
  for (const Entry& e : m.entries) {
    if (e.index == index) return true;
  }
  return false;
}

// The entry durably stored by `id` at `index` (the harness's storage is the node's "disk").
inline Entry stored_entry(Cluster& c, uint64_t id, uint64_t index) {
  REQUIRE(LogIndex(index) <= c.node(id).storage->last_index());
  REQUIRE(LogIndex(index) >= c.node(id).storage->first_index());
  std::vector<Entry> out;
  Status s = c.node(id).storage->entries(LogIndex(index), LogIndex(index + 1), UINT64_MAX, &out);
  REQUIRE_MESSAGE(s.is_ok(), s.to_string());
  REQUIRE(out.size() == 1);
  return out[0];
}

// Runs `fn` in a fork()ed child and reports how the child ended: the signal that killed it, or
// 0 when it returned normally. Used to prove that the core stops (RAFTD_ASSERT -> abort) on
// state it must never accept. The child's stderr goes to /dev/null and it dumps no core.
inline int signal_of_child(const std::function<void()>& fn) {
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    // The test runner's crash handlers must not report the child's expected abort.
    signal(SIGABRT, SIG_DFL);
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) {
      dup2(devnull, STDOUT_FILENO);
      dup2(devnull, STDERR_FILENO);
    }
    try {
      fn();
    } catch (...) {
      _exit(1);  // never let the child return into the test runner
    }
    _exit(0);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

}  // namespace raftd::raft::test
