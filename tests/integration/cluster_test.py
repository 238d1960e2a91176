#!/usr/bin/env python3
"""Process-level tests of `raftd serve`: three raftd nodes, each beside its own raftd-kv
(examples/kv), all on 127.0.0.1 with free ports and a fresh temp directory per test, driven over
the client API of API.md section 2 with the KV command language of examples/README.md.

Usage: cluster_test.py RAFTD RAFTD_KV [-k SUBSTRING]   (only the tests whose name contains it)

Every process a test starts is killed when the test ends, pass or fail (and when this script
is stopped by a signal). On failure the tails of that test's node and app logs are printed.
Exits 0 when every test passed, 1 otherwise.
"""

import argparse
import http.client
import http.server
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

START_WAIT_S = 60  # generous: ASan binaries on a loaded 2-core machine
OP_WAIT_S = 45  # how long a test retries an operation that must eventually succeed
HTTP_TIMEOUT_S = 20  # above raftd's 10 s propose and read timeouts
BODY_MAX = 65536  # limits.client_body_bytes_max in every node's config
LOG_TAIL_LINES = 40

RAFTD = None
RAFTD_KV = None

# ---- processes -----------------------------------------------------------------------------

_procs_lock = threading.Lock()
_procs = []  # every Popen started, so that nothing outlives the script


def spawn(argv, log_path):
    with open(log_path, "ab") as log:
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    with _procs_lock:
        _procs.append(p)
    return p


def kill_all():
    with _procs_lock:
        procs = list(_procs)
        _procs.clear()
    for p in procs:
        if p.poll() is None:
            try:
                p.kill()  # SIGKILL ends a SIGSTOPped process too
            except OSError:
                pass
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def on_signal(signum, _frame):
    kill_all()
    sys.exit(128 + signum)


def free_ports(n):
    """n distinct ports that were free on 127.0.0.1 a moment ago. They are taken below the
    kernel's ephemeral range when it leaves room (an ephemeral port can be taken by an outgoing
    connection, or an app bound to port 0, before the node binds it); else from the kernel."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 0
    socks = []
    try:
        tries = 0
        while len(socks) < n:
            tries += 1
            port = random.randrange(10000, low) if low > 10000 and tries < 50 * n else 0
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", port))
                socks.append(s)
            except OSError:
                s.close()
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def tail(path, lines=LOG_TAIL_LINES):
    try:
        with open(path, "rb") as f:
            data = f.read().decode(errors="replace").splitlines()
    except OSError as e:
        return [f"<{e}>"]
    return data[-lines:]


# ---- HTTP ----------------------------------------------------------------------------------


class Reply:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return f"{self.status} {self.body[:300]!r}"


def http_call(port, method, path, body=None, headers=None, timeout=HTTP_TIMEOUT_S):
    """One request on a new connection. Returns a Reply, or None when the connection failed."""
    if isinstance(body, str):
        body = body.encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return Reply(r.status, r.getheaders(), r.read())
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def error_code(reply):
    """The "error" member of a JSON error body (API.md section 2), checking the shape."""
    j = reply.json()
    assert isinstance(j, dict) and isinstance(j.get("error"), str) and \
        isinstance(j.get("message"), str), f"error body is not {{error, message}}: {reply}"
    return j["error"]


def put_cmd(key, value):
    return json.dumps({"op": "put", "key": key, "value": value})


def get_cmd(key):
    return json.dumps({"op": "get", "key": key})


# ---- the cluster ---------------------------------------------------------------------------


class Node:
    def __init__(self, cluster, nid, client_port, peer_port):
        self.cluster, self.id = cluster, nid
        self.client_port, self.peer_port = client_port, peer_port
        self.dir = os.path.join(cluster.tmp, f"n{nid}")
        self.data_dir = os.path.join(self.dir, "raftd")
        self.app_dir = os.path.join(self.dir, "kv")
        self.log = os.path.join(self.dir, "raftd.log")
        self.app_log = os.path.join(self.dir, "kv.log.txt")
        self.config = os.path.join(self.dir, "raftd.toml")
        self.proc = None
        self.app = None
        self.app_port = None
        os.makedirs(self.dir)

    # -- the application --
    def start_app(self):
        port = self.app_port or 0
        with open(self.app_log, "ab") as f:
            f.write(b"=== start\n")
        start = os.path.getsize(self.app_log)
        self.app = spawn([RAFTD_KV, "--listen", f"127.0.0.1:{port}", "--data-dir", self.app_dir],
                         self.app_log)
        deadline = time.time() + START_WAIT_S
        while time.time() < deadline:
            with open(self.app_log, "rb") as f:
                f.seek(start)
                text = f.read().decode(errors="replace")
            for line in text.splitlines():
                if line.startswith("listening on "):
                    self.app_port = int(line.strip().rsplit(":", 1)[1])
                    return
            if self.app.poll() is not None:
                raise AssertionError(f"raftd-kv of node {self.id} exited {self.app.returncode}")
            time.sleep(0.05)
        raise AssertionError(f"raftd-kv of node {self.id} did not print its address")

    def kill_app(self):
        self.app.kill()
        self.app.wait()

    # -- raftd --
    def write_config(self, initial):
        members = ",\n".join(
            f'  {{ id = {n.id}, peer = "127.0.0.1:{n.peer_port}", '
            f'client = "127.0.0.1:{n.client_port}" }}' for n in initial)
        with open(self.config, "w") as f:
            f.write(f"""[node]
id = {self.id}
data_dir = "{self.data_dir}"

[listen]
client = "127.0.0.1:{self.client_port}"
peer = "127.0.0.1:{self.peer_port}"

[cluster]
initial = [
{members},
]

[app]
url = "http://127.0.0.1:{self.app_port}"
timeout_ms = 3000
retry_min_ms = 50
retry_max_ms = 500

[raft]
tick_ms = 50
election_ticks = 10

[limits]
client_body_bytes_max = {BODY_MAX}

