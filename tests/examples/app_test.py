#!/usr/bin/env python3
"""Black-box tests of an example application against the application contract (API.md section 3)
and the KV command language (examples/README.md), over HTTP on 127.0.0.1.

Usage: app_test.py python APP_PY   (examples/python-sqlite/app.py, run with this interpreter)
       app_test.py kv RAFTD_KV     (the built examples/kv/raftd-kv)
       [--probe APP_CLIENT_PROBE]  (tests/examples/app_client_probe: raftd's own app client)
       [-k SUBSTRING]              (only the tests whose name contains it)

Each test starts its own application process on a free port with a fresh temp directory.
Exits 0 when every test passed, 1 otherwise.
"""

import argparse
import base64
import http.client
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

U64_MAX = 2**64 - 1
BINARY = "application/vnd.raftd.entries"
JSON = "application/json"
START_WAIT_S = 30  # generous: the kv binary runs under ASan on a shared machine


class App:
    """One application process; restartable on the same data."""

    def __init__(self, kind, target, tmp, token=None, sync_mode=False):
        self.kind, self.target, self.tmp = kind, target, tmp
        self.token, self.sync_mode = token, sync_mode
        self.proc = None
        self.port = None

    def argv(self):
        if self.kind == "python":
            argv = [sys.executable, self.target, "--db", os.path.join(self.tmp, "kv.db")]
        else:
            argv = [self.target, "--data-dir", os.path.join(self.tmp, "data")]
            if self.sync_mode:
                argv.append("--sync-mode")
        argv += ["--listen", "127.0.0.1:0"]
        if self.token is not None:
            argv += ["--token", self.token]
        return argv

    def start(self):
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.PIPE)
        ready, _, _ = select.select([self.proc.stdout], [], [], START_WAIT_S)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("listening on "):
            self.proc.kill()
            raise AssertionError(f"app did not start (first line {line!r})")
        self.port = int(line.strip().rsplit(":", 1)[1])
        return self

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        """SIGTERM; the app must exit 0 (under ASan this also checks for leaks)."""
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=START_WAIT_S)
        assert rc == 0, f"exit status {rc} after SIGTERM"

    def connect(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=START_WAIT_S)

    def call(self, method, path, group=1, body=b"", headers=None, auth=True, conn=None):
        h = {}
        if group is not None:
            h["Raftd-Group"] = str(group)
        if auth and self.token is not None:
            h["Authorization"] = "Bearer " + self.token
        h.update(headers or {})
        own = conn is None
        conn = conn or self.connect()
        try:
            if isinstance(body, list):  # a list of chunks: sent chunked
                conn.request(method, path, body=iter(body), headers=h, encode_chunked=True)
            else:
                conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            return r.status, r.getheader("Content-Type"), r.read()
        finally:
            if own:
                conn.close()

    # ---- the contract's calls ----

    def last_index(self, group=1):
        status, _, body = self.call("GET", "/LastLogIndex", group)
        assert status == 200, (status, body)
        return int(body)

    def update(self, entries, last=None, group=1, encoding="binary"):
        """Sends a batch; returns [(index, result bytes)] as decoded from the answer."""
        last = entries[-1][0] if last is None else last
        ctype = BINARY if encoding == "binary" else JSON
        body = binary_batch(entries) if encoding == "binary" else json_batch(last, entries)
        status, rtype, rbody = self.call(
            "POST",
            "/UpdateEntries",
            group,
            body,
            {"Content-Type": ctype, "Raftd-Last-Index": str(last)},
        )
        assert status == 200, (status, rbody)
        assert rtype == ctype, rtype
        return decode_results(rtype, rbody, entries)

    def get(self, key, group=1):
        status, _, body = self.call("GET", "/GetEntry", group, cmd("get", key))
        if status == 404:
            assert json.loads(body) == {"ok": False, "error": "not_found"}, body
            return None
        assert status == 200, (status, body)
        return body.decode()


def binary_batch(entries):
    return b"".join(struct.pack("<QI", i, len(d)) + d for i, d in entries)


def json_batch(last, entries):
    doc = {
        "last_index": last,
        "entries": [{"index": i, "data": base64.b64encode(d).decode()} for i, d in entries],
    }
    return json.dumps(doc).encode()


def decode_results(ctype, body, entries):
    """One result per entry, same indexes, same order (an empty body: all results empty)."""
    if body == b"":
        return [(i, b"") for i, _ in entries]
    out = []
    if ctype == BINARY:
        off = 0
        while off < len(body):
            i, n = struct.unpack_from("<QI", body, off)
            out.append((i, body[off + 12 : off + 12 + n]))
            off += 12 + n
        assert off == len(body), "trailing bytes in the results"
    else:
        doc = json.loads(body)
        out = [(r["index"], base64.b64decode(r["data"])) for r in doc["results"]]
    assert [i for i, _ in out] == [i for i, _ in entries], (out, entries)
    return out


