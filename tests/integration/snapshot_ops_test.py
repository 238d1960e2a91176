#!/usr/bin/env python3
"""Process-level tests of snapshots and membership under faults (doc/node.md "Membership
changes", "Leader transfer"; API.md sections 2-3), with small [snapshot] thresholds so that logs
compact often: a snapshot transfer whose sending leader is killed -9 mid-stream, a membership
change (add a learner, promote it, remove a member) while a member is SIGSTOPped, leadership
moved around every voter under a write load, and a raftd-lincheck check of concurrent clients
across compaction, a snapshot install and a leader crash.

Usage: snapshot_ops_test.py --lincheck RAFTD_LINCHECK RAFTD RAFTD_KV [-k SUBSTRING]

Like cluster_test.py: raftd nodes beside raftd-kv apps on 127.0.0.1 in a fresh temp dir per
test, every process killed when its test ends; exits 0 when every test passed, 1 otherwise.
"""

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

import cluster_ops_test as ops
import cluster_test as ct
from snapshot_test import COMPACT, put_many, status, wait_for

LINCHECK = None

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn




# ---- helpers -------------------------------------------------------------------------------


def log_size(node):
    try:
        return os.path.getsize(node.log)
    except OSError:
        return 0


def log_since(node, offset=0):
    with open(node.log, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def partial_files(node, min_bytes=0):
    """The .part files (snapshot streams under way) in node's spool holding at least min_bytes."""
    d = os.path.join(node.data_dir, "snapshots")
    out = []
    try:
        for f in os.listdir(d):
            try:
                if f.endswith(".part") and os.path.getsize(os.path.join(d, f)) >= min_bytes:
                    out.append(f)
            except OSError:
                pass  # renamed or removed meanwhile
    except OSError:
        pass
    return out


def compact(nodes, g):
    for n in nodes:
        ct.expect_status(n.call("POST", f"/v1/groups/{g}/snapshot"), 200,
                         what=f"compaction on node {n.id}")


def read_all(c, nodes, g, data, stale=False):
    """Reads every key of data back, rotating over nodes."""
    for i, (k, v) in enumerate(data.items()):
        c.read_until(nodes[i % len(nodes)], g, k, v, stale=stale)


class Writer:
    """Client threads, each putting keys of its own (prefix + thread + sequence, each written
    once) through a node of nodes_fn() until stopped. A put is retried on 503 (not appended)
    and on 504 or a lost connection (outcome unknown: the key is then in `unsure`, it may be
    applied more than once). `acked` maps every acknowledged key to its value."""

    def __init__(self, c, g, prefix, nodes_fn, threads=4, value_bytes=24):
        self.c, self.g, self.prefix, self.nodes_fn = c, g, prefix, nodes_fn
        self.value_bytes = value_bytes
        self.acked = {}
        self.unsure = set()
        self.errors = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(p,)) for p in range(threads)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def count(self):
        with self.lock:
            return len(self.acked)

    def run(self, p):
        rng = random.Random(p)
        i = 0
        try:
            while not self.stop.is_set():
                key = f"{self.prefix}{p}-{i}"
                value = f"{key}-" + "w" * self.value_bytes
                deadline = time.time() + ct.OP_WAIT_S
                while True:
                    n = rng.choice(self.nodes_fn())
                    r = n.propose(self.g, ct.put_cmd(key, value))
                    if r is not None and r.status == 200:
                        assert r.json()["ok"] is True, f"put {key} answered {r}"
                        with self.lock:
                            self.acked[key] = value
                        break
                    if r is None or r.status == 504:
                        with self.lock:
                            self.unsure.add(key)
                    elif r.status != 503:
                        raise AssertionError(f"put {key} via node {n.id}: {r}")
                    assert time.time() < deadline, f"put {key} not acknowledged: {r}"
                    time.sleep(0.05)
                i += 1
        except Exception as e:  # noqa: BLE001 (reported by the main thread)
            self.errors.append(f"writer {p}: {e!r}")

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()
        assert not self.errors, "; ".join(self.errors)
        return self.acked


