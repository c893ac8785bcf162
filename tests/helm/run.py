#!/usr/bin/env python3
"""The Helm chart, proved with Helm v4's own Go SDK (helm-python-sdk, no helm binary):

  run.py WEBHOOK_BIN          (normally through tests/helm/run.sh)

- lint clean (strict);
- every values combination of the matrix renders and validates against the Kubernetes OpenAPI
  schemas in strict mode (kubernetes-validate);
- the schema rejects wrong values with a message naming the key;
- one source of truth: for each kustomize overlay (and component), the chart with the equivalent
  values renders the same objects (Helm's own labels aside);
- the fleet RBAC (ClusterRole, per-namespace Roles, bindings) is what `plx-store-webhook rbac`
  prints, for every example config and generated configs whose routes name their namespaces;
- the alerts and dashboard files are manifests/monitoring's.
"""
import copy
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

import helm_python as helm
import kubernetes_validate
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHART = os.path.join(ROOT, "charts", "plx-store-webhook")
WEBHOOK = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "debug", "plx-store-webhook")
KUBE_VERSION = "1.30.0"
CRD_KINDS = {"Issuer", "Certificate", "PodMonitor", "PrometheusRule"}
HELM_LABELS = {"app.kubernetes.io/instance", "app.kubernetes.io/managed-by", "app.kubernetes.io/version", "helm.sh/chart"}
IMAGE = "registry.example.invalid/plx-store-webhook"
FAILED = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        FAILED.append(what)


def store_config():
    with open(os.path.join(ROOT, "manifests", "base", "store-config.yaml")) as f:
        return yaml.safe_load(f)


