#!/usr/bin/env python3
"""Process-level tests of raftd's client subcommands: a one-node cluster ([cluster].initial lists
only this node, with a client token) beside a raftd-kv, on 127.0.0.1 with free ports and a fresh
temp directory, driven by running `raftd status|cluster|group|propose|read` and checking their output and
exit codes (0 success, 1 server error or failed request, 2 usage error).

Usage: cli_test.py RAFTD RAFTD_KV

Every process started is killed at the end, pass or fail (and on SIGTERM/SIGINT). On failure the
tails of the node and app logs are printed. Exits 0 when every check passed, 1 otherwise.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import http.client

START_WAIT_S = 60  # generous: sanitizer builds on a loaded 2-core machine
CMD_TIMEOUT_S = 30
TOKEN = "cli-test-token"
GROUP = 7

procs = []


def kill_all():
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    procs.clear()


def on_signal(signum, _frame):
    kill_all()
    sys.exit(128 + signum)


def free_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def spawn(argv, log_path):
    with open(log_path, "ab") as log:
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    procs.append(p)
    return p


class Cli:
    """Runs `raftd ARGS` against the node; env holds RAFTD_ENDPOINT and RAFTD_TOKEN."""

    def __init__(self, raftd, env):
        self.raftd, self.env = raftd, env

    def run(self, *args, stdin=b"", env=None):
        r = subprocess.run([self.raftd, *args], input=stdin, capture_output=True,
                           env=env if env is not None else self.env, timeout=CMD_TIMEOUT_S)
        r.out = r.stdout.decode(errors="replace")
        r.err = r.stderr.decode(errors="replace")
        return r


def expect(cond, what, r=None):
    if not cond:
        detail = ""
        if r is not None:
            detail = f"\n  exit {r.returncode}\n  stdout: {r.out!r}\n  stderr: {r.err!r}"
        raise AssertionError(what + detail)


def expect_rc(r, rc, what):
    expect(r.returncode == rc, f"{what}: exit {r.returncode}, expected {rc}", r)


def start_app(raftd_kv, tmp):
    log = os.path.join(tmp, "kv.log.txt")
    app = spawn([raftd_kv, "--listen", "127.0.0.1:0", "--data-dir", os.path.join(tmp, "kv")], log)
    deadline = time.time() + START_WAIT_S
    while time.time() < deadline:
        with open(log, "rb") as f:
            for line in f.read().decode(errors="replace").splitlines():
                if line.startswith("listening on "):
                    return int(line.strip().rsplit(":", 1)[1])
        expect(app.poll() is None, f"raftd-kv exited {app.returncode}")
        time.sleep(0.05)
    raise AssertionError("raftd-kv did not print its address")


def start_node(raftd, tmp, app_port):
    client_port, peer_port = free_ports(2)
    config = os.path.join(tmp, "raftd.toml")
    with open(config, "w") as f:
        f.write(f"""[node]
id = 1
data_dir = "{os.path.join(tmp, "raftd")}"

[listen]
client = "127.0.0.1:{client_port}"
peer = "127.0.0.1:{peer_port}"

[cluster]
initial = [
  {{ id = 1, peer = "127.0.0.1:{peer_port}", client = "127.0.0.1:{client_port}" }},
]

[app]
url = "http://127.0.0.1:{app_port}"

