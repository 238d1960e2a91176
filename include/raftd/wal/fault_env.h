// FaultEnv: an in-memory Env for tests and the simulator that models what a crash does to a
// file system and injects I/O errors.
//
// Model (LevelDB's FaultInjectionTestEnv and LazyFS, simplified): every file has its current
// bytes and its durable bytes; sync_data() makes the current bytes durable. Directory entries
// (create, rename, remove) become durable only at sync_dir() of their directory. crash() throws
// away everything not durable, optionally keeping a prefix or a random subset of the unsynced
// writes (a torn write). Every mutating call is counted, so a test can crash at any boundary.
//
// Threading: all methods are safe to call from several threads (one mutex).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "raftd/wal/file.h"

namespace raftd::wal {

class FaultEnv final : public Env {
 public:
  FaultEnv() = default;

  Result<std::unique_ptr<File>> open(const std::string& path, OpenMode mode) override;
  Result<std::vector<std::string>> list(const std::string& dir) override;
  Status rename(const std::string& from, const std::string& to) override;
  Status remove(const std::string& path) override;
  Status sync_dir(const std::string& dir) override;
  Status create_dir(const std::string& dir) override;

  // ---- faults (each applies to calls made after it is set) ----
  // Writes fail with `err` once `bytes` more bytes have been written (ENOSPC, EIO); with a
  // suffix, only writes to paths ending in it count and fail (".prep": segment creation).
  void fail_writes_after(uint64_t bytes, int err, const std::string& path_suffix = "");
  // Removes every injected fault (stop, write and sync failures, short writes).
  void clear_faults();
  // The nth sync_data() from now (1 = the next one) fails with `err` (EIO).
  void fail_sync(uint64_t nth, int err);
  // Each write_at writes at most this many bytes (short writes); 0 = unlimited.
  void set_max_write_bytes(size_t n);
  // After `n` more mutating calls every mutating call fails with EIO: the machine "stopped".
  // Mutating calls: write_at, sync_data, allocate, open(kCreate), rename, remove, sync_dir.
  void stop_after_ops(uint64_t n);
  uint64_t mutating_ops() const;
  // True once a stop_after_ops() limit has been reached.
  bool stopped() const;
  uint64_t sync_count() const;

  // ---- crashes ----
  // Power loss: files and directories return to their durable state. Of each file's unsynced
  // writes, the first `keep_unsynced_bytes` bytes (in write order) survive, so a non-zero value
  // models a write torn at that byte. Clears every injected fault. Open File handles must be
  // closed before (their later calls would be lost anyway).
  void crash(uint64_t keep_unsynced_bytes = 0);
  // Power loss where each 512-byte sector written since the last sync survives or not at random
  // (the kernel writes pages back in any order).
  void crash_random_sectors(std::mt19937_64& rng);
  // Unsynced bytes of a file (the size of its pending write log).
  uint64_t unsynced_bytes(const std::string& path) const;

  // ---- direct access for corruption tests: changes both current and durable bytes ----
  bool exists(const std::string& path) const;
  void flip_bit(const std::string& path, uint64_t offset, int bit);
  void write_raw(const std::string& path, uint64_t offset, const std::vector<std::byte>& bytes);
  std::vector<std::byte> read_raw(const std::string& path) const;

  struct Node;  // a file's bytes; shared by its handles and directory entries

 private:
  friend class FaultFile;
  Status check_op_locked(const char* what);

  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Node>> current_;
  std::map<std::string, std::shared_ptr<Node>> durable_;
  std::set<std::string> dirs_;
  uint64_t ops_ = 0;
  uint64_t stop_at_ops_ = UINT64_MAX;
  uint64_t write_budget_ = UINT64_MAX;
  int write_err_ = 0;
  std::string write_fault_suffix_;
  uint64_t sync_countdown_ = 0;
  int sync_err_ = 0;
  uint64_t syncs_ = 0;
  size_t max_write_bytes_ = 0;
};

}  // namespace raftd::wal
