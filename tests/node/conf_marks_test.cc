// ConfMarks: the configuration of each group at its compaction points (data_dir/conf-marks).
#include "raftd/node/conf_marks.h"

#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace raftd::node {
namespace {

std::string temp_dir() {
  std::string t = (std::filesystem::temp_directory_path() / "raftd-confmarks-XXXXXX").string();
  REQUIRE(::mkdtemp(t.data()) != nullptr);
  return t;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

raft::ConfState conf(std::vector<NodeId> voters, std::vector<NodeId> learners = {}) {
  raft::ConfState c;
  c.voters = std::move(voters);
  c.learners = std::move(learners);
  return c;
}

const raft::ConfState kInitial = conf({NodeId(1), NodeId(2), NodeId(3)});

}  // namespace

TEST_CASE("node::ConfMarks: a record is written only when the configuration changes") {
  const std::string dir = temp_dir();
  const std::string path = dir + "/conf-marks";
  auto cm = ConfMarks::open(path);
  REQUIRE(cm.is_ok());
  ConfMarks& m = **cm;
  const GroupId g(7);
  CHECK(!m.at(g, LogIndex(100)).has_value());
  // The initial configuration needs no record.
  REQUIRE(m.record(g, {LogIndex(10), Term(1), kInitial}, kInitial).is_ok());
  CHECK(m.writes() == 0);
  CHECK(!std::filesystem::exists(path));
  const raft::ConfState four = conf({NodeId(1), NodeId(2), NodeId(3)}, {NodeId(4)});
  REQUIRE(m.record(g, {LogIndex(20), Term(2), four}, kInitial).is_ok());
  CHECK(m.writes() == 1);
  REQUIRE(m.record(g, {LogIndex(30), Term(2), four}, kInitial).is_ok());  // unchanged
  CHECK(m.writes() == 1);
  CHECK(m.at(g, LogIndex(19)) == std::nullopt);
  CHECK(m.at(g, LogIndex(20)) == four);
  CHECK(m.at(g, LogIndex(1000)) == four);
  // Back to the initial members at 40: a record, since the file says otherwise at 40.
  REQUIRE(m.record(g, {LogIndex(40), Term(3), kInitial}, kInitial).is_ok());
  CHECK(m.writes() == 2);
  CHECK(m.at(g, LogIndex(39)) == four);
  CHECK(m.at(g, LogIndex(40)) == kInitial);

  // A reopened file says the same.
  auto again = ConfMarks::open(path);
  REQUIRE(again.is_ok());
  CHECK((*again)->records() == m.records());
  CHECK((*again)->at(g, LogIndex(25)) == four);
  std::filesystem::remove_all(dir);
}

TEST_CASE("node::ConfMarks: prune keeps what a durable mark needs and drops other groups") {
  const std::string dir = temp_dir();
  const std::string path = dir + "/conf-marks";
  auto cm = ConfMarks::open(path);
  REQUIRE(cm.is_ok());
  ConfMarks& m = **cm;
  const raft::ConfState a = conf({NodeId(1), NodeId(2)});
  const raft::ConfState b = conf({NodeId(1)}, {NodeId(2)});
  REQUIRE(m.record(GroupId(1), {LogIndex(10), Term(1), a}, kInitial).is_ok());
  REQUIRE(m.record(GroupId(1), {LogIndex(20), Term(1), b}, kInitial).is_ok());
  REQUIRE(m.record(GroupId(1), {LogIndex(30), Term(1), a}, kInitial).is_ok());
  REQUIRE(m.record(GroupId(2), {LogIndex(5), Term(1), a}, kInitial).is_ok());
  // Group 1's durable mark is 25: the record at 20 answers it, 30 may be needed later.
  REQUIRE(m.prune({{GroupId(1), LogIndex(25)}}).is_ok());
  REQUIRE(m.records().size() == 1);
  const auto& recs = m.records().at(GroupId(1));
  REQUIRE(recs.size() == 2);
  CHECK(recs[0].index == LogIndex(20));
  CHECK(recs[1].index == LogIndex(30));
  CHECK(m.at(GroupId(1), LogIndex(25)) == b);
  const uint64_t writes = m.writes();
  REQUIRE(m.prune({{GroupId(1), LogIndex(25)}}).is_ok());  // nothing to drop: no write
  CHECK(m.writes() == writes);
  auto again = ConfMarks::open(path);
  REQUIRE(again.is_ok());
  CHECK((*again)->records() == m.records());
  std::filesystem::remove_all(dir);
}

TEST_CASE("node::ConfMarks: every damaged or cut file is refused, never half read") {
  std::map<GroupId, std::vector<ConfMark>> marks;
  raft::ConfState joint = conf({NodeId(1), NodeId(4)}, {NodeId(5)});
  joint.voters_outgoing = {NodeId(1), NodeId(2), NodeId(3)};
  joint.learners_next = {NodeId(2)};
  joint.auto_leave = true;
  marks[GroupId(3)] = {{LogIndex(9), Term(2), joint}, {LogIndex(12), Term(3), kInitial}};
  marks[GroupId(18446744073709551615ull)] = {{LogIndex(1), Term(1), conf({NodeId(9)})}};
  const std::string text = encode_conf_marks(marks);
  auto ok = decode_conf_marks(text, "f");
  REQUIRE(ok.is_ok());
  CHECK(ok.value() == marks);
  for (size_t i = 0; i < text.size(); ++i) {
    std::string bad = text;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    auto r = decode_conf_marks(bad, "f");
    CHECK_MESSAGE(!r.is_ok(), "a flip at byte ", i, " was accepted");
    if (!r.is_ok()) CHECK(r.status().code() == Code::kCorruption);
  }
  for (size_t n = 0; n < text.size(); ++n) {
    CHECK_MESSAGE(!decode_conf_marks(text.substr(0, n), "f").is_ok(), "a cut at ", n,
                  " was accepted");
  }
  CHECK(!decode_conf_marks(text + "x", "f").is_ok());
}

TEST_CASE("node::ConfMarks: a damaged file on disk stops the open with its name") {
  const std::string dir = temp_dir();
  const std::string path = dir + "/conf-marks";
  {
    std::ofstream f(path);
    f << "raftd-conf-marks 1\nmark 1 2 3 1 - - - 0\nchecksum 0000000000000000\n";
  }
  auto cm = ConfMarks::open(path);
  REQUIRE(!cm.is_ok());
  CHECK(cm.status().code() == Code::kCorruption);
  CHECK(cm.status().to_string().find(path) != std::string::npos);
  CHECK(slurp(path).size() > 0);  // left as it was, for the operator
  std::filesystem::remove_all(dir);
}

}  // namespace raftd::node
