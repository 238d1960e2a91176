// raftd-kv's storage and command language (examples/kv): the log's records and replay, the
// Store's batches, and the Log's group commit on the real io_uring reactor (exits 77, skipped,
// when the kernel lacks what the reactor needs).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "kv_log.h"
#include "kv_snapshot.h"
#include "kv_store.h"
#include "raftd/io/reactor.h"

namespace raftd::kv {
namespace {

// Generous: the machine is shared by several builds; this only guards against a hang.
constexpr auto kDeadline = std::chrono::seconds(60);

struct TempFile {
  TempFile() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "raftd-kv-XXXXXX").string();
    fd = ::mkstemp(tmpl.data());
    REQUIRE(fd >= 0);
    path = tmpl;
  }
  ~TempFile() {
    ::close(fd);
    std::filesystem::remove(path);
  }
  void write(const std::string& bytes) const {
    REQUIRE(::ftruncate(fd, 0) == 0);
    REQUIRE(::pwrite(fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()));
  }
  std::uint64_t size() const { return std::filesystem::file_size(path); }
  std::string read() const {
    std::string out(size(), '\0');
    REQUIRE(::pread(fd, out.data(), out.size(), 0) == static_cast<ssize_t>(out.size()));
    return out;
  }
  std::string path;
  int fd = -1;
};

LogRecord record(std::uint64_t group, std::uint64_t last, std::vector<Change> changes) {
  return LogRecord{GroupId(group), LogIndex(last), std::move(changes)};
}

std::vector<LogRecord> replay_all(const TempFile& f, std::uint64_t& torn) {
  std::vector<LogRecord> out;
  Status s = replay(
      f.fd, [&out](LogRecord&& r) { out.push_back(std::move(r)); }, torn);
  REQUIRE_MESSAGE(s.is_ok(), s.to_string());
  return out;
}

// Three records; the last one carries a put with a value and a delete.
std::vector<std::string> sample_records() {
  return {
      encode_record(record(1, 3, {{ChangeKind::kPut, "a", "1"}})),
      encode_record(record(7, 9, {})),
      encode_record(
          record(1, 5, {{ChangeKind::kPut, "b", "value"}, {ChangeKind::kDelete, "a", ""}})),
  };
}

std::string concat(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += p;
  return out;
}

TEST_CASE("kv::replay: every record comes back as written") {
  TempFile f;
  f.write(concat(sample_records()));
  std::uint64_t torn = 99;
  const auto got = replay_all(f, torn);
  CHECK(torn == 0);
  REQUIRE(got.size() == 3);
  CHECK(got[0].group == GroupId(1));
  CHECK(got[0].last_index == LogIndex(3));
  REQUIRE(got[0].changes.size() == 1);
  CHECK(got[0].changes[0].key == "a");
  CHECK(got[0].changes[0].value == "1");
  CHECK(got[1].group == GroupId(7));
  CHECK(got[1].last_index == LogIndex(9));
  CHECK(got[1].changes.empty());
  REQUIRE(got[2].changes.size() == 2);
  CHECK(got[2].changes[1].kind == ChangeKind::kDelete);
  CHECK(got[2].changes[1].key == "a");
}

TEST_CASE("kv::replay: a log cut anywhere in its last record keeps the records before it") {
  const auto recs = sample_records();
  const std::string whole = concat(recs);
  const std::size_t keep = whole.size() - recs.back().size();
  for (std::size_t cut = keep; cut < whole.size(); ++cut) {
    CAPTURE(cut);
    TempFile f;
    f.write(whole.substr(0, cut));
    std::uint64_t torn = 0;
    const auto got = replay_all(f, torn);
    CHECK(got.size() == 2);
    CHECK(torn == cut - keep);
    CHECK(f.size() == keep);  // the torn tail is truncated
  }
}

