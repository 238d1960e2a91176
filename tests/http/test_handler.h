// A Handler for the server and client tests: echoes, holds, streams and rejects by target.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "raftd/http/server.h"

namespace raftd::http::testing {

class TestHandler : public Handler {
 public:
  struct Body : ExchangeContext {
    std::string bytes;
  };

  // "/slow" and "/hang" are held (the test answers them or never does), as is
  // "/respond-on-abort", which also answers from on_aborted; "/pause" pauses its
  // body at every piece (the test resumes it); "/reject" is answered
  // 403 from on_headers; "/chunked" streams a chunked response; "/head-len" declares a length;
  // anything else echoes "<method> <target> <body>".
  void on_headers(Exchange& ex) override {
    ex.set_context(std::make_unique<Body>());
    heads.push_back(ex.request().method + " " + ex.request().target);
    if (ex.request().target == "/reject") ex.respond(403, "rejected\n");
  }
  Flow on_body(Exchange& ex, std::string_view chunk) override {
    static_cast<Body*>(ex.context())->bytes.append(chunk);
    if (ex.request().target != "/pause") return Flow::kContinue;
    paused.push_back(&ex);
    return Flow::kPause;
  }
  void on_end(Exchange& ex) override {
    const Request& req = ex.request();
    const std::string& body = static_cast<Body*>(ex.context())->bytes;
    ended.push_back(req.method + " " + req.target + " " + body);
    if (ex.finished()) return;
    if (req.target == "/slow" || req.target == "/hang" || req.target == "/respond-on-abort") {
      held.push_back(&ex);
    } else if (req.target == "/chunked") {
      ex.add_header("Content-Type", "text/plain");
      ex.write_body("first,");
      ex.write_body("");
      ex.write_body("second,");
      ex.write_body("third");
      ex.finish();
    } else if (req.target == "/big") {
      write_big(ex);
    } else if (req.target == "/head-len") {
      ex.set_content_length(5);
      ex.write_body("12345");
      ex.finish();
    } else {
      ex.respond(200, req.method + " " + req.target + " " + body);
    }
  }
  void on_drained(Exchange& ex) override {
    if (ex.request().target == "/big") write_big(ex);
  }
  // 64 MiB, written while the send buffer takes it (a reader that stops reading stalls it).
  void write_big(Exchange& ex) {
    static const std::string piece(64 * 1024, 'b');
    auto* body = static_cast<Body*>(ex.context());
    while (body->bytes.size() < 1024) {  // one mark per piece written, to count them
      body->bytes.push_back('.');
      big_pieces_written++;
      if (!ex.write_body(piece)) return;
    }
    ex.finish();
  }
  void on_aborted(Exchange& ex) override {
    ++aborted;
    aborted_targets.push_back(ex.request().target);
    // A handler that answers late, from on_aborted itself: the server must drop it.
    if (ex.request().target == "/respond-on-abort") ex.respond(500, "answered after the abort");
    std::erase(held, &ex);
    std::erase(paused, &ex);
  }

  std::vector<std::string> heads;
  std::vector<std::string> ended;
  std::vector<Exchange*> held;
  std::vector<Exchange*> paused;  // "/pause" exchanges, once per paused body piece
  int aborted = 0;
  std::vector<std::string> aborted_targets;
  int big_pieces_written = 0;
};

}  // namespace raftd::http::testing
