#include "raftd/node/meta.h"

#include <doctest/doctest.h>

#include <string>

using raftd::GroupId;
using raftd::NodeId;
using namespace raftd::node;

namespace {

MetaState three_nodes() {
  return MetaState::bootstrap({{NodeId(1), "127.0.0.1:7301", "127.0.0.1:7300"},
                               {NodeId(2), "127.0.0.1:7311", "127.0.0.1:7310"},
                               {NodeId(3), "127.0.0.1:7321", "127.0.0.1:7320"}});
}

}  // namespace

TEST_CASE("node::MetaState: every command round-trips through its encoding") {
  std::vector<MetaCommand> cmds = {
      AddNode{{NodeId(4), "127.0.0.1:7331", "127.0.0.1:7330"}},
      RemoveNode{NodeId(4)},
      CreateGroup{GroupId(7), {NodeId(1), NodeId(2), NodeId(3)}},
      DeleteGroup{GroupId(7)},
      HostGroup{GroupId(7), NodeId(4)},
      UnhostGroup{GroupId(7), NodeId(4)},
  };
  for (const MetaCommand& c : cmds) {
    auto d = decode_meta_command(encode_meta_command(c));
    REQUIRE(d.is_ok());
    CHECK(d.value().index() == c.index());
    CHECK(encode_meta_command(d.value()) == encode_meta_command(c));
  }
}

TEST_CASE("node::MetaState: decode refuses malformed commands") {
  std::string good = encode_meta_command(CreateGroup{GroupId(7), {NodeId(1), NodeId(2)}});
  // Every strict prefix is truncated, and trailing bytes are refused.
  for (size_t n = 0; n < good.size(); ++n) {
    CHECK_FALSE(decode_meta_command(std::string_view(good).substr(0, n)).is_ok());
  }
  CHECK_FALSE(decode_meta_command(good + "x").is_ok());
  std::string v2 = good;
  v2[0] = 2;
  CHECK_FALSE(decode_meta_command(v2).is_ok());
  std::string op9 = good;
  op9[1] = 9;
  CHECK_FALSE(decode_meta_command(op9).is_ok());
  // Unsorted or repeated members, group 0, an empty member list.
  CHECK_FALSE(
      decode_meta_command(encode_meta_command(CreateGroup{GroupId(7), {NodeId(2), NodeId(1)}}))
          .is_ok());
  CHECK_FALSE(
      decode_meta_command(encode_meta_command(CreateGroup{GroupId(7), {NodeId(2), NodeId(2)}}))
          .is_ok());
  CHECK_FALSE(
      decode_meta_command(encode_meta_command(CreateGroup{GroupId(0), {NodeId(1)}})).is_ok());
  CHECK_FALSE(decode_meta_command(encode_meta_command(CreateGroup{GroupId(7), {}})).is_ok());
  CHECK_FALSE(decode_meta_command(encode_meta_command(RemoveNode{NodeId(0)})).is_ok());
  CHECK_FALSE(
      decode_meta_command(encode_meta_command(AddNode{
                              {NodeId(5), std::string(kMetaAddressBytesMax + 1, 'a'), "x"}}))
          .is_ok());
}

TEST_CASE("node::MetaState: groups are created once and ids are never reused") {
  MetaState s = three_nodes();
  CHECK(s.apply(CreateGroup{GroupId(7), {NodeId(1), NodeId(2), NodeId(3)}}) == MetaOutcome::kOk);
  REQUIRE(s.group(GroupId(7)) != nullptr);
  CHECK(s.group(GroupId(7))->members.size() == 3);
  CHECK(s.apply(CreateGroup{GroupId(7), {NodeId(1)}}) == MetaOutcome::kGroupExists);
  CHECK(s.apply(DeleteGroup{GroupId(7)}) == MetaOutcome::kOk);
  CHECK(s.group(GroupId(7)) == nullptr);
  CHECK(s.apply(DeleteGroup{GroupId(7)}) == MetaOutcome::kUnknownGroup);
  // The deleted id stays used.
  CHECK(s.apply(CreateGroup{GroupId(7), {NodeId(1)}}) == MetaOutcome::kGroupExists);
  CHECK(s.group_id_used(GroupId(7)));
  CHECK(s.apply(CreateGroup{GroupId(8), {NodeId(1), NodeId(9)}}) == MetaOutcome::kUnknownNode);
  CHECK(s.group(GroupId(8)) == nullptr);
  CHECK_FALSE(s.group_id_used(GroupId(8)));
  CHECK(s.apply(DeleteGroup{GroupId(0)}) == MetaOutcome::kReservedGroup);
}

TEST_CASE("node::MetaState: a node in a group cannot be removed; a removed id is never reused") {
  MetaState s = three_nodes();
  CHECK(s.apply(AddNode{{NodeId(4), "127.0.0.1:7331", "127.0.0.1:7330"}}) == MetaOutcome::kOk);
  CHECK(s.apply(AddNode{{NodeId(4), "127.0.0.1:7341", "127.0.0.1:7340"}}) ==
        MetaOutcome::kNodeExists);
  CHECK(s.node(NodeId(4))->peer == "127.0.0.1:7331");
  CHECK(s.apply(CreateGroup{GroupId(3), {NodeId(2), NodeId(4)}}) == MetaOutcome::kOk);
  CHECK(s.groups_of(NodeId(4)) == std::vector<GroupId>{GroupId(3)});
  CHECK(s.apply(RemoveNode{NodeId(4)}) == MetaOutcome::kNodeInUse);
  CHECK(s.apply(DeleteGroup{GroupId(3)}) == MetaOutcome::kOk);
  CHECK(s.apply(RemoveNode{NodeId(4)}) == MetaOutcome::kOk);
  CHECK(s.node(NodeId(4)) == nullptr);
  CHECK(s.apply(RemoveNode{NodeId(4)}) == MetaOutcome::kUnknownNode);
  CHECK(s.apply(AddNode{{NodeId(4), "127.0.0.1:7331", "127.0.0.1:7330"}}) ==
        MetaOutcome::kNodeExists);
}

