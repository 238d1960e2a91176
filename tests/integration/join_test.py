#!/usr/bin/env python3
"""Process-level tests of nodes joining and leaving a running cluster (API.md sections 1-2,
doc/node.md "Joining a running cluster", "Replacing a dead node"): a node started with an empty
data_dir and not in [cluster].initial waits (/healthz 200, /readyz 503) until
POST /v1/cluster/nodes adds it, whether it was started before or after that call; it then
catches up on the meta group as a learner, joins a compacted group by snapshot, and survives a
kill -9; a dead node of a 3-node cluster is replaced (its groups handed to the new node, then
DELETE /v1/cluster/nodes), after which the meta group keeps its quorum when another initial
node dies; ids are never reused, and every refusal has its status.

Usage: join_test.py --sqlite-app examples/python-sqlite/app.py RAFTD RAFTD_KV [-k SUBSTRING]
(RAFTD_JOIN_SQLITE_MB sets the size of the SQLite group, 24 by default.)

Like cluster_test.py: raftd nodes beside raftd-kv apps on 127.0.0.1 in a fresh temp dir per
test, every process killed when its test ends; exits 0 when every test passed, 1 otherwise.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

import cluster_ops_test as ops
import cluster_test as ct
from snapshot_ops_test import change_members, members_of
from snapshot_test import COMPACT, put_many, status, wait_for

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def start_initial(c, n=3):
    """The first n nodes bootstrap the cluster; the others are spares for joining."""
    initial = c.nodes[:n]
    for node in initial:
        node.start_app()
        node.write_config(initial)
        node.start()
    c.wait_ready(initial)
    return initial


def start_joining(c, node):
    """A joining node: empty data_dir, [cluster].initial lists the initial members only."""
    node.start_app()
    node.write_config(c.nodes[:3])
    node.start()


def add_node(via, node, peer_port=None):
    body = {"id": node.id, "peer": f"127.0.0.1:{peer_port or node.peer_port}",
            "client": f"127.0.0.1:{node.client_port}"}
    return via.call("POST", "/v1/cluster/nodes", json.dumps(body))


def add_node_ok(vias, node):
    """POST /v1/cluster/nodes through `vias` in turn until 201 (503/504 retried; a 409 after a
    504 means the earlier try applied)."""
    deadline = time.time() + ct.OP_WAIT_S
    last = None
    tried = False
    while time.time() < deadline:
        via = vias[0]
        last = add_node(via, node)
        if last is not None and last.status == 201:
            j = last.json()
            assert j == {"id": node.id, "peer": f"127.0.0.1:{node.peer_port}",
                         "client": f"127.0.0.1:{node.client_port}", "reachable": False}, \
                f"add node answered {j}"
            return j
        if tried and last is not None and last.status == 409:
            return None
        if last is None or last.status not in (503, 504):
            raise AssertionError(f"add node {node.id} via node {via.id}: {last}")
        tried = tried or last.status == 504
        vias = vias[1:] + vias[:1]
        time.sleep(0.3)
    raise AssertionError(f"add node {node.id}: no 201 within {ct.OP_WAIT_S} s: {last}")


def cluster_ids(node):
    r = node.call("GET", "/v1/cluster")
    return sorted(n["id"] for n in r.json()["nodes"]) if r is not None and r.status == 200 else None


def wait_exit(node, what, timeout=ct.START_WAIT_S):
    try:
        rc = node.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"node {node.id} still runs: {what}")
    node.proc = None  # its exit was checked here; stop_all must not look at it
    return rc


def log_text(node):
    with open(node.log, "rb") as f:
        return f.read().decode(errors="replace")


@test
def test_join_and_replace_dead_node(c):
    """Nodes 1-3 bootstrap; group 1 on them holds data and compacts. Node 4 starts first and
    waits; it is added and joins the meta group, then group 1 (by snapshot, as a learner then a
    voter). Node 3 dies and is replaced by node 4: removed from group 1, then from the cluster
    (refused while still a member). The meta group then promotes node 4 in node 3's place, so
    that with node 1 dead too, nodes 2 and 4 still create groups. Node 5 is added before it
    starts. Node 4 survives a kill -9."""
    ops.ops(c, COMPACT)
    n1, n2, n3, n4, n5 = c.nodes
    start_initial(c)
    g = 1
    c.create_group(n1, g, [1, 2, 3])
    data = put_many(c, [n1, n2, n3], g, "a", 120)
    for n in (n1, n2, n3):
        ct.expect_status(n.call("POST", f"/v1/groups/{g}/snapshot"), 200, what="compact")

    # Node 4 waits before it is added: alive, /healthz 200, everything else 503.
    start_joining(c, n4)
    wait_for(lambda: (lambda r: r is not None and r.status == 200)(n4.call("GET", "/healthz")),
             "the joining node serves /healthz")
    time.sleep(1.5)  # several rounds of asking its contacts
    assert n4.alive(), "the joining node exited while waiting"
    r = n4.call("GET", "/readyz")
    ct.expect_status(r, 503, "unavailable", "readyz of a node not yet added")
    assert "POST /v1/cluster/nodes" in r.json()["message"], f"readyz message: {r}"
    ct.expect_status(n4.call("GET", "/v1/groups"), 503, "unavailable", "groups while joining")

    # Refusals of POST/DELETE /v1/cluster/nodes.
    ct.expect_status(n1.call("POST", "/v1/cluster/nodes", '{"id": 4}'), 400, "bad_request",
                     "no addresses")
    ct.expect_status(n1.call("POST", "/v1/cluster/nodes", json.dumps(
        {"id": 4, "peer": "localhost:1", "client": "127.0.0.1:2"})), 400, "bad_request",
        "a host name")
    ct.expect_status(add_node(n1, n4, peer_port=n2.peer_port), 400, "bad_request",
                     "node 2's peer address")
    ct.expect_status(add_node(n1, n3), 409, "conflict", "an existing id")
    ct.expect_status(n1.call("DELETE", "/v1/cluster/nodes/9"), 404, "not_found", "unknown node")
    ct.expect_status(n1.call("DELETE", "/v1/cluster/nodes/3"), 409, "conflict",
                     "a member of group 1")
    ct.expect_status(n1.call("PUT", "/v1/cluster/nodes"), 405, "method_not_allowed", "PUT")

    add_node_ok([n2, n1], n4)
    ct.expect_status(add_node(n1, n4), 409, "conflict", "the same id again")
    c.wait_ready([n4])
    wait_for(lambda: cluster_ids(n4) == [1, 2, 3, 4], "node 4 sees the cluster")
    for n in (n1, n2, n3):
        wait_for(lambda n=n: cluster_ids(n) == [1, 2, 3, 4], f"node {n.id} lists node 4")
    wait_for(lambda: [x["reachable"] for x in n1.call("GET", "/v1/cluster").json()["nodes"]] ==
             [True] * 4, "node 1 reaches node 4")
    ct.expect_status(n4.call("GET", f"/v1/groups/{g}"), 404, "unknown_group",
                     "node 4 is in no group yet")
    assert re.search(r"meta: the meta group adds node 4 as a learner",
                     "".join(log_text(n) for n in (n1, n2, n3))), \
        "no meta leader added node 4 to the meta group"

    # Node 4 joins group 1 (its log is compacted: by snapshot), as a learner then a voter.
    change_members(c, [n1, n2, n3], g, "POST", f"/v1/groups/{g}/members",
                   json.dumps({"node": 4, "role": "learner"}),
                   lambda s: (4, "learner") in members_of(s))
    change_members(c, [n1, n2, n3], g, "POST", f"/v1/groups/{g}/members",
                   json.dumps({"node": 4, "role": "voter"}),
                   lambda s: (4, "voter") in members_of(s))
    wait_for(lambda: re.search(rf"group {g}: snapshot at index \d+ installed", log_text(n4)),
             "node 4 joined group 1 by a snapshot")
    for k, v in list(data.items())[:20]:
        c.read_until(n4, g, k, v)

    # Node 3 dies; node 4 takes its place in group 1, then node 3 leaves the cluster.
    n3.kill9()
    n3.proc = None
    change_members(c, [n1, n2, n4], g, "DELETE", f"/v1/groups/{g}/members/3", None,
                   lambda s: 3 not in [m for m, _ in members_of(s)])
    wait_for(lambda: (lambda r: r is not None and r.status == 200)(
        n2.call("DELETE", "/v1/cluster/nodes/3")), "DELETE /v1/cluster/nodes/3")
    for n in (n1, n2, n4):
        wait_for(lambda n=n: cluster_ids(n) == [1, 2, 4], f"node {n.id} drops node 3")
    ct.expect_status(add_node(n1, n3), 409, "conflict", "a removed id")
    wait_for(lambda: re.search(r"meta: the meta group promotes node 4 to voter",
                               "".join(log_text(n) for n in (n1, n2))) and
             re.search(r"meta: the meta group removes node 3",
                       "".join(log_text(n) for n in (n1, n2, n4))),
             "the meta group promotes node 4 and drops node 3")

    # Node 5 is added before it starts, then starts and becomes ready.
    add_node_ok([n1, n2], n5)
    start_joining(c, n5)
    c.wait_ready([n5])
    wait_for(lambda: cluster_ids(n5) == [1, 2, 4, 5], "node 5 sees the cluster")

    # Node 4 restarts from its data_dir (kill -9) and still serves its group.
    n4.kill9()
    n4.start()
    c.wait_ready([n4])
    more = put_many(c, [n1, n2, n4], g, "b", 20)
    data.update(more)

    # Node 1 dies: the meta group's voters are 1, 2 and 4, so 2 and 4 still create groups.
    n1.kill9()
    n1.proc = None
    c.create_group(n2, 2, [2, 4, 5])
    c.put([n4, n2], 2, "k", "v")
    for k, v in list(more.items())[:5]:
        c.read_until(n2, g, k, v)
    c.stop_all()


@test
def test_join_refusals(c):
    """A joining node whose id was removed exits 2 naming it; one started with other [listen]
    addresses than it was added with exits 2; one stopped while waiting exits 0 and leaves
    nothing that keeps it from joining later. The meta group's leader removed from the cluster
    through itself hands over to the others (node 5 promoted in its place)."""
    ops.ops(c)
    n1, n2, n3, n4, n5 = c.nodes
    start_initial(c)

    # Node 4 is added with another peer port than its [listen]: it refuses to go on.
    elsewhere = ops.fixed_ports(1)[0]
    add_node_ok([n1], type("Other", (), {"id": 4, "peer_port": elsewhere,
                                          "client_port": n4.client_port})())
    start_joining(c, n4)
    assert wait_exit(n4, "added with other addresses") == 2, "exit status"
    text = log_text(n4)
    assert "was added with peer" in text and "[listen]" in text, f"node 4's log: {text[-500:]}"

    # Node 5 waits, is stopped by SIGTERM (exit 0), then starts again and is added.
    start_joining(c, n5)
    wait_for(lambda: (lambda r: r is not None and r.status == 503)(n5.call("GET", "/readyz")),
             "node 5 waits")
    assert n5.sigterm() == 0, "SIGTERM while joining"
    n5.proc = None
    assert not os.path.exists(os.path.join(n5.data_dir, "cluster")), "a cluster file while waiting"
    n5.start()
    add_node_ok([n2], n5)
    c.wait_ready([n5])

    # The meta group's leader itself leaves the cluster: node 5 (caught up) is promoted in its
    # place, the leader removes itself and steps down, and the rest elect a new meta leader.
    leader = meta_leader(c, [n1, n2, n3])
    wait_for(lambda: (lambda r: r is not None and r.status == 200)(
        leader.call("DELETE", f"/v1/cluster/nodes/{leader.id}")),
        f"DELETE /v1/cluster/nodes/{leader.id} through itself")
    rest = [n for n in (n1, n2, n3) if n is not leader]
    wait_for(lambda: re.search(rf"meta: the meta group removes node {leader.id}",
                               log_text(leader)), "the meta leader removes itself")
    wait_for(lambda: "this node was removed from the cluster" in log_text(leader),
             "the removed node says so")
    c.create_group(rest[0], 9, [rest[0].id, rest[1].id, 5])
    wait_for(lambda: cluster_ids(n5) == sorted([rest[0].id, rest[1].id, 4, 5]),
             "node 5 sees the removal")
    rest[1].kill9()  # the meta group's voters are rest[0], rest[1] and 5: still a majority
    rest[1].proc = None
    c.create_group(n5, 10, [rest[0].id, 5])

    # Node 4's id is removed (it is in no group); a new process with that id is told so.
    wait_for(lambda: (lambda r: r is not None and r.status == 200)(
        rest[0].call("DELETE", "/v1/cluster/nodes/4")), "DELETE /v1/cluster/nodes/4")
    wait_for(lambda: cluster_ids(n5) == sorted([rest[0].id, rest[1].id, 5]),
             "node 5 drops node 4")
    # Its first contact is the removed meta leader, whose meta state stopped before node 4's
    # removal: it must not answer for the cluster (503), so node 4 hears of it from another.
    n4.write_config([leader] + rest)
    n4.start()  # empty data_dir (it never wrote its cluster file)
    assert wait_exit(n4, "a removed id") == 2, "exit status"
    assert "was removed from the cluster" in log_text(n4), "node 4's log names the removal"
    c.stop_all()


SQLITE_MB = int(os.environ.get("RAFTD_JOIN_SQLITE_MB", "24"))


@test
def test_sqlite_group_of_tens_of_mb_to_a_new_node(c):
    """examples/python-sqlite beside every node (doc/sqlite-recipe.md): a group holding tens of
    MB (values of 60,000 B) is compacted on its three members; a fourth node joins the cluster
    and the group, receives the database as a snapshot (PrepareSnapshot, SaveSnapshot streamed
    through both raftd, RecoverFromSnapshot), and its database then holds exactly the rows of
    the others'."""
    ops.ops(c, {"snapshot": ["entries = 100", "tail = 10"]}, app="sqlite")
    n1, n2, n3, n4, _ = c.nodes
    start_initial(c)
    g = 7
    c.create_group(n1, g, [1, 2, 3])
    value_bytes = 60000
    count = SQLITE_MB * 1000 * 1000 // value_bytes
    t0 = time.time()
    data = put_many(c, [n1, n2, n3], g, "big", count, value_bytes=value_bytes)
    c.wait_converged(g, [n1, n2, n3])
    for n in (n1, n2, n3):
        ct.expect_status(n.call("POST", f"/v1/groups/{g}/snapshot"), 200, what="compact")
    t_written = time.time() - t0
    start_joining(c, n4)
    add_node_ok([n3], n4)
    c.wait_ready([n4])
    t1 = time.time()
    change_members(c, [n1, n2, n3], g, "POST", f"/v1/groups/{g}/members",
                   json.dumps({"node": 4, "role": "learner"}),
                   lambda s: (4, "learner") in members_of(s))
    m = wait_for(lambda: re.search(rf"group {g}: snapshot at index \d+ installed", log_text(n4)),
                 "node 4 installed the group's snapshot", deadline_s=120)
    c.wait_converged(g, [n1, n2, n3, n4])
    t_joined = time.time() - t1
    want = sorted((k.encode(), v.encode()) for k, v in data.items())
    for n in (n1, n4):
        rows = [(bytes(k), bytes(v)) for k, v in ops.sqlite_rows(n, g)]
        assert len(rows) == len(want) and rows == want, \
            f"node {n.id}'s database: {len(rows)} rows, want {len(want)}"
    size = os.path.getsize(n4.db_path())
    assert size >= count * value_bytes, f"node 4's database is only {size} bytes"
    print(f"    {count} values ({count * value_bytes / 1e6:.0f} MB) written in {t_written:.1f} s; "
          f"node 4 joined and caught up by snapshot in {t_joined:.1f} s ({m.group(0)}); "
          f"its database is {size / 1e6:.0f} MB")
    c.stop_all()


def meta_leader(c, nodes):
    """The node that logged last that it leads the meta group, once all of `nodes` agree."""
    def leader():
        seen = set()
        for n in nodes:
            found = re.findall(r"meta: leader is node (\d+)", log_text(n))
            seen.add(int(found[-1]) if found else 0)
        return seen.pop() if len(seen) == 1 and 0 not in seen else None
    return c.node(wait_for(leader, "a meta leader all agree on"))


for fn in TESTS:
    fn.nodes = 5


def main():
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--sqlite-app", required=True)
    args, rest = ap.parse_known_args()
    ops.SQLITE_APP = os.path.abspath(args.sqlite_app)
    ct.TESTS[:] = TESTS
    sys.argv[1:] = rest
    return ct.main()


if __name__ == "__main__":
    sys.exit(main())
