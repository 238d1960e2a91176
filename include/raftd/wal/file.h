// The WAL's narrow file-system interface. Everything the WAL does to disk goes through Env and
// File, so tests can substitute FaultEnv (fault_env.h), which drops unsynced bytes on a
// simulated crash and injects errors. PosixEnv is the real implementation.
//
// Threading: a File may be used from one thread at a time; PosixEnv and FaultEnv are safe to
// call from several threads at once (the reactor and the compaction thread).
// Errors: expected failures are Status values; errno is converted by Status::from_errno.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "raftd/base/status.h"

namespace raftd::wal {

class File {
 public:
  virtual ~File() = default;
  // Writes up to data.size() bytes at offset. Returns the count written, which may be short.
  virtual Result<size_t> write_at(std::span<const std::byte> data, uint64_t offset) = 0;
  // Reads up to out.size() bytes at offset; short only at end of file.
  virtual Result<size_t> read_at(std::span<std::byte> out, uint64_t offset) = 0;
  // fdatasync: the file's data written so far is durable when this returns OK.
  virtual Status sync_data() = 0;
  // Reserves `bytes` of space (fallocate mode 0; the file size becomes at least `bytes`).
  virtual Status allocate(uint64_t bytes) = 0;
  virtual Result<uint64_t> size() = 0;
  // A kernel descriptor for io_uring, or -1 when the file is not a kernel file.
  virtual int fd() const { return -1; }
  virtual const std::string& path() const = 0;
};

enum class OpenMode {
  kRead,       // existing file, read only
  kReadWrite,  // existing file
  kCreate,     // new file (fails with kAlreadyExists if it exists), read-write
};

class Env {
 public:
  virtual ~Env() = default;
  virtual Result<std::unique_ptr<File>> open(const std::string& path, OpenMode mode) = 0;
  // Names (not paths) of the entries of `dir`, excluding "." and "..".
  virtual Result<std::vector<std::string>> list(const std::string& dir) = 0;
  virtual Status rename(const std::string& from, const std::string& to) = 0;
  virtual Status remove(const std::string& path) = 0;
  // fsync of the directory: makes creations, renames and removals in it durable.
  virtual Status sync_dir(const std::string& dir) = 0;
  // Creates the directory if it does not exist.
  virtual Status create_dir(const std::string& dir) = 0;
};

// The process-wide real file system (open/pread/pwrite/fdatasync/fallocate). Never destroyed.
Env& posix_env();

// Loops over short writes; a zero-byte write is reported as kIoError.
Status write_all(File& f, std::span<const std::byte> data, uint64_t offset);
// Reads exactly out.size() bytes or fails (kCorruption "short read" at end of file).
Status read_exact(File& f, std::span<std::byte> out, uint64_t offset);
// "dir/name".
std::string join_path(const std::string& dir, const std::string& name);

}  // namespace raftd::wal
