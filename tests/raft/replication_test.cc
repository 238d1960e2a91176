// Replication: pipelining and flow control (probe/replicate, inflight window by count and by
// bytes, max bytes per message), fast conflict backtracking, commit rules, proposal limits.
#include <doctest/doctest.h>

#include "harness.h"

using namespace raftd;
using namespace raftd::raft;
using raftd::raft::test::Cluster;
using raftd::raft::test::ClusterOptions;

namespace {

size_t count_to(const Cluster& c, MessageType type, uint64_t to) {
  size_t n = 0;
  for (const Message& m : const_cast<Cluster&>(c).queue()) {
    n += (m.type == type && m.to == NodeId(to)) ? 1 : 0;
  }
  return n;
}

}  // namespace

TEST_CASE("raft replication: proposals commit and apply everywhere in order") {
  Cluster c(5);
  c.elect(1);
  std::vector<std::string> want;
  for (int i = 0; i < 50; ++i) {
    want.push_back("v" + std::to_string(i));
    REQUIRE(c.propose(1, want.back()).is_ok());
    if (i % 7 == 0) c.stabilize();
  }
  c.stabilize();
  c.run_ticks(2);
  for (uint64_t id : c.ids()) CHECK(c.node(id).applied_data() == want);
}

TEST_CASE("raft replication: followers refuse proposals; the leader refuses when over budget") {
  ClusterOptions o;
  o.max_uncommitted_bytes = 1000;
  Cluster c(3, o);
  c.elect(1);
  CHECK(c.propose(2, "x").status().code() == Code::kUnavailable);
  c.isolate(1);
  int accepted = 0;
  Status last;
  for (int i = 0; i < 100; ++i) {
    Result<LogIndex> r = c.propose(1, std::string(100, 'x'));
    if (!r.is_ok()) {
      last = r.status();
      break;
    }
    ++accepted;
  }
  CHECK(last.code() == Code::kTooLarge);
  CHECK(accepted >= 1);
  CHECK(accepted < 100);
  c.heal();
  c.run_ticks(3);
  CHECK(c.propose(1, "after").is_ok());  // budget released once committed and applied
}

TEST_CASE("raft replication: the inflight window bounds pipelined appends by count") {
  ClusterOptions o;
  o.max_inflight_msgs = 3;
  Cluster c(3, o);
  c.elect(1);
  c.run_ticks(1);
  REQUIRE(c.g(1).progress(NodeId(2))->state == ProgressState::kReplicate);
  for (int i = 0; i < 10; ++i) {
    REQUIRE(c.propose(1, "e" + std::to_string(i)).is_ok());
    c.process_readys();  // no delivery: nothing is acknowledged
  }
  CHECK(count_to(c, MessageType::kAppend, 2) == 3);
  CHECK(c.g(1).progress(NodeId(2))->inflight_msgs == 3);
  c.stabilize();
  CHECK(c.node(2).applied_data().size() == 10);
  CHECK(c.g(1).progress(NodeId(2))->inflight_msgs == 0);
}

TEST_CASE("raft replication: the inflight window bounds pipelined appends by bytes") {
  ClusterOptions o;
  o.max_inflight_bytes = 350;
  Cluster c(3, o);
  c.elect(1);
  c.run_ticks(1);
  for (int i = 0; i < 10; ++i) {
    REQUIRE(c.propose(1, std::string(100, 'a' + i)).is_ok());
    c.process_readys();
  }
  // Each append carries one 124-byte entry: the window admits 3 (372 bytes >= 350 stops it).
  CHECK(count_to(c, MessageType::kAppend, 2) == 3);
  CHECK(c.g(1).progress(NodeId(2))->inflight_bytes >= 350);
  c.stabilize();
  CHECK(c.node(2).applied_data().size() == 10);
}

