#!/usr/bin/env python3
"""Load over HTTP/1.1 keep-alive (what the kube-apiserver speaks) with wrk, measuring the server,
not the load client.

    cargo build --release
    python3 bench/wrk_load.py [--seconds 5] [--runs 3] [--conns 1,16,64] [--before OLD_BINARY]
        [--only webhook,before] [--log-pipe]

Three servers, one at a time, each pinned to core 0 (`taskset -c 0`): plx-store-webhook on
examples/store-ctxdir.yaml, the null webhook (hyper + rustls, answers a constant) and the JSON
floor (the null webhook that also validates the body as JSON and sends the webhook's real
answer). wrk runs on core 1 with one thread, POSTing the same real review (7.6 KB). For every run
the script reads, from /proc, the CPU the server and the client used: the server's CPU per
request explains the throughput, and a run whose client used ≥ 90 % of its core is marked
CLIENT-BOUND and gives no ratio (a saturated client measures itself). Reported: min / median /
max of the runs, ratios against the null and the floor of the same run, p99 latency, the
webhook's peak RSS. `--before` adds an older plx-store-webhook build as a fourth server, so a
change is measured against what it replaced in the same run (the runs alternate between servers
point by point). `--log-pipe` sends each server's stderr into a pipe drained by a reader on the
client's core, as a container runtime does, instead of /dev/null. Needs wrk (apt-get install wrk)
and taskset.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (same binaries, certificates, body and answer)

ROOT = load.ROOT
TICK = os.sysconf("SC_CLK_TCK")
SATURATED = 0.90

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("PLX_BODY"), "rb")
wrk.body = f:read("*all")
f:close()
done = function(summary, latency, requests)
  io.write(string.format('RESULT {"requests": %d, "duration_us": %d, "errors": %d, "non2xx": %d, '
    .. '"p50_us": %d, "p99_us": %d, "p999_us": %d}\\n',
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
"""


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def run_wrk(port, conns, seconds, script, body):
    before_server = cpu_seconds(SERVER_PID[port])
    before_children = os.times()
    started = time.monotonic()
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", script,
         f"https://127.0.0.1:{port}/mutate"],
        capture_output=True, text=True, env=dict(os.environ, PLX_BODY=body), timeout=seconds + 60)
    wall = time.monotonic() - started
    after_children = os.times()
    server_cpu = cpu_seconds(SERVER_PID[port]) - before_server
    client_cpu = (after_children.children_user - before_children.children_user
                  + after_children.children_system - before_children.children_system)
    line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"wrk failed: {out.stdout}\n{out.stderr}")
    r = json.loads(line[len("RESULT "):])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["server_us_per_req"] = server_cpu * 1e6 / max(r["requests"], 1)
    r["server_cpu"] = server_cpu / wall
    r["client_cpu"] = client_cpu / wall
    return r


SERVER_PID = {}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--conns", default="1,16,64")
    ap.add_argument("--before", help="an older plx-store-webhook binary to measure in the same run")
    ap.add_argument("--only", help="comma-separated servers to run (webhook, before, null, floor)")
    ap.add_argument("--log-pipe", action="store_true", help="stderr into a drained pipe, not /dev/null")
    ap.add_argument("--fleet", action="store_true",
                    help="run the webhook with --fleet, its view synced against tests/e2e's real apiserver (the "
                         "review's namespace holds the store's Secret, so every lookup finds it and the answer is "
                         "unchanged); compare with --before target/release/plx-store-webhook (the same build without it)")
    a = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk missing: apt-get install wrk")
    webhook, null = load.build()
    tmp = tempfile.mkdtemp(prefix="plx-wrk-")
    body, _ = load.prepare(webhook, tmp)
    script = f"{tmp}/post.lua"
    with open(script, "w") as f:
        f.write(LUA)
    procs = {}
    drains = []

    def start(name, cmd):
        port = load.free_port()
        err = subprocess.DEVNULL
        if a.log_pipe:
            err = subprocess.PIPE
        p = subprocess.Popen(["taskset", "-c", "0"] + cmd(port), stderr=err)
        if a.log_pipe:
            # The container runtime's side of the pipe: read and discard, on the client's core.
            drains.append(subprocess.Popen(["taskset", "-c", "1", "cat"], stdin=p.stderr, stdout=subprocess.DEVNULL))
            p.stderr.close()
        procs[name] = (p, port)
        load.wait_port(port)
        return port

    def serve(binary, *extra, admin="off"):
        return lambda port: [binary, "serve", "--config", os.path.join(ROOT, "examples/store-ctxdir.yaml"),
                             "--tls-cert", f"{tmp}/certs/tls.crt", "--tls-key", f"{tmp}/certs/tls.key",
                             "--listen", f"127.0.0.1:{port}", "--admin-listen", admin, "--drain-seconds", "0", *extra]

    e2e = None
    fleet_args = []
    if a.fleet:
        e2e = apiserver_for_fleet(webhook)
        os.environ["KUBECONFIG"] = e2e.KUBECONFIG
        fleet_admin = f"127.0.0.1:{load.free_port()}"
        fleet_args = ["--fleet"]

    certs = [f"{tmp}/certs/tls.crt", f"{tmp}/certs/tls.key"]
    wport = start("webhook", serve(webhook, *fleet_args, admin=fleet_admin if a.fleet else "off"))
    if a.fleet:
        admin = fleet_admin
        load.wait_port(int(admin.rsplit(":", 1)[1]))
        deadline = time.time() + 60
        while time.time() < deadline and b"plx_webhook_fleet_synced 1" not in subprocess.run(
                ["curl", "-s", f"http://{admin}/metrics"], capture_output=True).stdout:
            time.sleep(0.2)
        print(f"fleet view synced: {time.time() < deadline}", flush=True)
    if a.before:
        start("before", serve(os.path.abspath(a.before)))
    start("null", lambda port: [null, f"127.0.0.1:{port}"] + certs)
    answer = f"{tmp}/answer.json"
    with open(answer, "wb") as f:
        f.write(load.real_answer(wport, body))
    start("floor", lambda port: [null, f"127.0.0.1:{port}"] + certs + ["--validate-json", "--answer", answer])
    if a.only:
        keep = set(a.only.split(","))
        for name in [n for n in procs if n not in keep]:
            p, _ = procs.pop(name)
            p.send_signal(signal.SIGTERM)
            p.wait(30)
    for p, port in procs.values():
        load.wait_port(port)
        SERVER_PID[port] = p.pid
    table = []
    try:
        for conns in [int(c) for c in a.conns.split(",")]:
            res = {name: [] for name in procs}
            for _, port in procs.values():
                run_wrk(port, conns, 1, script, body)  # warm-up
            for _ in range(a.runs):  # alternate, so drift on the VM hits every server alike
                for name, (_, port) in procs.items():
                    res[name].append(run_wrk(port, conns, a.seconds, script, body))
            table.append((conns, res))
            report_point(conns, res)
    finally:
        peak = load.rss_peak_kib(procs["webhook"][0].pid)
        for p, _ in procs.values():
            p.send_signal(signal.SIGTERM)
            p.wait(30)
        for d in drains:
            d.wait(30)
        if e2e:
            for name in reversed(list(e2e.PROCS)):
                e2e.stop(name)
            shutil.rmtree(e2e.T, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nwrk HTTP/1.1 keep-alive, 1 client thread on core 1, servers on core 0; {a.seconds} s per run, {a.runs} runs per point "
          f"(min / median / max); webhook peak RSS {peak / 1024:.1f} MiB; server stderr to {'a drained pipe' if a.log_pipe else '/dev/null'}")
    return 0


