// File I/O through the reactor: write, fdatasync and the linked write->fdatasync chain the WAL
// uses, including a forced short write and errors.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

#include "io_test_util.h"
#include "raftd/io/reactor.h"

namespace raftd::io {
namespace {

using testing::make_reactor;
using testing::run_until;

struct ShutdownGuard {
  Reactor& reactor;
  ~ShutdownGuard() { reactor.shutdown(); }
};

// A file in a fresh temporary directory, removed afterwards.
class TempFile {
 public:
  TempFile() {
    const char* base = std::getenv("TMPDIR");
    dir_ = std::string(base != nullptr ? base : "/tmp") + "/raftd-io-XXXXXX";
    REQUIRE(::mkdtemp(dir_.data()) != nullptr);
    path_ = dir_ + "/file";
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(fd_ >= 0);
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  std::string contents() const {
    std::string s(static_cast<size_t>(::lseek(fd_, 0, SEEK_END)), '\0');
    if (!s.empty()) REQUIRE(::pread(fd_, s.data(), s.size(), 0) == static_cast<ssize_t>(s.size()));
    return s;
  }

 private:
  std::string dir_, path_;
  int fd_ = -1;
};

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('A' + i % 23);
  return s;
}

// Lowers RLIMIT_FSIZE (soft) so writes past `bytes` are cut short; restores on destruction.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &old_) == 0);
    old_handler_ = ::signal(SIGXFSZ, SIG_IGN);  // else the process dies instead of a short write
    set(bytes);
  }
  ~FileSizeLimit() {
    restore();
    ::signal(SIGXFSZ, old_handler_);
  }
  void set(rlim_t bytes) {
    rlimit lim{bytes, old_.rlim_max};
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &lim) == 0);
  }
  void restore() { ::setrlimit(RLIMIT_FSIZE, &old_); }

 private:
  rlimit old_{};
  sighandler_t old_handler_ = SIG_DFL;
};

TEST_CASE("io::WriteSyncOp: write and fdatasync succeed as one chain") {
  auto r = make_reactor();
  TempFile f;
  const std::string data = pattern(10'000);
  int32_t res = 0;
  WriteSyncOp op([&](int32_t x) { res = x; });
  ShutdownGuard guard{*r};
  r->write_fdatasync(op, f.fd(), data.data(), data.size(), 0);
  REQUIRE(run_until(*r, [&] { return !op.active(); }));
  CHECK(res == static_cast<int32_t>(data.size()));
  CHECK(op.submissions() == 1);
  CHECK(f.contents() == data);
}

TEST_CASE("io::WriteSyncOp: a short write is finished and synced before success is reported") {
  auto r = make_reactor();
  TempFile f;
  const std::string data = pattern(16384);
  FileSizeLimit limit(8192);  // the first write stops at 8192 of 16384 bytes
  int32_t res = 0;
  bool raised = false;
  WriteSyncOp op([&](int32_t x) { res = x; });
  // Once the short write is seen (and the remainder queued), lift the limit so the retry can
  // complete: turn-end hooks run after the op handled its CQEs and before the next submit.
  r->add_turn_end_hook([&] {
    if (!raised && op.bytes_done() == 8192) {
      limit.restore();
      raised = true;
    }
  });
  ShutdownGuard guard{*r};
  r->write_fdatasync(op, f.fd(), data.data(), data.size(), 0);
  REQUIRE(run_until(*r, [&] { return !op.active(); }));
  CHECK(raised);
  CHECK(res == 16384);
  CHECK(op.submissions() == 2);  // write(8192 short)->sync cancelled, then write(rest)->sync
  CHECK(op.bytes_done() == 16384);
  CHECK(f.contents() == data);
}

TEST_CASE("io::WriteSyncOp: a short write whose retry fails reports the error, not success") {
  auto r = make_reactor();
  TempFile f;
  const std::string data = pattern(16384);
  FileSizeLimit limit(8192);
  int32_t res = 0;
  WriteSyncOp op([&](int32_t x) { res = x; });
  ShutdownGuard guard{*r};
  r->write_fdatasync(op, f.fd(), data.data(), data.size(), 0);
  REQUIRE(run_until(*r, [&] { return !op.active(); }));
  CHECK(res == -EFBIG);
  CHECK(op.bytes_done() == 8192);
  CHECK(op.submissions() == 2);
}

TEST_CASE("io::WriteOp: a short write is resubmitted; SyncOp syncs") {
  auto r = make_reactor();
  TempFile f;
  const std::string data = pattern(16384);
  FileSizeLimit limit(4096);
  int32_t wres = 0, sres = 1;
  bool raised = false;
  WriteOp write([&](int32_t x) { wres = x; });
  SyncOp sync([&](int32_t x) { sres = x; });
  r->add_turn_end_hook([&] {
    if (!raised && write.bytes_done() == 4096) {
      limit.restore();
      raised = true;
    }
  });
  ShutdownGuard guard{*r};
  r->write(write, f.fd(), data.data(), data.size(), 0);
  REQUIRE(run_until(*r, [&] { return !write.active(); }));
  CHECK(raised);
  CHECK(wres == 16384);
  r->fdatasync(sync, f.fd());
  REQUIRE(run_until(*r, [&] { return !sync.active(); }));
  CHECK(sres == 0);
  CHECK(f.contents() == data);
}

TEST_CASE("io::file ops: I/O errors reach the callback") {
  auto r = make_reactor();
  TempFile f;
  const int ro = ::open(f.path().c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(ro >= 0);
  int closed = ::dup(f.fd());
  REQUIRE(closed >= 0);
  ::close(closed);  // a descriptor number that is not open
  const std::string data = pattern(4096);
  int32_t chain = 0, plain = 0, sync = 0;
  WriteSyncOp chain_op([&](int32_t x) { chain = x; });
  WriteOp write_op([&](int32_t x) { plain = x; });
  SyncOp sync_op([&](int32_t x) { sync = x; });
  ShutdownGuard guard{*r};
  r->write_fdatasync(chain_op, ro, data.data(), data.size(), 0);
  r->write(write_op, ro, data.data(), data.size(), 0);
  r->fdatasync(sync_op, closed);
  REQUIRE(
      run_until(*r, [&] { return !chain_op.active() && !write_op.active() && !sync_op.active(); }));
  CHECK(chain == -EBADF);
  CHECK(chain_op.bytes_done() == 0);
  CHECK(plain == -EBADF);
  CHECK(sync == -EBADF);
  ::close(ro);
}

}  // namespace
}  // namespace raftd::io
