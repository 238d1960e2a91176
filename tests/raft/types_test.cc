// Tests of the value types: the ConfChange byte encoding and Config validation.
#include <doctest/doctest.h>

#include "raftd/raft/raft.h"

using namespace raftd;
using namespace raftd::raft;

TEST_CASE("raft::encode_conf_change: round trip") {
  ConfChange cc{ConfTransition::kJointExplicit,
                {{ConfChangeType::kAddVoter, NodeId(4)}, {ConfChangeType::kRemove, NodeId(1)}}};
  Result<ConfChange> back = decode_conf_change(encode_conf_change(cc));
  REQUIRE(back.is_ok());
  CHECK(back.value() == cc);
  Result<ConfChange> leave = decode_conf_change(encode_conf_change({}));
  REQUIRE(leave.is_ok());
  CHECK(leave.value().leave_joint());
}

TEST_CASE("raft::decode_conf_change: rejects malformed input") {
  std::string good =
      encode_conf_change({ConfTransition::kAuto, {{ConfChangeType::kAddLearner, NodeId(7)}}});
  CHECK(decode_conf_change("").status().code() == Code::kCorruption);
  CHECK(decode_conf_change(good.substr(0, good.size() - 1)).status().code() == Code::kCorruption);
  std::string bad_version = good;
  bad_version[0] = 9;
  CHECK(!decode_conf_change(bad_version).is_ok());
  std::string bad_type = good;
  bad_type[6] = 3;
  CHECK(!decode_conf_change(bad_type).is_ok());
  std::string node_zero =
      encode_conf_change({ConfTransition::kAuto, {{ConfChangeType::kAddVoter, NodeId(0)}}});
  CHECK(!decode_conf_change(node_zero).is_ok());
}

TEST_CASE("raft::Config::validate") {
  Config c;
  c.id = NodeId(1);
  CHECK(c.validate().is_ok());
  Config no_id = c;
  no_id.id = NodeId(0);
  CHECK(no_id.validate().code() == Code::kInvalidArgument);
  Config bad_ticks = c;
  bad_ticks.election_tick = 1;
  bad_ticks.heartbeat_tick = 1;
  CHECK(!bad_ticks.validate().is_ok());
  Config no_window = c;
  no_window.max_inflight_msgs = 0;
  CHECK(!no_window.validate().is_ok());
}
