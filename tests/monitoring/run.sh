#!/usr/bin/env bash
# The shipped alerts and dashboard, proved with the real Prometheus tools (Debian package
# `prometheus`): `promtool test rules` on synthetic series, then tests/monitoring/run.py against
# a running webhook and a running Prometheus on loopback.
#   tests/monitoring/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  echo "monitoring: installing prometheus (Debian)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
fi
# The Debian package starts a system Prometheus on :9090; the test runs its own, on a free port.
promtool check rules manifests/monitoring/alerts.rules.yml manifests/monitoring-apiserver/alerts.rules.yml
(cd tests/monitoring && promtool test rules alerts_test.yml apiserver_alerts_test.yml)
cargo build --quiet --locked --bin plx-store-webhook
PY=python3
# The clients venv has PyYAML; else the system python's.
[ -x /var/cache/plx-store-webhook/clients-venv/bin/python ] && PY=/var/cache/plx-store-webhook/clients-venv/bin/python
exec timeout 300 "$PY" tests/monitoring/run.py target/debug/plx-store-webhook
