// libFuzzer target for the WAL's decoders and recovery (doc/wal-format.md). The WAL library is
// compiled for this target with -fsanitize=fuzzer-no-link, so coverage of the decoders and of
// recovery guides the fuzzer. Byte 0 picks a mode; checks, for every input:
//  0 segment header: a header that decodes is the canonical encoding of what it decodes to
//    (encode(decode(x)) == x), and a non-zero-area error names a non-zero byte after zeros;
//  1 frame header and body: decode->encode of a header is the identity; the header checksum test
//    agrees with the checksum; a body that decodes re-encodes to the same bytes (reserved fields
//    and padding zero), and encode_frame produces an intact frame that decodes to the same fields;
//  2 directory: segments written by LogBuilder (tests/wal/log_builder.h) from the input, with
//    damage; recovery returns a Status, never crashes or asserts; read-only and repair agree; a
//    refused log is left unchanged by repair; a repaired log recovers clean to the same state;
//    and a log recovery accepts can be opened by the Wal, appended to and recovered again, with
//    every entry readable.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "log_builder.h"
#include "raftd/base/log.h"
#include "raftd/wal/fault_env.h"
#include "raftd/wal/format.h"
#include "raftd/wal/inspect.h"
#include "raftd/wal/records.h"
#include "raftd/wal/recovery.h"
#include "raftd/wal/sync_writer.h"
#include "raftd/wal/wal.h"

namespace {

using namespace raftd;
using namespace raftd::wal;
using raftd::wal::testing::LogBuilder;

// A property that must hold; the report names the line that failed.
#define check(ok) check_at((ok), __LINE__, #ok)
void check_at(bool ok, int line, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "wal_decode_fuzz.cc:%d: check failed: %s\n", line, what);
  std::abort();
}

// Reads the input front to back; past its end every read is zero.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : p_(data), n_(size) {}
  bool empty() const { return n_ == 0; }
  size_t left() const { return n_; }
  uint8_t u8() {
    if (n_ == 0) return 0;
    --n_;
    return *p_++;
  }
  uint16_t u16() { return uint16_t(u8() | u8() << 8); }
  uint32_t u32() { return uint32_t(u16()) | uint32_t(u16()) << 16; }
  uint64_t u64() { return uint64_t(u32()) | uint64_t(u32()) << 32; }
  std::vector<std::byte> bytes(size_t n) {
    n = std::min(n, n_);
    std::vector<std::byte> out(n);
    if (n > 0) std::memcpy(out.data(), p_, n);
    p_ += n;
    n_ -= n;
    return out;
  }

 private:
  const uint8_t* p_;
  size_t n_;
};

// ---- mode 0: segment header ----

void fuzz_segment_header(Input& in) {
  const uint8_t how = in.u8();
  std::vector<std::byte> h(kSegmentHeaderBytes);
  std::vector<std::byte> raw = in.bytes(kSegmentHeaderBytes);
  std::copy(raw.begin(), raw.end(), h.begin());
  if (how & 1) std::memcpy(h.data(), kSegmentMagic, sizeof(kSegmentMagic));
  if (how & 2) {
    put_u32(h.data() + 8, kFormatVersion);
    put_u32(h.data() + 12, uint32_t(kSegmentHeaderBytes));
  }
  if (how & 4) std::fill(h.begin() + kSegmentHeaderUsedBytes, h.end(), std::byte{0});
  if (how & 8)
    put_u64(h.data() + 48, checksum({h.data(), kSegmentHeaderFieldBytes}, kSegmentHeaderSeed));
  SegmentHeader d;
  uint64_t bad = 0;
  HeaderError e = decode_segment_header(h, &d, &bad);
  if (e == HeaderError::kOk) {
    std::vector<std::byte> again(kSegmentHeaderBytes);
    encode_segment_header(d, std::span<std::byte, kSegmentHeaderBytes>(again.data(), again.size()));
    check(again == h);
    SegmentHeader d2;
    check(decode_segment_header(again, &d2) == HeaderError::kOk && d2 == d);
    check(d.salt != 0 && d.capacity >= kSegmentBytesMin && d.write_bytes_max <= d.capacity / 4);
  } else if (e == HeaderError::kNonZero) {
    check(bad >= kSegmentHeaderUsedBytes && bad < kSegmentHeaderBytes && h[bad] != std::byte{0});
    for (uint64_t i = kSegmentHeaderUsedBytes; i < bad; ++i) check(h[i] == std::byte{0});
  }
  check(decode_segment_header(std::span(h).first(kSegmentHeaderBytes - 1), &d) ==
        HeaderError::kShort);
}

