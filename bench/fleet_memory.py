#!/usr/bin/env python3
"""Memory of the fleet view per run pod, against the real kube-apiserver of tests/e2e.

    tests/e2e/build-apiserver.sh            # once (cached)
    cargo build --release
    python3 bench/fleet_memory.py target/release/plx-store-webhook [--pods 3000] [--fat 500]
    python3 bench/fleet_memory.py target/release/plx-store-webhook --ci   # both, with the bounds

Bounds (issue #31), checked on every run: with --fat N pods each carrying a legal 200 KiB
`operation.polyaxon.com/owner`, RSS < 48 MiB once synced and peak < 96 MiB; with --pods N
ordinary pods, at most 2 KiB a pod after a relist, peak < 96 MiB. The fat pods are created (and
deleted) first, so the peak covers both.

Starts etcd and the apiserver as tests/e2e does (loopback, temp dirs), then two webhooks on the
shipped teams config: one without --fleet (today's), one with --fleet as the webhook's
ServiceAccount bound by the RBAC `rbac` prints. Reads their RSS (/proc) with the view synced on
no pods, creates N run pods as Polyaxon's converter makes them (after our webhook: annotated) in
ten team namespaces, waits until /fleet counts them all, and reads RSS again, then once more after
a forced relist (the apiserver restarted). Reports KiB per pod for the fleet webhook, the
unchanged one beside it as the control. Every process is stopped at the end.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_kib(pid, field="VmRSS:"):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(field))


def cpu_s(pid):
    """User + system CPU seconds of `pid` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def slow_wait(what, fn, timeout):
    """Poll every 2 s (each poll builds a report: few polls keep the CPU figures the watches')."""
    end = time.time() + timeout
    while time.time() < end:
        if fn():
            return
        time.sleep(2)
    raise AssertionError(f"timed out waiting for {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("webhook")
    ap.add_argument("--pods", type=int, default=3000)
    ap.add_argument("--fat", type=int, default=0, help="first, this many run pods with a 200 KiB owner annotation")
    ap.add_argument("--ci", action="store_true", help="--fat 500 --pods 3000 (the CI run)")
    args = ap.parse_args()
    if args.ci:
        args.fat, args.pods = 500, 3000
    apiserver = subprocess.run([os.path.join(ROOT, "tests/e2e/build-apiserver.sh")], capture_output=True,
                               text=True, check=True).stdout.strip().splitlines()[-1]
    # The e2e harness, as a library: its process handling, apiserver setup and helpers.
    sys.argv = ["run.py", apiserver, os.path.abspath(args.webhook), "-", "-", "-"]
    spec = importlib.util.spec_from_file_location("e2e", os.path.join(ROOT, "tests/e2e/run.py"))
    e2e = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(e2e)
    try:
        e2e.setup_apiserver()
        cfg = os.path.join(ROOT, "examples/teams.yaml")
        rbac = e2e.run([e2e.WEBHOOK, "rbac", "--config", cfg]).stdout
        e2e.kubectl("apply", "-f", "-", input=rbac)
        certs = f"{e2e.T}/wh"
        e2e.run([e2e.WEBHOOK, "certs", "--ip", "127.0.0.1", "--out-dir", certs])

        def webhook(name, *extra):
            port, admin = e2e.free_port(), e2e.free_port()
            p = e2e.start(name, [e2e.WEBHOOK, "serve", "--config", cfg, "--tls-cert", f"{certs}/tls.crt", "--tls-key",
                                 f"{certs}/tls.key", "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}",
                                 *extra], env={"KUBECONFIG": e2e.FLEET_KUBECONFIG})
            e2e.wait_for(f"{name} ready", lambda: urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=2).status == 200)
            return p, admin

        today, _ = webhook("today")
        fleet, admin = webhook("fleet", "--fleet")
        view = lambda: json.loads(urllib.request.urlopen(f"http://127.0.0.1:{admin}/fleet", timeout=10).read())  # noqa: E731

        def gauge(name):
            text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=10).read().decode()
            return sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith(name))

        e2e.wait_for("the view synced", lambda: gauge("plx_webhook_fleet_synced") == 1, 60)
        time.sleep(2)
        before = {"today": rss_kib(today.pid), "fleet": rss_kib(fleet.pid)}
        # N run pods as our webhook leaves them (annotated), in ten team namespaces.
        namespaces = [f"team-{t}-{i}" for t in ("vision", "nlp") for i in range(5)]
        for ns in namespaces:
            e2e.ensure_namespace(ns)
        pod = json.loads(e2e.run([e2e.WEBHOOK, "mutate", "--config", cfg, "--output", "pod", "--namespace", "team-vision-0",
                                  os.path.join(ROOT, "tests/fixtures/polyaxon-pods/job.nostore.json")]).stdout)
        pod["spec"].pop("serviceAccountName", None)
        fat_rss = None
        cpu = {}
        if args.fat:
            # Tenants' metadata: a legal 200 KiB owner on each pod (the apiserver allows 256 KiB).
            e2e.ensure_namespace("team-fat")
            fat = json.loads(json.dumps(pod))
            fat["metadata"].pop("generateName", None)
            fat["metadata"]["namespace"] = "team-fat"
            fat["metadata"]["annotations"]["operation.polyaxon.com/owner"] = "o" * (200 * 1024)
            c0 = (cpu_s(fleet.pid), cpu_s(today.pid))
            for at in range(0, args.fat, 25):
                items = []
                for i in range(at, min(args.fat, at + 25)):
                    p = json.loads(json.dumps(fat))
                    p["metadata"]["name"] = f"fat-{i:04d}"
                    items.append(p)
                e2e.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
            slow_wait("every fat pod in the view", lambda: gauge("plx_webhook_run_pods") == args.fat, 300)
            time.sleep(3)
            cpu["fat_event_us"] = round(((cpu_s(fleet.pid) - c0[0]) - (cpu_s(today.pid) - c0[1])) * 1e6 / args.fat)
            fat_rss = rss_kib(fleet.pid)
            print(f"fleet RSS with {args.fat} fat pods: {fat_rss} KiB (peak so far {rss_kib(fleet.pid, 'VmHWM:')} KiB)", flush=True)
            e2e.kubectl("-n", "team-fat", "delete", "pods", "--all", "--wait=false")
            e2e.wait_for("the fat pods gone", lambda: gauge("plx_webhook_run_pods") == 0, 120)
            time.sleep(2)
            before = {"today": rss_kib(today.pid), "fleet": rss_kib(fleet.pid)}
        started = time.time()
        c0 = (cpu_s(fleet.pid), cpu_s(today.pid))
        for k, ns in enumerate(namespaces):
            items = []
            for i in range(args.pods // len(namespaces)):
                p = json.loads(json.dumps(pod))
                p["metadata"].pop("generateName", None)
                p["metadata"]["name"] = f"plx-run-{k}-{i:05d}"
                p["metadata"]["namespace"] = ns
                p["metadata"]["labels"]["operation.polyaxon.com/uuid"] = f"{k:02d}{i:030d}"
                items.append(p)
            e2e.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
        total = len(namespaces) * (args.pods // len(namespaces))
        slow_wait("every pod in the view", lambda: gauge("plx_webhook_run_pods") == total, 300)
        created = time.time() - started
        time.sleep(3)
        cpu["event_us"] = round(((cpu_s(fleet.pid) - c0[0]) - (cpu_s(today.pid) - c0[1])) * 1e6 / total)
        after = {"today": rss_kib(today.pid), "fleet": rss_kib(fleet.pid)}
        counts = view()["counts"]
        # A relist: the apiserver restarted, every watch lists again.
        e2e.stop("apiserver")
        e2e.wait_for("the view to notice", lambda: gauge("plx_webhook_fleet_synced") == 0, 60)
        down = rss_kib(fleet.pid)
        c0 = (cpu_s(fleet.pid), cpu_s(today.pid))
        e2e.start("apiserver", e2e.APISERVER_ARGS)
        slow_wait("the view resynced", lambda: gauge("plx_webhook_fleet_synced") == 1 and gauge("plx_webhook_run_pods") == total, 120)
        resynced = rss_kib(fleet.pid)
        cpu["relist_pod_us"] = round(((cpu_s(fleet.pid) - c0[0]) - (cpu_s(today.pid) - c0[1])) * 1e6 / total)
        time.sleep(10)
        print("fleet RSS KiB: api down", down, "resynced", resynced, "10 s later", rss_kib(fleet.pid), flush=True)
        relisted = {"today": rss_kib(today.pid), "fleet": rss_kib(fleet.pid)}
        peak = rss_kib(fleet.pid, "VmHWM:")
        per_pod = (relisted["fleet"] - before["fleet"]) * 1024 / total
        per_pod_first = (after["fleet"] - before["fleet"]) * 1024 / total
        print(json.dumps({"pods": total, "created_seconds": round(created, 1), "counts": counts,
                          "rss_kib_synced_no_pods": before, "rss_kib_with_pods": after, "rss_kib_after_relist": relisted,
                          "fleet_peak_kib": peak, "bytes_per_pod": round(per_pod_first), "bytes_per_pod_after_relist": round(per_pod),
                          "control_delta_kib": relisted["today"] - before["today"],
                          "fleet_cpu_us_per_pod_beyond_control": cpu}, indent=1))
        checks = [(f"{per_pod / 1024:.2f} KiB per ordinary pod after a relist", per_pod <= 2048, "2 KiB"),
                  (f"peak RSS {peak / 1024:.1f} MiB", peak < 96 * 1024, "96 MiB")]
        if fat_rss is not None:
            checks.append((f"RSS {fat_rss / 1024:.1f} MiB with {args.fat} pods x 200 KiB annotations", fat_rss < 48 * 1024, "48 MiB"))
        for what, ok, bound in checks:
            print(f"fleet view: {what} (bound {bound}): {'ok' if ok else 'OVER'}", flush=True)
        sys.exit(0 if all(ok for _, ok, _ in checks) else 1)
    finally:
        for name in reversed(list(e2e.PROCS)):
            e2e.stop(name)
        import shutil  # noqa: PLC0415
        shutil.rmtree(e2e.T, ignore_errors=True)


if __name__ == "__main__":
    main()
