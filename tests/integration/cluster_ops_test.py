#!/usr/bin/env python3
"""Process-level tests of `raftd serve` beyond the basic API (cluster_test.py has the helpers and
those cases): a node of another cluster refused at start-up, a crashed quiesced leader replaced,
a deleted group's WAL space released, the Python SQLite example as every node's app, and a
linearizability check (raftd-lincheck, doc/lincheck.md) of concurrent clients while the leader is
killed and restarted.

Usage: cluster_ops_test.py --lincheck RAFTD_LINCHECK --sqlite-app APP_PY RAFTD RAFTD_KV
                           [-k SUBSTRING]

Like cluster_test.py: three raftd nodes on 127.0.0.1 in a fresh temp dir per test, every
process killed when its test ends; exits 0 when every test passed, 1 otherwise.
"""

import argparse
import json
import os
import random
import re
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import types

import cluster_test as ct

LINCHECK = None
SQLITE_APP = None

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


# ---- nodes with extra configuration or another app -----------------------------------------


class OpsNode(ct.Node):
    """A cluster_test Node whose config gets extra lines per section and whose app may be the
    Python SQLite example (examples/python-sqlite/app.py) instead of raftd-kv."""

    extra_config = {}  # {"section": ["key = value", ...]}: set or replace in that section
    app_kind = "kv"

    def write_config(self, initial):
        super().write_config(initial)
        with open(self.config) as f:
            text = f.read()
        for section, lines in self.extra_config.items():
            head = f"[{section}]\n"
            if head not in text:
                text = f"{text}\n{head}"
            for line in lines:  # replaces the key's line if the base config has it
                key = line.split("=")[0].strip()
                text, n = re.subn(rf"^{re.escape(key)} = .*$", line, text, count=1, flags=re.M)
                if n == 0:
                    text = text.replace(head, f"{head}{line}\n", 1)
        with open(self.config, "w") as f:
            f.write(text)

    def db_path(self):
        return os.path.join(self.dir, "app.sqlite")

    def start_app(self):
        if self.app_kind == "kv":
            return super().start_app()
        port = self.app_port or 0
        with open(self.app_log, "ab") as f:
            f.write(b"=== start\n")
        start = os.path.getsize(self.app_log)
        self.app = ct.spawn([sys.executable, SQLITE_APP, "--listen", f"127.0.0.1:{port}",
                             "--db", self.db_path()], self.app_log)
        deadline = time.time() + ct.START_WAIT_S
        while time.time() < deadline:
            with open(self.app_log, "rb") as f:
                f.seek(start)
                text = f.read().decode(errors="replace")
            m = re.search(r"^listening on [0-9.]+:(\d+)$", text, re.M)
            if m:
                self.app_port = int(m.group(1))
                return
            if self.app.poll() is not None:
                raise AssertionError(f"app.py of node {self.id} exited {self.app.returncode}")
            time.sleep(0.05)
        raise AssertionError(f"app.py of node {self.id} did not print its address")


def fixed_ports(n):
    """n distinct ports free on 127.0.0.1 a moment ago, below the kernel's ephemeral range:
    ct.free_ports() picks ephemeral ports, which an outgoing connection (or an app listening on
    port 0) started before the node binds may take."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return ct.free_ports(n)
    if low <= 10000:
        return ct.free_ports(n)
    rng = random.Random()
    out = []
    while len(out) < n:
        port = rng.randrange(10000, low)
        if port in out:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
            out.append(port)
        except OSError:
            pass
        finally:
            s.close()
    return out


def ops(c, extra=None, app="kv"):
    """Turns the Cluster's nodes (made by cluster_test.main) into OpsNodes, their and their
    apps' ports outside the ephemeral range."""
    ports = fixed_ports(3 * len(c.nodes))
    for i, n in enumerate(c.nodes):
        n.__class__ = OpsNode
        n.extra_config = extra or {}
        n.app_kind = app
        n.client_port, n.peer_port, n.app_port = ports[3 * i:3 * i + 3]
    return c


def cluster_id(node):
    with open(os.path.join(node.data_dir, "cluster")) as f:
        for line in f:
            if line.startswith("cluster_id "):
                return int(line.split()[1])
    raise AssertionError(f"no cluster_id in node {node.id}'s cluster file")


def wait_exit(node, timeout):
    try:
        return node.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"node {node.id} still runs {timeout} s after its start")


def meta_leader(node):
    """Group 0's leader as node last logged it ("meta: leader is node N (role)"), or None."""
    found = None
    for line in ct.tail(node.log, 100000):
        m = re.search(r"meta: leader is node (\d+) ", line)
        if m:
            found = int(m.group(1))
    return found or None