TEST_CASE("kv::replay: a flipped bit anywhere in the last record drops that record only") {
  const auto recs = sample_records();
  const std::string whole = concat(recs);
  const std::size_t keep = whole.size() - recs.back().size();
  for (std::size_t bit = keep * 8; bit < whole.size() * 8; ++bit) {
    CAPTURE(bit);
    std::string damaged = whole;
    damaged[bit / 8] = static_cast<char>(damaged[bit / 8] ^ (1 << (bit % 8)));
    TempFile f;
    f.write(damaged);
    std::uint64_t torn = 0;
    const auto got = replay_all(f, torn);
    CHECK(got.size() == 2);
    CHECK(f.size() == keep);
  }
}

TEST_CASE("kv::replay: zeros after the last record (preallocated or never written) are cut") {
  TempFile f;
  const std::string whole = concat(sample_records());
  f.write(whole + std::string(4096, '\0'));
  std::uint64_t torn = 0;
  CHECK(replay_all(f, torn).size() == 3);
  CHECK(torn == 4096);
  CHECK(f.size() == whole.size());
}

app::EntryBatch batch(std::uint64_t last, std::vector<std::pair<std::uint64_t, std::string>> es) {
  app::EntryBatch b{LogIndex(last), {}};
  for (auto& [i, d] : es) b.entries.push_back(app::Record{LogIndex(i), std::move(d)});
  return b;
}

TEST_CASE("kv::Store: results, skipped re-deliveries and the index in the batch's record") {
  Store s;
  BatchOutcome a = s.apply_batch(GroupId(2), batch(4, {{1, R"({"op":"put","key":"k","value":"v"})"},
                                                       {3, R"({"op":"cas","key":"k",)"
                                                           R"("expected":"x","value":"w"})"}}));
  REQUIRE(a.results.size() == 2);
  CHECK(a.results[0].data == R"({"ok":true,"prev":null})");
  CHECK(a.results[1].data == R"({"error":"cas_failed","ok":false,"prev":"v"})");
  CHECK(a.changed);
  CHECK(a.record.last_index == LogIndex(4));
  CHECK(a.record.changes.size() == 1);  // the failed cas changes nothing
  CHECK(s.applied_index(GroupId(2)) == LogIndex(4));
  CHECK(s.durable_index(GroupId(2)) == LogIndex(0));  // until the record is durable

  // Entirely re-delivered: empty results, nothing to append.
  BatchOutcome b = s.apply_batch(GroupId(2), batch(4, {{3, R"({"op":"delete","key":"k"})"}}));
  REQUIRE(b.results.size() == 1);
  CHECK(b.results[0].index == LogIndex(3));
  CHECK(b.results[0].data.empty());
  CHECK_FALSE(b.changed);
  REQUIRE(s.get(GroupId(2), "k") != nullptr);
  CHECK(*s.get(GroupId(2), "k") == "v");

  // Replaying the records rebuilds the same state.
  Store r;
  r.replay(std::move(a.record));
  CHECK(r.applied_index(GroupId(2)) == LogIndex(4));
  CHECK(r.durable_index(GroupId(2)) == LogIndex(4));
  REQUIRE(r.get(GroupId(2), "k") != nullptr);
  CHECK(*r.get(GroupId(2), "k") == "v");
  CHECK(r.get(GroupId(3), "k") == nullptr);
}

// ---- snapshots (kv_snapshot.h) and reset records ----

std::shared_ptr<const SnapshotImage> sample_image() {
  KvMap pairs{{"a", "1"}, {"", "empty key"}, {"e", ""}, {"big", std::string(200 * 1024, 'x')}};
  for (int i = 0; i < 50; ++i) pairs.emplace("k" + std::to_string(i), std::to_string(i * i));
  return std::make_shared<SnapshotImage>(SnapshotImage{GroupId(7), LogIndex(42), pairs});
}

std::string write_all(std::shared_ptr<const SnapshotImage> image, std::size_t* pieces = nullptr) {
  SnapshotWriter w(std::move(image));
  std::string out;
  std::string piece;
  std::size_t n = 0;
  while (w.next(piece)) {
    CHECK(piece.size() <= kSnapshotPieceBytes);
    out += piece;
    piece.clear();
    ++n;
  }
  CHECK(w.bytes_written() == out.size());
  if (pieces != nullptr) *pieces = n;
  return out;
}

