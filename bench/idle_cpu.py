#!/usr/bin/env python3
"""CPU an idle replica uses: both listeners up, the config and certificate watchers running, no
traffic. Reads utime + stime of the process and of each thread from /proc.

    cargo build --release
    python3 bench/idle_cpu.py target/release/plx-store-webhook [--seconds 60] [--max-ticks-per-10s 1]

Starts `serve` on the shipped example config with a certificate from files (so the certificate
watcher runs too) on loopback, lets it settle past its first backstop poll, then measures for --seconds and exits non-zero when
the process used more than --max-ticks-per-10s clock ticks per 10 s. The timers that remain, each
with its reason, are listed in README "Observability" (the backstop poll of watched files).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (free ports, waiting for one)

ROOT = load.ROOT
TICK = os.sysconf("SC_CLK_TCK")


def ticks(stat_path):
    with open(stat_path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def threads(pid):
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            out[tid] = (name, ticks(f"/proc/{pid}/task/{tid}/stat"))
        except OSError:
            pass
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--seconds", type=int, default=60)
    # Past the first backstop poll (10 s), which starts the blocking thread the polls then reuse:
    # a one-time cost of start-up, not of being idle.
    ap.add_argument("--settle", type=float, default=12.0)
    ap.add_argument("--max-ticks-per-10s", type=float, default=1.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([args.binary, "certs", "--out-dir", tmp, "--dns", "localhost", "--force"],
                       check=True, stdout=subprocess.DEVNULL)
        tls, admin = load.free_port(), load.free_port()
        p = subprocess.Popen(
            [args.binary, "serve", "--config", os.path.join(ROOT, "examples/helm-values.yaml"),
             "--listen", f"127.0.0.1:{tls}", "--admin-listen", f"127.0.0.1:{admin}",
             "--tls-cert", os.path.join(tmp, "tls.crt"), "--tls-key", os.path.join(tmp, "tls.key")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            load.wait_port(admin)
            time.sleep(args.settle)
            before, per_before = ticks(f"/proc/{p.pid}/stat"), threads(p.pid)
            time.sleep(args.seconds)
            after, per_after = ticks(f"/proc/{p.pid}/stat"), threads(p.pid)
        finally:
            p.terminate()
            p.wait(timeout=30)
    used = after - before
    allowed = args.max_ticks_per_10s * args.seconds / 10
    print(f"idle {args.seconds} s: {used} clock ticks ({used / TICK * 1000:.0f} ms of CPU, "
          f"{used / args.seconds * 10:.2f} per 10 s; allowed {allowed:.0f})")
    for tid, (name, t) in sorted(per_after.items()):
        spent = t - per_before.get(tid, (name, 0))[1]
        if spent:
            print(f"  thread {name} ({tid}): {spent} ticks")
    if used > allowed:
        sys.exit(f"idle CPU over the bound: {used} > {allowed:.0f} ticks")


if __name__ == "__main__":
    main()
