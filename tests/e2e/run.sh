#!/usr/bin/env bash
# End-to-end tests against a real kube-apiserver (built from Debian's source package, cached):
#   tests/e2e/run.sh
# Starts etcd, kube-apiserver and the webhook on loopback (random free ports, temp dirs), runs
# the scenarios in run.py, stops every process, and exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
apiserver=$(tests/e2e/build-apiserver.sh | tail -n1)
command -v openssl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }
# The fleet scenario proves its gauges and alerts on a real Prometheus (Debian's, as tests/monitoring).
command -v prometheus >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; }
cargo build --quiet --locked --bin plx-store-webhook --example e2e-add-init --example e2e-observer --example e2e-strip
# The Helm scenario drives Helm v4's Go SDK (helm-python-sdk) from the chart tests' venv.
py=$(bash tests/helm/venv.sh)
exec timeout 900 "$py" tests/e2e/run.py "$apiserver" target/debug/plx-store-webhook target/debug/examples/e2e-add-init target/debug/examples/e2e-observer target/debug/examples/e2e-strip
