// The entry-batch codec (include/raftd/app/codec.h): round trips in both encodings and one test
// per decoding rule.
#include "raftd/app/codec.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace {

using namespace raftd;
using namespace raftd::app;

std::string u64le(uint64_t v) {
  std::string s;
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return s;
}
std::string u32le(uint32_t v) {
  std::string s;
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return s;
}
std::string rec(uint64_t index, std::string_view data) {
  return u64le(index) + u32le(static_cast<uint32_t>(data.size())) + std::string(data);
}

std::vector<Record> sample() {
  return {Record{LogIndex(5), "hello"}, Record{LogIndex(6), ""},
          Record{LogIndex(9), std::string("\0\xff\x80 binary\n", 11)}};
}

void check_corrupt(const Status& s, std::string_view needle) {
  CHECK(s.code() == Code::kCorruption);
  CHECK_MESSAGE(s.message().find(needle) != std::string::npos, s.message());
}

}  // namespace

TEST_CASE("app::codec: binary entries have the documented byte layout") {
  EntryBatch batch{LogIndex(12), sample()};
  const std::string body = encode_entries(Encoding::kBinary, batch);
  CHECK(body == rec(5, "hello") + rec(6, "") + rec(9, std::string("\0\xff\x80 binary\n", 11)));
  Result<EntryBatch> back = decode_entries(Encoding::kBinary, body);
  REQUIRE(back.is_ok());
  CHECK(back->last_index == LogIndex(0));  // binary: the header carries it
  CHECK(back->entries == batch.entries);
  // What binary decodes (last_index 0) encodes again to the same bytes.
  CHECK(encode_entries(Encoding::kBinary, *back) == body);
}

TEST_CASE("app::codec: json entries have the documented shape and round trip") {
  EntryBatch batch{LogIndex(12), sample()};
  const std::string body = encode_entries(Encoding::kJson, batch);
  CHECK(body ==
        R"({"last_index":12,"entries":[{"index":5,"data":"aGVsbG8="},{"index":6,"data":""},)"
        R"({"index":9,"data":"AP+AIGJpbmFyeQo="}]})");
  Result<EntryBatch> back = decode_entries(Encoding::kJson, body);
  REQUIRE(back.is_ok());
  CHECK(*back == batch);
}

TEST_CASE("app::codec: a batch with only raftd's own entries has no records") {
  EntryBatch batch{LogIndex(7), {}};
  CHECK(encode_entries(Encoding::kBinary, batch).empty());
  CHECK(encode_entries(Encoding::kJson, batch) == R"({"last_index":7,"entries":[]})");
  Result<EntryBatch> back = decode_entries(Encoding::kJson, R"({"last_index":7,"entries":[]})");
  REQUIRE(back.is_ok());
  CHECK(*back == batch);
}

TEST_CASE("app::codec: results round trip in both encodings") {
  for (Encoding e : {Encoding::kBinary, Encoding::kJson}) {
    const std::vector<Record> results = sample();
    const std::string body = encode_results(e, results);
    const std::vector<LogIndex> request{LogIndex(5), LogIndex(6), LogIndex(9)};
    Result<std::vector<Record>> back = decode_answer(e, body, request);
    REQUIRE(back.is_ok());
    CHECK(*back == results);
  }
  CHECK(encode_results(Encoding::kJson, sample()) ==
        R"({"results":[{"index":5,"data":"aGVsbG8="},{"index":6,"data":""},)"
        R"({"index":9,"data":"AP+AIGJpbmFyeQo="}]})");
}

TEST_CASE("app::codec: an empty answer body means every result is empty") {
  for (Encoding e : {Encoding::kBinary, Encoding::kJson}) {
    const std::vector<LogIndex> request{LogIndex(3), LogIndex(4)};
    Result<std::vector<Record>> back = decode_answer(e, "", request);
    REQUIRE(back.is_ok());
    CHECK(*back == std::vector<Record>{{LogIndex(3), ""}, {LogIndex(4), ""}});
    CHECK(encode_results(e, {}).empty());
  }
}

TEST_CASE("app::codec: the answer must carry the request's indexes in order") {
  const std::vector<LogIndex> request{LogIndex(3), LogIndex(4), LogIndex(8)};
  // Missing one.
  check_corrupt(decode_answer(Encoding::kBinary, rec(3, "a") + rec(4, "b"), request).status(),
                "2 results for 3 entries");
  // One too many.
  check_corrupt(
      decode_answer(Encoding::kBinary, rec(3, "") + rec(4, "") + rec(8, "") + rec(9, ""), request)
          .status(),
      "4 results for 3 entries");
  // Same count, other index.
  check_corrupt(
      decode_answer(Encoding::kBinary, rec(3, "") + rec(5, "") + rec(8, ""), request).status(),
      "result 1 has index 5 where the request's entry has 4");
  // json: an empty results array is not an empty body.
  check_corrupt(decode_answer(Encoding::kJson, R"({"results":[]})", request).status(),
                "0 results for 3 entries");
}