MASK = (1 << 64) - 1


def pair_hash(k, v):
    return hash((k, v)) & MASK


class Trace:
    """One app's applied history of a group, cut into segments at reset records: in each, the
    changes applied one after the other and, per record, its last index with the position in
    the segment's changes and a hash of the whole state there."""

    def __init__(self, node, records):
        self.node = node
        self.segments = []
        self.resets = 0
        state, h = {}, 0
        seg = {"points": {0: (0, 0)}, "changes": []}
        self.segments.append(seg)
        self.states = {0: {0}}  # last index -> state hashes seen there
        for last, changes in records:
            if changes and changes[0][0] == 3:
                self.resets += 1
                assert all(k == 1 for k, _, _ in changes[1:]), f"bad reset record {changes[:3]}"
                state = {key: value for _, key, value in changes[1:]}
                h = sum(pair_hash(k, v) for k, v in state.items()) & MASK
                seg = {"points": {last: (0, h)}, "changes": []}
                self.segments.append(seg)
            else:
                prev = max(seg["points"])
                assert last > prev or (last == prev and not changes), \
                    f"node {node.id}'s app: record at {last} after {prev} without a reset"
                for kind, key, value in changes:
                    if key in state:
                        h = (h - pair_hash(key, state[key])) & MASK
                    if kind == 1:
                        state[key] = value
                        h = (h + pair_hash(key, value)) & MASK
                    elif kind == 2:
                        state.pop(key, None)
                    else:
                        raise AssertionError(f"node {node.id}'s app: a reset inside a record")
                    seg["changes"].append((kind, key, value))
                seg["points"][last] = (len(seg["changes"]), h)
            self.states.setdefault(last, set()).add(h)
        self.state = state
        self.last = max(seg["points"])


def check_same_histories(nodes, g, unsure=(), records=None):
    """Every app applied the same history of g: at every last index two apps both recorded,
    their states are equal, and between two such indexes inside reset-free stretches they
    applied the same changes in the same order; no put of the same value to a key outside
    `unsure` is applied twice in a stretch. records: each node's kv_records of g (read from
    its app's log when None). Returns the Traces and how many changes were compared."""
    traces = []
    for i, n in enumerate(nodes):
        if records is None:
            recs = ct.kv_records(n).get(g, [])
        else:
            recs = records[i]
        traces.append(Trace(n, recs))
    for t in traces:
        for seg in t.segments:
            seen = {}
            for kind, key, value in seg["changes"]:
                if kind == 1:
                    seen[(key, value)] = seen.get((key, value), 0) + 1
            twice = [k for (k, _), cnt in seen.items() if cnt > 1 and k not in unsure]
            assert not twice, f"node {t.node.id}'s app applied puts twice: {twice[:5]}"
    compared = 0
    for i, a in enumerate(traces):
        for b in traces[i + 1:]:
            for last in set(a.states) & set(b.states):
                assert len(a.states[last] | b.states[last]) == 1, \
                    f"apps of nodes {a.node.id} and {b.node.id} differ at index {last}"
            for sa in a.segments:
                for sb in b.segments:
                    common = sorted(set(sa["points"]) & set(sb["points"]))
                    for lo, hi in zip(common, common[1:]):
                        xa = sa["changes"][sa["points"][lo][0]:sa["points"][hi][0]]
                        xb = sb["changes"][sb["points"][lo][0]:sb["points"][hi][0]]
                        assert xa == xb, f"apps of nodes {a.node.id} and {b.node.id} applied " \
                            f"different changes between indexes {lo} and {hi}"
                        compared += len(xa)
    return traces, compared


