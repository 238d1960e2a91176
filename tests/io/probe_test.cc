#include "raftd/io/probe.h"

#include <doctest/doctest.h>

#include <cerrno>
#include <string>

#include "io_test_util.h"

namespace raftd::io {
namespace {

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

KernelProbe good_probe() {
  KernelProbe p;
  p.release = "6.18.44";
  p.major = 6;
  p.minor = 18;
  p.io_uring_disabled = 0;
  p.feat_nodrop = true;
  p.feat_ext_arg = true;
  p.buf_ring_ok = true;
  return p;
}

TEST_CASE("io::probe: this kernel has everything and create() succeeds") {
  const KernelProbe p = probe_kernel_features();
  const Status s = check_kernel(p);
  if (s.code() == Code::kUnsupported) testing::skip(s.to_string());
  CHECK(s.is_ok());
  CHECK(p.missing_ops.empty());
  CHECK(p.major >= kMinKernelMajor);
  auto r = Reactor::create(testing::small_options());
  REQUIRE(r.is_ok());
  CHECK(r.value()->sq_entries() == 64);
  CHECK(r.value()->cq_entries() == 64 * Reactor::kCqPerSq);
  CHECK(r.value()->active_ops() == 0);
}

TEST_CASE("io::check_kernel: a complete probe passes") {
  CHECK(check_kernel(good_probe()).is_ok());
}

TEST_CASE("io::check_kernel: io_uring blocked by seccomp or missing (ENOSYS)") {
  KernelProbe p = good_probe();
  p.setup_errno = ENOSYS;
  const Status s = check_kernel(p);
  REQUIRE(s.code() == Code::kUnsupported);
  CHECK(contains(s.message(), "ENOSYS"));
  CHECK(contains(s.message(), "seccomp"));
  CHECK(contains(s.message(), "io_uring_setup, io_uring_enter and io_uring_register"));
}

TEST_CASE("io::check_kernel: io_uring disabled by sysctl (EPERM) names the sysctl and its value") {
  KernelProbe p = good_probe();
  p.setup_errno = EPERM;
  p.io_uring_disabled = 2;
  const Status s = check_kernel(p);
  REQUIRE(s.code() == Code::kUnsupported);
  CHECK(contains(s.message(), "EPERM"));
  CHECK(contains(s.message(), "kernel.io_uring_disabled = 2"));
  CHECK(contains(s.message(), "sysctl -w kernel.io_uring_disabled=0"));
}

TEST_CASE("io::check_kernel: an old kernel gets every missing piece in one message") {
  KernelProbe p = good_probe();
  p.release = "5.15.0";
  p.major = 5;
  p.minor = 15;
  p.flags_errno = EINVAL;
  p.buf_ring_ok = false;  // not reported: the flags failure already hid this check
  p.missing_ops = {"SENDMSG", "LINK_TIMEOUT"};
  const Status s = check_kernel(p);
  REQUIRE(s.code() == Code::kUnsupported);
  CHECK(contains(s.message(), "kernel 5.15.0 is too old"));
  CHECK(contains(s.message(), "IORING_SETUP_SINGLE_ISSUER|IORING_SETUP_DEFER_TASKRUN"));
  CHECK(contains(s.message(), "opcodes not supported: SENDMSG, LINK_TIMEOUT"));
  CHECK(contains(s.message(), "Linux >= 6.1"));
  CHECK_FALSE(contains(s.message(), "PBUF_RING"));
}

TEST_CASE("io::check_kernel: missing features and buffer rings are reported") {
  KernelProbe p = good_probe();
  p.feat_ext_arg = false;
  p.buf_ring_ok = false;
  const Status s = check_kernel(p);
  REQUIRE(s.code() == Code::kUnsupported);
  CHECK(contains(s.message(), "IORING_FEAT_EXT_ARG"));
  CHECK(contains(s.message(), "IORING_REGISTER_PBUF_RING"));
  CHECK_FALSE(contains(s.message(), "NODROP"));
}

TEST_CASE("io::Reactor::create: bad options are rejected before touching the kernel") {
  ReactorOptions o = testing::small_options();
  o.recv_buffer_count = 100;  // not a power of two
  auto r = Reactor::create(o);
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().code() == Code::kInvalidArgument);
  CHECK(contains(r.status().message(), "power of two"));
  o = testing::small_options();
  o.sq_entries = 1;  // a linked write->fdatasync could never be submitted
  CHECK(Reactor::create(o).status().code() == Code::kInvalidArgument);
  o = testing::small_options();
  o.recv_buffer_bytes = 0;
  CHECK(Reactor::create(o).status().code() == Code::kInvalidArgument);
}

}  // namespace
}  // namespace raftd::io
