// Internal: applying a ConfChange to a ConfState (simple change, enter joint, leave joint).
#pragma once

#include "raftd/raft/types.h"

namespace raftd::raft {

// The configuration after `cc`, or kInvalidArgument when `cc` is not valid on top of `cs`
// (entering a joint configuration twice, leaving one that is not joint, removing every voter, a
// simple change that alters more than one voter, ...). Deterministic: every replica computes the
// same answer from the same inputs, so an invalid change is ignored identically everywhere.
Result<ConfState> apply_conf_change(const ConfState& cs, const ConfChange& cc);

// Every node named in `cs` (voters of both halves, learners, learners_next), sorted, unique.
std::vector<NodeId> all_members(const ConfState& cs);

// `cs` with learners (and learners_next) counted as voters of the incoming half. Used only by the
// simulator's learner_in_quorum mutation (raftd/raft/bugs.h).
ConfState learners_as_voters(const ConfState& cs);

// Sorted, duplicate-free lists; no node both voter and learner; learners_next only when joint.
Status validate_conf_state(const ConfState& cs);

}  // namespace raftd::raft
