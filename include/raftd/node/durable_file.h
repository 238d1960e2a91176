// Small files the node rewrites whole and must never find half-written after a crash (the cluster
// file, the idempotency journal's compacted form, the configuration marks): written to
// "<path>.tmp", fsynced, renamed over <path>, and the directory fsynced, so after a crash <path>
// holds either the old bytes or the new ones.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "raftd/base/status.h"

namespace raftd::node {

// Every byte of `bytes` to fd (retrying short writes and EINTR); errors name `what`.
Status write_all(int fd, std::string_view bytes, const std::string& what);

// Replaces `path` durably with `bytes` (see the file comment). Errors name the failing step.
Status replace_file(const std::string& path, std::string_view bytes);

// The whole file. kNotFound when it does not exist; kCorruption when it is larger than
// bytes_max (a file the node wrote is never that large).
Result<std::string> read_file(const std::string& path, uint64_t bytes_max);

}  // namespace raftd::node
