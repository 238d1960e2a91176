// The configuration schema: ONE table of every key raftd.toml accepts, used by the loader (which
// keys exist, their type, range and where the value goes), by emit_config, and by the test that
// checks raftd.toml(5) documents the same keys with the same type, default, unit and range.
//
// Defaults are not in the table: a key's default is what a default-constructed Config holds
// (config.h, which takes them from the layers' constants), printed the way emit_config prints
// it. Rules that tie keys together (heartbeat_ticks < election_ticks, ...) are not per-key and
// live in the loader; raftd.toml(5) lists them in its RULES section.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "raftd/config/config.h"

namespace raftd::config {

// Where a key's value lives in a Config. The alternative also says how the value is parsed:
// integers (range-checked with KeySpec::min/max), booleans, free strings (control characters
// refused), optional tokens, or one of the typed values.
using FieldRef =
    std::variant<uint32_t*, uint64_t*, bool*, NodeId*, std::string*, std::optional<std::string>*,
                 Address*, AppUrl*, AppEncoding*, raftd::log::Level*, std::vector<Member>*>;

enum class KeyType { kInteger, kBoolean, kString, kArray };
enum class Presence {
  kRequired,  // no default: the file must set it
  kDefault,   // the default-constructed Config's value applies when absent
  kUnset,     // absent means off (the optional tokens)
};

struct KeySpec {
  std::string_view section;  // table name, e.g. "raft"
  std::string_view name;     // key inside it, e.g. "tick_ms"
  KeyType type;
  Presence presence;
  std::string_view unit;  // "ms", "bytes", "ticks", ... or "" for none
  uint64_t min = 0;       // integers only: inclusive range
  uint64_t max = 0;
  std::string_view values;  // non-integers: the accepted values, in words
  std::string_view doc;     // one line: what it does and why the default
  FieldRef (*field)(Config&);
};

// Every key, in file order (sections in the order raftd.toml(5) lists them).
std::span<const KeySpec> schema();

// Tables of the file, in order: node, listen, cluster, app, raft, wal, transport, limits, auth,
// log.
std::span<const std::string_view> sections();

// The value of spec's key in cfg as emit_config writes it (TOML syntax: 100, true, "info").
// For an unset optional token: "" (absent).
std::string value_text(const KeySpec& spec, const Config& cfg);

// The man page's one-line summary of a key: type, unit, default and range, e.g.
//   "integer, ms; default 100; range 1 to 60000"
// raftd.toml(5) prints exactly this line under each key (the schema test compares them).
std::string summary_line(const KeySpec& spec);

}  // namespace raftd::config