def cmd(op, key, value=None, expected="absent"):
    c = {"op": op, "key": key}
    if value is not None:
        c["value"] = value
    if expected != "absent":
        c["expected"] = expected
    return json.dumps(c).encode()


def put(k, v):
    return cmd("put", k, v)


def ok(prev):
    """The result of a put, delete or successful cas, byte for byte (examples/README.md)."""
    return json.dumps({"ok": True, "prev": prev}, separators=(",", ":"),
                      ensure_ascii=False).encode()


def cas_failed(prev):
    return json.dumps({"error": "cas_failed", "ok": False, "prev": prev}, separators=(",", ":"),
                      ensure_ascii=False).encode()


BAD_COMMAND = b'{"error":"bad_command","ok":false}'


class Skip(Exception):
    """The test does not apply to this example (reported as skip, not as a pass)."""


# ---- the tests: each takes a started App ----


def test_last_log_index_starts_at_zero(app):
    assert app.last_index(1) == 0
    assert app.last_index(U64_MAX) == 0


def check_batch_applies(app, encoding):
    entries = [
        (1, put("a", "1")),
        (2, put("b", "2")),
        (3, put("a", "3")),
        (4, cmd("delete", "b")),
        (5, cmd("delete", "zz")),
        (6, put("ключ", "значение ✓")),
    ]
    results = app.update(entries, encoding=encoding)
    assert [r for _, r in results] == [
        ok(None), ok(None), ok("1"), ok("2"), ok(None), ok(None)], results
    assert app.last_index() == 6
    assert app.get("a") == "3"
    assert app.get("b") is None
    assert app.get("ключ") == "значение ✓"


def test_binary_batch_applies_in_order(app):
    check_batch_applies(app, "binary")


def test_json_batch_applies_in_order(app):
    check_batch_applies(app, "json")


def test_last_index_beyond_entries_is_recorded(app):
    # Entries 3 and 5 are the app's; 1, 2, 4, 6 and 7 were raftd's own (no-ops, membership).
    results = app.update([(3, put("a", "x")), (5, put("a", "y"))], last=7)
    assert [r for _, r in results] == [ok(None), ok("x")]
    assert app.last_index() == 7
    # A batch of raftd's own entries only: no entry, the index still moves.
    assert app.update([], last=9, encoding="json") == []
    assert app.last_index() == 9
    assert app.update([], last=12) == []
    assert app.last_index() == 12
    # Entry 10 is at or below the stored index: ignored.
    results = app.update([(10, put("a", "z"))], last=12)
    assert results == [(10, b"")]
    assert app.get("a") == "y"


def test_redelivered_entries_are_ignored(app):
    app.update([(1, put("a", "1")), (2, put("a", "2"))])
    # A retry overlapping what was applied: 1 and 2 are not applied again, their results are
    # empty; 3 is new.
    results = app.update([(1, put("a", "1")), (2, put("a", "2")), (3, put("a", "3"))])
    assert results == [(1, b""), (2, b""), (3, ok("2"))], results
    assert app.get("a") == "3"
    # Wholly old, and Raftd-Last-Index below the stored one: nothing moves back.
    results = app.update([(2, put("a", "old"))], last=2, encoding="json")
    assert results == [(2, b"")], results
    assert app.last_index() == 3
    assert app.get("a") == "3"


def test_get_entry(app):
    app.update([(1, put("k", "v")), (2, put("empty", ""))])
    assert app.get("k") == "v"
    assert app.get("empty") == ""
    assert app.get("missing") is None
    status, ctype, body = app.call("GET", "/GetEntry", 1, cmd("get", "k"))
    assert (status, ctype, body) == (200, "application/octet-stream", b"v")
    for bad in [b"", b"not json", b"[]", cmd("put", "k", "v"), b'{"op":"get"}',
                b'{"op":"get","key":5}']:
        status, _, body = app.call("GET", "/GetEntry", 1, bad)
        assert status == 400, (bad, status)
        assert body == b'{"error":"bad_query","ok":false}', body


def test_cas_semantics(app):
    results = app.update([
        (1, cmd("cas", "a", "1", expected=None)),    # absent, expected absent: set
        (2, cmd("cas", "a", "2", expected=None)),    # present, expected absent: fails
        (3, cmd("cas", "a", "2", expected="x")),     # wrong expected value: fails
        (4, cmd("cas", "a", "2", expected="1")),     # right: set
        (5, cmd("cas", "b", "1", expected="")),      # absent is not the empty string
        (6, cmd("cas", "a", "3")),                   # no "expected": a bad command
    ])
    assert [r for _, r in results] == [
        ok(None), cas_failed("1"), cas_failed("1"), ok("1"), cas_failed(None), BAD_COMMAND,
    ], results
    assert app.get("a") == "2"
    assert app.get("b") is None
    assert app.last_index() == 6


