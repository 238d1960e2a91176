#include "cli/client.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <charconv>
#include <chrono>
#include <optional>
#include <utility>

namespace raftd::cli {

std::string Endpoint::url() const { return fmt::format("http://{}:{}", host, port); }

Result<Endpoint> parse_endpoint(std::string_view text) {
  std::string_view rest = text;
  if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
    if (rest.ends_with("/")) rest.remove_suffix(1);
  } else if (rest.find("://") != std::string_view::npos) {
    return Status(Code::kInvalidArgument,
                  fmt::format("endpoint '{}': only http:// is supported", text));
  }
  std::size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos) {
    return Status(Code::kInvalidArgument,
                  fmt::format("endpoint '{}': expected http://A.B.C.D:PORT", text));
  }
  Endpoint ep;
  ep.host = std::string(rest.substr(0, colon));
  in_addr addr{};
  if (::inet_pton(AF_INET, ep.host.c_str(), &addr) != 1) {
    return Status(Code::kInvalidArgument,
                  fmt::format("endpoint '{}': the host must be an IPv4 address (no names)", text));
  }
  std::string_view port = rest.substr(colon + 1);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value == 0 ||
      value > 65535) {
    return Status(Code::kInvalidArgument,
                  fmt::format("endpoint '{}': the port must be 1..65535", text));
  }
  ep.port = static_cast<std::uint16_t>(value);
  return ep;
}

Result<std::unique_ptr<ClientSession>> ClientSession::create(std::string token,
                                                             std::uint32_t timeout_ms) {
  io::ReactorOptions ro;
  // One request at a time: a small ring and few receive buffers are plenty.
  ro.sq_entries = 16;
  ro.recv_buffer_count = 16;
  ro.recv_buffer_bytes = 64 * 1024;
  Result<std::unique_ptr<io::Reactor>> reactor = io::Reactor::create(ro);
  if (!reactor) return reactor.status();
  return std::unique_ptr<ClientSession>(
      new ClientSession(std::move(reactor.value()), std::move(token), timeout_ms));
}

ClientSession::ClientSession(std::unique_ptr<io::Reactor> reactor, std::string token,
                             std::uint32_t timeout_ms)
    : reactor_(std::move(reactor)), token_(std::move(token)) {
  http::ClientOptions co;
  co.connect_timeout_ms = timeout_ms;
  co.response_timeout_ms = timeout_ms;
  co.response_body_bytes_max = kAnswerBytesMax;
  http_ = std::make_unique<http::Client>(*reactor_, co);
}

ClientSession::~ClientSession() {
  // The client's connections are ops of the reactor: close them, then let shutdown drain them.
  http_->close();
  reactor_->shutdown();
}

Result<Answer> ClientSession::call(const Endpoint& to, std::string_view method,
                                   std::string_view target, std::string body,
                                   std::string_view content_type, http::Headers extra) {
  http::ClientRequest rq;
  rq.method = std::string(method);
  rq.target = std::string(target);
  rq.headers = std::move(extra);
  if (!token_.empty()) rq.headers.push_back({"Authorization", "Bearer " + token_});
  if (!body.empty()) rq.headers.push_back({"Content-Type", std::string(content_type)});
  rq.body = std::move(body);
  std::vector<std::optional<Result<http::Response>>> got(1);
  fetch(to, std::move(rq), &got[0]);
  wait_all(got);
  return answer(to, method, target, std::move(*got[0]));
}

std::vector<Result<Answer>> ClientSession::get_all(const std::vector<Endpoint>& to,
                                                   std::string_view target) {
  std::vector<std::optional<Result<http::Response>>> got(to.size());
  for (size_t i = 0; i < to.size(); ++i) {
    http::ClientRequest rq;
    rq.method = "GET";
    rq.target = std::string(target);
    if (!token_.empty()) rq.headers.push_back({"Authorization", "Bearer " + token_});
    fetch(to[i], std::move(rq), &got[i]);
  }
  wait_all(got);
  std::vector<Result<Answer>> out;
  for (size_t i = 0; i < to.size(); ++i) out.push_back(answer(to[i], "GET", target, *got[i]));
  return out;
}

void ClientSession::fetch(const Endpoint& to, http::ClientRequest rq,
                          std::optional<Result<http::Response>>* slot) {
  http_->fetch(
      to.host, to.port, std::move(rq),
      [slot](Result<http::Response> r) { slot->emplace(std::move(r)); }, kAnswerBytesMax);
}

// The client's own timeouts end every request, so this loop ends too.
void ClientSession::wait_all(const std::vector<std::optional<Result<http::Response>>>& got) {
  auto done = [&got] {
    for (const auto& g : got) {
      if (!g) return false;
    }
    return true;
  };
  while (!done()) reactor_->run_once(std::chrono::milliseconds(100));
}

Result<Answer> ClientSession::answer(const Endpoint& to, std::string_view method,
                                     std::string_view target, Result<http::Response> got) {
  if (!got) {
    const Status& s = got.status();
    return Status(s.code(), fmt::format("{} {} at {}: {}", method, target, to.url(),
                                        s.message().empty() ? s.to_string() : s.message()));
  }
  http::Response& r = got.value();
  return Answer{r.head.status, std::move(r.head.headers), std::move(r.body)};
}

}  // namespace raftd::cli
