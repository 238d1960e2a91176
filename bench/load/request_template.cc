#include "request_template.h"

#include <fmt/format.h>

#include <algorithm>

namespace raftd::bench {
namespace {

constexpr char kBase64Alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr unsigned kKeyDigitsMin = 8;  // kv_load.lua's "%08d"

bool plain_key_prefix(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.' || c == ':' || c == '/';
  });
}

// The base64 length of n bytes.
std::size_t base64_size(std::size_t n) { return (n + 2) / 3 * 4; }

void base64_append(std::string& out, std::string_view in) {
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    const char quad[4] = {kBase64Alphabet[v >> 18], kBase64Alphabet[(v >> 12) & 63],
                          kBase64Alphabet[(v >> 6) & 63], kBase64Alphabet[v & 63]};
    out.append(quad, 4);
  }
  const std::size_t rest = in.size() - i;
  if (rest == 0) return;
  uint32_t v = uint32_t{p[i]} << 16;
  if (rest == 2) v |= uint32_t{p[i + 1]} << 8;
  out.push_back(kBase64Alphabet[v >> 18]);
  out.push_back(kBase64Alphabet[(v >> 12) & 63]);
  out.push_back(rest == 2 ? kBase64Alphabet[(v >> 6) & 63] : '=');
  out.push_back('=');
}

}  // namespace

std::string base64_encode(std::string_view in) {
  std::string out;
  out.reserve(base64_size(in.size()));
  base64_append(out, in);
  return out;
}

Result<TemplateKind> parse_template_kind(std::string_view name) {
  for (auto k : {TemplateKind::kRaftdPut, TemplateKind::kRaftdGet, TemplateKind::kEtcdPut,
                 TemplateKind::kEtcdRange, TemplateKind::kHttpGet}) {
    if (template_kind_name(k) == name) return k;
  }
  return Status(Code::kInvalidArgument,
                fmt::format("unknown template '{}' (raftd-put, raftd-get, etcd-put, etcd-range, "
                            "http-get)",
                            name));
}

std::string_view template_kind_name(TemplateKind kind) {
  switch (kind) {
    case TemplateKind::kRaftdPut: return "raftd-put";
    case TemplateKind::kRaftdGet: return "raftd-get";
    case TemplateKind::kEtcdPut: return "etcd-put";
    case TemplateKind::kEtcdRange: return "etcd-range";
    case TemplateKind::kHttpGet: return "http-get";
  }
  return "?";
}

Result<RequestTemplate> RequestTemplate::make(const TemplateOptions& options) {
  const auto bad = [](std::string what) { return Status(Code::kInvalidArgument, std::move(what)); };
  if (options.keyspace == 0) return bad("the keyspace must hold at least one key");
  if (!plain_key_prefix(options.key_prefix)) {
    return bad("key prefix: only letters, digits and _-.:/ are allowed");
  }
  if (options.value_bytes > kTemplateValueBytesMax) {
    return bad(fmt::format("value size over {} bytes", kTemplateValueBytesMax));
  }
  if (options.group_first == 0 || options.group_last < options.group_first) {
    return bad("groups: a range FIRST-LAST of ids >= 1");
  }
  if (options.group_last - options.group_first >= kTemplateGroupsMax) {
    return bad(fmt::format("groups: at most {} in a run", kTemplateGroupsMax));
  }
  if (options.path.empty() || options.path[0] != '/' ||
      options.path.find_first_of(" \r\n") != std::string::npos) {
    return bad("path: must start with / and hold no spaces or line breaks");
  }

  RequestTemplate t;
  t.options_ = options;
  t.key_digits_ = std::max<unsigned>(
      kKeyDigitsMin, static_cast<unsigned>(fmt::formatted_size("{}", options.keyspace - 1)));
  uint64_t x = options.seed * 0x9E3779B97F4A7C15ull + 1;
  t.value_.resize(options.value_bytes);
  for (char& c : t.value_) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;  // xorshift64: deterministic letters
    c = static_cast<char>('a' + x % 26);
  }

  const bool raftd =
      options.kind == TemplateKind::kRaftdPut || options.kind == TemplateKind::kRaftdGet;
  if (raftd) {
    const char* op = options.kind == TemplateKind::kRaftdPut ? "propose" : "read";
    const char* query =
        options.kind == TemplateKind::kRaftdGet && options.stale_reads ? "?consistency=stale" : "";
    for (uint64_t g = options.group_first; g <= options.group_last; ++g) {
      t.group_lines_.push_back(fmt::format("POST /v1/groups/{}/{}{} HTTP/1.1\r\n", g, op, query));
    }
  } else if (options.kind == TemplateKind::kHttpGet) {
    t.group_lines_.push_back(fmt::format("GET {} HTTP/1.1\r\n", options.path));
  } else {
    const char* path = options.kind == TemplateKind::kEtcdPut ? "/v3/kv/put" : "/v3/kv/range";
    t.group_lines_.push_back(fmt::format("POST {} HTTP/1.1\r\n", path));
  }

  const std::size_t key_bytes = options.key_prefix.size() + t.key_digits_;
  std::string body_head;
  switch (options.kind) {
    case TemplateKind::kRaftdPut:
      body_head = R"({"op":"put","key":")";
      t.body_tail_ = fmt::format(R"(","value":"{}"}})", t.value_);
      break;
    case TemplateKind::kRaftdGet:
      body_head = R"({"op":"get","key":")";
      t.body_tail_ = R"("})";
      break;
    case TemplateKind::kEtcdPut:
      body_head = R"({"key":")";
      t.body_tail_ = fmt::format(R"(","value":"{}"}})", base64_encode(t.value_));
      break;
    case TemplateKind::kEtcdRange:
      body_head = R"({"key":")";
      t.body_tail_ = R"("})";
      break;
    case TemplateKind::kHttpGet: t.head_rest_ = "\r\n"; return t;
  }
  const bool b64 =
      options.kind == TemplateKind::kEtcdPut || options.kind == TemplateKind::kEtcdRange;
  const std::size_t body_bytes =
      body_head.size() + (b64 ? base64_size(key_bytes) : key_bytes) + t.body_tail_.size();
  t.head_rest_ = fmt::format("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
                             body_bytes, body_head);
  return t;
}

void RequestTemplate::append_key(std::string& out, uint64_t key) const {
  char digits[24];
  unsigned n = 0;
  do {
    digits[n++] = static_cast<char>('0' + key % 10);
    key /= 10;
  } while (key != 0);
  out.append(options_.key_prefix);
  if (n < key_digits_) out.append(key_digits_ - n, '0');
  while (n > 0) out.push_back(digits[--n]);
}

std::string RequestTemplate::key_text(uint64_t key) const {
  std::string s;
  append_key(s, key);
  return s;
}

void RequestTemplate::render(std::string& out, uint64_t key, uint64_t group_index,
                             std::string_view host) const {
  out.append(group_lines_[group_index]);
  out.append("Host: ");
  out.append(host);
  out.append("\r\n");
  out.append(head_rest_);
  if (options_.kind == TemplateKind::kHttpGet) return;
  if (options_.kind == TemplateKind::kEtcdPut || options_.kind == TemplateKind::kEtcdRange) {
    std::string key_str;  // short keys fit its inline buffer: no allocation
    append_key(key_str, key);
    base64_append(out, key_str);
  } else {
    append_key(out, key);
  }
  out.append(body_tail_);
}

}  // namespace raftd::bench