// ---- mode 1: frame header and body ----

// Re-encodes every record it is given; a body that decodes must re-encode to itself.
class Reencoder final : public BodyVisitor {
 public:
  explicit Reencoder(std::vector<std::byte>* out) : w_(out) {}
  Status on_entries_block(GroupId g, LogIndex first, uint32_t count) override {
    check(first.value() > 0 && count > 0);
    w_.entries_block(g, first, count);
    return Status::ok();
  }
  Status on_entry(GroupId, LogIndex, Term term, uint16_t type, std::span<const std::byte> data,
                  uint64_t payload_offset) override {
    check(data.size() <= kEntryBytesMax);
    uint64_t at = w_.entry(EntryView{term, type, data});
    check(at == payload_offset);
    return Status::ok();
  }
  Status on_hard_state(GroupId g, const HardState& hs) override {
    w_.hard_state(g, hs);
    return Status::ok();
  }
  Status on_truncate(GroupId g, LogIndex from) override {
    w_.truncate(g, from);
    return Status::ok();
  }
  Status on_snapshot_mark(GroupId g, const SnapshotMark& m) override {
    w_.snapshot_mark(g, m);
    return Status::ok();
  }
  Status on_checkpoint(const CheckpointRecord& c) override {
    w_.checkpoint(c);
    return Status::ok();
  }

 private:
  BodyWriter w_;
};

void fuzz_frame(Input& in) {
  const uint8_t how = in.u8();
  const uint64_t salt = in.u64() | 1;
  std::vector<std::byte> header = in.bytes(kFrameHeaderBytes);
  header.resize(kFrameHeaderBytes);
  std::vector<std::byte> body = in.bytes(in.left());
  if (how & 1) put_u16(header.data() + 48, uint16_t(1 + how / 16 % kFrameTypeMax));
  if (how & 2) put_u32(header.data() + 44, uint32_t(body.size()));
  if (how & 4) put_u64(header.data() + 8, checksum(body, salt));
  if (how & 8) put_u64(header.data(), frame_header_checksum(header.data(), salt));
  FrameHeader h;
  decode_frame_header(header.data(), &h);
  std::vector<std::byte> again(kFrameHeaderBytes);
  encode_frame_header(h, again.data());
  check(again == header);  // every header byte is a field
  const bool sum_ok = get_u64(header.data()) == frame_header_checksum(header.data(), salt);
  check(frame_header_valid(header.data(), salt) == (sum_ok && !is_zero_header(header.data())));
  const bool rules_ok = frame_header_rule_error(h).empty();
  if (rules_ok) check(h.length % 8 == 0 && uint16_t(h.type) >= 1 && uint16_t(h.type) <= 5);

  // Body: decode with the header's type and item count; what decodes re-encodes to itself.
  if (uint16_t(h.type) >= 1 && uint16_t(h.type) <= kFrameTypeMax) {
    std::vector<std::byte> re;
    Reencoder v(&re);
    Status s = decode_body(h.type, h.item_count, body, v);
    if (s.is_ok()) {
      check(re == body);
      check(body.size() % 8 == 0);
    } else {
      check(s.code() == Code::kCorruption && !s.message().empty());
    }
  }
  // encode_frame writes an intact frame with the same fields.
  body.resize(align_up(body.size(), kFrameAlignBytes));
  if (body.size() <= (1u << 16)) {
    FrameHeader g = h;
    std::vector<std::byte> out(frame_bytes(body.size()));
    uint64_t sum = encode_frame(g, body, salt, out.data());
    FrameHeader d;
    decode_frame_header(out.data(), &d);
    check(d == g && d.header_checksum == sum && frame_header_valid(out.data(), salt));
    check(checksum(std::span(out).subspan(kFrameHeaderBytes), salt) == d.body_checksum);
  }
}

