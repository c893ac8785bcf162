#!/usr/bin/env python3
"""The shipped alerts and dashboard against a real Prometheus (Debian's `prometheus`).

    python3 tests/monitoring/run.py target/debug/plx-store-webhook

Starts the webhook (real TLS, loopback) and Prometheus scraping its admin port every second with
manifests/monitoring/alerts.rules.yml loaded, drives a short bounded load through the webhook —
mutations, a skip, a denial, malformed bodies, a silent connection cut by the header timeout, a
connection refused at the cap — and breaks then restores the config file (a failed reload).
Then, through Prometheus's HTTP API: every rule loads and is healthy; the config-reload alert
goes pending on the real series; every dashboard panel query and every alert expression parses,
and every panel query and every metric an alert reads returns data. A metric renamed in the code
leaves a panel empty and fails this test. Every process is stopped at the end.
"""

import base64
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MON = os.path.join(ROOT, "manifests/monitoring")
# The optional apiserver-side group: loaded and parsed here; its series come from a real
# kube-apiserver, so tests/e2e proves them.
MON_APISERVER = os.path.join(ROOT, "manifests/monitoring-apiserver")
results = {"passed": 0, "failed": 0}


def check(ok, what):
    results["passed" if ok else "failed"] += 1
    print(f"  {'ok  ' if ok else 'FAIL'} {what}", flush=True)
    return ok


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(what, fn, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
        except Exception:  # noqa: BLE001 - not ready yet
            pass
        time.sleep(0.25)
    raise SystemExit(f"monitoring: timed out waiting for {what}")


def prom(port, path, **params):
    url = f"http://127.0.0.1:{port}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def query(port, expr):
    try:
        return prom(port, "/api/v1/query", query=expr)
    except urllib.error.HTTPError as e:
        return json.loads(e.read() or b"{}") or {"status": "error", "error": str(e)}


def post_review(port, ctx, body):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="localhost")
    s.sendall(f"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return int(data.split(b" ", 2)[1])


def review(pod, uid):
    with open(os.path.join(ROOT, "tests/fixtures/apiserver/review-v1-generatename.json")) as f:
        r = json.load(f)
    r["request"]["uid"] = uid
    r["request"]["object"] = pod
    return json.dumps(r).encode()


def main():
    binary = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="plx-monitoring-")
    procs = []
    try:
        certs = os.path.join(tmp, "certs")
        subprocess.run([binary, "certs", "--out-dir", certs, "--dns", "localhost", "--ip", "127.0.0.1"],
                       check=True, stdout=subprocess.DEVNULL)
        config = os.path.join(tmp, "config.yaml")
        shutil.copy(os.path.join(ROOT, "examples/store-ctxdir.yaml"), config)
        port, admin, prom_port = free_port(), free_port(), free_port()
        log = open(os.path.join(tmp, "webhook.log"), "w")
        procs.append(subprocess.Popen(
            [binary, "serve", "--config", config, "--listen", f"127.0.0.1:{port}",
             "--admin-listen", f"127.0.0.1:{admin}", "--tls-cert", f"{certs}/tls.crt",
             "--tls-key", f"{certs}/tls.key", "--reload-poll-seconds", "1",
             "--header-timeout-seconds", "1", "--max-connections", "8"],
            stdout=log, stderr=log))
        prom_cfg = os.path.join(tmp, "prometheus.yml")
        with open(prom_cfg, "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {MON}/alerts.rules.yml
  - {MON_APISERVER}/alerts.rules.yml
scrape_configs:
  - job_name: plx-store-webhook
    static_configs:
      - targets: ["127.0.0.1:{admin}"]
        labels: {{namespace: plx-store-webhook, pod: plx-store-webhook-0}}
""")
        plog = open(os.path.join(tmp, "prometheus.log"), "w")
        procs.append(subprocess.Popen(
            ["prometheus", f"--config.file={prom_cfg}", f"--storage.tsdb.path={tmp}/data",
             f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=plog, stderr=plog))

        ctx = ssl.create_default_context(cafile=f"{certs}/ca.crt")
        ctx.set_alpn_protocols(["http/1.1"])
        wait_for("the webhook", lambda: post_review(port, ctx, b"{}") == 400)
        # Prometheus' first start (a fresh TSDB, rule files) took over 30 s once on a busy CI
        # machine: give it longer, and say why if it still does not come up.
        try:
            wait_for("Prometheus scraping the webhook", lambda: any(
                t["health"] == "up" for t in prom(prom_port, "/api/v1/targets")["data"]["activeTargets"]),
                timeout=120.0)
        except SystemExit:
            with open(os.path.join(tmp, "prometheus.log")) as f:
                sys.stderr.write("prometheus log (tail):\n" + "".join(f.readlines()[-20:]))
            try:
                sys.stderr.write(f"targets: {prom(prom_port, '/api/v1/targets')}\n")
            except Exception as e:  # noqa: BLE001 - diagnostics only
                sys.stderr.write(f"targets: unavailable ({e})\n")
            raise

        # Load: mutations, skips (not a run), denials (a conflict), errors (not a review).
        with open(os.path.join(ROOT, "tests/fixtures/polyaxon-pods/job.gcs-ctxdir.json")) as f:
            run_pod = json.load(f)
        not_run = json.loads(json.dumps(run_pod))
        not_run["metadata"]["labels"] = {"app": "other"}
        conflict = json.loads(json.dumps(run_pod))
        conflict["spec"]["volumes"].append({"name": "mine", "emptyDir": {}})
        main_c = next(c for c in conflict["spec"]["containers"] if c["name"] == "polyaxon-main")
        main_c["volumeMounts"].append({"name": "mine", "mountPath": "/plx-context/.gc"})

        def load(rounds):
            statuses = []
            for i in range(rounds):
                statuses.append(post_review(port, ctx, review(run_pod, f"run-{i}")))
                statuses.append(post_review(port, ctx, review(not_run, f"skip-{i}")))
                statuses.append(post_review(port, ctx, review(conflict, f"deny-{i}")))
                statuses.append(post_review(port, ctx, b"not json"))
                time.sleep(0.2)
            return statuses

        statuses = load(15)
        check(statuses.count(200) == 45 and statuses.count(400) == 15, f"load answered: {sorted(set(statuses))}")
        # A silent connection (cut by the header timeout) and one refused at the cap.
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(8)]
        extra = socket.create_connection(("127.0.0.1", port))
        extra.settimeout(3)
        try:
            refused = extra.recv(1) == b""
        except OSError:
            refused = True
        check(refused, "over --max-connections an idle connection makes room (evicted) and the silent newcomer is cut by the header timeout")
        for s in held + [extra]:
            s.close()
        time.sleep(0.2)
        # TLS, then silence: closed by the header timeout (1 s here).
        silent = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="localhost")
        silent.settimeout(5)
        try:
            cut = silent.recv(1) == b""
        except OSError:
            cut = True
        check(cut, "a TLS connection that sends nothing is closed by the header timeout")
        silent.close()

        # A failed config reload: the alert goes pending on the real series, then recovers.
        with open(config) as f:
            good = f.read()
        with open(config, "w") as f:
            f.write("artifactsStore: {name: x, kind: gcs, schema: {bucket: gs://b}, secret: {name: k, typo: 1}}\n")
        pending = wait_for("PlxStoreWebhookConfigReloadFailing pending", lambda: [
            a for a in prom(prom_port, "/api/v1/alerts")["data"]["alerts"]
            if a["labels"]["alertname"] == "PlxStoreWebhookConfigReloadFailing"], timeout=30)
        check(pending[0]["state"] in ("pending", "firing") and pending[0]["labels"].get("pod") == "plx-store-webhook-0",
              f"config reload failure raises PlxStoreWebhookConfigReloadFailing ({pending[0]['state']})")
        with open(config, "w") as f:
            f.write(good)
        wait_for("the alert to clear", lambda: not [
            a for a in prom(prom_port, "/api/v1/alerts")["data"]["alerts"]
            if a["labels"]["alertname"] == "PlxStoreWebhookConfigReloadFailing"], timeout=30)
        check(True, "the alert clears once a good config is back")
        load(5)
        time.sleep(2.5)  # two more scrapes after the last requests
        # The denial alert's description names the top reason from this query: the real series
        # say the conflicts were the denials.
        top = query(prom_port, "topk(1, sum by (reason) (rate(plx_webhook_denials_total[1m])))")
        reasons = [r["metric"].get("reason") for r in top.get("data", {}).get("result", [])]
        check(reasons == ["conflict"], f"top denial reason on the real series: {reasons}")

        # Every rule loaded and healthy.
        groups = prom(prom_port, "/api/v1/rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        import yaml  # noqa: PLC0415 - only needed here
        shipped = {"groups": []}
        for d in (MON, MON_APISERVER):
            with open(os.path.join(d, "alerts.rules.yml")) as f:
                plain = yaml.safe_load(f)
            with open(os.path.join(d, "prometheusrule.yaml")) as f:
                operator = yaml.safe_load(f)
            check(operator["spec"]["groups"] == plain["groups"],
                  f"{os.path.basename(d)}: PrometheusRule holds the same groups as alerts.rules.yml")
            shipped["groups"] += plain["groups"]
        names = [r["alert"] for g in shipped["groups"] for r in g["rules"]]
        check(sorted(r["name"] for r in rules) == sorted(names), f"Prometheus loaded all {len(names)} alert rules")
        for r in rules:
            check(r["health"] == "ok" and not r.get("lastError"), f"rule {r['name']} healthy {r.get('lastError') or ''}")

        # Every alert expression parses; every metric it reads has data.
        for g in shipped["groups"]:
            for r in g["rules"]:
                q = query(prom_port, r["expr"])
                check(q.get("status") == "success", f"alert {r['alert']} expression evaluates {q.get('error', '')}")
                if g["name"].endswith(("-fleet", "-apiserver")):
                    continue  # series only with --fleet, or from an apiserver: proved in tests/e2e
                for metric in sorted(set(re.findall(r"plx_webhook_[a-z_]+", r["expr"]))):
                    d = query(prom_port, metric)
                    check(d.get("status") == "success" and d["data"]["result"],
                          f"alert {r['alert']} reads {metric}: has data")

        # Every dashboard panel query parses and returns data.
        with open(os.path.join(MON, "dashboard.json")) as f:
            dash = json.load(f)
        for p in dash["panels"]:
            for t in p["targets"]:
                q = query(prom_port, t["expr"])
                # Fleet panels: series only with --fleet and an apiserver (proved in tests/e2e).
                fleet = p["title"].startswith("Fleet:")
                ok = q.get("status") == "success" and (fleet or bool(q["data"]["result"]))
                check(ok, f"panel {p['title']!r} / {t['refId']}: {'data' if ok else q}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        if os.environ.get("PLX_MONITORING_KEEP"):
            print(f"monitoring: logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"monitoring: {results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
