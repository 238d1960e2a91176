// libFuzzer target for the peer stream's decoder and validation (doc/transport.md). The codec is
// compiled for this target with -fsanitize=fuzzer-no-link, so coverage of the decoder guides the
// fuzzer. Byte 0 picks the size of the pieces the rest is fed in (1..256 bytes, 0: all at once).
// Checks, for every input:
//  - decoding never crashes, and decoding in pieces gives the same messages and the same status
//    as decoding at once;
//  - every message that passes validation re-encodes (encode_batch) without a loss and the
//    re-encoded bytes decode to a message equal to it that passes validation again;
//  - every message that passes validation can be stepped into a real raft::Group (node 1 of
//    voters {1, 2, 3}, its group id set to the group's, the Ready cycle driven after each
//    message, a tick after each one when byte 0 is odd) without tripping an assertion of the
//    core. The raft sources are instrumented too.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "raftd/raft/memory_storage.h"
#include "raftd/raft/raft.h"
#include "raftd/transport/codec.h"

namespace {

using raftd::GroupId;
using raftd::NodeId;
using raftd::Status;
using raftd::raft::Message;
using namespace raftd::transport;

constexpr NodeId kPeer{2};
constexpr NodeId kSelf{1};

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "stream_decode_fuzz: %s\n", what);
  std::abort();
}

// Steps accepted messages into a follower replica and drives its Ready cycle.
class Replica {
 public:
  Replica() : group_(config(), storage_, boot()) {}
  void step(Message m, bool tick) {
    m.group = GroupId(1);
    group_.step(m);
    drain();
    if (tick) {
      group_.tick();
      drain();
    }
  }

 private:
  static raftd::raft::Config config() {
    raftd::raft::Config c;
    c.id = kSelf;
    c.group = GroupId(1);
    c.quiesce_after_ticks = 3;
    return c;
  }
  static raftd::raft::BootState boot() {
    raftd::raft::BootState b;
    b.snapshot.conf_state.voters = {NodeId(1), NodeId(2), NodeId(3)};
    return b;
  }
  void drain() {
    while (group_.has_ready()) {
      raftd::raft::Ready rd = group_.ready();
      if (rd.snapshot) storage_.install_snapshot(rd.snapshot->meta);
      if (!rd.entries.empty()) storage_.append(rd.entries);
      group_.advance(rd);
      if (rd.snapshot) group_.on_snapshot_installed(rd.snapshot->meta);
      if (!rd.entries.empty()) {
        group_.on_persisted(rd.entries.back().index, rd.entries.back().term);
      }
    }
  }
  raftd::raft::MemoryLogStorage storage_;
  raftd::raft::Group group_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t piece = data[0];
  const std::string_view wire(reinterpret_cast<const char*>(data + 1), size - 1);

  Decoder whole(kPeer, kSelf);
  std::vector<Message> all;
  const Status st_whole = whole.feed(wire, all);

  Decoder pieces(kPeer, kSelf);
  std::vector<Message> got;
  Status st_pieces;
  for (size_t at = 0; at < wire.size() && st_pieces.is_ok();) {
    const size_t n = piece == 0 ? wire.size() : std::min(piece, wire.size() - at);
    st_pieces = pieces.feed(wire.substr(at, n), got);
    at += n;
  }
  if (st_whole.code() != st_pieces.code() || all.size() != got.size()) {
    fail("decoding in pieces differs from decoding at once");
  }
  for (size_t i = 0; i < all.size(); ++i) {
    if (!wire_equal(all[i], got[i])) fail("a message decoded in pieces differs");
  }

  // Group 0 and groups >= 1000 are "not hosted" here, to exercise kNotFound.
  const ValidationContext ctx{kPeer, kSelf,
                              [](GroupId g) { return g.value() != 0 && g.value() < 1000; }};
  for (const Message& m : all) {
    const Status v = validate(m, ctx);
    if (!v.is_ok()) continue;
    std::string again;
    const EncodeStats es = encode_batch(std::span(&m, 1), again);
    if (es.too_large != 0 || es.messages != 1) fail("an accepted message does not re-encode");
    Decoder d(kPeer, kSelf);
    std::vector<Message> back;
    if (!d.feed(again, back).is_ok() || back.size() != 1 || d.mid_frame()) {
      fail("a re-encoded message does not decode");
    }
    if (!wire_equal(back[0], m)) fail("a re-encoded message decodes to another message");
    if (!validate(back[0], ctx).is_ok()) fail("a re-encoded message no longer validates");
  }

  Replica replica;
  for (const Message& m : all) {
    if (validate(m, ctx).is_ok()) replica.step(m, (data[0] & 1) != 0);
  }
  return 0;
}
