#!/usr/bin/env python3
"""Process-level tests of compaction and snapshots (doc/node.md "Compaction", "Snapshots"):
automatic and requested compaction and restarts from a compacted log, a follower brought back
by a snapshot streamed from the leader's app to its own, a new member that joins a compacted
group, a snapshot transfer cut by a kill of the receiving node, and WAL disk use that stays
bounded under a sustained write load.

Usage: snapshot_test.py RAFTD RAFTD_KV [-k SUBSTRING]

Like cluster_test.py: raftd nodes beside raftd-kv apps on 127.0.0.1 in a fresh temp dir per
test, every process killed when its test ends; exits 0 when every test passed, 1 otherwise.
"""

import json
import os
import re
import subprocess
import sys
import threading
import time

import cluster_ops_test as ops
import cluster_test as ct

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


# Small thresholds, so a test's few hundred entries compact several times.
COMPACT = {"snapshot": ["entries = 40", "tail = 10"]}


def status(node, g):
    s = node.status(g)
    assert s is not None, f"node {node.id} does not answer the status of group {g}"
    return s


def put_many(c, via, g, prefix, count, value_bytes=16, threads=4):
    """count puts through the nodes in `via`, from a few threads; returns {key: value}."""
    data = {f"{prefix}{i}": f"{prefix}{i}-" + "v" * value_bytes for i in range(count)}
    keys = list(data)
    errors = []

    def work(part):
        try:
            for k in part:
                c.put(via, g, k, data[k])
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=work, args=(keys[i::threads],)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[0]
    return data


def check_data(c, node, g, data, stale=False):
    for k, v in data.items():
        c.read_until(node, g, k, v, stale=stale)


def wait_for(pred, what, deadline_s=ct.OP_WAIT_S, every=0.1):
    deadline = time.time() + deadline_s
    last = None
    while time.time() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not within {deadline_s} s (last: {last})")


def metric(node, name):
    r = node.call("GET", "/metrics")
    assert r is not None and r.status == 200, f"GET /metrics on node {node.id}: {r}"
    m = re.search(rf"^{re.escape(name)} (\d+)$", r.body.decode(), re.M)
    assert m, f"no {name} on node {node.id}"
    return int(m.group(1))


def log_has(node, pattern):
    with open(node.log, "rb") as f:
        return re.search(pattern.encode(), f.read()) is not None


