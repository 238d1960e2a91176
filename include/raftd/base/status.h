// Status and Result<T>: expected failures (disk, network, peer or client input, config) cross
// layer boundaries as values, never as exceptions. errno becomes a Status in one place
// (Status::from_errno). Durability-ambiguous failures are not Statuses: they are fail-stop.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "raftd/base/assert.h"

namespace raftd {

enum class Code {
  kOk = 0,
  kInvalidArgument,  // bad input from outside (config, request, CLI)
  kNotFound,
  kAlreadyExists,
  kCorruption,   // on-disk or wire data failed a checksum or a structural check
  kIoError,      // an I/O call failed; errno is in the message
  kNoSpace,      // ENOSPC
  kUnavailable,  // try again later (no leader, queue full, peer down)
  kTimeout,
  kTooLarge,     // a limit was exceeded
  kUnsupported,  // the kernel or platform lacks a needed feature
  kCancelled,
  kAborted,
};

std::string_view code_name(Code c);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return Status(); }
  // Maps errno values to codes (ENOSPC -> kNoSpace, ETIME/ETIMEDOUT -> kTimeout,
  // ECANCELED -> kCancelled, everything else kIoError) and appends strerror to `what`.
  static Status from_errno(int err, std::string_view what);

  bool is_ok() const { return code_ == Code::kOk; }
  explicit operator bool() const { return is_ok(); }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "Corruption: <message>", or "OK".
  std::string to_string() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    RAFTD_ASSERT(!std::get<Status>(v_).is_ok(), "Result built from an OK status has no value");
  }

  bool is_ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return is_ok(); }
  const Status& status() const {
    static const Status kOk;
    return is_ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & {
    RAFTD_ASSERT(is_ok(), "Result::value() on an error");
    return std::get<T>(v_);
  }
  const T& value() const& {
    RAFTD_ASSERT(is_ok(), "Result::value() on an error");
    return std::get<T>(v_);
  }
  T&& value() && {
    RAFTD_ASSERT(is_ok(), "Result::value() on an error");
    return std::get<T>(std::move(v_));
  }
  T* operator->() { return &value(); }
  T& operator*() { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace raftd