// Feeds `bytes` in pieces of `step` bytes; the first error, or finish()'s status.
Status parse_all(std::string_view bytes, std::size_t step, SnapshotParser& p) {
  for (std::size_t off = 0; off < bytes.size(); off += step) {
    if (Status s = p.feed(bytes.substr(off, step)); !s) return s;
  }
  return p.finish();
}

TEST_CASE("kv::Snapshot: written in pieces, read back in pieces of any size, same pairs") {
  const auto image = sample_image();
  std::size_t pieces = 0;
  const std::string bytes = write_all(image, &pieces);
  CHECK(pieces > 3);  // the 200 KiB value is split too
  CHECK(bytes.substr(0, 8) == kSnapshotMagic);
  for (std::size_t step : {std::size_t{1}, std::size_t{7}, std::size_t{4096}, bytes.size()}) {
    CAPTURE(step);
    SnapshotParser p(GroupId(7), LogIndex(42));
    Status s = parse_all(bytes, step, p);
    REQUIRE_MESSAGE(s.is_ok(), s.to_string());
    CHECK(p.pairs() == image->pairs);
    CHECK(p.bytes_read() == bytes.size());
  }
  // An empty group: header and trailer only.
  const std::string none =
      write_all(std::make_shared<SnapshotImage>(SnapshotImage{GroupId(1), LogIndex(0), {}}));
  CHECK(none.size() == kSnapshotHeaderBytes + kSnapshotTrailerBytes);
  SnapshotParser p(GroupId(1), LogIndex(0));
  CHECK(parse_all(none, 5, p).is_ok());
  CHECK(p.pairs().empty());
}

TEST_CASE("kv::Snapshot: a cut, a flipped bit, extra bytes, another group or index: refused") {
  auto image = std::make_shared<SnapshotImage>(
      SnapshotImage{GroupId(3), LogIndex(9), KvMap{{"a", "1"}, {"bb", "22"}, {"", ""}}});
  const std::string bytes = write_all(image);
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    CAPTURE(cut);
    SnapshotParser p(GroupId(3), LogIndex(9));
    CHECK_FALSE(parse_all(bytes.substr(0, cut), 3, p).is_ok());
  }
  for (std::size_t bit = 0; bit < bytes.size() * 8; ++bit) {
    CAPTURE(bit);
    std::string damaged = bytes;
    damaged[bit / 8] = static_cast<char>(damaged[bit / 8] ^ (1 << (bit % 8)));
    SnapshotParser p(GroupId(3), LogIndex(9));
    CHECK_FALSE(parse_all(damaged, 5, p).is_ok());
  }
  SnapshotParser extra(GroupId(3), LogIndex(9));
  CHECK_FALSE(parse_all(bytes + "x", bytes.size() + 1, extra).is_ok());
  SnapshotParser other_group(GroupId(4), LogIndex(9));
  CHECK(parse_all(bytes, 64, other_group).code() == Code::kCorruption);
  SnapshotParser other_index(GroupId(3), LogIndex(10));
  CHECK(parse_all(bytes, 64, other_index).code() == Code::kCorruption);
  // The error sticks: later bytes do not revive the parser.
  CHECK_FALSE(other_index.feed("more").is_ok());
  CHECK_FALSE(other_index.finish().is_ok());
}

