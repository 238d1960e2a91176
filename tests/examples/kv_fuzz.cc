// libFuzzer target for raftd-kv's two readers of untrusted bytes (examples/kv): the snapshot
// parser (kv_snapshot.h; RecoverFromSnapshot's body) and the log's replay (kv_log.h; kv.log after
// a crash). The kv sources are compiled for this target with -fsanitize=fuzzer-no-link, so
// coverage of the code under test guides the fuzzer. Byte 0 picks a mode; checks, for every
// input:
//  0 snapshot: the rest of the input, fed in pieces of (byte 1 % 64 + 1) bytes and whole, gives
//    the same outcome and pairs either way (the group and index expected are the header's own,
//    so the fuzzer gets past them); a snapshot that parses is written again by SnapshotWriter to
//    the same number of bytes, and that parses to the same pairs;
//  1 log: the rest of the input as kv.log: replay returns ok, cuts the file to the records it
//    kept, and a second replay of the cut file keeps the same records with nothing to cut; the
//    records rebuild a Store without failing.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kv_log.h"
#include "kv_snapshot.h"
#include "kv_store.h"

namespace {

using namespace raftd;
using namespace raftd::kv;

// A property that must hold; the report names the line that failed.
#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "kv_fuzz: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                            \
    }                                                                          \
  } while (0)

std::uint64_t u64_at(std::string_view s, std::size_t off) {
  std::uint64_t v = 0;
  if (s.size() >= off + 8) std::memcpy(&v, s.data() + off, 8);
  return v;
}

Status parse(std::string_view bytes, std::size_t step, SnapshotParser& p) {
  for (std::size_t off = 0; off < bytes.size(); off += step) {
    if (Status s = p.feed(bytes.substr(off, step)); !s) return s;
  }
  return p.finish();
}

void fuzz_snapshot(std::string_view in) {
  if (in.empty()) return;
  const std::size_t step = static_cast<std::uint8_t>(in[0]) % 64 + 1;
  const std::string_view bytes = in.substr(1);
  const GroupId group(u64_at(bytes, 8));
  const LogIndex index(u64_at(bytes, 16));
  SnapshotParser pieces(group, index);
  SnapshotParser whole(group, index);
  const Status a = parse(bytes, step, pieces);
  const Status b = parse(bytes, bytes.size() + 1, whole);
  FUZZ_CHECK(a.is_ok() == b.is_ok());
  if (!a.is_ok()) return;
  FUZZ_CHECK(pieces.pairs() == whole.pairs());
  auto image = std::make_shared<SnapshotImage>(SnapshotImage{group, index, pieces.pairs()});
  SnapshotWriter w(image);
  std::string again;
  std::string piece;
  while (w.next(piece)) {
    FUZZ_CHECK(!piece.empty() && piece.size() <= kSnapshotPieceBytes);
    again += piece;
    piece.clear();
  }
  FUZZ_CHECK(again.size() == bytes.size());
  SnapshotParser back(group, index);
  FUZZ_CHECK(parse(again, step, back).is_ok());
  FUZZ_CHECK(back.pairs() == image->pairs);
}

std::vector<LogRecord> replay_fd(int fd, std::uint64_t& torn) {
  std::vector<LogRecord> out;
  const Status s = replay(
      fd, [&out](LogRecord&& r) { out.push_back(std::move(r)); }, torn);
  FUZZ_CHECK(s.is_ok());
  return out;
}

void fuzz_log(std::string_view bytes) {
  const int fd = ::memfd_create("kv.log", MFD_CLOEXEC);
  FUZZ_CHECK(fd >= 0);
  FUZZ_CHECK(::pwrite(fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()));
  std::uint64_t torn = 0;
  std::vector<LogRecord> first = replay_fd(fd, torn);
  FUZZ_CHECK(torn <= bytes.size());
  const off_t kept = ::lseek(fd, 0, SEEK_END);
  FUZZ_CHECK(kept >= 0 && static_cast<std::uint64_t>(kept) == bytes.size() - torn);
  std::uint64_t torn2 = 1;
  std::vector<LogRecord> second = replay_fd(fd, torn2);
  FUZZ_CHECK(torn2 == 0);
  FUZZ_CHECK(second.size() == first.size());
  std::string encoded;
  for (std::size_t i = 0; i < first.size(); ++i) {
    FUZZ_CHECK(first[i].group == second[i].group);
    FUZZ_CHECK(first[i].last_index == second[i].last_index);
    FUZZ_CHECK(first[i].changes.size() == second[i].changes.size());
    encoded += encode_record(first[i]);
  }
  // Every record kept is the canonical encoding of what it decoded to.
  FUZZ_CHECK(encoded == bytes.substr(0, static_cast<std::size_t>(kept)));
  Store store;
  for (LogRecord& r : first) store.replay(std::move(r));
  ::close(fd);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 2) {
    case 0: fuzz_snapshot(in); break;
    case 1: fuzz_log(in); break;
  }
  return 0;
}
