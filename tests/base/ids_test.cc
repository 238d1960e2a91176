#include "raftd/base/ids.h"

#include <doctest/doctest.h>

#include <type_traits>
#include <unordered_set>

TEST_CASE("base::ids: terms and indexes are distinct types") {
  static_assert(!std::is_convertible_v<raftd::Term, raftd::LogIndex>);
  static_assert(!std::is_convertible_v<uint64_t, raftd::Term>);
  raftd::LogIndex i(5);
  CHECK((i + 3).value() == 8);
  CHECK((raftd::LogIndex(9) - i) == 4);
  CHECK(raftd::Term(2) < raftd::Term(3));
  ++i;
  CHECK(i == raftd::LogIndex(6));
  std::unordered_set<raftd::GroupId> s{raftd::GroupId(1), raftd::GroupId(1), raftd::GroupId(2)};
  CHECK(s.size() == 2);
}
