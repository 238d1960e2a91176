// libFuzzer target for the idempotency journal's decoder (include/raftd/node/idempotency.h,
// doc/node.md "Idempotency journal"), compiled with the decoder instrumented. For every input:
// decoding never crashes; the valid prefix and the ignored tail add up to the input; decoding the
// valid prefix alone gives the same records; every decoded record re-encodes to a record that
// decodes to itself.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "raftd/node/idempotency.h"

namespace {

using namespace raftd;
using namespace raftd::node;

#define FUZZ_CHECK(cond)                                                             \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      std::fprintf(stderr, "journal_fuzz: %s failed at line %d\n", #cond, __LINE__); \
      std::abort();                                                                  \
    }                                                                                \
  } while (0)

bool same(const JournalState& a, const JournalState& b) {
  if (a.watermark != b.watermark || a.keys.size() != b.keys.size()) return false;
  for (const auto& [g, ks] : a.keys) {
    auto it = b.keys.find(g);
    if (it == b.keys.end() || it->second.size() != ks.size()) return false;
    for (size_t i = 0; i < ks.size(); ++i) {
      const auto& x = ks[i];
      const auto& y = it->second[i];
      if (x.index != y.index || x.key != y.key || x.result != y.result) return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  JournalState st = ResultsJournal::decode(bytes);
  FUZZ_CHECK(st.valid_bytes + st.ignored_bytes == size);
  JournalState prefix = ResultsJournal::decode(bytes.substr(0, st.valid_bytes));
  FUZZ_CHECK(prefix.ignored_bytes == 0);
  FUZZ_CHECK(same(st, prefix));
  for (const auto& [g, ks] : st.keys) {
    for (const auto& k : ks) {
      std::string rec = encode_journal_key(g, k.index, k.key, k.result);
      JournalState one = ResultsJournal::decode(rec);
      FUZZ_CHECK(one.valid_bytes == rec.size());
      FUZZ_CHECK(one.keys.at(g).size() == 1);
      FUZZ_CHECK(one.keys.at(g)[0].key == k.key && one.keys.at(g)[0].result == k.result);
    }
  }
  return 0;
}