def render(values, namespace="plx-store-webhook", name="plx-store-webhook"):
    chart = helm.Chart.load(CHART)
    out = chart.render(values, name=name, namespace=namespace)
    docs = []
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def kustomize(dir_):
    r = subprocess.run(["kubectl", "kustomize", dir_], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise AssertionError(f"kubectl kustomize {dir_}: {r.stderr}")
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def validate(docs, what):
    errors = []
    for d in docs:
        if d["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(d, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{d['kind']} {d['metadata']['name']}: {e.message} at {list(e.path)}")
    check(not errors, f"{what}: {len(docs)} objects validate strictly" + ("".join("\n     " + e for e in errors)))


def key(d):
    return (d["kind"], d["metadata"]["name"])


def normalise(d):
    """An object as both renderers should produce it: Helm's bookkeeping labels dropped, config
    files parsed (comments and key order are not behaviour)."""
    d = copy.deepcopy(d)
    labels = d["metadata"].get("labels", {})
    for k in HELM_LABELS:
        labels.pop(k, None)
    if d["kind"] == "ConfigMap":
        d["data"] = {k: (v if k.endswith(".json") else yaml.safe_load(v)) for k, v in d.get("data", {}).items()}
        if "plx-store-webhook.json" in d["data"]:
            d["data"]["plx-store-webhook.json"] = json.loads(d["data"]["plx-store-webhook.json"])
    return d


def compare(label, kdocs, hdocs, drop=()):
    k = {key(d): normalise(d) for d in kdocs if d["kind"] not in drop}
    h = {key(d): normalise(d) for d in hdocs}
    check(sorted(k) == sorted(h), f"{label}: the same objects (kustomize only: {sorted(set(k) - set(h))}, chart only: {sorted(set(h) - set(k))})")
    for obj in sorted(set(k) & set(h)):
        same = k[obj] == h[obj]
        detail = ""
        if not same:
            detail = "\n     kustomize: " + json.dumps(k[obj], sort_keys=True)[:1500] + "\n     chart:     " + json.dumps(h[obj], sort_keys=True)[:1500]
        check(same, f"{label}: {obj[0]} {obj[1]} equal{detail}")


def scratch_manifests(tmp, name):
    dst = os.path.join(tmp, name, "manifests")
    shutil.copytree(os.path.join(ROOT, "manifests"), dst, ignore=shutil.ignore_patterns("*.crt", "*.key", "cabundle-patch*.yaml"))
    return dst


def overlay(tmp, name, base, components=(), static=False):
    """`base` overlay in a scratch copy, with components added (as docs/install.md shows)."""
    m = scratch_manifests(tmp, name)
    d = os.path.join(m, "overlays", base)
    ca = None
    if static:
        subprocess.run([WEBHOOK, "certs", "--out-dir", d], check=True, capture_output=True, timeout=60)
        with open(os.path.join(d, "ca.crt"), "rb") as f:
            import base64
            ca = base64.b64encode(f.read()).decode()
    extra = ""
    if static and "enforce" in components:
        extra += "  - path: cabundle-patch-enforce.yaml\n"
    if components:
        extra += "components:\n" + "".join(f"  - ../../{c}\n" for c in components)
    with open(os.path.join(d, "kustomization.yaml"), "a") as f:
        f.write(extra)
    return kustomize(d), ca


def values_for(components, **more):
    v = {**store_config(), "image": {"repository": IMAGE}}
    v["enforce"] = {"enabled": "enforce" in components}
    v["fleet"] = {"enabled": "fleet" in components}
    if "monitoring" in components:
        v["monitoring"] = {"podMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}, "dashboard": {"enabled": True}}
    if "monitoring-apiserver" in components:
        v.setdefault("monitoring", {})["apiserverRule"] = {"enabled": True}
    v.update(more)
    return v


# ------------------------------------------------------------------ checks
def lint():
    report = helm.lint(CHART, {**store_config()}, strict=True, kube_version="v" + KUBE_VERSION)
    bad = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    check(not bad, f"helm lint --strict: {bad or 'clean'} ({len(report['messages'])} info)")
    chart = helm.Chart.load(CHART)
    with open(os.path.join(ROOT, "Cargo.toml")) as f:
        cargo = next(l.split('"')[1] for l in f if l.startswith("version = "))
    check(chart.version == cargo and chart.metadata["appVersion"] == cargo, f"chart version {chart.version} and appVersion follow Cargo.toml ({cargo})")
    # The release archive renders what the directory renders.
    with tempfile.TemporaryDirectory() as tmp:
        archive = helm.package(CHART, destination=tmp)
        with open(archive, "rb") as f:
            packed = helm.Chart.load_archive(f.read())
        v = {**store_config(), "enforce": {"enabled": True}, "monitoring": MATRIX["monitoring"][1]}
        check(packed.render(v, name="plx-store-webhook", namespace="plx-store-webhook") == chart.render(v, name="plx-store-webhook", namespace="plx-store-webhook"),
              f"the packaged chart ({os.path.basename(archive)}) renders as the directory does")


def monitoring_files_are_one_source():
    for src, f in (("monitoring/alerts.rules.yml", "alerts.rules.yml"), ("monitoring/dashboard.json", "dashboard.json"),
                   ("monitoring-apiserver/alerts.rules.yml", "apiserver.rules.yml")):
        with open(os.path.join(ROOT, "manifests", src)) as a, open(os.path.join(CHART, "files", f)) as b:
            check(a.read() == b.read(), f"charts/plx-store-webhook/files/{f} is manifests/{src} (copy it over after editing the alerts)")


MATRIX = {
    "certificates": [{"mode": "cert-manager"}, {"mode": "provided", "provided": {"caBundle": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="}}],
    "enforce": [{"enabled": False}, {"enabled": True}],
    "fleet": [{"enabled": False}, {"enabled": True}],
    "keyless": [{"enabled": False}, {"enabled": True}],
    "agentConfig": [{"enabled": False}, {"enabled": True}],
    "monitoring": [{}, {"podMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}, "apiserverRule": {"enabled": True}, "dashboard": {"enabled": True}}],
    "lean": [{}, {"podDisruptionBudget": {"enabled": False}, "networkPolicy": {"enabled": False}, "topologySpread": {"enabled": False},
                  "priorityClass": {"create": False, "name": ""}, "image": {"repository": IMAGE, "digest": "sha256:" + "a" * 64},
                  "scheduling": {"nodeSelector": {"pool": "system"}, "tolerations": [{"key": "system", "operator": "Exists", "effect": "NoSchedule"}]}}],
}


def matrix_renders_and_validates():
    names = list(MATRIX)
    n = 0
    for combo in itertools.product(*(MATRIX[k] for k in names)):
        v = {**store_config()}
        for k, val in zip(names, combo):
            if k == "lean":
                v.update(val)
            else:
                v[k] = val
        ns = "polyaxon" if v["agentConfig"]["enabled"] else "plx-store-webhook"
        label = ",".join(f"{k}={json.dumps(c, sort_keys=True)[:40]}" for k, c in zip(names, combo) if c not in ({}, {"enabled": False}))
        docs = render(v, namespace=ns)
        validate(docs, f"matrix[{label or 'defaults'}]")
        # Every webhook configuration carries the break-glass label.
        whcs = [d for d in docs if d["kind"].endswith("WebhookConfiguration")]
        check(len(whcs) == 1 + v["enforce"]["enabled"] and all(d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "plx-store-webhook" for d in whcs),
              f"matrix[{label or 'defaults'}]: webhook configurations labelled for break-glass")
        n += 1
    check(n == 128, f"{n} value combinations rendered")


SCHEMA_REJECTS = [
    ({"replicas": "two"}, "replicas"),
    ({"certificates": {"mode": "vault"}}, "/certificates/mode"),
    ({"image": {"repository": "x", "digest": "latest"}}, "/image/digest"),
    ({"webhook": {"failurePolicy": "Never"}}, "/webhook/failurePolicy"),
    ({"enforce": {"enable": True}}, "enable"),
    ({"monitoring": {"podMonitor": {"interval": "soon"}}}, "/monitoring/podMonitor/interval"),
    ({"certificates": {"mode": "provided", "provided": {"caBundle": "-----BEGIN CERTIFICATE-----"}}}, "caBundle"),
    ({"artifactsStore": {"name": "x", "kind": "ftp"}}, "/artifactsStore/kind"),
]


def schema_rejects_wrong_values():
    chart = helm.Chart.load(CHART)
    for bad, names in SCHEMA_REJECTS:
        v = {**store_config(), **bad}
        try:
            chart.validate_schema(chart.merge_values(v))
            check(False, f"schema rejects {bad}")
        except helm.HelmError as e:
            check(names in str(e), f"schema rejects {json.dumps(bad)}: {str(e).strip().splitlines()[-1][:160]}")
    # A Polyaxon values file passes as is (its other keys are Polyaxon's, ignored here).
    with open(os.path.join(ROOT, "examples", "helm-values.yaml")) as f:
        polyaxon = yaml.safe_load(f)
    chart.validate_schema(chart.merge_values(polyaxon))
    docs = render(polyaxon)
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    cfg = yaml.safe_load(cm["data"]["config.yaml"])
    check(cfg["artifactsStore"] == polyaxon["artifactsStore"] and cfg["injection"] == polyaxon["injection"], "a Polyaxon values file passes as is; its artifactsStore and injection are the config")
    # Polyaxon's own top-level keys of the same names as common chart keys stay Polyaxon's: the
    # webhook's pods ignore them.
    polyaxon_more = {**polyaxon, "nodeSelector": {"polyaxon": "core"}, "tolerations": [{"key": "polyaxon", "operator": "Exists"}],
                     "affinity": {}, "imagePullSecrets": ["regcred"], "securityContext": {"enabled": True, "user": 2222},
                     "logLevel": "WARNING", "rbac": {"enabled": True}, "api": {"replicas": 3}, "limitResources": True}
    chart.validate_schema(chart.merge_values(polyaxon_more))
    dep = next(d for d in render(polyaxon_more) if d["kind"] == "Deployment")
    same = dep == next(d for d in docs if d["kind"] == "Deployment")
    check(same, "Polyaxon's nodeSelector, tolerations, imagePullSecrets, securityContext, logLevel... do not reach the webhook's pods")
    # No store and no agentConfig: a render error that says what to set.
    try:
        render({})
        check(False, "a release without a store is refused")
    except helm.HelmError as e:
        check("pass your Polyaxon values file" in str(e), f"a release without a store is refused: {str(e).strip()[-120:]}")


def chart_equals_kustomize():
    with tempfile.TemporaryDirectory() as tmp:
        cases = [
            ("cert-manager", "cert-manager", (), {}, "plx-store-webhook", False),
            ("cert-manager + enforce + fleet + monitoring", "cert-manager", ("enforce", "fleet", "monitoring"), {}, "plx-store-webhook", False),
            ("cert-manager + monitoring + monitoring-apiserver", "cert-manager", ("monitoring", "monitoring-apiserver"), {}, "plx-store-webhook", False),
            ("keyless", "keyless", (), {"keyless": {"enabled": True}}, "plx-store-webhook", False),
            ("keyless + enforce", "keyless", ("enforce",), {"keyless": {"enabled": True}}, "plx-store-webhook", False),
            ("static-certs", "static-certs", (), {}, "plx-store-webhook", True),
            ("static-certs + enforce", "static-certs", ("enforce",), {}, "plx-store-webhook", True),
        ]
        for label, base, comps, more, ns, static in cases:
            kdocs, ca = overlay(tmp, label.replace(" ", "_").replace("+", ""), base, comps, static)
            v = values_for(comps, **more)
            if static:
                v["certificates"] = {"mode": "provided", "provided": {"caBundle": ca}}
            compare(label, kdocs, render(v, namespace=ns), drop={"Namespace", "Secret"} if static else {"Namespace"})
        # The agent-config overlay: the store comes from Polyaxon's ConfigMap; injection is the settings.
        for comps in ((), ("enforce",)):
            kdocs, _ = overlay(tmp, "agent" + "_".join(comps), "polyaxon-agent-config", comps)
            settings = next(d for d in kdocs if d["metadata"]["name"] == "plx-store-webhook-settings")
            v = {"image": {"repository": IMAGE}, "agentConfig": {"enabled": True}, "enforce": {"enabled": bool(comps)},
                 "injection": yaml.safe_load(settings["data"]["settings.yaml"])["injection"]}
            compare(" + ".join(("polyaxon-agent-config",) + comps), kdocs, render(v, namespace="polyaxon"))


def namespaced_configs(n, seed):
    """Configs whose routes name their namespaces in every way `rbac` distinguishes: the teams and
    keyless examples with each rule's `match.namespaces` and the policy's include/exclude drawn from
    literal names and globs (so Roles per namespace, a ClusterRole, both, or nothing at all)."""
    rng = random.Random(seed)
    names = ["team-a", "team-b", "team-vision", "kube-system"]
    globs = ["team-*", "team-?", "*", "kube-*"]

    def pick(pool, most):
        return rng.sample(pool, rng.randint(1, most))

    bases = []
    for f in ("teams.yaml", "keyless.yaml"):
        with open(os.path.join(ROOT, "examples", f)) as fh:
            bases.append((f, yaml.safe_load(fh)))
    for i in range(n):
        f, cfg = copy.deepcopy(rng.choice(bases))
        inj = cfg["injection"]
        for rule in inj["rules"]:
            match = rule.setdefault("match", {})
            roll = rng.random()
            if roll < 0.5:
                match["namespaces"] = pick(names, 3)
            elif roll < 0.7:
                match["namespaces"] = pick(names, 2) + pick(globs, 1)
            else:
                match.pop("namespaces", None)
            if not match:
                rule.pop("match")
        inj["rules"] = rng.sample(inj["rules"], rng.randint(0, len(inj["rules"])))
        include = rng.choice([[], pick(names, 3), pick(names + globs, 2)])
        exclude = rng.choice([[], [], ["kube-system"], ["team-b"], pick(globs, 1)])
        inj["namespaces"] = {"include": include, "exclude": exclude}
        yield f"{f} #{i} (seed {seed})", cfg


def rbac_follows_the_command():
    """The chart's fleet RBAC (ClusterRole, Roles and their bindings) is what `plx-store-webhook
    rbac` prints, config by config: every example, and generated configs whose routes name their
    namespaces (PLX_HELM_RBAC_SEED, PLX_HELM_RBAC_CONFIGS)."""
    configs = []
    examples = sorted(f for f in os.listdir(os.path.join(ROOT, "examples")) if f.endswith(".yaml"))
    for f in examples + ["../manifests/base/store-config.yaml"]:
        with open(os.path.join(ROOT, "examples", f)) as fh:
            configs.append((f, yaml.safe_load(fh)))
    seed = int(os.environ.get("PLX_HELM_RBAC_SEED", "31"))
    configs += namespaced_configs(int(os.environ.get("PLX_HELM_RBAC_CONFIGS", "60")), seed)
    kinds = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")

    def objects(docs):
        # Labels aside (Helm's own, the chart's part-of), the whole object; rules as a set.
        out = {}
        for d in docs:
            if d["kind"] in kinds:
                d = copy.deepcopy(d)
                d["metadata"].pop("labels", None)
                if "rules" in d:
                    d["rules"] = sorted(json.dumps(r, sort_keys=True) for r in d["rules"])
                out[(d["kind"], d["metadata"].get("namespace") or "")] = d
        return out
    shapes = set()
    with tempfile.TemporaryDirectory() as tmp:
        for label, cfg in configs:
            path = os.path.join(tmp, "config.yaml")
            with open(path, "w") as fh:
                yaml.safe_dump(cfg, fh)
            out = subprocess.run([WEBHOOK, "rbac", "--config", path, "--service-account", "plx-store-webhook", "--namespace", "plx-store-webhook"],
                                 capture_output=True, text=True, timeout=60)
            if out.returncode != 0:
                check(False, f"rbac --config {label}: {out.stderr.strip()}")
                continue
            want = objects(d for d in yaml.safe_load_all(out.stdout) if d)
            rendered = render({**cfg, "fleet": {"enabled": True}})
            got = objects(rendered)
            shape = (any(k == "ClusterRole" for k, _ in want), any(k == "Role" for k, _ in want))
            if shape not in shapes:
                validate([d for d in rendered if d["kind"] in kinds], f"the chart's fleet RBAC for {label}")
            shapes.add(shape)
            detail = ""
            if want != got:
                detail = "\n     config: " + json.dumps(cfg.get("injection", {}), sort_keys=True)[:1500]
                for k in sorted(set(want) | set(got)):
                    if want.get(k) != got.get(k):
                        detail += f"\n     {k}\n       rbac:  {json.dumps(want.get(k), sort_keys=True)}\n       chart: {json.dumps(got.get(k), sort_keys=True)}"
            check(want == got, f"fleet RBAC for {label} is what `rbac` prints ({', '.join(f'{k} {n}'.strip() for k, n in sorted(want)) or 'nothing'}){detail}")
    # The generated configs reach every form: ClusterRole only, Roles only, both, and none.
    check(shapes == {(True, False), (False, True), (True, True), (False, False)}, f"the RBAC configs cover every form: {sorted(shapes)}")


def main():
    for fn in (lint, monitoring_files_are_one_source, schema_rejects_wrong_values, rbac_follows_the_command, chart_equals_kustomize, matrix_renders_and_validates):
        try:
            fn()
        except Exception as e:  # report and go on
            check(False, f"{fn.__name__}: {type(e).__name__}: {e}")
    print(f"helm: {len(FAILED)} failed", flush=True)
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
