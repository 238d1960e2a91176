// Parsing and printing of the configuration's typed values (values.h).
#include "config/values.h"

#include <fmt/format.h>

#include <charconv>

namespace raftd::config {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// A decimal number without sign or leading zeros, at most max.
std::optional<uint64_t> parse_decimal(std::string_view s, uint64_t max) {
  if (s.empty() || s.size() > 10 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (!is_digit(c)) return std::nullopt;
    v = v * 10 + uint64_t(c - '0');
  }
  if (v > max) return std::nullopt;
  return v;
}

// Dotted decimal a.b.c.d, each 0..255 without leading zeros (no octal or hex forms, which
// inet_aton would read differently).
std::optional<std::string> parse_ipv4(std::string_view s, std::string* out) {
  if (s == "localhost") return "host names are not resolved: use 127.0.0.1";
  if (s.starts_with('[')) return "IPv6 is not supported: use an IPv4 address";
  std::string canon;
  for (int part = 0; part < 4; ++part) {
    size_t dot = part < 3 ? s.find('.') : s.size();
    if (dot == std::string_view::npos) return "host must be an IPv4 address such as 127.0.0.1";
    std::optional<uint64_t> octet = parse_decimal(s.substr(0, dot), 255);
    if (!octet) return "host must be an IPv4 address such as 127.0.0.1";
    canon += (part ? "." : "") + std::to_string(*octet);
    s.remove_prefix(part < 3 ? dot + 1 : dot);
  }
  *out = std::move(canon);
  return std::nullopt;
}

// host ":" port; with default_port, ":port" may be left out.
std::optional<std::string> parse_host_port(std::string_view s, std::optional<uint16_t> default_port,
                                           std::string* host, uint16_t* port) {
  size_t colon = s.rfind(':');
  std::string_view host_text = colon == std::string_view::npos ? s : s.substr(0, colon);
  if (colon == std::string_view::npos) {
    if (!default_port) return "missing \":port\"";
    *port = *default_port;
  } else {
    std::optional<uint64_t> p = parse_decimal(s.substr(colon + 1), 65535);
    if (!p || *p == 0) return "port must be a number from 1 to 65535";
    *port = uint16_t(*p);
  }
  return parse_ipv4(host_text, host);
}

bool is_pchar(char c) {  // RFC 3986 pchar minus '%' (checked apart)
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c)) return true;
  return std::string_view("-._~!$&'()*+,;=:@").find(c) != std::string_view::npos;
}

bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

std::optional<std::string> check_base_path(std::string_view path) {
  for (size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c == '?' || c == '#') return "a query or fragment is not allowed";
    if (c == '/') {
      if (i + 1 < path.size() && path[i + 1] == '/') return "the path has an empty segment";
      continue;
    }
    if (c == '%') {
      if (i + 2 >= path.size() || !is_hex(path[i + 1]) || !is_hex(path[i + 2])) {
        return "'%' in the path must start a %XX escape";
      }
      i += 2;
      continue;
    }
    if (!is_pchar(c)) return "the path has a character that must be %-escaped";
  }
  return std::nullopt;
}

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

}  // namespace

std::string Address::to_string() const { return fmt::format("{}:{}", host, port); }

std::string AppUrl::to_string() const {
  return fmt::format("http://{}:{}{}", host, port, base_path);
}

std::optional<std::string> parse_address(std::string_view text, Address* out) {
  Address a;
  if (auto bad = parse_host_port(text, std::nullopt, &a.host, &a.port)) {
    return fmt::format("\"{}\" is not \"IPv4:port\" such as \"127.0.0.1:7300\": {}",
                       printable(text), *bad);
  }
  *out = std::move(a);
  return std::nullopt;
}

std::optional<std::string> parse_app_url(std::string_view text, AppUrl* out) {
  auto bad = [&](std::string_view why) {
    return fmt::format("\"{}\" is not \"http://IPv4[:port][/path]\": {}", printable(text), why);
  };
  if (iequals_prefix(text, "https://")) {
    return fmt::format(
        "\"{}\": https is not supported (raftd calls its app over plain HTTP; keep the app on "
        "loopback or a private network)",
        printable(text));
  }
  if (!iequals_prefix(text, "http://")) return bad("it must start with http://");
  std::string_view rest = text.substr(7);
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  std::string_view path = end == std::string_view::npos ? "" : rest.substr(end);
  if (authority.find('@') != std::string_view::npos) return bad("user info is not supported");
  AppUrl u;
  if (auto why = parse_host_port(authority, uint16_t(80), &u.host, &u.port)) return bad(*why);
  if (auto why = check_base_path(path)) return bad(*why);
  while (path.ends_with('/')) path.remove_suffix(1);
  u.base_path = std::string(path);
  *out = std::move(u);
  return std::nullopt;
}

