// Subtle Raft bugs about durability and restarts: #4 (vote durable before it is sent; a vote is
// cleared only by a new term), #5 (acknowledge and apply only after the local write), #13 (a
// stale write completion after the log was overwritten), #15 (a node that lost its state) and
// #16 (a hard state that does not match the log is refused at start-up).
#include <doctest/doctest.h>

#include "bugs_scenarios.h"

using namespace raftd;
using namespace raftd::raft;
using namespace raftd::raft::test;

namespace {

ClusterOptions plain_elections() {
  ClusterOptions o;
  o.pre_vote = false;
  o.check_quorum = false;
  return o;
}

// A fresh, empty replica of node `id` in a group of voters 1..3 (what a wiped disk looks like).
void wipe(Cluster& c, uint64_t id) {
  Node& n = c.node(id);
  REQUIRE_FALSE(n.up());
  ConfState cs;
  cs.voters = node_ids({1, 2, 3});
  n.storage = std::make_unique<MemoryLogStorage>(SnapshotMeta{LogIndex(0), Term(0), cs});
  n.durable_hard_state = HardState{};
  n.applied.clear();
  n.checked_applied = 0;
}

// Storage holding entries 1..n of term 1, for start-up checks.
std::unique_ptr<MemoryLogStorage> log_of(uint64_t n) {
  ConfState cs;
  cs.voters = node_ids({1, 2, 3});
  auto st = std::make_unique<MemoryLogStorage>(SnapshotMeta{LogIndex(0), Term(0), cs});
  std::vector<Entry> es;
  for (uint64_t i = 1; i <= n; ++i)
    es.push_back(Entry{Term(1), LogIndex(i), EntryType::kNormal, "e"});
  st->append(es);
  return st;
}

Config config_of(uint64_t id) {
  Config cfg;
  cfg.id = NodeId(id);
  cfg.group = kTestGroup;
  return cfg;
}

}  // namespace

TEST_CASE("raft bug #4: a vote response leaves only after the vote is durable") {
  scenario_bug4_vote_leaves_after_persist();
}

TEST_CASE("raft bug #4: a vote response is never in the immediately sendable messages") {
  MemoryLogStorage st(SnapshotMeta{LogIndex(0), Term(0), ConfState{node_ids({1, 2, 3})}});
  Group g(config_of(3), st, BootState{{}, st.snapshot(), LogIndex(0)});
  Message req;
  req.type = MessageType::kVote;
  req.group = kTestGroup;
  req.from = NodeId(1);
  req.to = NodeId(3);
  req.term = Term(4);
  g.step(req);
  REQUIRE(g.has_ready());
  Ready rd = g.ready();
  for (const Message& m : rd.messages) CHECK(m.type != MessageType::kVoteResp);
  REQUIRE(rd.messages_after_persist.size() == 1);
  CHECK(rd.messages_after_persist[0].type == MessageType::kVoteResp);
  CHECK_FALSE(rd.messages_after_persist[0].reject);
  // The same Ready carries the hard state that records the vote.
  REQUIRE(rd.hard_state.has_value());
  CHECK(rd.hard_state->term == Term(4));
  CHECK(rd.hard_state->vote == NodeId(1));
  g.advance(rd);
}

