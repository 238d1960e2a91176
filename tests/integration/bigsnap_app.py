#!/usr/bin/env python3
"""A raftd application (API.md section 3) whose snapshots are synthetic and as large as asked:
the test of snapshot_rss_test.py streams several GiB through raftd with it.

State: per group, the last applied index and a running SHA-256 over every applied entry (its
index and bytes); the entries themselves are not kept. It lives in `<state-dir>/g<group>.json`,
written atomically (temp file, fsync, rename, fsync of the directory) before a batch is
answered, so kill -9 and restarts lose nothing that was acknowledged.

Snapshots (`--snapshot-bytes S`): PrepareSnapshot at Raftd-Index N answers the context
{"index": N, "hash": <the state's hash>, "bytes": S}. SaveSnapshot streams, chunked, the line
`bigsnap v1 index=N hash=H bytes=S\\n` then S pseudo-random bytes made on the fly from N (block k
of 1 MiB: the index and k, then a block derived from N), holding one block at a time.
RecoverFromSnapshot reads its body (Content-Length) a block at a time, compares every byte with
the same generator, and only then stores {index: N, hash: H} durably and answers 200; a body that
differs anywhere, or has another length, is answered 400 and changes nothing. GetEntry answers the
group's state as JSON {"group", "index", "hash"} whatever the query.

`--hold-saves FILE`: while FILE exists, SaveSnapshot waits before it answers (it logs "save of
group G at index N held" once): a test measures the processes before the stream starts.

Usage: bigsnap_app.py --listen 127.0.0.1:PORT --state-dir DIR --snapshot-bytes S
                      [--hold-saves FILE] [--token T] [--verbose]
PORT 0 picks a free port. The first line on stdout is "listening on HOST:PORT"; each snapshot
saved or recovered logs a line with its size, time and rate. SIGTERM or SIGINT stops it.
"""

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import signal
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Entry batches raftd sends are far smaller (its app.batch_bytes_max); the body is held while it
# is applied.
BODY_BYTES_MAX = 64 * 1024 * 1024
LINE_BYTES_MAX = 4096  # a chunk-size line, trailer line or snapshot header line
U64_MAX = 2**64 - 1
BINARY_TYPE = "application/vnd.raftd.entries"
JSON_TYPE = "application/json"
RECORD_HEAD = struct.Struct("<QI")  # u64 index | u32 length, little-endian (API.md 3.2)
# The snapshot generator's block: what the app holds of a snapshot at any time (twice, while
# one received block is compared with the expected one).
BLOCK_BYTES = 1024 * 1024
BLOCK_TAG = struct.Struct("<QQ")  # index, block number: no two blocks of a snapshot are equal
HEADER_RE = re.compile(rb"bigsnap v1 index=(\d+) hash=([0-9a-f]{64}) bytes=(\d+)\n")
HOLD_POLL_S = 0.02
ZERO_HASH = "0" * 64


class HttpError(Exception):
    """Ends a request with an HTTP error: {"error": code, "message": text}."""

    def __init__(self, status, code, message, close=False):
        super().__init__(message)
        self.status, self.code, self.message, self.close = status, code, message, close


def parse_u64(text, what):
    if text is None:
        raise HttpError(400, "bad_request", f"missing header {what}")
    text = text.strip()
    if not text.isascii() or not text.isdigit() or int(text) > U64_MAX:
        raise HttpError(400, "bad_request", f"{what} is not a decimal unsigned 64-bit integer")
    return int(text)


# ---- the synthetic snapshot ----


class Generator:
    """The S bytes of the snapshot at `index`, a block at a time: block k is the index and k
    (16 bytes) then the same bytes derived from the index."""

    def __init__(self, index, size):
        self.index, self.size = index, size
        seed = b"bigsnap:%d" % index
        self.rest = hashlib.shake_256(seed).digest(BLOCK_BYTES - BLOCK_TAG.size)

    def blocks(self):
        """Yields (offset, block) covering the S bytes in order."""
        off, k = 0, 0
        while off < self.size:
            n = min(BLOCK_BYTES, self.size - off)
            block = BLOCK_TAG.pack(self.index, k) + self.rest
            yield off, block if n == BLOCK_BYTES else block[:n]
            off += n
            k += 1


def header_line(index, digest, size):
    return b"bigsnap v1 index=%d hash=%s bytes=%d\n" % (index, digest.encode(), size)


def first_difference(a, b):
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


# ---- the store ----


def entry_hash(prev_hex, index, data):
    return hashlib.sha256(bytes.fromhex(prev_hex) + struct.pack("<Q", index) + data).hexdigest()