@test
def test_compaction_and_restart(c):
    ops.ops(c, COMPACT).start()
    g = 1
    c.create_group(c.nodes[0], g)
    data = put_many(c, c.nodes, g, "a", 150)
    c.wait_converged(g)
    # Every node compacted on its own, behind its app, keeping the tail.
    for n in c.nodes:
        s = status(n, g)
        assert s["first_index"] > 1, f"node {n.id} never compacted: {s}"
        assert s["applied_index"] - (s["first_index"] - 1) >= 10, f"tail not kept: {s}"
    # POST /snapshot compacts one node all the way, keeping no tail (through the CLI).
    n1 = c.nodes[0]
    out = subprocess.run([ct.RAFTD, "group", "snapshot", str(g), "--endpoint",
                          f"http://127.0.0.1:{n1.client_port}"], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, f"raftd group snapshot: {out.returncode} {out.stderr}"
    s = json.loads(out.stdout)
    assert s["first_index"] == s["applied_index"] + 1, f"a tail was kept: {s}"
    r = n1.call("POST", f"/v1/groups/{g}/snapshot")
    ct.expect_status(r, 200, what="a second snapshot request")
    ct.expect_status(n1.call("POST", "/v1/groups/77/snapshot"), 404, "unknown_group")
    ct.expect_status(n1.call("GET", f"/v1/groups/{g}/snapshot"), 405)
    assert metric(n1, "raftd_log_compactions_total") >= 2
    # kill -9 of every node: each recovers from its compacted log and serves everything.
    for n in c.nodes:
        n.kill9()
    for n in c.nodes:
        n.start()
    c.wait_ready()
    c.wait_leader(g)
    more = put_many(c, c.nodes, g, "b", 30)
    for n in c.nodes:
        check_data(c, n, g, {**dict(list(data.items())[:20]), **more})
    assert status(n1, g)["first_index"] > 1


@test
def test_follower_behind_compacted_log_gets_snapshot(c):
    ops.ops(c, COMPACT).start()
    g = 1
    c.create_group(c.nodes[0], g)
    before = put_many(c, c.nodes, g, "a", 20)
    c.wait_converged(g)
    leader = c.node(c.wait_leader(g))
    lag = next(n for n in c.nodes if n is not leader)
    live = [n for n in c.nodes if n is not lag]
    lag.kill9()  # raftd only: its app keeps its state, which the snapshot replaces
    after = put_many(c, live, g, "b", 120)
    for n in live:
        ct.expect_status(n.call("POST", f"/v1/groups/{g}/snapshot"), 200, what="compaction")
    target = status(c.node(c.wait_leader(g, live)), g)["commit_index"]
    lag.start()
    c.wait_ready([lag])
    wait_for(lambda: (status(lag, g)["applied_index"] >= target), "the follower caught up")
    assert log_has(lag, r"group 1: snapshot at index \d+ installed"), "no snapshot installed"
    assert log_has(c.node(c.wait_leader(g)), r"group 1: snapshot at index \d+ delivered"), \
        "the leader did not log a delivered snapshot"
    check_data(c, lag, g, {**before, **after}, stale=True)
    assert metric(lag, "raftd_snapshots_received_total") >= 1
    assert metric(lag, "raftd_snapshots_installed_total") >= 1
    assert metric(c.node(c.wait_leader(g)), "raftd_snapshots_sent_total") >= 1
    assert metric(c.node(c.wait_leader(g)), "raftd_snapshot_bytes_sent_total") > 0
    # It keeps replicating, also after a restart from the installed snapshot.
    lag.kill9()
    lag.start()
    c.wait_ready([lag])
    more = put_many(c, c.nodes, g, "c", 10)
    c.wait_converged(g)
    check_data(c, lag, g, more, stale=True)
    check_data(c, lag, g, {k: before[k] for k in list(before)[:5]}, stale=True)


@test
def test_snapshot_waits_for_the_leaders_app(c):
    # The leader's app is down when a follower needs a snapshot: each try fails at
    # PrepareSnapshot, tries back off (a few log lines, not one per heartbeat), and once the app
    # is back the follower gets its snapshot.
    ops.ops(c, COMPACT).start()
    g = 1
    c.create_group(c.nodes[0], g)
    leader = c.node(c.wait_leader(g))
    lag = next(n for n in c.nodes if n is not leader)
    live = [n for n in c.nodes if n is not lag]
    lag.kill9()
    data = put_many(c, live, g, "a", 60)
    for n in live:
        ct.expect_status(n.call("POST", f"/v1/groups/{g}/snapshot"), 200, what="compaction")
    target = status(leader, g)["commit_index"]
    leader.kill_app()
    lag.start()
    c.wait_ready([lag])
    time.sleep(4)
    with open(leader.log, "rb") as f:
        failures = len(re.findall(rb"group 1: snapshot to node \d+ failed", f.read()))
    assert 1 <= failures <= 8, f"{failures} failed tries logged in 4 s"
    assert status(lag, g)["applied_index"] < target, "caught up without the leader's app?"
    leader.start_app()  # the same port
    wait_for(lambda: status(lag, g)["applied_index"] >= target, "the follower caught up", 60)
    check_data(c, lag, g, data, stale=True)


class SyncKvNode(ops.OpsNode):
    """An OpsNode whose raftd-kv runs with --sync-mode (durable only at POST /Sync)."""

    def start_app(self):
        spawn = ct.spawn
        ct.spawn = lambda argv, log: spawn(argv + ["--sync-mode"], log)
        try:
            return super().start_app()
        finally:
            ct.spawn = spawn


def sync_calls(node):
    r = node.call("GET", "/metrics")
    m = re.search(r'^raftd_app_call_duration_seconds_count\{call="Sync"\} (\d+)$',
                  r.body.decode(), re.M)
    assert m, f"no Sync call count on node {node.id}"
    return int(m.group(1))


@test
def test_compaction_with_app_sync(c):
    # app.sync: the app is durable only at POST /Sync, so compaction asks for a Sync first and
    # stays behind what it covered; a lagging follower still gets a snapshot.
    ops.ops(c, {**COMPACT, "app": ["sync = true"]})
    for n in c.nodes:
        n.__class__ = SyncKvNode
    c.start()
    g = 1
    c.create_group(c.nodes[0], g)
    lag = c.nodes[2]
    live = c.nodes[:2]
    data = put_many(c, c.nodes, g, "a", 120)
    c.wait_converged(g)
    for n in c.nodes:
        s = status(n, g)
        assert s["first_index"] > 1, f"node {n.id} never compacted: {s}"
        assert sync_calls(n) > 0, f"node {n.id} compacted without a Sync"
    lag.kill9()
    more = put_many(c, live, g, "b", 60)
    for n in live:
        ct.expect_status(n.call("POST", f"/v1/groups/{g}/snapshot"), 200, what="compaction")
    target = status(c.node(c.wait_leader(g, live)), g)["commit_index"]
    lag.start()
    c.wait_ready([lag])
    wait_for(lambda: status(lag, g)["applied_index"] >= target, "the follower caught up")
    check_data(c, lag, g, {**data, **more}, stale=True)


@test
def test_new_member_joins_by_snapshot(c):
    ops.ops(c, COMPACT).start()
    g = 1
    three = [n.id for n in c.nodes[:3]]
    c.create_group(c.nodes[0], g, three)
    data = put_many(c, c.nodes[:3], g, "a", 100)
    for n in c.nodes[:3]:
        ct.expect_status(n.call("POST", f"/v1/groups/{g}/snapshot"), 200, what="compaction")
    assert status(c.nodes[0], g)["first_index"] > 50
    n4 = c.nodes[3]
    r = c.nodes[1].call("POST", f"/v1/groups/{g}/members",
                        json.dumps({"node": 4, "role": "learner"}))
    ct.expect_status(r, 200, what="add a learner")
    target = status(c.nodes[0], g)["commit_index"]
    wait_for(lambda: n4.status(g) is not None and n4.status(g)["applied_index"] >= target,
             "the new member caught up")
    check_data(c, n4, g, data, stale=True)
    assert log_has(n4, r"group 1: snapshot at index \d+ installed"), "no snapshot installed"
    r = c.nodes[0].call("POST", f"/v1/groups/{g}/members", json.dumps({"node": 4, "role": "voter"}))
    ct.expect_status(r, 200, what="promote the learner")
    more = put_many(c, c.nodes, g, "b", 10)
    check_data(c, n4, g, more)


test_new_member_joins_by_snapshot.nodes = 4


@test
def test_snapshot_cut_by_a_kill_is_sent_again(c):
    # About 20 MB of state, so the stream takes a while; the receiving node is killed as soon as
    # its partial file appears, and the transfer is sent again once it is back.
    ops.ops(c, {"snapshot": ["entries = 0", "bytes = 0", "tail = 0"]}).start()
    g = 1
    c.create_group(c.nodes[0], g)
    leader = c.node(c.wait_leader(g))
    lag = next(n for n in c.nodes if n is not leader)
    live = [n for n in c.nodes if n is not lag]
    lag.kill9()
    big = put_many(c, live, g, "big", 600, value_bytes=30_000, threads=4)
    for n in live:
        ct.expect_status(n.call("POST", f"/v1/groups/{g}/snapshot"), 200, what="compaction")
    spool = os.path.join(lag.data_dir, "snapshots")

    def partial():
        try:
            return any(f.endswith(".part") for f in os.listdir(spool))
        except OSError:
            return False

    lag.start()
    wait_for(partial, "a partial snapshot file on the receiving node", 30)
    lag.kill9()
    lag.start()
    c.wait_ready([lag])
    target = status(leader, g)["commit_index"]
    wait_for(lambda: status(lag, g)["applied_index"] >= target,
             "the follower installed the snapshot sent again")
    assert not partial(), "a partial file stayed behind"
    check_data(c, lag, g, {k: big[k] for k in list(big)[::20]}, stale=True)


@test
def test_disk_use_stays_bounded_under_writes(c):
    # 64 KiB segments, small thresholds, ~6 MB written across four groups (one of them idle
    # after its first writes): without compaction the WAL would hold ~100 segments.
    ops.ops(c, {"snapshot": ["entries = 100", "tail = 20"],
                "wal": ["segment_bytes = 65536", "batch_bytes_max = 16384"],
                "limits": ["client_body_bytes_max = 8192"]}).start()
    for g in (1, 2, 3, 4):
        c.create_group(c.nodes[0], g)
    put_many(c, c.nodes, 4, "idle", 5)
    peak = 0
    for rnd in range(6):
        for g in (1, 2, 3):
            put_many(c, c.nodes, g, f"r{rnd}g{g}-", 100, value_bytes=3000, threads=6)
        wal_dir = os.path.join(c.nodes[0].data_dir, "wal")
        peak = max(peak, len(os.listdir(wal_dir)))
    wal_dir = os.path.join(c.nodes[0].data_dir, "wal")
    total = sum(os.path.getsize(os.path.join(wal_dir, f)) for f in os.listdir(wal_dir))
    assert total < 3 * 1024 * 1024, f"WAL holds {total} bytes after ~6 MB of writes"
    assert peak < 40, f"the WAL reached {peak} files"
    c.stop_all()
    out = subprocess.run([ct.RAFTD, "wal", "verify", wal_dir], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, f"wal verify: {out.stdout} {out.stderr}"


def main():
    ct.TESTS[:] = TESTS
    return ct.main()


if __name__ == "__main__":
    sys.exit(main())
