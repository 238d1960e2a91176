#include "node/cluster_file.h"

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

using raftd::Code;
using raftd::NodeId;
using namespace raftd::node;

namespace {

ClusterFile sample() {
  std::vector<NodeInfo> m = {{NodeId(1), "127.0.0.1:7301", "127.0.0.1:7300"},
                             {NodeId(2), "127.0.0.1:7311", "127.0.0.1:7310"}};
  return ClusterFile{cluster_id_of(m), NodeId(2), m};
}

}  // namespace

TEST_CASE("node::ClusterFile: round trip, and the id depends on ids and peer addresses only") {
  ClusterFile f = sample();
  auto d = decode_cluster_file(encode_cluster_file(f), "x");
  REQUIRE_MESSAGE(d.is_ok(), d.status().to_string());
  CHECK(d.value() == f);
  auto other = f.members;
  other[1].client = "127.0.0.1:9999";
  CHECK(cluster_id_of(other) == f.cluster_id);  // client addresses do not name the cluster
  other[1].peer = "127.0.0.1:7399";
  CHECK(cluster_id_of(other) != f.cluster_id);
  std::vector<NodeInfo> reversed = {f.members[1], f.members[0]};
  CHECK(cluster_id_of(reversed) == f.cluster_id);  // order of the list does not matter
}

TEST_CASE("node::ClusterFile: any damage is refused") {
  const std::string good = encode_cluster_file(sample());
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    CHECK_FALSE(decode_cluster_file(bad, "x").is_ok());
  }
  for (size_t n = 0; n < good.size(); ++n) {
    CHECK_FALSE(decode_cluster_file(good.substr(0, n), "x").is_ok());
  }
  // A well-sealed file whose cluster id does not match its members.
  ClusterFile f = sample();
  f.cluster_id ^= 1;
  auto d = decode_cluster_file(encode_cluster_file(f), "x");
  REQUIRE_FALSE(d.is_ok());
  CHECK(d.status().code() == Code::kCorruption);
  CHECK(d.status().message().find("cluster_id") != std::string::npos);
}

TEST_CASE("node::ClusterFile: a joined node's contacts round trip and are checked like members") {
  ClusterFile f = sample();
  f.contacts = {f.members[0], f.members[1], {NodeId(4), "127.0.0.1:7331", "127.0.0.1:7330"}};
  const std::string text = encode_cluster_file(f);
  auto d = decode_cluster_file(text, "x");
  REQUIRE_MESSAGE(d.is_ok(), d.status().to_string());
  CHECK(d.value() == f);
  for (size_t i = 0; i < text.size(); ++i) {
    std::string bad = text;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    CHECK_FALSE(decode_cluster_file(bad, "x").is_ok());
  }
  // Sealed, but out of order: contacts unsorted, or a member line after a contact line.
  ClusterFile unsorted = f;
  std::swap(unsorted.contacts[0], unsorted.contacts[2]);
  CHECK_FALSE(decode_cluster_file(encode_cluster_file(unsorted), "x").is_ok());
  std::string moved = encode_cluster_file(sample());
  moved.insert(moved.find("member 1"), "contact 9 127.0.0.1:1 127.0.0.1:2\n");
  moved.erase(moved.rfind("checksum"));
  moved += fmt::format("checksum {:016x}\n", XXH3_64bits(moved.data(), moved.size()));
  auto m = decode_cluster_file(moved, "x");
  REQUIRE_FALSE(m.is_ok());
  CHECK(m.status().message().find("after a contact") != std::string::npos);
}

TEST_CASE("node::JoinAnswer: round trip; anything malformed or inconsistent is refused") {
  const ClusterFile f = sample();
  JoinAnswer a{f.cluster_id,
               f.members,
               {f.members[0], f.members[1], {NodeId(4), "127.0.0.1:7331", "127.0.0.1:7330"}}};
  auto d = decode_join_answer(encode_join_answer(a));
  REQUIRE_MESSAGE(d.is_ok(), d.status().to_string());
  CHECK(d.value() == a);

  JoinAnswer wrong_id = a;
  wrong_id.cluster_id ^= 1;
  CHECK_FALSE(decode_join_answer(encode_join_answer(wrong_id)).is_ok());
  JoinAnswer unsorted = a;
  std::swap(unsorted.nodes[0], unsorted.nodes[2]);
  CHECK_FALSE(decode_join_answer(encode_join_answer(unsorted)).is_ok());
  JoinAnswer no_nodes = a;
  no_nodes.nodes.clear();
  CHECK_FALSE(decode_join_answer(encode_join_answer(no_nodes)).is_ok());
  JoinAnswer spaced = a;
  spaced.nodes[2].peer = "127.0.0.1:7331 member";  // would inject a line into the cluster file
  CHECK_FALSE(decode_join_answer(encode_join_answer(spaced)).is_ok());
  JoinAnswer zero = a;
  zero.nodes[0].id = NodeId(0);
  CHECK_FALSE(decode_join_answer(encode_join_answer(zero)).is_ok());
  for (const char* bad : {"", "{}", "[]", "null", "{\"cluster_id\": 1}",
                          "{\"cluster_id\": -1, \"initial\": [], \"nodes\": []}"}) {
    CHECK_FALSE(decode_join_answer(bad).is_ok());
  }
  // An extra key, and a node with an extra field.
  std::string extra = encode_join_answer(a);
  CHECK_FALSE(decode_join_answer(extra.substr(0, extra.size() - 1) + ",\"x\":1}").is_ok());
  std::string field = encode_join_answer(a);
  field.insert(field.find("\"id\":4") + 7, ",\"x\":1");
  CHECK_FALSE(decode_join_answer(field).is_ok());
  // Every cut of a valid answer is refused.
  const std::string good = encode_join_answer(a);
  for (size_t n = 0; n < good.size(); ++n) {
    CHECK_FALSE(decode_join_answer(good.substr(0, n)).is_ok());
  }
}

