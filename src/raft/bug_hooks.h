// Internal: RAFTD_BUG(kName) is true when the simulator selected that mutation (raft_sim_dep
// only); in the daemon's build it is the constant false and the buggy branches compile away.
#pragma once

#if defined(RAFTD_SIM_BUGS) && RAFTD_SIM_BUGS
#include "raftd/raft/bugs.h"
#define RAFTD_BUG(name) (::raftd::raft::sim_bug() == ::raftd::raft::Bug::name)
#else
#define RAFTD_BUG(name) false
#endif