def test_bad_commands_are_results(app):
    bad = [b"", b"not json", b"[1]", b'{"op":"put","key":"a"}', b'{"op":"put","value":"v"}',
           b'{"op":"put","key":1,"value":"v"}', b'{"op":"get","key":"a"}',
           b'{"op":"drop","key":"a"}', b'{"op":"put","key":"a","value":"v","x":NaN}',
           b"\xff\xfe", b'{"op":"put","key":"\\ud800","value":"v"}']
    entries = [(i + 1, d) for i, d in enumerate(bad)] + [(len(bad) + 1, put("a", "ok"))]
    results = app.update(entries)
    assert [r for _, r in results] == [BAD_COMMAND] * len(bad) + [ok(None)], results
    assert app.last_index() == len(bad) + 1
    assert app.get("a") == "ok"


def test_groups_are_independent(app):
    app.update([(4, put("a", "g1"))], group=1)
    app.update([(9, put("a", "g2"))], group=2, encoding="json")
    app.update([(1, put("a", "gmax"))], group=U64_MAX)
    assert (app.last_index(1), app.last_index(2), app.last_index(U64_MAX)) == (4, 9, 1)
    assert (app.get("a", 1), app.get("a", 2), app.get("a", U64_MAX)) == ("g1", "g2", "gmax")
    assert app.get("a", 3) is None
    # Index 5 is new for group 1 although group 2 is past it.
    assert app.update([(5, put("a", "g1b"))], group=1) == [(5, ok("g1"))]
    assert app.get("a", 2) == "g2"


def test_restart_after_kill9_keeps_data_and_index(app):
    app.update([(1, put("a", "1")), (2, put("b", "2"))])
    app.update([(3, cmd("delete", "a"))], last=5, encoding="json")
    app.update([(7, put("c", "3"))], group=2)
    app.kill9()
    app.start()
    assert (app.last_index(1), app.last_index(2)) == (5, 7)
    assert (app.get("a"), app.get("b"), app.get("c", 2)) == (None, "2", "3")
    # raftd re-delivers from the reported index on: nothing applies twice.
    assert app.update([(3, put("a", "again")), (6, put("a", "6"))]) == [(3, b""), (6, ok(None))]
    app.kill9()
    app.start()
    assert app.last_index(1) == 6
    assert app.get("a") == "6"


def test_malformed_batches_change_nothing(app):
    app.update([(1, put("a", "1"))], last=2)
    rec = lambda i, d: struct.pack("<QI", i, len(d)) + d  # noqa: E731
    good = rec(3, put("a", "bad"))
    b64 = base64.b64encode(put("a", "bad")).decode()
    cases = [
        # (Content-Type, Raftd-Last-Index, body, expected status)
        (BINARY, "3", good + b"\x04\x00", 400),                     # truncated record head
        (BINARY, "4", good + rec(4, b"xyz")[:-1], 400),             # truncated record data
        (BINARY, "5", good + rec(5, b"x")[:12] + b"", 400),         # length beyond the body
        (BINARY, "4", rec(4, b"x") + good, 400),                    # decreasing indexes
        (BINARY, "3", good + good, 400),                            # repeated index
        (BINARY, "3", rec(0, b"x") + good, 400),                    # index 0
        (BINARY, "2", good, 400),                                   # entry above Raftd-Last-Index
        (BINARY, None, good, 400),                                  # no Raftd-Last-Index
        (BINARY, "abc", good, 400),
        (BINARY, "-3", good, 400),
        (BINARY, str(2**64), good, 400),
        (JSON, "3", b"not json", 400),
        (JSON, "3", b"[]", 400),
        (JSON, "3", b'{"last_index":3}', 400),                      # no entries
        (JSON, "3", b'{"entries":[{"index":3,"data":""}]}', 400),    # no last_index
        (JSON, "3", b'{"last_index":3,"entries":[{"index":3,"data":"%%%"}]}', 400),  # not base64
        (JSON, "3", b'{"last_index":3,"entries":[{"index":3,"data":"YQ"}]}', 400),  # no padding
        (JSON, "3", b'{"last_index":3,"entries":[{"index":3,"data":"YR=="}]}', 400),  # pad bits
        (JSON, "3", b'{"last_index":3,"entries":[{"index":"3","data":""}]}', 400),
        (JSON, "3", b'{"last_index":3,"entries":[{"index":-3,"data":""}]}', 400),
        (JSON, "3", b'{"last_index":3,"entries":[{"index":3.0,"data":""}]}', 400),
        (JSON, "3", b'{"last_index":3,"entries":[{"index":3}]}', 400),
        (JSON, "3", b'{"last_index":3,"entries":[{"index":3,"data":"eA=="},'
                    b'{"index":3,"data":"eA=="}]}', 400),             # repeated index
        (JSON, "3", ('{"last_index":4,"entries":[{"index":3,"data":"%s"}]}' % b64).encode(), 400),
        ("text/plain", "3", good, 415),
        (None, "3", good, 415),
    ]
    for ctype, last, body, want in cases:
        headers = {}
        if ctype is not None:
            headers["Content-Type"] = ctype
        if last is not None:
            headers["Raftd-Last-Index"] = last
        status, _, rbody = app.call("POST", "/UpdateEntries", 1, body, headers)
        assert status == want, (ctype, last, body, status, rbody)
        assert json.loads(rbody)["error"], rbody
        assert app.last_index() == 2, (ctype, last, body)
        assert app.get("a") == "1", (ctype, last, body)
    # Raftd-Group missing or not a u64.
    for group in [None, "x", "-1", str(2**64)]:
        status, _, _ = app.call("POST", "/UpdateEntries", group, good,
                                {"Content-Type": BINARY, "Raftd-Last-Index": "3"})
        assert status == 400, group
        status, _, _ = app.call("GET", "/LastLogIndex", group)
        assert status == 400, group
    assert app.last_index() == 2
    # The same batch, well formed, applies.
    assert app.update([(3, put("a", "good"))]) == [(3, ok("1"))]


