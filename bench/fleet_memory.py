#!/usr/bin/env python3
"""Memory of the fleet view per run pod, against the real kube-apiserver of tests/e2e.

    tests/e2e/build-apiserver.sh            # once (cached)
    cargo build --release
    python3 bench/fleet_memory.py target/release/plx-store-webhook [--pods 3000]

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("webhook")
    ap.add_argument("--pods", type=int, default=3000)
    args = ap.parse_args()
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
                                 *extra], env={"KUBECONFIG": e2e.FLEET_KUBECONFIG, **({"MIMALLOC_PURGE_DELAY": os.environ["PURGE"]} if os.environ.get("PURGE") else {})})
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
        started = time.time()
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
        e2e.wait_for("every pod in the view", lambda: gauge("plx_webhook_run_pods") == total, 300)
        created = time.time() - started
        time.sleep(3)
        after = {"today": rss_kib(today.pid), "fleet": rss_kib(fleet.pid)}
        counts = view()["counts"]
        # A relist: the apiserver restarted, every watch lists again.
        e2e.stop("apiserver")
        e2e.wait_for("the view to notice", lambda: gauge("plx_webhook_fleet_synced") == 0, 60)
        down = rss_kib(fleet.pid)
        e2e.start("apiserver", e2e.APISERVER_ARGS)
        e2e.wait_for("the view resynced", lambda: gauge("plx_webhook_fleet_synced") == 1 and gauge("plx_webhook_run_pods") == total, 120)
        resynced = rss_kib(fleet.pid)
        time.sleep(10)
        print("fleet RSS KiB: api down", down, "resynced", resynced, "10 s later", rss_kib(fleet.pid), flush=True)
        relisted = {"today": rss_kib(today.pid), "fleet": rss_kib(fleet.pid)}
        peak = rss_kib(fleet.pid, "VmHWM:")
        per_pod = (relisted["fleet"] - before["fleet"]) * 1024 / total
        per_pod_first = (after["fleet"] - before["fleet"]) * 1024 / total
        print(json.dumps({"pods": total, "created_seconds": round(created, 1), "counts": counts,
                          "rss_kib_synced_no_pods": before, "rss_kib_with_pods": after, "rss_kib_after_relist": relisted,
                          "fleet_peak_kib": peak, "bytes_per_pod": round(per_pod_first), "bytes_per_pod_after_relist": round(per_pod),
                          "control_delta_kib": relisted["today"] - before["today"]}, indent=1))
        ok = max(per_pod, per_pod_first) <= 4096
        print(f"fleet view: {max(per_pod, per_pod_first) / 1024:.2f} KiB per pod (limit 4 KiB): {'ok' if ok else 'OVER'}")
        sys.exit(0 if ok else 1)
    finally:
        for name in reversed(list(e2e.PROCS)):
            e2e.stop(name)
        import shutil  # noqa: PLC0415
        shutil.rmtree(e2e.T, ignore_errors=True)


if __name__ == "__main__":
    main()
