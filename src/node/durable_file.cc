#include "raftd/node/durable_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace raftd::node {
namespace {

std::string dir_of(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

Status write_all(int fd, std::string_view bytes, const std::string& what) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::from_errno(errno, "write " + what);
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return Status::ok();
}

Status replace_file(const std::string& path, std::string_view bytes) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::from_errno(errno, "create " + tmp);
  Status s = write_all(fd, bytes, tmp);
  if (s.is_ok() && ::fsync(fd) != 0) s = Status::from_errno(errno, "fsync " + tmp);
  ::close(fd);
  if (!s.is_ok()) return s;
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Status::from_errno(errno, "rename " + tmp);
  const std::string dir = dir_of(path);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return Status::from_errno(errno, "open " + dir);
  int r = ::fsync(dfd);
  int e = errno;
  ::close(dfd);
  if (r != 0) return Status::from_errno(e, "fsync " + dir);
  return Status::ok();
}

Result<std::string> read_file(const std::string& path, uint64_t bytes_max) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) return Status(Code::kNotFound, path);
  if (fd < 0) return Status::from_errno(errno, "open " + path);
  std::string bytes;
  char buf[1 << 16];
  for (;;) {
    ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      ::close(fd);
      return Status::from_errno(e, "read " + path);
    }
    if (r == 0) break;
    bytes.append(buf, static_cast<size_t>(r));
    if (bytes.size() > bytes_max) {
      ::close(fd);
      return Status(Code::kCorruption,
                    path + ": larger than " + std::to_string(bytes_max) + " bytes");
    }
  }
  ::close(fd);
  return bytes;
}

}  // namespace raftd::node