TEST_CASE("kv::Store: a prepared snapshot is the state at its index, not later; few are kept") {
  Store s;
  (void)s.apply_batch(GroupId(1), batch(2, {{1, R"({"op":"put","key":"a","value":"1"})"}}));
  const std::string first = s.prepare_snapshot(GroupId(1));
  CHECK(first.size() <= 64 * 1024);
  // Entries after Prepare change the group, not the prepared image.
  (void)s.apply_batch(GroupId(1), batch(3, {{3, R"({"op":"put","key":"a","value":"2"})"}}));
  auto image = s.find_snapshot(GroupId(1), first);
  REQUIRE(image != nullptr);
  CHECK(image->index == LogIndex(2));
  CHECK(image->pairs == KvMap{{"a", "1"}});
  CHECK(s.find_snapshot(GroupId(2), first) == nullptr);  // another group's context
  CHECK(s.find_snapshot(GroupId(1), "nonsense") == nullptr);
  std::vector<std::string> later;
  for (std::size_t i = 0; i < kSnapshotContextsPerGroup; ++i) {
    later.push_back(s.prepare_snapshot(GroupId(1)));
  }
  CHECK(s.find_snapshot(GroupId(1), first) == nullptr);  // dropped, the oldest
  for (const auto& c : later) CHECK(s.find_snapshot(GroupId(1), c) != nullptr);
  CHECK(image->pairs == KvMap{{"a", "1"}});  // its holder still has it
}

TEST_CASE("kv::replay: a reset record makes the group exactly its pairs at its index") {
  const std::string before =
      encode_record(record(1, 5, {{ChangeKind::kPut, "a", "1"}, {ChangeKind::kPut, "b", "2"}})) +
      encode_record(record(2, 8, {{ChangeKind::kPut, "other", "x"}}));
  const std::string reset = encode_reset_record(GroupId(1), LogIndex(3), KvMap{{"c", "3"}});
  const std::string after = encode_record(record(1, 4, {{ChangeKind::kPut, "d", "4"}}));
  TempFile f;
  f.write(before + reset + after);
  std::uint64_t torn = 0;
  auto recs = replay_all(f, torn);
  REQUIRE(recs.size() == 4);
  CHECK(is_reset(recs[2]));
  Store s;
  for (auto& r : recs) s.replay(std::move(r));
  CHECK(s.applied_index(GroupId(1)) == LogIndex(4));  // 3 by the reset (below 5), then 4
  CHECK(s.get(GroupId(1), "a") == nullptr);
  CHECK(s.get(GroupId(1), "b") == nullptr);
  REQUIRE(s.get(GroupId(1), "c") != nullptr);
  REQUIRE(s.get(GroupId(1), "d") != nullptr);
  REQUIRE(s.get(GroupId(2), "other") != nullptr);  // other groups untouched
  CHECK(s.applied_index(GroupId(2)) == LogIndex(8));

  // A crash anywhere in the reset record leaves the old state whole.
  for (std::size_t cut = before.size(); cut < before.size() + reset.size(); ++cut) {
    CAPTURE(cut);
    TempFile g;
    g.write((before + reset).substr(0, cut));
    Store old;
    for (auto& r : replay_all(g, torn)) old.replay(std::move(r));
    CHECK(g.size() == before.size());
    CHECK(old.applied_index(GroupId(1)) == LogIndex(5));
    REQUIRE(old.get(GroupId(1), "a") != nullptr);
    CHECK(old.get(GroupId(1), "c") == nullptr);
  }
}

TEST_CASE("kv::replay: a reset change anywhere but first, or a delete after one, is not a record") {
  TempFile f;
  f.write(
      encode_record(record(1, 1, {{ChangeKind::kPut, "a", "1"}})) +
      encode_record(record(1, 2, {{ChangeKind::kPut, "b", "1"}, {ChangeKind::kReset, "", ""}})));
  std::uint64_t torn = 0;
  CHECK(replay_all(f, torn).size() == 1);
  CHECK(torn > 0);
  TempFile g;
  g.write(
      encode_record(record(1, 2, {{ChangeKind::kReset, "", ""}, {ChangeKind::kDelete, "a", ""}})));
  CHECK(replay_all(g, torn).empty());
}

