// The configuration loader: TOML through toml++, every key checked against the schema table,
// then the rules that tie keys together. Error format and rules: config.h, raftd.toml(5).
#include "raftd/config/config.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <limits>
#include <map>
#include <set>

#include "config/values.h"
#include "raftd/config/schema.h"

namespace raftd::config {

namespace {

constexpr uint64_t kIdMax = uint64_t(std::numeric_limits<int64_t>::max());

std::string_view type_name(toml::node_type t) {
  switch (t) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a floating-point number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

uint32_t line_of(const toml::source_region& r) { return r.begin.line ? r.begin.line : 1; }

// toml++ 3.3 (Debian 12) parses a table header whose first key character is neither a bare-key
// character nor a quote ("[&", "[[=") with a broken precondition: an assertion in debug builds,
// undefined behaviour in release builds (upstream issue marzer/tomlplusplus#294, fixed by PR
// #301). Such input is refused here, before toml++ sees it. The scan follows statements,
// strings, comments and value brackets so that a '[' inside a value or a string is not taken for
// a header. The same 3.3 parser asserts on a '}' where an array expects a value ("[}",
// "[1,}"), so a closing bracket that does not match the open one is refused too, and it reaches
// an unreachable branch when it checks a non-ASCII character outside a string for whitespace
// ("a = \u045e" written raw), so such bytes are refused (TOML allows them only in strings and
// comments). Returns the 1-based line and what is wrong.
bool is_key_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '"' || c == '\'';
}

bool is_value_end(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ']' || c == '}' || c == ',' ||
         c == '#';
}

bool is_bare_value_start(char c) {
  return !is_value_end(c) && c != '"' && c != '\'' && c != '[' && c != '{' && c != '=';
}

struct SyntaxProblem {
  uint32_t line;
  std::string_view what;
};

std::optional<SyntaxProblem> toml_precheck(std::string_view t) {
  uint32_t line = 1;
  std::string open;  // brackets and braces open, innermost last
  bool line_start = true;
  bool in_value = false;  // after '=' (or in an array), not in an inline table's key
  auto blank = [&](size_t i) { return i < t.size() && (t[i] == ' ' || t[i] == '\t'); };
  for (size_t i = 0; i < t.size(); ++i) {
    char c = t[i];
    if (c == '\n') {
      ++line;
      line_start = open.empty();
      in_value = in_value && !open.empty();
      continue;
    }
    if (line_start && (c == ' ' || c == '\t' || c == '\r')) continue;
    if (line_start && c == '[') {
      size_t j = i + 1;
      bool spaced = blank(j);
      while (blank(j)) ++j;
      if (!spaced && j < t.size() && t[j] == '[') ++j;
      while (blank(j)) ++j;
      if (j < t.size() && t[j] != ']' && !is_key_start(t[j])) {
        return SyntaxProblem{line, "a table header must start with a key"};
      }
    }
    line_start = false;
    if (static_cast<unsigned char>(c) >= 0x80) {
      return SyntaxProblem{line, "a character outside strings and comments is not ASCII"};
    }
    if (c == ':') {
      // Only times and date-times have ':' outside strings; raftd.toml has none, and toml++ 3.3
      // asserts on some malformed times ("1979-05-27T/07:32:00").
      return SyntaxProblem{line, "':' outside a string (raftd.toml has no times or dates)"};
    }
    if (in_value && is_bare_value_start(c)) {
      // toml++ reads a bare value (number, boolean, date) up to 127 characters ahead until a
      // terminator, asking of each whether it is whitespace: that question is the unreachable
      // branch for some non-ASCII characters, even ones a string after the value holds.
      for (size_t j = i; j < t.size() && j < i + 128 && !is_value_end(t[j]); ++j) {
        if (static_cast<unsigned char>(t[j]) >= 0x80) {
          return SyntaxProblem{line, "a value runs into a non-ASCII character"};
        }
      }
    }
    if (c == '=') {
      in_value = true;
    } else if (c == '{') {
      in_value = false;
    } else if (c == ',' && !open.empty() && open.back() == '{') {
      in_value = false;
    } else if (c == '}') {
      in_value = true;  // the inline table was a value
    }
    if (c == '#') {
      while (i + 1 < t.size() && t[i + 1] != '\n') ++i;
    } else if (c == '"' || c == '\'') {
      const bool basic = c == '"';
      const bool multi = t.substr(i, 3) == std::string_view(basic ? "\"\"\"" : "\'\'\'");
      i += multi ? 3 : 1;
      for (; i < t.size(); ++i) {
        if (basic && t[i] == '\\') {
          // toml++ asks whether the character after a backslash, and the first one after a
          // line-ending backslash's whitespace, is whitespace: the same unreachable branch.
          size_t j = i + 1;
          while (multi && j < t.size() &&
                 (t[j] == ' ' || t[j] == '\t' || t[j] == '\r' || t[j] == '\n')) {
            ++j;
          }
          if (j < t.size() && static_cast<unsigned char>(t[j]) >= 0x80) {
            return SyntaxProblem{line,
                                 "a backslash in a string is followed by a non-ASCII character"};
          }
          if (i + 1 < t.size() && t[i + 1] == '\n') ++line;
          ++i;
        } else if (t[i] == '\n') {
          ++line;
          if (!multi) break;
        } else if (t[i] == c &&
                   (!multi || t.substr(i, 3) == std::string_view(basic ? "\"\"\"" : "\'\'\'"))) {
          // Up to two quotes before the closing three belong to the string ( ends
          // a string that ends in two quotes).
          for (int extra = 0; multi && extra < 2 && i + 3 < t.size() && t[i + 3] == c; ++extra) {
            ++i;
          }
          i += multi ? 2 : 0;
          break;
        }
      }
      if (i < t.size() && t[i] == '\n') line_start = open.empty();
    } else if (c == '[' || c == '{') {
      open += c;
    } else if ((c == ']' || c == '}') && !open.empty()) {
      if (open.back() != (c == ']' ? '[' : '{')) {
        return SyntaxProblem{line, "a closing bracket does not match the open one"};
      }
      open.pop_back();
    }
  }
  return std::nullopt;
}

// One problem found while reading keys: reported by line, so the message names the earliest.
struct Problem {
  uint32_t line;
  std::string key;
  std::string what;
};

class Loader {
 public:
  Loader(std::string_view source, const ConfigEnv& env) : source_(source), env_(env) {}