[auth]
client_token = "{TOKEN}"
""")
    node = spawn([raftd, "serve", "--config", config], os.path.join(tmp, "raftd.log"))
    deadline = time.time() + START_WAIT_S
    while time.time() < deadline:
        expect(node.poll() is None, f"raftd serve exited {node.returncode}")
        conn = http.client.HTTPConnection("127.0.0.1", client_port, timeout=2)
        try:
            # /readyz needs no token (raftd.toml(5)), although the node has one.
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return client_port
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.1)
    raise AssertionError(f"/readyz not 200 within {START_WAIT_S} s")


def check_usage(cli):
    for args, what in ((["group", "create", "9"], "group create without --members"),
                       (["propose"], "propose without GROUP"),
                       (["read", "notanumber", "x"], "read with a non-numeric group"),
                       (["status", "--bogus"], "an unknown option"),
                       (["group", "list", "--endpoint", "http://localhost:7300"],
                        "a host name as endpoint"),
                       (["status", "--timeout-ms", "0"], "a zero timeout")):
        r = cli.run(*args)
        expect_rc(r, 2, what)
    for cmd in (["status"], ["group", "create"], ["group", "delete"], ["group", "list"],
                ["group", "show"], ["propose"], ["read"], ["cluster", "add-node"],
                ["cluster", "remove-node"]):
        r = cli.run(*cmd, "--help")
        expect_rc(r, 0, " ".join(cmd) + " --help")
        expect("--endpoint" in r.out and "--token" in r.out and "--timeout-ms" in r.out,
               " ".join(cmd) + " --help lists the connection options", r)


def check_groups(cli):
    r = cli.run("group", "create", str(GROUP), "--members", "1")
    expect_rc(r, 0, "group create")
    expect(json.loads(r.out)["id"] == GROUP, "group create prints the group's status", r)
    r = cli.run("group", "create", str(GROUP), "--members", "1")
    expect_rc(r, 1, "group create of an existing group")
    expect(r.err.startswith("raftd group create: 409 group_exists: "), "409 group_exists shown", r)
    r = cli.run("group", "create", "8", "--members", "1,5")
    expect_rc(r, 1, "group create with an unknown node")
    expect("400 bad_request" in r.err, "400 bad_request shown", r)

    # The group needs a leader before proposals succeed: wait for `group show` to name one.
    deadline = time.time() + START_WAIT_S
    while True:
        r = cli.run("group", "show", str(GROUP))
        expect_rc(r, 0, "group show")
        status = json.loads(r.out)
        if status["leader"] == 1:
            break
        expect(time.time() < deadline, "group 7 has no leader in time", r)
        time.sleep(0.1)
    expect(status["members"] == [{"node": 1, "role": "voter"}], "group show: members", r)
    expect(r.out.startswith("{\n  "), "group show pretty-prints", r)

    r = cli.run("group", "list")
    expect_rc(r, 0, "group list")
    lines = r.out.splitlines()
    expect(lines[0].split()[:3] == ["GROUP", "ROLE", "LEADER"], "group list header", r)
    row = next((l.split() for l in lines[1:] if l.split()[0] == str(GROUP)), None)
    expect(row is not None and row[1] == "leader" and row[2] == "1", "group list row", r)
    r = cli.run("group", "list", "--json")
    expect_rc(r, 0, "group list --json")
    expect([g["id"] for g in json.loads(r.out)["groups"]] == [GROUP], "group list --json", r)

    r = cli.run("group", "show", "99")
    expect_rc(r, 1, "group show of an unknown group")
    expect(r.err.startswith("raftd group show: 404 unknown_group"), "unknown_group shown", r)


def check_propose_read(cli):
    r = cli.run("propose", str(GROUP), '{"op":"put","key":"a","value":"one"}')
    expect_rc(r, 0, "propose DATA")
    expect(r.out == '{"ok":true,"prev":null}', "propose prints the app's result", r)
    expect(r.err.startswith("Raftd-Index: ") and int(r.err.split()[1]) >= 1,
           "propose prints Raftd-Index to stderr", r)
    first_index = int(r.err.split()[1])
    r = cli.run("propose", str(GROUP), "-", stdin=b'{"op":"put","key":"a","value":"two"}')
    expect_rc(r, 0, "propose -")
    expect(r.out == '{"ok":true,"prev":"one"}', "propose - reads stdin", r)
    expect(int(r.err.split()[1]) > first_index, "Raftd-Index grows", r)

    r = cli.run("read", str(GROUP), '{"op":"get","key":"a"}')
    expect_rc(r, 0, "read QUERY")
    expect(r.out == "two", "read prints the value", r)
    r = cli.run("read", str(GROUP), "-", "--stale", stdin=b'{"op":"get","key":"a"}')
    expect_rc(r, 0, "read - --stale")
    expect(r.out == "two", "stale read prints the value", r)
    r = cli.run("read", str(GROUP), '{"op":"get","key":"missing"}')
    expect_rc(r, 1, "read of an absent key (the app answers 404)")
    expect(json.loads(r.out)["error"] == "not_found", "the app's body is still printed", r)
    expect(r.err.startswith("raftd read: 404 not_found"), "read: the status is shown", r)

    r = cli.run("propose", "99", "x")
    expect_rc(r, 1, "propose to an unknown group")
    expect(r.err.startswith("raftd propose: 404 unknown_group"), "propose: error code shown", r)
    r = cli.run("read", "99", "x")
    expect_rc(r, 1, "read of an unknown group")
    expect("404 unknown_group" in r.err, "read: error code shown", r)


def check_status(cli, client_port):
    r = cli.run("status")
    expect_rc(r, 0, "status")
    endpoint = f"127.0.0.1:{client_port}"
    expect(f"http://{endpoint} (node 1)" in r.out, "status names the endpoint and node", r)
    lines = [l.split() for l in r.out.splitlines()]
    expect(["1", endpoint] == lines[3][:2] and lines[3][-1] == "yes",
           "status: the node table shows node 1 reachable", r)
    group_row = next((l for l in lines if l and l[0] == str(GROUP)), None)
    expect(group_row is not None and group_row[1:3] == ["leader", "1"],
           "status: the group table shows the group and its leader", r)
    expect(f"group {GROUP}: leader 1" in r.out, "status: a members section per group", r)
    member = next((l for l in lines if len(l) == 7 and l[:3] == ["1", "voter", "leader"]), None)
    expect(member is not None and member[6] == "0" and int(member[5]) >= 2,
           "status: member 1's applied index and lag", r)
    r = cli.run("status", "--json")
    expect_rc(r, 0, "status --json")
    j = json.loads(r.out)
    expect(j["node"] == 1 and j["cluster"]["nodes"][0]["reachable"] is True, "status --json", r)
    expect([g["id"] for g in j["views"]["1"]["groups"]] == [GROUP], "status --json views", r)


def check_auth_and_endpoints(cli, client_port):
    env = dict(cli.env)
    del env["RAFTD_TOKEN"]
    r = cli.run("group", "list", env=env)
    expect_rc(r, 1, "no token")
    expect(r.err.startswith("raftd group list: 401 unauthorized"), "401 shown", r)
    r = cli.run("group", "list", "--token", TOKEN, env=env)
    expect_rc(r, 0, "--token")
    del env["RAFTD_ENDPOINT"]
    r = cli.run("group", "list", "--token", TOKEN, "--endpoint",
                f"http://127.0.0.1:{client_port}/", env=env)
    expect_rc(r, 0, "--endpoint")
    # Nothing listens on a port just freed: the failure names the endpoint.
    dead = free_ports(1)[0]
    r = cli.run("status", "--endpoint", f"http://127.0.0.1:{dead}", "--timeout-ms", "2000")
    expect_rc(r, 1, "no server")
    expect(f"http://127.0.0.1:{dead}" in r.err, "no server: the endpoint is named", r)


def check_delete(cli):
    r = cli.run("group", "delete", str(GROUP))
    expect_rc(r, 0, "group delete")
    deadline = time.time() + START_WAIT_S
    while True:
        r = cli.run("group", "show", str(GROUP))
        if r.returncode == 1 and "404 unknown_group" in r.err:
            break
        expect(time.time() < deadline, "the deleted group is still shown", r)
        time.sleep(0.1)
    r = cli.run("group", "delete", str(GROUP))
    expect_rc(r, 1, "group delete of a deleted group")
    expect("404 unknown_group" in r.err, "delete: error code shown", r)


def check_cluster_nodes(cli):
    """cluster add-node prints the new node's entry; the same id again, and an address in use,
    are errors; remove-node takes it out, and again is a 404. (join_test.py starts such a node.)"""
    peer, client = free_ports(2)
    r = cli.run("cluster", "add-node", "5", "--peer", f"127.0.0.1:{peer}", "--client",
                f"127.0.0.1:{client}")
    expect_rc(r, 0, "cluster add-node")
    expect(json.loads(r.out) == {"id": 5, "peer": f"127.0.0.1:{peer}",
                                 "client": f"127.0.0.1:{client}", "reachable": False},
           "cluster add-node prints the node's entry", r)
    r = cli.run("cluster", "add-node", "5", "--peer", "127.0.0.1:1", "--client", "127.0.0.1:2")
    expect_rc(r, 1, "cluster add-node of an existing id")
    expect(r.err.startswith("raftd cluster add-node: 409 conflict: "), "409 conflict shown", r)
    r = cli.run("cluster", "add-node", "6", "--peer", f"127.0.0.1:{peer}", "--client",
                "127.0.0.1:2")
    expect_rc(r, 1, "cluster add-node with node 5's peer address")
    expect("400 bad_request" in r.err, "400 for an address in use", r)
    r = cli.run("cluster", "add-node", "6", "--peer", "localhost:1", "--client", "127.0.0.1:2")
    expect_rc(r, 1, "cluster add-node with a host name")
    r = cli.run("cluster", "add-node", "6", "--client", "127.0.0.1:2")
    expect_rc(r, 2, "cluster add-node without --peer")
    r = cli.run("cluster", "remove-node", "5")
    expect_rc(r, 0, "cluster remove-node")
    expect(json.loads(r.out) == {"id": 5, "removed": True}, "remove-node prints the removal", r)
    r = cli.run("cluster", "remove-node", "5")
    expect_rc(r, 1, "cluster remove-node of a removed node")
    expect("404 not_found" in r.err, "404 not_found shown", r)
    r = cli.run("cluster", "add-node", "5", "--peer", f"127.0.0.1:{peer}", "--client",
                f"127.0.0.1:{client}")
    expect_rc(r, 1, "cluster add-node of a removed id")
    expect("409 conflict" in r.err, "a removed id is never reused", r)


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    raftd, raftd_kv = sys.argv[1], sys.argv[2]
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    tmp = tempfile.mkdtemp(prefix="raftd-cli-test-")
    ok = False
    try:
        app_port = start_app(raftd_kv, tmp)
        client_port = start_node(raftd, tmp, app_port)
        env = dict(os.environ, RAFTD_ENDPOINT=f"http://127.0.0.1:{client_port}",
                   RAFTD_TOKEN=TOKEN)
        cli = Cli(raftd, env)
        for check in (lambda: check_usage(cli), lambda: check_groups(cli),
                      lambda: check_propose_read(cli), lambda: check_status(cli, client_port),
                      lambda: check_auth_and_endpoints(cli, client_port),
                      lambda: check_delete(cli), lambda: check_cluster_nodes(cli)):
            check()
        ok = True
        print("cli tests passed")
    except Exception as e:  # report, then clean up
        print(f"FAILED: {e}", file=sys.stderr)
        for name in ("raftd.log", "kv.log.txt"):
            path = os.path.join(tmp, name)
            if os.path.exists(path):
                with open(path, "rb") as f:
                    tail = f.read().decode(errors="replace").splitlines()[-30:]
                print(f"--- {name}, last lines:\n" + "\n".join(tail), file=sys.stderr)
    finally:
        kill_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
