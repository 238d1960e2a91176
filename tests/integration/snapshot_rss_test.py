#!/usr/bin/env python3
"""Process-level test that a snapshot of several GiB passes between two raftd nodes with the
memory of both raftd processes bounded (doc/transport.md section 5, API.md section 3): three
raftd nodes, each beside a bigsnap_app.py whose snapshots are synthetic and --snapshot-bytes long;
a follower killed while the others write and compact their logs comes back and is sent the
leader's snapshot. The peak RSS (VmHWM) of the sending and the receiving raftd is read just before
the stream starts (the apps hold SaveSnapshot until then) and after the install; its growth must
stay under --rss-growth-max whatever the snapshot's size. The apps check every byte received and
must end in the same state (index and hash of every entry). Under ASan the raftd processes run
with a small allocation quarantine (ASAN_QUARANTINE_MB below says why).

Usage: snapshot_rss_test.py --app BIGSNAP_APP_PY [--snapshot-bytes N] [--rss-growth-max N]
                            RAFTD RAFTD_KV [-k SUBSTRING]

Like cluster_test.py: raftd nodes on 127.0.0.1 in a fresh temp dir per test, every process
killed when its test ends; exits 0 when every test passed, 1 otherwise. The snapshot's bytes are
written to the receiving node's data dir (and read back by its app), so the temp dir's file
system needs that much room.
"""

import argparse
import json
import os
import re
import sys
import time

import cluster_ops_test as ops
import cluster_test as ct
from snapshot_test import status, wait_for

BIGSNAP_APP = None
SNAPSHOT_BYTES = 1 << 30
# Growth allowed of a raftd's peak RSS over the transfer and the install. What the design holds
# per stream is a few MiB (doc/transport.md 5.4: the sender's 1 MiB buffer, the receiver's
# 256 KiB write and the app client's 256 KiB pieces); the rest is room for the allocator and
# the sanitizers (measured under ASan: +19 MiB for the sender, +8 MiB for the receiver), and still
# 16 times below the default 1 GiB snapshot.
RSS_GROWTH_MAX = 64 << 20
# ASan (the default build has sanitizers on) keeps freed memory in a quarantine, 256 MiB by
# default, to catch uses after free: a process that allocates and frees as it streams then grows
# by up to that much whatever it holds (measured: the sender's peak grew by ~256 MiB for a 1 GiB
# and for a 2 GiB snapshot alike). The raftd processes of this test get a small quarantine, so
# the bound measures what raftd keeps; a build without ASan ignores the option.
ASAN_QUARANTINE_MB = 8
# Slowest transfer rate the test waits for (bytes per second): a loaded 2-core machine running
# sanitized binaries moves far more than this.
RATE_MIN = 4 << 20
# How often the RSS of both processes is sampled during the transfer (printed, next to VmHWM).
SAMPLE_EVERY_S = 0.2

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


class BigSnapNode(ops.OpsNode):
    """An OpsNode beside bigsnap_app.py: its state in <node dir>/bigsnap, SaveSnapshot held while
    the cluster's hold file exists."""

    hold_file = None

    def state_dir(self):
        return os.path.join(self.dir, "bigsnap")

    def start_app(self):
        port = self.app_port or 0
        with open(self.app_log, "ab") as f:
            f.write(b"=== start\n")
        start = os.path.getsize(self.app_log)
        argv = [sys.executable, BIGSNAP_APP, "--listen", f"127.0.0.1:{port}", "--state-dir",
                self.state_dir(), "--snapshot-bytes", str(SNAPSHOT_BYTES)]
        if self.hold_file:
            argv += ["--hold-saves", self.hold_file]
        self.app = ct.spawn(argv, self.app_log)
        deadline = time.time() + ct.START_WAIT_S
        while time.time() < deadline:
            m = re.search(r"^listening on [0-9.]+:(\d+)$", read_from(self.app_log, start), re.M)
            if m:
                self.app_port = int(m.group(1))
                return
            if self.app.poll() is not None:
                raise AssertionError(f"bigsnap_app.py of node {self.id} exited "
                                     f"{self.app.returncode}")
            time.sleep(0.05)
        raise AssertionError(f"bigsnap_app.py of node {self.id} did not print its address")