def check_converged_apps(c, nodes, g, data, unsure=()):
    """nodes converged on g: their apps hold the same state, with every pair of data, and
    applied the same history."""
    c.wait_converged(g, nodes)
    traces, compared = check_same_histories(nodes, g, unsure)
    for t in traces:
        missing = [k for k, v in data.items() if t.state.get(k) != v]
        assert not missing, f"node {t.node.id}'s app lacks acknowledged writes: {missing[:5]}"
        assert t.state == traces[0].state, \
            f"apps of nodes {t.node.id} and {traces[0].node.id} hold different states"
    return traces, compared


# ---- 1. a snapshot transfer whose leader is killed -------------------------------------------


@test
def test_snapshot_transfer_leader_killed(c):
    """A follower far behind a compacted log (about 20 MB of state) restarts; as the leader's
    stream to it starts (a .part file in its snapshots dir), the leader's raftd is killed -9.
    The other node is elected, sends its own snapshot, the follower installs it, no partial
    file stays, and every acknowledged write reads back through it; the old leader rejoins."""
    ops.ops(c, {**COMPACT, "limits": ["client_body_bytes_max = 400000"]}).start()
    g = 1
    c.create_group(c.nodes[0], g)
    data = put_many(c, c.nodes, g, "a", 12)
    c.wait_converged(g)
    leader = c.node(c.wait_leader(g))
    lag = next(n for n in c.nodes if n is not leader)
    other = next(n for n in c.nodes if n not in (leader, lag))
    lag.kill9()
    data.update(put_many(c, [leader, other], g, "big", 64, value_bytes=300_000, threads=4))
    c.wait_converged(g, [leader, other])
    compact([leader, other], g)
    assert c.wait_leader(g, [leader, other]) == leader.id, "leadership moved meanwhile"
    mark_l, mark_o, mark_lag = log_size(leader), log_size(other), log_size(lag)
    lag.start()
    delivered = re.compile(rf"group {g}: snapshot at index \d+ delivered to node {lag.id}")
    # Cut mid-stream: once the follower's partial file holds a few MB of the ~19 MB.
    wait_for(lambda: partial_files(lag, 3_000_000) or delivered.search(log_since(leader, mark_l)),
             "a partial snapshot file on the follower", 60, every=0.01)
    leader.kill9()
    cut = not delivered.search(log_since(leader, mark_l))
    sent = re.search(rf"group {g}: sending a snapshot at index (\d+) to node {lag.id}",
                     log_since(leader, mark_l))
    assert sent, "the leader did not log the snapshot it was sending"
    live = [other, lag]
    c.wait_ready(live)
    _, new = ops.wait_new_leader(c, g, live, leader.id, ct.OP_WAIT_S)
    assert new == other.id, "the node behind was elected"
    target = status(other, g)["commit_index"]
    wait_for(lambda: status(lag, g)["applied_index"] >= target, "the follower caught up", 90)
    if cut:
        # The stream was cut: the new leader sent its own snapshot, installed by the follower.
        m = wait_for(lambda: re.search(
            rf"group {g}: snapshot at index (\d+) delivered to node {lag.id}",
            log_since(other, mark_o)), "the new leader delivered a snapshot")
        assert re.search(rf"group {g}: snapshot at index {m.group(1)} installed",
                         log_since(lag, mark_lag)), "the follower did not install it"
    assert re.search(rf"group {g}: snapshot at index \d+ installed", log_since(lag, mark_lag)), \
        "no snapshot installed on the follower"
    wait_for(lambda: not partial_files(lag), "no partial file left", 30)
    failed = re.findall(r"snapshot: receiving .* failed after (\d+) bytes",
                        log_since(lag, mark_lag))
    print(f"    leader {leader.id} killed while sending at index {sent.group(1)} "
          f"({'cut' if cut else 'already delivered'}); node {lag.id}: streams cut after "
          f"{failed} bytes")
    read_all(c, [lag], g, data)
    more = put_many(c, live, g, "b", 10)
    data.update(more)
    leader.start()
    c.wait_ready([leader])
    c.wait_leader(g)
    read_all(c, [leader], g, more)
    check_converged_apps(c, c.nodes, g, data)
    c.stop_all()