TEST_CASE("node::ClusterFile: written durably, read back; a missing file is kNotFound") {
  std::string dir = (std::filesystem::temp_directory_path() /
                     ("raftd-cluster-test-" + std::to_string(::getpid())))
                        .string();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  CHECK(read_cluster_file(dir).status().code() == Code::kNotFound);
  REQUIRE(write_cluster_file(dir, sample()).is_ok());
  auto r = read_cluster_file(dir);
  REQUIRE(r.is_ok());
  CHECK(r.value() == sample());
  CHECK_FALSE(std::filesystem::exists(dir + "/cluster.tmp"));
  std::filesystem::remove_all(dir);
}

namespace {

ClusterFile members(size_t n, uint64_t self) {
  std::vector<NodeInfo> m;
  for (uint64_t i = 1; i <= n; ++i) {
    m.push_back({NodeId(i), "127.0.0.1:" + std::to_string(7000 + i), "127.0.0.1:1"});
  }
  return ClusterFile{cluster_id_of(m), NodeId(self), m};
}

}  // namespace

TEST_CASE("node::ClusterCheck: fails once the members that did not refuse are short of a quorum") {
  SUBCASE("3 members: both peers of another cluster") {
    ClusterFile c = members(3, 3);
    ClusterCheck k;
    CHECK_FALSE(k.refused(c, NodeId(1), 11));
    CHECK_FALSE(k.refused(c, NodeId(1), 11));  // the same peer again counts once
    CHECK_FALSE(k.failed());
    CHECK(k.refused(c, NodeId(2), 12));
    REQUIRE(k.failed());
    CHECK(k.verdict().code() == Code::kInvalidArgument);
    const std::string& msg = k.verdict().message();
    CHECK(msg.find("node 3 is in cluster " + std::to_string(c.cluster_id)) != std::string::npos);
    CHECK(msg.find("node 1 at 127.0.0.1:7001 is in cluster 11") != std::string::npos);
    CHECK(msg.find("node 2 at 127.0.0.1:7002 is in cluster 12") != std::string::npos);
    CHECK_FALSE(k.refused(c, NodeId(2), 12));  // reported once
  }
  SUBCASE("3 members: one odd peer does not stop the majority side") {
    ClusterFile c = members(3, 1);
    ClusterCheck k;
    CHECK_FALSE(k.refused(c, NodeId(3), 99));
    CHECK_FALSE(k.failed());
  }
  SUBCASE("4 members: two refusals leave two, short of a quorum of three") {
    ClusterFile c = members(4, 3);
    ClusterCheck k;
    CHECK_FALSE(k.refused(c, NodeId(1), 11));
    CHECK(k.refused(c, NodeId(2), 11));
  }
  SUBCASE("after hearing from its cluster, refusals change nothing") {
    ClusterFile c = members(3, 3);
    ClusterCheck k;
    k.heard_from_cluster();
    CHECK_FALSE(k.refused(c, NodeId(1), 11));
    CHECK_FALSE(k.refused(c, NodeId(2), 11));
    CHECK_FALSE(k.failed());
  }
  SUBCASE("not a member, itself, or its own cluster id: ignored") {
    ClusterFile c = members(3, 3);
    ClusterCheck k;
    CHECK_FALSE(k.refused(c, NodeId(9), 11));
    CHECK_FALSE(k.refused(c, NodeId(3), 11));
    CHECK_FALSE(k.refused(c, NodeId(1), c.cluster_id));
    CHECK_FALSE(k.refused(c, NodeId(2), 11));
    CHECK_FALSE(k.failed());
  }
}
