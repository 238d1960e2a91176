#include "raftd/node/idempotency.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

using namespace raftd;
using namespace raftd::node;

namespace {

const GroupId kG(7);

std::string temp_dir() {
  std::string t = "/tmp/raftd-idem-XXXXXX";
  REQUIRE(::mkdtemp(t.data()) != nullptr);
  return t;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("node::KeyTable: a key is found at the index of its entry until the log is cut there") {
  KeyTable t(100);
  t.note(kG, LogIndex(5), "a");
  t.note(kG, LogIndex(6), "b");
  REQUIRE(t.find(kG, "a") != nullptr);
  CHECK(t.find(kG, "a")->index == LogIndex(5));
  CHECK(t.find(GroupId(8), "a") == nullptr);
  CHECK(t.key_at(kG, LogIndex(6)) == std::optional<std::string_view>("b"));
  // A key already in the log keeps its first index.
  t.note(kG, LogIndex(9), "a");
  CHECK(t.find(kG, "a")->index == LogIndex(5));
  // The log is cut at 6 (a new leader's entries replace it): b is gone, a stays.
  t.cut(kG, LogIndex(6));
  CHECK(t.find(kG, "b") == nullptr);
  CHECK(t.find(kG, "a") != nullptr);
  t.note(kG, LogIndex(6), "c");
  CHECK(t.key_at(kG, LogIndex(6)) == std::optional<std::string_view>("c"));
  CHECK(t.key_count() == 2);
}

TEST_CASE("node::KeyTable: results, and trimming never forgets a key above the applied index") {
  KeyTable t(2);
  for (uint64_t i = 1; i <= 5; ++i) t.note(kG, LogIndex(i), "k" + std::to_string(i));
  CHECK(t.set_result(kG, LogIndex(1), "r1"));
  CHECK_FALSE(t.set_result(kG, LogIndex(9), "r9"));
  CHECK(*t.find(kG, "k1")->result == "r1");
  CHECK(t.bytes() == 5 * 2 + 2);
  t.trim(kG, LogIndex(2));  // only 1 and 2 may go, and only down to 2 keys
  CHECK(t.key_count() == 3);
  CHECK(t.find(kG, "k1") == nullptr);
  CHECK(t.find(kG, "k2") == nullptr);
  t.trim(kG, LogIndex(5));
  CHECK(t.key_count() == 2);
  CHECK(t.find(kG, "k4") != nullptr);
  CHECK(t.bytes() == 4);
  t.drop_group(kG);
  CHECK(t.key_count() == 0);
  CHECK(t.bytes() == 0);
}

TEST_CASE("node::ResultsJournal: records round-trip; decoding stops at the first damaged record") {
  std::string bytes = encode_journal_key(kG, LogIndex(3), "k3", std::string("res\0ult", 7));
  bytes += encode_journal_key(kG, LogIndex(4), "k4", std::nullopt);
  bytes += encode_journal_watermark(kG, LogIndex(10));
  bytes += encode_journal_key(GroupId(9), LogIndex(2), "x", std::string());
  JournalState st = ResultsJournal::decode(bytes);
  CHECK(st.valid_bytes == bytes.size());
  CHECK(st.ignored_bytes == 0);
  REQUIRE(st.keys[kG].size() == 2);
  CHECK(st.keys[kG][0].key == "k3");
  CHECK(*st.keys[kG][0].result == std::string("res\0ult", 7));
  CHECK_FALSE(st.keys[kG][1].result.has_value());
  CHECK(st.watermark[kG] == LogIndex(10));
  CHECK(st.watermark[GroupId(9)] == LogIndex(2));
  CHECK(*st.keys[GroupId(9)][0].result == "");

  // Every single-byte change and every truncation ends the valid prefix at or before the record
  // it touches: nothing after damage is used.
  const size_t first = encode_journal_key(kG, LogIndex(3), "k3", std::string("res\0ult", 7)).size();
  for (size_t at = 0; at < bytes.size(); ++at) {
    std::string bad = bytes;
    bad[at] = static_cast<char>(bad[at] ^ 0x5a);
    JournalState d = ResultsJournal::decode(bad);
    CHECK(d.valid_bytes <= at);
    CHECK(d.valid_bytes + d.ignored_bytes == bad.size());
    if (at < first) CHECK(d.keys.empty());
  }
  for (size_t n = 0; n < bytes.size(); ++n) {
    JournalState d = ResultsJournal::decode(std::string_view(bytes).substr(0, n));
    CHECK(d.valid_bytes <= n);
  }
}

TEST_CASE("node::ResultsJournal: a rewrite keeps what is retained up to each watermark") {
  const std::string dir = temp_dir();
  const std::string path = dir + "/idempotency";
  KeyTable t(100);
  t.note(kG, LogIndex(3), "a");
  t.set_result(kG, LogIndex(3), "ra");
  t.note(kG, LogIndex(8), "b");   // applied, result not known here
  t.note(kG, LogIndex(20), "c");  // above the watermark: not journaled yet
  Watermarks marks{{kG, LogIndex(10)}};
  {
    ResultsJournal j(path);
    REQUIRE(j.rewrite(t, marks).is_ok());
    j.add_key(kG, LogIndex(20), "c", std::string("rc"));
    j.add_watermark(kG, LogIndex(25));
    j.flush();
    CHECK(j.file_bytes() == read_all(path).size());
  }
  auto st = ResultsJournal::load(path);
  REQUIRE(st.is_ok());
  CHECK(st->ignored_bytes == 0);
  REQUIRE(st->keys[kG].size() == 3);
  CHECK(st->keys[kG][0].key == "a");
  CHECK(*st->keys[kG][0].result == "ra");
  CHECK(st->keys[kG][1].key == "b");
  CHECK_FALSE(st->keys[kG][1].result.has_value());
  CHECK(st->keys[kG][2].key == "c");
  CHECK(st->watermark[kG] == LogIndex(25));
  // A torn tail (a record half written) is ignored; what precedes it loads.
  {
    std::ofstream out(path, std::ios::binary | std::ios::app);
    std::string rec = encode_journal_key(kG, LogIndex(30), "d", std::string("rd"));
    out.write(rec.data(), static_cast<std::streamsize>(rec.size() / 2));
  }
  st = ResultsJournal::load(path);
  REQUIRE(st.is_ok());
  CHECK(st->keys[kG].size() == 3);
  CHECK(st->ignored_bytes > 0);
  CHECK(st->watermark[kG] == LogIndex(25));
  auto missing = ResultsJournal::load(dir + "/none");
  REQUIRE(missing.is_ok());
  CHECK(missing->keys.empty());
  std::system(("rm -rf " + dir).c_str());
}

TEST_CASE("node::ResultsJournal: a rewrite's bytes do not depend on the watermarks' order") {
  const std::string dir = temp_dir();
  KeyTable t(100);
  std::vector<GroupId> groups;
  for (uint64_t g = 1; g <= 40; ++g) {
    groups.push_back(GroupId(g * 7919 % 1000 + 1));
    t.note(groups.back(), LogIndex(2), "k" + std::to_string(g));
    t.set_result(groups.back(), LogIndex(2), "r" + std::to_string(g));
  }
  auto rewrite = [&](const std::vector<GroupId>& order, const std::string& name) {
    Watermarks marks;
    for (GroupId g : order) marks[g] = LogIndex(5);
    ResultsJournal j(dir + "/" + name);
    REQUIRE(j.rewrite(t, marks).is_ok());
    return read_all(dir + "/" + name);
  };
  const std::string forward = rewrite(groups, "forward");
  std::vector<GroupId> reversed(groups.rbegin(), groups.rend());
  CHECK(rewrite(reversed, "reversed") == forward);
  // Groups in increasing order: each group's key record comes before the next group's.
  auto st = ResultsJournal::load(dir + "/forward");
  REQUIRE(st.is_ok());
  CHECK(st->keys.size() == groups.size());
  CHECK(st->watermark.size() == groups.size());
  std::vector<GroupId> sorted = groups;
  std::sort(sorted.begin(), sorted.end());
  size_t at = 0;
  for (GroupId g : sorted) {
    const size_t found = forward.find(encode_journal_watermark(g, LogIndex(5)));
    REQUIRE(found != std::string::npos);
    CHECK(found >= at);
    at = found;
  }
  std::system(("rm -rf " + dir).c_str());
}
