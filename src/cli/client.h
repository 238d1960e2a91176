// A blocking HTTP client for the client subcommands (raftd status, group, propose, read): one
// io::Reactor and one http::Client per command, each call turning the reactor until its answer
// (or error) arrived. Single-threaded; a ClientSession belongs to the thread that made it.
//
// Endpoints are "http://A.B.C.D:PORT" with an IPv4 literal host (the http::Client takes
// addresses, not names; raftd's own config holds addresses too). No https.
//
// Errors: create() fails when the reactor cannot start (io_uring unavailable), with its message.
// call() returns the answer whatever its HTTP status; a Status only when no answer came
// (connection refused, timeout, malformed answer), its message naming the endpoint.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "raftd/base/status.h"
#include "raftd/http/client.h"
#include "raftd/io/reactor.h"

namespace raftd::cli {

// The largest answer a command reads (a group list of many groups stays far below it; a read's
// value is the application's and may be large, so the bound is generous).
inline constexpr std::uint64_t kAnswerBytesMax = 256ull * 1024 * 1024;

struct Endpoint {
  std::string host;  // IPv4 literal
  std::uint16_t port = 0;
  std::string url() const;  // "http://host:port", for messages
};

// "http://A.B.C.D:PORT" (a trailing "/" allowed), or "A.B.C.D:PORT" (the form of /v1/cluster's
// client addresses). kInvalidArgument otherwise, saying what is wrong.
Result<Endpoint> parse_endpoint(std::string_view text);

struct Answer {
  int status = 0;
  http::Headers headers;
  std::string body;
};

class ClientSession {
 public:
  // timeout_ms bounds the connect and every wait without progress once the request is sent.
  static Result<std::unique_ptr<ClientSession>> create(std::string token, std::uint32_t timeout_ms);
  ~ClientSession();
  ClientSession(const ClientSession&) = delete;
  ClientSession& operator=(const ClientSession&) = delete;

  // Sends one request and waits for the whole answer. A non-empty token is sent as
  // "Authorization: Bearer <token>"; a body is sent as `content_type`; `extra` headers are
  // added as they are.
  Result<Answer> call(const Endpoint& to, std::string_view method, std::string_view target,
                      std::string body = {},
                      std::string_view content_type = "application/octet-stream",
                      http::Headers extra = {});
  // GETs of `target` at every endpoint at once (one connection each); the answers in the same
  // order. A slow or dead node costs one timeout, not one per node.
  std::vector<Result<Answer>> get_all(const std::vector<Endpoint>& to, std::string_view target);

 private:
  ClientSession(std::unique_ptr<io::Reactor> reactor, std::string token, std::uint32_t timeout_ms);
  void fetch(const Endpoint& to, http::ClientRequest rq,
             std::optional<Result<http::Response>>* slot);
  void wait_all(const std::vector<std::optional<Result<http::Response>>>& got);
  static Result<Answer> answer(const Endpoint& to, std::string_view method, std::string_view target,
                               Result<http::Response> got);

  std::unique_ptr<io::Reactor> reactor_;
  std::unique_ptr<http::Client> http_;
  std::string token_;
};

}  // namespace raftd::cli
