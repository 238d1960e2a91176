#!/usr/bin/env python3
"""raftd example application: the KV command language of examples/README.md on SQLite.

Implements the application contract of API.md section 3 with the Python 3 standard library
only. One SQLite database file holds every group: table `groups` has each group's last applied
index, table `kv` its keys and values. A batch of entries (POST /UpdateEntries) is applied in
ONE SQLite transaction that also stores the group's new last index, so after any crash the data
and the index agree: entries at or below the stored index are skipped when raftd delivers them
again, and none is applied twice or lost.

Snapshots (doc/sqlite-recipe.md explains why they are done this way): PrepareSnapshot copies the
group's rows, in one read transaction on a connection of its own (WAL: the writer is not held
up), into a new SQLite file of the same schema that holds only that group and its index, named
by the context; SaveSnapshot streams that file and deletes it; RecoverFromSnapshot streams the
body to a temp file, checks it is a sound SQLite database of this schema holding this group at
Raftd-Index, then replaces the group's rows and index with its in ONE transaction of the main
database, so a crash leaves either the old state or the new one.

Usage: app.py --listen 127.0.0.1:PORT --db FILE [--token T] [--verbose]
PORT 0 picks a free port. The first line on stdout is "listening on HOST:PORT". SIGTERM or
SIGINT stops it cleanly.
"""

import argparse
import base64
import binascii
import hmac
import collections
import json
import os
import pathlib
import secrets
import shutil
import signal
import sqlite3
import struct
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Same cap as raftd's HTTP layer (kBodyBytesMaxDefault): a batch raftd sends is far smaller, and
# the body is held in memory while it is applied.
BODY_BYTES_MAX = 64 * 1024 * 1024
# A chunk-size line or a trailer line longer than this is not HTTP any client of ours sends.
LINE_BYTES_MAX = 4096
U64_MAX = 2**64 - 1
BINARY_TYPE = "application/vnd.raftd.entries"
JSON_TYPE = "application/json"
RECORD_HEAD = struct.Struct("<QI")  # u64 index | u32 length, little-endian (API.md 3.2)
# Prepared snapshots kept per group (each is a file); the oldest beyond this is deleted. raftd
# streams one snapshot at a time per follower that needs one, so a few cover followers catching
# up together.
SNAPSHOT_CONTEXTS_PER_GROUP = 3
# Snapshot files are read and written in pieces of this size: the app never holds a snapshot.
PIECE_BYTES = 64 * 1024
SQLITE_MAGIC = b"SQLite format 3\x00"
SCHEMA = [
    "CREATE TABLE IF NOT EXISTS {s}groups ("
    " group_id INTEGER PRIMARY KEY, last_index INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {s}kv ("
    " group_id INTEGER NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,"
    " PRIMARY KEY (group_id, key)) WITHOUT ROWID",
]


class HttpError(Exception):
    """Ends a request with an HTTP error: {"error": code, "message": text}."""

    def __init__(self, status, code, message, close=False):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.close = close