TEST_CASE("raft bug #4: losing an election in the same term does not clear the vote") {
  Cluster c(3, plain_elections());
  c.isolate(1);
  c.isolate(2);
  c.isolate(3);
  for (int i = 0; i < kCampaignTicksMax && c.g(1).role() == Role::kFollower; ++i) c.tick(1);
  for (int i = 0; i < kCampaignTicksMax && c.g(2).role() == Role::kFollower; ++i) c.tick(2);
  REQUIRE(c.g(1).term() == Term(1));
  REQUIRE(c.g(2).term() == Term(1));
  c.process_readys();
  c.heal();
  auto from_to = [](uint64_t f, uint64_t t) {
    return [f, t](const Message& m) { return m.from == NodeId(f) && m.to == NodeId(t); };
  };
  for (const Message& m : c.take(from_to(1, 1))) c.deliver(m);
  for (const Message& m : c.take(from_to(2, 2))) c.deliver(m);
  std::vector<Message> req_2_to_1 = c.take(from_to(2, 1));
  REQUIRE(req_2_to_1.size() == 1);
  for (const Message& m : c.take(from_to(2, 3))) c.deliver(m);  // 3 votes for 2
  for (const Message& m : c.take(from_to(1, 3))) c.deliver(m);  // and refuses 1
  for (const Message& m : c.take(from_to(1, 2))) c.deliver(m);  // 2 refuses 1
  c.process_readys();
  for (const Message& m : c.take(from_to(2, 1))) c.deliver(m);
  for (const Message& m : c.take(from_to(3, 1))) c.deliver(m);
  // Node 1 lost (two refusals) and is a follower again, still in term 1, still voted for itself.
  REQUIRE(c.g(1).role() == Role::kFollower);
  CHECK(c.g(1).term() == Term(1));
  CHECK(c.g(1).vote() == NodeId(1));

  // Node 2's request arrives (late, or duplicated): a second vote in term 1 must be refused,
  // also after a restart.
  for (int round = 0; round < 2; ++round) {
    c.deliver(req_2_to_1[0]);
    c.process_readys();
    std::vector<Message> resp = c.take(
        [](const Message& m) { return m.from == NodeId(1) && m.type == MessageType::kVoteResp; });
    REQUIRE_FALSE(resp.empty());
    for (const Message& m : resp) CHECK(m.reject);
    CHECK(c.g(1).vote() == NodeId(1));
    CHECK(c.node(1).durable_hard_state.vote == NodeId(1));
    c.crash(1);
    c.restart(1);
  }
}

TEST_CASE("raft bug #5: a single-voter group applies an entry only after its own write") {
  scenario_bug5_single_voter_applies_after_persist();
}

TEST_CASE("raft bug #5: leader and followers count an entry only once it is durable on them") {
  scenario_bug5_leader_and_follower_count_durable_entries();
}

TEST_CASE("raft bug #13: a write completion for entries overwritten meanwhile is ignored") {
  Cluster c(5, plain_elections());
  c.elect(1);
  c.set_manual_persist(5, true);
  // Write W1: node 5 receives "old" (2, term 1) from node 1; its write is in flight.
  c.partition({1, 5}, {2, 3, 4});
  REQUIRE(c.propose(1, "old").is_ok());
  c.stabilize();
  REQUIRE(c.node(5).pending.size() == 1);
  REQUIRE(c.g(5).term_at(LogIndex(2)) == Term(1));
  // Node 2 wins term 2 without node 5; its no-op (2, term 2) then overwrites node 5's unstable
  // entry while W1 is still being written: W2 (term) and W3 (the new entry) follow.
  c.crash(1);
  c.elect(2);
  c.heal();
  c.tick(2);
  c.stabilize();
  REQUIRE(c.g(5).term_at(LogIndex(2)) == Term(2));
  REQUIRE(c.node(5).pending.size() >= 2);

  // W1 completes: on_persisted(2, term 1). Index 2 now holds a term-2 entry that is not durable.
  REQUIRE(c.persist_one(5));
  CHECK(c.g(5).term_at(LogIndex(2)) == Term(2));
  CHECK(c.g(5).persisted_index() == LogIndex(1));

  c.persist(5);
  CHECK(c.g(5).persisted_index() == LogIndex(2));
  CHECK(c.g(5).term_at(LogIndex(2)) == Term(2));
  c.set_manual_persist(5, false);
  c.run_ticks(2);
  CHECK(c.g(5).commit_index() == LogIndex(2));
  CHECK(c.applied_record().at(2).term == Term(2));
}

