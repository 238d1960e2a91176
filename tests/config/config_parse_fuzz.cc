// libFuzzer target over parse_config: any input either parses or fails with one line naming the
// source; an accepted config, written back by emit_config and parsed again, yields an equal
// Config and the same text. The config sources and toml++ (header-only here) are instrumented.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "raftd/base/assert.h"
#include "raftd/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace raftd::config;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  raftd::Result<Config> a = parse_config(text, "fuzz.toml", ConfigEnv{});
  if (!a.is_ok()) {
    const std::string& m = a.status().message();
    RAFTD_ASSERT(m.find('\n') == std::string::npos, "a config error spans more than one line");
    RAFTD_ASSERT(m.starts_with("fuzz.toml:"), "a config error does not name the file");
    return 0;
  }
  std::string emitted = emit_config(*a);
  raftd::Result<Config> b = parse_config(emitted, "emitted.toml", ConfigEnv{});
  RAFTD_ASSERT(b.is_ok(), "emit_config wrote a config that parse_config refuses");
  RAFTD_ASSERT(*a == *b, "a config changed on its way through emit_config and parse_config");
  RAFTD_ASSERT(emit_config(*b) == emitted, "emit_config is not stable");
  return 0;
}