def canonical_json(obj):
    """Results and errors as examples/README.md fixes them: sorted keys, no spaces, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def parse_u64(text, what):
    if text is None:
        raise HttpError(400, "bad_request", f"missing header {what}")
    text = text.strip()
    if not text.isascii() or not text.isdigit() or int(text) > U64_MAX:
        raise HttpError(400, "bad_request", f"{what} is not a decimal unsigned 64-bit integer")
    return int(text)


# SQLite integers are signed 64-bit; group ids and indexes are unsigned 64-bit. They are stored
# as the signed integer with the same bits, so every u64 round-trips.
def to_sql(u):
    return u - 2**64 if u >= 2**63 else u


def from_sql(s):
    return s + 2**64 if s < 0 else s


# ---- entry batches (API.md 3.2) ----


def decode_binary_batch(body):
    entries = []
    off = 0
    while off < len(body):
        if len(body) - off < RECORD_HEAD.size:
            raise HttpError(400, "bad_request", f"batch: truncated record head at byte {off}")
        index, length = RECORD_HEAD.unpack_from(body, off)
        off += RECORD_HEAD.size
        if len(body) - off < length:
            raise HttpError(400, "bad_request", f"batch: record of index {index} is truncated")
        entries.append((index, body[off : off + length]))
        off += length
    return entries


def decode_json_batch(body):
    try:
        doc = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise HttpError(400, "bad_request", f"batch: not JSON: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), list):
        raise HttpError(400, "bad_request", 'batch: expected {"last_index": N, "entries": [...]}')
    last_index = doc.get("last_index")
    if not _is_u64(last_index):
        raise HttpError(400, "bad_request", "batch: last_index is not an unsigned 64-bit integer")
    entries = []
    for e in doc["entries"]:
        if not isinstance(e, dict) or not _is_u64(e.get("index")) or not isinstance(
            e.get("data"), str
        ):
            raise HttpError(400, "bad_request", 'batch: an entry is not {"index": N, "data": "..."}')
        try:
            data = base64.b64decode(e["data"], validate=True)
        except (binascii.Error, ValueError):
            data = None
        # Only the one canonical encoding of the bytes (padding, zero pad bits), as raftd's codec.
        if data is None or base64.b64encode(data).decode() != e["data"]:
            raise HttpError(400, "bad_request", f"batch: entry {e['index']}: data is not base64")
        entries.append((e["index"], data))
    return last_index, entries


def encode_results(content_type, results):
    if content_type == BINARY_TYPE:
        return b"".join(RECORD_HEAD.pack(i, len(r)) + r for i, r in results)
    return canonical_json(
        {"results": [{"index": i, "data": base64.b64encode(r).decode()} for i, r in results]}
    )


def check_batch(entries, last_index):
    """Indexes >= 1, strictly increasing, none above Raftd-Last-Index."""
    prev = 0
    for index, _ in entries:
        if index <= prev:
            raise HttpError(400, "bad_request", f"batch: index {index} after {prev}")
        prev = index
    if prev > last_index:
        raise HttpError(400, "bad_request", f"batch: entry {prev} above Raftd-Last-Index")


def _is_u64(v):
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= U64_MAX


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


# ---- the store ----


class Store:
    """One SQLite database for all groups. One lock serializes every use of the connection: the
    example values clarity over concurrency between groups."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        # isolation_level=None: no implicit transactions; each batch says BEGIN and COMMIT.
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: the WAL is synced at every COMMIT, so an answered batch survives power loss
        # (NORMAL, WAL mode's usual setting, may lose the last transactions).
        self.db.execute("PRAGMA synchronous=FULL")
        for stmt in SCHEMA:
            self.db.execute(stmt.format(s=""))
        # Prepared snapshots and snapshots being received live in a directory of their own. What
        # an earlier run left there (contexts die with the process; a recovery cut short by a
        # crash never reached the database) is removed.
        self.snap_dir = path + ".snapshots"
        shutil.rmtree(self.snap_dir, ignore_errors=True)
        os.makedirs(self.snap_dir)
        self.snap_lock = threading.Lock()
        self.contexts = {}  # group -> deque of context names (file names), oldest first

    def close(self):
        with self.lock:
            self.db.close()

    def _last_index(self, g):
        row = self.db.execute("SELECT last_index FROM groups WHERE group_id = ?", (g,)).fetchone()
        return from_sql(row[0]) if row else 0

    def last_index(self, group):
        with self.lock:
            return self._last_index(to_sql(group))

    def get(self, group, key):
        with self.lock:
            row = self.db.execute(
                "SELECT value FROM kv WHERE group_id = ? AND key = ?", (to_sql(group), key)
            ).fetchone()
        return row[0] if row else None

    def apply_batch(self, group, entries, last_index):
        """Applies the entries above the stored index and stores max(stored, last_index), all in
        one transaction. Returns one (index, result) per entry; re-delivered ones get b""."""
        g = to_sql(group)
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                stored = self._last_index(g)
                results = []
                for index, data in entries:
                    if index <= stored:
                        results.append((index, b""))  # applied before: never twice
                    else:
                        results.append((index, self._apply(g, data)))
                if last_index > stored:
                    self.db.execute(
                        "INSERT INTO groups (group_id, last_index) VALUES (?, ?)"
                        " ON CONFLICT (group_id) DO UPDATE SET last_index = excluded.last_index",
                        (g, to_sql(last_index)),
                    )
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        return results

    # ---- snapshots ----

    def prepare_snapshot(self, group, index):
        """Copies the group at `index` into a new file; returns its context (the file's name).
        Raises HttpError 409 when the group is not at `index`."""
        g = to_sql(group)
        name = f"g{group}-i{index}-{secrets.token_hex(8)}.db"
        path = os.path.join(self.snap_dir, name)
        # A connection of its own: its read transaction sees one consistent state of the main
        # database while the writer goes on (WAL), and the store's lock is not held meanwhile.
        src = sqlite3.connect(self.path, isolation_level=None)
        try:
            src.execute("ATTACH DATABASE ? AS snap", (path,))
            src.execute("BEGIN")
            try:
                at = src.execute("SELECT last_index FROM main.groups WHERE group_id = ?",
                                 (g,)).fetchone()
                at = from_sql(at[0]) if at else 0
                if at != index:
                    raise HttpError(409, "index_mismatch",
                                    f"the group is at {at}, not Raftd-Index {index}")
                for stmt in SCHEMA:
                    src.execute(stmt.format(s="snap."))
                src.execute("INSERT INTO snap.groups (group_id, last_index) VALUES (?, ?)",
                            (g, to_sql(index)))
                src.execute("INSERT INTO snap.kv (group_id, key, value)"
                            " SELECT group_id, key, value FROM main.kv WHERE group_id = ?", (g,))
                src.execute("COMMIT")
            except BaseException:
                src.execute("ROLLBACK")
                raise
            src.execute("DETACH DATABASE snap")
        except BaseException:
            _remove(path)
            raise
        finally:
            src.close()
        with self.snap_lock:
            names = self.contexts.setdefault(group, collections.deque())
            names.append(name)
            while len(names) > SNAPSHOT_CONTEXTS_PER_GROUP:
                _remove(os.path.join(self.snap_dir, names.popleft()))
        return name

    def snapshot_file(self, group, context):
        """The open file of a prepared snapshot, or None when the context is unknown, dropped,
        or of another group."""
        with self.snap_lock:
            if context not in self.contexts.get(group, ()):
                return None
            try:
                # Opened under the lock: a drop after this only unlinks the name.
                return open(os.path.join(self.snap_dir, context), "rb")
            except FileNotFoundError:
                return None

    def snapshot_sent(self, group, context):
        """The snapshot went out whole: its context and file are dropped."""
        with self.snap_lock:
            names = self.contexts.get(group, collections.deque())
            if context in names:
                names.remove(context)
                _remove(os.path.join(self.snap_dir, context))

    def recover(self, group, index, path):
        """Replaces the group's rows and index with those of the snapshot file at `path` (already
        checked by check_snapshot), in one transaction."""
        g = to_sql(group)
        with self.lock:
            self.db.execute("ATTACH DATABASE ? AS snap", (path,))
            try:
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    self.db.execute("DELETE FROM kv WHERE group_id = ?", (g,))
                    self.db.execute("INSERT INTO kv (group_id, key, value)"
                                    " SELECT group_id, key, value FROM snap.kv")
                    self.db.execute(
                        "INSERT INTO groups (group_id, last_index) VALUES (?, ?)"
                        " ON CONFLICT (group_id) DO UPDATE SET last_index = excluded.last_index",
                        (g, to_sql(index)),
                    )
                    self.db.execute("COMMIT")
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise
            finally:
                self.db.execute("DETACH DATABASE snap")

    def _apply(self, g, data):
        cmd = parse_command(data)
        if cmd is None:
            return canonical_json({"ok": False, "error": "bad_command"})
        op, key = cmd["op"], cmd["key"]
        row = self.db.execute(
            "SELECT value FROM kv WHERE group_id = ? AND key = ?", (g, key)
        ).fetchone()
        prev = row[0] if row else None
        prev_json = prev.decode() if prev is not None else None
        if op == "cas" and prev != cmd["expected"]:
            return canonical_json({"ok": False, "error": "cas_failed", "prev": prev_json})
        if op == "delete":
            self.db.execute("DELETE FROM kv WHERE group_id = ? AND key = ?", (g, key))
        else:
            self.db.execute(
                "INSERT INTO kv (group_id, key, value) VALUES (?, ?, ?)"
                " ON CONFLICT (group_id, key) DO UPDATE SET value = excluded.value",
                (g, key, cmd["value"]),
            )
        return canonical_json({"ok": True, "prev": prev_json})


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def check_snapshot(path, group, index):
    """Raises HttpError 400 unless the file at `path` is a whole, sound SQLite database of this
    app's schema holding exactly group `group` at `index`."""
    def bad(why):
        return HttpError(400, "bad_snapshot", f"snapshot: {why}")

    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(100)
    if len(head) < 100 or head[:16] != SQLITE_MAGIC:
        raise bad("not an SQLite database")
    # The header's page size and page count must account for the file exactly: a snapshot cut
    # short (or padded) is refused before SQLite reads it.
    page_size = struct.unpack_from(">H", head, 16)[0]
    page_size = 65536 if page_size == 1 else page_size
    pages = struct.unpack_from(">I", head, 28)[0]
    if page_size < 512 or page_size & (page_size - 1) or size != page_size * pages:
        raise bad(f"{size} bytes, but its header says {pages} pages of {page_size}")
    g = to_sql(group)
    try:
        # immutable: read as a plain file (no locks, no journal): it is ours, in a temp dir.
        uri = pathlib.Path(path).resolve().as_uri() + "?immutable=1"
        db = sqlite3.connect(uri, uri=True)
        try:
            check = db.execute("PRAGMA quick_check").fetchall()
            if check != [("ok",)]:
                raise bad(f"quick_check: {check[:3]}")
            for table, cols in [("groups", ["group_id", "last_index"]),
                                ("kv", ["group_id", "key", "value"])]:
                got = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
                if got != cols:
                    raise bad(f"table {table} has columns {got}")
            rows = db.execute("SELECT group_id, last_index FROM groups").fetchall()
            if rows != [(g, to_sql(index))]:
                got = [(from_sql(a), from_sql(b)) for a, b in rows]
                raise bad(f"holds (group, index) {got}, not [({group}, {index})]")
            if db.execute("SELECT 1 FROM kv WHERE group_id != ? LIMIT 1", (g,)).fetchone():
                raise bad("holds rows of another group")
            if db.execute("SELECT 1 FROM kv WHERE typeof(key) != 'blob' OR"
                          " typeof(value) != 'blob' LIMIT 1").fetchone():
                raise bad("holds a key or value that is not a blob")
        finally:
            db.close()
    except sqlite3.DatabaseError as e:
        raise bad(f"{type(e).__name__}: {e}") from None