[log]
level = "{os.environ.get('RAFTD_INTEG_LOG', 'info')}"
""")

    def start(self):
        with open(self.log, "ab") as f:
            f.write(b"=== start\n")
        self.proc = spawn([RAFTD, "serve", "--config", self.config], self.log)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def sigterm(self, timeout=15):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"node {self.id} did not exit within {timeout} s of SIGTERM")

    # -- client API --
    def call(self, method, path, body=None, headers=None, timeout=HTTP_TIMEOUT_S):
        return http_call(self.client_port, method, path, body, headers, timeout)

    def status(self, g):
        r = self.call("GET", f"/v1/groups/{g}")
        return r.json() if r is not None and r.status == 200 else None

    def propose(self, g, data, timeout=HTTP_TIMEOUT_S):
        return self.call("POST", f"/v1/groups/{g}/propose", data, timeout=timeout)

    def read(self, g, key, stale=False):
        q = "?consistency=stale" if stale else ""
        return self.call("POST", f"/v1/groups/{g}/read{q}", get_cmd(key))


class Cluster:
    def __init__(self, tmp, n=3):
        self.tmp = tmp
        ports = free_ports(2 * n)
        self.nodes = [Node(self, i + 1, ports[2 * i], ports[2 * i + 1]) for i in range(n)]

    def start(self):
        for n in self.nodes:
            n.start_app()
        for n in self.nodes:
            n.write_config(self.nodes)
        for n in self.nodes:
            n.start()
        self.wait_ready()
        return self

    def node(self, nid):
        return self.nodes[nid - 1]

    def wait_ready(self, nodes=None):
        nodes = nodes or self.nodes
        deadline = time.time() + START_WAIT_S
        pending = list(nodes)
        while pending and time.time() < deadline:
            for n in list(pending):
                if not n.alive():
                    raise AssertionError(f"node {n.id} exited {n.proc.returncode} while starting")
                r = n.call("GET", "/readyz", timeout=5)
                if r is not None and r.status == 200:
                    pending.remove(n)
            time.sleep(0.1)
        assert not pending, f"/readyz not 200 within {START_WAIT_S} s on nodes " \
            f"{[n.id for n in pending]}"

    def create_group(self, via, g, members=None):
        members = members or [n.id for n in self.nodes]
        deadline = time.time() + OP_WAIT_S
        last = None
        while time.time() < deadline:
            last = via.call("POST", "/v1/groups", json.dumps({"id": g, "members": members}))
            if last is not None and last.status == 201:
                j = last.json()
                assert j["id"] == g, f"create answered another group: {last}"
                self.wait_leader(g, [self.node(m) for m in members])
                return j
            if last is not None and last.status not in (503, 504):
                raise AssertionError(f"create group {g} via node {via.id}: {last}")
            time.sleep(0.2)
        raise AssertionError(f"create group {g} via node {via.id} did not succeed: {last}")

    def wait_leader(self, g, nodes=None):
        """The leader of g once every given node sees the same one."""
        nodes = nodes or [n for n in self.nodes if n.alive()]
        deadline = time.time() + OP_WAIT_S
        seen = None
        while time.time() < deadline:
            seen = [n.status(g) for n in nodes]
            leaders = {s["leader"] if s else None for s in seen}
            if len(leaders) == 1 and None not in leaders and 0 not in leaders:
                leader = leaders.pop()
                if any(s["node"] == leader and s["role"] == "leader" for s in seen) or \
                        leader not in [n.id for n in nodes]:
                    return leader
            time.sleep(0.1)
        raise AssertionError(f"group {g}: no common leader on nodes {[n.id for n in nodes]}: "
                             f"{seen}")

    def put(self, via, g, key, value, deadline_s=OP_WAIT_S, nodes=None):
        """Puts key=value through `via` (a node, or a list to rotate over), retrying on 503 (not
        appended) and on 504 or a lost connection (outcome unknown: the same put again is
        harmless). Returns the 200 reply."""
        vias = via if isinstance(via, list) else [via]
        deadline = time.time() + deadline_s
        last, i = None, 0
        while time.time() < deadline:
            n = vias[i % len(vias)]
            i += 1
            last = n.propose(g, put_cmd(key, value))
            if last is not None and last.status == 200:
                return last
            if last is not None and last.status not in (503, 504):
                raise AssertionError(f"put {key} via node {n.id}: {last}")
            time.sleep(0.1)
        raise AssertionError(f"put {key} in group {g} not acknowledged in {deadline_s} s: {last}")

    def read_until(self, via, g, key, want, stale=False, deadline_s=OP_WAIT_S):
        """Reads key through `via` until the answer is 200 with `want` (or 404 when want is None);
        retries on 503/504 and lost connections; a different answer is retried only if stale."""
        deadline = time.time() + deadline_s
        last = None
        while time.time() < deadline:
            last = via.read(g, key, stale=stale)
            if last is not None:
                if want is None and last.status == 404:
                    return
                if want is not None and last.status == 200 and last.body == want.encode():
                    return
                if last.status in (200, 404) and not stale:
                    raise AssertionError(f"linearizable read of {key} in group {g} via node "
                                         f"{via.id}: want {want!r}, got {last}")
            time.sleep(0.1)
        raise AssertionError(f"read of {key} in group {g} via node {via.id}: want {want!r}, "
                             f"last answer {last}")

    def wait_converged(self, g, nodes=None, deadline_s=OP_WAIT_S):
        """Every given node has applied the same commit index of g."""
        nodes = nodes or self.nodes
        deadline = time.time() + deadline_s
        seen = None
        while time.time() < deadline:
            seen = [n.status(g) for n in nodes]
            if all(seen):
                commits = {s["commit_index"] for s in seen}
                if len(commits) == 1 and all(s["applied_index"] == s["commit_index"]
                                             for s in seen):
                    return commits.pop()
            time.sleep(0.1)
        raise AssertionError(f"group {g} did not converge: {seen}")

    def logs(self):
        out = []
        for n in self.nodes:
            out.append(f"--- node {n.id} raftd log ({n.log}), last {LOG_TAIL_LINES} lines:")
            out += tail(n.log)
            out.append(f"--- node {n.id} raftd-kv log, last 10 lines:")
            out += tail(n.app_log, 10)
        return "\n".join(out)

    def stop_all(self):
        """SIGTERM to every running raftd: each must exit 0 (under ASan: no leak either)."""
        for n in self.nodes:
            if n.alive():
                n.proc.send_signal(signal.SIGTERM)
        for n in self.nodes:
            if n.proc is not None:
                try:
                    rc = n.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    raise AssertionError(f"node {n.id} did not exit within 20 s of SIGTERM")
                if rc not in (0, -signal.SIGKILL):
                    raise AssertionError(f"node {n.id} exited {rc} after SIGTERM")


# ---- raftd-kv's log (examples/kv/kv_log.h): what each app applied, in order ---------------


def kv_records(node):
    """{group: [(last_index, [(kind, key, value), ...]), ...]} in the order node's app wrote its
    records, boundaries and indexes kept: a record whose first change is a reset (kind 3) is a
    snapshot that replaced the state. Stops at an incomplete record (a write in flight)."""
    path = os.path.join(node.app_dir, "kv.log")
    with open(path, "rb") as f:
        data = f.read()
    out = {}
    pos = 0
    while pos + 12 <= len(data):
        (size,) = struct.unpack_from("<I", data, pos)
        if pos + 12 + size > len(data):
            break
        body = data[pos + 12:pos + 12 + size]
        pos += 12 + size
        group, last, count = struct.unpack_from("<QQI", body, 0)
        p = 20
        changes = []
        for _ in range(count):
            kind, klen = struct.unpack_from("<BI", body, p)
            p += 5
            key = body[p:p + klen].decode()
            p += klen
            value = None
            if kind == 1:
                (vlen,) = struct.unpack_from("<I", body, p)
                p += 4
                value = body[p:p + vlen].decode()
                p += vlen
            changes.append((kind, key, value))
        out.setdefault(group, []).append((last, changes))
    return out


def kv_changes(node):
    """{group: [(kind, key, value), ...]} in the order node's app applied them (kv_records,
    flattened)."""
    return {g: [ch for _, changes in recs for ch in changes]
            for g, recs in kv_records(node).items()}


# ---- the tests -----------------------------------------------------------------------------

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def expect_status(reply, status, code=None, what=""):
    assert reply is not None, f"{what}: no answer (connection failed)"
    assert reply.status == status, f"{what}: want {status} {code or ''}, got {reply}"
    if code is not None:
        got = error_code(reply)
        assert got == code, f"{what}: want error {code!r}, got {reply}"


GROUP_FIELDS = {"id", "node", "role", "leader", "term", "commit_index", "applied_index",
                "first_index", "last_index", "members"}


def check_group_status(s, g, node_id, members):
    assert GROUP_FIELDS <= set(s), f"group status lacks {GROUP_FIELDS - set(s)}: {s}"
    assert s["id"] == g and s["node"] == node_id, f"group status of the wrong group/node: {s}"
    assert s["role"] in ("leader", "follower", "candidate", "learner"), f"bad role: {s}"
    for k in ("leader", "term", "commit_index", "applied_index", "first_index", "last_index"):
        assert isinstance(s[k], int) and s[k] >= 0, f"{k} is not a u64: {s}"
    assert s["applied_index"] <= s["commit_index"] <= s["last_index"], f"indexes disordered: {s}"
    assert sorted(m["node"] for m in s["members"]) == sorted(members), f"members: {s}"
    assert all(m["role"] == "voter" for m in s["members"]), f"member roles: {s}"


@test
def test_basic_api(c):
    """Ready on all; groups created through different nodes; proposals through every node read
    back linearizably through every node; stale reads; the shapes of GET /v1/groups, GET
    /v1/groups/{id} and GET /v1/cluster; DELETE of a group."""
    c.start()
    n1, n2, n3 = c.nodes
    created = c.create_group(n1, 7)
    check_group_status(created, 7, 1, [1, 2, 3])
    # The 201 came once the group runs on the node that took it: it is there right away.
    assert n1.status(7) is not None, "GET /v1/groups/7 through the creating node after its 201"
    c.create_group(n2, 8)
    for g in (7, 8):
        for n in c.nodes:
            r = c.put(n, g, f"k{n.id}", f"v{g}-{n.id}")
            assert r.json() == {"ok": True, "prev": None}, f"put result: {r}"
            idx = r.header("Raftd-Index")
            assert idx is not None and int(idx) > 0, f"no Raftd-Index on {r.headers}"
            # The propose answered after this node's app applied it: a stale read here sees it.
            r = n.read(g, f"k{n.id}", stale=True)
            expect_status(r, 200, what=f"stale read after own put via node {n.id}")
            assert r.body == f"v{g}-{n.id}".encode(), f"stale read after own put: {r}"
        for reader in c.nodes:
            for writer in c.nodes:
                c.read_until(reader, g, f"k{writer.id}", f"v{g}-{writer.id}")
    # An overwrite reports the previous value; a missing key reads 404 from the app.
    r = c.put(n3, 7, "k1", "again")
    assert r.json() == {"ok": True, "prev": "v7-1"}, f"overwrite result: {r}"
    c.read_until(n2, 7, "k1", "again")
    c.read_until(n1, 7, "nope", None)
    for n in c.nodes:
        c.read_until(n, 7, "k1", "again", stale=True)

    for n in c.nodes:
        r = n.call("GET", "/v1/groups")
        expect_status(r, 200, what="GET /v1/groups")
        assert r.header("Content-Type").startswith("application/json"), f"{r.headers}"
        groups = r.json()["groups"]
        assert sorted(s["id"] for s in groups) == [7, 8], f"GET /v1/groups on {n.id}: {r}"
        for s in groups:
            check_group_status(s, s["id"], n.id, [1, 2, 3])
    for g in (7, 8):
        leader = c.wait_leader(g)
        views = [n.status(g) for n in c.nodes]
        assert [v["role"] for v in views].count("leader") == 1, f"one leader: {views}"
        assert views[leader - 1]["role"] == "leader", f"leader {leader}: {views}"

    deadline = time.time() + OP_WAIT_S
    while True:
        views = {}
        for n in c.nodes:
            r = n.call("GET", "/v1/cluster")
            expect_status(r, 200, what="GET /v1/cluster")
            views[n.id] = r.json()["nodes"]
        ok = True
        for nid, nodes in views.items():
            assert sorted(x["id"] for x in nodes) == [1, 2, 3], f"cluster on {nid}: {nodes}"
            for x in nodes:
                assert set(x) >= {"id", "peer", "client", "reachable"}, f"cluster entry: {x}"
                want = c.node(x["id"])
                assert x["peer"] == f"127.0.0.1:{want.peer_port}", f"peer: {x}"
                assert x["client"] == f"127.0.0.1:{want.client_port}", f"client: {x}"
                if x["id"] == nid:
                    assert x["reachable"] is True, f"self unreachable on {nid}: {x}"
                ok = ok and x["reachable"] is True
        if ok:
            break
        assert time.time() < deadline, f"not every node reachable from every node: {views}"
        time.sleep(0.2)

    # A deleted group is gone from every member, and its id is never reused.
    c.create_group(n1, 9)
    r = n3.call("DELETE", "/v1/groups/9")
    expect_status(r, 200, what="DELETE /v1/groups/9")
    for n in c.nodes:
        deadline = time.time() + OP_WAIT_S
        while n.call("GET", "/v1/groups/9").status != 404:
            assert time.time() < deadline, f"group 9 still on node {n.id} after DELETE"
            time.sleep(0.1)
        expect_status(n.propose(9, put_cmd("a", "b")), 404, "unknown_group", "propose to deleted")
    r = n2.call("POST", "/v1/groups", json.dumps({"id": 9, "members": [1, 2, 3]}))
    expect_status(r, 409, "group_exists", "re-create a deleted group")
    c.read_until(n3, 8, "k3", "v8-3")  # the other groups are untouched

    # raftd status through one node gathers every node's view (asked of all at once).
    r = subprocess.run([RAFTD, "status", "--json", "--endpoint",
                        f"http://127.0.0.1:{n2.client_port}"],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, f"raftd status: {r.returncode} {r.stderr!r}"
    views = json.loads(r.stdout)["views"]
    assert sorted(views) == ["1", "2", "3"], f"raftd status views: {sorted(views)}"
    for nid, v in views.items():
        ids = sorted(g["id"] for g in v.get("groups", []))
        assert 8 in ids and 9 not in ids, f"raftd status: node {nid}'s groups {ids}: {v}"
    c.stop_all()


@test
def test_concurrent_writers_exactly_once(c):
    """Concurrent writers through every node: every acknowledged put is applied exactly once,
    in the same order, by every node's app; one writer's puts in the order it made them."""
    c.start()
    c.create_group(c.nodes[0], 5)
    c.create_group(c.nodes[1], 6)
    writers, per_writer = 6, 25
    acked = [[] for _ in range(writers)]  # (group, key, value, index)
    failures = []

    def writer(t):
        n = c.nodes[t % 3]
        g = 5 + t % 2
        try:
            for i in range(per_writer):
                key, value = f"w{t}-{i}", f"v{t}-{i}"
                for _ in range(50):
                    r = n.propose(g, put_cmd(key, value))
                    if r is not None and r.status == 200:
                        assert r.json() == {"ok": True, "prev": None}, \
                            f"first put of {key} found a previous value (applied twice?): {r}"
                        acked[t].append((g, key, value, int(r.header("Raftd-Index"))))
                        break
                    if r is not None and r.status == 503:
                        time.sleep(0.05)  # not appended: the same put again is a new entry
                        continue
                    break  # 504 or lost: outcome unknown; not counted as acknowledged
        except Exception as e:  # noqa: BLE001 (reported by the main thread)
            failures.append(f"writer {t}: {e!r}")

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(writers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not failures, "; ".join(failures)
    total = sum(len(a) for a in acked)
    assert total >= writers * per_writer * 0.9, f"only {total} puts acknowledged"
    for t in range(writers):
        idx = [a[3] for a in acked[t]]
        assert idx == sorted(idx) and len(set(idx)) == len(idx), \
            f"writer {t}: indexes of its sequential puts not increasing: {idx}"
    for g in (5, 6):
        c.wait_converged(g)
    # raftd-kv records every applied change in its log: the same sequence on every node.
    seqs = [kv_changes(n) for n in c.nodes]
    for g in (5, 6):
        base = seqs[0].get(g, [])
        for n, s in zip(c.nodes, seqs):
            mine = s.get(g, [])
            assert mine == base, f"group {g}: node {n.id}'s app applied another sequence " \
                f"({len(mine)} changes) than node 1's ({len(base)})"
        pos = {}
        for i, (kind, key, value) in enumerate(base):
            assert key not in pos, f"group {g}: {key} applied twice"
            pos[key] = i
        for t in range(writers):
            mine = [a for a in acked[t] if a[0] == g]
            for _, key, value, _ in mine:
                assert key in pos and base[pos[key]] == (1, key, value), \
                    f"group {g}: acknowledged put {key}={value} not applied"
            order = [pos[a[1]] for a in mine]
            assert order == sorted(order), f"writer {t}: puts applied out of order"
    for n in c.nodes:  # and the apps answer reads from that state
        for t in range(writers):
            for g, key, value, _ in acked[t][-2:]:
                c.read_until(n, g, key, value, stale=True)
    c.stop_all()


def write_batch(c, nodes, g, prefix, count, data):
    for i in range(count):
        key, value = f"{prefix}{i}", f"{prefix}-val{i}"
        c.put(nodes, g, key, value)
        data[key] = value


def check_all(c, node, g, data, stale=False):
    for key, value in data.items():
        c.read_until(node, g, key, value, stale=stale)


@test
def test_kill_leader_then_follower(c):
    """kill -9 of a group's leader, then of a follower: the other two keep taking writes; the
    killed node restarted on its data catches up (reads through it see the latest values)."""
    c.start()
    c.create_group(c.nodes[0], 7)
    data = {}
    write_batch(c, c.nodes, 7, "a", 6, data)
    leader = c.node(c.wait_leader(7))
    leader.kill9()
    rest = [n for n in c.nodes if n is not leader]
    write_batch(c, rest, 7, "b", 6, data)
    for n in rest:
        check_all(c, n, 7, data)
    leader.start()
    c.wait_ready([leader])
    check_all(c, leader, 7, data)
    c.put(leader, 7, "b0", "through the restarted node")
    data["b0"] = "through the restarted node"

    new_leader = c.wait_leader(7)
    follower = next(n for n in c.nodes if n.id != new_leader)
    follower.kill9()
    rest = [n for n in c.nodes if n is not follower]
    write_batch(c, rest, 7, "c", 6, data)
    check_all(c, rest[0], 7, data)
    follower.start()
    c.wait_ready([follower])
    check_all(c, follower, 7, data)
    c.wait_converged(7)
    check_all(c, follower, 7, data, stale=True)
    c.stop_all()


@test
def test_sigstop_leader(c):
    """SIGSTOP of a group's leader for a few seconds: the others elect a leader and keep serving;
    after SIGCONT the stopped node catches up and serves again."""
    c.start()
    c.create_group(c.nodes[2], 7)
    data = {}
    write_batch(c, c.nodes, 7, "a", 4, data)
    stopped = c.node(c.wait_leader(7))
    stopped.proc.send_signal(signal.SIGSTOP)
    try:
        rest = [n for n in c.nodes if n is not stopped]
        t0 = time.time()
        write_batch(c, rest, 7, "b", 6, data)
        for n in rest:
            check_all(c, n, 7, data)
        time.sleep(max(0.0, 4 - (time.time() - t0)))
    finally:
        stopped.proc.send_signal(signal.SIGCONT)
    check_all(c, stopped, 7, data)
    c.put(stopped, 7, "after", "cont")
    data["after"] = "cont"
    for n in c.nodes:
        check_all(c, n, 7, data)
    c.wait_converged(7)
    check_all(c, stopped, 7, data, stale=True)
    c.stop_all()


@test
def test_restart_all(c):
    """SIGKILL of every raftd and every app at once, then all restarted: every acknowledged
    write is still there, and the cluster takes new writes."""
    c.start()
    c.create_group(c.nodes[0], 7)
    c.create_group(c.nodes[1], 8)
    data = {7: {}, 8: {}}
    for g in (7, 8):
        write_batch(c, c.nodes, g, f"g{g}-", 8, data[g])
    for n in c.nodes:
        n.kill9()
        n.kill_app()
    for n in c.nodes:
        n.start_app()
    for n in c.nodes:
        n.start()
    c.wait_ready()
    for g in (7, 8):
        c.wait_leader(g)
        for n in c.nodes:
            check_all(c, n, g, data[g])
        write_batch(c, c.nodes, g, f"new{g}-", 3, data[g])
        check_all(c, c.nodes[2], g, data[g])
    r = c.nodes[0].call("GET", "/v1/groups")
    assert sorted(s["id"] for s in r.json()["groups"]) == [7, 8], f"groups after restart: {r}"
    c.stop_all()


def keyed_put(node, g, key, k, v):
    return node.call("POST", f"/v1/groups/{g}/propose", put_cmd(k, v),
                     headers={"Idempotency-Key": key})


def keyed_retry_until(nodes, g, key, want, what, deadline_s=OP_WAIT_S):
    """Retries the keyed proposal `key` (with another body: a replay ignores it) through each of
    `nodes` until it answers 200; each answer must be the first one's (index and result)."""
    for n in nodes:
        deadline = time.time() + deadline_s
        r = None
        while time.time() < deadline:
            r = keyed_put(n, g, key, "ignored", "by a replay")
            if r is not None and r.status == 200:
                break
            if r is not None and r.status not in (503, 504):
                raise AssertionError(f"{what}: retry of {key} through node {n.id}: {r}")
            time.sleep(0.2)
        expect_status(r, 200, what=f"{what}: retry of {key} through node {n.id}")
        assert r.header("Raftd-Replayed") == "true", f"{what}: not a replay: {r.headers}"
        assert r.header("Raftd-Index") == want.header("Raftd-Index"), \
            f"{what}: retry of {key} through node {n.id} answered index " \
            f"{r.header('Raftd-Index')}, the first was {want.header('Raftd-Index')}"
        assert r.body == want.body, f"{what}: retry of {key}: {r.body!r} != {want.body!r}"


