// raftd-lincheck-gen: writes a random register history (JSON lines, raftd-lincheck's input) to
// standard output, linearizable by construction, or with one stale read (--stale-read). Used
// to test and benchmark the checker.
#include <charconv>
#include <iostream>
#include <string>
#include <string_view>

#include "lincheck_gen.h"

namespace {

constexpr std::string_view kHelp = R"(usage: raftd-lincheck-gen [options] > history.jsonl

Writes a random linearizable register history (see raftd-lincheck --help for the format).
  --seed S         PRNG seed (default 1)
  --ops N          operations (default 1000)
  --processes P    concurrent client processes (default 10)
  --keys K         keys (default 1)
  --info-ppm X     chance per million that a response is lost (info) (default 10000)
  --fail-ppm X     chance per million that a request fails before running (default 10000)
  --stale-read     make one late read return an overwritten value (not linearizable)
)";

bool parse_u64(std::string_view v, uint64_t& out) {
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  return ec == std::errc() && end == v.data() + v.size();
}

}  // namespace

int main(int argc, char** argv) {
  raftd::lincheck::GenOptions o;
  bool stale = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help") {
      std::cout << kHelp;
      return 0;
    }
    if (arg == "--stale-read") {
      stale = true;
      continue;
    }
    uint64_t v = 0;
    if (i + 1 == argc || !parse_u64(argv[i + 1], v)) {
      std::cerr << "raftd-lincheck-gen: bad or missing value for " << arg << "\n";
      return 2;
    }
    ++i;
    if (arg == "--seed") {
      o.seed = v;
    } else if (arg == "--ops") {
      o.ops = v;
    } else if (arg == "--processes" && v > 0 && v < 1'000'000) {
      o.processes = static_cast<int>(v);
    } else if (arg == "--keys" && v > 0 && v < 1'000'000) {
      o.keys = static_cast<int>(v);
    } else if (arg == "--info-ppm" && v <= 1'000'000) {
      o.info_per_million = static_cast<uint32_t>(v);
    } else if (arg == "--fail-ppm" && v <= 1'000'000) {
      o.fail_per_million = static_cast<uint32_t>(v);
    } else {
      std::cerr << "raftd-lincheck-gen: bad option " << arg << "\n";
      return 2;
    }
  }
  auto events = raftd::lincheck::generate_history(o);
  if (stale && !raftd::lincheck::add_stale_read(events, o.seed)) {
    std::cerr << "raftd-lincheck-gen: no read can be made stale\n";
    return 1;
  }
  for (const auto& e : events) std::cout << raftd::lincheck::to_json_line(e) << "\n";
  return 0;
}