TEST_CASE("app::codec: binary truncated records are corruption with their offset") {
  const std::string good = rec(1, "abc");
  check_corrupt(decode_results(Encoding::kBinary, good + good.substr(0, 5)).status(),
                "record 1 at byte 15: truncated header (5 of 12 bytes)");
  check_corrupt(decode_entries(Encoding::kBinary, rec(1, "abcdef").substr(0, 15)).status(),
                "record 0 at byte 0: truncated data (3 of 6 bytes)");
}

TEST_CASE("app::codec: binary trailing bytes are corruption") {
  // A trailing byte after the last record reads as a truncated header: no byte is ignored.
  check_corrupt(decode_entries(Encoding::kBinary, rec(1, "x") + "\n").status(),
                "record 1 at byte 13: truncated header");
}

TEST_CASE("app::codec: a binary length above the batch limit is refused before reading") {
  const std::string body = u64le(1) + u32le(0xffffffffu) + "abc";
  check_corrupt(decode_entries(Encoding::kBinary, body).status(),
                "length 4294967295 exceeds the batch limit");
}

TEST_CASE("app::codec: a body above the batch limit is kTooLarge") {
  const std::string body(kBatchBytesMax + 1, '\0');
  CHECK(decode_entries(Encoding::kBinary, body).status().code() == Code::kTooLarge);
  CHECK(decode_results(Encoding::kJson, body).status().code() == Code::kTooLarge);
}

TEST_CASE("app::codec: a body of more records or json values than the limits is kTooLarge") {
  std::string binary;
  for (uint64_t i = 1; i <= kRecordsMax; ++i) binary += rec(i, "");
  Result<std::vector<Record>> most = decode_results(Encoding::kBinary, binary);
  REQUIRE(most.is_ok());
  CHECK(most->size() == kRecordsMax);
  binary += rec(kRecordsMax + 1, "");
  Status over = decode_results(Encoding::kBinary, binary).status();
  CHECK(over.code() == Code::kTooLarge);
  CHECK_MESSAGE(over.message().find("more than 65536 records") != std::string::npos,
                over.message());

  std::string json = R"({"results":[)";
  for (uint64_t i = 1; i <= kRecordsMax + 1; ++i) {
    json += (i > 1 ? "," : "") + std::string(R"({"index":)") + std::to_string(i) + R"(,"data":""})";
  }
  json += "]}";
  over = decode_results(Encoding::kJson, json).status();
  CHECK(over.code() == Code::kTooLarge);
  CHECK_MESSAGE(over.message().find("more than 65536 records") != std::string::npos,
                over.message());
  // A flood of tiny values is refused before the parser builds them.
  std::string flood = R"({"results":[],"x":[)";
  for (std::size_t i = 0; i <= kJsonSeparatorsMax; ++i) flood += "1,";
  flood += "1]}";
  over = decode_results(Encoding::kJson, flood).status();
  CHECK(over.code() == Code::kTooLarge);
  CHECK_MESSAGE(over.message().find("commas") != std::string::npos, over.message());
}

TEST_CASE("app::codec: indexes must start at 1 and increase") {
  check_corrupt(decode_entries(Encoding::kBinary, rec(0, "a")).status(), "index 0");
  check_corrupt(decode_entries(Encoding::kBinary, rec(4, "a") + rec(4, "b")).status(),
                "record 1 at byte 13: index 4 does not follow index 4");
  check_corrupt(decode_results(Encoding::kBinary, rec(4, "a") + rec(3, "b")).status(),
                "index 3 does not follow index 4");
  check_corrupt(
      decode_entries(Encoding::kJson,
                     R"({"last_index":9,"entries":[{"index":5,"data":""},{"index":2,"data":""}]})")
          .status(),
      "index 2 does not follow index 5");
  check_corrupt(decode_results(Encoding::kJson, R"({"results":[{"index":0,"data":""}]})").status(),
                "index 0");
}

TEST_CASE("app::codec: json last_index must cover the entries") {
  check_corrupt(
      decode_entries(Encoding::kJson, R"({"last_index":4,"entries":[{"index":5,"data":""}]})")
          .status(),
      "last_index 4 is below the last entry's index 5");
}

