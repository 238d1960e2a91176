#include "raftd/wal/fault_env.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace raftd::wal {

struct FaultEnv::Node {
  struct Write {
    uint64_t offset;
    std::vector<std::byte> bytes;
  };
  std::vector<std::byte> data;
  std::vector<std::byte> durable;
  std::vector<Write> unsynced;  // writes since the last sync, in order
};

namespace {

std::string parent_of(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

void apply(std::vector<std::byte>& data, uint64_t offset, const std::byte* p, size_t n) {
  if (data.size() < offset + n) data.resize(offset + n);
  std::memcpy(data.data() + offset, p, n);
}

}  // namespace

class FaultFile final : public File {
 public:
  FaultFile(FaultEnv* env, std::shared_ptr<FaultEnv::Node> node, std::string path, bool writable)
      : env_(env), node_(std::move(node)), path_(std::move(path)), writable_(writable) {}

  Result<size_t> write_at(std::span<const std::byte> data, uint64_t offset) override {
    std::lock_guard lock(env_->mu_);
    if (!writable_) return Status::from_errno(EBADF, "write " + path_);
    if (Status s = env_->check_op_locked("write"); !s) return s;
    size_t n = data.size();
    if (env_->max_write_bytes_ != 0) n = std::min(n, env_->max_write_bytes_);
    const std::string& sfx = env_->write_fault_suffix_;
    bool faulty = sfx.empty() || (path_.size() >= sfx.size() &&
                                  path_.compare(path_.size() - sfx.size(), sfx.size(), sfx) == 0);
    if (faulty && env_->write_budget_ != UINT64_MAX) {
      if (env_->write_budget_ == 0) return Status::from_errno(env_->write_err_, "write " + path_);
      n = size_t(std::min<uint64_t>(n, env_->write_budget_));
      env_->write_budget_ -= n;
    }
    apply(node_->data, offset, data.data(), n);
    node_->unsynced.push_back({offset, std::vector<std::byte>(data.begin(), data.begin() + n)});
    return n;
  }
  Result<size_t> read_at(std::span<std::byte> out, uint64_t offset) override {
    std::lock_guard lock(env_->mu_);
    if (offset >= node_->data.size()) return size_t(0);
    size_t n = std::min<uint64_t>(out.size(), node_->data.size() - offset);
    std::memcpy(out.data(), node_->data.data() + offset, n);
    return n;
  }
  Status sync_data() override {
    std::lock_guard lock(env_->mu_);
    if (Status s = env_->check_op_locked("fdatasync"); !s) return s;
    ++env_->syncs_;
    if (env_->sync_countdown_ > 0 && --env_->sync_countdown_ == 0) {
      // Linux after a failed writeback: the error is reported once and the dirty pages are
      // dropped (fsyncgate). Model it by losing the unsynced writes.
      node_->data = node_->durable;
      node_->unsynced.clear();
      return Status::from_errno(env_->sync_err_, "fdatasync " + path_);
    }
    node_->durable = node_->data;
    node_->unsynced.clear();
    return Status::ok();
  }
  Status allocate(uint64_t bytes) override {
    std::lock_guard lock(env_->mu_);
    if (Status s = env_->check_op_locked("fallocate"); !s) return s;
    if (node_->data.size() < bytes) {
      uint64_t old = node_->data.size();
      node_->data.resize(bytes);
      node_->unsynced.push_back({old, std::vector<std::byte>(bytes - old)});
    }
    return Status::ok();
  }
  Result<uint64_t> size() override {
    std::lock_guard lock(env_->mu_);
    return uint64_t(node_->data.size());
  }
  const std::string& path() const override { return path_; }