std::optional<std::string> parse_encoding(std::string_view text, AppEncoding* out) {
  if (text == "binary") {
    *out = AppEncoding::kBinary;
  } else if (text == "json") {
    *out = AppEncoding::kJson;
  } else {
    return fmt::format("\"{}\" is not \"binary\" or \"json\"", printable(text));
  }
  return std::nullopt;
}

std::optional<std::string> parse_level(std::string_view text, raftd::log::Level* out) {
  for (auto l : {raftd::log::Level::kDebug, raftd::log::Level::kInfo, raftd::log::Level::kWarn,
                 raftd::log::Level::kError}) {
    if (text == level_name(l)) {
      *out = l;
      return std::nullopt;
    }
  }
  return fmt::format("\"{}\" is not \"debug\", \"info\", \"warn\" or \"error\"", printable(text));
}

std::optional<std::string> check_token(std::string_view text) {
  if (text.empty()) return "must not be empty (leave the key out for no token)";
  if (text.size() > kTokenBytesMax) {
    return fmt::format("is {} bytes, more than {}", text.size(), kTokenBytesMax);
  }
  for (char c : text) {
    if (c < 0x21 || c > 0x7e) return "must be visible ASCII (no spaces or control characters)";
  }
  return std::nullopt;
}

std::optional<std::string> check_path(std::string_view text) {
  if (text.empty()) return "must not be empty";
  if (text.size() > kPathBytesMax) {
    return fmt::format("is {} bytes, more than {}", text.size(), kPathBytesMax);
  }
  for (char c : text) {
    if ((unsigned char)c < 0x20 || c == 0x7f) return "must not contain control characters";
  }
  return std::nullopt;
}

std::string_view encoding_name(AppEncoding e) {
  return e == AppEncoding::kJson ? "json" : "binary";
}

std::string_view level_name(raftd::log::Level l) {
  switch (l) {
    case raftd::log::Level::kDebug: return "debug";
    case raftd::log::Level::kInfo: return "info";
    case raftd::log::Level::kWarn: return "warn";
    case raftd::log::Level::kError: return "error";
  }
  return "info";
}

std::string toml_quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    unsigned char u = (unsigned char)c;
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      out += fmt::format("\\u{:04X}", unsigned(u));
    } else {
      out += c;  // UTF-8 passes through: toml++ validated it on input
    }
  }
  return out + "\"";
}

std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 80)) {
    unsigned char u = (unsigned char)c;
    if (u < 0x20 || u >= 0x7f) {
      out += fmt::format("\\x{:02x}", unsigned(u));
    } else {
      out += c;
    }
  }
  if (s.size() > 80) out += "...";
  return out;
}

std::string field_text(const FieldRef& f) {
  struct Visitor {
    std::string operator()(uint32_t* v) const { return std::to_string(*v); }
    std::string operator()(uint64_t* v) const { return std::to_string(*v); }
    std::string operator()(bool* v) const { return *v ? "true" : "false"; }
    std::string operator()(NodeId* v) const { return std::to_string(v->value()); }
    std::string operator()(std::string* v) const { return toml_quote(*v); }
    std::string operator()(std::optional<std::string>* v) const {
      return v->has_value() ? toml_quote(**v) : "";
    }
    std::string operator()(Address* v) const { return toml_quote(v->to_string()); }
    std::string operator()(AppUrl* v) const { return toml_quote(v->to_string()); }
    std::string operator()(AppEncoding* v) const { return toml_quote(encoding_name(*v)); }
    std::string operator()(raftd::log::Level* v) const { return toml_quote(level_name(*v)); }
    std::string operator()(std::vector<Member>* v) const {
      if (v->empty()) return "[]";
      std::string s = "[\n";
      for (const Member& m : *v) {
        s += fmt::format("  {{ id = {}, peer = {}, client = {} }},\n", m.id.value(),
                         toml_quote(m.peer.to_string()), toml_quote(m.client.to_string()));
      }
      return s + "]";
    }
  };
  return std::visit(Visitor{}, f);
}

}  // namespace raftd::config
