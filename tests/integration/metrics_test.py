#!/usr/bin/env python3
"""Process-level tests of raftd's operations interface (API.md section 5): GET /metrics in the
Prometheus text format 0.0.4, checked with a strict parser while a cluster takes writes, and
the systemd readiness notification (READY=1, STOPPING=1 on $NOTIFY_SOCKET).

Usage: metrics_test.py RAFTD RAFTD_KV [-k SUBSTRING]

Like cluster_test.py (whose helpers it uses): three raftd nodes on 127.0.0.1 in a fresh temp
dir per test, every process killed when its test ends; exits 0 when every test passed.
"""

import math
import os
import re
import signal
import socket
import sys
import time

import cluster_test as ct

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


# ---- the text format -----------------------------------------------------------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE_RE = re.compile(rf"^({NAME})(?:\{{(.*)\}})? (\S+)$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_value(s):
    if s in ("+Inf", "-Inf", "NaN"):
        return float(s.replace("Inf", "inf"))
    return float(s)


def parse_metrics(text):
    """{(name, ((label, value), ...)): float}, checking the format on the way: HELP and TYPE
    once per family, before its samples; every sample under the family opened last; escapes;
    histogram buckets cumulative and ending in le="+Inf" equal to _count."""
    assert text.endswith("\n"), "the exposition ends with a line feed"
    types, samples = {}, {}
    family = None
    for line in text.split("\n")[:-1]:
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert re.fullmatch(NAME, name), f"bad family name: {line}"
            assert name not in types, f"family {name} written twice"
            family = name
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name == family, f"TYPE without its HELP first: {line}"
            assert kind in ("counter", "gauge", "histogram"), f"bad type: {line}"
            types[name] = kind
            continue
        assert not line.startswith("#"), f"unexpected comment: {line}"
        m = SAMPLE_RE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, labels_text, value = m.group(1), m.group(2) or "", m.group(3)
        labels, rest = [], labels_text
        while rest:
            lm = LABEL_RE.match(rest)
            assert lm, f"bad labels in {line!r}"
            labels.append((lm.group(1), re.sub(r"\\(.)", lambda e: {"n": "\n"}.get(
                e.group(1), e.group(1)), lm.group(2))))
            rest = rest[lm.end():]
        base = family
        assert base is not None and family in types, f"sample before any TYPE: {line}"
        if types[family] == "histogram":
            assert name in (f"{base}_bucket", f"{base}_sum", f"{base}_count"), \
                f"{name} is not a sample of histogram {base}"
        else:
            assert name == base, f"{name} is not a sample of family {base}"
        key = (name, tuple(labels))
        assert key not in samples, f"sample written twice: {line}"
        samples[key] = parse_value(value)
    for fam, kind in types.items():
        if kind != "histogram":
            continue
        series = {}
        for (name, labels), v in samples.items():
            if name == f"{fam}_bucket":
                le = dict(labels)["le"]
                rest = tuple(kv for kv in labels if kv[0] != "le")
                series.setdefault(rest, []).append((parse_value(le), v))
        for rest, buckets in series.items():
            les = [le for le, _ in buckets]
            assert les == sorted(les) and les[-1] == math.inf, f"{fam}{rest}: buckets {les}"
            counts = [c for _, c in buckets]
            assert counts == sorted(counts), f"{fam}{rest}: buckets not cumulative {counts}"
            assert samples[(f"{fam}_count", rest)] == counts[-1], f"{fam}{rest}: +Inf != _count"
            assert (f"{fam}_sum", rest) in samples, f"{fam}{rest}: no _sum"
    return types, samples


def scrape(node):
    r = node.call("GET", "/metrics")
    assert r is not None and r.status == 200, f"GET /metrics on node {node.id}: {r}"
    ctype = r.header("Content-Type")
    assert ctype == "text/plain; version=0.0.4; charset=utf-8", f"Content-Type {ctype!r}"
    return parse_metrics(r.body.decode())


def value(samples, name, **labels):
    return samples.get((name, tuple(labels.items())), 0.0)