class Store:
    """Each group's {index, hash}, in memory and in its file. One lock per group: raftd never
    runs two of UpdateEntries, PrepareSnapshot and RecoverFromSnapshot of a group at once, and
    GetEntry reads the state in between."""

    def __init__(self, state_dir):
        self.dir = state_dir
        os.makedirs(state_dir, exist_ok=True)
        self.lock = threading.Lock()
        self.groups = {}  # group -> {"index": N, "hash": hex}
        self.locks = {}
        for name in os.listdir(state_dir):
            m = re.fullmatch(r"g(\d+)\.json", name)
            if m:
                with open(os.path.join(state_dir, name)) as f:
                    doc = json.load(f)
                self.groups[int(m.group(1))] = {"index": doc["index"], "hash": doc["hash"]}
            elif name.endswith(".tmp"):
                os.unlink(os.path.join(state_dir, name))  # a write cut by a crash

    def group_lock(self, group):
        with self.lock:
            return self.locks.setdefault(group, threading.Lock())

    def state(self, group):
        with self.lock:
            return dict(self.groups.get(group, {"index": 0, "hash": ZERO_HASH}))

    def store(self, group, state):
        """Makes `state` the group's, durably, then in memory."""
        path = os.path.join(self.dir, f"g{group}.json")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
        fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        with self.lock:
            self.groups[group] = dict(state)

    def apply_batch(self, group, entries, last_index):
        """Applies the entries above the stored index, stores max(stored, last_index) with the new
        hash in one write. Returns one (index, result) per entry: the result is the decimal index
        for an entry applied now, empty for one applied before."""
        with self.group_lock(group):
            st = self.state(group)
            results = []
            for index, data in entries:
                if index <= st["index"]:
                    results.append((index, b""))  # applied before: never twice
                    continue
                st["hash"] = entry_hash(st["hash"], index, data)
                st["index"] = index
                results.append((index, b"%d" % index))
            st["index"] = max(st["index"], last_index)
            self.store(group, st)
        return results


# ---- entry batches (API.md 3.2) ----


def decode_binary_batch(body):
    entries, off = [], 0
    while off < len(body):
        if len(body) - off < RECORD_HEAD.size:
            raise HttpError(400, "bad_request", f"batch: truncated record head at byte {off}")
        index, length = RECORD_HEAD.unpack_from(body, off)
        off += RECORD_HEAD.size
        if len(body) - off < length:
            raise HttpError(400, "bad_request", f"batch: record of index {index} is truncated")
        entries.append((index, body[off:off + length]))
        off += length
    return entries


def decode_json_batch(body):
    try:
        doc = json.loads(body.decode("utf-8"))
        last_index = doc["last_index"]
        entries = [(e["index"], base64.b64decode(e["data"], validate=True))
                   for e in doc["entries"]]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, binascii.Error) as e:
        raise HttpError(400, "bad_request", f"batch: not a JSON batch: {e}") from None
    if not isinstance(last_index, int) or any(not isinstance(i, int) for i, _ in entries):
        raise HttpError(400, "bad_request", "batch: indexes must be integers")
    return last_index, entries


def encode_results(content_type, results):
    if content_type == BINARY_TYPE:
        return b"".join(RECORD_HEAD.pack(i, len(r)) + r for i, r in results)
    return json.dumps({"results": [{"index": i, "data": base64.b64encode(r).decode()}
                                   for i, r in results]}).encode()


def check_batch(entries, last_index):
    prev = 0
    for index, _ in entries:
        if index <= prev or index > U64_MAX:
            raise HttpError(400, "bad_request", f"batch: index {index} after {prev}")
        prev = index
    if prev > last_index:
        raise HttpError(400, "bad_request", f"batch: entry {prev} above Raftd-Last-Index")


# ---- HTTP ----


class AppHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: raftd pools its connections to the app
    server_version = "raftd-bigsnap-test-app"

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        if self.server.verbose:
            super().log_message(format, *args)

    def _serve(self, method):
        try:
            self._check_token()
            route = ROUTES.get(self.path)
            if route is None:
                raise HttpError(404, "not_found", f"no endpoint {self.path}")
            if route[0] != method:
                raise HttpError(405, "method_not_allowed", f"{self.path} takes {route[0]}")
            try:
                group = parse_u64(self.headers.get("Raftd-Group"), "Raftd-Group")
            except HttpError as e:
                e.close = True  # the body is unread
                raise
            # RecoverFromSnapshot reads its own body, in blocks; the others are small.
            body = None if route[1] is AppHandler.recover_from_snapshot else self._read_body()
            answer = route[1](self, group, body)
            if answer is None:  # streamed by the endpoint
                return
            status, content_type, payload = answer
        except Exception as e:  # noqa: BLE001: any failure is an HTTP error, raftd retries
            if not isinstance(e, HttpError):
                self.log_error("%s: %r", self.path, e)
                e = HttpError(500, "internal", f"{type(e).__name__}: {e}", close=True)
            if e.close:
                self.close_connection = True
            status, content_type = e.status, JSON_TYPE
            payload = json.dumps({"error": e.code, "message": e.message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def _check_token(self):
        token = self.server.token
        if token is None:
            return
        got = self.headers.get("Authorization", "")
        if not hmac.compare_digest(got.encode(), ("Bearer " + token).encode()):
            raise HttpError(401, "unauthorized", "missing or wrong bearer token", close=True)

    def _read_body(self):
        te = self.headers.get("Transfer-Encoding")
        if te is not None:
            if te.strip().lower() != "chunked":
                raise HttpError(501, "not_implemented", "only chunked transfer coding", True)
            parts, total = [], 0
            while True:
                line = self.rfile.readline(LINE_BYTES_MAX + 1)
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise HttpError(400, "bad_request", "bad chunk size", close=True) from None
                total += size
                if not line.endswith(b"\n") or size < 0 or total > BODY_BYTES_MAX:
                    raise HttpError(400, "bad_request", "bad or too large chunk", close=True)
                if size == 0:
                    break
                chunk = self.rfile.read(size)
                if len(chunk) != size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                    raise HttpError(400, "bad_request", "bad chunk", close=True)
                parts.append(chunk)
            while True:  # trailer section, dropped
                line = self.rfile.readline(LINE_BYTES_MAX + 1)
                if not line.endswith(b"\n"):
                    raise HttpError(400, "bad_request", "bad trailer", close=True)
                if line in (b"\r\n", b"\n"):
                    return b"".join(parts)
        length = self._content_length()
        if length > BODY_BYTES_MAX:
            raise HttpError(413, "too_large", "body over the limit", close=True)
        body = self.rfile.read(length)
        if len(body) != length:
            raise HttpError(400, "bad_request", "body ended early", close=True)
        return body

    def _content_length(self):
        length = self.headers.get("Content-Length", "0").strip()
        if not length.isascii() or not length.isdigit():
            raise HttpError(400, "bad_request", "bad Content-Length", close=True)
        return int(length)

    def _log(self, text):
        print(text, flush=True)

    # ---- endpoints: each returns (status, content type, body), or None when it answered ----

    def last_log_index(self, group, body):
        return 200, "text/plain", b"%d" % self.server.store.state(group)["index"]

    def update_entries(self, group, body):
        last_index = parse_u64(self.headers.get("Raftd-Last-Index"), "Raftd-Last-Index")
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type == BINARY_TYPE:
            entries = decode_binary_batch(body)
        elif content_type == JSON_TYPE:
            body_last, entries = decode_json_batch(body)
            if body_last != last_index:
                raise HttpError(400, "bad_request", "last_index differs from Raftd-Last-Index")
        else:
            raise HttpError(415, "unsupported_media_type", f"Content-Type must be {BINARY_TYPE} "
                            f"or {JSON_TYPE}")
        check_batch(entries, last_index)
        results = self.server.store.apply_batch(group, entries, last_index)
        return 200, content_type, encode_results(content_type, results)

    def get_entry(self, group, body):
        st = self.server.store.state(group)
        return 200, JSON_TYPE, json.dumps({"group": group, **st}, sort_keys=True).encode()

    def sync(self, group, body):
        return 200, "text/plain", b""  # every answered batch is durable already

    def prepare_snapshot(self, group, body):
        index = parse_u64(self.headers.get("Raftd-Index"), "Raftd-Index")
        st = self.server.store.state(group)
        if st["index"] != index:
            raise HttpError(409, "index_mismatch",
                            f"the group is at {st['index']}, not Raftd-Index {index}")
        context = {"index": index, "hash": st["hash"], "bytes": self.server.snapshot_bytes}
        return 200, JSON_TYPE, json.dumps(context).encode()

    def save_snapshot(self, group, body):
        try:
            ctx = json.loads(body)
            index, digest, size = ctx["index"], ctx["hash"], ctx["bytes"]
            if not re.fullmatch(r"[0-9a-f]{64}", digest) or size < 0 or index < 0:
                raise ValueError("out of range")
        except (ValueError, KeyError, TypeError) as e:
            raise HttpError(400, "bad_context", f"not a context of this app: {e}") from None
        hold = self.server.hold_saves
        if hold and os.path.exists(hold):
            self._log(f"save of group {group} at index {index} held")
            while os.path.exists(hold):
                time.sleep(HOLD_POLL_S)
        self._log(f"save of group {group} at index {index}: {size} bytes start")
        t0 = time.monotonic()
        w = self.wfile
        sent = 0
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            head = header_line(index, digest, size)
            w.write(b"%x\r\n%s\r\n" % (len(head), head))
            for _, block in Generator(index, size).blocks():
                w.write(b"%x\r\n" % len(block))
                w.write(block)
                w.write(b"\r\n")
                sent += len(block)
            w.write(b"0\r\n\r\n")
            w.flush()
        except OSError as e:  # raftd ended the call (a failed transfer, a lost leadership)
            self._log(f"save of group {group} at index {index}: ended after {sent} bytes: {e!r}")
            self.close_connection = True
            return None
        secs = time.monotonic() - t0
        self._log(f"save of group {group} at index {index}: {sent} bytes in {secs:.2f} s "
                  f"({sent / 1e6 / max(secs, 1e-9):.0f} MB/s)")
        return None

    def recover_from_snapshot(self, group, body):
        index = parse_u64(self.headers.get("Raftd-Index"), "Raftd-Index")
        length = self._content_length()
        if self.headers.get("Transfer-Encoding") is not None:
            raise HttpError(400, "bad_request", "a snapshot comes with a Content-Length", True)
        t0 = time.monotonic()
        try:
            size = self._recover(group, index, length)
        except HttpError as e:
            self._log(f"recovery of group {group} at index {index} refused: {e.message}")
            raise
        secs = time.monotonic() - t0
        self._log(f"recovered group {group} at index {index}: {size} bytes checked in "
                  f"{secs:.2f} s ({size / 1e6 / max(secs, 1e-9):.0f} MB/s)")
        return 200, "text/plain", b""

    def _recover(self, group, index, length):
        """Checks the body against the generator, then stores the snapshot's state; returns the
        snapshot's size."""
        store = self.server.store
        with store.group_lock(group):
            head = self.rfile.readline(min(length, LINE_BYTES_MAX))
            m = HEADER_RE.fullmatch(head)
            if m is None:
                raise HttpError(400, "corrupt", f"no snapshot header line: {head[:100]!r}", True)
            at, digest, size = int(m.group(1)), m.group(2).decode(), int(m.group(3))
            if at != index:
                raise HttpError(400, "corrupt", f"a snapshot at {at}, not Raftd-Index {index}",
                                True)
            if size != self.server.snapshot_bytes or length != len(head) + size:
                raise HttpError(400, "corrupt", f"{length} bytes for a snapshot of {size} bytes "
                                f"(this app's are {self.server.snapshot_bytes})", True)
            for off, want in Generator(index, size).blocks():
                got = self.rfile.read(len(want))
                if got != want:
                    where = off + first_difference(got, want)
                    raise HttpError(400, "corrupt", f"the snapshot at {index} differs at byte "
                                    f"{where} of {size} (read {len(got)} of {len(want)})", True)
            store.store(group, {"index": index, "hash": digest})
        return size


ROUTES = {
    "/LastLogIndex": ("GET", AppHandler.last_log_index),
    "/UpdateEntries": ("POST", AppHandler.update_entries),
    "/GetEntry": ("GET", AppHandler.get_entry),
    "/Sync": ("POST", AppHandler.sync),
    "/PrepareSnapshot": ("POST", AppHandler.prepare_snapshot),
    "/SaveSnapshot": ("POST", AppHandler.save_snapshot),
    "/RecoverFromSnapshot": ("POST", AppHandler.recover_from_snapshot),
}


class AppServer(ThreadingHTTPServer):
    daemon_threads = True


def parse_listen(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"--listen wants HOST:PORT, got {text!r}")
    return host, int(port)


def main():
    p = argparse.ArgumentParser(description="raftd test application with large synthetic "
                                "snapshots")
    p.add_argument("--listen", type=parse_listen, required=True, help="HOST:PORT (PORT 0: any)")
    p.add_argument("--state-dir", required=True, help="directory of the groups' state files")
    p.add_argument("--snapshot-bytes", type=int, required=True, help="size of every snapshot")
    p.add_argument("--hold-saves", help="SaveSnapshot waits while this file exists")
    p.add_argument("--token", help="require Authorization: Bearer TOKEN on every call")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = p.parse_args()
    if args.snapshot_bytes < 0:
        p.error("--snapshot-bytes must be >= 0")

    server = AppServer(args.listen, AppHandler)
    server.store = Store(args.state_dir)
    server.snapshot_bytes = args.snapshot_bytes
    server.hold_saves = args.hold_saves
    server.token = args.token
    server.verbose = args.verbose

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        print(f"listening on {server.server_address[0]}:{server.server_address[1]}", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