TEST_CASE("node::MetaState: a new node's addresses may not be a current node's") {
  MetaState s = three_nodes();
  const NodeInfo& n1 = *s.node(NodeId(1));
  CHECK(s.apply(AddNode{{NodeId(4), n1.peer, "127.0.0.1:7330"}}) == MetaOutcome::kAddressInUse);
  CHECK(s.apply(AddNode{{NodeId(4), "127.0.0.1:7331", n1.peer}}) == MetaOutcome::kAddressInUse);
  CHECK(s.apply(AddNode{{NodeId(4), "127.0.0.1:7331", n1.client}}) == MetaOutcome::kAddressInUse);
  CHECK(s.node(NodeId(4)) == nullptr);
  CHECK_FALSE(s.node_id_used(NodeId(4)));  // refused: the id stays free
  CHECK(s.apply(AddNode{{NodeId(4), "127.0.0.1:7331", "127.0.0.1:7330"}}) == MetaOutcome::kOk);
  // A removed node's addresses are free again (its id is not).
  CHECK(s.apply(RemoveNode{NodeId(4)}) == MetaOutcome::kOk);
  CHECK(s.apply(AddNode{{NodeId(5), "127.0.0.1:7331", "127.0.0.1:7330"}}) == MetaOutcome::kOk);
}

TEST_CASE("node::MetaState: replicas applying the same commands agree, refusals included") {
  std::vector<MetaCommand> log = {
      CreateGroup{GroupId(1), {NodeId(1), NodeId(2)}},
      CreateGroup{GroupId(1), {NodeId(3)}},
      AddNode{{NodeId(5), "a:1", "a:2"}},
      RemoveNode{NodeId(2)},
      DeleteGroup{GroupId(1)},
      RemoveNode{NodeId(2)},
  };
  MetaState a = three_nodes();
  MetaState b = three_nodes();
  std::vector<MetaOutcome> oa, ob;
  for (const auto& c : log) {
    auto bytes = encode_meta_command(c);
    oa.push_back(a.apply(decode_meta_command(bytes).value()));
    ob.push_back(b.apply(decode_meta_command(bytes).value()));
  }
  CHECK(oa == ob);
  CHECK(a == b);
  CHECK(a.applied_commands() == log.size());
  CHECK(oa[3] == MetaOutcome::kNodeInUse);
  CHECK(oa[5] == MetaOutcome::kOk);
  CHECK(a.node(NodeId(2)) == nullptr);
}

TEST_CASE("node::MetaState: hosting follows Host/UnhostGroup; a hosting node cannot be removed") {
  MetaState s = three_nodes();
  REQUIRE(s.apply(AddNode{{NodeId(4), "127.0.0.1:7331", "127.0.0.1:7330"}}) == MetaOutcome::kOk);
  REQUIRE(s.apply(CreateGroup{GroupId(7), {NodeId(1), NodeId(2), NodeId(3)}}) == MetaOutcome::kOk);
  CHECK(s.group(GroupId(7))->hosts == std::vector<NodeId>{NodeId(1), NodeId(2), NodeId(3)});
  CHECK(s.apply(HostGroup{GroupId(7), NodeId(4)}) == MetaOutcome::kOk);
  CHECK(s.apply(HostGroup{GroupId(7), NodeId(4)}) == MetaOutcome::kOk);  // idempotent
  CHECK(s.group(GroupId(7))->hosts.size() == 4);
  CHECK(s.group(GroupId(7))->hosted_by(NodeId(4)));
  CHECK(s.group(GroupId(7))->members.size() == 3);  // the initial voters stay as they were
  CHECK(s.groups_of(NodeId(4)) == std::vector<GroupId>{GroupId(7)});
  CHECK(s.apply(RemoveNode{NodeId(4)}) == MetaOutcome::kNodeInUse);
  CHECK(s.apply(HostGroup{GroupId(8), NodeId(4)}) == MetaOutcome::kUnknownGroup);
  CHECK(s.apply(HostGroup{GroupId(7), NodeId(9)}) == MetaOutcome::kUnknownNode);
  CHECK(s.apply(UnhostGroup{GroupId(7), NodeId(1)}) == MetaOutcome::kOk);
  CHECK(s.apply(UnhostGroup{GroupId(7), NodeId(1)}) == MetaOutcome::kOk);
  CHECK_FALSE(s.group(GroupId(7))->hosted_by(NodeId(1)));
  CHECK(s.group(GroupId(7))->left == std::vector<NodeId>{NodeId(1)});
  CHECK(s.groups_of(NodeId(1)).empty());
  CHECK(s.apply(UnhostGroup{GroupId(7), NodeId(4)}) == MetaOutcome::kOk);
  CHECK(s.apply(RemoveNode{NodeId(4)}) == MetaOutcome::kOk);
  CHECK(
      decode_meta_command(encode_meta_command(HostGroup{GroupId(0), NodeId(4)})).status().code() ==
      raftd::Code::kCorruption);
  CHECK_FALSE(decode_meta_command(encode_meta_command(UnhostGroup{GroupId(7), NodeId(0)})).is_ok());
}