# ---- 2. a membership change around a SIGSTOPped member ---------------------------------------


def change_members(c, vias, g, method, path, body, done):
    """A membership request through one of `vias`, retried while the outcome is unknown (504)
    or the group has no leader (503) or another change is pending (409), until `done(status)`
    holds for the answering node's status."""
    deadline = time.time() + ct.OP_WAIT_S
    last = None
    while time.time() < deadline:
        n = vias[0]
        last = n.call(method, path, body)
        if last is not None and last.status == 200:
            assert done(last.json()), f"{method} {path}: 200 without the change: {last}"
            return last.json()
        if last is not None and last.status not in (409, 503, 504):
            raise AssertionError(f"{method} {path} via node {n.id}: {last}")
        s = n.status(g)
        if s is not None and done(s):
            return s
        vias = vias[1:] + vias[:1]
        time.sleep(0.3)
    raise AssertionError(f"{method} {path}: not done within {ct.OP_WAIT_S} s: {last}")


def members_of(s):
    return sorted((m["node"], m["role"]) for m in s["members"])


def membership_around_stopped(c, stop_leader):
    """Four nodes, group on 1-3. A member (a follower, or the group's leader) is SIGSTOPped;
    node 4 is added as a learner (joining by snapshot: the log is compacted), promoted, and the
    stopped node removed, while writers keep going. On SIGCONT the stopped node disrupts nothing
    (the leader and its term stay, writes go on) and stops hosting the group (404)."""
    ops.ops(c, COMPACT).start()
    g = 1
    n4 = c.nodes[3]
    c.create_group(c.nodes[0], g, [1, 2, 3])
    data = put_many(c, c.nodes[:3], g, "a", 60)
    c.wait_converged(g, c.nodes[:3])
    leader = c.node(c.wait_leader(g, c.nodes[:3]))
    stopped = leader if stop_leader else next(n for n in c.nodes[:3] if n is not leader)
    rest = [n for n in c.nodes[:3] if n is not stopped]
    os.kill(stopped.proc.pid, signal.SIGSTOP)
    via = list(rest)
    writer = Writer(c, g, "w", lambda: via).start()
    try:
        wait_for(lambda: writer.count() >= 20, "writes with a member stopped")
        compact(rest, g)
        first = status(rest[0], g)["first_index"]
        assert first > 60, f"the log was not compacted: first index {first}"
        mark4 = log_size(n4)
        change_members(c, rest, g, "POST", f"/v1/groups/{g}/members",
                       json.dumps({"node": 4, "role": "learner"}),
                       lambda s: (4, "learner") in members_of(s))
        target = status(c.node(c.wait_leader(g, rest)), g)["commit_index"]
        wait_for(lambda: (n4.status(g) or {}).get("applied_index", 0) >= target,
                 "the learner caught up")
        assert re.search(rf"group {g}: snapshot at index \d+ installed", log_since(n4, mark4)), \
            "the learner did not join by a snapshot"
        change_members(c, rest, g, "POST", f"/v1/groups/{g}/members",
                       json.dumps({"node": 4, "role": "voter"}),
                       lambda s: (4, "voter") in members_of(s))
        via.append(n4)
        change_members(c, rest, g, "DELETE", f"/v1/groups/{g}/members/{stopped.id}", None,
                       lambda s: stopped.id not in [m for m, _ in members_of(s)])
        members = rest + [n4]
        lead = c.wait_leader(g, members)
        before = {n.id: status(n, g) for n in members}
        term = before[lead]["term"]
        acked = writer.count()
        os.kill(stopped.proc.pid, signal.SIGCONT)
        t0 = time.time()
        while time.time() - t0 < 5:  # ten election timeouts
            for n in members:
                s = status(n, g)
                assert s["leader"] == lead and s["term"] == term, \
                    f"the resumed node disrupted the group: node {n.id} sees {s}, " \
                    f"before: leader {lead} term {term}"
            time.sleep(0.1)
        assert writer.count() > acked + 5, "writes stalled after SIGCONT"
        r = wait_for(lambda: (lambda r: r if r is not None and r.status == 404 else None)(
            stopped.call("GET", f"/v1/groups/{g}")), "the removed node stops hosting the group")
        assert ct.error_code(r) == "unknown_group", f"the removed node answers {r}"
    finally:
        if stopped.alive():
            try:
                os.kill(stopped.proc.pid, signal.SIGCONT)
            except OSError:
                pass
        data.update(writer.finish())
    assert status(c.node(lead), g)["term"] == term, "the term moved"
    print(f"    node {stopped.id} ({'leader' if stop_leader else 'follower'}) stopped and "
          f"removed, node {lead} leads, node 4 added by snapshot; "
          f"{len(writer.acked)} writes acknowledged, {len(writer.unsure)} unsure")
    read_all(c, members, g, data)
    traces, _ = check_converged_apps(c, members, g, data, writer.unsure)
    # The removed node's app applied a prefix of the same history (checked at common indexes).
    check_same_histories(members + [stopped], g, writer.unsure)
    assert traces[2].resets >= 1, "node 4's app shows no snapshot install"
    c.stop_all()