// ---- mode 2: a directory ----

constexpr const char* kDir = "/wal";
constexpr uint64_t kSegmentBytes = kSegmentBytesMin;
constexpr size_t kSegmentsMax = 4;
constexpr uint64_t kGroups = 4;

struct GroupModel {
  uint64_t last = 0;
  uint64_t term = 1;
};

// A frame from the input: mostly plausible records for a few groups, sometimes raw bytes.
LogBuilder::Frame make_frame(Input& in, std::map<uint64_t, GroupModel>& model) {
  const uint8_t kind = in.u8();
  const uint64_t g = 1 + kind / 8 % kGroups;
  GroupModel& m = model[g];
  LogBuilder::Frame f;
  switch (kind % 8) {
    case 0:
    case 1: {
      uint64_t first = m.last + 1 - std::min<uint64_t>(m.last, in.u8() % 3);
      std::vector<LogBuilder::EntrySpec> es;
      for (int k = 0, n = 1 + in.u8() % 3; k < n; ++k) {
        m.term += in.u8() % 2;
        es.push_back({m.term, std::string(in.u8() % 20, char('a' + k)), 0});
      }
      f = LogBuilder::entries(g, first, es);
      m.last = first + es.size() - 1;
      break;
    }
    case 2: f = LogBuilder::hard_state(g, m.term + in.u8() % 2, in.u8() % 3, in.u8() % 4); break;
    case 3: {
      uint64_t from = 1 + in.u8() % (m.last + 2);
      f = LogBuilder::truncate(g, from);
      if (from <= m.last) m.last = from - 1;
      break;
    }
    case 4: f = LogBuilder::snapshot_mark(g, in.u8() % (m.last + 2), m.term); break;
    case 5: {
      std::vector<LogBuilder::CheckpointSpec> cs;
      for (int k = 0, n = in.u8() % 3; k < n; ++k) {
        cs.push_back({uint64_t(k + 1), 1, 0, 0, 0, 0, uint64_t(in.u8() % 3), 1});
      }
      f = LogBuilder::checkpoint(cs);
      break;
    }
    default: {
      f.type = uint16_t(in.u8() % 7);
      f.items = in.u8() % 4;
      f.body = in.bytes(in.u8() % 9 * 8);
      f.body.resize(align_up(f.body.size(), 8));
      break;
    }
  }
  const uint8_t odd = in.u8();
  if (odd == 0xff) f.extra_flags = uint16_t(2 << (in.u8() % 15));
  if (odd == 0xfe) f.no_batch_end = true;
  if (odd == 0xfd) f.frame_number = in.u8();
  if (odd == 0xfc) f.batch = in.u8();
  return f;
}

// The first batch of a segment starts with a checkpoint of what recovery knows so far (the
// harness uses recovery as its model of the state).
std::vector<LogBuilder::Frame> checkpoint_head(FaultEnv& env) {
  std::vector<LogBuilder::CheckpointSpec> cs;
  auto log = recover_log(env, kDir, RecoveryMode::kReadOnly);
  if (log.is_ok()) {
    std::map<uint64_t, const GroupLog*> sorted;
    for (const auto& [g, l] : log->groups) sorted[g.value()] = &l;
    for (const auto& [g, l] : sorted) {
      cs.push_back({g, l->hard.term.value(), l->hard.vote.value(), l->hard.commit.value(),
                    l->mark.index.value(), l->mark.term.value(), l->last_index().value(),
                    l->last_term().value()});
    }
  }
  return {LogBuilder::checkpoint(cs)};
}

