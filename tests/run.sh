#!/usr/bin/env bash
# Installs what the tests need and runs every test: formatting, lints, unit and
# integration tests (the integration tests run the real binary on real files).
# CI runs exactly this, through .ci/run, on a clean clone.
set -euo pipefail
cd "$(dirname "$0")/.."
# Nothing here reads standard input; make sure no tool sees a stray one.
exec < /dev/null

export CARGO_TERM_COLOR=never

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

echo "== test clients for reseal serve (idempotent)"
# The AWS CLI in .venv (beside moto), and rclone from Debian: tests/serve.rs runs both.
[ -x .venv/bin/python ] || python3 -m venv .venv
[ -x .venv/bin/aws ] || .venv/bin/pip install --quiet awscli
command -v rclone > /dev/null || { apt-get update -qq && apt-get install -y -qq rclone; }

echo "== cargo test"
cargo test --locked

echo "== cargo test (aws-lc cipher backend: same bytes as aes-gcm)"
cargo test --locked --features aws-lc --lib crypto
