#!/usr/bin/env python3
"""Instructions per request inside the running servers: noise-free companion to bench/load.py.

Runs plx-store-webhook, the null webhook and the JSON floor (see bench/load.py) one at a time
under `valgrind --tool=callgrind`, sends each the same real review body N1 and then N2 times over
TLS with h2load (HTTP/1.1, 16 connections), and reports (total(N2) - total(N1)) / (N2 - N1): the
instructions one request costs the server process, TLS, HTTP, routing, handler and logging
included, start-up excluded. Counts repeat to within a fraction of a percent from run to run,
unlike wall-clock load figures on a shared VM.

  bench/instructions.py [--n1 1000] [--n2 3000] [--before OLD_BINARY]   (needs valgrind and h2load)

`--before` adds an older plx-store-webhook build, run the same way, so a change is measured
against what it replaced.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (same helpers, same body, same binaries)

ROOT = load.ROOT


def instructions(cmd, port, body, n, out):
    """Total instructions of the server process that served `n` requests."""
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + cmd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        load.wait_port(port, timeout=120)
        run = subprocess.run(["h2load", "-c", "16", "-m", "1", "--h1", "-n", str(n), "-d", body,
                              "-H", "content-type: application/json", f"https://127.0.0.1:{port}/mutate"],
                             capture_output=True, text=True, timeout=600)
        if f"{n} succeeded" not in run.stdout:
            raise SystemExit(f"requests failed: {run.stdout[-400:]}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
    with open(out) as f:
        for line in f:
            m = re.match(r"(?:summary|totals): (\d+)", line)
            if m:
                return int(m.group(1))
    raise SystemExit(f"no totals in {out}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n1", type=int, default=1000)
    ap.add_argument("--n2", type=int, default=3000)
    ap.add_argument("--before", help="an older plx-store-webhook binary to count too")
    a = ap.parse_args()
    for tool in ("valgrind", "h2load"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} missing")
    webhook, null = load.build()
    tmp = tempfile.mkdtemp(prefix="plx-instr-")
    try:
        body, certs = load.prepare(webhook, tmp)
        port = load.free_port()
        tls = [f"{certs}/tls.crt", f"{certs}/tls.key"]
        servers = {
            "webhook": [webhook, "serve", "--config", os.path.join(ROOT, "examples/store-ctxdir.yaml"), "--tls-cert", tls[0],
                        "--tls-key", tls[1], "--listen", f"127.0.0.1:{port}", "--admin-listen", "off", "--drain-seconds", "0"],
            "null": [null, f"127.0.0.1:{port}"] + tls,
        }
        answer = f"{tmp}/answer.json"
        proc = subprocess.Popen(servers["webhook"], stderr=subprocess.DEVNULL)
        try:
            load.wait_port(port)
            with open(answer, "wb") as f:
                f.write(load.real_answer(port, body))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        servers["floor"] = servers["null"] + ["--validate-json", "--answer", answer]
        if a.before:
            servers["before"] = [os.path.abspath(a.before)] + servers["webhook"][1:]
        per = {}
        for name, cmd in servers.items():
            t1 = instructions(cmd, port, body, a.n1, f"{tmp}/{name}.1")
            t2 = instructions(cmd, port, body, a.n2, f"{tmp}/{name}.2")
            per[name] = (t2 - t1) / (a.n2 - a.n1)
            print(f"{name}: {per[name]:,.0f} instructions per request", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("| server | instructions / request | × null |")
    print("|---|---|---|")
    for name, n in per.items():
        print(f"| {name} | {n:,.0f} | {n / per['null']:.2f} |")


if __name__ == "__main__":
    main()