TEST_CASE("kv::parse_command: the language's rules") {
  CHECK(parse_command(R"({"op":"put","key":"k","value":""})").has_value());
  CHECK(parse_command(R"({"op":"delete","key":"k"})").has_value());
  auto c = parse_command(R"({"op":"cas","key":"k","expected":null,"value":"v"})");
  REQUIRE(c.has_value());
  CHECK_FALSE(c->expected.has_value());
  CHECK_FALSE(parse_command(R"({"op":"cas","key":"k","value":"v"})"));  // no expected
  CHECK_FALSE(parse_command(R"({"op":"cas","key":"k","expected":1,"value":"v"})"));
  CHECK_FALSE(parse_command(R"({"op":"put","key":"k"})"));                   // no value
  CHECK_FALSE(parse_command(R"({"op":"get","key":"k"})"));                   // a read
  CHECK_FALSE(parse_command(R"({"op":"put","key":"\ud800","value":"v"})"));  // lone surrogate
  CHECK_FALSE(parse_command("\xff"));
  CHECK_FALSE(parse_command(R"(["put"])"));
  CHECK(parse_get_query(R"({"op":"get","key":"k"})") == std::optional<std::string>("k"));
  CHECK_FALSE(parse_get_query(R"({"op":"put","key":"k"})"));
}

TEST_CASE("kv::Log: appends of one reactor turn leave in one write and one fdatasync") {
  auto created = io::Reactor::create();
  if (!created.is_ok() && created.status().code() == Code::kUnsupported) {
    std::fprintf(stderr, "SKIP: %s\n", created.status().to_string().c_str());
    std::exit(77);
  }
  REQUIRE_MESSAGE(created.is_ok(), created.status().to_string());
  io::Reactor& r = *created.value();
  TempFile f;
  const auto recs = sample_records();
  int answered = 0;
  {
    Log log(r, f.fd, 0, /*durable=*/true);
    for (const auto& rec : recs) {
      log.append(rec);
      log.when_written(false, [&answered] { ++answered; });  // durable Log: synced anyway
    }
    const auto give_up = io::Reactor::now() + kDeadline;
    while (answered < 3 && io::Reactor::now() < give_up) r.run_once(std::chrono::milliseconds(50));
    CHECK(answered == 3);
    CHECK(log.syncs() == 1);
    CHECK(log.written_bytes() == concat(recs).size());
    CHECK(f.read() == concat(recs));

    // Nothing new: a waiter is still answered, without another write.
    log.when_written(true, [&answered] { ++answered; });
    while (answered < 4 && io::Reactor::now() < give_up) r.run_once(std::chrono::milliseconds(50));
    CHECK(answered == 4);
    CHECK(log.syncs() == 1);
    log.close();
    while (!log.idle() && io::Reactor::now() < give_up) r.run_once(std::chrono::milliseconds(50));
  }
  r.shutdown();
}

TEST_CASE("kv::Log: without durability, writes go out unsynced and a sync waiter gets one") {
  auto created = io::Reactor::create();
  if (!created.is_ok() && created.status().code() == Code::kUnsupported) std::exit(77);
  REQUIRE(created.is_ok());
  io::Reactor& r = *created.value();
  TempFile f;
  const auto recs = sample_records();
  const auto give_up = io::Reactor::now() + kDeadline;
  bool written = false;
  bool synced = false;
  {
    Log log(r, f.fd, 0, /*durable=*/false);
    log.append(recs[0]);
    log.when_written(false, [&written] { written = true; });
    while (!written && io::Reactor::now() < give_up) r.run_once(std::chrono::milliseconds(50));
    CHECK(written);
    CHECK(log.syncs() == 0);
    log.append(recs[1]);
    log.when_written(true, [&synced] { synced = true; });
    while (!synced && io::Reactor::now() < give_up) r.run_once(std::chrono::milliseconds(50));
    CHECK(synced);
    CHECK(log.syncs() == 1);
    CHECK(f.read() == recs[0] + recs[1]);
    log.close();
    while (!log.idle() && io::Reactor::now() < give_up) r.run_once(std::chrono::milliseconds(50));
  }
  r.shutdown();
}

}  // namespace
}  // namespace raftd::kv

int main(int argc, char** argv) { return doctest::Context(argc, argv).run(); }
