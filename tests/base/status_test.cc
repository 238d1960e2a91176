#include "raftd/base/status.h"

#include <doctest/doctest.h>

#include <cerrno>

TEST_CASE("base::Status: errno mapping keeps the cause in the message") {
  auto s = raftd::Status::from_errno(ENOSPC, "write wal-0001 at 4096");
  CHECK_FALSE(s.is_ok());
  CHECK(s.code() == raftd::Code::kNoSpace);
  CHECK(s.message().find("write wal-0001 at 4096") != std::string::npos);
  CHECK(s.to_string().rfind("NoSpace: ", 0) == 0);
  CHECK(raftd::Status::from_errno(EIO, "x").code() == raftd::Code::kIoError);
  CHECK(raftd::Status::ok().to_string() == "OK");
}

TEST_CASE("base::Result: holds a value or an error, never both") {
  raftd::Result<int> good(7);
  REQUIRE(good.is_ok());
  CHECK(good.value() == 7);
  CHECK(good.status().is_ok());
  raftd::Result<int> bad(raftd::Status(raftd::Code::kNotFound, "no group 9"));
  CHECK_FALSE(bad.is_ok());
  CHECK(bad.status().code() == raftd::Code::kNotFound);
}
