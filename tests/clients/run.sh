#!/usr/bin/env bash
# The injected credentials, read by the real client libraries (google-auth, google-cloud-storage,
# gcsfs, boto3, adlfs, Polyaxon's vents) inside a kubelet-like layout of every target container.
#   tests/clients/run.sh
# Needs root (private mount namespaces, bind mounts, the containers' users). The venv is built
# once from tests/clients/requirements.txt with Debian's python3, in a world-readable place (a
# container user other than root must be able to load the libraries).
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${PLX_CLIENTS_VENV:-/var/cache/plx-store-webhook/clients-venv}"
REQ=tests/clients/requirements.txt
if ! cmp -s "$REQ" "$VENV/requirements.txt" 2>/dev/null; then
  echo "clients: building the venv in $VENV" >&2
  if ! /usr/bin/python3 -c 'import ensurepip' 2>/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  fi
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
  cp "$REQ" "$VENV/requirements.txt"
  chmod -R a+rX "$VENV"
fi
cargo build --quiet --locked --bin plx-store-webhook
exec timeout 600 "$VENV/bin/python" tests/clients/harness.py target/debug/plx-store-webhook
