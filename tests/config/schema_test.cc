// The schema table itself, and raftd.toml(5) against it: the man page documents exactly the
// schema's keys, each with the summary line (type, unit, default, range) the schema produces,
// and its example parses. RAFTD_SOURCE_ROOT names the source tree (set by meson).
#include "raftd/config/schema.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "raftd/config/config.h"

namespace raftd::config {
namespace {

std::vector<std::string> man_lines() {
  const char* root = std::getenv("RAFTD_SOURCE_ROOT");
  REQUIRE_MESSAGE(root != nullptr, "RAFTD_SOURCE_ROOT is not set");
  std::ifstream in(std::string(root) + "/man/raftd.toml.5");
  REQUIRE_MESSAGE(in.good(), "cannot read man/raftd.toml.5");
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

// Roff escapes used in the page back to plain text.
std::string unroff(std::string s) {
  for (auto [from, to] : {std::pair{"\\-", "-"}, std::pair{"\\e", "\\"}, std::pair{"\\&", ""}}) {
    for (size_t at = 0; (at = s.find(from, at)) != std::string::npos;) {
      s.replace(at, std::string_view(from).size(), to);
      at += std::string_view(to).size();
    }
  }
  return s;
}

TEST_CASE("config::schema: keys are unique, in known sections, defaults within their range") {
  std::set<std::string> seen;
  std::set<std::string_view> sections_seen;
  Config defaults;
  for (const KeySpec& s : schema()) {
    std::string key = fmt::format("{}.{}", s.section, s.name);
    CHECK_MESSAGE(seen.insert(key).second, key);
    bool known = false;
    for (std::string_view sec : sections()) known = known || sec == s.section;
    CHECK_MESSAGE(known, key);
    sections_seen.insert(s.section);
    CHECK_MESSAGE(!s.doc.empty(), key);
    if (s.type == KeyType::kInteger) {
      CHECK_MESSAGE(s.min <= s.max, key);
      if (s.presence == Presence::kDefault) {
        uint64_t v = std::stoull(value_text(s, defaults));
        CHECK_MESSAGE((s.min <= v && v <= s.max), key << " default " << v);
      }
    } else {
      CHECK_MESSAGE(!s.values.empty(), key);
    }
  }
  CHECK(sections_seen.size() == sections().size());
  CHECK(summary_line(schema()[0]) == "integer; required; range 1 to 9223372036854775807");
}

TEST_CASE("config::schema: raftd.toml(5) lists the schema's keys with the same summary") {
  std::vector<std::string> lines = man_lines();
  std::map<std::string, std::string> documented;  // "section.key" -> summary line
  std::string section;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& l = lines[i];
    if (l.starts_with(".SS [") && l.ends_with("]")) {
      section = l.substr(5, l.size() - 6);
    } else if (l.starts_with(".SH ")) {
      section.clear();
    } else if (!section.empty() && l == ".TP" && i + 2 < lines.size() &&
               lines[i + 1].starts_with(".B ")) {
      std::string key = section + "." + unroff(lines[i + 1].substr(3));
      CHECK_MESSAGE(documented.emplace(key, unroff(lines[i + 2])).second, "twice: " << key);
    }
  }
  for (const KeySpec& s : schema()) {
    std::string key = fmt::format("{}.{}", s.section, s.name);
    auto it = documented.find(key);
    if (it == documented.end()) {
      FAIL_CHECK("raftd.toml(5) lacks " << key << "; its summary line is: " << summary_line(s));
      continue;
    }
    CHECK_MESSAGE(it->second == summary_line(s), key << ": man page says \"" << it->second
                                                     << "\", schema says \"" << summary_line(s)
                                                     << "\"");
    documented.erase(it);
  }
  for (const auto& [key, summary] : documented) {
    FAIL_CHECK("raftd.toml(5) documents " << key << ", which the schema does not have");
  }
}

TEST_CASE("config::schema: raftd.toml(5)'s EXAMPLE is a valid config") {
  std::vector<std::string> lines = man_lines();
  std::string text;
  bool in_example = false, in_block = false;
  for (const std::string& l : lines) {
    if (l.starts_with(".SH ")) in_example = l == ".SH EXAMPLE";
    if (!in_example) continue;
    if (l == ".nf") {
      in_block = true;
    } else if (l == ".fi") {
      in_block = false;
    } else if (in_block) {
      text += unroff(l) + "\n";
    }
  }
  REQUIRE(text.find("[node]") != std::string::npos);
  Result<Config> r = parse_config(text, "raftd.toml(5) EXAMPLE", ConfigEnv{});
  REQUIRE_MESSAGE(r.is_ok(), r.status().message() << "\n" << text);
  CHECK(r->cluster.initial.size() == 3);
}

}  // namespace
}  // namespace raftd::config
