// Random register histories for testing and benchmarking the linearizability checker.
//
// generate_history() runs `processes` clients against a simulated atomic register per key:
// each operation is invoked, takes effect at one instant (its linearization point), and then
// completes, with the three steps of different operations interleaved at random. The result is
// linearizable by construction. Some operations end as info (the client lost the response,
// before or after the effect) or fail (a cas whose compare failed, or a request that never ran).
//
// add_stale_read() then breaks it: one ok read is made to return a value that was overwritten
// before the read began (by a write that itself began after the stale value's write
// completed), which no linearization can explain.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "lincheck.h"

namespace raftd::lincheck {

struct GenOptions {
  uint64_t seed = 1;
  size_t ops = 1000;
  int processes = 10;
  int keys = 1;
  uint32_t info_per_million = 10'000;  // chance that an operation's response is lost
  uint32_t fail_per_million = 10'000;  // chance that a request is refused before it runs
};

std::vector<Event> generate_history(const GenOptions& options);

// Returns false if the history has no read that can be made stale. `seed` picks the read; the
// latest candidates are preferred, which is the checker's worst case (it must rule out every
// ordering of everything before).
bool add_stale_read(std::vector<Event>& events, uint64_t seed);

}  // namespace raftd::lincheck
