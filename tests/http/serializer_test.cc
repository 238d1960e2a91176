// The serializer's output, checked by parsing it back.
#include "raftd/http/serializer.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>

#include "raftd/http/parser.h"

namespace raftd::http {
namespace {

struct Collect : ResponseSink {
  ResponseHead head;
  std::string body;
  int ends = 0;
  void on_response_head(ResponseHead& h) override { head = h; }
  Flow on_response_body(std::string_view chunk) override {
    body.append(chunk);
    return Flow::kContinue;
  }
  void on_response_end() override { ++ends; }
};

// Runs `fn` in a child process: true when it dies (an assertion) instead of returning.
bool dies(const std::function<void()>& fn) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int null = ::open("/dev/null", O_WRONLY);
    if (null >= 0) ::dup2(null, STDERR_FILENO);
    fn();
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return !WIFEXITED(status) || WEXITSTATUS(status) != 0;
}

}  // namespace

TEST_SUITE("http") {
  TEST_CASE("http::BodyEncoder: chunked framing, empty writes emit nothing") {
    std::string out;
    BodyEncoder enc(Framing::kChunked, 0);
    enc.write(out, "hello");
    enc.write(out, "");
    enc.write(out, std::string(26, 'x'));
    CHECK(enc.finish(out));
    CHECK(out == "5\r\nhello\r\n1a\r\n" + std::string(26, 'x') + "\r\n0\r\n\r\n");
  }

  TEST_CASE("http::BodyEncoder: Content-Length counts down and reports truncation") {
    std::string out;
    BodyEncoder enc(Framing::kContentLength, 5);
    enc.write(out, "abc");
    CHECK(enc.remaining_bytes() == 2);
    CHECK_FALSE(enc.finish(out));
    BodyEncoder full(Framing::kContentLength, 3);
    full.write(out, "abc");
    CHECK(full.finish(out));
    CHECK(out == "abcabc");
  }

  TEST_CASE("http::append_response_head: round trip through the response parser") {
    std::string wire;
    append_response_head(wire, 200, {{"X-A", "1"}}, Framing::kChunked, 0, true);
    BodyEncoder enc(Framing::kChunked, 0);
    enc.write(wire, "part one, ");
    enc.write(wire, "part two");
    REQUIRE(enc.finish(wire));
    append_response_head(wire, 413, {}, Framing::kContentLength, 4, false);
    wire += "big!";
    CHECK(wire.find("\r\nDate: ") != std::string::npos);

    Collect c;
    ResponseParser parser(c);
    FeedResult r = parser.feed(wire);
    CHECK(r.event == ParseEvent::kMessageEnd);
    CHECK(c.head.status == 200);
    CHECK(c.head.framing == Framing::kChunked);
    CHECK(c.head.header("x-a") == "1");
    CHECK(c.body == "part one, part two");
    c.body.clear();
    r = parser.feed(std::string_view(wire).substr(r.consumed));
    CHECK(r.event == ParseEvent::kMessageEnd);
    CHECK(c.head.status == 413);
    CHECK(c.head.reason == "Content Too Large");
    CHECK_FALSE(c.head.keep_alive);
    CHECK(c.body == "big!");
    CHECK(c.ends == 2);
  }

  TEST_CASE("http::append_request_head: GET without body has no framing headers") {
    std::string out;
    append_request_head(out, "GET", "/x", "h:1", {{"Accept", "*/*"}}, Framing::kNone, 0);
    CHECK(out == "GET /x HTTP/1.1\r\nHost: h:1\r\nAccept: */*\r\n\r\n");
    out.clear();
    append_request_head(out, "POST", "/y", "h:1", {}, Framing::kContentLength, 7);
    CHECK(out == "POST /y HTTP/1.1\r\nHost: h:1\r\nContent-Length: 7\r\n\r\n");
  }

  TEST_CASE("http::append_request_head: names, values and targets a reader would split") {
    CHECK(is_token("X-Key_1.~!"));
    CHECK_FALSE(is_token(""));
    CHECK_FALSE(is_token("X Key"));
    CHECK_FALSE(is_token("X:"));
    CHECK_FALSE(is_token("X\x80"));
    CHECK(is_field_value(""));
    CHECK(is_field_value("a\tb c\x80\xff"));
    CHECK_FALSE(is_field_value("a\r\nX: y"));
    CHECK_FALSE(is_field_value("a\rb"));
    CHECK_FALSE(is_field_value("a\nb"));
    CHECK_FALSE(is_field_value(std::string("a\0b", 3)));
    CHECK_FALSE(is_field_value("a\x7f"));
    CHECK(is_request_target("/a?b=c&d=%20#f"));
    CHECK(is_request_target("*"));
    CHECK_FALSE(is_request_target(""));
    CHECK_FALSE(is_request_target("/a b"));
    CHECK_FALSE(is_request_target("/a\r\n"));
    CHECK_FALSE(is_request_target("/\x80"));
    // The serializer never writes one: a head whose fields a reader would split differently
    // (a second request or response, an extra framing field) is a programmer error.
    CHECK(dies([] {
      std::string out;
      append_response_head(out, 200, {{"X", "a\r\nContent-Length: 0"}}, Framing::kNone, 0, true);
    }));
    CHECK(dies([] {
      std::string out;
      append_response_head(out, 204, {{"X Y", "a"}}, Framing::kNone, 0, true);
    }));
    CHECK(dies([] {
      std::string out;
      append_request_head(out, "GET", "/a HTTP/1.1\r\nHost: x\r\n\r\nGET /b", "h", {},
                          Framing::kNone, 0);
    }));
    CHECK(dies([] {
      std::string out;
      append_request_head(out, "GET", "/", "h", {{"X", "a\nb"}}, Framing::kNone, 0);
    }));
    CHECK_FALSE(dies([] {
      std::string out;
      append_request_head(out, "GET", "/", "h", {{"X", "a\tb\x80"}}, Framing::kNone, 0);
    }));
  }
}

}  // namespace raftd::http
