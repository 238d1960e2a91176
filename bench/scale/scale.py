#!/usr/bin/env python3
"""Helpers of bench/scale/run.sh that need more than curl and jq: creating many groups over
keep-alive connections, and the final table.

  scale.py create FIRST LAST CONNS PORT...   POST /v1/groups {"id": g, "members": [1,2,3]} for
                                             FIRST <= g <= LAST over CONNS connections spread over
                                             the ports; prints a JSON line {created, seconds, ...}
  scale.py report FILE                       the human table of the RESULT lines in FILE
"""
import http.client
import json
import statistics
import sys
import threading
import time


def request(conn, method, path, body=None):
    conn.request(method, path, body, {"Content-Type": "application/json"} if body else {})
    r = conn.getresponse()
    return r.status, r.read()


def create(first, last, conns, ports):
    ids = list(range(first, last + 1))
    errors, retries = [], [0]
    lock = threading.Lock()

    def run(part, port):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for g in part:
            body = json.dumps({"id": g, "members": [1, 2, 3]})
            for attempt in range(100):
                try:
                    status, data = request(c, "POST", "/v1/groups", body)
                except (OSError, http.client.HTTPException) as e:
                    status, data = 0, str(e).encode()
                    c.close()
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                # 409 after a retry: an earlier try did create it.
                if status == 201 or (status == 409 and attempt > 0):
                    break
                if status not in (0, 503, 504):
                    with lock:
                        errors.append(f"group {g}: {status} {data[:200]!r}")
                    return
                with lock:
                    retries[0] += 1
                time.sleep(0.1)
            else:
                with lock:
                    errors.append(f"group {g}: still {status} after 100 tries")
                return

    t0 = time.monotonic()
    threads = [threading.Thread(target=run, args=(ids[i::conns], ports[i % len(ports)]))
               for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.monotonic() - t0
    if errors:
        sys.exit("scale.py create: " + "; ".join(errors[:5]))
    print(json.dumps({"created": len(ids), "seconds": round(secs, 3),
                      "groups_per_s": round(len(ids) / secs, 1), "retries": retries[0]}))


def spread(xs):
    xs = sorted(xs)
    return statistics.median(xs), xs[0], xs[-1]


def fmt(xs, digits=0, unit=""):
    m, lo, hi = spread(xs)
    f = f"{{:,.{digits}f}}"
    return f"{f.format(m)}{unit} [{f.format(lo)}..{f.format(hi)}] (n={len(xs)})"


def report(path):
    rows = []
    for line in open(path):
        if line.startswith("RESULT "):
            rows.append(json.loads(line[7:]))
    by = {}
    for r in rows:
        by.setdefault(r["kind"], []).append(r)
    loads = sorted(float(r["loadavg"].split()[0]) for r in rows)
    out = []

    def row(what, target, measured, verdict):
        out.append(f"| {what} | {target} | {measured} | {verdict} |")

    def verdict(ok):
        return "met" if ok else "MISSED"

    create_rows = by.get("create", [])
    for r in create_rows:
        row(f"create {r['groups']} groups via POST /v1/groups ({r['conns']} connections)", "",
            f"{r['seconds']:.1f} s, {r['groups_per_s']:,.0f} groups/s", "")
    idle = {q: [r for r in by.get("idle", []) if r["phase"] == q]
            for q in ("empty", "groups", "groups_noquiesce", "groups_nocoalesce")}
    if idle["empty"] and idle["groups"]:
        n = idle["groups"][0]["groups"]
        cpu0 = [c for r in idle["empty"] for c in r["raftd_cpu_pct"]]
        cpu1 = [c for r in idle["groups"] for c in r["raftd_cpu_pct"]]
        row("raftd CPU per node, idle, no groups", "", fmt(cpu0, 3, " %"), "")
        row(f"raftd CPU per node, {n:,} idle groups, quiescing on", "<= 1 % of a core",
            fmt(cpu1, 3, " %"), verdict(spread(cpu1)[0] <= 1.0))
        kv1 = [c for r in idle["groups"] for c in r["kv_cpu_pct"]]
        row(f"raftd-kv CPU per node, {n:,} idle groups", "", fmt(kv1, 3, " %"), "")
        msgs = [m for r in idle["groups"] for m in r["msgs_sent_per_s"]]
        row(f"messages sent per s per node, {n:,} idle groups, quiescing on", "",
            fmt(msgs, 1), "")
    for phase, what in (("groups_noquiesce", "quiescing off"),
                        ("groups_nocoalesce", "quiescing and heartbeat coalescing off")):
        if not idle[phase]:
            continue
        n = idle[phase][0]["groups"]

        def per_node(key, rs=idle[phase]):
            return [x for r in rs for x in r.get(key, [])]
        row(f"raftd CPU per node, {n:,} idle groups, {what}", "",
            fmt(per_node("raftd_cpu_pct"), 2, " %"), "")
        row(f"messages sent per s per node, {n:,} idle groups, {what}", "",
            fmt(per_node("msgs_sent_per_s"), 0), "")
        beats = per_node("heartbeats_sent_per_s")
        if beats:
            row("of those, heartbeats (and answers) per s; coalesced into lists", "",
                fmt(beats, 0) + "; " + fmt(per_node("heartbeats_coalesced_per_s"), 0), "")
            row(f"frames / bytes sent per s per node, {what}", "",
                fmt(per_node("frames_sent_per_s"), 0) + " / "
                + fmt(per_node("bytes_sent_per_s"), 0, " B"), "")
    for r in by.get("rss", []):
        per = r["raftd_bytes_per_group"]
        row(f"raftd RSS per group per node ({r['groups']:,} groups, {r['when']})", "<= 4 KiB",
            "nodes " + ", ".join(f"{b:,.0f} B" for b in per)
            + f"; WAL cache {', '.join(f'{c / 1048576:.1f}' for c in r['wal_cache_bytes'])} MiB",
            verdict(max(per) <= 4096))
        row(f"raftd-kv RSS per group per node ({r['when']})", "",
            ", ".join(f"{b:,.0f} B" for b in r["kv_bytes_per_group"]), "")
    rs = by.get("restart", [])
    if rs:
        n = rs[0]["groups"]
        row(f"restart of node 1 with {n:,} groups: start to /readyz 200", "",
            fmt([r["ready_s"] for r in rs], 2, " s"), "")
        row("same: start to WAL recovered (log line 'serving clients')", "",
            fmt([r["recovered_s"] for r in rs], 2, " s"), "")
        row("same: start to all groups started (last 'group N: started' line)", "",
            fmt([r["started_s"] for r in rs], 2, " s"), "")
        row("same: start to every group led, seen from node 1", "",
            fmt([r["led_s"] for r in rs], 2, " s"), "")
        rates = [r["wal_mb_per_s"] for r in rs if r["wal_mb_per_s"] is not None]
        if rates:
            row(f"same: WAL bytes / time to recovered ({rs[-1]['wal_bytes'] / 1e6:.1f} MB)", "",
                fmt(rates, 1, " MB/s"), "")
    act = by.get("active", [])
    if act:
        ratio = [r["ratio"] for r in act]
        one = [r["one_rps"] for r in act]
        many = [r["many_rps"] for r in act]
        n = act[0]["active_groups"]
        row(f"writes/s, 1 group ({act[0]['conns']} connections, {act[0]['value_size']} B)", "",
            fmt(one, 0), "")
        row(f"writes/s, {n:,} groups active, same load", "", fmt(many, 0), "")
        row(f"ratio {n:,} groups / 1 group (per round)", ">= 0.9x", fmt(ratio, 2, "x"),
            verdict(spread(ratio)[0] >= 0.9))
        for key, what in (("cpu_us_per_write", "CPU us per write (6 processes)"),
                          ("fsyncs_per_kwrite", "raftd WAL fdatasyncs per 1,000 writes (3 nodes)"),
                          ("app_calls_per_kwrite", "app calls per 1,000 writes (3 nodes)"),
                          ("msgs_per_write", "peer messages per write (3 nodes)"),
                          ("heartbeats_per_write", "of those, heartbeats and their answers")):
            if key not in act[0]["one"]:
                continue  # results of a run before the field existed
            digits = 2 if key.endswith("per_write") and key != "cpu_us_per_write" else 0
            row(f"{what}: 1 group / {n:,} groups", "",
                fmt([r["one"][key] for r in act], digits) + " / "
                + fmt([r["many"][key] for r in act], digits), "")
    print("| Measurement | Target | Median [min..max] | |")
    print("| --- | --- | --- | --- |")
    print("\n".join(out))
    if loads:
        print(f"\nload average (1 min) at the measurements: {loads[0]:.2f}..{loads[-1]:.2f} "
              f"on {next((r['cpus'] for r in rows if 'cpus' in r), '?')} CPUs")


def main():
    cmd = sys.argv[1]
    if cmd == "create":
        create(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), [int(p) for p in sys.argv[5:]])
    elif cmd == "report":
        report(sys.argv[2])
    else:
        sys.exit(f"scale.py: unknown command {cmd}")


if __name__ == "__main__":
    main()
