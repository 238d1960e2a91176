// RAFTD_ASSERT: programmer errors. Always on, in every build type: a broken invariant in a
// consensus system must stop the process before it writes or sends anything wrong.
#pragma once

namespace raftd::base {

[[noreturn]] void assert_failed(const char* expr, const char* file, int line, const char* msg);

}  // namespace raftd::base

#define RAFTD_ASSERT(cond, msg)                                       \
  do {                                                                \
    if (__builtin_expect(!(cond), 0)) {                               \
      ::raftd::base::assert_failed(#cond, __FILE__, __LINE__, (msg)); \
    }                                                                 \
  } while (0)
