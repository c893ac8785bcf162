#!/usr/bin/env python3
"""Soak: the webhook at a steady moderate rate for 10 minutes while its certificate is rotated
(Kubernetes-style symlink swap) and its config reloaded every few seconds. Reports failed
requests (must be 0), RSS and open fds at start and end (must be flat).

  bench/soak.py [--minutes 10] [--rps 200]      (needs h2load: apt-get install nghttp2-client)
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def publish(d, src, n):
    ts = f"..{n:06d}"
    os.makedirs(f"{d}/{ts}")
    for f in ("tls.crt", "tls.key"):
        shutil.copy(f"{src}/{f}", f"{d}/{ts}/{f}")
    os.symlink(ts, f"{d}/..data_tmp")
    old = os.readlink(f"{d}/..data") if os.path.islink(f"{d}/..data") else None
    os.rename(f"{d}/..data_tmp", f"{d}/..data")
    for f in ("tls.crt", "tls.key"):
        if not os.path.lexists(f"{d}/{f}"):
            os.symlink(f"..data/{f}", f"{d}/{f}")
    if old:
        shutil.rmtree(f"{d}/{old}", ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--rps", type=int, default=200, help="requests per second per connection (4 connections)")
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--quiet", "--release", "--locked", "--bin", "plx-store-webhook"], cwd=ROOT, check=True)
    webhook = os.path.join(ROOT, "target/release/plx-store-webhook")
    tmp = tempfile.mkdtemp(prefix="plx-soak-")
    # Two certificate sets with one caBundle-like trust: the client does not verify (h2load).
    for i in range(2):
        subprocess.run([webhook, "certs", "--ip", "127.0.0.1", "--out-dir", f"{tmp}/set{i}"], check=True, capture_output=True)
    os.makedirs(f"{tmp}/tls")
    publish(f"{tmp}/tls", f"{tmp}/set0", 0)
    configs = [os.path.join(ROOT, "examples", c) for c in ("store-ctxdir.yaml", "store-etc-gcs.yaml", "store-seed-filepath.yaml", "teams.yaml")]
    shutil.copy(configs[0], f"{tmp}/config.yaml")
    with open(os.path.join(ROOT, "tests/fixtures/apiserver/review-v1-generatename.json")) as f:
        review = json.load(f)
    with open(os.path.join(ROOT, "tests/fixtures/polyaxon-pods/job.gcs-ctxdir.json")) as f:
        review["request"]["object"] = json.load(f)
    with open(f"{tmp}/review.json", "w") as f:
        json.dump(review, f)
    port, admin = free_port(), free_port()
    p = subprocess.Popen([webhook, "serve", "--config", f"{tmp}/config.yaml", "--tls-cert", f"{tmp}/tls/tls.crt", "--tls-key", f"{tmp}/tls/tls.key",
                          "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}", "--reload-poll-seconds", "2"],
                         stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    seconds = int(a.minutes * 60)
    load = subprocess.Popen(["h2load", "--h1", "-c", "4", "--rps", str(a.rps), "-D", str(seconds), "-d", f"{tmp}/review.json",
                             "-H", "content-type: application/json", f"https://127.0.0.1:{port}/mutate"],
                            stdout=subprocess.PIPE, text=True)
    time.sleep(5)
    start_rss, start_fds = rss_kib(p.pid), fds(p.pid)
    stop = threading.Event()
    rotations = {"cert": 0, "config": 0}

    def churn():
        n = 0
        while not stop.wait(3):
            n += 1
            publish(f"{tmp}/tls", f"{tmp}/set{n % 2}", n)
            rotations["cert"] += 1
            if n % 2 == 0:
                shutil.copy(configs[(n // 2) % len(configs)], f"{tmp}/config.yaml.tmp")
                os.replace(f"{tmp}/config.yaml.tmp", f"{tmp}/config.yaml")
                rotations["config"] += 1

    t = threading.Thread(target=churn)
    t.start()
    out, _ = load.communicate(timeout=seconds + 120)
    stop.set()
    t.join()
    end_rss, end_fds = rss_kib(p.pid), fds(p.pid)
    metrics = subprocess.run(["curl", "-s", f"http://127.0.0.1:{admin}/metrics"], capture_output=True, text=True).stdout
    p.send_signal(signal.SIGTERM)
    p.wait(60)
    shutil.rmtree(tmp, ignore_errors=True)
    summary = next((l for l in out.splitlines() if l.startswith("requests:")), "?")
    status = next((l for l in out.splitlines() if l.startswith("status codes:")), "?")
    print(f"duration: {seconds}s, cert rotations: {rotations['cert']}, config reloads: {rotations['config']}")
    print(summary)
    print(status)
    print(f"RSS: start {start_rss / 1024:.1f} MiB, end {end_rss / 1024:.1f} MiB; open fds: start {start_fds}, end {end_fds}")
    print("\n".join(l for l in metrics.splitlines() if "reloads_total" in l))
    ok = " 0 failed, 0 errored, 0 timeout" in summary
    print("SOAK", "PASS" if ok and end_fds <= start_fds + 8 else "FAIL")


if __name__ == "__main__":
    main()