def test_token_is_checked(app):
    app.token = "s3cret"
    app.stop()
    app.start()
    headers = {"Content-Type": BINARY, "Raftd-Last-Index": "1"}
    batch = binary_batch([(1, put("a", "1"))])
    for auth in [None, "Bearer wrong", "Bearer s3cret2", "Basic s3cret", "bearer s3cret"]:
        h = dict(headers)
        if auth is not None:
            h["Authorization"] = auth
        status, _, body = app.call("POST", "/UpdateEntries", 1, batch, h, auth=False)
        assert status == 401, (auth, status)
        assert json.loads(body)["error"] == "unauthorized"
        status, _, _ = app.call("GET", "/LastLogIndex", 1, auth=False,
                                headers={} if auth is None else {"Authorization": auth})
        assert status == 401, auth
    assert app.last_index() == 0
    assert app.update([(1, put("a", "1"))]) == [(1, ok(None))]
    assert app.get("a") == "1"


def test_sync_and_routing(app):
    app.update([(1, put("a", "1"))])
    status, _, _ = app.call("POST", "/Sync", 1)
    assert status == 200
    for path in ["/PrepareSnapshot", "/SaveSnapshot", "/RecoverFromSnapshot"]:
        status, _, _ = app.call("POST", path, None, b"x", {"Raftd-Index": "1"})
        assert status == 400, (path, status)  # every call names its group
        status, _, _ = app.call("GET", path, 1)
        assert status == 405, (path, status)
    for path in ["/PrepareSnapshot", "/RecoverFromSnapshot"]:
        for index in [None, "x", "-1", str(2**64)]:
            h = {} if index is None else {"Raftd-Index": index}
            status, _, _ = app.call("POST", path, 1, b"", h)
            assert status == 400, (path, index, status)
    status, _, _ = app.call("GET", "/Nope", 1)
    assert status == 404
    status, _, _ = app.call("POST", "/LastLogIndex", 1)
    assert status == 405
    status, _, _ = app.call("GET", "/UpdateEntries", 1)
    assert status == 405
    assert app.last_index() == 1


# ---- snapshots: PrepareSnapshot, SaveSnapshot, RecoverFromSnapshot (API.md section 3) ----


def prepare(app, index, group=1):
    status, _, body = app.call("POST", "/PrepareSnapshot", group, b"", {"Raftd-Index": str(index)})
    assert status == 200, (status, body)
    assert 0 < len(body) <= 64 * 1024, body
    return body


def save(app, context, group=1, out=None):
    """SaveSnapshot's answer: (status, headers, body); with `out`, the body is streamed into that
    file in pieces and `body` is its length."""
    h = {"Raftd-Group": str(group)}
    if app.token is not None:
        h["Authorization"] = "Bearer " + app.token
    conn = app.connect()
    try:
        conn.request("POST", "/SaveSnapshot", body=context, headers=h)
        r = conn.getresponse()
        headers = {k.lower(): v for k, v in r.getheaders()}
        if out is None or r.status != 200:
            return r.status, headers, r.read()
        n = 0
        while True:
            piece = r.read(1 << 16)
            if not piece:
                return r.status, headers, n
            out.write(piece)
            n += len(piece)
    finally:
        conn.close()


def snapshot_of(app, index, group=1):
    status, headers, body = save(app, prepare(app, index, group), group)
    assert status == 200, (status, body)
    if app.kind == "kv":
        assert headers.get("transfer-encoding") == "chunked", headers
    return body