TEST_CASE("raft replication: one append carries at most max_msg_bytes (but at least one entry)") {
  ClusterOptions o;
  o.max_msg_bytes = 300;
  Cluster c(3, o);
  c.elect(1);
  c.isolate(3);
  for (int i = 0; i < 10; ++i) REQUIRE(c.propose(1, std::string(100, 'z')).is_ok());
  REQUIRE(c.propose(1, std::string(1000, 'L')).is_ok());  // larger than the limit alone
  c.stabilize();
  c.heal();
  size_t max_entries = 0;
  bool saw_big = false;
  c.set_filter([&](const Message& m) {
    if (m.type == MessageType::kAppend && m.to == NodeId(3) && !m.entries.empty()) {
      CHECK((m.entries_bytes() <= 300 || m.entries.size() == 1));
      max_entries = std::max(max_entries, m.entries.size());
      saw_big = saw_big || m.entries_bytes() > 300;
    }
    return true;
  });
  c.run_ticks(5);
  CHECK(max_entries == 2);
  CHECK(saw_big);
  CHECK(c.node(3).applied_data().size() == 11);
}

TEST_CASE("raft replication: fast backtracking skips a whole divergent term per round trip") {
  Cluster c(3);
  c.elect(1);
  // Old leader 1 appends 60 entries nobody else sees.
  c.isolate(1);
  for (int i = 0; i < 60; ++i) REQUIRE(c.propose(1, "stale").is_ok());
  c.stabilize();
  // 2 and 3 elect 2, which commits 60 different entries in a newer term.
  c.elect(2);
  for (int i = 0; i < 60; ++i) REQUIRE(c.propose(2, "fresh").is_ok());
  c.stabilize();
  c.run_ticks(1);
  size_t rejects = 0;
  c.set_filter([&](const Message& m) {
    if (m.type == MessageType::kAppendResp && m.from == NodeId(1) && m.reject) ++rejects;
    return true;
  });
  c.heal();
  c.run_ticks(30);
  CHECK(c.leader() == 2);
  CHECK(c.node(1).applied_data() == c.node(2).applied_data());
  CHECK(c.node(1).applied_data().size() == 60);
  CHECK(rejects <= 3);  // naive backtracking would need ~60
}

TEST_CASE("raft replication: only entries of the current term commit by counting replicas") {
  Cluster c(3);
  c.elect(1);
  // Leader 1 (term 1) appends x at index 2; nobody receives it.
  c.isolate(1);
  REQUIRE(c.propose(1, "x").value() == LogIndex(2));
  for (int i = 0; i < 25; ++i) {
    c.tick(1);  // CheckQuorum: 1 steps down (only 1's clock runs, so nobody else campaigns)
    c.stabilize();
  }
  REQUIRE(c.g(1).role() != Role::kLeader);
  c.heal();
  // Keep every append from leaving so that only hand-made acknowledgements reach the leader.
  c.set_filter([](const Message& m) { return m.type != MessageType::kAppend; });
  c.elect(1);  // 1 has the longest log
  Term t = c.g(1).term();
  REQUIRE(t > Term(1));
  REQUIRE(c.g(1).last_index() == LogIndex(3));  // x (term 1) + the new no-op (term t)
  REQUIRE(c.g(1).term_at(LogIndex(2)) == Term(1));
  Message ack;
  ack.type = MessageType::kAppendResp;
  ack.group = raftd::raft::test::kTestGroup;
  ack.from = NodeId(2);
  ack.to = NodeId(1);
  ack.term = t;
  ack.index = LogIndex(2);
  c.deliver(ack);
  // x sits on a majority (1 and 2) but is from an older term: not committed (bug #1).
  CHECK(c.g(1).commit_index() == LogIndex(1));
  ack.index = LogIndex(3);
  c.deliver(ack);
  CHECK(c.g(1).commit_index() == LogIndex(3));  // the no-op commits, and x with it
}

TEST_CASE("raft replication: a follower that lost its log is caught up again (probe)") {
  Cluster c(3);
  c.elect(1);
  for (int i = 0; i < 5; ++i) REQUIRE(c.propose(1, "a").is_ok());
  c.stabilize();
  c.crash(3);
  for (int i = 0; i < 5; ++i) REQUIRE(c.propose(1, "b").is_ok());
  c.stabilize();
  c.restart(3);
  c.run_ticks(5);
  CHECK(c.node(3).applied_data().size() == 10);
  CHECK(c.g(1).progress(NodeId(3))->match == c.g(1).last_index());
}

TEST_CASE("raft replication: report_unreachable drops a follower back to probing") {
  Cluster c(3);
  c.elect(1);
  c.run_ticks(1);
  REQUIRE(c.g(1).progress(NodeId(2))->state == ProgressState::kReplicate);
  c.g(1).report_unreachable(NodeId(2));
  CHECK(c.g(1).progress(NodeId(2))->state == ProgressState::kProbe);
  REQUIRE(c.propose(1, "p").is_ok());
  c.stabilize();
  CHECK(c.g(1).progress(NodeId(2))->state == ProgressState::kReplicate);
  CHECK(c.node(2).applied_data() == std::vector<std::string>{"p"});
}