def wait_new_leader(c, g, nodes, old, bound_s):
    """Seconds until every given node sees the same leader of g, not `old`, and that leader."""
    t0 = time.time()
    seen = None
    while time.time() - t0 < bound_s:
        seen = [n.status(g) for n in nodes]
        leaders = {s["leader"] if s else None for s in seen}
        if len(leaders) == 1 and leaders.isdisjoint({None, 0, old}):
            return time.time() - t0, leaders.pop()
        time.sleep(0.05)
    raise AssertionError(f"group {g}: no new leader within {bound_s} s: {seen}")


def metric_total(node, name):
    """The sum of metric `name` over its labels in node's /metrics."""
    r = node.call("GET", "/metrics")
    assert r is not None and r.status == 200, f"/metrics of node {node.id}: {r}"
    total = 0
    for line in r.body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += int(float(line.split()[-1]))
    return total


def messages_sent(node):
    """raftd_transport_messages_sent_total of node's /metrics (summed over its labels)."""
    return metric_total(node, "raftd_transport_messages_sent_total")


def wait_quiet(nodes, bound_s=ct.OP_WAIT_S):
    """Waits until a second passes in which no given node sends a raft message (pings are not
    messages): every group, group 0 included, has quiesced. Returns how long it took."""
    t0 = time.time()
    before = [messages_sent(n) for n in nodes]
    while True:
        time.sleep(1)
        now = [messages_sent(n) for n in nodes]
        if now == before:
            return time.time() - t0
        assert time.time() - t0 < bound_s, \
            f"groups not quiesced within {bound_s} s: raft messages sent {before} -> {now}"
        before = now


def time_to_write(c, nodes, g, key, value, bound_s):
    """Puts key=value through `nodes` (retrying), and returns how long it took; fails beyond
    bound_s."""
    t0 = time.time()
    c.put(nodes, g, key, value, deadline_s=bound_s)
    return time.time() - t0


# ---- 1. a node of another cluster ----------------------------------------------------------


@test
def test_other_cluster_refused(c):
    """Node 3 bootstrapped from another [cluster].initial (a 4th member: another cluster id)
    while nodes 1-2 run: its peers refuse its streams, it logs one error line naming each of
    them and both cluster ids, and exits 2 (again when restarted on that data_dir); nodes 1-2
    log the refusal and keep serving; node 3 with the right list and an empty data_dir joins."""
    ops(c)
    n1, n2, n3 = c.nodes
    for n in c.nodes:
        n.start_app()
        n.write_config(c.nodes)
    n1.start()
    n2.start()
    c.wait_ready([n1, n2])
    c.create_group(n1, 7, members=[1, 2])
    c.put(n2, 7, "before", "1")

    ghost_ports = fixed_ports(2)
    ghost = types.SimpleNamespace(id=4, client_port=ghost_ports[0], peer_port=ghost_ports[1])
    n3.write_config(c.nodes + [ghost])
    for attempt in ("bootstrap", "restart on its data_dir"):
        n3.start()
        t0 = time.time()
        rc = wait_exit(n3, ct.START_WAIT_S)
        took = time.time() - t0
        log = "\n".join(ct.tail(n3.log, 400))
        assert rc == 2, f"node 3 of another cluster ({attempt}) exited {rc}, not 2"
        errors = [ln for ln in log.split("=== start")[-1].splitlines()
                  if "refused it for another cluster" in ln]
        assert len(errors) == 1, f"want one error line ({attempt}), got: {errors}"
        line = errors[0]
        want = [f"node 3 is in cluster {cluster_id(n3)}"] + \
            [f"node {n.id} at 127.0.0.1:{n.peer_port} is in cluster {cluster_id(n)}"
             for n in (n1, n2)]
        for w in want:
            assert w in line, f"error line lacks {w!r}: {line}"
        print(f"    {attempt}: exit 2 after {took:.1f} s: {line.strip()[:160]}...")
    assert cluster_id(n1) == cluster_id(n2) != cluster_id(n3)
    # The established nodes refused node 3's streams, logged it, and keep serving.
    for n in (n1, n2):
        assert n.alive(), f"node {n.id} exited after node 3's refusal"
        assert any("refused a peer stream" in ln and str(cluster_id(n3)) in ln
                   for ln in ct.tail(n.log, 100000)), f"node {n.id} did not log the refusal"
    c.put([n1, n2], 7, "after", "2")
    c.read_until(n1, 7, "before", "1")
    c.read_until(n2, 7, "after", "2")

    # Node 3 with the right list and an empty data_dir is a member again.
    shutil.rmtree(n3.data_dir)
    n3.write_config(c.nodes)
    n3.start()
    c.wait_ready([n3])
    c.create_group(n3, 8)
    c.put(n3, 8, "k", "v")
    c.read_until(n1, 8, "k", "v")
    c.stop_all()


