#!/usr/bin/env python3
"""Proof with the real client libraries: do the credentials the webhook injects work for the code
users actually run?

For every shipped example config x every Polyaxon fixture pod, the binary's `mutate` gives the
patched pod (and its warnings). Each target container is then laid out the way the kubelet
would: in a private mount namespace (CI runs as root), every volume is mounted at its real
mountPath (Secret/ConfigMap volumes in the atomic-writer layout: `..data` -> timestamped
directory, one link per key, `defaultMode`/`items[].mode`, `fsGroup` ownership), the environment
is built in kubelet order (`envFrom`, then `env` with `$(VAR)` expansion and optional key refs),
the process takes the container's user, and the real clients from PyPI load the credentials:
google-auth `default()`, `google.cloud.storage.Client()`, gcsfs, Polyaxon's vents services,
boto3 (credentials and region) and adlfs. Nothing leaves the machine: metadata servers are
pointed at a closed loopback port.

    python3 tests/clients/harness.py target/debug/plx-store-webhook

A negative control (the seed's file-like mountPath with GC_KEY_PATH naming it) must fail in the
same harness, proving it can fail.
"""

import base64
import ctypes
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

# Metadata servers on a closed loopback port: no client may reach outside the machine.
os.environ.update(
    GCE_METADATA_HOST="127.0.0.1:9",
    GCE_METADATA_IP="127.0.0.1:9",
    AWS_EC2_METADATA_DISABLED="true",
)

import logging  # noqa: E402

import jsonpatch  # noqa: E402
import yaml  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

# Imported before any fork so children (which may run as another user) need not read the venv.
import adlfs  # noqa: E402,F401
import boto3  # noqa: E402
import gcsfs  # noqa: E402,F401
import google.auth  # noqa: E402
import google.oauth2.service_account  # noqa: E402,F401
from google.cloud import storage  # noqa: E402,F401
import vents.settings  # noqa: E402

# Polyaxon's SDK creates vents' app config at start-up, with its context root.
vents.settings.create_app()
from vents.connections.connection import Connection  # noqa: E402
from vents.providers.aws.s3 import S3Service  # noqa: E402
from vents.providers.azure.blob_storage import BlobStorageService  # noqa: E402
from vents.providers.gcp.gcs import GCSService  # noqa: E402

# vents logs, through clipped, every context path a container lacks (harmless, and noisy).
logging.getLogger("clipped").setLevel(logging.ERROR)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests/fixtures/polyaxon-pods")
EMAIL = "runs@plx-test.iam.gserviceaccount.com"
AWS = {"AWS_ACCESS_KEY_ID": "AKIAPLXTEST", "AWS_SECRET_ACCESS_KEY": "plx-secret", "AWS_REGION": "eu-west-3"}
AZURE = {"AZURE_ACCOUNT_NAME": "plxaccount", "AZURE_ACCOUNT_KEY": base64.b64encode(b"plx-az-key").decode()}
# Which containers of a Polyaxon run need the store (polyaxon-facts.md section 2), written by
# hand rather than read from the webhook's config.
TARGETS = ("polyaxon-main", "polyaxon-sidecar", "polyaxon-init-artifacts-", "polyaxon-init-tb-")
CLONE_NEWNS = 0x00020000