 private:
  FaultEnv* env_;
  std::shared_ptr<FaultEnv::Node> node_;
  std::string path_;
  bool writable_;
};

Status FaultEnv::check_op_locked(const char* what) {
  if (ops_ >= stop_at_ops_) return Status::from_errno(EIO, std::string(what) + " (stopped)");
  ++ops_;
  return Status::ok();
}

Result<std::unique_ptr<File>> FaultEnv::open(const std::string& path, OpenMode mode) {
  std::lock_guard lock(mu_);
  auto it = current_.find(path);
  if (mode == OpenMode::kCreate) {
    if (Status s = check_op_locked("create"); !s) return s;
    if (it != current_.end()) return Status::from_errno(EEXIST, "open " + path);
    if (!dirs_.count(parent_of(path))) return Status::from_errno(ENOENT, "open " + path);
    auto node = std::make_shared<Node>();
    current_[path] = node;
    return std::unique_ptr<File>(new FaultFile(this, node, path, true));
  }
  if (it == current_.end()) return Status::from_errno(ENOENT, "open " + path);
  return std::unique_ptr<File>(new FaultFile(this, it->second, path, mode != OpenMode::kRead));
}

Result<std::vector<std::string>> FaultEnv::list(const std::string& dir) {
  std::lock_guard lock(mu_);
  if (!dirs_.count(dir)) return Status::from_errno(ENOENT, "opendir " + dir);
  std::vector<std::string> names;
  for (const auto& [path, node] : current_) {
    if (parent_of(path) == dir) names.push_back(path.substr(dir.size() + 1));
  }
  return names;
}

Status FaultEnv::rename(const std::string& from, const std::string& to) {
  std::lock_guard lock(mu_);
  if (Status s = check_op_locked("rename"); !s) return s;
  auto it = current_.find(from);
  if (it == current_.end()) return Status::from_errno(ENOENT, "rename " + from);
  auto node = it->second;
  current_.erase(it);
  current_[to] = node;
  return Status::ok();
}

Status FaultEnv::remove(const std::string& path) {
  std::lock_guard lock(mu_);
  if (Status s = check_op_locked("unlink"); !s) return s;
  if (current_.erase(path) == 0) return Status::from_errno(ENOENT, "unlink " + path);
  return Status::ok();
}

Status FaultEnv::sync_dir(const std::string& dir) {
  std::lock_guard lock(mu_);
  if (Status s = check_op_locked("fsync dir"); !s) return s;
  std::erase_if(durable_, [&](const auto& kv) { return parent_of(kv.first) == dir; });
  for (const auto& [path, node] : current_) {
    if (parent_of(path) == dir) durable_[path] = node;
  }
  return Status::ok();
}

Status FaultEnv::create_dir(const std::string& dir) {
  std::lock_guard lock(mu_);
  dirs_.insert(dir);
  return Status::ok();
}

void FaultEnv::fail_writes_after(uint64_t bytes, int err, const std::string& path_suffix) {
  std::lock_guard lock(mu_);
  write_budget_ = bytes;
  write_err_ = err;
  write_fault_suffix_ = path_suffix;
}

void FaultEnv::clear_faults() {
  std::lock_guard lock(mu_);
  stop_at_ops_ = UINT64_MAX;
  write_budget_ = UINT64_MAX;
  sync_countdown_ = 0;
  max_write_bytes_ = 0;
}

void FaultEnv::fail_sync(uint64_t nth, int err) {
  std::lock_guard lock(mu_);
  sync_countdown_ = nth;
  sync_err_ = err;
}

void FaultEnv::set_max_write_bytes(size_t n) {
  std::lock_guard lock(mu_);
  max_write_bytes_ = n;
}

void FaultEnv::stop_after_ops(uint64_t n) {
  std::lock_guard lock(mu_);
  stop_at_ops_ = ops_ + n;
}

uint64_t FaultEnv::mutating_ops() const {
  std::lock_guard lock(mu_);
  return ops_;
}

bool FaultEnv::stopped() const {
  std::lock_guard lock(mu_);
  return ops_ >= stop_at_ops_;
}

uint64_t FaultEnv::sync_count() const {
  std::lock_guard lock(mu_);
  return syncs_;
}

void FaultEnv::crash(uint64_t keep_unsynced_bytes) {
  std::lock_guard lock(mu_);
  current_ = durable_;
  for (auto& [path, node] : durable_) {
    std::vector<std::byte> data = node->durable;
    uint64_t keep = keep_unsynced_bytes;
    for (const auto& w : node->unsynced) {
      size_t n = size_t(std::min<uint64_t>(keep, w.bytes.size()));
      if (n == 0) break;
      apply(data, w.offset, w.bytes.data(), n);
      keep -= n;
    }
    node->data = data;
    node->durable = std::move(data);
    node->unsynced.clear();
  }
  stop_at_ops_ = UINT64_MAX;
  write_budget_ = UINT64_MAX;
  sync_countdown_ = 0;
  max_write_bytes_ = 0;
}

void FaultEnv::crash_random_sectors(std::mt19937_64& rng) {
  constexpr uint64_t kSectorBytes = 512;
  std::lock_guard lock(mu_);
  current_ = durable_;
  for (auto& [path, node] : durable_) {
    std::vector<std::byte> data = node->durable;
    for (const auto& w : node->unsynced) {
      for (uint64_t at = 0; at < w.bytes.size();) {
        uint64_t sector_end = ((w.offset + at) / kSectorBytes + 1) * kSectorBytes;
        uint64_t n = std::min<uint64_t>(sector_end - (w.offset + at), w.bytes.size() - at);
        if (rng() % 2 == 0) apply(data, w.offset + at, w.bytes.data() + at, size_t(n));
        at += n;
      }
    }
    node->data = data;
    node->durable = std::move(data);
    node->unsynced.clear();
  }
  stop_at_ops_ = UINT64_MAX;
  write_budget_ = UINT64_MAX;
  sync_countdown_ = 0;
  max_write_bytes_ = 0;
}

uint64_t FaultEnv::unsynced_bytes(const std::string& path) const {
  std::lock_guard lock(mu_);
  auto it = current_.find(path);
  if (it == current_.end()) return 0;
  uint64_t n = 0;
  for (const auto& w : it->second->unsynced) n += w.bytes.size();
  return n;
}

bool FaultEnv::exists(const std::string& path) const {
  std::lock_guard lock(mu_);
  return current_.count(path) != 0;
}

void FaultEnv::flip_bit(const std::string& path, uint64_t offset, int bit) {
  std::lock_guard lock(mu_);
  auto& node = current_.at(path);
  node->data.at(offset) ^= std::byte(1u << bit);
  node->durable.at(offset) ^= std::byte(1u << bit);
}

void FaultEnv::write_raw(const std::string& path, uint64_t offset,
                         const std::vector<std::byte>& bytes) {
  std::lock_guard lock(mu_);
  auto& node = current_.at(path);
  apply(node->data, offset, bytes.data(), bytes.size());
  apply(node->durable, offset, bytes.data(), bytes.size());
}

std::vector<std::byte> FaultEnv::read_raw(const std::string& path) const {
  std::lock_guard lock(mu_);
  return current_.at(path)->data;
}

}  // namespace raftd::wal
