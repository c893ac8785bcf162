#!/usr/bin/env python3
"""Server load benchmark: plx-store-webhook against a null webhook on the same stack.

A third server, the *JSON floor*, is the null webhook that also validates each body as JSON and
answers with the webhook's real answer (same size): what any JSON webhook must pay for this body
and this answer, whatever its logic. All three are driven in the same run by h2load over TLS with a real review body (an 11 KB Polyaxon
run pod), at 1, 16 and 64 keep-alive connections, over HTTP/1.1 and HTTP/2, each point 5 times.
Server pinned to core 0, client to core 1 (taskset). Prints a Markdown table with throughput,
p50/p99/p99.9 latency (median of 5 runs, with min-max), the ratios to the null webhook, and the
webhook's peak RSS.

  bench/load.py [--seconds 4] [--runs 5]      (needs h2load: apt-get install nghttp2-client)
"""
import argparse
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"port {port} never opened")


def pct(sorted_values, p):
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * len(sorted_values))) - 1))
    return sorted_values[i]


def h2load(port, body, conns, proto, seconds, log):
    n_threads = 1
    args = ["taskset", "-c", "1", "h2load", "-c", str(conns), "-m", "1", "-t", str(n_threads), "-D", str(seconds),
            "--warm-up-time=1", "-d", body, "-H", "content-type: application/json", "--log-file", log]
    if proto == "h1":
        args.append("--h1")
    args.append(f"https://127.0.0.1:{port}/mutate?timeout=5s")
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60)
    lat, ok, first, last = [], 0, None, None
    with open(log) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3:
                continue
            start_us, status, dur_us = int(parts[0]), int(parts[1]), int(parts[2])
            first = start_us if first is None else min(first, start_us)
            last = start_us + dur_us if last is None else max(last, start_us + dur_us)
            if status == 200:
                ok += 1
                lat.append(dur_us / 1000.0)
    errors = sum(1 for line in out.stdout.splitlines() if "errored" in line and not line.strip().endswith("0 errored"))
    lat.sort()
    span = max(1e-9, ((last or 0) - (first or 0)) / 1e6)
    return {"rps": ok / span, "p50": pct(lat, 50), "p99": pct(lat, 99), "p999": pct(lat, 99.9), "n": ok,
            "failed": "0 failed" not in out.stdout, "raw": out.stdout[-400:]}


