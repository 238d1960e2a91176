#include "raftd/base/status.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace raftd {

namespace base {

void assert_failed(const char* expr, const char* file, int line, const char* msg) {
  std::fprintf(stderr, "raftd: assertion failed at %s:%d: %s (%s)\n", file, line, msg, expr);
  std::fflush(stderr);
  std::abort();
}

}  // namespace base

std::string_view code_name(Code c) {
  switch (c) {
    case Code::kOk: return "OK";
    case Code::kInvalidArgument: return "InvalidArgument";
    case Code::kNotFound: return "NotFound";
    case Code::kAlreadyExists: return "AlreadyExists";
    case Code::kCorruption: return "Corruption";
    case Code::kIoError: return "IoError";
    case Code::kNoSpace: return "NoSpace";
    case Code::kUnavailable: return "Unavailable";
    case Code::kTimeout: return "Timeout";
    case Code::kTooLarge: return "TooLarge";
    case Code::kUnsupported: return "Unsupported";
    case Code::kCancelled: return "Cancelled";
    case Code::kAborted: return "Aborted";
  }
  return "Unknown";
}

Status Status::from_errno(int err, std::string_view what) {
  Code code = Code::kIoError;
  if (err == ENOSPC || err == EDQUOT) {
    code = Code::kNoSpace;
  } else if (err == ETIME || err == ETIMEDOUT) {
    code = Code::kTimeout;
  } else if (err == ECANCELED) {
    code = Code::kCancelled;
  } else if (err == ENOENT) {
    code = Code::kNotFound;
  } else if (err == EEXIST) {
    code = Code::kAlreadyExists;
  }
  std::string m(what);
  m += ": ";
  m += std::strerror(err);
  return Status(code, std::move(m));
}

std::string Status::to_string() const {
  if (is_ok()) return "OK";
  std::string s(code_name(code_));
  s += ": ";
  s += message_;
  return s;
}

}  // namespace raftd