def recover(app, index, snapshot, group=1, chunked=False):
    """RecoverFromSnapshot with Content-Length (or chunked, in pieces of 1000 bytes); `snapshot`
    is bytes or a file opened for reading."""
    if chunked:
        pieces = [snapshot[i:i + 1000] for i in range(0, len(snapshot), 1000)]
        status, _, body = app.call("POST", "/RecoverFromSnapshot", group, pieces,
                                   {"Raftd-Index": str(index)})
        return status, body
    if isinstance(snapshot, bytes):
        length = len(snapshot)
    else:
        length = os.fstat(snapshot.fileno()).st_size
    status, _, body = app.call("POST", "/RecoverFromSnapshot", group, snapshot,
                               {"Raftd-Index": str(index), "Content-Length": str(length)})
    return status, body


def second_app(app, tmp):
    return App(app.kind, app.target, tmp, token=app.token, sync_mode=app.sync_mode).start()


def test_snapshot_round_trip(app):
    # The leader's app: group 1 at index 7, group 2 beside it.
    app.update([(1, put("a", "1")), (2, put("b", "2")), (3, put("", "empty key")),
                (4, put("ключ", "значение")), (5, cmd("delete", "b")), (6, put("e", ""))], last=7)
    app.update([(1, put("other", "group 2"))], group=2)
    context = prepare(app, 7)
    # Entries after Prepare do not reach the snapshot: it is of state 7.
    app.update([(8, put("a", "after")), (9, put("late", "x"))])
    status, headers, snap = save(app, context)
    assert status == 200, (status, snap)
    if app.kind == "kv":
        assert headers.get("transfer-encoding") == "chunked", headers
        assert "content-length" not in headers, headers
    want = {"a": "1", "": "empty key", "ключ": "значение", "e": ""}
    with tempfile.TemporaryDirectory(prefix="raftd-example-") as tmp2:
        other = second_app(app, tmp2)
        try:
            # The follower's app had other state in group 1 and in group 3.
            other.update([(1, put("stale", "s")), (2, put("a", "old"))], group=1)
            other.update([(4, put("z", "group 3"))], group=3)
            status, body = recover(other, 7, snap)
            assert status == 200, (status, body)
            for restart in [False, True]:
                if restart:
                    other.kill9()
                    other.start()
                assert other.last_index(1) == 7
                for k, v in want.items():
                    assert other.get(k) == v, (restart, k)
                assert other.get("stale") is None and other.get("b") is None
                assert other.get("late") is None
                assert (other.last_index(3), other.get("z", 3)) == (4, "group 3")
                assert other.last_index(2) == 0
            # raftd goes on from 8 on the recovered state.
            assert other.update([(8, put("a", "after"))]) == [(8, ok("1"))]
            other.kill9()
            other.start()
            assert (other.last_index(1), other.get("a")) == (8, "after")
            other.stop()
        finally:
            if other.proc.poll() is None:
                other.proc.kill()
                other.proc.wait()
    # An empty group's snapshot recovers to an empty group at its index.
    empty = snapshot_of(app, 0, group=5)
    status, body = recover(app, 0, empty, group=5)
    assert status == 200, (status, body)
    assert app.last_index(5) == 0


def test_snapshot_contexts(app):
    app.update([(1, put("a", "1"))])
    # The app's state is at 1: a Prepare at another index is refused.
    for index in [0, 2]:
        status, _, _ = app.call("POST", "/PrepareSnapshot", 1, b"", {"Raftd-Index": str(index)})
        assert status == 409, (index, status)
    contexts = []
    for i in range(2, 6):
        app.update([(i, put("a", str(i)))])
        contexts.append(prepare(app, i))
    assert len(set(contexts)) == len(contexts), contexts
    # A few contexts are kept per group, the oldest dropped: the first of four is gone.
    status, _, body = save(app, contexts[0])
    assert status == 404, (status, body)
    for bad, group in [(b"no such context", 1), (contexts[-1], 2), (b"", 1)]:
        status, _, body = save(app, bad, group)
        assert status == 404, (bad, group, status, body)
    # Each kept context is the state at its own index (recovered here, the group goes back to
    # it: a snapshot sets the index to exactly its own).
    for i, c in zip(range(3, 6), contexts[1:]):
        status, _, snap = save(app, c)
        assert status == 200, (status, snap)
        status, body = recover(app, i, snap, chunked=(i == 4))
        assert status == 200, (status, body)
        assert (app.last_index(), app.get("a")) == (i, str(i))
        status, _, again = save(app, c)
        if app.kind == "kv":
            # Its images stay in memory until dropped: a retried Save gives the same bytes.
            assert (status, again) == (200, snap), status
        else:
            # A snapshot file is deleted once it was sent whole.
            assert status == 404, status
    if app.kind == "python":
        left = os.listdir(os.path.join(app.tmp, "kv.db.snapshots"))
        assert left == [], left


