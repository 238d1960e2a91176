// Membership changes: simple (one voter at a time) and joint consensus (thesis ch. 4; etcd's
// confchange package is the model for the joint rules, in particular learners_next: a voter of
// the outgoing half that is demoted becomes a learner only when the joint configuration is left,
// so no node is ever a voter and a learner at once).
#include "conf_change.h"

#include <fmt/format.h>

#include <algorithm>

namespace raftd::raft {
namespace {

void insert_sorted(std::vector<NodeId>* v, NodeId id) {
  auto it = std::lower_bound(v->begin(), v->end(), id);
  if (it == v->end() || *it != id) v->insert(it, id);
}

void erase(std::vector<NodeId>* v, NodeId id) {
  auto it = std::lower_bound(v->begin(), v->end(), id);
  if (it != v->end() && *it == id) v->erase(it);
}

bool has(const std::vector<NodeId>& v, NodeId id) {
  return std::binary_search(v.begin(), v.end(), id);
}

// Applies the items to the incoming voters and learners. `joint` selects where demoted outgoing
// voters go (learners_next) while the outgoing half still counts them.
void apply_items(ConfState* cs, const std::vector<ConfChangeItem>& items, bool joint) {
  for (const ConfChangeItem& item : items) {
    NodeId n = item.node;
    switch (item.type) {
      case ConfChangeType::kAddVoter:
        insert_sorted(&cs->voters, n);
        erase(&cs->learners, n);
        erase(&cs->learners_next, n);
        break;
      case ConfChangeType::kAddLearner:
        erase(&cs->voters, n);
        if (joint && has(cs->voters_outgoing, n)) {
          insert_sorted(&cs->learners_next, n);
        } else {
          insert_sorted(&cs->learners, n);
        }
        break;
      case ConfChangeType::kRemove:
        erase(&cs->voters, n);
        erase(&cs->learners, n);
        erase(&cs->learners_next, n);
        break;
    }
  }
}

size_t voter_difference(const std::vector<NodeId>& a, const std::vector<NodeId>& b) {
  size_t n = 0;
  for (NodeId x : a) n += has(b, x) ? 0 : 1;
  for (NodeId x : b) n += has(a, x) ? 0 : 1;
  return n;
}

Result<ConfState> leave_joint(const ConfState& cs) {
  if (!cs.joint()) return Status(Code::kInvalidArgument, "conf change: not in a joint config");
  ConfState out = cs;
  out.voters_outgoing.clear();
  for (NodeId n : out.learners_next) insert_sorted(&out.learners, n);
  out.learners_next.clear();
  out.auto_leave = false;
  return out;
}

}  // namespace

Result<ConfState> apply_conf_change(const ConfState& cs, const ConfChange& cc) {
  if (cc.leave_joint()) return leave_joint(cs);
  if (cs.joint()) {
    return Status(Code::kInvalidArgument, "conf change: already in a joint config; leave it first");
  }
  for (const ConfChangeItem& item : cc.changes) {
    if (item.node == kNoNode) return Status(Code::kInvalidArgument, "conf change: node 0");
  }
  ConfState simple = cs;
  apply_items(&simple, cc.changes, /*joint=*/false);
  bool is_simple =
      cc.transition == ConfTransition::kAuto && voter_difference(cs.voters, simple.voters) <= 1;
  ConfState out;
  if (is_simple) {
    out = simple;
  } else {
    out = cs;
    out.voters_outgoing = cs.voters;
    apply_items(&out, cc.changes, /*joint=*/true);
    out.auto_leave = cc.transition != ConfTransition::kJointExplicit;
  }
  if (out.voters.empty()) {
    return Status(Code::kInvalidArgument, "conf change: would remove every voter");
  }
  Status s = validate_conf_state(out);
  if (!s.is_ok()) return s;
  return out;
}

std::vector<NodeId> all_members(const ConfState& cs) {
  std::vector<NodeId> out;
  for (const auto* v : {&cs.voters, &cs.learners, &cs.voters_outgoing, &cs.learners_next}) {
    out.insert(out.end(), v->begin(), v->end());
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

ConfState learners_as_voters(const ConfState& cs) {
  ConfState out = cs;
  for (NodeId n : cs.learners) insert_sorted(&out.voters, n);
  for (NodeId n : cs.learners_next) insert_sorted(&out.voters, n);
  out.learners.clear();
  out.learners_next.clear();
  return out;
}

Status validate_conf_state(const ConfState& cs) {
  for (const auto* v : {&cs.voters, &cs.learners, &cs.voters_outgoing, &cs.learners_next}) {
    for (size_t i = 1; i < v->size(); ++i) {
      if (!((*v)[i - 1] < (*v)[i])) {
        return Status(Code::kCorruption, "conf state: list not sorted or has duplicates");
      }
    }
    if (has(*v, kNoNode)) return Status(Code::kCorruption, "conf state: node 0");
  }
  for (NodeId n : cs.learners) {
    if (has(cs.voters, n) || has(cs.voters_outgoing, n)) {
      return Status(Code::kCorruption,
                    fmt::format("conf state: {} is voter and learner", n.value()));
    }
  }
  if (!cs.joint() && (!cs.learners_next.empty() || cs.auto_leave)) {
    return Status(Code::kCorruption, "conf state: learners_next/auto_leave outside a joint config");
  }
  for (NodeId n : cs.learners_next) {
    if (!has(cs.voters_outgoing, n) || has(cs.voters, n)) {
      return Status(Code::kCorruption, "conf state: bad learners_next");
    }
  }
  return Status::ok();
}

}  // namespace raftd::raft
