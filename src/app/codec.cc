// The entry-batch codec (include/raftd/app/codec.h has the format and the rules).
#include "raftd/app/codec.h"

#include <fmt/format.h>

#include <array>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>

namespace raftd::app {
namespace {

using nlohmann::json;

Status corrupt(std::string message) { return Status(Code::kCorruption, std::move(message)); }

Status check_body_size(std::string_view body) {
  if (body.size() > kBatchBytesMax) {
    return Status(Code::kTooLarge, fmt::format("entry batch of {} bytes exceeds the limit of {}",
                                               body.size(), kBatchBytesMax));
  }
  return Status::ok();
}

Status too_many_records(std::string_view where) {
  return Status(Code::kTooLarge,
                fmt::format("record {}{}: more than {} records", kRecordsMax, where, kRecordsMax));
}

void assert_well_formed(std::span<const Record> records) {
  LogIndex prev;
  for (const Record& r : records) {
    RAFTD_ASSERT(r.index > prev, "records to encode must have increasing indexes from 1");
    RAFTD_ASSERT(r.data.size() <= kBatchBytesMax, "record larger than the batch limit");
    prev = r.index;
  }
}

// Index rules shared by both encodings: every index >= 1, strictly increasing.
Status check_index(LogIndex index, LogIndex prev, std::size_t n, std::string_view where) {
  if (index.value() == 0) {
    return corrupt(fmt::format("record {}{}: index 0 (indexes start at 1)", n, where));
  }
  if (index <= prev) {
    return corrupt(
        fmt::format("record {}{}: index {} does not follow index {} (indexes must "
                    "increase)",
                    n, where, index.value(), prev.value()));
  }
  return Status::ok();
}

// ---- binary ----

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t get_le(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

std::string encode_binary(std::span<const Record> records) {
  std::size_t total = 0;
  for (const Record& r : records) total += kRecordHeaderBytes + r.data.size();
  std::string out;
  out.reserve(total);
  for (const Record& r : records) {
    put_u64(out, r.index.value());
    put_u32(out, static_cast<uint32_t>(r.data.size()));
    out.append(r.data);
  }
  return out;
}

Result<std::vector<Record>> decode_binary(std::string_view body) {
  if (Status s = check_body_size(body); !s) return s;
  std::vector<Record> records;
  std::size_t off = 0;
  LogIndex prev;
  while (off < body.size()) {
    const std::size_t n = records.size();
    if (body.size() - off < kRecordHeaderBytes) {
      return corrupt(fmt::format("record {} at byte {}: truncated header ({} of {} bytes)", n, off,
                                 body.size() - off, kRecordHeaderBytes));
    }
    const LogIndex index(get_le(body.data() + off, 8));
    const uint64_t length = get_le(body.data() + off + 8, 4);
    const std::string where = fmt::format(" at byte {}", off);
    if (Status s = check_index(index, prev, n, where); !s) return s;
    if (length > kBatchBytesMax) {
      return corrupt(fmt::format("record {}{}: length {} exceeds the batch limit of {}", n, where,
                                 length, kBatchBytesMax));
    }
    off += kRecordHeaderBytes;
    if (body.size() - off < length) {
      return corrupt(fmt::format("record {}{}: truncated data ({} of {} bytes)", n, where,
                                 body.size() - off, length));
    }
    if (n == kRecordsMax) return too_many_records(where);
    records.push_back(Record{index, std::string(body.substr(off, length))});
    off += length;
    prev = index;
  }
  return records;
}

// ---- json ----

void append_records_json(std::string& out, std::span<const Record> records) {
  out.push_back('[');
  for (std::size_t i = 0; i < records.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.append(fmt::format("{{\"index\":{},\"data\":\"", records[i].index.value()));
    out.append(base64_encode(records[i].data));
    out.append("\"}");
  }
  out.push_back(']');
}

// Nesting depth and commas of a JSON text, counted outside strings, stopping as soon as one
// passes its limit. Runs before the parser, so no hostile nesting or flood of tiny values
// reaches it.
Status check_shape(std::string_view body) {
  std::size_t depth = 0;
  std::size_t commas = 0;
  bool in_string = false;
  bool escaped = false;
  for (std::size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kJsonDepthMax) {
        return corrupt(fmt::format("json nested deeper than {} at byte {}", kJsonDepthMax, i));
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    } else if (c == ',' && ++commas > kJsonSeparatorsMax) {
      return Status(Code::kTooLarge, fmt::format("json holds more than {} commas (at byte {})",
                                                 kJsonSeparatorsMax, i));
    }
  }
  return Status::ok();
}

Result<json> parse_json(std::string_view body) {
  if (Status s = check_body_size(body); !s) return s;
  if (Status s = check_shape(body); !s) return s;
  try {
    return json::parse(body.begin(), body.end());
  } catch (const json::exception& e) {
    return corrupt(fmt::format("malformed json: {}", e.what()));
  }
}

Result<LogIndex> json_index(const json& obj, const char* key, std::string_view where) {
  auto it = obj.find(key);
  if (it == obj.end()) return corrupt(fmt::format("{}: no \"{}\"", where, key));
  if (!it->is_number_unsigned()) {
    return corrupt(fmt::format("{}: \"{}\" is not an unsigned integer", where, key));
  }
  return LogIndex(it->get<uint64_t>());
}

// The array under `key` of the top-level object, as records.
Result<std::vector<Record>> json_records(const json& doc, const char* key) {
  auto arr = doc.find(key);
  if (arr == doc.end()) return corrupt(fmt::format("json: no \"{}\" array", key));
  if (!arr->is_array()) return corrupt(fmt::format("json: \"{}\" is not an array", key));
  std::vector<Record> records;
  records.reserve(arr->size());
  LogIndex prev;
  for (const json& item : *arr) {
    const std::size_t n = records.size();
    if (n == kRecordsMax) return too_many_records(fmt::format(" of \"{}\"", key));
    const std::string where = fmt::format("json {} record {}", key, n);
    if (!item.is_object()) return corrupt(where + ": not an object");
    Result<LogIndex> index = json_index(item, "index", where);
    if (!index) return index.status();
    if (Status s = check_index(*index, prev, n, fmt::format(" of \"{}\"", key)); !s) return s;
    auto data = item.find("data");
    if (data == item.end()) return corrupt(where + ": no \"data\"");
    if (!data->is_string()) return corrupt(where + ": \"data\" is not a string");
    Result<std::string> bytes = base64_decode(data->get_ref<const std::string&>());
    if (!bytes) return corrupt(fmt::format("{}: \"data\": {}", where, bytes.status().message()));
    records.push_back(Record{*index, std::move(bytes).value()});
    prev = *index;
  }
  return records;
}

Result<EntryBatch> decode_entries_json(std::string_view body) {
  Result<json> doc = parse_json(body);
  if (!doc) return doc.status();
  if (!doc->is_object()) return corrupt("json: the batch is not an object");
  Result<LogIndex> last = json_index(*doc, "last_index", "json batch");
  if (!last) return last.status();
  Result<std::vector<Record>> entries = json_records(*doc, "entries");
  if (!entries) return entries.status();
  if (!entries->empty() && entries->back().index > *last) {
    return corrupt(fmt::format("json batch: last_index {} is below the last entry's index {}",
                               last->value(), entries->back().index.value()));
  }
  return EntryBatch{*last, std::move(entries).value()};
}

Result<std::vector<Record>> decode_results_json(std::string_view body) {
  Result<json> doc = parse_json(body);
  if (!doc) return doc.status();
  if (!doc->is_object()) return corrupt("json: the answer is not an object");
  return json_records(*doc, "results");
}

constexpr std::string_view kBase64Alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<int8_t, 256> base64_table() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (std::size_t i = 0; i < kBase64Alphabet.size(); ++i) {
    t[static_cast<unsigned char>(kBase64Alphabet[i])] = static_cast<int8_t>(i);
  }
  return t;
}
constexpr std::array<int8_t, 256> kBase64Values = base64_table();

}  // namespace