REQUIRED = {
    "raftd_group_term": "gauge", "raftd_group_commit_index": "gauge",
    "raftd_group_applied_index": "gauge", "raftd_group_leader": "gauge",
    "raftd_proposals_total": "counter", "raftd_proposal_duration_seconds": "histogram",
    "raftd_reads_total": "counter", "raftd_read_duration_seconds": "histogram",
    "raftd_wal_bytes_written_total": "counter", "raftd_wal_fsyncs_total": "counter",
    "raftd_wal_fsync_duration_seconds": "histogram", "raftd_wal_batch_bytes": "histogram",
    "raftd_wal_cache_hits_total": "counter", "raftd_wal_file_reads_total": "counter",
    "raftd_group_sleepers_woken_total": "counter",
    "raftd_app_call_duration_seconds": "histogram", "raftd_app_call_errors_total": "counter",
    "raftd_peer_connected": "gauge", "raftd_transport_messages_sent_total": "counter",
    "raftd_transport_messages_dropped_total": "counter",
    "raftd_transport_heartbeats_sent_total": "counter",
    "raftd_transport_heartbeats_coalesced_total": "counter",
    "raftd_transport_frames_sent_total": "counter",
    "raftd_snapshots_sent_total": "counter", "raftd_snapshots_received_total": "counter",
    "raftd_snapshots_installed_total": "counter", "raftd_log_compactions_total": "counter",
}


# ---- the tests -----------------------------------------------------------------------------


@test
def test_metrics_move_with_writes(c):
    """Every family of API.md section 5 is there in a well-formed exposition; writes and reads
    move the proposal, read, WAL, app and transport numbers; a client that gives up on its
    proposal is counted as aborted (the server noticed it leave)."""
    c.start()
    n1, n2, _ = c.nodes
    c.create_group(n1, 5)
    leader = c.wait_leader(5)
    types, before = scrape(n1)
    for name, kind in REQUIRED.items():
        assert types.get(name) == kind, f"{name}: want a {kind}, got {types.get(name)}"
    assert value(before, "raftd_group_leader", group="0") in (0, 1)
    for peer in ("2", "3"):
        assert ("raftd_peer_connected", (("peer", peer),)) in before, f"no state of peer {peer}"
    assert ("raftd_peer_connected", (("peer", "1"),)) not in before, "self listed as a peer"
    for i in range(5):
        c.put(n1, 5, f"k{i}", f"v{i}")
    c.read_until(n1, 5, "k4", "v4")
    c.wait_converged(5)
    _, after = scrape(n1)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("raftd_proposals_total", outcome="200") >= 5, "proposals not counted"
    assert moved("raftd_proposal_duration_seconds_count") >= 5
    assert moved("raftd_proposal_duration_seconds_sum") > 0
    assert moved("raftd_reads_total", outcome="200") >= 1, "reads not counted"
    assert moved("raftd_group_commit_index", group="5") >= 5
    assert value(after, "raftd_group_applied_index", group="5") == \
        value(after, "raftd_group_commit_index", group="5") == n1.status(5)["commit_index"]
    assert moved("raftd_wal_bytes_written_total") > 0 and moved("raftd_wal_fsyncs_total") > 0
    assert moved("raftd_wal_fsync_duration_seconds_count") > 0
    assert moved("raftd_wal_batch_bytes_count") > 0
    assert moved("raftd_app_call_duration_seconds_count", call="UpdateEntries") >= 1
    assert moved("raftd_app_call_duration_seconds_count", call="GetEntry") >= 1
    assert moved("raftd_transport_messages_sent_total") > 0
    assert moved("raftd_reactor_turns_total") > 0 and moved("raftd_reactor_completions_total") > 0
    assert ("raftd_reactor_recv_buffers_exhausted_total", ()) in after
    # Every input to a group announces itself (mark_dirty): the host's safety sweep finds none
    # it was not told about.
    assert value(after, "raftd_group_sleepers_woken_total") == 0, \
        "a sleeping group had work no input announced"
    assert value(after, "raftd_peer_connected", peer="2") == 1
    leaders = sum(value(scrape(n)[1], "raftd_group_leader", group="5") for n in c.nodes)
    assert leaders == 1, f"group 5: {leaders} nodes export leader=1 (leader is {leader})"

    # Node 1's app down: a proposal through node 1 commits but is not applied there, so it
    # waits; its client gives up after 1 s and closes. The server must abort the exchange.
    n1.kill_app()
    r = n1.propose(5, ct.put_cmd("given-up", "x"), timeout=1)
    assert r is None, f"a proposal through a node without its app was answered: {r}"
    deadline = time.time() + 10
    while time.time() < deadline:
        _, now = scrape(n1)
        if value(now, "raftd_proposals_total", outcome="aborted") >= 1:
            break
        time.sleep(0.1)
    assert value(now, "raftd_proposals_total", outcome="aborted") == 1, \
        "the proposal whose client left is not counted as aborted"
    assert value(now, "raftd_http_exchanges_aborted_total") >= 1
    # The apply is being retried against the missing app: its errors show.
    deadline = time.time() + 10
    while value(now, "raftd_app_call_errors_total", call="UpdateEntries") == 0 and \
            time.time() < deadline:
        time.sleep(0.2)
        _, now = scrape(n1)
    assert value(now, "raftd_app_call_errors_total", call="UpdateEntries") > 0
    n1.start_app()
    c.wait_converged(5)
    ct.expect_status(n2.call("POST", "/metrics"), 405, "method_not_allowed", "POST /metrics")
    c.stop_all()


