#!/usr/bin/env python3
"""Memory per idle connection, and the worst case at the --max-connections cap.

    cargo build --release
    python3 bench/idle_connections.py target/release/plx-store-webhook [--connections 2048]

Starts the webhook on loopback with a generated certificate, then, reading its RSS from /proc:
  1. opens N TLS connections that complete the handshake and send nothing;
  2. opens N keep-alive connections that each send one admission review and then idle (the
     apiserver's connection pool between bursts);
  3. with --max-connections N, opens N + 200: the extra ones must be closed at once, and RSS at
     the cap is the worst case the Deployment's memory limit must cover.
Timeouts are raised for steps 1-2 so nothing is closed while measuring. Loopback only.
"""

import argparse
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start(binary, certs, port, admin, extra):
    args = [binary, "serve", "--config", os.path.join(ROOT, "examples/store-ctxdir.yaml"),
            "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}",
            "--tls-cert", f"{certs}/tls.crt", "--tls-key", f"{certs}/tls.key"] + extra
    env = dict(os.environ, RUST_LOG="warn")
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return p
        except OSError:
            time.sleep(0.1)
    p.kill()
    raise SystemExit("the webhook did not start")


def review_request():
    with open(os.path.join(ROOT, "tests/fixtures/apiserver/review-v1-generatename.json")) as f:
        r = json.load(f)
    with open(os.path.join(ROOT, "tests/fixtures/polyaxon-pods/job.gcs-ctxdir.json")) as f:
        r["request"]["object"] = json.load(f)
    body = json.dumps(r).encode()
    head = (f"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head + body


def open_conns(ctx, port, n, request=None):
    conns = []
    for _ in range(n):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="localhost")
        if request:
            s.sendall(request)
            got = b""
            while b"\r\n\r\n" not in got:
                got += s.recv(65536)
            head, _, rest = got.partition(b"\r\n\r\n")
            length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
            while len(rest) < length:
                rest += s.recv(65536)
        conns.append(s)
    return conns


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--connections", type=int, default=2048)
    a = ap.parse_args()
    n = a.connections
    with tempfile.TemporaryDirectory() as tmp:
        certs = os.path.join(tmp, "certs")
        subprocess.run([a.binary, "certs", "--out-dir", certs, "--dns", "localhost", "--ip", "127.0.0.1"],
                       check=True, stdout=subprocess.DEVNULL)
        ctx = ssl.create_default_context(cafile=f"{certs}/ca.crt")
        ctx.set_alpn_protocols(["http/1.1"])
        request = review_request()
        results = {}

        # Each measurement in a fresh process: memory freed by one batch and kept by the
        # allocator would otherwise hide the next batch's cost.
        for label, req in (("handshake_only", None), ("after_one_request", request)):
            port, admin = free_port(), free_port()
            p = start(a.binary, certs, port, admin, ["--max-connections", str(n + 100),
                                                      "--header-timeout-seconds", "600", "--idle-timeout-seconds", "600"])
            try:
                warm = open_conns(ctx, port, 20, request)  # allocator and TLS state warmed up
                for c in warm:
                    c.close()
                time.sleep(0.5)
                base = rss_kib(p.pid)
                conns = open_conns(ctx, port, n, req)
                time.sleep(0.5)
                results[f"{label}_kib_per_conn"] = round((rss_kib(p.pid) - base) / n, 1)
                results["base_rss_kib"] = base
                for c in conns:
                    c.close()
            finally:
                p.terminate()
                p.wait(timeout=30)

        port, admin = free_port(), free_port()
        p = start(a.binary, certs, port, admin, ["--max-connections", str(n),
                                                  "--header-timeout-seconds", "600", "--idle-timeout-seconds", "600"])
        try:
            base = rss_kib(p.pid)
            held = open_conns(ctx, port, n, request)
            refused = 0
            t0 = time.monotonic()
            for _ in range(200):
                try:
                    open_conns(ctx, port, 1)
                except (OSError, ssl.SSLError):
                    refused += 1
            refuse_ms = (time.monotonic() - t0) * 1000 / 200
            time.sleep(0.5)
            at_cap = rss_kib(p.pid)
            results["cap"] = n
            results["rss_at_cap_mib"] = round(at_cap / 1024, 1)
            results["rss_before_mib"] = round(base / 1024, 1)
            results["refused_over_cap"] = f"{refused}/200"
            results["refusal_ms_each"] = round(refuse_ms, 2)
            for c in held:
                c.close()
        finally:
            p.terminate()
            p.wait(timeout=30)
        print(json.dumps(results, indent=2))
        return 0 if results["refused_over_cap"] == "200/200" else 1


if __name__ == "__main__":
    sys.exit(main())
