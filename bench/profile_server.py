#!/usr/bin/env python3
"""Where the server's time goes at saturation: wall-clock attribution with `perf record`.

    cargo build --release     # or a build with symbols: see BENCHMARKS.md §8
    python3 bench/profile_server.py [--binary PATH] [--null PATH] [--seconds 5] [--conns 16] [--rate N] [--symbols N]

Runs the webhook (examples/store-ctxdir.yaml), then the null webhook, each pinned to core 0 and
loaded from core 1 with the same real review (7.6 KB, one line of JSON) (wrk, HTTP/1.1 keep-alive, one thread; or
h2load at a fixed total `--rate` so both servers see the same request rate), while
`perf record -e cpu-clock` samples the server process (a software clock: this VM exposes no
hardware counters). Every sample is put in one bucket by the symbol it landed in, and each
bucket is reported in microseconds of server CPU per request. Symbols need a binary that is
not stripped; the release profile strips, so build with
`CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only`.
Needs perf, wrk (or h2load with --rate) and taskset; run as root.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402
import wrk_load  # noqa: E402

ROOT = load.ROOT
FREQ = 4999

# First match wins. Kernel time inside `_raw_spin_unlock_irqrestore` is, on loopback, the
# interrupts-off section of waking the load client's thread on the other core (an IPI in a VM):
# the response is delivered to the client's socket in the server's context.
BUCKETS = [
    ("kernel: waking the load client (loopback delivery, IRQs off)", r"\[k\] _raw_spin_unlock_irqrestore"),
    ("kernel: TCP/IP, syscalls, copies", r"\[k\]"),
    ("TLS (AES-GCM, records)", r"ring_core|aes|gcm|ghash|sha256|rustls"),
    ("allocator (mimalloc)", r"\bmi_|_mi_|mimalloc|__rust_alloc|__rust_dealloc|__rust_realloc|finish_grow|RawVec"),
    ("libc memcpy/memset/memcmp", r"__mem(move|cpy|set|cmp)"),
    ("reading the review (JSON into the pod model)", r"serde_json::read|serde_json::de|serde_core::de|Deserialize|engine::pod|json_scan|admission::scan|from_utf8|MapAccess|SeqAccess|borrowed"),
    ("encoding the patch and the response", r"serde_json::ser|base64|response_for|format_escaped|jsonptr|json_patch|patch::|Serialize"),
    ("the log line", r"telemetry|tracing|log_buffer|Escaped|fmt::|FormatTime|time::"),
    ("metrics", r"metrics|prometheus"),
    ("the engine's decision", r"plx_store_core|reconcile|glob|keypath|volumes|inject"),
    ("HTTP, routing, runtime", r"hyper|http::|axum|tower|tokio|bytes::|h1|futures|mio|epoll|parking_lot|std::"),
]


def samples(data):
    out = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "dso,sym", "-F", "sample,dso,sym", "--stdio"],
                         capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = re.match(r"\s*(\d+)\s+(\S+)\s+(.*)$", line)
        if m:
            rows.append((int(m.group(1)), m.group(2), m.group(3).strip()))
    return rows


def bucket(dso, sym):
    text = f"{dso} {sym}"
    for name, pattern in BUCKETS:
        if re.search(pattern, text):
            return name
    return "other"


def profile(cmd, port, body, a, tmp, name):
    proc = subprocess.Popen(["taskset", "-c", "0"] + cmd, stderr=subprocess.DEVNULL)
    try:
        load.wait_port(port)
        script = f"{tmp}/post.lua"
        with open(script, "w") as f:
            f.write(wrk_load.LUA)
        wrk_load.SERVER_PID[port] = proc.pid
        wrk_load.run_wrk(port, a.conns, 1, script, body)  # warm-up
        data = f"{tmp}/{name}.perf"
        rec = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", str(FREQ), "-p", str(proc.pid), "-o", data],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        if a.rate:
            run = subprocess.run(["taskset", "-c", "1", "h2load", "--h1", f"-c{a.conns}", "-m1", f"--rps={max(a.rate // a.conns, 1)}",
                                  "-D", str(a.seconds), "-d", body, "-H", "content-type: application/json",
                                  f"https://127.0.0.1:{port}/mutate"], capture_output=True, text=True)
            m = re.search(r"(\d+) succeeded", run.stdout)
            requests = int(m.group(1)) if m else 0
        else:
            requests = wrk_load.run_wrk(port, a.conns, a.seconds, script, body)["requests"]
        rec.send_signal(signal.SIGINT)
        rec.wait(60)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    if not requests:
        raise SystemExit(f"{name}: no request succeeded")
    per = {}
    rows = samples(data)
    for count, dso, sym in rows:
        b = bucket(dso, sym)
        per[b] = per.get(b, 0) + count
    if a.symbols:
        print(f"\n{name}: top {a.symbols} symbols (µs of server CPU per request)")
        for count, dso, sym in sorted(rows, reverse=True)[:a.symbols]:
            print(f"  {count * 1e6 / FREQ / requests:6.2f}  {bucket(dso, sym)[:24]:24}  {sym[:110]}")
    return {b: n * 1e6 / FREQ / requests for b, n in per.items()}, requests


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/plx-store-webhook"))
    ap.add_argument("--null", default=os.path.join(ROOT, "target/release/examples/bench-null-webhook"))
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--symbols", type=int, default=0, help="also list the N hottest symbols of each server")
    ap.add_argument("--rate", type=int, help="total requests per second with h2load, instead of wrk at saturation")
    a = ap.parse_args()
    for tool in ("perf", "taskset", "h2load" if a.rate else "wrk"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} missing")
    tmp = tempfile.mkdtemp(prefix="plx-perf-")
    try:
        body, certs = load.prepare(a.binary, tmp)
        tls = [f"{certs}/tls.crt", f"{certs}/tls.key"]
        results = {}
        port = load.free_port()
        results["webhook"] = profile([a.binary, "serve", "--config", os.path.join(ROOT, "examples/store-ctxdir.yaml"),
                                      "--tls-cert", tls[0], "--tls-key", tls[1], "--listen", f"127.0.0.1:{port}",
                                      "--admin-listen", "off", "--drain-seconds", "0"], port, body, a, tmp, "webhook")
        port = load.free_port()
        results["null"] = profile([a.null, f"127.0.0.1:{port}"] + tls, port, body, a, tmp, "null")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load_desc = f"h2load at {a.rate} req/s" if a.rate else "wrk at saturation"
    print(f"perf cpu-clock at {FREQ} Hz, {a.conns} connections, {load_desc}, {a.seconds} s; "
          f"requests: webhook {results['webhook'][1]}, null {results['null'][1]}")
    print("| where (server CPU µs per request) | webhook | null | difference |")
    print("|---|---|---|---|")
    names = [n for n, _ in BUCKETS] + ["other"]
    w, n = results["webhook"][0], results["null"][0]
    for b in names:
        if b in w or b in n:
            print(f"| {b} | {w.get(b, 0):.1f} | {n.get(b, 0):.1f} | {w.get(b, 0) - n.get(b, 0):+.1f} |")
    print(f"| **total** | {sum(w.values()):.1f} | {sum(n.values()):.1f} | {sum(w.values()) - sum(n.values()):+.1f} |")


if __name__ == "__main__":
    main()