def apiserver_for_fleet(webhook):
    """tests/e2e's etcd and kube-apiserver (as a library), with the review's namespace and the
    store's Secret in it; pinned to core 1 with the client (idle during the runs: no events)."""
    import importlib.util  # noqa: PLC0415
    apiserver = subprocess.run([os.path.join(ROOT, "tests/e2e/build-apiserver.sh")], capture_output=True, text=True,
                               check=True).stdout.strip().splitlines()[-1]
    argv, sys.argv = sys.argv, ["run.py", apiserver, webhook, "-", "-", "-"]
    spec = importlib.util.spec_from_file_location("e2e", os.path.join(ROOT, "tests/e2e/run.py"))
    e2e = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(e2e)
    sys.argv = argv
    e2e.setup_apiserver()
    for p in e2e.PROCS.values():
        subprocess.run(["taskset", "-pc", "1", str(p.pid)], capture_output=True)
    e2e.kubectl("-n", "polyaxon", "create", "secret", "generic", "gcs-secret", "--from-literal=gc-secret.json={}")
    return e2e


def mmm(xs, fmt="{:.0f}"):
    xs = sorted(xs)
    return " / ".join(fmt.format(x) for x in (xs[0], statistics.median(xs), xs[-1]))


def report_point(conns, res):
    print(f"\n### {conns} connection{'s' if conns > 1 else ''}")
    print("| server | req/s | p99 ms | server CPU µs/req | server core busy | client core busy | errors |")
    print("|---|---|---|---|---|---|---|")
    for name, runs in res.items():
        print(f"| {name} | {mmm([r['rps'] for r in runs])} | {mmm([r['p99_us'] / 1000 for r in runs], '{:.2f}')} | "
              f"{mmm([r['server_us_per_req'] for r in runs], '{:.1f}')} | {mmm([r['server_cpu'] * 100 for r in runs])} % | "
              f"{mmm([r['client_cpu'] * 100 for r in runs])} % | {sum(r['errors'] + r['non2xx'] for r in runs)} |")
    bound = {n: any(r["client_cpu"] >= SATURATED for r in runs) for n, runs in res.items()}
    med = {n: statistics.median(r["rps"] for r in runs) for n, runs in res.items()}
    p99 = {n: statistics.median(r["p99_us"] for r in runs) for n, runs in res.items()}
    for base in ("before", "null", "floor"):
        if "webhook" not in res or base not in res:
            continue
        if bound["webhook"] or bound[base]:
            print(f"webhook ÷ {base}: no ratio — CLIENT-BOUND ({', '.join(n for n, b in bound.items() if b)})")
        else:
            print(f"webhook ÷ {base}: throughput {med['webhook'] / med[base]:.2f}×, p99 {p99['webhook'] / p99[base]:.2f}×")
    cpu = {n: statistics.median(r["server_us_per_req"] for r in runs) for n, runs in res.items()}
    for base in ("before", "null", "floor"):
        if "webhook" in res and base in res:
            # Capacity on one core is 1 / CPU per request: valid even where the client saturated.
            print(f"webhook ÷ {base} by server CPU per request: capacity {cpu[base] / cpu['webhook']:.2f}×")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