def fake_service_account_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return json.dumps({
        "type": "service_account", "project_id": "plx-test", "private_key_id": "0123456789abcdef",
        "private_key": pem, "client_email": EMAIL, "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    })


KEY = fake_service_account_key()
# The cluster's Secrets and ConfigMaps the example configs name.
SECRETS = {
    "gcs-secret": {"gc-secret.json": KEY},
    "nlp-gcs-secret": {"gc-secret.json": KEY},
    "aws-credentials": {k: AWS[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")},
    "vision-aws": dict(AWS),
    "az-secret": dict(AZURE),
}
CONFIG_MAPS = {
    "gc-key-path": {"GC_KEY_PATH": "/etc/gcs/gc-secret.json"},
    "aws-settings": {"AWS_REGION": AWS["AWS_REGION"], "AWS_ENDPOINT_URL": "http://127.0.0.1:9"},
    "az-settings": {"AZURE_STORAGE_ANON": "false"},
}


# ---------------------------------------------------------------- the webhook under test

def mutate(binary, config, pod, namespace):
    """The patched pod and the warnings, from the binary's offline command."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(pod, f)
    try:
        out = subprocess.run(
            [binary, "mutate", "--config", config, "--output", "review", "--namespace", namespace, f.name],
            capture_output=True, text=True, timeout=60,
        )
    finally:
        os.unlink(f.name)
    if out.returncode not in (0, 2):
        raise RuntimeError(f"mutate failed ({out.returncode}): {out.stderr}")
    resp = json.loads(out.stdout)["response"]
    if not resp["allowed"]:
        raise RuntimeError(f"denied: {resp['status']['message']}")
    patched = pod
    if "patch" in resp:
        patched = jsonpatch.apply_patch(pod, json.loads(base64.b64decode(resp["patch"])))
    return patched, resp.get("warnings", [])


def store_connections(config):
    """Connection name -> Polyaxon connection dict, read from a config in any of its forms."""
    with open(config) as f:
        doc = yaml.safe_load(f)
    if isinstance(doc, str):
        doc = json.loads(doc)
    if "artifactsStore" in doc:
        conns = [doc["artifactsStore"]] + (doc.get("connections") or [])
    else:
        conns = [doc]
    return {c["name"]: {k: v for k, v in c.items() if k != "injection"} for c in conns}


# ---------------------------------------------------------------- the kubelet, as far as we need it

def kubelet_env(c):
    """The container's environment as the kubelet builds it: envFrom in order, then env."""
    env = {}
    for src in c.get("envFrom") or []:
        ref = src.get("secretRef") or src.get("configMapRef")
        data = (SECRETS if "secretRef" in src else CONFIG_MAPS).get(ref["name"])
        if data is None:
            if ref.get("optional"):
                continue
            raise RuntimeError(f"CreateContainerConfigError: {ref['name']} not found")
        for k, v in data.items():
            env[src.get("prefix", "") + k] = v
    for e in c.get("env") or []:
        if "value" in e:
            env[e["name"]] = expand(e["value"], env)
        elif "valueFrom" in e:
            vf = e["valueFrom"]
            ref = vf.get("secretKeyRef") or vf.get("configMapKeyRef")
            if ref is None:  # fieldRef / resourceFieldRef: a stand-in value
                env[e["name"]] = "x"
                continue
            data = (SECRETS if "secretKeyRef" in vf else CONFIG_MAPS).get(ref["name"], {})
            if ref["key"] in data:
                env[e["name"]] = data[ref["key"]]
            elif not ref.get("optional"):
                raise RuntimeError(f"CreateContainerConfigError: {ref['name']}/{ref['key']} not found")
        else:
            env[e["name"]] = ""
    return env


def expand(value, env):
    """Kubernetes `$(VAR)` expansion: defined names are replaced, `$$` escapes, others stay."""
    out, i = [], 0
    while i < len(value):
        if value.startswith("$$", i):
            out.append("$")
            i += 2
        elif value.startswith("$(", i) and ")" in value[i:]:
            j = value.index(")", i)
            name = value[i + 2:j]
            out.append(env[name] if name in env else value[i:j + 1])
            i = j + 1
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def volume_payload(vol):
    """(files as {relative path: (content, mode)}, is a Secret/ConfigMap) for a pod volume."""
    for kind, objects, name_field in (("secret", SECRETS, "secretName"), ("configMap", CONFIG_MAPS, "name")):
        if kind in vol:
            src = vol[kind]
            data = objects.get(src.get(name_field), {})
            default_mode = src.get("defaultMode", 0o644)
            if src.get("items"):
                files = {i["path"]: (data[i["key"]], i.get("mode", default_mode)) for i in src["items"] if i["key"] in data}
            else:
                files = {k: (v, default_mode) for k, v in data.items()}
            return files, True
    return {}, False


def sh(*args):
    subprocess.run(args, check=True, capture_output=True)


def write_atomic(dir_, files, fs_group):
    """The kubelet's atomic writer: files in a timestamped dir, `..data` -> it, a link per entry."""
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.000000001")
    os.mkdir(os.path.join(dir_, stamp))
    for rel, (content, mode) in files.items():
        path = os.path.join(dir_, stamp, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(content)
        if fs_group is not None:
            os.chown(path, 0, fs_group)
            mode |= 0o440
        os.chmod(path, mode)
    os.symlink(stamp, os.path.join(dir_, "..data"))
    for top in {rel.split("/")[0] for rel in files}:
        os.symlink(os.path.join("..data", top), os.path.join(dir_, top))


def lay_out(pod, c, stage):
    """Mount every volume of `c` at its real mountPath, inside this (private) mount namespace."""
    fs_group = (pod["spec"].get("securityContext") or {}).get("fsGroup")
    volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
    sh("mount", "--make-rprivate", "/")
    sh("mount", "-t", "tmpfs", "stage", stage)
    mounts = sorted(c.get("volumeMounts") or [], key=lambda m: m["mountPath"].rstrip("/").count("/"))
    # A top-level directory the host lacks is created (empty) by the caller; here it gets a
    # tmpfs, and an existing one an overlay, so nothing below is written to the host.
    covered = set()
    for m in mounts:
        top = "/" + m["mountPath"].strip("/").split("/")[0]
        if top in covered or os.path.exists(m["mountPath"]):
            continue
        covered.add(top)
        if os.listdir(top):
            up = os.path.join(stage, "overlay" + top.replace("/", "_"))
            os.makedirs(up + "/u")
            os.makedirs(up + "/w")
            sh("mount", "-t", "overlay", "overlay", "-o", f"lowerdir={top},upperdir={up}/u,workdir={up}/w", top)
        else:
            sh("mount", "-t", "tmpfs", "top", top)
    for i, m in enumerate(mounts):
        vol = volumes[m["name"]]
        src = os.path.join(stage, f"vol-{m['name']}")
        if not os.path.exists(src):
            os.mkdir(src)
            files, atomic = volume_payload(vol)
            if atomic:
                write_atomic(src, files, fs_group)
        target = m["mountPath"]
        if m.get("subPath"):
            src = os.path.join(src, m["subPath"])
            if not os.path.isdir(src):
                os.makedirs(os.path.dirname(target), exist_ok=True)
                open(target, "a").close()
        if os.path.isdir(src):
            os.makedirs(target, exist_ok=True)
        sh("mount", "--bind", src, target)
        if m.get("readOnly") or "secret" in vol or "configMap" in vol:
            sh("mount", "-o", "remount,bind,ro", target)


# ---------------------------------------------------------------- the clients

def vents_connection(conn):
    return Connection.from_dict(conn) if conn else None


def gcs_clients(conn):
    out = {}

    def check(name, fn):
        try:
            email = fn()
            out[name] = "ok" if email == EMAIL else f"FAIL: identity {email!r}"
        except BaseException as e:  # noqa: BLE001 - every failure is a result here
            out[name] = f"FAIL: {type(e).__name__}: {e}"

    check("google.auth.default", lambda: google.auth.default()[0].service_account_email)
    check("storage.Client", lambda: storage.Client()._credentials.service_account_email)

    def gcsfs_identity():
        fs = gcsfs.GCSFileSystem(skip_instance_cache=True)
        creds = fs.credentials.credentials
        return getattr(creds, "service_account_email", f"anonymous (method {fs.credentials.method})")

    check("gcsfs", gcsfs_identity)
    check("vents GCSService", lambda: GCSService.load_from_connection(vents_connection(conn)).credentials.service_account_email)
    return out


def s3_clients(conn):
    out = {}
    try:
        s = boto3.session.Session()
        creds = s.get_credentials()
        got = (creds and creds.access_key, s.region_name)
        want = (AWS["AWS_ACCESS_KEY_ID"], AWS["AWS_REGION"])
        out["boto3"] = "ok" if got == want else f"FAIL: (key, region) {got}, want {want}"
    except BaseException as e:  # noqa: BLE001
        out["boto3"] = f"FAIL: {type(e).__name__}: {e}"
    try:
        v = S3Service.load_from_connection(vents_connection(conn))
        got = (v.access_key_id, v.region)
        out["vents S3Service"] = "ok" if got == (AWS["AWS_ACCESS_KEY_ID"], AWS["AWS_REGION"]) else f"FAIL: {got}"
    except BaseException as e:  # noqa: BLE001
        out["vents S3Service"] = f"FAIL: {type(e).__name__}: {e}"
    return out


def wasb_clients(conn):
    out = {}
    want = (AZURE["AZURE_ACCOUNT_NAME"], AZURE["AZURE_ACCOUNT_KEY"])
    try:
        fs = adlfs.AzureBlobFileSystem(skip_instance_cache=True)
        got = (fs.account_name, fs.account_key)
        out["adlfs"] = "ok" if got == want else f"FAIL: (account, key) {got}"
    except BaseException as e:  # noqa: BLE001
        out["adlfs"] = f"FAIL: {type(e).__name__}: {e}"
    try:
        v = BlobStorageService.load_from_connection(vents_connection(conn))
        got = (v.account_name, v.account_key)
        out["vents BlobStorageService"] = "ok" if got == want else f"FAIL: {got}"
    except BaseException as e:  # noqa: BLE001
        out["vents BlobStorageService"] = f"FAIL: {type(e).__name__}: {e}"
    return out


CLIENTS = {"gcs": gcs_clients, "s3": s3_clients, "wasb": wasb_clients}


def run_container(pod, c, kind, conn):
    """Fork; in the child: private mount namespace, kubelet layout, container user, clients."""
    stage = tempfile.mkdtemp(prefix="plx-clients-")
    created = [top for top in {"/" + m["mountPath"].strip("/").split("/")[0] for m in c.get("volumeMounts") or []}
               if not os.path.exists(top)]
    for top in created:
        os.mkdir(top)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        result = {}
        try:
            if ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNS) != 0:
                raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
            lay_out(pod, c, stage)
            env = kubelet_env(c)
            sc_pod = pod["spec"].get("securityContext") or {}
            sc = c.get("securityContext") or {}
            uid = sc.get("runAsUser", sc_pod.get("runAsUser", 0))
            # An image whose user has its own primary group (a USER created by useradd).
            gid = sc.get("runAsGroup", sc_pod.get("runAsGroup", uid))
            groups = [g for g in [sc_pod.get("fsGroup")] + list(sc_pod.get("supplementalGroups") or []) if g is not None]
            os.environ.clear()
            os.environ.update(env)
            os.environ.update(HOME="/nonexistent-home", PATH="/usr/bin:/bin", GCE_METADATA_HOST="127.0.0.1:9",
                              GCE_METADATA_IP="127.0.0.1:9", AWS_EC2_METADATA_DISABLED="true")
            vents.settings.VENTS_CONFIG.context_path = env.get("POLYAXON_CONTEXT_ROOT", "/plx-context")
            os.chdir("/")
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
            result = CLIENTS[kind](conn)
        except BaseException as e:  # noqa: BLE001
            result = {"harness": f"FAIL: {type(e).__name__}: {e}\n{traceback.format_exc()}"}
        os.write(w, json.dumps(result).encode())
        os._exit(0)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    os.waitpid(pid, 0)
    for top in created:
        os.rmdir(top)
    shutil.rmtree(stage, ignore_errors=True)
    return json.loads(b"".join(chunks) or b'{"harness": "FAIL: no result"}')


# ---------------------------------------------------------------- the cases

def is_target(name):
    return any(name == t or (t.endswith("-") and name.startswith(t)) for t in TARGETS)


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return json.load(f)


def containers(pod):
    return (pod["spec"].get("initContainers") or []) + pod["spec"]["containers"]


def main():
    binary = sys.argv[1]
    started = time.time()
    passed, failed = 0, 0
    problems = []

    def expect(label, ok, detail=""):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
            problems.append(f"{label}: {detail}")

    def kind_of(patched, conns):
        store = (patched["metadata"].get("annotations") or {}).get("plx-store-webhook.dev/store")
        conn = conns.get(store)
        return (conn["kind"], conn) if conn else (None, None)

    def serve(label, config, pod, namespace="polyaxon", want_ok=True, want_warning=None, only_vents_ok=False,
              max_containers=None):
        patched, warnings = mutate(binary, config, pod, namespace)
        conns = store_connections(config)
        kind, conn = kind_of(patched, conns)
        if kind not in CLIENTS:
            return 0
        if want_warning is not None:
            got = any(want_warning in w for w in warnings)
            expect(f"{label}: warning {want_warning!r}", got, f"warnings: {warnings}")
        n = 0
        for c in containers(patched):
            if not is_target(c["name"]) or n == max_containers:
                continue
            results = run_container(patched, c, kind, conn)
            for client, verdict in results.items():
                ok = verdict == "ok"
                want = client.startswith("vents") if only_vents_ok else want_ok
                expect(f"{label} / {c['name']} / {client}", ok == want, verdict)
                print(f"  {'ok  ' if ok == want else 'FAIL'} {label} / {c['name']} / {client}: {verdict.splitlines()[0]}")
            n += 1
        return n

    configs = [
        ("examples/store-ctxdir.yaml", "polyaxon"),
        ("examples/store-etc-gcs.yaml", "polyaxon"),
        ("examples/store-seed-filepath.yaml", "polyaxon"),
        ("examples/helm-values.yaml", "polyaxon"),
        ("examples/agent-configmap-store.json", "polyaxon"),
        ("examples/store-s3.yaml", "polyaxon"),
        ("examples/store-wasb.yaml", "polyaxon"),
        ("examples/teams.yaml", "polyaxon"),       # routed by owner/project: vision S3
        ("examples/teams.yaml", "team-nlp-1"),     # routed by namespace: nlp GCS
    ]
    pods = sorted(os.listdir(FIXTURES))
    targeted = 0
    for config, namespace in configs:
        for name in pods:
            targeted += serve(f"{os.path.basename(config)}@{namespace} x {name}", os.path.join(ROOT, config),
                              fixture(name), namespace)

    # A run as a non-root user with a key only root can read: warned, and really unreadable...
    tmp = tempfile.mkdtemp(prefix="plx-clients-cfg-")
    root_only = os.path.join(tmp, "root-only.yaml")
    with open(root_only, "w") as f:
        f.write("artifactsStore:\n  name: gcs-artifacts\n  kind: gcs\n  schema: {bucket: gs://gcs-artifacts}\n"
                "  secret: {name: gcs-secret, mountPath: /plx-context/.gc, defaultMode: \"0400\"}\n")
    # (job.nostore: Polyaxon mounted no key, so the webhook's volume, with the config's mode, is used.)
    pod = fixture("job.nostore.json")
    pod["spec"]["securityContext"] = {"runAsUser": 1000}
    targeted += serve("non-root user, mode 0400, no fsGroup", root_only, pod, want_ok=False, want_warning="cannot read")
    # ... and with fsGroup, as the warning advises, every client reads it.
    pod["spec"]["securityContext"] = {"runAsUser": 1000, "fsGroup": 2000}
    targeted += serve("non-root user, mode 0400, fsGroup", root_only, pod)

    # Control: with the standard names switched off (what the webhook gave before), only
    # Polyaxon's own SDK finds the credentials; every standard client fails. So the names the
    # webhook adds are what makes them work.
    for example in ("store-ctxdir.yaml", "store-s3.yaml", "store-wasb.yaml"):
        off = os.path.join(tmp, "off-" + example)
        with open(os.path.join(ROOT, "examples", example)) as src, open(off, "w") as dst:
            dst.write(src.read() + "\ninjection:\n  standardClientEnv: false\n")
        targeted += serve(f"standardClientEnv off, {example}", off, fixture("job.nostore.json"), only_vents_ok=True,
                          max_containers=1)  # (a client without credentials probes the metadata server for ~3 s)

    # Negative control: the seed's file-like mountPath, with GC_KEY_PATH and
    # GOOGLE_APPLICATION_CREDENTIALS naming it (what a naive fix would set). The kubelet mounts a
    # directory there, so every client must fail: this proves the harness can fail.
    pod = fixture("job.gcs-filepath.json")
    for c in containers(pod):
        if is_target(c["name"]) and any(m["name"] == "gcs-secret" for m in c.get("volumeMounts") or []):
            c.setdefault("env", []).extend([
                {"name": "GC_KEY_PATH", "value": "/plx-context/.gc/gc-secret.json"},
                {"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": "/plx-context/.gc/gc-secret.json"},
            ])
            results = run_container(pod, c, "gcs", store_connections(os.path.join(ROOT, "examples/store-seed-filepath.yaml"))["gcs-artifacts"])
            for client, verdict in results.items():
                expect(f"negative control / {c['name']} / {client} fails", verdict != "ok", verdict)
                print(f"  {'ok  ' if verdict != 'ok' else 'FAIL'} negative control / {c['name']} / {client}: {verdict.splitlines()[0]}")
            expect(f"negative control / {c['name']}: google-auth says it is a directory",
                   "IsADirectoryError" in results.get("google.auth.default", "") or
                   "Is a directory" in results.get("google.auth.default", ""), results.get("google.auth.default"))
    shutil.rmtree(tmp, ignore_errors=True)

    print(f"clients: {targeted} target containers laid out, {time.time() - started:.1f} s")
    for p in problems:
        print(f"FAILED: {p}")
    print(f"clients: {passed} passed, {failed} failed")
    return 1 if failed or targeted == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