void build_dir(Input& in, FaultEnv& env) {
  const uint64_t write_bytes_max = 4096 + uint64_t(in.u8() % 4) * 4096;
  LogBuilder b(env, kDir, kSegmentBytes, write_bytes_max);
  std::map<uint64_t, GroupModel> model;
  size_t segments = 0;
  bool head = false;  // the current segment still needs its checkpoint
  auto next_segment = [&] {
    b.segment();
    ++segments;
    head = true;
  };
  next_segment();
  while (!in.empty()) {
    const uint8_t op = in.u8();
    switch (op % 8) {
      case 0:
        if (segments < kSegmentsMax) next_segment();
        break;
      case 1: {  // an empty (prepared) segment, then a new one
        if (segments + 1 < kSegmentsMax) {
          b.segment();
          ++segments;
          next_segment();
        }
        break;
      }
      case 2: {  // damage: xor one byte
        uint64_t at = in.u16() % b.bytes().size();
        b.bytes()[at] ^= std::byte(in.u8() | 1);
        break;
      }
      case 3: {  // damage: zero a range
        uint64_t at = in.u16() % b.bytes().size();
        uint64_t n = std::min<uint64_t>(in.u8() * 8u, b.bytes().size() - at);
        std::fill(b.bytes().begin() + long(at), b.bytes().begin() + long(at + n), std::byte{0});
        break;
      }
      default: {  // a batch
        std::vector<LogBuilder::Frame> frames;
        if (head) {
          frames = checkpoint_head(env);
          head = false;
        }
        for (int k = 0, n = 1 + op / 8 % 4; k < n; ++k) frames.push_back(make_frame(in, model));
        uint64_t bytes = 0;
        for (const auto& f : frames) bytes += LogBuilder::kFrameHeader + f.body.size();
        if (b.offset() + bytes > kSegmentBytes) {
          if (segments >= kSegmentsMax) return b.finish();
          next_segment();
          break;
        }
        b.batch(frames);
        break;
      }
    }
  }
  b.finish();
}

std::map<std::string, std::vector<std::byte>> snapshot(FaultEnv& env) {
  std::map<std::string, std::vector<std::byte>> files;
  auto names = env.list(kDir);
  check(names.is_ok());
  for (const std::string& n : *names) files[n] = env.read_raw(join_path(kDir, n));
  return files;
}

struct View {
  HardState hard;
  SnapshotMark mark;
  LogIndex last;
  Term term;
  bool operator==(const View&) const = default;
};
std::map<uint64_t, View> view_of(const RecoveredLog& log) {
  std::map<uint64_t, View> v;
  for (const auto& [g, l] : log.groups)
    v[g.value()] = {l.hard, l.mark, l.last_index(), l.last_term()};
  return v;
}

// True when every byte after the end of the log in each segment is zero: nothing lies where
// recovery does not look (past the last segment's write window, in spares past their first
// frame slot). Otherwise a later recovery may find what this one could not see: stray bytes in
// the reach of a later write, or the frames behind a hole longer than a write
// (doc/wal-format.md, what the checks cannot see).
bool unread_regions_zero(FaultEnv& env, const RecoveredLog& log) {
  auto zero_from = [&](const std::string& path, uint64_t from) {
    std::vector<std::byte> raw = env.read_raw(path);
    return std::all_of(raw.begin() + long(from), raw.end(),
                       [](std::byte b) { return b == std::byte{0}; });
  };
  for (const SegmentSummary& s : log.written) {
    if (!zero_from(s.path, s.end_offset)) return false;
  }
  for (const SegmentSummary& s : log.spares) {
    if (!zero_from(s.path, kSegmentHeaderBytes)) return false;
  }
  return true;
}

