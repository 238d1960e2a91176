// Typed values of the configuration file: IPv4 addresses, the app URL, tokens, paths, the
// enumerations, and their TOML text (for emit_config and the man page's defaults). Private to
// src/config.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "raftd/config/config.h"
#include "raftd/config/schema.h"

namespace raftd::config {

// Each parse_* returns what is wrong with `text` (one line, no trailing period), or nullopt
// and fills *out.
std::optional<std::string> parse_address(std::string_view text, Address* out);
std::optional<std::string> parse_app_url(std::string_view text, AppUrl* out);
std::optional<std::string> parse_encoding(std::string_view text, AppEncoding* out);
std::optional<std::string> parse_level(std::string_view text, raftd::log::Level* out);
std::optional<std::string> check_token(std::string_view text);
std::optional<std::string> check_path(std::string_view text);

// A TOML basic string: "..." with quotes, backslashes and control characters escaped.
std::string toml_quote(std::string_view s);

// Text for error messages: `s` with control and non-ASCII bytes as \xNN, at most 80 bytes.
std::string printable(std::string_view s);

// The field's value in TOML syntax; "" for an unset optional token.
std::string field_text(const FieldRef& f);

}  // namespace raftd::config