@test
def test_idempotency_key(c):
    """Idempotency-Key: retries through every node, racing retries, after the leader's kill -9
    and after a restart of every node, all answer the first index and result, and every app
    applied the entry once; malformed keys get 400."""
    c.start()
    c.create_group(c.nodes[0], 7)
    leader = c.node(c.wait_leader(7))
    follower = next(n for n in c.nodes if n is not leader)
    first = keyed_put(follower, 7, "op-1", "x", "1")
    expect_status(first, 200, what="first keyed put through a follower")
    assert first.header("Raftd-Replayed") is None, f"a first proposal is no replay: {first}"
    assert first.json() == {"ok": True, "prev": None}, f"first put: {first}"
    keyed_retry_until(c.nodes, 7, "op-1", first, "every node")

    # The same key through all three nodes at once: one entry, one answer.
    answers = [None] * 3

    def racer(i):
        answers[i] = keyed_put(c.nodes[i], 7, "op-2", "y", "2")

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for i, r in enumerate(answers):
        expect_status(r, 200, what=f"racing keyed put through node {i + 1}")
    assert len({r.header("Raftd-Index") for r in answers}) == 1, \
        f"racing keyed puts got different indexes: {[r.header('Raftd-Index') for r in answers]}"
    assert len({r.body for r in answers}) == 1, f"racing answers differ: {answers}"

    # The leader dies: the key is in the new leader's log.
    leader.kill9()
    rest = [n for n in c.nodes if n is not leader]
    c.wait_leader(7, rest)
    keyed_retry_until(rest, 7, "op-1", first, "after the leader's kill -9")
    leader.start()
    c.wait_ready([leader])

    # Every node restarts: keys and results come back from the journal and the log.
    for n in c.nodes:
        n.kill9()
    for n in c.nodes:
        n.start()
    c.wait_ready()
    c.wait_leader(7)
    keyed_retry_until(c.nodes, 7, "op-1", first, "after a restart of every node")
    keyed_retry_until(c.nodes, 7, "op-2", answers[0], "after a restart of every node")

    c.wait_converged(7)
    for n in c.nodes:
        changes = kv_changes(n).get(7, [])
        for k in ("x", "y"):
            applied = [ch for ch in changes if ch[1] == k]
            assert len(applied) == 1, f"node {n.id}'s app applied {k} {len(applied)} times"
    for bad in ("has space", "x" * 129, "caf\u00e9"):
        r = c.nodes[0].call("POST", "/v1/groups/7/propose", put_cmd("z", "1"),
                            headers={"Idempotency-Key": bad.encode("utf-8")})
        expect_status(r, 400, "bad_request", what=f"Idempotency-Key {bad[:20]!r}")
    c.stop_all()