# ---- 2. a crashed quiesced leader ----------------------------------------------------------

QUIESCE_TICKS = 10  # 0.5 s at tick_ms 50
REPLACE_BOUND_S = 20  # election + detection under ASan on a loaded machine


@test
def test_quiesced_leader_killed(c):
    """raft.quiesce_after_ticks > 0: groups go quiet; kill -9 of a quiesced group's leader (not
    the meta leader), then of the meta leader: each time the survivors elect a new leader of the
    group (and of group 0) and take writes within a bound. Quiesced means: no node sent a raft
    message for a second (/metrics), pings aside."""
    ops(c, {"raft": [f"quiesce_after_ticks = {QUIESCE_TICKS}"]}).start()
    groups = [7, 8, 9]
    for i, g in enumerate(groups):
        c.create_group(c.nodes[i], g)
        c.put(c.nodes, g, "k", f"v{g}")

    # Case 1: a group whose leader does not lead group 0. Elections may well have put every
    # group's leader on the meta leader's node (nothing moves them afterwards): then move one.
    deadline = time.time() + ct.OP_WAIT_S
    while (meta := meta_leader(c.nodes[0])) is None:
        assert time.time() < deadline, "no meta leader logged"
        time.sleep(0.1)
    leaders = {g: c.wait_leader(g) for g in groups}
    target = next((g for g in groups if leaders[g] != meta), None)
    if target is None:
        target = groups[0]
        to = next(n for n in c.nodes if n.id != meta)
        print(f"    every group led by the meta leader {meta}: group {target} moved to {to.id}")
        lead_on(c, target, to)
        leaders[target] = to.id
    victim = c.node(leaders[target])
    print(f"    every group quiesced after {wait_quiet(c.nodes):.1f} s")
    victim.kill9()
    rest = [n for n in c.nodes if n is not victim]
    took, new_leader = wait_new_leader(c, target, rest, victim.id, REPLACE_BOUND_S)
    took_w = time_to_write(c, rest, target, "k", "after-kill", REPLACE_BOUND_S)
    print(f"    group {target}: leader {victim.id} killed, new leader {new_leader} after "
          f"{took:.1f} s, then a write in {took_w:.1f} s")
    for g in groups:  # every group, quiet or not, takes writes through the survivors
        c.put(rest, g, "k2", "w")
    victim.start()
    c.wait_ready([victim])
    c.read_until(victim, target, "k", "after-kill")

    # Case 2: the meta leader (after the groups quiesce again).
    print(f"    every group quiesced again after {wait_quiet(c.nodes):.1f} s")
    meta = meta_leader(c.nodes[0])
    assert meta is not None, "no meta leader logged"
    led = [g for g in groups if c.wait_leader(g) == meta]
    victim = c.node(meta)
    victim.kill9()
    rest = [n for n in c.nodes if n is not victim]
    t0 = time.time()
    for g in led:
        took, new_leader = wait_new_leader(c, g, rest, meta, REPLACE_BOUND_S)
        print(f"    group {g}: leader {meta} (also meta leader) killed, new leader "
              f"{new_leader} after {took:.1f} s")
    for g in groups:
        c.put(rest, g, "k3", "after-meta-kill", deadline_s=REPLACE_BOUND_S)
    while True:  # a new meta leader that both survivors know
        seen = {meta_leader(n) for n in rest}
        if len(seen) == 1 and seen.pop() in [n.id for n in rest]:
            break
        assert time.time() - t0 < REPLACE_BOUND_S, f"no new meta leader: {seen}"
        time.sleep(0.1)
    took_meta = time.time() - t0
    c.create_group(rest[0], 10, members=[n.id for n in rest])  # the new meta leader works
    print(f"    meta leader {meta} killed: new meta leader after {took_meta:.1f} s")
    victim.start()
    c.wait_ready([victim])
    for g in groups:
        c.read_until(victim, g, "k3", "after-meta-kill")
    # Groups slept and were woken by messages, proposals, elections and restarts: every time by
    # an input that announced itself, so the host's safety sweep found nothing on any node.
    for n in c.nodes:
        woken = metric_total(n, "raftd_group_sleepers_woken_total")
        assert woken == 0, f"node {n.id}: the sweep found {woken} sleeping groups with work"
    c.stop_all()


# ---- 2b. an app ahead of the durable commit index -------------------------------------------


