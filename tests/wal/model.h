// A model of what the WAL must hold, for crash tests: per group the log (index -> term; entry
// payloads are a function of (group, index, term)), hard state and compaction mark, both as
// staged and as last reported durable. Each test turn is one batch, so after a crash every
// group must match either its durable state or (torn last batch) its staged state, component
// by component.
#pragma once

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "harness.h"

namespace raftd::wal::testing {

// Deterministic payload of an entry: (group, index, term) identify a Raft entry.
inline std::string payload_of(uint64_t g, uint64_t i, uint64_t t, size_t max_len) {
  std::string s = fmt::format("g{}i{}t{}|", g, i, t);
  size_t len = (g * 7919 + i * 104729 + t * 1299709) % (max_len + 1);
  while (s.size() < len) s.push_back(char('a' + (s.size() + g + i) % 26));
  return s;
}

struct GroupModel {
  std::map<uint64_t, uint64_t> log;  // index -> term (never shortened by compaction)
  HardState hard;
  SnapshotMark mark;
  bool operator==(const GroupModel&) const = default;
  uint64_t last_index() const { return log.empty() ? mark.index.value() : log.rbegin()->first; }
  uint64_t last_term() const { return log.empty() ? mark.term.value() : log.rbegin()->second; }
};

class Model {
 public:
  explicit Model(size_t max_payload) : max_payload_(max_payload) {}

  // Stages random operations for `groups` random groups of [1, group_count] on the WAL and the
  // model. Per group at most one of append/truncate, then maybe a hard state, then maybe a
  // compaction, so each group's records form one section (all-or-prefix on a torn batch).
  void stage_turn(Wal& wal, std::mt19937_64& rng, uint64_t group_count, int groups) {
    std::set<uint64_t> picked;
    for (int k = 0; k < groups; ++k) picked.insert(1 + rng() % group_count);
    for (uint64_t g : picked) stage_group(wal, rng, g);
  }

  void stage_group(Wal& wal, std::mt19937_64& rng, uint64_t g) {
    GroupModel& m = staged_[g];
    uint64_t op = rng() % 10;
    if (op < 6) {
      stage_append(wal, rng, g, m);
    } else if (op < 7 && m.last_index() > m.mark.index.value()) {
      uint64_t from = m.mark.index.value() + 1 + rng() % (m.last_index() - m.mark.index.value());
      REQUIRE(wal.truncate(GroupId(g), LogIndex(from)).is_ok());
      m.log.erase(m.log.lower_bound(from), m.log.end());
    }
    if (rng() % 2 == 0) {
      HardState hs{Term(std::max(m.hard.term.value(), m.last_term())) + rng() % 2,
                   NodeId(rng() % 4), LogIndex(m.last_index())};
      REQUIRE(wal.set_hard_state(GroupId(g), hs).is_ok());
      m.hard = hs;
    }
    if (rng() % 4 == 0 && m.last_index() > m.mark.index.value()) {
      uint64_t idx = m.mark.index.value() + 1 + rng() % (m.last_index() - m.mark.index.value());
      SnapshotMark mk{LogIndex(idx), Term(m.log.at(idx))};
      REQUIRE(wal.compact(GroupId(g), mk.index, mk.term).is_ok());
      m.mark = mk;
    }
  }

  void stage_append(Wal& wal, std::mt19937_64& rng, uint64_t g, GroupModel& m) {
    uint64_t last = m.last_index();
    uint64_t lo = m.mark.index.value() + 1;
    // Mostly append at the end; sometimes overwrite a suffix with a new, higher term.
    uint64_t first = (rng() % 5 == 0 && last >= lo) ? lo + rng() % (last - lo + 1) : last + 1;
    uint64_t max_term = std::max(m.hard.term.value(), m.last_term());
    for (const auto& [i, t] : m.log) max_term = std::max(max_term, t);
    uint64_t term = first <= last ? max_term + 1 : std::max<uint64_t>(1, m.last_term());
    size_t n = 1 + rng() % 4;
    std::vector<std::string> datas;
    std::vector<std::vector<std::byte>> bytes;
    for (size_t k = 0; k < n; ++k) {
      datas.push_back(payload_of(g, first + k, term, max_payload_));
      bytes.push_back(bytes_of(datas.back()));
    }
    std::vector<EntryView> views;
    for (auto& b : bytes) views.push_back(EntryView{Term(term), 0, b});
    REQUIRE(wal.append(GroupId(g), LogIndex(first), views).is_ok());
    m.log.erase(m.log.lower_bound(first), m.log.end());
    for (size_t k = 0; k < n; ++k) m.log[first + k] = term;
  }