@test
def test_membership_change_with_stopped_follower(c):
    membership_around_stopped(c, stop_leader=False)


@test
def test_membership_change_with_stopped_leader(c):
    membership_around_stopped(c, stop_leader=True)


test_membership_change_with_stopped_follower.nodes = 4
test_membership_change_with_stopped_leader.nodes = 4


# ---- 3. leader transfers under load --------------------------------------------------------


@test
def test_leader_transfer_under_load(c):
    """Four writer threads put through every node while POST /transfer-leader moves leadership
    around all voters twice; each transfer ends with the named leader, and writes go on under
    each; every acknowledged write reads back, and every app applied the same history (a
    snapshot install, a reset record, allowed)."""
    ops.ops(c, COMPACT).start()
    g = 1
    c.create_group(c.nodes[0], g)
    writer = Writer(c, g, "t", lambda: c.nodes).start()
    timeouts = 0
    try:
        wait_for(lambda: writer.count() >= 20, "writes before the transfers")
        for step in range(6):
            leader = c.wait_leader(g)
            target = c.node(leader % 3 + 1)
            via = random.choice(c.nodes)
            t0 = time.time()
            while True:
                r = via.call("POST", f"/v1/groups/{g}/transfer-leader",
                             json.dumps({"node": target.id}))
                if r is not None and r.status == 200:
                    assert r.json()["leader"] == target.id, f"status after the transfer: {r}"
                    break
                assert r is not None and r.status in (503, 504), \
                    f"transfer to node {target.id} via node {via.id}: {r}"
                timeouts += 1
                assert time.time() - t0 < ct.OP_WAIT_S, f"transfer to {target.id}: {r}"
                if c.wait_leader(g) == target.id:
                    break
            assert c.wait_leader(g) == target.id, "every node sees the new leader"
            acked = writer.count()
            wait_for(lambda: writer.count() >= acked + 20,
                     f"writes under node {target.id}'s leadership")
    finally:
        data = writer.finish()
    print(f"    6 transfers ({timeouts} retried); {len(data)} writes acknowledged, "
          f"{len(writer.unsure)} unsure")
    traces, compared = check_converged_apps(c, c.nodes, g, data, writer.unsure)
    read_all(c, c.nodes, g, data)
    assert compared >= len(data), f"only {compared} changes compared across the apps"
    # The comparison is not vacuous: one app's history with a value changed, or with two
    # adjacent records' changes in swapped order, is refused.
    records = [ct.kv_records(n)[g] for n in c.nodes]
    puts = [(i, j) for i, (_, chs) in enumerate(records[0]) for j, ch in enumerate(chs)
            if ch[0] == 1]
    i, j = puts[len(puts) // 2]
    bad = [list(r) for r in records]
    last, chs = bad[0][i]
    bad[0][i] = (last, chs[:j] + [(1, chs[j][1], "changed")] + chs[j + 1:])
    i2 = next(k for k in range(i + 1, len(records[0])) if records[0][k][1])
    swapped = [list(r) for r in records]
    swapped[0][i], swapped[0][i2] = (records[0][i][0], records[0][i2][1]), \
        (records[0][i2][0], records[0][i][1])
    for what, recs in (("a changed value", bad), ("swapped records", swapped)):
        try:
            check_same_histories(c.nodes, g, writer.unsure, recs)
        except AssertionError:
            continue
        raise AssertionError(f"the history check accepted {what}")
    print(f"    apps: {[t.resets for t in traces]} resets, {compared} changes compared")
    c.stop_all()


# ---- 4. linearizability across compaction and snapshot installs ----------------------------

LIN_CLIENTS = 6
LIN_KEYS = 3


class LinClients:
    """Client threads putting and reading (linearizably) a few keys through the nodes not in
    `down`, recording the history raftd-lincheck checks (as cluster_ops_test does): 504 or a
    lost connection is an unknown outcome ("info"), 503 did not happen ("fail")."""

    def __init__(self, c, g):
        self.c, self.g = c, g
        self.history = []
        self.lock = threading.Lock()
        self.down = set()
        self.stop = threading.Event()
        self.failures = []
        self.t_base = time.monotonic()
        self.threads = [threading.Thread(target=self.client, args=(p,))
                        for p in range(LIN_CLIENTS)]

    def now_us(self):
        return int((time.monotonic() - self.t_base) * 1e6)

    def record(self, ev):
        with self.lock:
            self.history.append(json.dumps(ev))

    def set_down(self, node, down):
        with self.lock:
            (self.down.add if down else self.down.discard)(node.id)

    def client(self, p):
        rng = random.Random(p)
        seq = 0
        try:
            while not self.stop.is_set():
                with self.lock:
                    live = [n for n in self.c.nodes if n.id not in self.down]
                n = rng.choice(live)
                key = f"k{rng.randrange(LIN_KEYS)}"
                if rng.random() < 0.5:
                    seq += 1
                    value = p * 1000000 + seq
                    self.record({"process": p, "type": "invoke", "f": "write", "key": key,
                                 "value": value, "time": self.now_us()})
                    r = n.propose(self.g, ct.put_cmd(key, str(value)))
                    t = self.now_us()
                    if r is not None and r.status == 200:
                        assert r.json()["ok"] is True, f"put answered {r}"
                        kind = "ok"
                    elif r is not None and r.status == 503:
                        kind = "fail"
                    elif r is None or r.status == 504:
                        kind = "info"
                    else:
                        raise AssertionError(f"put via node {n.id}: {r}")
                    self.record({"process": p, "type": kind, "f": "write", "key": key,
                                 "value": value, "time": t})
                else:
                    self.record({"process": p, "type": "invoke", "f": "read", "key": key,
                                 "value": None, "time": self.now_us()})
                    r = n.read(self.g, key)
                    t = self.now_us()
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
                    self.record(ev)
                if r is None or r.status != 200:
                    time.sleep(0.05)
        except Exception as e:  # noqa: BLE001 (reported by the main thread)
            self.failures.append(f"client {p}: {e!r}")

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()
        assert not self.failures, "; ".join(self.failures)
        return [json.loads(h) for h in self.history]


def lincheck(path, history, quiet=False):
    with open(path, "w") as f:
        f.write("\n".join(history) + "\n")
    p = subprocess.run([LINCHECK] + (["--quiet"] if quiet else []) + [path],
                       capture_output=True, timeout=120)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


@test
def test_linearizable_across_snapshots(c):
    """Six clients put and read three keys while a follower is killed -9, the log compacted
    past it, and it restarts and installs a snapshot; then the leader is killed -9 and
    restarted. raftd-lincheck accepts the history, and refuses it with a stale read added."""
    ops.ops(c, COMPACT).start()
    g = 1
    c.create_group(c.nodes[0], g)
    cl = LinClients(c, g).start()
    try:
        time.sleep(2)
        leader = c.node(c.wait_leader(g))
        lag = next(n for n in c.nodes if n is not leader)
        live = [n for n in c.nodes if n is not lag]
        cl.set_down(lag, True)
        lag.kill9()
        behind = status(leader, g)["commit_index"]
        def compacted_past():  # requested, and automatic meanwhile
            time.sleep(0.5)
            compact(live, g)
            return min(status(n, g)["first_index"] for n in live) > behind + 20

        wait_for(compacted_past, "the log compacted past the killed follower")
        mark = log_size(lag)
        lag.start()
        c.wait_ready([lag])
        wait_for(lambda: re.search(rf"group {g}: snapshot at index \d+ installed",
                                   log_since(lag, mark)), "the follower installed a snapshot")
        cl.set_down(lag, False)
        time.sleep(2)
        victim = c.node(c.wait_leader(g))
        cl.set_down(victim, True)
        victim.kill9()
        time.sleep(3)
        victim.start()
        c.wait_ready([victim])
        cl.set_down(victim, False)
        time.sleep(2)
    finally:
        events = cl.finish()
    counts = {k: sum(1 for e in events if e["type"] == k) for k in ("ok", "fail", "info")}
    oks = [e for e in events if e["type"] == "ok"]
    assert len([e for e in oks if e["f"] == "write"]) >= 20, f"too few writes: {counts}"
    assert len([e for e in oks if e["f"] == "read" and e["value"] is not None]) >= 20, \
        f"too few reads of a written value: {counts}"
    path = os.path.join(c.tmp, "history.jsonl")
    rc, out = lincheck(path, cl.history)
    assert rc == 0, f"raftd-lincheck exited {rc} on {len(events)} events {counts}:\n{out}"
    print(f"    follower {lag.id} installed a snapshot, leader {victim.id} killed; {counts}; "
          f"raftd-lincheck: {out.strip()}")
    # Not vacuous: a read, after everything, of a value a later acknowledged write replaced.
    writes = sorted((e for e in events if e["f"] == "write"), key=lambda e: e["time"])
    oks_w = [e for e in writes if e["type"] == "ok"]
    invokes = {(e["process"], e["value"]): e["time"] for e in writes if e["type"] == "invoke"}
    stale = next((w1 for w1 in oks_w if any(
        w2["key"] == w1["key"] and invokes[(w2["process"], w2["value"])] > w1["time"]
        for w2 in oks_w)), None)
    assert stale is not None, "no acknowledged write overwritten by a later one"
    end = max(e["time"] for e in events)
    bad = cl.history + [
        json.dumps({"process": LIN_CLIENTS, "type": "invoke", "f": "read", "key": stale["key"],
                    "value": None, "time": end + 1}),
        json.dumps({"process": LIN_CLIENTS, "type": "ok", "f": "read", "key": stale["key"],
                    "value": stale["value"], "time": end + 2})]
    rc, _ = lincheck(path, bad, quiet=True)
    assert rc == 1, f"raftd-lincheck exited {rc} on a stale read"
    check_same_histories(c.nodes, g)
    c.stop_all()


# ---- main: cluster_test's, on these tests ----------------------------------------------------


def main():
    global LINCHECK
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--lincheck", required=True)
    args, rest = ap.parse_known_args()
    LINCHECK = os.path.abspath(args.lincheck)
    ct.TESTS[:] = TESTS
    sys.argv[1:] = rest
    return ct.main()


if __name__ == "__main__":
    sys.exit(main())