def test_snapshot_malformed_is_refused(app):
    app.update([(1, put("a", "1")), (2, put("b", "2" * 5000)), (3, put("c", "3"))])
    snap = snapshot_of(app, 3)
    app.update([(5, put("mine", "m"))], group=2)
    cases = [
        ("empty", snap[:0], 3, 2),
        ("garbage", b"x" * 200, 3, 2),
        ("wrong index", snap, 4, 2),
        ("of another group", snap, 3, 2),  # group 1's snapshot into group 2
        ("trailing bytes", snap + b"\0", 3, 2),
    ]
    for cut in [1, 16, len(snap) // 2, len(snap) - 1]:
        cases.append((f"cut to {cut}", snap[:cut], 3, 2))
    if app.kind == "kv":  # its format has a checksum over every byte (examples/kv/README.md)
        for pos in [0, 9, 17, 30, 40, len(snap) // 2, len(snap) - 20, len(snap) - 1]:
            flipped = bytearray(snap)
            flipped[pos] ^= 0x01
            cases.append((f"bit flipped at {pos}", bytes(flipped), 3, 2))
    for what, body, index, group in cases:
        status, rbody = recover(app, index, body, group=group)
        assert status == 400, (what, status, rbody)
        assert json.loads(rbody)["error"], rbody
        assert app.last_index(2) == 5, what
        assert (app.get("mine", 2), app.get("a", 2)) == ("m", None), what
    # The same snapshot, whole and at its index, is taken.
    status, body = recover(app, 3, snap)
    assert status == 200, (status, body)
    app.kill9()
    app.start()
    assert (app.last_index(1), app.get("c"), app.last_index(2)) == (3, "3", 5)


def test_snapshot_tens_of_megabytes(app):
    # 24 MiB in 384 values of 64 KiB, streamed out and in through a file on each side.
    value = lambda i: (f"{i:05d}" * 13108)[:65536]  # noqa: E731
    n, per_batch = 384, 48
    for b in range(n // per_batch):
        first = b * per_batch + 1
        app.update([(i, put(f"k{i}", value(i))) for i in range(first, first + per_batch)])
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="raftd-example-") as tmp2:
        path = os.path.join(tmp2, "snapshot")
        with open(path, "wb") as f:
            status, headers, size = save(app, prepare(app, n), out=f)
        assert status == 200, (status, size)
        assert size > n * 65536, size
        os.mkdir(os.path.join(tmp2, "app"))
        other = second_app(app, os.path.join(tmp2, "app"))
        try:
            with open(path, "rb") as f:
                status, body = recover(other, n, f)
            assert status == 200, (status, body)
            print(f"     {size} bytes saved and recovered in {time.monotonic() - t0:.1f}s",
                  flush=True)
            other.kill9()
            other.start()
            assert other.last_index() == n
            for i in range(1, n + 1):
                assert other.get(f"k{i}") == value(i), i
            other.stop()
        finally:
            if other.proc.poll() is None:
                other.proc.kill()
                other.proc.wait()


def raw_request(app, head_lines, body=b"", read_answer=True):
    """Sends a request head (and body) over a plain socket; returns (socket, status or None)."""
    sock = socket.create_connection(("127.0.0.1", app.port), timeout=START_WAIT_S)
    head = "".join(line + "\r\n" for line in head_lines)
    if app.token is not None:
        head += f"Authorization: Bearer {app.token}\r\n"
    sock.sendall(head.encode() + b"\r\n" + body)
    if not read_answer:
        return sock, None
    line = sock.makefile("rb").readline()
    return sock, int(line.split()[1])


def big_group(app, n, group=1):
    """n values of 64 KiB in group `group`, at index n; returns {key: value}."""
    want = {}
    for first in range(1, n + 1, 16):
        batch = []
        for i in range(first, min(first + 16, n + 1)):
            want[f"k{i}"] = (f"{i:05d}" * 13108)[:65536]
            batch.append((i, put(f"k{i}", want[f"k{i}"])))
        app.update(batch, group=group)
    return want


def test_snapshot_save_abandoned_midway(app):
    big_group(app, 64)  # 4 MiB: more than the socket buffers hold
    context = prepare(app, 64)
    h = ["POST /SaveSnapshot HTTP/1.1", "Host: x", "Raftd-Group: 1",
         f"Content-Length: {len(context)}"]
    sock, status = raw_request(app, h, context)
    assert status == 200, status
    sock.close()  # gone after the first bytes
    assert app.last_index() == 64
    # The context is still there (kv: kept in memory; python: the file is kept for a retry).
    status, _, snap = save(app, context)
    assert status == 200, status
    assert len(snap) > 64 * 65536
    app.update([(65, put("after", "x"))])
    assert app.last_index() == 65


def test_body_over_the_limit_is_refused(app):
    # Only a snapshot may be larger than a batch (64 MiB): the head is answered, no body sent.
    for path, extra in [("/UpdateEntries", [f"Content-Type: {BINARY}", "Raftd-Last-Index: 1"]),
                        ("/GetEntry", []), ("/SaveSnapshot", [])]:
        method = "GET" if path == "/GetEntry" else "POST"
        h = [f"{method} {path} HTTP/1.1", "Host: x", "Raftd-Group: 1",
             f"Content-Length: {64 * 1024 * 1024 + 1}"] + extra
        sock, status = raw_request(app, h)
        sock.close()
        assert status == 413, (path, status)
    assert app.last_index() == 0


def test_snapshot_recovery_killed_leaves_old_or_new_state(app):
    want = big_group(app, 128)  # 8 MiB
    snap = snapshot_of(app, 128)
    with tempfile.TemporaryDirectory(prefix="raftd-example-") as tmp2:
        other = second_app(app, tmp2)
        try:
            old = {"k1": "old", "mine": "m"}
            other.update([(1, put("k1", "old")), (2, put("mine", "m"))], last=3)
            h = ["POST /RecoverFromSnapshot HTTP/1.1", "Host: x", "Raftd-Group: 1",
                 "Raftd-Index: 128", f"Content-Length: {len(snap)}"]
            # Killed with half of the snapshot received: the old state, whole.
            sock, _ = raw_request(other, h, snap[: len(snap) // 2], read_answer=False)
            time.sleep(0.2)
            other.kill9()
            sock.close()
            other.start()
            assert other.last_index() == 3
            assert {k: other.get(k) for k in old} == old
            assert other.get("k2") is None
            # Killed as soon as the whole snapshot is sent: the old state or the new, not a mix.
            sock, _ = raw_request(other, h, snap, read_answer=False)
            other.kill9()
            sock.close()
            other.start()
            index = other.last_index()
            if index == 3:
                assert {k: other.get(k) for k in old} == old
                assert other.get("k2") is None
            else:
                assert index == 128, index
                assert other.get("mine") is None
                for k in ["k1", "k64", "k128"]:
                    assert other.get(k) == want[k], k
            print(f"     killed right after the body: {'new' if index == 128 else 'old'} state",
                  flush=True)
            other.stop()
        finally:
            if other.proc.poll() is None:
                other.proc.kill()
                other.proc.wait()


def test_snapshot_of_the_largest_group_id(app):
    app.update([(1, put("a", "1"))], group=U64_MAX, last=2**63 + 5)
    snap = snapshot_of(app, 2**63 + 5, group=U64_MAX)
    app.update([(2**63 + 6, put("a", "2"))], group=U64_MAX)
    status, body = recover(app, 2**63 + 5, snap, group=U64_MAX)
    assert status == 200, (status, body)
    assert (app.last_index(U64_MAX), app.get("a", U64_MAX)) == (2**63 + 5, "1")


def test_sync_mode_survives_kill9_after_sync(app):
    if app.kind != "kv":
        raise Skip("the Python app has no sync mode: every batch is durable at once")
    app.sync_mode = True
    app.stop()
    app.start()
    app.update([(1, put("a", "1")), (2, put("b", "2"))], last=3)
    status, _, _ = app.call("POST", "/Sync", 1)
    assert status == 200
    app.kill9()
    app.start()
    assert app.last_index() == 3
    assert (app.get("a"), app.get("b")) == ("1", "2")


def test_sync_mode_recovery_survives_kill9_without_sync(app):
    if app.kind != "kv":
        raise Skip("the Python app has no sync mode: every batch is durable at once")
    snap = snapshot_of(app, 0)  # an empty group at 0, made before any entry
    app.update([(1, put("a", "1"))], last=2)
    snap2 = snapshot_of(app, 2)
    app.sync_mode = True
    app.stop()
    app.start()
    # No /Sync after either: RecoverFromSnapshot answers once its record is written (and synced:
    # API.md 3 wants it durable; a kill -9 cannot tell the sync apart, a power cut would).
    status, body = recover(app, 0, snap)
    assert status == 200, (status, body)
    app.kill9()
    app.start()
    assert (app.last_index(), app.get("a")) == (0, None)
    status, body = recover(app, 2, snap2)
    assert status == 200, (status, body)
    app.kill9()
    app.start()
    assert (app.last_index(), app.get("a")) == (2, "1")


def test_chunked_and_keep_alive(app):
    # raftd may stream a batch with Transfer-Encoding: chunked.
    batch = binary_batch([(1, put("a", "1")), (2, put("b", "2"))])
    status, _, body = app.call("POST", "/UpdateEntries", 1, [batch[:5], batch[5:20], batch[20:]],
                               {"Content-Type": BINARY, "Raftd-Last-Index": "2"})
    assert status == 200, (status, body)
    assert decode_results(BINARY, body, [(1, b""), (2, b"")]) == [(1, ok(None)), (2, ok(None))]
    # Several calls on one connection, an error answer among them, as raftd's pool does.
    conn = app.connect()
    try:
        for _ in range(3):
            assert app.call("GET", "/LastLogIndex", 1, conn=conn)[2] == b"2"
            assert app.call("GET", "/GetEntry", 1, cmd("get", "zz"), conn=conn)[0] == 404
            assert app.call("GET", "/GetEntry", 1, b"bad", conn=conn)[0] == 400
            assert app.call("GET", "/GetEntry", 1, cmd("get", "b"), conn=conn)[2] == b"2"
    finally:
        conn.close()


def test_torn_tail_is_ignored(app):
    if app.kind != "kv":
        raise Skip("SQLite's own journal owns the Python app's crash recovery")
    app.update([(1, put("a", "1"))])
    app.update([(2, put("b", "2"))], last=4)
    app.kill9()
    log = os.path.join(app.tmp, "data", "kv.log")
    size = os.path.getsize(log)
    # A record cut short by a crash: its head promises more bytes than the file holds.
    with open(log, "ab") as f:
        f.write(struct.pack("<I", 1000) + b"\x00" * 20)
    app.start()
    assert app.last_index() == 4
    assert (app.get("a"), app.get("b")) == ("1", "2")
    assert os.path.getsize(log) == size, "the torn tail is cut"
    assert app.update([(5, put("c", "3"))]) == [(5, ok(None))]
    app.kill9()
    # The last record with one byte of its body missing.
    with open(log, "r+b") as f:
        f.truncate(os.path.getsize(log) - 1)
    app.start()
    assert app.last_index() == 4
    assert app.get("c") is None
    assert os.path.getsize(log) == size
    # A whole record whose body does not match its checksum (the last byte of its value flipped).
    assert app.update([(6, put("d", "4"))]) == [(6, ok(None))]
    app.kill9()
    with open(log, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))
    app.start()
    assert app.last_index() == 4
    assert app.get("d") is None
    assert os.path.getsize(log) == size


def test_concurrent_groups(app):
    # Batches of several groups at once: the kv commits them together (one write and one
    # fdatasync for all), each answered with its own results once durable.
    groups, batches = 6, 15
    errors = []

    def writer(g):
        try:
            for b in range(batches):
                i = 2 * b + 1  # every other index is one of raftd's own entries
                enc = "json" if (g + b) % 2 else "binary"
                res = app.update([(i, put("k", f"{g}.{b}"))], last=i + 1, group=g, encoding=enc)
                assert res == [(i, ok(f"{g}.{b - 1}" if b else None))], res
        except Exception as e:  # noqa: BLE001: collected, asserted below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(g,)) for g in range(1, groups + 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for g in range(1, groups + 1):
        assert app.last_index(g) == 2 * batches
        assert app.get("k", g) == f"{g}.{batches - 1}"
    app.kill9()
    app.start()
    for g in range(1, groups + 1):
        assert app.last_index(g) == 2 * batches
        assert app.get("k", g) == f"{g}.{batches - 1}"


def test_raftd_app_client(app):
    # raftd's own client of the contract (src/app), both encodings, with and without app.sync
    # and a token: the example works with raftd's side of the wire, not only with this script's.
    if PROBE is None:
        raise Skip("no --probe given (raftd's app client is not built)")

    def probe(group, encoding, sync):
        argv = [PROBE, "--url", f"http://127.0.0.1:{app.port}", "--group", str(group),
                "--encoding", encoding]
        if app.token is not None:
            argv += ["--token", app.token]
        if sync:
            argv.append("--sync")
        r = subprocess.run(argv, capture_output=True, timeout=120)
        assert r.returncode == 0, (argv, r.returncode, r.stderr.decode(errors="replace"))

    probe(11, "binary", False)
    probe(12, "json", False)
    app.token = "t0k3n"
    app.sync_mode = True  # the kv's --sync-mode; the Python app is durable per batch anyway
    app.stop()
    app.start()
    probe(13, "binary", True)
    probe(14, "json", True)
    assert app.get("a", 11) == "2"


PROBE = None


def main():
    global PROBE
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("kind", choices=["python", "kv"])
    p.add_argument("target")
    p.add_argument("--probe")
    p.add_argument("-k", dest="only", default="")
    args = p.parse_args()
    kind, target, only = args.kind, os.path.abspath(args.target), args.only
    PROBE = os.path.abspath(args.probe) if args.probe else None
    tests = [(n, f) for n, f in globals().items() if n.startswith("test_") and only in n]
    failed = skipped = 0
    for name, fn in tests:
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="raftd-example-") as tmp:
            app = App(kind, target, tmp)
            try:
                app.start()
                fn(app)
                app.stop()
                print(f"ok   {name} ({time.monotonic() - t0:.2f}s)", flush=True)
            except Skip as e:
                skipped += 1
                print(f"skip {name}: {e}", flush=True)
                app.stop()
            except Exception:  # noqa: BLE001: report and go on with the next test
                failed += 1
                print(f"FAIL {name}", flush=True)
                traceback.print_exc()
                if app.proc is not None and app.proc.poll() is None:
                    app.proc.kill()
                    app.proc.wait()
    print(f"{len(tests) - failed - skipped} passed, {skipped} skipped, {failed} failed")
    return 1 if failed or not tests else 0


if __name__ == "__main__":
    sys.exit(main())