  // Every group compacts to its last entry (an application snapshot of everything).
  void compact_all(Wal& wal) {
    for (auto& [g, m] : staged_) {
      if (m.last_index() <= m.mark.index.value()) continue;
      SnapshotMark mk{LogIndex(m.last_index()), Term(m.last_term())};
      REQUIRE(wal.compact(GroupId(g), mk.index, mk.term).is_ok());
      m.mark = mk;
    }
  }

  // The turn's batch was reported durable.
  void commit_turn() { durable_ = staged_; }
  // The state after recovery becomes both views (what the WAL now holds).
  void reset_to(const std::map<uint64_t, GroupModel>& recovered) {
    staged_ = recovered;
    durable_ = recovered;
  }

  // Compares the reopened WAL with the model. exact: the last batch cannot be partly there.
  // Returns the recovered models (for reset_to).
  std::map<uint64_t, GroupModel> check(Wal& wal, bool exact, const std::string& context) const {
    std::map<uint64_t, GroupModel> recovered;
    std::set<uint64_t> ids;
    for (const auto& [g, m] : staged_) ids.insert(g);
    for (const auto& [g, m] : durable_) ids.insert(g);
    for (GroupId g : wal.groups()) {
      INFO(context);
      CHECK_MESSAGE(ids.count(g.value()) == 1, "recovered an unknown group ", g.value());
    }
    for (uint64_t g : ids) recovered[g] = check_group(wal, g, exact, context);
    return recovered;
  }

 private:
  GroupModel read_back(Wal& wal, uint64_t g, const std::string& context) const {
    GroupModel r;
    auto info = wal.group(GroupId(g));
    if (!info) return r;
    r.hard = info->hard;
    r.mark = info->mark;
    if (info->last_index > info->mark.index) {
      auto entries = wal.read(GroupId(g), info->mark.index + 1, info->last_index + 1, UINT64_MAX);
      INFO(context, " group ", g);
      REQUIRE_MESSAGE(entries.is_ok(), entries.status().to_string());
      for (const Entry& e : *entries) {
        CHECK(e.data == payload_of(g, e.index.value(), e.term.value(), max_payload_));
        r.log[e.index.value()] = e.term.value();
      }
    }
    return r;
  }

  static std::map<uint64_t, uint64_t> above(const std::map<uint64_t, uint64_t>& log,
                                            uint64_t mark) {
    return {log.upper_bound(mark), log.end()};
  }

  GroupModel check_group(Wal& wal, uint64_t g, bool exact, const std::string& context) const {
    GroupModel r = read_back(wal, g, context);
    auto get = [](const std::map<uint64_t, GroupModel>& m, uint64_t id) {
      auto it = m.find(id);
      return it == m.end() ? GroupModel{} : it->second;
    };
    GroupModel old_m = get(durable_, g);
    GroupModel new_m = get(staged_, g);
    INFO(context, " group ", g, " recovered last ", r.last_index(), " mark ", r.mark.index.value(),
         " durable last ", old_m.last_index(), " staged last ", new_m.last_index());
    uint64_t mk = r.mark.index.value();
    bool log_old = above(old_m.log, mk) == r.log && old_m.last_index() == r.last_index();
    bool log_new = above(new_m.log, mk) == r.log && new_m.last_index() == r.last_index();
    if (exact) {
      CHECK(log_old);
      CHECK(r.hard == old_m.hard);
      CHECK(r.mark == old_m.mark);
    } else {
      CHECK((log_old || log_new));
      CHECK((r.hard == old_m.hard || r.hard == new_m.hard));
      CHECK((r.mark == old_m.mark || r.mark == new_m.mark));
    }
    return r;
  }

  size_t max_payload_;
  std::map<uint64_t, GroupModel> staged_;
  std::map<uint64_t, GroupModel> durable_;
};

}  // namespace raftd::wal::testing