TEST_CASE("app::codec: json shape errors name what is wrong") {
  auto entries = [](std::string_view body) { return decode_entries(Encoding::kJson, body); };
  auto results = [](std::string_view body) { return decode_results(Encoding::kJson, body); };
  check_corrupt(entries("{").status(), "malformed json");
  check_corrupt(entries(R"({"entries":[]} x)").status(), "malformed json");
  check_corrupt(entries("[]").status(), "not an object");
  check_corrupt(entries(R"({"entries":[]})").status(), "no \"last_index\"");
  check_corrupt(entries(R"({"last_index":-1,"entries":[]})").status(), "not an unsigned");
  check_corrupt(entries(R"({"last_index":1.5,"entries":[]})").status(), "not an unsigned");
  check_corrupt(entries(R"({"last_index":"3","entries":[]})").status(), "not an unsigned");
  check_corrupt(entries(R"({"last_index":3})").status(), "no \"entries\" array");
  check_corrupt(entries(R"({"last_index":3,"entries":{}})").status(), "not an array");
  check_corrupt(entries(R"({"last_index":3,"entries":[1]})").status(), "record 0: not an object");
  check_corrupt(entries(R"({"last_index":3,"entries":[{"data":""}]})").status(), "no \"index\"");
  check_corrupt(entries(R"({"last_index":3,"entries":[{"index":3}]})").status(), "no \"data\"");
  check_corrupt(entries(R"({"last_index":3,"entries":[{"index":3,"data":7}]})").status(),
                "\"data\" is not a string");
  check_corrupt(results(R"({"result":[]})").status(), "no \"results\" array");
  check_corrupt(results(R"("x")").status(), "not an object");
  // Members the format does not define are ignored.
  Result<std::vector<Record>> extra =
      results(R"({"results":[{"index":3,"data":"eA==","note":1}],"v":2})");
  REQUIRE(extra.is_ok());
  CHECK(*extra == std::vector<Record>{{LogIndex(3), "x"}});
}

TEST_CASE("app::codec: json nesting is bounded before parsing") {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  check_corrupt(decode_results(Encoding::kJson, deep).status(), "nested deeper than 3");
  check_corrupt(decode_results(Encoding::kJson, R"({"results":[{"index":1,"data":[]}]})").status(),
                "nested deeper than 3");
  // Brackets inside strings do not count.
  Result<std::vector<Record>> ok =
      decode_results(Encoding::kJson, R"({"results":[],"x":"[[[[\"[[[["})");
  CHECK(ok.is_ok());
}

TEST_CASE("app::codec: base64 is standard, padded and canonical") {
  CHECK(base64_encode("") == "");
  CHECK(base64_encode("f") == "Zg==");
  CHECK(base64_encode("fo") == "Zm8=");
  CHECK(base64_encode("foo") == "Zm9v");
  CHECK(base64_encode("foobar") == "Zm9vYmFy");
  CHECK(base64_encode("\xfb\xff") == "+/8=");
  for (std::string_view s : {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xfb\xff\x00"}) {
    Result<std::string> back = base64_decode(base64_encode(s));
    REQUIRE(back.is_ok());
    CHECK(*back == s);
  }
  check_corrupt(base64_decode("Zg").status(), "not a multiple of 4");
  check_corrupt(base64_decode("Zg=").status(), "not a multiple of 4");
  check_corrupt(base64_decode("Z-==").status(), "not in the alphabet");  // url-safe alphabet
  check_corrupt(base64_decode("Zm9v\nZg==").status(), "not a multiple of 4");
  check_corrupt(base64_decode("Zm9\nZg==").status(), "not in the alphabet");  // no line breaks
  check_corrupt(base64_decode("Zg==Zg==").status(), "not in the alphabet");   // padding inside
  check_corrupt(base64_decode("Z===").status(), "not in the alphabet");
  check_corrupt(base64_decode("=Zg=").status(), "not in the alphabet");
  check_corrupt(base64_decode("Zh==").status(), "non-zero pad bits");
  check_corrupt(base64_decode("Zm9=").status(), "non-zero pad bits");
  check_corrupt(
      decode_results(Encoding::kJson, R"({"results":[{"index":1,"data":"Zh=="}]})").status(),
      "json results record 0: \"data\": base64: non-zero pad bits");
}

TEST_CASE("app::codec: parse_index takes a bare decimal only") {
  CHECK(*parse_index("0") == LogIndex(0));
  CHECK(*parse_index("42") == LogIndex(42));
  CHECK(*parse_index("18446744073709551615") == LogIndex(UINT64_MAX));
  for (std::string_view bad :
       {"", " 1", "1 ", "1\n", "+1", "-1", "0x10", "1.0", "1e3", "18446744073709551616",
        "99999999999999999999", "000000000000000000001"}) {
    CAPTURE(bad);
    CHECK(parse_index(bad).status().code() == Code::kInvalidArgument);
  }
}

TEST_CASE("app::codec: parse_encoding knows binary and json") {
  CHECK(*parse_encoding("binary") == Encoding::kBinary);
  CHECK(*parse_encoding("json") == Encoding::kJson);
  CHECK(parse_encoding("JSON").status().code() == Code::kInvalidArgument);
  CHECK(content_type(Encoding::kBinary) == "application/vnd.raftd.entries");
  CHECK(content_type(Encoding::kJson) == "application/json");
}