TEST_CASE("raft replication: a stale append completion does not mark newer entries durable") {
  // Subtle bug #13 (ABA): entries 2..3 of term 1 are being written when a new leader replaces
  // index 3; the old completion (3, term 1) must not count for the new entry 3.
  Cluster c(3);
  c.elect(1);
  c.set_manual_persist(3, true);
  c.isolate(2);
  REQUIRE(c.propose(1, "a").is_ok());
  REQUIRE(c.propose(1, "b").is_ok());
  c.stabilize();  // 3 has 2..3 (term 1) in flight, not durable
  REQUIRE(c.node(3).pending.size() >= 1);
  LogIndex before = c.g(3).persisted_index();
  c.g(3).on_persisted(LogIndex(3), Term(7));  // wrong term: ignored
  CHECK(c.g(3).persisted_index() == before);
  c.persist(3);
  CHECK(c.g(3).persisted_index() == LogIndex(3));
  c.g(3).on_persisted(LogIndex(3), Term(1));  // duplicate completion: harmless
  CHECK(c.g(3).persisted_index() == LogIndex(3));
}

TEST_CASE("raft replication: committed entries are handed out in bounded batches") {
  ClusterOptions o;
  o.max_committed_bytes_per_ready = 500;
  Cluster c(3, o);
  c.elect(1);
  c.isolate(3);
  for (int i = 0; i < 20; ++i) REQUIRE(c.propose(1, std::string(100, 'c')).is_ok());
  c.stabilize();
  c.heal();
  size_t largest_batch = 0;
  // Drive node 3 by hand to look at its Readys.
  for (int round = 0; round < 200; ++round) {
    c.tick(1);
    c.deliver_all();
    while (c.g(3).has_ready()) {
      Ready rd = c.g(3).ready();
      uint64_t bytes = 0;
      for (const Entry& e : rd.committed_entries) bytes += e.size_bytes();
      CHECK((bytes <= 500 || rd.committed_entries.size() == 1));
      largest_batch = std::max(largest_batch, rd.committed_entries.size());
      c.node(3).storage->append(rd.entries);
      for (Message& m : rd.messages) c.queue().push_back(m);
      for (Message& m : rd.messages_after_persist) c.queue().push_back(m);
      c.g(3).advance(rd);
      for (const Entry& e : rd.committed_entries) c.node(3).applied.push_back(e);
      if (!rd.entries.empty()) {
        c.g(3).on_persisted(rd.entries.back().index, rd.entries.back().term);
      }
    }
    c.process_readys();
    c.deliver_all();
    if (c.g(3).applied_index() == c.g(1).commit_index()) break;
  }
  CHECK(c.g(3).applied_index() == c.g(1).commit_index());
  CHECK(largest_batch >= 2);
  CHECK(largest_batch <= 4);  // 124-byte entries, 500-byte batches
}

TEST_CASE("raft replication: an append response beyond the leader's log is ignored") {
  // A faulty or hostile peer claims entries the leader never had: the leader must neither
  // commit beyond its log (an assertion) nor move the peer's progress there.
  Cluster c(3);
  c.elect(1);
  REQUIRE(c.propose(1, "x").is_ok());
  c.stabilize();
  const LogIndex last = c.g(1).last_index();
  const LogIndex commit = c.g(1).commit_index();
  for (bool reject : {false, true}) {
    Message m;
    m.type = MessageType::kAppendResp;
    m.group = c.g(1).group();
    m.from = NodeId(2);
    m.to = NodeId(1);
    m.term = c.g(1).term();
    m.index = last + 100;
    m.reject = reject;
    m.reject_hint = reject ? last + 50 : LogIndex(0);
    c.deliver(m);
  }
  CHECK(c.g(1).commit_index() == commit);
  CHECK(c.g(1).progress(NodeId(2))->match <= last);
  CHECK(c.g(1).check_invariants().is_ok());
  REQUIRE(c.propose(1, "y").is_ok());
  c.stabilize();
  CHECK(c.g(1).commit_index() == last + 1);
}
