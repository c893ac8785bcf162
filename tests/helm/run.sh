#!/usr/bin/env bash
# The Helm chart with real Helm (tests/helm/run.py): lint, a values matrix validated strictly,
# the schema's refusals, equality with the kustomize overlays, the fleet RBAC against `rbac`.
set -euo pipefail
cd "$(dirname "$0")/../.."
py=$(bash tests/helm/venv.sh)
command -v kubectl >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client >/dev/null; }
cargo build --quiet --locked --bin plx-store-webhook
exec timeout 600 "$py" tests/helm/run.py target/debug/plx-store-webhook