def real_answer(port, body):
    """The webhook's answer to the benchmark body, for the JSON floor to send back."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with open(body, "rb") as f:
        req = urllib.request.Request(f"https://127.0.0.1:{port}/mutate", data=f.read(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
        out = resp.read()
    if b'"patch"' not in out:
        raise SystemExit(f"the webhook did not patch the benchmark pod: {out[:300]!r}")
    return out


def rss_peak_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def build():
    """The release webhook binary and the null webhook (the baseline), built from this tree."""
    subprocess.run(["cargo", "build", "--quiet", "--release", "--locked", "--bin", "plx-store-webhook", "--example", "bench-null-webhook"],
                   cwd=ROOT, check=True)
    return (os.path.join(ROOT, "target/release/plx-store-webhook"), os.path.join(ROOT, "target/release/examples/bench-null-webhook"))


def prepare(webhook, tmp):
    """Serving certificates in tmp/certs and the benchmark body: the apiserver's captured v1 review
    carrying the Polyaxon converter's gcs-ctxdir pod. Returns (body path, certs dir)."""
    subprocess.run([webhook, "certs", "--ip", "127.0.0.1", "--out-dir", f"{tmp}/certs"], check=True, capture_output=True)
    with open(os.path.join(ROOT, "tests/fixtures/apiserver/review-v1-generatename.json")) as f:
        review = json.load(f)
    with open(os.path.join(ROOT, "tests/fixtures/polyaxon-pods/job.gcs-ctxdir.json")) as f:
        review["request"]["object"] = json.load(f)
    review["request"]["namespace"] = "polyaxon"
    body = f"{tmp}/review.json"
    with open(body, "w") as f:
        json.dump(review, f)
    return body, f"{tmp}/certs"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--conns", default="1,16,64")
    ap.add_argument("--protos", default="h1,h2")
    a = ap.parse_args()
    if not shutil.which("h2load"):
        raise SystemExit("h2load missing: apt-get install nghttp2-client")
    webhook, null = build()
    tmp = tempfile.mkdtemp(prefix="plx-bench-")
    body, _ = prepare(webhook, tmp)
    servers = {}
    wport, nport = free_port(), free_port()
    servers["webhook"] = (subprocess.Popen(["taskset", "-c", "0", webhook, "serve", "--config", os.path.join(ROOT, "examples/store-ctxdir.yaml"),
                                            "--tls-cert", f"{tmp}/certs/tls.crt", "--tls-key", f"{tmp}/certs/tls.key", "--listen", f"127.0.0.1:{wport}",
                                            "--admin-listen", "off", "--drain-seconds", "0"],
                                           stderr=subprocess.DEVNULL), wport)
    servers["null"] = (subprocess.Popen(["taskset", "-c", "0", null, f"127.0.0.1:{nport}", f"{tmp}/certs/tls.crt", f"{tmp}/certs/tls.key"],
                                        stderr=subprocess.DEVNULL), nport)
    wait_port(wport)
    answer = f"{tmp}/answer.json"
    with open(answer, "wb") as f:
        f.write(real_answer(wport, body))
    fport = free_port()
    servers["floor"] = (subprocess.Popen(["taskset", "-c", "0", null, f"127.0.0.1:{fport}", f"{tmp}/certs/tls.crt", f"{tmp}/certs/tls.key",
                                          "--validate-json", "--answer", answer], stderr=subprocess.DEVNULL), fport)
    for _, (_, port) in servers.items():
        wait_port(port)
    rows = []
    try:
        for proto in a.protos.split(","):
            for conns in [int(c) for c in a.conns.split(",")]:
                res = {}
                for name, (_, port) in servers.items():
                    runs = []
                    for r in range(a.runs):
                        runs.append(h2load(port, body, conns, proto, a.seconds, f"{tmp}/{name}-{proto}-{conns}-{r}.log"))
                    res[name] = runs
                med = {n: {k: statistics.median(x[k] for x in runs) for k in ("rps", "p50", "p99", "p999")} for n, runs in res.items()}
                rng = {n: (min(x["rps"] for x in runs), max(x["rps"] for x in runs)) for n, runs in res.items()}
                failed = any(x["failed"] for runs in res.values() for x in runs)
                rows.append((proto, conns, med, rng, failed))
                w, n, fl = med["webhook"], med["null"], med["floor"]
                print(f"{proto} c={conns}: webhook {w['rps']:.0f}/s p99 {w['p99']:.3f} ms | null {n['rps']:.0f}/s p99 {n['p99']:.3f} ms | "
                      f"floor {fl['rps']:.0f}/s p99 {fl['p99']:.3f} ms | ratio {w['rps'] / n['rps']:.2f}x thr, {w['p99'] / n['p99']:.2f}x p99 "
                      f"(floor {fl['rps'] / n['rps']:.2f}x, {fl['p99'] / n['p99']:.2f}x){' FAILURES' if failed else ''}", file=sys.stderr, flush=True)
    finally:
        peak = rss_peak_kib(servers["webhook"][0].pid)
        for p, _ in servers.values():
            p.send_signal(signal.SIGTERM)
            p.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nh2load {a.seconds}s per run, {a.runs} runs per point (median, throughput min-max); server on core 0, client on core 1; body {os.path.getsize(os.path.join(ROOT, 'tests/fixtures/polyaxon-pods/job.gcs-ctxdir.json'))} B pod\n")
    print("| proto | conns | webhook req/s (min-max) | null req/s (min-max) | thr ratio | webhook p50 / p99 / p99.9 ms | null p50 / p99 / p99.9 ms | p99 ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for proto, conns, med, rng, failed in rows:
        w, n = med["webhook"], med["null"]
        print(f"| {proto} | {conns} | {w['rps']:.0f} ({rng['webhook'][0]:.0f}-{rng['webhook'][1]:.0f}) | {n['rps']:.0f} ({rng['null'][0]:.0f}-{rng['null'][1]:.0f}) | "
              f"{w['rps'] / n['rps']:.2f} | {w['p50']:.3f} / {w['p99']:.3f} / {w['p999']:.3f} | {n['p50']:.3f} / {n['p99']:.3f} / {n['p999']:.3f} | "
              f"{w['p99'] / n['p99']:.2f} |{' FAILED REQUESTS' if failed else ''}")
    print("\nJSON floor (the null webhook + validating the body + sending the webhook's real answer):\n")
    print("| proto | conns | floor req/s (min-max) | floor / null thr | floor p50 / p99 / p99.9 ms | floor / null p99 | webhook / floor thr | webhook / floor p99 |")
    print("|---|---|---|---|---|---|---|---|")
    for proto, conns, med, rng, failed in rows:
        w, n, fl = med["webhook"], med["null"], med["floor"]
        print(f"| {proto} | {conns} | {fl['rps']:.0f} ({rng['floor'][0]:.0f}-{rng['floor'][1]:.0f}) | {fl['rps'] / n['rps']:.2f} | "
              f"{fl['p50']:.3f} / {fl['p99']:.3f} / {fl['p999']:.3f} | {fl['p99'] / n['p99']:.2f} | {w['rps'] / fl['rps']:.2f} | {w['p99'] / fl['p99']:.2f} |")
    print(f"\nwebhook peak RSS: {peak / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