std::string_view content_type(Encoding encoding) {
  return encoding == Encoding::kBinary ? kBinaryContentType : kJsonContentType;
}

Result<Encoding> parse_encoding(std::string_view name) {
  if (name == "binary") return Encoding::kBinary;
  if (name == "json") return Encoding::kJson;
  return Status(Code::kInvalidArgument,
                fmt::format("unknown encoding \"{}\" (binary or json)", name));
}

Result<LogIndex> parse_index(std::string_view text) {
  if (text.empty()) return Status(Code::kInvalidArgument, "empty index");
  if (text.size() > 20) {
    return Status(Code::kInvalidArgument, fmt::format("index of {} digits", text.size()));
  }
  uint64_t v = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c < '0' || c > '9') {
      return Status(Code::kInvalidArgument,
                    fmt::format("index has a non-digit at byte {} (0x{:02x})", i,
                                static_cast<unsigned char>(c)));
    }
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - digit) / 10) {
      return Status(Code::kInvalidArgument, "index does not fit 64 bits");
    }
    v = v * 10 + digit;
  }
  return LogIndex(v);
}

std::string encode_entries(Encoding encoding, const EntryBatch& batch) {
  assert_well_formed(batch.entries);
  // binary leaves last_index to the Raftd-Last-Index header, so only json checks it here.
  if (encoding == Encoding::kBinary) return encode_binary(batch.entries);
  RAFTD_ASSERT(batch.entries.empty() || batch.last_index >= batch.entries.back().index,
               "last_index below the last entry's index");
  std::string out = fmt::format("{{\"last_index\":{},\"entries\":", batch.last_index.value());
  append_records_json(out, batch.entries);
  out.push_back('}');
  return out;
}

