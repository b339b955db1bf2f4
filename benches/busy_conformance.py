#!/usr/bin/env python3
"""/conformance latency while four heavy requests run (issue 10: p99 < 10 ms).

Starts `yizhangtu serve` on a fresh seeded database, keeps four heavy requests in flight the whole
time (each client asks again as soon as it is answered: coverage of a district village by village,
features of a district, a GeoPackage export, a low-zoom tile over every layer with a filter), and
meanwhile asks /conformance one request at a time on a kept-alive connection. Prints p50, p99 and
the maximum, and how many heavy answers came back (and with which statuses).

    cargo build --release && python3 benches/busy_conformance.py [--binary target/release/yizhangtu]
        [--requests 2000] [--warmup 100]

Standard library only. A benchmark, not a test: nothing here asserts a time.
"""

import argparse
import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HEAVY = [
    "/areas/500111/coverage?by=village",
    "/areas/500156/features",
    "/export?format=gpkg&layers=villages,towns,projects",
    "/tiles/districts,towns,villages,projects,vegetable_bases/2/3/1.mvt?filter=id%20%3C%3E%20%27x%27",
]


def start(binary, db):
    env = dict(os.environ, YIZHANGTU_NO_NPM="1")
    proc = subprocess.Popen(
        [binary, "serve", "--db", db, "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    for line in proc.stdout:
        m = re.search(r" at http://([0-9.]+):(\d+)/", line)
        if m:
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc, m.group(1), int(m.group(2))
    proc.kill()
    sys.exit("serve ended before it listened")


def get(conn, path):
    conn.request("GET", path)
    r = conn.getresponse()
    r.read()
    return r.status


def heavy_loop(host, port, path, stop, answered):
    while not stop.is_set():
        conn = http.client.HTTPConnection(host, port, timeout=120)
        try:
            status = get(conn, path)
            # A tile over every layer is cached after the first answer: vary the query.
            if "/tiles/" in path:
                path = path + "%20"
        except OSError:
            status = "error"
        finally:
            conn.close()
        answered.append((path.split("?")[0], status))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=None)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=100)
    args = ap.parse_args()
    binary = args.binary
    if binary is None:
        for b in ("target/release/yizhangtu", "target/debug/yizhangtu"):
            if os.path.exists(b):
                binary = b
                break
    if binary is None:
        sys.exit("build yizhangtu first (cargo build --release)")
    with tempfile.TemporaryDirectory() as d:
        proc, host, port = start(binary, os.path.join(d, "bench.db"))
        try:
            stop = threading.Event()
            answered = []
            threads = [
                threading.Thread(target=heavy_loop, args=(host, port, p, stop, answered), daemon=True)
                for p in HEAVY
            ]
            for t in threads:
                t.start()
            time.sleep(1.0)
            conn = http.client.HTTPConnection(host, port, timeout=30)
            for _ in range(args.warmup):
                get(conn, "/conformance")
            times = []
            for _ in range(args.requests):
                t0 = time.perf_counter()
                status = get(conn, "/conformance")
                times.append((time.perf_counter() - t0) * 1000.0)
                assert status == 200, status
            conn.close()
            health = http.client.HTTPConnection(host, port, timeout=30)
            health.request("GET", "/healthz")
            jobs = health.getresponse().read().decode()
            stop.set()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    times.sort()
    p = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    print(f"binary: {binary}")
    print(
        f"/conformance while 4 heavy requests run: n={len(times)} "
        f"p50={p(0.50):.2f} ms p99={p(0.99):.2f} ms max={times[-1]:.2f} ms "
        f"mean={statistics.mean(times):.2f} ms"
    )
    kinds = {}
    for path, status in answered:
        kinds.setdefault((path, status), 0)
        kinds[(path, status)] += 1
    for (path, status), n in sorted(kinds.items(), key=str):
        print(f"  heavy {path}: {n} × {status}")
    print(f"  /healthz at the end: {jobs}")


if __name__ == "__main__":
    main()
