#!/usr/bin/env bash
# The Python environment for the chart's tests and the e2e's Helm scenarios: Helm v4's Go SDK
# (helm-python-sdk ships it as a shared library; no helm binary), kubernetes-validate and PyYAML,
# pinned, in target/ci-venv. Prints the interpreter's path.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/ci-venv
want="helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 PyYAML==6.0.4"
if [ "$(cat $venv/.installed 2>/dev/null)" != "$want" ]; then
  python3 -m venv $venv >&2 || { apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && python3 -m venv $venv >&2; }
  $venv/bin/pip install --quiet --disable-pip-version-check $want >&2
  echo "$want" > $venv/.installed
fi
echo "$PWD/$venv/bin/python"
