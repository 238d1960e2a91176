// Kernel probe: what io_uring offers on this machine, and what to tell the operator when
// something the reactor needs is missing.
#include "raftd/io/probe.h"

#include <fmt/format.h>
#include <liburing.h>
#include <sys/utsname.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace raftd::io {

namespace {

struct RequiredOp {
  int op;
  const char* name;
};

// Every opcode the reactor or its users (http: connect deadlines via linked timeouts) issue.
constexpr RequiredOp kRequiredOps[] = {
    {IORING_OP_ACCEPT, "ACCEPT"},
    {IORING_OP_RECV, "RECV"},
    {IORING_OP_SEND, "SEND"},
    {IORING_OP_SENDMSG, "SENDMSG"},
    {IORING_OP_CONNECT, "CONNECT"},
    {IORING_OP_READ, "READ"},
    {IORING_OP_WRITE, "WRITE"},
    {IORING_OP_FSYNC, "FSYNC"},
    {IORING_OP_TIMEOUT, "TIMEOUT"},
    {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"},
    {IORING_OP_LINK_TIMEOUT, "LINK_TIMEOUT"},
};

constexpr unsigned kProbeRingEntries = 4;
constexpr unsigned kProbeBufRingEntries = 8;
constexpr unsigned kPageBytes = 4096;

void parse_release(KernelProbe& p) {
  int major = 0;
  int minor = 0;
  if (std::sscanf(p.release.c_str(), "%d.%d", &major, &minor) == 2) {
    p.major = major;
    p.minor = minor;
  }
}

int read_io_uring_disabled() {
  std::ifstream in("/proc/sys/kernel/io_uring_disabled");
  int v = -1;
  if (in >> v) return v;
  return -1;
}

void probe_ops(io_uring* ring, KernelProbe& p) {
  io_uring_probe* probe = io_uring_get_probe_ring(ring);
  for (const RequiredOp& op : kRequiredOps) {
    if (probe == nullptr || !io_uring_opcode_supported(probe, op.op)) {
      p.missing_ops.emplace_back(op.name);
    }
  }
  if (probe != nullptr) io_uring_free_probe(probe);
}

bool probe_buf_ring(io_uring* ring) {
  void* mem = nullptr;
  if (posix_memalign(&mem, kPageBytes, kPageBytes) != 0) return false;
  std::memset(mem, 0, kPageBytes);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(mem);
  reg.ring_entries = kProbeBufRingEntries;
  reg.bgid = 0;
  const bool ok = io_uring_register_buf_ring(ring, &reg, 0) == 0;
  if (ok) (void)io_uring_unregister_buf_ring(ring, 0);
  std::free(mem);
  return ok;
}

bool older_than(const KernelProbe& p, int major, int minor) {
  if (p.major == 0) return false;  // unknown version: let the feature checks speak
  return p.major < major || (p.major == major && p.minor < minor);
}

std::string setup_failure_message(const KernelProbe& p) {
  const std::string err = fmt::format("{} ({})", std::strerror(p.setup_errno),
                                      p.setup_errno == ENOSYS   ? "ENOSYS"
                                      : p.setup_errno == EPERM  ? "EPERM"
                                      : p.setup_errno == ENOMEM ? "ENOMEM"
                                                                : "errno");
  switch (p.setup_errno) {
    case ENOSYS:
      return fmt::format(
          "io_uring_setup failed: {}: kernel {} has no io_uring (CONFIG_IO_URING off) or a "
          "seccomp filter (container runtime default profile) blocks it; fix: run on Linux >= "
          "{}.{} with io_uring, and allow the syscalls io_uring_setup, io_uring_enter and "
          "io_uring_register in the seccomp profile",
          err, p.release, kMinKernelMajor, kMinKernelMinor);
    case EPERM:
      return fmt::format(
          "io_uring_setup failed: {}: io_uring is disabled for this process "
          "(sysctl kernel.io_uring_disabled = {}); fix: `sysctl -w kernel.io_uring_disabled=0`, "
          "or set it to 1 and add raftd's user to the group in kernel.io_uring_group; if the "
          "sysctl is already 0, a seccomp filter or LSM policy denies io_uring: allow "
          "io_uring_setup, io_uring_enter and io_uring_register",
          err,
          p.io_uring_disabled < 0 ? std::string("absent") : std::to_string(p.io_uring_disabled));
    case ENOMEM:
      return fmt::format(
          "io_uring_setup failed: {}: on kernels before 5.12 rings are charged to "
          "RLIMIT_MEMLOCK; fix: raise it (ulimit -l, systemd LimitMEMLOCK=) or run on Linux >= "
          "{}.{}",
          err, kMinKernelMajor, kMinKernelMinor);
    default: return fmt::format("io_uring_setup failed: {}", err);
  }
}

}  // namespace

std::vector<std::string_view> required_op_names() {
  std::vector<std::string_view> names;
  for (const RequiredOp& op : kRequiredOps) names.emplace_back(op.name);
  return names;
}

KernelProbe probe_kernel_features() {
  KernelProbe p;
  utsname u{};
  if (uname(&u) == 0) p.release = u.release;
  parse_release(p);
  p.io_uring_disabled = read_io_uring_disabled();

  io_uring ring{};
  io_uring_params params{};
  if (int r = io_uring_queue_init_params(kProbeRingEntries, &ring, &params); r < 0) {
    p.setup_errno = -r;
    return p;
  }
  p.feat_nodrop = (params.features & IORING_FEAT_NODROP) != 0;
  p.feat_ext_arg = (params.features & IORING_FEAT_EXT_ARG) != 0;
  probe_ops(&ring, p);
  io_uring_queue_exit(&ring);

  io_uring_params fp{};
  fp.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  if (int r = io_uring_queue_init_params(kProbeRingEntries, &ring, &fp); r < 0) {
    p.flags_errno = -r;
    return p;
  }
  p.buf_ring_ok = probe_buf_ring(&ring);
  io_uring_queue_exit(&ring);
  return p;
}

Status check_kernel(const KernelProbe& p) {
  if (p.setup_errno != 0) {
    return Status(Code::kUnsupported, "io_uring reactor cannot start: " + setup_failure_message(p));
  }
  std::vector<std::string> problems;
  const std::string need = fmt::format("Linux >= {}.{}", kMinKernelMajor, kMinKernelMinor);
  if (older_than(p, kMinKernelMajor, kMinKernelMinor)) {
    problems.push_back(fmt::format(
        "kernel {} is too old: IORING_SETUP_DEFER_TASKRUN needs 6.1 and multishot recv with "
        "provided buffers needs 6.0; fix: upgrade to {}",
        p.release, need));
  }
  if (p.flags_errno != 0) {
    problems.push_back(fmt::format(
        "io_uring_setup(IORING_SETUP_SINGLE_ISSUER|IORING_SETUP_DEFER_TASKRUN) failed: {}; "
        "fix: upgrade to {}",
        std::strerror(p.flags_errno), need));
  }
  if (!p.feat_nodrop) problems.push_back("IORING_FEAT_NODROP is missing (Linux >= 5.5)");
  if (!p.feat_ext_arg) problems.push_back("IORING_FEAT_EXT_ARG is missing (Linux >= 5.11)");
  if (!p.missing_ops.empty()) {
    std::string ops;
    for (const std::string& op : p.missing_ops) ops += (ops.empty() ? "" : ", ") + op;
    problems.push_back(
        fmt::format("io_uring opcodes not supported: {}; fix: upgrade to {}", ops, need));
  }
  if (p.flags_errno == 0 && !p.buf_ring_ok) {
    problems.push_back(fmt::format(
        "provided-buffer rings (IORING_REGISTER_PBUF_RING, Linux >= 5.19) are unavailable; "
        "fix: upgrade to {}",
        need));
  }
  if (problems.empty()) return Status::ok();
  std::string msg = fmt::format("io_uring reactor cannot start on kernel {}: ", p.release);
  for (size_t i = 0; i < problems.size(); ++i) msg += (i == 0 ? "" : "; ") + problems[i];
  return Status(Code::kUnsupported, msg);
}

Status probe_kernel() { return check_kernel(probe_kernel_features()); }

}  // namespace raftd::io