  Result<Config> run(std::string_view text);

 private:
  Status fail(uint32_t line, std::string_view key, std::string_view what) const {
    return Status(Code::kInvalidArgument,
                  fmt::format("{}:{}: key '{}': {}", printable(source_), line, key, what));
  }
  void problem(uint32_t line, std::string key, std::string what) {
    problems_.push_back({line, std::move(key), std::move(what)});
  }
  // The line of a key's value, or of its table when the key is absent, or 1.
  uint32_t line(std::string_view key) const {
    auto it = lines_.find(std::string(key));
    return it == lines_.end() ? 1 : it->second;
  }

  void check_structure(const toml::table& root);
  void read_key(const KeySpec& spec, const toml::table* table);
  void read_value(const KeySpec& spec, const std::string& key, const toml::node& node);
  void read_members(const std::string& key, const toml::node& node, std::vector<Member>* out);
  std::optional<Member> read_member(const std::string& key, const toml::table& t);
  void apply_env();
  Status check_rules() const;
  Status check_members() const;

  std::string_view source_;
  const ConfigEnv& env_;
  Config cfg_;
  std::vector<Problem> problems_;
  std::map<std::string, uint32_t> lines_;
  std::vector<uint32_t> member_lines_;
};

Result<Config> Loader::run(std::string_view text) {
  if (text.size() > kConfigBytesMax) {
    return Status(Code::kTooLarge, fmt::format("{}:1: the file is larger than {} bytes",
                                               printable(source_), kConfigBytesMax));
  }
  if (std::optional<SyntaxProblem> p = toml_precheck(text)) {
    return Status(Code::kInvalidArgument, fmt::format("{}:{}: TOML syntax error: {}",
                                                      printable(source_), p->line, p->what));
  }
  toml::table root;
  try {
    root = toml::parse(text, source_);
  } catch (const toml::parse_error& e) {
    return Status(
        Code::kInvalidArgument,
        fmt::format("{}:{}: TOML syntax error: {} (column {})", printable(source_),
                    line_of(e.source()), printable(e.description()), e.source().begin.column));
  }
  check_structure(root);
  for (const KeySpec& spec : schema()) {
    const toml::table* table = root[spec.section].as_table();
    read_key(spec, table);
  }
  apply_env();
  if (!problems_.empty()) {
    const Problem* first = &problems_[0];
    for (const Problem& p : problems_) {
      if (p.line < first->line) first = &p;
    }
    return fail(first->line, first->key, first->what);
  }
  if (Status s = check_rules(); !s) return s;
  return std::move(cfg_);
}

// Unknown tables and keys, and sections that are not tables.
void Loader::check_structure(const toml::table& root) {
  std::set<std::string_view> known;
  for (std::string_view s : sections()) known.insert(s);
  for (auto&& [k, v] : root) {
    std::string key = printable(k.str());
    if (!known.contains(k.str())) {
      problem(line_of(k.source()), key, v.is_table() ? "unknown table" : "unknown key");
    } else if (!v.is_table()) {
      problem(line_of(v.source()), key,
              fmt::format("must be a table, not {}", type_name(v.type())));
    } else {
      for (auto&& [name, value] : *v.as_table()) {
        bool found = false;
        for (const KeySpec& spec : schema()) {
          found = found || (spec.section == k.str() && spec.name == name.str());
        }
        if (!found) {
          problem(line_of(name.source()), fmt::format("{}.{}", key, printable(name.str())),
                  value.is_table() ? "unknown table" : "unknown key");
        }
      }
    }
  }
}

void Loader::read_key(const KeySpec& spec, const toml::table* table) {
  std::string key = fmt::format("{}.{}", spec.section, spec.name);
  const toml::node* node = table ? table->get(spec.name) : nullptr;
  if (node == nullptr) {
    uint32_t l = table ? line_of(table->source()) : 1;
    lines_[key] = l;
    if (spec.presence == Presence::kRequired) problem(l, key, "missing (required)");
    return;
  }
  lines_[key] = line_of(node->source());
  read_value(spec, key, *node);
}

void Loader::read_value(const KeySpec& spec, const std::string& key, const toml::node& node) {
  const uint32_t l = line_of(node.source());
  std::string_view want = spec.type == KeyType::kInteger   ? "an integer"
                          : spec.type == KeyType::kBoolean ? "a boolean"
                          : spec.type == KeyType::kString  ? "a string"
                                                           : "an array of tables";
  bool type_ok = (spec.type == KeyType::kInteger && node.is_integer()) ||
                 (spec.type == KeyType::kBoolean && node.is_boolean()) ||
                 (spec.type == KeyType::kString && node.is_string()) ||
                 (spec.type == KeyType::kArray && node.is_array());
  if (!type_ok) {
    problem(l, key, fmt::format("must be {}, not {}", want, type_name(node.type())));
    return;
  }
  uint64_t n = 0;
  if (spec.type == KeyType::kInteger) {
    int64_t v = node.as_integer()->get();
    if (v < 0 || uint64_t(v) < spec.min || uint64_t(v) > spec.max) {
      problem(l, key, fmt::format("{} is out of range ({} to {})", v, spec.min, spec.max));
      return;
    }
    n = uint64_t(v);
  }
  std::string_view s = node.is_string() ? std::string_view(node.as_string()->get()) : "";
  std::optional<std::string> bad;
  FieldRef f = spec.field(cfg_);
  if (auto* p = std::get_if<uint32_t*>(&f)) **p = uint32_t(n);
  if (auto* p = std::get_if<uint64_t*>(&f)) **p = n;
  if (auto* p = std::get_if<NodeId*>(&f)) **p = NodeId(n);
  if (auto* p = std::get_if<bool*>(&f)) **p = node.as_boolean()->get();
  if (auto* p = std::get_if<std::string*>(&f)) {
    bad = check_path(s);
    if (!bad) **p = std::string(s);
  }
  if (auto* p = std::get_if<std::optional<std::string>*>(&f)) {
    bad = check_token(s);
    if (!bad) **p = std::string(s);
  }
  if (auto* p = std::get_if<Address*>(&f)) bad = parse_address(s, *p);
  if (auto* p = std::get_if<AppUrl*>(&f)) bad = parse_app_url(s, *p);
  if (auto* p = std::get_if<AppEncoding*>(&f)) bad = parse_encoding(s, *p);
  if (auto* p = std::get_if<raftd::log::Level*>(&f)) bad = parse_level(s, *p);
  if (auto* p = std::get_if<std::vector<Member>*>(&f)) read_members(key, node, *p);
  if (bad) problem(l, key, *bad);
}

void Loader::read_members(const std::string& key, const toml::node& node,
                          std::vector<Member>* out) {
  const toml::array& a = *node.as_array();
  if (a.size() > kInitialMembersMax) {
    problem(line_of(node.source()), key,
            fmt::format("{} members, more than {}", a.size(), kInitialMembersMax));
    return;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    std::string k = fmt::format("{}[{}]", key, i);
    const toml::table* t = a[i].as_table();
    if (t == nullptr) {
      problem(line_of(a[i].source()), k,
              fmt::format("must be a table {{id, peer, client}}, not {}", type_name(a[i].type())));
      continue;
    }
    if (std::optional<Member> m = read_member(k, *t)) {
      out->push_back(std::move(*m));
      member_lines_.push_back(line_of(t->source()));
    }
  }
}

std::optional<Member> Loader::read_member(const std::string& key, const toml::table& t) {
  const size_t before = problems_.size();
  for (auto&& [name, value] : t) {
    if (name.str() != "id" && name.str() != "peer" && name.str() != "client") {
      problem(line_of(name.source()), fmt::format("{}.{}", key, printable(name.str())),
              "unknown key (an entry has id, peer and client)");
    }
  }
  Member m;
  const toml::node* id = t.get("id");
  if (id == nullptr) {
    problem(line_of(t.source()), key + ".id", "missing (required)");
  } else if (!id->is_integer()) {
    problem(line_of(id->source()), key + ".id",
            fmt::format("must be an integer, not {}", type_name(id->type())));
  } else if (int64_t v = id->as_integer()->get(); v < 1) {
    problem(line_of(id->source()), key + ".id",
            fmt::format("{} is out of range (1 to {})", v, kIdMax));
  } else {
    m.id = NodeId(uint64_t(v));
  }
  for (auto [name, addr] : {std::pair{"peer", &m.peer}, std::pair{"client", &m.client}}) {
    const toml::node* n = t.get(name);
    std::string k = fmt::format("{}.{}", key, name);
    if (n == nullptr) {
      problem(line_of(t.source()), k, "missing (required)");
    } else if (!n->is_string()) {
      problem(line_of(n->source()), k,
              fmt::format("must be a string, not {}", type_name(n->type())));
    } else if (auto bad = parse_address(n->as_string()->get(), addr)) {
      problem(line_of(n->source()), k, *bad);
    } else if (addr->host == "0.0.0.0") {
      problem(line_of(n->source()), k,
              "0.0.0.0 is not an address other nodes can connect to: name this node's address");
    }
  }
  if (problems_.size() != before) return std::nullopt;
  return m;
}

void Loader::apply_env() {
  if (!env_.raft_sync) return;
  const std::string& v = *env_.raft_sync;
  if (v == "1" || v == "true") {
    cfg_.app.sync = true;
  } else if (!(v.empty() || v == "0" || v == "false")) {
    problem(line("app.sync"), "app.sync",
            fmt::format("environment variable RAFT_SYNC is \"{}\"; use 1 (sync on) or 0",
                        printable(v)));
  }
}

Status Loader::check_rules() const {
  const Config& c = cfg_;
  if (c.raft.heartbeat_ticks >= c.raft.election_ticks) {
    return fail(line("raft.heartbeat_ticks"), "raft.heartbeat_ticks",
                fmt::format("{} must be less than raft.election_ticks ({})", c.raft.heartbeat_ticks,
                            c.raft.election_ticks));
  }
  if (c.app.retry_min_ms > c.app.retry_max_ms) {
    return fail(line("app.retry_max_ms"), "app.retry_max_ms",
                fmt::format("{} must be at least app.retry_min_ms ({})", c.app.retry_max_ms,
                            c.app.retry_min_ms));
  }
  if (c.transport.reconnect_min_ms > c.transport.reconnect_max_ms) {
    return fail(line("transport.reconnect_max_ms"), "transport.reconnect_max_ms",
                fmt::format("{} must be at least transport.reconnect_min_ms ({})",
                            c.transport.reconnect_max_ms, c.transport.reconnect_min_ms));
  }
  if (c.wal.segment_bytes % wal::kSegmentHeaderBytes != 0) {
    return fail(
        line("wal.segment_bytes"), "wal.segment_bytes",
        fmt::format("{} must be a multiple of {}", c.wal.segment_bytes, wal::kSegmentHeaderBytes));
  }
  if (c.wal.batch_bytes_max > c.wal.segment_bytes / 4) {
    return fail(line("wal.batch_bytes_max"), "wal.batch_bytes_max",
                fmt::format("{} must be at most wal.segment_bytes / 4 ({})", c.wal.batch_bytes_max,
                            c.wal.segment_bytes / 4));
  }
  if (c.limits.client_body_bytes_max > c.wal.batch_bytes_max / 2) {
    return fail(line("limits.client_body_bytes_max"), "limits.client_body_bytes_max",
                fmt::format("{} must be at most wal.batch_bytes_max / 2 ({}): a proposal must fit "
                            "one WAL batch",
                            c.limits.client_body_bytes_max, c.wal.batch_bytes_max / 2));
  }
  if (c.transport.queue_bytes_max < c.raft.max_msg_bytes) {
    return fail(line("transport.queue_bytes_max"), "transport.queue_bytes_max",
                fmt::format("{} must be at least raft.max_msg_bytes ({})",
                            c.transport.queue_bytes_max, c.raft.max_msg_bytes));
  }
  const Address& a = c.listen.client;
  const Address& b = c.listen.peer;
  if (a.port == b.port && (a.host == b.host || a.host == "0.0.0.0" || b.host == "0.0.0.0")) {
    return fail(line("listen.peer"), "listen.peer",
                fmt::format("\"{}\" overlaps listen.client (\"{}\"): they need distinct ports",
                            b.to_string(), a.to_string()));
  }
  return check_members();
}

// A listen address matches an advertised one when the ports are equal and the listen host is
// the same or the wildcard.
bool matches(const Address& listen, const Address& advertised) {
  return listen.port == advertised.port &&
         (listen.host == "0.0.0.0" || listen.host == advertised.host);
}

// cluster.initial: ids and addresses unique; this node's own entry, when listed, is where its
// [listen] addresses are (etcd refuses an --initial-cluster whose entry for this member
// disagrees with its advertised peer URLs).
Status Loader::check_members() const {
  const std::vector<Member>& ms = cfg_.cluster.initial;
  std::map<NodeId, size_t> ids;
  std::map<std::string, std::string> addrs;  // address -> which key has it
  for (size_t i = 0; i < ms.size(); ++i) {
    const Member& m = ms[i];
    std::string key = fmt::format("cluster.initial[{}]", i);
    if (auto [it, fresh] = ids.emplace(m.id, i); !fresh) {
      return fail(member_lines_[i], key + ".id",
                  fmt::format("node {} is listed twice (also cluster.initial[{}])", m.id.value(),
                              it->second));
    }
    for (auto [name, addr] : {std::pair{"peer", &m.peer}, std::pair{"client", &m.client}}) {
      std::string k = fmt::format("{}.{}", key, name);
      if (auto [it, fresh] = addrs.emplace(addr->to_string(), k); !fresh) {
        return fail(member_lines_[i], k,
                    fmt::format("\"{}\" is also {}", addr->to_string(), it->second));
      }
    }
    if (m.id != cfg_.node.id) continue;
    if (!matches(cfg_.listen.peer, m.peer)) {
      return fail(member_lines_[i], key + ".peer",
                  fmt::format("this node's entry has \"{}\" but listen.peer is \"{}\"",
                              m.peer.to_string(), cfg_.listen.peer.to_string()));
    }
    if (!matches(cfg_.listen.client, m.client)) {
      return fail(member_lines_[i], key + ".client",
                  fmt::format("this node's entry has \"{}\" but listen.client is \"{}\"",
                              m.client.to_string(), cfg_.listen.client.to_string()));
    }
  }
  return Status::ok();
}

}  // namespace

ConfigEnv ConfigEnv::from_process() {
  ConfigEnv env;
  if (const char* v = std::getenv("RAFT_SYNC")) env.raft_sync = v;
  return env;
}

Result<Config> parse_config(std::string_view text, std::string_view source_name,
                            const ConfigEnv& env) {
  return Loader(source_name, env).run(text);
}

Result<Config> parse_config(std::string_view text, std::string_view source_name) {
  return parse_config(text, source_name, ConfigEnv::from_process());
}

Result<Config> load_config(const std::string& path, const ConfigEnv& env) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::from_errno(errno, fmt::format("{}: cannot open", printable(path)));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status(Code::kInvalidArgument, fmt::format("{}: not a regular file", printable(path)));
  }
  // One byte more than the limit, so an oversized file is seen as such.
  std::string text(kConfigBytesMax + 1, '\0');
  size_t got = 0;
  while (got < text.size()) {
    ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return Status::from_errno(err, fmt::format("{}: cannot read", printable(path)));
    }
    if (n == 0) break;
    got += size_t(n);
  }
  ::close(fd);
  text.resize(got);
  return parse_config(text, path, env);
}

Result<Config> load_config(const std::string& path) {
  return load_config(path, ConfigEnv::from_process());
}

std::string emit_config(const Config& cfg) {
  std::string out;
  for (std::string_view section : sections()) {
    out += fmt::format("[{}]\n", section);
    for (const KeySpec& spec : schema()) {
      if (spec.section != section) continue;
      std::string v = value_text(spec, cfg);
      if (!v.empty()) out += fmt::format("{} = {}\n", spec.name, v);
    }
    out += "\n";
  }
  return out;
}

}  // namespace raftd::config