@test
def test_sigterm_and_refusals(c):
    """SIGTERM exits 0 soon; a second raftd on a data_dir in use is refused; a node with an empty
    data_dir and an empty [cluster].initial is refused."""
    c.start()
    n1, n2, n3 = c.nodes
    # A second raftd with n1's config: the data_dir lock refuses it before it binds anything.
    other = n1.config
    p = subprocess.run([RAFTD, "serve", "--config", other], capture_output=True, timeout=60)
    err = p.stderr.decode(errors="replace")
    assert p.returncode != 0, f"a second raftd on a data_dir in use ran: {err}"
    assert "in use" in err and n1.data_dir in err, f"no clear message for a locked data_dir: {err}"
    expect_status(n1.call("GET", "/healthz"), 200, what="the first raftd after the refusal")

    # A node 4 with an empty data_dir, not in initial, and no one to contact: refused (a node
    # not in initial joins through the members it lists; join_test.py has joining).
    n4_dir = os.path.join(c.tmp, "n4")
    os.makedirs(n4_dir)
    ports = free_ports(2)
    cfg4 = os.path.join(n4_dir, "raftd.toml")
    with open(n1.config) as f:
        text = f.read()
    text = text.replace("id = 1\n", "id = 4\n", 1)
    text = text.replace(f'data_dir = "{n1.data_dir}"', f'data_dir = "{n4_dir}/raftd"', 1)
    text = text.replace(f'client = "127.0.0.1:{n1.client_port}"\n',
                        f'client = "127.0.0.1:{ports[0]}"\n', 1)
    text = text.replace(f'peer = "127.0.0.1:{n1.peer_port}"\n', f'peer = "127.0.0.1:{ports[1]}"\n',
                        1)
    text = re.sub(r"initial = \[.*?\n\]", "initial = []", text, count=1, flags=re.S)
    with open(cfg4, "w") as f:
        f.write(text)
    p = subprocess.run([RAFTD, "serve", "--config", cfg4], capture_output=True, timeout=60)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 2, f"node 4, with nothing to bootstrap with or join, ran: {err}"
    assert "[cluster].initial is empty" in err, f"no clear message for an empty initial: {err}"

    c.create_group(n2, 7)
    c.put(n3, 7, "k", "v")
    t0 = time.time()
    rc = n2.sigterm(timeout=10)
    took = time.time() - t0
    assert rc == 0, f"node 2 exited {rc} after SIGTERM"
    assert "stopped" in "\n".join(tail(n2.log, 5)), "node 2's log does not say it stopped"
    # The other two still serve, and node 2 comes back on its data.
    c.put([n1, n3], 7, "k2", "v2")
    n2.start()
    c.wait_ready([n2])
    c.read_until(n2, 7, "k2", "v2")
    print(f"    SIGTERM exit took {took:.2f} s")
    c.stop_all()