def read_from(path, offset=0):
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def memory(pid):
    """(VmHWM, VmRSS) of a process, in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0]) * 1024  # "<n> kB"
    return out["VmHWM"], out["VmRSS"]


def app_state(node, g):
    """The app's state of g as its node's stale read answers it: {"group", "index", "hash"}."""
    r = node.read(g, "any", stale=True)
    assert r is not None and r.status == 200, f"stale read of node {node.id}: {r}"
    return r.json()


def mib(n):
    return f"{n / (1 << 20):.1f} MiB"


@test
def test_large_snapshot_with_bounded_rss(c):
    # Only POST /snapshot compacts; the app's calls may wait for a held SaveSnapshot's release
    # (the test holds it for well under a second) on a loaded machine.
    ops.ops(c, {"snapshot": ["entries = 0", "bytes = 0", "tail = 0"],
                "app": ["timeout_ms = 20000"]})
    hold = os.path.join(c.tmp, "hold-saves")
    for n in c.nodes:
        n.__class__ = BigSnapNode
        n.hold_file = hold
    c.start()
    g = 1
    c.create_group(c.nodes[0], g)
    leader = c.node(c.wait_leader(g))
    lag = next(n for n in c.nodes if n is not leader)
    live = [n for n in c.nodes if n is not lag]
    for i in range(20):
        c.put(c.nodes, g, f"a{i}", "x" * 100)
    c.wait_converged(g)
    lag_applied = status(lag, g)["applied_index"]
    lag.kill9()  # raftd only: its app keeps its state, which the snapshot replaces
    for i in range(40):
        c.put(live, g, f"b{i}", "y" * 100)
    for n in live:
        r = n.call("POST", f"/v1/groups/{g}/snapshot")
        ct.expect_status(r, 200, what="compaction")
        assert r.json()["first_index"] > lag_applied + 1, f"not compacted past node {lag.id}: {r}"
    target = status(c.node(c.wait_leader(g, live)), g)["commit_index"]

    # The follower comes back; the leader's app holds its SaveSnapshot until both raftd
    # processes are measured.
    open(hold, "w").close()
    lag_log_start = os.path.getsize(lag.log)
    lag.start()
    c.wait_ready([lag])

    def held():
        for n in live:
            if "held" in read_from(n.app_log):
                return n
        return None

    sender = wait_for(held, "a SaveSnapshot call on a live node's app")
    procs = {"sender": sender.proc.pid, "receiver": lag.proc.pid}
    before = {k: memory(pid) for k, pid in procs.items()}
    peak_rss = {k: v[1] for k, v in before.items()}
    t0 = time.time()
    os.unlink(hold)

    def installed():
        for k, pid in procs.items():
            peak_rss[k] = max(peak_rss[k], memory(pid)[1])
        m = re.search(r"group 1: snapshot at index (\d+) installed", read_from(lag.log,
                                                                              lag_log_start))
        return int(m.group(1)) if m else None

    index = wait_for(installed, f"node {lag.id} installed the snapshot",
                     60 + SNAPSHOT_BYTES / RATE_MIN, SAMPLE_EVERY_S)
    secs = time.time() - t0
    after = {k: memory(pid) for k, pid in procs.items()}
    assert index >= target, f"a snapshot at {index}, below the commit index {target}"

    # What went through: the sender's app streamed the whole snapshot, the receiver's app
    # checked every byte of it against the generator and recorded the index durably.
    save = re.search(rf"save of group 1 at index {index}: (\d+) bytes in ([0-9.]+) s",
                     read_from(sender.app_log))
    assert save and int(save.group(1)) == SNAPSHOT_BYTES, \
        f"the sender's app did not stream the snapshot at {index} whole"
    recovered = re.search(rf"recovered group 1 at index {index}: (\d+) bytes checked in "
                          rf"([0-9.]+) s", read_from(lag.app_log))
    assert recovered and int(recovered.group(1)) == SNAPSHOT_BYTES, \
        f"the receiver's app did not recover the snapshot at {index}"
    with open(os.path.join(lag.state_dir(), f"g{g}.json")) as f:
        recorded = json.load(f)
    assert recorded["index"] >= index, f"the receiver's app recorded {recorded}, not {index}"
    assert re.search(rf"group 1: snapshot at index {index} delivered to node {lag.id}",
                     read_from(sender.log)), "the sender did not log the snapshot delivered"
    # The spooled file went with the install (doc/transport.md 5.3: the receiver's spool).
    spool = os.path.join(lag.data_dir, "snapshots")
    left = [f for f in os.listdir(spool) if f.startswith(f"{g}-")] if os.path.isdir(spool) else []
    assert not left, f"spool files left after the install: {left}"

    rate = SNAPSHOT_BYTES / 1e6 / max(secs, 1e-9)
    print(f"    snapshot: {SNAPSHOT_BYTES} bytes at index {index}, from node {sender.id} to node "
          f"{lag.id}: {secs:.1f} s from release to install ({rate:.0f} MB/s); sender's app "
          f"{save.group(2)} s, receiver's app check {recovered.group(2)} s", flush=True)
    for k in procs:
        print(f"    {k} raftd: VmHWM {mib(before[k][0])} -> {mib(after[k][0])} (+"
              f"{mib(after[k][0] - before[k][0])}); VmRSS {mib(before[k][1])} before, peak "
              f"sampled {mib(peak_rss[k])}, {mib(after[k][1])} after", flush=True)
    for k in procs:
        growth = after[k][0] - before[k][0]
        assert growth < RSS_GROWTH_MAX, \
            f"the {k} raftd's peak RSS grew by {mib(growth)} over a {mib(SNAPSHOT_BYTES)} " \
            f"snapshot (bound {mib(RSS_GROWTH_MAX)})"

    # The group goes on: new writes reach every replica, and the three apps end in the same
    # state (the same index and the same hash of every entry applied or received).
    for i in range(5):
        c.put(c.nodes, g, f"c{i}", "z")
    commit = c.wait_converged(g)
    states = [app_state(n, g) for n in c.nodes]
    assert all(s["index"] == commit for s in states) and len({s["hash"] for s in states}) == 1, \
        f"the apps differ after the snapshot: {states}"
    c.stop_all()


def main():
    global BIGSNAP_APP, SNAPSHOT_BYTES, RSS_GROWTH_MAX
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--app", required=True)
    ap.add_argument("--snapshot-bytes", type=int, default=SNAPSHOT_BYTES)
    ap.add_argument("--rss-growth-max", type=int, default=RSS_GROWTH_MAX)
    args, rest = ap.parse_known_args()
    BIGSNAP_APP = os.path.abspath(args.app)
    SNAPSHOT_BYTES, RSS_GROWTH_MAX = args.snapshot_bytes, args.rss_growth_max
    opts = os.environ.get("ASAN_OPTIONS", "")
    os.environ["ASAN_OPTIONS"] = ":".join(
        o for o in (opts, f"quarantine_size_mb={ASAN_QUARANTINE_MB}") if o)
    ct.TESTS[:] = TESTS
    sys.argv[1:] = rest
    return ct.main()


if __name__ == "__main__":
    sys.exit(main())
