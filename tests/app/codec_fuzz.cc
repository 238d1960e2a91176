// libFuzzer target for the entry-batch codec (include/raftd/app/codec.h), compiled with the codec
// instrumented (-fsanitize=fuzzer-no-link). Byte 0 picks the decoder (bit 0: binary or json;
// bit 1: request or answer), the rest is the body. For every input: decoding returns a Status or
// a value, never crashes; an accepted body re-encodes to a body that decodes to the same value;
// match_results accepts the answer paired with its own indexes and refuses it paired with
// indexes that differ; base64_decode of an accepted string re-encodes to the same string.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "raftd/app/codec.h"

namespace {

using namespace raftd;
using namespace raftd::app;

#define FUZZ_CHECK(cond)                                                           \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      std::fprintf(stderr, "codec_fuzz: %s failed at line %d\n", #cond, __LINE__); \
      std::abort();                                                                \
    }                                                                              \
  } while (0)

void check_entries(Encoding e, std::string_view body) {
  Result<EntryBatch> batch = decode_entries(e, body);
  if (!batch) {
    FUZZ_CHECK(batch.status().code() == Code::kCorruption ||
               batch.status().code() == Code::kTooLarge);
    return;
  }
  const std::string again = encode_entries(e, *batch);
  Result<EntryBatch> back = decode_entries(e, again);
  FUZZ_CHECK(back.is_ok());
  FUZZ_CHECK(*back == *batch);
  // binary bodies are canonical: the only accepted encoding of their value.
  if (e == Encoding::kBinary) FUZZ_CHECK(again == body);
}

void check_results(Encoding e, std::string_view body) {
  Result<std::vector<Record>> results = decode_results(e, body);
  if (!results) {
    FUZZ_CHECK(results.status().code() == Code::kCorruption ||
               results.status().code() == Code::kTooLarge);
    return;
  }
  const std::string again = encode_results(e, *results);
  Result<std::vector<Record>> back = decode_results(e, again);
  FUZZ_CHECK(back.is_ok());
  FUZZ_CHECK(*back == *results);
  if (e == Encoding::kBinary) FUZZ_CHECK(again == body);

  std::vector<LogIndex> request;
  for (const Record& r : *results) request.push_back(r.index);
  Result<std::vector<Record>> matched = decode_answer(e, body, request);
  FUZZ_CHECK(matched.is_ok());
  FUZZ_CHECK(matched->size() == request.size());
  if (!body.empty()) {
    FUZZ_CHECK(*matched == *results);
    std::vector<LogIndex> other = request;
    other.push_back(request.empty() ? LogIndex(1) : request.back() + 1);
    FUZZ_CHECK(!decode_answer(e, body, other).is_ok());
    if (!request.empty()) {
      other = request;
      other.front() = other.front() + 1;  // differs from the answer's first index
      FUZZ_CHECK(!decode_answer(e, body, other).is_ok());
    }
  }
}

void check_base64(std::string_view text) {
  Result<std::string> bytes = base64_decode(text);
  if (bytes) FUZZ_CHECK(base64_encode(*bytes) == text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Encoding e = (data[0] & 1) != 0 ? Encoding::kJson : Encoding::kBinary;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((data[0] & 2) != 0) {
    check_results(e, body);
  } else {
    check_entries(e, body);
  }
  check_base64(body);
  return 0;
}
