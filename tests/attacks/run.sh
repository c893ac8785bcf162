#!/usr/bin/env bash
# Issue #22's attacks against the real release binary on loopback, default flags:
#   tests/attacks/run.sh
# Builds the release binary, then runs tests/attacks.rs (ignored in a plain `cargo test`) one
# test at a time, so each server's peak RSS is its own.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --quiet --locked --release --bin plx-store-webhook
PLX_WEBHOOK_BIN="$PWD/target/release/plx-store-webhook" \
  exec timeout 900 cargo test --quiet --locked --test attacks -- --ignored --test-threads=1 --nocapture