def _utf8(v):
    """A JSON string as UTF-8 bytes, or None when it is not a string or holds a lone surrogate
    (which JSON's \\u escapes allow and UTF-8 cannot carry)."""
    if not isinstance(v, str):
        return None
    try:
        return v.encode("utf-8")
    except UnicodeEncodeError:
        return None


def parse_json_object(data):
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def parse_command(data):
    """An entry's command (examples/README.md) with key, value and expected as UTF-8 bytes
    (expected None: the key must be absent), or None when it is not a valid command."""
    doc = parse_json_object(data)
    if doc is None:
        return None
    op = doc.get("op")
    key = _utf8(doc.get("key"))
    if op not in ("put", "delete", "cas") or key is None:
        return None
    cmd = {"op": op, "key": key}
    if op in ("put", "cas"):
        cmd["value"] = _utf8(doc.get("value"))
        if cmd["value"] is None:
            return None
    if op == "cas":
        if "expected" not in doc:
            return None
        cmd["expected"] = _utf8(doc["expected"])
        if doc["expected"] is not None and cmd["expected"] is None:
            return None
    return cmd


# ---- HTTP ----


class AppHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: raftd pools its connections to the app
    server_version = "raftd-example-python-sqlite"

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_PUT(self):
        self._serve("PUT")

    def do_DELETE(self):
        self._serve("DELETE")

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
            if route[1] is AppHandler.recover_from_snapshot:
                # Its body is a snapshot of any size: read by the call itself, in pieces. Until
                # then the body is unread, so an error before it closes the connection.
                try:
                    group = parse_u64(self.headers.get("Raftd-Group"), "Raftd-Group")
                except HttpError as e:
                    e.close = True
                    raise
                body = None
            else:
                body = self._read_body()
                group = parse_u64(self.headers.get("Raftd-Group"), "Raftd-Group")
            status, content_type, payload = route[1](self, group, body)
        except Exception as e:  # noqa: BLE001: any failure is an HTTP error, raftd retries
            if not isinstance(e, HttpError):
                self.log_error("%s: %r", self.path, e)
                e = HttpError(500, "internal", f"{type(e).__name__}: {e}", close=True)
            if e.close:
                self.close_connection = True
            status, content_type = e.status, JSON_TYPE
            payload = canonical_json({"error": e.code, "message": e.message})
        if isinstance(payload, FileBody):
            return self._send_file(status, content_type, payload)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def _send_file(self, status, content_type, body):
        """Streams an open file as the answer, with its Content-Length, a piece at a time."""
        with body.file as f:
            size = os.fstat(f.fileno()).st_size
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            sent = 0
            try:
                while sent < size:
                    piece = f.read(min(PIECE_BYTES, size - sent))
                    if not piece:
                        break
                    self.wfile.write(piece)
                    sent += len(piece)
                self.wfile.flush()
            except OSError as e:  # the client went away: the file stays for a retry
                self.log_error("%s: sent %d of %d bytes: %r", self.path, sent, size, e)
                sent = -1
        if sent == size:
            body.on_sent()
        else:
            self.close_connection = True

    def _body_pieces(self):
        """The request body in pieces (Content-Length or chunked), never whole."""
        te = self.headers.get("Transfer-Encoding")
        if te is not None:
            if te.strip().lower() != "chunked":
                raise HttpError(501, "not_implemented", "only chunked transfer coding", True)
            while True:
                line = self.rfile.readline(LINE_BYTES_MAX + 1)
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise HttpError(400, "bad_request", "bad chunk size", close=True) from None
                if not line.endswith(b"\n") or size < 0:
                    raise HttpError(400, "bad_request", "bad chunk size", close=True)
                if size == 0:
                    break
                while size > 0:
                    piece = self.rfile.read(min(PIECE_BYTES, size))
                    if not piece:
                        raise HttpError(400, "bad_request", "body ended early", close=True)
                    size -= len(piece)
                    yield piece
                if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                    raise HttpError(400, "bad_request", "bad chunk", close=True)
            while True:  # trailer section, dropped
                line = self.rfile.readline(LINE_BYTES_MAX + 1)
                if not line.endswith(b"\n"):
                    raise HttpError(400, "bad_request", "bad trailer", close=True)
                if line in (b"\r\n", b"\n"):
                    return
        length = self.headers.get("Content-Length", "0")
        if not length.isascii() or not length.isdigit():
            raise HttpError(400, "bad_request", "bad Content-Length", close=True)
        left = int(length)
        while left > 0:
            piece = self.rfile.read(min(PIECE_BYTES, left))
            if not piece:
                raise HttpError(400, "bad_request", "body ended early", close=True)
            left -= len(piece)
            yield piece

    def _check_token(self):
        token = self.server.token
        if token is None:
            return
        got = self.headers.get("Authorization", "")
        if not hmac.compare_digest(got.encode(), ("Bearer " + token).encode()):
            # The body is not read: the connection closes after the answer.
            raise HttpError(401, "unauthorized", "missing or wrong bearer token", close=True)

    def _read_body(self):
        te = self.headers.get("Transfer-Encoding")
        if te is not None:
            if te.strip().lower() != "chunked":
                raise HttpError(501, "not_implemented", "only chunked transfer coding", True)
            return self._read_chunked()
        length = self.headers.get("Content-Length", "0")
        if not length.isascii() or not length.isdigit():
            raise HttpError(400, "bad_request", "bad Content-Length", close=True)
        if int(length) > BODY_BYTES_MAX:
            raise HttpError(413, "too_large", "body over the limit", close=True)
        body = self.rfile.read(int(length))
        if len(body) != int(length):
            raise HttpError(400, "bad_request", "body ended early", close=True)
        return body

    def _read_chunked(self):
        parts, total = [], 0
        while True:
            line = self.rfile.readline(LINE_BYTES_MAX + 1)
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise HttpError(400, "bad_request", "bad chunk size", close=True) from None
            if not line.endswith(b"\n") or size < 0:
                raise HttpError(400, "bad_request", "bad chunk size", close=True)
            total += size
            if total > BODY_BYTES_MAX:
                raise HttpError(413, "too_large", "body over the limit", close=True)
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

    # ---- endpoints: each returns (status, content type, body) ----

    def last_log_index(self, group, body):
        return 200, "text/plain", str(self.server.store.last_index(group)).encode()

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
        doc = parse_json_object(body)
        key = _utf8(doc.get("key")) if doc is not None and doc.get("op") == "get" else None
        if key is None:
            return 400, JSON_TYPE, canonical_json({"ok": False, "error": "bad_query"})
        value = self.server.store.get(group, key)
        if value is None:
            return 404, JSON_TYPE, canonical_json({"ok": False, "error": "not_found"})
        return 200, "application/octet-stream", value

    def sync(self, group, body):
        # Every answered UpdateEntries already committed with synchronous=FULL: nothing waits.
        return 200, "text/plain", b""

    def prepare_snapshot(self, group, body):
        index = parse_u64(self.headers.get("Raftd-Index"), "Raftd-Index")
        context = self.server.store.prepare_snapshot(group, index)
        return 200, "text/plain", context.encode()

    def save_snapshot(self, group, body):
        try:
            context = body.decode("ascii")
        except UnicodeDecodeError:
            context = None
        store = self.server.store
        f = store.snapshot_file(group, context) if context else None
        if f is None:
            raise HttpError(404, "unknown_snapshot", "no prepared snapshot of this group has "
                            "that context (it may have been sent or dropped for newer ones)")
        return 200, "application/octet-stream", FileBody(
            f, lambda: store.snapshot_sent(group, context))

    def recover_from_snapshot(self, group, body):
        try:
            index = parse_u64(self.headers.get("Raftd-Index"), "Raftd-Index")
        except HttpError as e:
            e.close = True  # the body is unread
            raise
        store = self.server.store
        fd, path = tempfile.mkstemp(prefix=f"recover-g{group}-", suffix=".db", dir=store.snap_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                for piece in self._body_pieces():
                    f.write(piece)
            check_snapshot(path, group, index)
            store.recover(group, index, path)
        finally:
            _remove(path)
        return 200, "text/plain", b""


ROUTES = {
    "/LastLogIndex": ("GET", AppHandler.last_log_index),
    "/UpdateEntries": ("POST", AppHandler.update_entries),
    "/GetEntry": ("GET", AppHandler.get_entry),
    "/Sync": ("POST", AppHandler.sync),
    "/PrepareSnapshot": ("POST", AppHandler.prepare_snapshot),
    "/SaveSnapshot": ("POST", AppHandler.save_snapshot),
    "/RecoverFromSnapshot": ("POST", AppHandler.recover_from_snapshot),
}


class FileBody:
    """An answer streamed from an open file; on_sent runs once all of it went out."""

    def __init__(self, file, on_sent):
        self.file = file
        self.on_sent = on_sent


class AppServer(ThreadingHTTPServer):
    daemon_threads = True


def parse_listen(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"--listen wants HOST:PORT, got {text!r}")
    return host, int(port)


def main():
    p = argparse.ArgumentParser(description="raftd example application: KV on SQLite")
    p.add_argument("--listen", type=parse_listen, required=True, help="HOST:PORT (PORT 0: any)")
    p.add_argument("--db", required=True, help="SQLite database file (created if missing)")
    p.add_argument("--token", help="require Authorization: Bearer TOKEN on every call")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = p.parse_args()

    store = Store(args.db)
    server = AppServer(args.listen, AppHandler)
    server.store = store
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
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