// Bug #15 at the core level. What the core can guarantee: a replica whose state is intact
// keeps its vote across a restart, and a replica that lost its log can never win an election
// against replicas holding committed entries, so one wiped replica cannot erase committed data.
// What it cannot see is a wiped replica re-voting in a term it already voted in: that is why
// node ids are never reused and a node with a wiped data directory must rejoin as a new member.
// Those rules belong to the node layer (group registry / meta group) and are tested there.
TEST_CASE("raft bug #15: a restarted replica keeps its vote; a wiped one cannot win") {
  SUBCASE("the vote survives a restart") {
    std::unique_ptr<MemoryLogStorage> st = log_of(1);
    Group g(config_of(3), *st,
            BootState{HardState{Term(2), NodeId(1), LogIndex(1)}, st->snapshot(), LogIndex(0)});
    Message req;
    req.type = MessageType::kVote;
    req.group = kTestGroup;
    req.from = NodeId(2);
    req.to = NodeId(3);
    req.term = Term(2);
    req.index = LogIndex(1);
    req.log_term = Term(1);
    g.step(req);
    Ready rd = g.ready();
    REQUIRE(rd.messages_after_persist.size() == 1);
    CHECK(rd.messages_after_persist[0].reject);
    CHECK(g.vote() == NodeId(1));
    g.advance(rd);
  }
  SUBCASE("a wiped replica with the same id cannot erase committed entries") {
    Cluster c(3, plain_elections());
    c.elect(1);
    REQUIRE(c.propose(1, "a").is_ok());
    REQUIRE(c.propose(1, "b").is_ok());
    c.stabilize();
    c.crash(3);
    wipe(c, 3);
    c.restart(3);
    c.crash(1);
    for (int i = 0; i < kCampaignTicksMax; ++i) {
      c.tick(3);
      c.stabilize();
      REQUIRE(c.g(3).role() != Role::kLeader);
    }
    campaign_until_leader(c, 2);
    c.run_ticks(2);
    CHECK(c.node(2).applied_data() == std::vector<std::string>{"a", "b"});
    CHECK(c.node(3).applied_data() == std::vector<std::string>{"a", "b"});
  }
}

TEST_CASE("raft bug #16: a hard state that does not match the log stops the replica") {
  SUBCASE("commit index beyond the last stored entry") {
    int sig = signal_of_child([] {
      std::unique_ptr<MemoryLogStorage> st = log_of(2);
      Group g(config_of(1), *st,
              BootState{HardState{Term(1), NodeId(1), LogIndex(3)}, st->snapshot(), LogIndex(0)});
    });
    CHECK(sig == SIGABRT);
  }
  SUBCASE("applied index beyond the commit index") {
    int sig = signal_of_child([] {
      std::unique_ptr<MemoryLogStorage> st = log_of(3);
      Group g(config_of(1), *st,
              BootState{HardState{Term(1), NodeId(1), LogIndex(2)}, st->snapshot(), LogIndex(3)});
    });
    CHECK(sig == SIGABRT);
  }
  SUBCASE("storage that does not start right after the snapshot") {
    int sig = signal_of_child([] {
      std::unique_ptr<MemoryLogStorage> st = log_of(3);
      SnapshotMeta later{LogIndex(2), Term(1), st->snapshot().conf_state};
      Group g(config_of(1), *st,
              BootState{HardState{Term(1), NodeId(1), LogIndex(3)}, later, LogIndex(2)});
    });
    CHECK(sig == SIGABRT);
  }
  SUBCASE("a consistent state starts (control: the child above died for the mismatch)") {
    int sig = signal_of_child([] {
      std::unique_ptr<MemoryLogStorage> st = log_of(3);
      Group g(config_of(1), *st,
              BootState{HardState{Term(1), NodeId(1), LogIndex(3)}, st->snapshot(), LogIndex(2)});
    });
    CHECK(sig == 0);
  }
  SUBCASE("a replica whose log lost its committed tail refuses to restart") {
    Cluster c(3);
    c.elect(1);
    REQUIRE(c.propose(1, "a").is_ok());
    REQUIRE(c.propose(1, "b").is_ok());
    c.stabilize();
    REQUIRE(c.node(2).durable_hard_state.commit >= LogIndex(2));
    c.crash(2);
    c.node(2).storage->truncate_after(LogIndex(1));  // the disk lost acknowledged entries
    Node& n = c.node(2);
    int sig = signal_of_child([&n] {
      Group g(n.config, *n.storage,
              BootState{n.durable_hard_state, n.storage->snapshot(), n.storage->snapshot().index});
    });
    CHECK(sig == SIGABRT);
  }
}