@test
def test_app_ahead_of_durable_commit(c):
    """A commit-only hard state is written with the node's next write or at its next tick
    (raft.h "Lazy commit"; tick_ms 1000 here, so the window is long): a follower killed -9 right
    after its app applied a keyed put restarts with a durable commit index behind its app. The
    entries in between come to the app again and are skipped (API.md 3.1); a retry of the key
    through that node answers the first result, not the app's answer for the skipped entry, and
    new proposals through it get their own results."""
    ops(c, {"raft": ["tick_ms = 1000", "election_ticks = 3", "heartbeat_ticks = 1"]}).start()
    c.create_group(c.nodes[0], 7)
    leader = c.node(c.wait_leader(7))
    fol = next(n for n in c.nodes if n is not leader)
    behind = 0
    for attempt in range(5):  # the kill lands inside the window nearly always; retry if not
        key = f"ahead-{attempt}"
        first = ct.keyed_put(fol, 7, key, f"k{attempt}", "v")
        ct.expect_status(first, 200, what="keyed put through a follower")
        fol.kill9()
        fol.start()
        c.wait_ready([fol])
        line = [ln for ln in ct.tail(fol.log, 400) if "group 7: started" in ln][-1]
        m = re.search(r"app index (\d+), commit (\d+)", line)
        assert m, f"no start line with the app index and commit: {line}"
        app_index, commit = int(m.group(1)), int(m.group(2))
        assert app_index >= int(first.header("Raftd-Index")), f"app lost the put: {line}"
        deadline = time.time() + ct.OP_WAIT_S  # until the entries came again (re-delivered)
        while (s := fol.status(7)) is None or s["applied_index"] < app_index:
            assert time.time() < deadline, f"node {fol.id} did not apply up to {app_index}: {s}"
            time.sleep(0.1)
        ct.keyed_retry_until([fol], 7, key, first, f"retry {attempt} after the restart")
        if commit < app_index:
            behind += 1
            print(f"    attempt {attempt}: restarted with commit {commit} behind app index "
                  f"{app_index}; the retry answered the first result")
            break
    assert behind > 0, "the follower's durable commit was never behind its app"
    c.put([fol, leader], 7, "after", "1")  # new proposals through it work as before
    c.read_until(fol, 7, "after", "1")
    c.stop_all()


# ---- forwarded proposals, batched -----------------------------------------------------------


def envelope(origin, rid, payload, key=b"", kind=1):
    """An entry as raftd encodes it (doc/node.md "Entry envelope")."""
    out = struct.pack("<BBBQQ", 1, kind, 1 if key else 0, origin, rid)
    if key:
        out += struct.pack("<H", len(key)) + key
    return out + payload


def forwarded(g, entry):
    """One record of a forwarded batch: u64 group | u32 length | entry."""
    return struct.pack("<QI", g, len(entry)) + entry


def forward_post(node, target, body, cluster, sender):
    head = (f"POST {target} HTTP/1.1\r\nHost: x\r\nRaftd-Cluster: {cluster}\r\n"
            f"Raftd-From: {sender}\r\nContent-Length: {len(body)}\r\n\r\n")
    return ct.raw_request(node.peer_port, head, body)


