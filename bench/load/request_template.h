// RequestTemplate: renders the HTTP/1.1 requests raftd-load sends, straight into a connection's
// send buffer (a handful of appends of pre-rendered pieces; no formatting per request).
//
// Kinds (the bodies are what the peers and the example app expect):
//   raftd-put   POST /v1/groups/{g}/propose  {"op":"put","key":K,"value":V}   (examples/README.md)
//   raftd-get   POST /v1/groups/{g}/read     {"op":"get","key":K}  (?consistency=stale optional)
//   etcd-put    POST /v3/kv/put              {"key":b64(K),"value":b64(V)}  (etcd's JSON gateway)
//   etcd-range  POST /v3/kv/range            {"key":b64(K)}
//   http-get    GET {path}                   no body (for comparing against wrk on any server)
// Keys are PREFIX followed by the key number zero-padded to at least 8 digits (kv_load.lua's
// "k%08d"), so every body of a run has the same length. Values are value_bytes letters a-z,
// the same for every request of a run (drawn once from the seed).
//
// Threading: immutable after make(); share it between load threads freely.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "raftd/base/status.h"

namespace raftd::bench {

enum class TemplateKind { kRaftdPut, kRaftdGet, kEtcdPut, kEtcdRange, kHttpGet };

// Groups a run may spread over: pre-rendered request lines cost about 40 bytes each.
inline constexpr uint64_t kTemplateGroupsMax = 1u << 20;
// Bodies stay small enough that a pipelined batch of them is one send.
inline constexpr std::size_t kTemplateValueBytesMax = 1u << 20;

struct TemplateOptions {
  TemplateKind kind = TemplateKind::kRaftdPut;
  uint64_t keyspace = 100000;  // keys 0 .. keyspace-1
  std::size_t value_bytes = 16;
  std::string key_prefix = "k";  // letters, digits and _-.:/ only (no JSON escaping needed)
  uint64_t group_first = 1;      // raftd-*: groups group_first .. group_last
  uint64_t group_last = 1;
  bool stale_reads = false;  // raftd-get: ?consistency=stale
  std::string path = "/";    // http-get
  uint64_t seed = 1;         // draws the value's letters
};

// Standard base64 with padding (RFC 4648 section 4), as etcd's JSON gateway expects for bytes.
std::string base64_encode(std::string_view in);
Result<TemplateKind> parse_template_kind(std::string_view name);
std::string_view template_kind_name(TemplateKind kind);

class RequestTemplate {
 public:
  // Errors: kInvalidArgument for an empty keyspace, a bad key prefix or path, too many groups
  // or too large a value.
  static Result<RequestTemplate> make(const TemplateOptions& options);

  // Appends one whole request for key number `key` (< keyspace) in the group of index
  // `group_index` (< group_count()), with `host` as the Host header value.
  void render(std::string& out, uint64_t key, uint64_t group_index, std::string_view host) const;

  std::string key_text(uint64_t key) const;
  uint64_t group_count() const { return group_lines_.size(); }
  uint64_t keyspace() const { return options_.keyspace; }
  const TemplateOptions& options() const { return options_; }
  const std::string& value() const { return value_; }

 private:
  RequestTemplate() = default;
  void append_key(std::string& out, uint64_t key) const;

  TemplateOptions options_;
  unsigned key_digits_ = 8;
  std::string value_;
  std::vector<std::string> group_lines_;  // request line per group ("POST /v1/... HTTP/1.1\r\n")
  std::string head_rest_;                 // headers after Host, the blank line, body up to the key
  std::string body_tail_;                 // the body after the key
};

}  // namespace raftd::bench