def raw_request(port, head, body=b"", timeout=HTTP_TIMEOUT_S):
    """Sends head and body on a raw socket (ignoring a reset while sending: the server may answer
    before it reads the body) and parses the status line and body of the answer."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(head.encode())
        try:
            s.sendall(body)
        except OSError:
            pass
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data:
                hdr, _, rest = data.partition(b"\r\n\r\n")
                length = 0
                for line in hdr.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v.strip())
                if len(rest) >= length:
                    break
    finally:
        s.close()
    hdr, _, rest = data.partition(b"\r\n\r\n")
    status = int(hdr.split(b" ")[1]) if hdr else None
    return Reply(status, [], rest)


@test
def test_bad_input(c):
    """Bad client input gets the documented status and error code, and the node keeps serving."""
    c.start()
    n1, n2, n3 = c.nodes
    c.create_group(n1, 7)
    post = lambda n, path, body: n.call("POST", path, body)  # noqa: E731
    for body in ("{", "not json", "[]", '{"id": 1}', '{"members": [1]}',
                 '{"id": "abc", "members": [1]}', '{"id": -1, "members": [1]}',
                 '{"id": 18446744073709551616, "members": [1]}', '{"id": 11, "members": 1}',
                 '{"id": 11, "members": [0]}', '{"id": 11, "members": []}',
                 '{"id": 11, "members": [1, 1]}', '{"id": 0, "members": [1]}'):
        expect_status(post(n2, "/v1/groups", body), 400, "bad_request", f"create with {body}")
    expect_status(post(n2, "/v1/groups", '{"id": 11, "members": [1, 9]}'), 400, "bad_request",
                  "create with an unknown node")
    expect_status(post(n3, "/v1/groups", '{"id": 7, "members": [1, 2, 3]}'), 409, "group_exists",
                  "create an existing group")
    for bad in ("abc", "-1", str(2**64), "1x", "%37"):
        for method, suffix in (("GET", ""), ("DELETE", ""), ("POST", "/propose"),
                               ("POST", "/read")):
            r = n1.call(method, f"/v1/groups/{bad}{suffix}", "{}")
            expect_status(r, 400, "bad_request", f"{method} /v1/groups/{bad}{suffix}")
    for g in (0, 99, 2**64 - 1):
        expect_status(n1.call("GET", f"/v1/groups/{g}"), 404, "unknown_group", f"GET group {g}")
        expect_status(n2.propose(g, put_cmd("a", "b")), 404, "unknown_group", f"propose to {g}")
        expect_status(n3.read(g, "a"), 404, "unknown_group", f"read of group {g}")
        expect_status(n3.read(g, "a", stale=True), 404, "unknown_group", f"stale read of {g}")
        expect_status(n1.call("DELETE", f"/v1/groups/{g}"), 404, "unknown_group",
                      f"DELETE group {g}")
    for method, path in (("GET", "/v1/groups/7/propose"), ("GET", "/v1/groups/7/read"),
                         ("PUT", "/v1/groups"), ("DELETE", "/v1/groups"), ("POST", "/v1/groups/7"),
                         ("POST", "/v1/cluster"), ("POST", "/healthz"), ("POST", "/readyz")):
        expect_status(n2.call(method, path, "{}"), 405, "method_not_allowed", f"{method} {path}")
    expect_status(n1.call("GET", "/v1/nothing"), 404, "not_found", "unknown path")
    # Over limits.client_body_bytes_max: 413, through the leader and a follower alike.
    big = b"x" * (BODY_MAX + 1)
    for n in c.nodes:
        r = raw_request(n.client_port, f"POST /v1/groups/7/propose HTTP/1.1\r\nHost: x\r\n"
                        f"Content-Length: {len(big)}\r\n\r\n", big)
        # The HTTP server answers this one itself, before raftd sees it, as JSON like every
        # other error of the API.
        expect_status(r, 413, "too_large", f"oversized propose via node {n.id}")
    # Exactly at the limit is accepted (and not a valid command: the app's result says so).
    r = c.put(n2, 7, "k", "v")
    r = n3.propose(7, b"y" * BODY_MAX)
    expect_status(r, 200, what="propose of exactly the body limit")
    assert r.json() == {"error": "bad_command", "ok": False}, f"result of a non-command: {r}"
    # The app's own answers pass through reads: a bad query is the app's 400.
    r = n1.call("POST", "/v1/groups/7/read", "not a query")
    expect_status(r, 400, what="read with a bad query")
    assert r.json() == {"error": "bad_query", "ok": False}, f"the app's answer: {r}"
    expect_status(n1.call("POST", "/v1/cluster/nodes", "{}"), 400, "bad_request",
                  "POST /v1/cluster/nodes without a node")
    # Still serving, on every node.
    for n in c.nodes:
        expect_status(n.call("GET", "/healthz"), 200, what=f"healthz on {n.id} after bad input")
        c.read_until(n, 7, "k", "v")
    c.put(n1, 7, "k", "w")
    c.read_until(n3, 7, "k", "w")
    c.stop_all()


@test
def test_app_down_fences_its_node(c):
    """One node's app killed: proposals through that node are not applied there (504), those
    through the others still succeed; after the app restarts the node catches up and its app has
    applied every entry exactly once, in the same order as the others."""
    c.start()
    n1, n2, n3 = c.nodes
    c.create_group(n1, 7)
    c.create_group(n2, 8)
    data = {7: {}, 8: {}}
    for g in (7, 8):
        write_batch(c, c.nodes, g, f"a{g}-", 3, data[g])
    n3.kill_app()
    # Through node 3: appended and committed, but not applied there: 504 (outcome unknown).
    stuck = {}

    def through_n3():
        stuck["reply"] = n3.propose(7, put_cmd("via3", "unknown outcome"))

    th = threading.Thread(target=through_n3)
    th.start()
    for g in (7, 8):
        write_batch(c, [n1, n2], g, f"b{g}-", 4, data[g])
        for n in (n1, n2):
            check_all(c, n, g, data[g])
    th.join()
    expect_status(stuck["reply"], 504, "timeout", "propose through the node whose app is down")
    s = n3.status(7)
    assert s["applied_index"] < s["commit_index"], f"node 3 applied without its app: {s}"
    r = n3.read(7, "a7-0", stale=True)
    assert r is not None and r.status in (503, 504), f"stale read via an app that is down: {r}"
    data[7]["via3"] = "unknown outcome"  # it was appended: it commits and applies everywhere
    check_all(c, n1, 7, data[7])

    n3.start_app()
    for g in (7, 8):
        c.wait_converged(g)
        for n in c.nodes:
            check_all(c, n, g, data[g], stale=True)
    seqs = [kv_changes(n) for n in c.nodes]
    for g in (7, 8):
        for n, s in zip(c.nodes, seqs):
            assert s.get(g) == seqs[0].get(g), \
                f"group {g}: node {n.id}'s app applied {s.get(g)}, node 1's {seqs[0].get(g)}"
        keys = [k for _, k, _ in seqs[0][g]]
        assert len(keys) == len(set(keys)), f"group {g}: a put applied twice: {keys}"
    c.put(n3, 7, "after", "restart")
    c.read_until(n1, 7, "after", "restart")
    c.stop_all()


@test
def test_transfer_leader(c):
    """POST /v1/groups/{id}/transfer-leader through any member moves leadership to the named
    voter (answered once the asked node sees it lead); the CLI does the same; a non-voter, a bad
    body, a wrong method and an unknown group get their errors; writes go on throughout."""
    c.start()
    c.create_group(c.nodes[0], 7)
    data = {}
    for step in range(3):
        leader = c.wait_leader(7)
        target = next(n for n in c.nodes if n.id != leader)
        via = next(n for n in c.nodes if n.id not in (leader, target.id))  # a third node
        r = via.call("POST", "/v1/groups/7/transfer-leader", json.dumps({"node": target.id}))
        expect_status(r, 200, what=f"transfer from {leader} to {target.id} via {via.id}")
        assert r.json()["leader"] == target.id, f"status after the transfer: {r}"
        assert c.wait_leader(7) == target.id, "every node sees the new leader"
        write_batch(c, c.nodes, 7, f"t{step}-", 2, data)
    leader = c.wait_leader(7)
    target = next(n for n in c.nodes if n.id != leader)
    r = subprocess.run([RAFTD, "group", "transfer-leader", "7", str(target.id), "--endpoint",
                        f"http://127.0.0.1:{c.node(leader).client_port}"],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, f"raftd group transfer-leader: {r.returncode} {r.stderr!r}"
    assert json.loads(r.stdout)["leader"] == target.id, f"CLI output: {r.stdout!r}"
    r = target.call("POST", "/v1/groups/7/transfer-leader", json.dumps({"node": target.id}))
    expect_status(r, 200, what="transfer to the current leader")
    n1 = c.nodes[0]
    expect_status(n1.call("POST", "/v1/groups/7/transfer-leader", json.dumps({"node": 9})),
                  400, "bad_request", "transfer to a node that is not a voter")
    expect_status(n1.call("POST", "/v1/groups/7/transfer-leader", "{\"to\": 2}"),
                  400, "bad_request", "transfer with a bad body")
    expect_status(n1.call("GET", "/v1/groups/7/transfer-leader"),
                  405, "method_not_allowed", "GET transfer-leader")
    expect_status(n1.call("POST", "/v1/groups/99/transfer-leader", json.dumps({"node": 2})),
                  404, "unknown_group", "transfer in an unknown group")
    for n in c.nodes:
        check_all(c, n, 7, data)
    c.stop_all()


def wait_hosting(node, g, want, deadline_s=OP_WAIT_S):
    """Waits until `node` hosts group g (want=True, its replica applied what it knows of the
    commit index) or answers 404 for it (want=False). Returns the last status."""
    deadline = time.time() + deadline_s
    r = None
    while time.time() < deadline:
        r = node.call("GET", f"/v1/groups/{g}")
        if r is not None:
            if not want and r.status == 404:
                return None
            if want and r.status == 200:
                s = r.json()
                if s["commit_index"] > 0 and s["applied_index"] == s["commit_index"]:
                    return s
        time.sleep(0.1)
    raise AssertionError(f"node {node.id}: group {g} {'not hosted' if want else 'still hosted'} "
                         f"after {deadline_s} s: {r}")


def members_of(status):
    return sorted((m["node"], m["role"]) for m in status["members"])


@test
def test_membership_changes(c):
    """A fourth node joins a group as a learner (through a follower, relayed to the leader),
    catches up from the log and is promoted; a member is removed and stops hosting the group;
    writes and reads go on, every app applies the same sequence; bad changes get their errors;
    the CLI drives the same endpoints."""
    c.start()
    n1, n2, n3, n4 = c.nodes
    c.create_group(n1, 7, members=[1, 2, 3])
    data = {}
    write_batch(c, [n1, n2, n3], 7, "a", 5, data)
    leader = c.wait_leader(7, [n1, n2, n3])
    via = next(n for n in (n1, n2, n3) if n.id != leader)
    r = via.call("POST", "/v1/groups/7/members", json.dumps({"node": 4, "role": "learner"}))
    expect_status(r, 200, what="add node 4 as a learner through a follower")
    assert (4, "learner") in members_of(r.json()), f"status after adding: {r}"
    wait_hosting(n4, 7, True)
    check_all(c, n4, 7, data, stale=True)
    expect_status(via.call("POST", "/v1/groups/7/members", json.dumps({"node": 4,
                                                                         "role": "learner"})),
                  400, "bad_request", "add a learner twice")
    r = subprocess.run([RAFTD, "group", "add-member", "7", "4", "--endpoint",
                        f"http://127.0.0.1:{n1.client_port}"], capture_output=True, timeout=30)
    assert r.returncode == 0, f"raftd group add-member: {r.returncode} {r.stderr!r}"
    assert (4, "voter") in members_of(json.loads(r.stdout)), f"promoted: {r.stdout!r}"
    write_batch(c, c.nodes, 7, "b", 4, data)
    check_all(c, n4, 7, data)

    # Node 1 leaves the group (whoever leads): it stops hosting it; the other three serve.
    r = n3.call("DELETE", "/v1/groups/7/members/1")
    expect_status(r, 200, what="remove node 1")
    assert 1 not in [m for m, _ in members_of(r.json())], f"status after removing: {r}"
    wait_hosting(n1, 7, False)
    rest = [n2, n3, n4]
    c.wait_leader(7, rest)
    write_batch(c, rest, 7, "c", 4, data)
    for n in rest:
        check_all(c, n, 7, data)
    # The added node restarts: it hosts the group again from its WAL and the meta log, as a voter.
    n4.kill9()
    n4.start()
    c.wait_ready([n4])
    s = wait_hosting(n4, 7, True)
    assert (4, "voter") in members_of(s) and 1 not in [m for m, _ in members_of(s)], \
        f"node 4's view after its restart: {s}"
    check_all(c, n4, 7, data)
    r = n1.call("GET", "/v1/groups/7")
    assert r is not None and r.status == 404, f"node 1 hosts the group again: {r}"
    expect_status(n2.call("DELETE", "/v1/groups/7/members/1"), 400, "bad_request",
                  "remove a node that is not a member")
    expect_status(n2.call("POST", "/v1/groups/7/members", json.dumps({"node": 1})), 409,
                  "conflict", "add again a node that left the group")
    expect_status(n2.call("POST", "/v1/groups/7/members", json.dumps({"node": 9})), 400,
                  "bad_request", "add an unknown node")
    expect_status(n2.call("POST", "/v1/groups/7/members", json.dumps({"node": 2,
                                                                        "role": "voter"})),
                  400, "bad_request", "add an existing voter")
    expect_status(n2.call("POST", "/v1/groups/7/members", json.dumps({"node": 1,
                                                                        "role": "boss"})),
                  400, "bad_request", "a bad role")
    expect_status(n2.call("GET", "/v1/groups/7/members"), 405, "method_not_allowed",
                  "GET members")
    # One of the three remaining voters dies: two of three still commit.
    dead = c.wait_leader(7, rest)
    c.node(dead).kill9()
    alive = [n for n in rest if n.alive()]
    deadline = time.time() + OP_WAIT_S
    while c.wait_leader(7, alive) == dead:  # until the survivors elected one of them
        assert time.time() < deadline, "no new leader among the survivors"
        time.sleep(0.1)
    write_batch(c, alive, 7, "d", 3, data)
    for n in alive:
        check_all(c, n, 7, data)
        c.wait_converged(7, alive)
    seqs = {n.id: kv_changes(n).get(7, []) for n in alive}
    assert len({tuple(v) for v in seqs.values()}) == 1, f"apps applied different sequences"
    c.stop_all()


test_membership_changes.nodes = 4


class MisbehavingApp:
    """An HTTP proxy in front of a node's raftd-kv that, per group (its Raftd-Group header),
    answers 500 or hangs (no answer until released) instead of passing the call on; LastLogIndex
    always passes, so groups start."""

    def __init__(self, target_port):
        self.mode = {}  # "group id" -> "500" | "hang"
        self.release = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args):
                pass

            def handle_call(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                mode = proxy.mode.get(self.headers.get("Raftd-Group", ""))
                if mode is not None and self.path != "/LastLogIndex":
                    if mode == "hang":
                        proxy.release.wait(60)
                        self.close_connection = True
                        return
                    self.send_response(500)
                    self.send_header("Content-Length", "5")
                    self.end_headers()
                    self.wfile.write(b"boom\n")
                    return
                conn = http.client.HTTPConnection("127.0.0.1", target_port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in ("host", "content-length", "connection")}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    r = conn.getresponse()
                    data = r.read()
                finally:
                    conn.close()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("content-length", "connection", "date", "server"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = handle_call

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@test
def test_misbehaving_app_fences_its_group(c):
    """Every node's app answers 500 for one group and hangs for another: proposals to those two
    get 504 (committed, not applied), while a third group keeps taking writes and reads through
    every node; once the app behaves, every committed entry is applied exactly once."""
    proxies = []
    try:
        for n in c.nodes:
            n.start_app()
            p = MisbehavingApp(n.app_port)
            proxies.append(p)
            n.app_port = p.port  # raftd calls the proxy
        for n in c.nodes:
            n.write_config(c.nodes)
        for n in c.nodes:
            n.start()
        c.wait_ready()
        for g in (10, 11, 12):
            c.create_group(c.nodes[g % 3], g)
        data = {10: {}, 11: {}, 12: {}}
        for g in (10, 11, 12):
            write_batch(c, c.nodes, g, f"a{g}-", 2, data[g])
        for p in proxies:
            p.mode.update({"11": "500", "12": "hang"})
        stuck = {}

        def stuck_put(g):
            stuck[g] = c.nodes[0].propose(g, put_cmd(f"stuck{g}", "x"))

        threads = [threading.Thread(target=stuck_put, args=(g,)) for g in (11, 12)]
        for th in threads:
            th.start()
        write_batch(c, c.nodes, 10, "b10-", 6, data[10])
        for n in c.nodes:
            check_all(c, n, 10, data[10])
        for th in threads:
            th.join()
        for g in (11, 12):
            expect_status(stuck[g], 504, "timeout", f"propose to group {g}, whose app misbehaves")
            s = c.nodes[0].status(g)
            assert s["applied_index"] < s["commit_index"], f"group {g} applied past its app: {s}"
            data[g][f"stuck{g}"] = "x"  # appended: it commits and must apply once healed
        for p in proxies:
            p.mode.clear()
            p.release.set()
        for g in (10, 11, 12):
            c.wait_converged(g)
            for n in c.nodes:
                check_all(c, n, g, data[g], stale=True)
        for n in c.nodes:
            changes = kv_changes(n)
            for g in (11, 12):
                keys = [k for _, k, _ in changes.get(g, [])]
                assert keys.count(f"stuck{g}") == 1 and len(keys) == len(set(keys)), \
                    f"node {n.id}, group {g}: applied {keys}"
        c.stop_all()
    finally:
        for p in proxies:
            p.close()


# ---- main ----------------------------------------------------------------------------------


def main():
    global RAFTD, RAFTD_KV
    ap = argparse.ArgumentParser()
    ap.add_argument("raftd")
    ap.add_argument("raftd_kv")
    ap.add_argument("-k", default="")
    args = ap.parse_args()
    RAFTD, RAFTD_KV = os.path.abspath(args.raftd), os.path.abspath(args.raftd_kv)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    failed = []
    t_all = time.time()
    for fn in TESTS:
        if args.k not in fn.__name__:
            continue
        tmp = tempfile.mkdtemp(prefix="raftd-integ-")
        c = Cluster(tmp, n=getattr(fn, "nodes", 3))  # a case may ask for more nodes
        t0 = time.time()
        print(f"{fn.__name__} ...", flush=True)
        try:
            fn(c)
            print(f"  ok ({time.time() - t0:.1f} s)", flush=True)
        except Exception:  # noqa: BLE001
            failed.append(fn.__name__)
            print(f"  FAILED ({time.time() - t0:.1f} s)", flush=True)
            traceback.print_exc(file=sys.stdout)
            print(c.logs(), flush=True)
        finally:
            kill_all()
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(failed)} failed ({time.time() - t_all:.1f} s): {failed}" if failed else
          f"all passed ({time.time() - t_all:.1f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