def forward_answers(body):
    """(status, replay, index) per answer of a batch (u16 status | u8 flags | u64 index)."""
    assert len(body) % 11 == 0, f"answers of {len(body)} bytes"
    return [(st, fl == 1, ix) for st, fl, ix in
            (struct.unpack_from("<HBQ", body, 11 * i) for i in range(len(body) // 11))]


@test
def test_forwarded_batches(c):
    """Proposals through followers reach the leader in batches: one request per leader and
    reactor turn carries every proposal of that turn. The leader's batch endpoint answers each
    entry in order (appended, replayed under its Idempotency-Key, not the leader, malformed),
    refuses bad framing and other clusters, and the one-entry endpoint still works."""
    ops(c).start()
    for g in (7, 8):
        c.create_group(c.nodes[0], g)
    n1, n2, n3 = c.nodes
    lead_on(c, 7, n1)
    lead_on(c, 8, n1)
    # 64 concurrent puts through node 2: forwarded, and fewer requests than proposals.
    before = (metric_total(n2, "raftd_forwarded_proposals_total"),
              metric_total(n2, "raftd_forward_requests_total"))
    failed = []
    start = threading.Barrier(64)

    def put(i):
        start.wait()  # all at once, so that several reach node 2 in one turn
        try:
            c.put(n2, 7 + i % 2, f"fb{i}", str(i))
        except AssertionError as e:
            failed.append(str(e))

    threads = [threading.Thread(target=put, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failed, f"puts through node 2 failed: {failed[:3]}"
    proposals = metric_total(n2, "raftd_forwarded_proposals_total") - before[0]
    requests = metric_total(n2, "raftd_forward_requests_total") - before[1]
    print(f"    node 2 forwarded {proposals} proposals in {requests} requests")
    assert proposals >= 64, f"only {proposals} proposals forwarded"
    assert 0 < requests < proposals, f"{proposals} proposals in {requests} requests: not batched"
    for i in (0, 63):
        c.read_until(n3, 7 + i % 2, f"fb{i}", str(i))

    # The leader's endpoint, spoken to directly as node 2.
    cid = cluster_id(n1)
    rid = random.getrandbits(62)
    good = envelope(2, rid, ct.put_cmd("raw", "1").encode())
    keyed = envelope(2, rid + 1, ct.put_cmd("rawk", "2").encode(), key=b"batch-key-1")
    body = (forwarded(7, good) + forwarded(8, keyed) + forwarded(7, envelope(3, rid + 2, b"x")) +
            forwarded(99, envelope(2, rid + 3, b"x")) + forwarded(7, b"\x01\x01"))
    r = forward_post(n1, "/raft/v1/forwards", body, cid, 2)
    ct.expect_status(r, 200, what="a batch of five")
    got = forward_answers(r.body)
    assert [a[0] for a in got] == [200, 200, 400, 503, 400], f"answers {got}"
    assert got[0][2] > 0 and got[1][2] > 0 and not got[0][1] and not got[1][1], f"answers {got}"
    # Appended is not committed: wait for it to be applied (a stale read retries).
    c.read_until(n2, 7, "raw", "1", stale=True)
    # The same key again, alone: found in the leader's log, nothing appended.
    r = forward_post(n1, "/raft/v1/forwards", forwarded(8, keyed), cid, 2)
    ct.expect_status(r, 200, what="a keyed entry again")
    assert forward_answers(r.body) == [(200, True, got[1][2])], f"replay {r.body!r}"
    # A follower is not the leader of any entry it is sent.
    r = forward_post(n3, "/raft/v1/forwards", forwarded(7, envelope(2, rid + 4, b"y")), cid, 2)
    ct.expect_status(r, 200, what="a batch to a follower")
    assert [a[0] for a in forward_answers(r.body)] == [503], f"follower's answers {r.body!r}"
    # Framing: a truncated record header, a length past the end, too many records.
    for bad in (forwarded(7, good)[:11], forwarded(7, good)[:-1],
                forwarded(7, good) + b"\x07\x00"):
        ct.expect_status(forward_post(n1, "/raft/v1/forwards", bad, cid, 2), 400, "bad_request",
                         f"a batch of {len(bad)} malformed bytes")
    r = forward_post(n1, "/raft/v1/forwards", forwarded(7, b"") * 4097, cid, 2)
    ct.expect_status(r, 413, "too_large", "a batch of 4,097 records")
    # Another cluster, an unknown sender.
    ct.expect_status(forward_post(n1, "/raft/v1/forwards", forwarded(7, good), cid + 1, 2), 403,
                     "forbidden", "a batch from another cluster")
    ct.expect_status(forward_post(n1, "/raft/v1/forwards", forwarded(7, good), cid, 9), 403,
                     "forbidden", "a batch from an unknown node")
    # Over the size limit: 413, nothing appended, the node still serves.
    big = forwarded(7, b"z" * (2 << 20))
    ct.expect_status(forward_post(n1, "/raft/v1/forwards", big, cid, 2), 413, "too_large",
                     "a batch over the limit")
    # The one-entry endpoint (what earlier versions send).
    single = envelope(2, rid + 5, ct.put_cmd("single", "3").encode())
    r = forward_post(n1, "/raft/v1/forward/7", single, cid, 2)
    ct.expect_status(r, 200, what="a single forwarded entry")
    assert json.loads(r.body)["index"] > 0, f"single answer {r.body!r}"
    c.read_until(n3, 7, "single", "3", stale=True)
    c.put([n2, n3], 7, "after", "4")
    c.read_until(n1, 7, "after", "4")
    c.stop_all()


# ---- 3. a deleted group's WAL space --------------------------------------------------------

SEGMENT_BYTES = 64 * 1024  # wal::kSegmentBytesMin
BATCH_BYTES = 16 * 1024  # at most segment_bytes / 4


def wal_segments(node):
    d = os.path.join(node.data_dir, "wal")
    return sorted(f for f in os.listdir(d) if re.fullmatch(r"[0-9a-f]{16}\.wal", f))


def lead_on(c, g, node):
    """Moves g's leadership to `node` (POST transfer-leader, retried until it leads)."""
    deadline = time.time() + ct.OP_WAIT_S
    while c.wait_leader(g) != node.id:
        assert time.time() < deadline, f"group {g}: node {node.id} did not take the lead"
        r = node.call("POST", f"/v1/groups/{g}/transfer-leader", json.dumps({"node": node.id}))
        if r is None or r.status != 200:
            time.sleep(0.2)


@test
def test_heartbeats_coalesced_or_not(c):
    """transport.coalesce_heartbeats: node 2 sends each heartbeat as a full message, nodes 1 and
    3 as tuples of one list per peer and flush (the default). The mixed cluster elects, takes
    writes through every node and keeps its groups led; the counters show each node's form, and
    an uncoalesced heartbeat costs node 2 more bytes per heartbeat than node 1's."""
    ops(c)
    c.nodes[1].extra_config = {"transport": ["coalesce_heartbeats = false"]}
    c.start()
    groups = [11, 12, 13]
    for i, g in enumerate(groups):
        c.create_group(c.nodes[i], g)
        # Each node leads one group, so each sends heartbeats of its own.
        lead_on(c, g, c.nodes[i])
    for g in groups:
        for n in c.nodes:
            c.put([n], g, f"k{n.id}", f"v{n.id}")
        c.wait_converged(g)

    def sample(n):
        """The counters from one scrape (separate scrapes would each see a later moment)."""
        r = n.call("GET", "/metrics")
        assert r is not None and r.status == 200, f"/metrics of node {n.id}: {r}"
        out = {}
        for line in r.body.decode().splitlines():
            for name in ("heartbeats_sent", "heartbeats_coalesced", "bytes_sent"):
                if line.startswith(f"raftd_transport_{name}_total "):
                    out[name] = int(float(line.split()[-1]))
        assert len(out) == 3, f"node {n.id}: transport counters missing: {out}"
        return out

    before = [sample(n) for n in c.nodes]
    time.sleep(2)  # 40 ticks of 50 ms: every leader heartbeats every tick
    after = [sample(n) for n in c.nodes]
    delta = [{k: a[k] - b[k] for k in a} for a, b in zip(after, before)]
    for n, d in zip(c.nodes, delta):
        assert d["heartbeats_sent"] >= 40, f"node {n.id}: too few heartbeats: {d}"
        want = 0 if n.id == 2 else d["heartbeats_sent"]
        assert d["heartbeats_coalesced"] == want, f"node {n.id}: {d}"
    # Idle groups: the streams carry (almost) only heartbeats, their answers and pings.
    per_beat = [d["bytes_sent"] / d["heartbeats_sent"] for d in delta]
    assert per_beat[1] > per_beat[0] and per_beat[1] > per_beat[2], \
        f"bytes per heartbeat {per_beat}: node 2's full messages are not the larger"
    for g in groups:
        c.wait_leader(g)
        for n in c.nodes:
            c.put([n], g, f"after{n.id}", "x")


@test
def test_deleted_group_wal_released(c):
    """Small WAL segments; several segments of data in group 7, then DELETE of group 7: every
    node's segment files drop back to a few (those holding group 0's meta entries, which are
    never compacted, the active one and the spares) within a bound."""
    # No automatic compaction: group 7's log keeps its segments until the DELETE.
    ops(c, {"wal": [f"segment_bytes = {SEGMENT_BYTES}", f"batch_bytes_max = {BATCH_BYTES}"],
            "limits": [f"client_body_bytes_max = {BATCH_BYTES // 2}"],
            "snapshot": ["entries = 0", "bytes = 0"]})
    c.start()
    c.create_group(c.nodes[0], 7)
    before = {n.id: len(wal_segments(n)) for n in c.nodes}
    value = "x" * 3000
    writers = []
    for t in range(3):
        def write(t=t):
            for i in range(40):
                c.put(c.nodes[t], 7, f"k{t}-{i}", value)
        writers.append(threading.Thread(target=write))
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    c.wait_converged(7)
    grown = {n.id: len(wal_segments(n)) for n in c.nodes}
    for n in c.nodes:
        assert grown[n.id] >= before[n.id] + 4, f"node {n.id}: {before} -> {grown} segments"
    ct.expect_status(c.nodes[1].call("DELETE", "/v1/groups/7"), 200, what="DELETE group 7")
    # A few more meta entries and writes of another group roll the active segment on.
    c.create_group(c.nodes[2], 8)
    deadline = time.time() + ct.OP_WAIT_S
    while True:
        now = {n.id: len(wal_segments(n)) for n in c.nodes}
        if all(now[i] <= before[i] + 2 for i in now):
            break
        if time.time() > deadline:
            raise AssertionError(f"WAL segments not released after DELETE: before {before}, "
                                 f"with group 7 {grown}, after DELETE {now}")
        c.put(c.nodes, 8, "roll", str(time.time()))
        time.sleep(0.2)
    print(f"    segments per node: {before} at start, {grown} with group 7, {now} after DELETE")
    # What is left recovers: group 0's log (copied forward) and group 8, after kill -9 of all.
    c.put(c.nodes, 8, "last", "v")
    for n in c.nodes:
        n.kill9()
    for n in c.nodes:
        r = subprocess.run([ct.RAFTD, "wal", "verify", os.path.join(n.data_dir, "wal")],
                           capture_output=True, timeout=60)
        assert r.returncode == 0, f"wal verify of node {n.id}: {r.stdout + r.stderr}"
        n.start()
    c.wait_ready()
    r = c.nodes[0].call("GET", "/v1/groups")
    assert sorted(s["id"] for s in r.json()["groups"]) == [8], f"groups after restart: {r}"
    for n in c.nodes:
        c.read_until(n, 8, "last", "v")
    c.create_group(c.nodes[1], 9)
    c.stop_all()


# ---- 4. the Python SQLite example as every node's app --------------------------------------


def sqlite_rows(node, g):
    db = sqlite3.connect(f"file:{node.db_path()}?mode=ro", uri=True, timeout=10)
    try:
        return sorted(db.execute("SELECT key, value FROM kv WHERE group_id = ?", (g,)))
    finally:
        db.close()


@test
def test_python_sqlite_app(c):
    """examples/python-sqlite/app.py beside every raftd: writes and linearizable reads through
    every node; kill -9 of one node and its app, writes through the others, both restarted: the
    node catches up, and every app's database holds the same rows."""
    ops(c, app="sqlite").start()
    n1, n2, n3 = c.nodes
    c.create_group(n2, 7)
    data = {}
    for n in c.nodes:
        for i in range(3):
            key, value = f"n{n.id}-{i}", f"v{n.id}-{i}"
            r = c.put(n, 7, key, value)
            assert r.json() == {"ok": True, "prev": None}, f"put result from app.py: {r}"
            data[key] = value
    for n in c.nodes:
        ct.check_all(c, n, 7, data)
    victim = c.node(c.wait_leader(7))
    victim.kill9()
    victim.kill_app()
    rest = [n for n in c.nodes if n is not victim]
    ct.write_batch(c, rest, 7, "down", 6, data)
    for n in rest:
        ct.check_all(c, n, 7, data)
    victim.start_app()
    victim.start()
    c.wait_ready([victim])
    ct.check_all(c, victim, 7, data)
    c.put(victim, 7, "down0", "through the restarted node")
    data["down0"] = "through the restarted node"
    c.wait_converged(7)
    for n in c.nodes:
        ct.check_all(c, n, 7, data, stale=True)
    want = sorted((k.encode(), v.encode()) for k, v in data.items())
    for n in c.nodes:
        rows = [(bytes(k), bytes(v)) for k, v in sqlite_rows(n, 7)]
        assert rows == want, f"node {n.id}'s app.py database: {rows} != {want}"
    c.stop_all()


# ---- 5. linearizability under a leader crash -----------------------------------------------

LIN_CLIENTS = 6
LIN_KEYS = 3
LIN_RUN_S = 12  # kill at 3 s, restart at 6 s


@test
def test_linearizable_under_leader_kill(c):
    """Six client threads put and read (linearizably) three keys through the live nodes while
    the group's leader is killed -9 and restarted; the history of invokes and completions (504
    or a lost connection: unknown outcome; 503: did not happen) is checked by raftd-lincheck."""
    ops(c).start()
    c.create_group(c.nodes[0], 7)
    history = []  # JSON lines
    lock = threading.Lock()
    down = set()  # ids of nodes clients must not use
    stop = threading.Event()
    failures = []
    t_base = time.monotonic()

    def now_us():
        return int((time.monotonic() - t_base) * 1e6)

    def record(ev):
        with lock:
            history.append(json.dumps(ev))

    def client(p):
        rng = random.Random(p)
        seq = 0
        try:
            while not stop.is_set():
                with lock:
                    live = [n for n in c.nodes if n.id not in down]
                n = rng.choice(live)
                key = f"k{rng.randrange(LIN_KEYS)}"
                if rng.random() < 0.5:
                    seq += 1
                    value = p * 1000000 + seq
                    record({"process": p, "type": "invoke", "f": "write", "key": key,
                            "value": value, "time": now_us()})
                    r = n.propose(7, ct.put_cmd(key, str(value)))
                    t = now_us()
                    if r is not None and r.status == 200:
                        assert r.json()["ok"] is True, f"put answered {r}"
                        kind = "ok"
                    elif r is not None and r.status == 503:
                        kind = "fail"
                    elif r is None or r.status == 504:
                        kind = "info"
                    else:
                        raise AssertionError(f"put via node {n.id}: {r}")
                    record({"process": p, "type": kind, "f": "write", "key": key,
                            "value": value, "time": t})
                else:
                    record({"process": p, "type": "invoke", "f": "read", "key": key,
                            "value": None, "time": now_us()})
                    r = n.read(7, key)
                    t = now_us()
                    ev = {"process": p, "f": "read", "key": key, "value": None, "time": t}
                    if r is not None and r.status == 200:
                        ev.update(type="ok", value=int(r.body))
                    elif r is not None and r.status == 404 and \
                            r.json().get("error") == "not_found":
                        ev.update(type="ok")
                    elif r is not None and r.status == 503:
                        ev.update(type="fail")
                    elif r is None or r.status == 504:
                        ev.update(type="info")
                    else:
                        raise AssertionError(f"read via node {n.id}: {r}")
                    record(ev)
                if r is None or r.status != 200:
                    time.sleep(0.05)
        except Exception as e:  # noqa: BLE001 (reported by the main thread)
            failures.append(f"client {p}: {e!r}")

    threads = [threading.Thread(target=client, args=(p,)) for p in range(LIN_CLIENTS)]
    for th in threads:
        th.start()
    try:
        time.sleep(3)
        victim = c.node(c.wait_leader(7))
        with lock:
            down.add(victim.id)
        victim.kill9()
        time.sleep(3)
        victim.start()
        c.wait_ready([victim])
        with lock:
            down.discard(victim.id)
        time.sleep(max(0.0, LIN_RUN_S - (time.monotonic() - t_base)))
    finally:
        stop.set()
        for th in threads:
            th.join()
    assert not failures, "; ".join(failures)
    events = [json.loads(h) for h in history]
    oks = [e for e in events if e["type"] == "ok"]
    counts = {k: sum(1 for e in events if e["type"] == k) for k in ("ok", "fail", "info")}
    assert len([e for e in oks if e["f"] == "write"]) >= 20, f"too few writes: {counts}"
    assert len([e for e in oks if e["f"] == "read" and e["value"] is not None]) >= 20, \
        f"too few reads of a written value: {counts}"
    path = os.path.join(c.tmp, "history.jsonl")
    with open(path, "w") as f:
        f.write("\n".join(history) + "\n")
    p = subprocess.run([LINCHECK, path], capture_output=True, timeout=120)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode == 0, f"raftd-lincheck exited {p.returncode} on {len(events)} " \
        f"events {counts}:\n{out}"
    print(f"    victim node {victim.id}; {counts}; raftd-lincheck: {out.strip()}")
    # The check is not vacuous: the same history plus a read, after everything, of a value
    # overwritten by a later acknowledged write is refused.
    writes = sorted((e for e in events if e["f"] == "write"), key=lambda e: e["time"])
    stale = None
    oks_w = [e for e in writes if e["type"] == "ok"]
    invokes = {(e["process"], e["value"]): e["time"] for e in writes if e["type"] == "invoke"}
    for w1 in oks_w:
        if any(w2["key"] == w1["key"] and invokes[(w2["process"], w2["value"])] > w1["time"]
               for w2 in oks_w):
            stale = w1
            break
    assert stale is not None, "no acknowledged write overwritten by a later one"
    end = max(e["time"] for e in events)
    bad = history + [
        json.dumps({"process": LIN_CLIENTS, "type": "invoke", "f": "read", "key": stale["key"],
                    "value": None, "time": end + 1}),
        json.dumps({"process": LIN_CLIENTS, "type": "ok", "f": "read", "key": stale["key"],
                    "value": stale["value"], "time": end + 2})]
    with open(path, "w") as f:
        f.write("\n".join(bad) + "\n")
    p = subprocess.run([LINCHECK, "--quiet", path], capture_output=True, timeout=120)
    assert p.returncode == 1, f"raftd-lincheck exited {p.returncode} on a stale read"
    c.stop_all()


# ---- main: cluster_test's, on these tests ----------------------------------------------------


def main():
    global LINCHECK, SQLITE_APP
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--lincheck", required=True)
    ap.add_argument("--sqlite-app", required=True)
    args, rest = ap.parse_known_args()
    LINCHECK, SQLITE_APP = os.path.abspath(args.lincheck), os.path.abspath(args.sqlite_app)
    ct.TESTS[:] = TESTS
    sys.argv[1:] = rest
    return ct.main()


if __name__ == "__main__":
    sys.exit(main())
