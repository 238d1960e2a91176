// PosixEnv: the real file system behind the Env/File interface.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "raftd/wal/file.h"

namespace raftd::wal {

namespace {

class PosixFile final : public File {
 public:
  PosixFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixFile() override { ::close(fd_); }
  PosixFile(const PosixFile&) = delete;
  PosixFile& operator=(const PosixFile&) = delete;

  Result<size_t> write_at(std::span<const std::byte> data, uint64_t offset) override {
    for (;;) {
      ssize_t n = ::pwrite(fd_, data.data(), data.size(), off_t(offset));
      if (n >= 0) return size_t(n);
      if (errno != EINTR) return Status::from_errno(errno, "pwrite " + path_);
    }
  }
  Result<size_t> read_at(std::span<std::byte> out, uint64_t offset) override {
    size_t done = 0;
    while (done < out.size()) {
      ssize_t n = ::pread(fd_, out.data() + done, out.size() - done, off_t(offset + done));
      if (n == 0) break;
      if (n < 0) {
        if (errno == EINTR) continue;
        return Status::from_errno(errno, "pread " + path_);
      }
      done += size_t(n);
    }
    return done;
  }
  Status sync_data() override {
    if (::fdatasync(fd_) != 0) return Status::from_errno(errno, "fdatasync " + path_);
    return Status::ok();
  }
  Status allocate(uint64_t bytes) override {
    int r = ::posix_fallocate(fd_, 0, off_t(bytes));
    if (r == EOPNOTSUPP || r == EINVAL) {
      // File systems without fallocate (some tmpfs/overlay setups): the zero fill that follows
      // allocates the blocks anyway.
      if (::ftruncate(fd_, off_t(bytes)) != 0) return Status::from_errno(errno, "ftruncate");
      return Status::ok();
    }
    if (r != 0) return Status::from_errno(r, "fallocate " + path_);
    return Status::ok();
  }
  Result<uint64_t> size() override {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return Status::from_errno(errno, "fstat " + path_);
    return uint64_t(st.st_size);
  }
  int fd() const override { return fd_; }
  const std::string& path() const override { return path_; }

 private:
  int fd_;
  std::string path_;
};

class PosixEnv final : public Env {
 public:
  Result<std::unique_ptr<File>> open(const std::string& path, OpenMode mode) override {
    int flags = O_CLOEXEC;
    switch (mode) {
      case OpenMode::kRead: flags |= O_RDONLY; break;
      case OpenMode::kReadWrite: flags |= O_RDWR; break;
      case OpenMode::kCreate: flags |= O_RDWR | O_CREAT | O_EXCL; break;
    }
    int fd = ::open(path.c_str(), flags, 0644);
    if (fd < 0) return Status::from_errno(errno, "open " + path);
    return std::unique_ptr<File>(new PosixFile(fd, path));
  }
  Result<std::vector<std::string>> list(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return Status::from_errno(errno, "opendir " + dir);
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(std::move(n));
    }
    ::closedir(d);
    return names;
  }
  Status rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return Status::from_errno(errno, "rename " + from + " to " + to);
    }
    return Status::ok();
  }
  Status remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return Status::from_errno(errno, "unlink " + path);
    return Status::ok();
  }
  Status sync_dir(const std::string& dir) override {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Status::from_errno(errno, "open dir " + dir);
    int r = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (r != 0) return Status::from_errno(err, "fsync dir " + dir);
    return Status::ok();
  }
  Status create_dir(const std::string& dir) override {
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
      return Status::from_errno(errno, "mkdir " + dir);
    }
    return Status::ok();
  }
};

}  // namespace

Env& posix_env() {
  static PosixEnv* env = new PosixEnv();  // never destroyed: threads may use it at exit
  return *env;
}

Status write_all(File& f, std::span<const std::byte> data, uint64_t offset) {
  while (!data.empty()) {
    auto n = f.write_at(data, offset);
    if (!n) return n.status();
    if (*n == 0) return Status(Code::kIoError, "write returned 0 bytes on " + f.path());
    data = data.subspan(*n);
    offset += *n;
  }
  return Status::ok();
}

Status read_exact(File& f, std::span<std::byte> out, uint64_t offset) {
  auto n = f.read_at(out, offset);
  if (!n) return n.status();
  if (*n != out.size()) return Status(Code::kCorruption, "short read of " + f.path());
  return Status::ok();
}

std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

}  // namespace raftd::wal
