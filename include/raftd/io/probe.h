// Kernel capability probe for the io_uring reactor.
//
// raftd needs io_uring with IORING_SETUP_SINGLE_ISSUER and IORING_SETUP_DEFER_TASKRUN (Linux
// 6.1), the features NODROP and EXT_ARG, multishot accept/recv with provided-buffer rings
// (Linux 6.0) and the opcodes listed in kRequiredOps. probe_kernel() gathers the facts (it sets
// up and tears down one small ring); check_kernel() turns them into a Status whose message
// names what is missing and how to fix it (sysctl, seccomp profile, kernel version). The two are
// separate so the messages can be unit-tested with made-up probe results.
//
// Threading: any thread; no shared state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "raftd/base/status.h"

namespace raftd::io {

// Minimum kernel for the ring flags the reactor requires (DEFER_TASKRUN arrived in 6.1; multishot
// recv with provided buffers in 6.0).
inline constexpr int kMinKernelMajor = 6;
inline constexpr int kMinKernelMinor = 1;

struct KernelProbe {
  std::string release;  // uname -r, e.g. "6.18.44"
  int major = 0;        // parsed from release; 0 when unparsable
  int minor = 0;
  int io_uring_disabled = -1;  // /proc/sys/kernel/io_uring_disabled; -1 if absent (kernel < 6.6)
  int setup_errno = 0;         // errno of a plain io_uring_setup; 0 = worked
  int flags_errno = 0;         // errno of setup with SINGLE_ISSUER|DEFER_TASKRUN; 0 = worked
  bool feat_nodrop = false;
  bool feat_ext_arg = false;
  bool buf_ring_ok = false;              // IORING_REGISTER_PBUF_RING worked
  std::vector<std::string> missing_ops;  // names from kRequiredOps the kernel lacks
};

// Opcode names the reactor uses (for messages): ACCEPT, RECV, SEND, SENDMSG, CONNECT, READ,
// WRITE, FSYNC, TIMEOUT, ASYNC_CANCEL, LINK_TIMEOUT.
std::vector<std::string_view> required_op_names();

// Gathers the facts about the running kernel. Never fails; failures are recorded in the result.
KernelProbe probe_kernel_features();
// OK when everything the reactor needs is there; otherwise kUnsupported with one actionable
// message covering every missing piece.
Status check_kernel(const KernelProbe& probe);
// probe_kernel_features() + check_kernel().
Status probe_kernel();

}  // namespace raftd::io