def notify_socket(tmp, abstract):
    """A unix datagram socket for $NOTIFY_SOCKET: a path in tmp, or an abstract name."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = f"@raftd-metrics-test-{os.getpid()}-{time.time_ns()}"
        s.bind("\0" + name[1:])
    else:
        name = os.path.join(tmp, "notify.sock")
        s.bind(name)
    return s, name


def start_with_notify(node, name):
    os.environ["NOTIFY_SOCKET"] = name
    try:
        node.start()
    finally:
        del os.environ["NOTIFY_SOCKET"]


def receive(sock, want, deadline_s):
    """The datagrams received until one holds the line `want` (or the deadline)."""
    got = []
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        sock.settimeout(max(0.05, deadline - time.time()))
        try:
            msg = sock.recv(4096).decode()
        except socket.timeout:
            break
        got.append(msg)
        if want in msg.split("\n"):
            return got
    raise AssertionError(f"no {want!r} on the notify socket within {deadline_s} s: {got}")


@test
def test_systemd_notify(c):
    """Started with $NOTIFY_SOCKET (a path for node 1, an abstract name for node 2), raftd sends
    READY=1 once /readyz answers 200, not before, and STOPPING=1 on SIGTERM."""
    n1, n2, n3 = c.nodes
    s1, name1 = notify_socket(c.tmp, abstract=False)
    s2, name2 = notify_socket(c.tmp, abstract=True)
    try:
        for n in c.nodes:
            n.start_app()
        for n in c.nodes:
            n.write_config(c.nodes)
        # Node 1 alone has no quorum for the meta group: not ready, so no READY=1.
        start_with_notify(n1, name1)
        s1.settimeout(3)
        early = []
        try:
            while True:
                early.append(s1.recv(4096).decode())
        except socket.timeout:
            pass
        assert not any("READY=1" in m.split("\n") for m in early), f"READY=1 too early: {early}"
        r = n1.call("GET", "/readyz", timeout=5)
        assert r is not None and r.status == 503, f"node 1 alone is ready: {r}"
        start_with_notify(n2, name2)
        n3.start()
        got = receive(s1, "READY=1", ct.START_WAIT_S)
        r = n1.call("GET", "/readyz", timeout=5)
        assert r is not None and r.status == 200, f"READY=1 sent, /readyz {r}"
        assert any(m.startswith("STATUS=") for m in early + got), f"no STATUS: {early + got}"
        receive(s2, "READY=1", ct.START_WAIT_S)
        c.wait_ready()
        n2.proc.send_signal(signal.SIGTERM)
        receive(s2, "STOPPING=1", 20)
        assert n2.proc.wait(timeout=20) == 0
    finally:
        s1.close()
        s2.close()
    c.stop_all()


# ---- main ----------------------------------------------------------------------------------


def main():
    ct.TESTS[:] = TESTS  # cluster_test.py's runner: a fresh cluster and temp dir per case
    return ct.main()


if __name__ == "__main__":
    sys.exit(main())