Result<EntryBatch> decode_entries(Encoding encoding, std::string_view body) {
  if (encoding == Encoding::kJson) return decode_entries_json(body);
  Result<std::vector<Record>> records = decode_binary(body);
  if (!records) return records.status();
  return EntryBatch{LogIndex(), std::move(records).value()};
}

std::string encode_results(Encoding encoding, std::span<const Record> results) {
  if (results.empty()) return {};
  assert_well_formed(results);
  if (encoding == Encoding::kBinary) return encode_binary(results);
  std::string out = "{\"results\":";
  append_records_json(out, results);
  out.push_back('}');
  return out;
}

Result<std::vector<Record>> decode_results(Encoding encoding, std::string_view body) {
  if (body.empty()) return std::vector<Record>{};
  return encoding == Encoding::kBinary ? decode_binary(body) : decode_results_json(body);
}

Result<std::vector<Record>> match_results(std::span<const LogIndex> request, bool body_empty,
                                          std::vector<Record> decoded) {
  if (body_empty) {
    RAFTD_ASSERT(decoded.empty(), "an empty body decodes to no records");
    std::vector<Record> out;
    out.reserve(request.size());
    for (LogIndex i : request) out.push_back(Record{i, {}});
    return out;
  }
  if (decoded.size() != request.size()) {
    return corrupt(
        fmt::format("the answer has {} results for {} entries", decoded.size(), request.size()));
  }
  for (std::size_t i = 0; i < request.size(); ++i) {
    if (decoded[i].index != request[i]) {
      return corrupt(fmt::format("result {} has index {} where the request's entry has {}", i,
                                 decoded[i].index.value(), request[i].value()));
    }
  }
  return decoded;
}

Result<std::vector<Record>> decode_answer(Encoding encoding, std::string_view body,
                                          std::span<const LogIndex> request) {
  Result<std::vector<Record>> decoded = decode_results(encoding, body);
  if (!decoded) return decoded.status();
  return match_results(request, body.empty(), std::move(decoded).value());
}

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto byte = [&](std::size_t k) { return static_cast<uint32_t>(static_cast<uint8_t>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    for (int s = 18; s >= 0; s -= 6) out.push_back(kBase64Alphabet[(v >> s) & 63]);
  }
  const std::size_t rest = bytes.size() - i;
  if (rest == 1) {
    const uint32_t v = byte(i) << 16;
    out.push_back(kBase64Alphabet[(v >> 18) & 63]);
    out.push_back(kBase64Alphabet[(v >> 12) & 63]);
    out.append("==");
  } else if (rest == 2) {
    const uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8);
    out.push_back(kBase64Alphabet[(v >> 18) & 63]);
    out.push_back(kBase64Alphabet[(v >> 12) & 63]);
    out.push_back(kBase64Alphabet[(v >> 6) & 63]);
    out.push_back('=');
  }
  return out;
}

Result<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) {
    return corrupt(fmt::format("base64 of {} characters (not a multiple of 4)", text.size()));
  }
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    const std::size_t pad = !last ? 0 : text[i + 3] != '=' ? 0 : text[i + 2] != '=' ? 1 : 2;
    uint32_t v = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      const unsigned char c = static_cast<unsigned char>(text[i + k]);
      const int8_t d = k >= 4 - pad ? 0 : kBase64Values[c];
      if (d < 0) {
        return corrupt(
            fmt::format("base64: character 0x{:02x} at {} is not in the alphabet", c, i + k));
      }
      v = (v << 6) | static_cast<uint32_t>(d);
    }
    const uint32_t pad_bits = pad == 2 ? (v & 0xffff) : pad == 1 ? (v & 0xff) : 0;
    if (pad_bits != 0) return corrupt(fmt::format("base64: non-zero pad bits at {}", i));
    out.push_back(static_cast<char>((v >> 16) & 0xff));
    if (pad < 2) out.push_back(static_cast<char>((v >> 8) & 0xff));
    if (pad < 1) out.push_back(static_cast<char>(v & 0xff));
  }
  return out;
}

}  // namespace raftd::app
