// The WAL on the real io_uring reactor, a real directory and the real compaction thread.
// Exits 77 (skipped) when the kernel lacks what the reactor needs.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "raftd/io/reactor.h"
#include "raftd/wal/uring_sync_writer.h"
#include "raftd/wal/wal.h"

namespace raftd::wal {
namespace {

// Generous: the machine is shared by several builds; this only guards against a hang.
constexpr auto kDeadline = std::chrono::seconds(120);
// Upper bound of one blocking wait; a completion or a posted function ends it at once.
constexpr auto kTurnWait = std::chrono::seconds(1);

struct TempDir {
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "raftd-wal-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string path;
};

struct UringWal {
  explicit UringWal(const std::string& dir) {
    auto r = io::Reactor::create();
    REQUIRE_MESSAGE(r.is_ok(), r.status().to_string());
    reactor = std::move(*r);
    exec = std::make_unique<ReactorExecutor>(*reactor);
    writer = std::make_unique<UringSyncWriter>(*reactor);
    WalOptions o;
    o.segment_bytes = 1 << 20;
    o.batch_bytes_max = 256 * 1024;
    o.on_durable = [this](std::span<const Durable> ds) {
      durable.insert(durable.end(), ds.begin(), ds.end());
    };
    o.fail_stop = [this](const FailStopInfo& info) { failed = info.error; };
    auto w = Wal::open(posix_env(), dir, std::move(o), *exec, *writer);
    REQUIRE_MESSAGE(w.is_ok(), w.status().to_string());
    wal = std::move(*w);
    hook = reactor->add_turn_end_hook([this] { wal->flush(); });
  }
  ~UringWal() {
    reactor->remove_turn_end_hook(hook);
    wal.reset();
    reactor.reset();
  }
  // Turns the reactor (blocking waits) until pred() holds.
  template <typename Pred>
  void turn_until(Pred pred) {
    auto deadline = std::chrono::steady_clock::now() + kDeadline;
    while (!pred() && std::chrono::steady_clock::now() < deadline) reactor->run_once(kTurnWait);
    REQUIRE(pred());
  }
  // Runs fn inside a reactor turn, as the daemon's callbacks do, so the turn-end hook flushes
  // what fn staged at the end of that same turn. (Staging between turns would wait for the next
  // turn's end, i.e. for a whole blocking wait with nothing in flight.)
  template <typename Fn>
  void in_turn(Fn fn) {
    bool ran = false;
    REQUIRE(reactor->post([&] {
      fn();
      ran = true;
    }));
    turn_until([&] { return ran; });
  }

  std::unique_ptr<io::Reactor> reactor;
  std::unique_ptr<ReactorExecutor> exec;
  std::unique_ptr<UringSyncWriter> writer;
  std::unique_ptr<Wal> wal;
  io::Reactor::HookId hook = 0;
  std::vector<Durable> durable;
  int failed = 0;
};

TEST_CASE("wal::UringSyncWriter: appends of many groups in one turn are one write + fdatasync") {
  TempDir dir;
  constexpr uint64_t kGroups = 100;
  std::vector<std::byte> payload(1024, std::byte{0x42});
  {
    UringWal u(dir.path);
    u.turn_until([&] { return u.wal->ready_segment_count() == 2; });
    const uint64_t syncs = u.writer->syncs();
    u.in_turn([&] {
      for (uint64_t g = 1; g <= kGroups; ++g) {
        EntryView e[2] = {{Term(2), 0, payload}, {Term(3), 0, payload}};
        CHECK(u.wal->append(GroupId(g), LogIndex(1), e).is_ok());
      }
    });
    u.turn_until([&] { return u.durable.size() == kGroups; });
    CHECK(u.writer->syncs() == syncs + 1);
    CHECK(u.writer->submissions() == u.writer->syncs());
    CHECK(u.wal->stats().batches == 1);
    for (const Durable& d : u.durable) {
      CHECK(d.last_index == LogIndex(2));
      CHECK(d.last_term == Term(3));
    }
    // Enough batches to roll over several segments prepared by the compaction thread.
    for (uint64_t i = 3; i < 400; ++i) {
      size_t want = u.durable.size() + 10;
      u.in_turn([&] {
        for (uint64_t g = 1; g <= 10; ++g) {
          EntryView e{Term(3), 0, payload};
          CHECK(u.wal->append(GroupId(g), LogIndex(i), std::span(&e, 1)).is_ok());
        }
      });
      u.turn_until([&] { return u.durable.size() == want; });
    }
    CHECK(u.wal->segment_sequences().size() >= 3);
    CHECK(u.failed == 0);
    u.turn_until([&] { return u.wal->idle(); });
  }
  // Recovery from the real files.
  UringWal again(dir.path);
  CHECK_FALSE(again.wal->recovered_torn_tail().has_value());
  auto g1 = again.wal->group(GroupId(1));
  REQUIRE(g1.has_value());
  CHECK(g1->last_index == LogIndex(399));
  auto r = again.wal->read(GroupId(1), LogIndex(1), LogIndex(400), UINT64_MAX);
  REQUIRE(r.is_ok());
  REQUIRE(r->size() == 399);
  CHECK((*r)[0].term == Term(2));
  CHECK((*r)[398].data == std::string(1024, char(0x42)));
  CHECK(again.wal->group(GroupId(50))->last_index == LogIndex(2));
  again.turn_until([&] { return again.wal->ready_segment_count() >= 1; });
}

}  // namespace
}  // namespace raftd::wal

int main(int argc, char** argv) {
  {
    auto r = raftd::io::Reactor::create();
    if (!r) {
      std::fprintf(stderr, "skipped: %s\n", r.status().to_string().c_str());
      return r.status().code() == raftd::Code::kUnsupported ? 77 : 1;
    }
  }
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