// The Wal opens what recovery accepted, reads every entry, appends and recovers again. When
// nothing lay where recovery did not look, the result recovers clean with the append.
void continue_with_wal(FaultEnv& env, const std::map<uint64_t, View>& before, bool clean) {
  ManualExecutor exec;
  FileSyncWriter writer(exec);
  WalOptions o;
  o.segment_bytes = kSegmentBytes;
  o.batch_bytes_max = 16 * 1024;
  o.prepare_on_thread = false;
  bool failed = false;
  o.on_durable = [](std::span<const Durable>) {};
  o.fail_stop = [&failed](const FailStopInfo&) { failed = true; };
  auto w = Wal::open(env, kDir, o, exec, writer);
  check(w.is_ok());
  Wal& wal = **w;
  for (const auto& [g, v] : before) {
    auto info = wal.group(GroupId(g));
    check(info.has_value() && info->last_index == v.last && info->hard == v.hard);
    if (v.last > v.mark.index) {
      auto r = wal.read(GroupId(g), v.mark.index + 1, v.last + 1, UINT64_MAX);
      check(r.is_ok() && r->size() == v.last - v.mark.index);
    }
  }
  const GroupId g(1 + before.size() % kGroups);
  auto info = wal.group(g);
  const LogIndex next = info ? info->last_index + 1 : LogIndex(1);
  const Term term = info ? std::max(info->last_term, info->hard.term) : Term(1);
  std::string data = "appended";
  EntryView e{term, 0, std::as_bytes(std::span(data))};
  check(wal.append(g, next, std::span(&e, 1)).is_ok());
  for (int i = 0; i < 100 && (!wal.idle() || exec.pending() > 0); ++i) {
    exec.run_pending();
    wal.flush();
  }
  check(wal.idle() && !failed);
  w->reset();
  exec.run_pending();
  auto after = recover_log(env, kDir, RecoveryMode::kReadOnly);
  if (!clean) return;
  check(after.is_ok() && !after->torn);
  auto it = after->groups.find(g);
  check(it != after->groups.end() && it->second.last_index() == next);
  for (const auto& [id, v] : view_of(*after)) {
    if (id != g.value()) check(before.at(id) == v);
  }
}

void fuzz_directory(Input& in) {
  FaultEnv env;
  build_dir(in, env);
  auto ro = recover_log(env, kDir, RecoveryMode::kReadOnly);
  std::string report;
  Status verified = verify_dir(env, kDir, &report);
  check(verified.code() == ro.status().code() && verified.message() == ro.status().message());
  (void)inspect_dir(env, kDir, InspectOptions{true}, &report);
  const auto files = snapshot(env);
  auto rep = recover_log(env, kDir, RecoveryMode::kRepair);
  check(rep.is_ok() == ro.is_ok());
  if (!ro.is_ok()) {
    // Refused: named "<dir>/<file> at offset <n>: ...", and repair changed nothing.
    check(ro.status().code() == Code::kCorruption);
    check(ro.status().message().rfind(std::string(kDir) + "/", 0) == 0);
    check(ro.status().message().find(" at offset ") != std::string::npos);
    check(rep.status().message() == ro.status().message());
    check(snapshot(env) == files);
    return;
  }
  const auto view = view_of(*ro);
  check(view_of(*rep) == view);
  check(ro->torn.has_value() == rep->torn.has_value());
  auto again = recover_log(env, kDir, RecoveryMode::kReadOnly);
  check(again.is_ok() && !again->torn && view_of(*again) == view);
  check(again->next_frame == ro->next_frame && again->next_batch == ro->next_batch);
  continue_with_wal(env, view, unread_regions_zero(env, *again));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  raftd::log::set_level(raftd::log::Level::kError);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  Input in(data + 1, size - 1);
  switch (data[0] % 3) {
    case 0: fuzz_segment_header(in); break;
    case 1: fuzz_frame(in); break;
    default: fuzz_directory(in); break;
  }
  return 0;
}
