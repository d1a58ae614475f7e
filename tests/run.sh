#!/usr/bin/env bash
# Installs what the tests need and runs every test: formatting, lints, unit and
# integration tests (the integration tests run the real binary on real files).
# CI runs exactly this, through .ci/run, on a clean clone.
set -euo pipefail
cd "$(dirname "$0")/.."
# Nothing here reads standard input; make sure no tool sees a stray one.
exec < /dev/null

export CARGO_TERM_COLOR=never

# The S3 target's tests run against real S3 servers on loopback (tests/common/s3.rs).
# Both are installed once into ignored folders of the checkout and reused after that.
if [ ! -x .venv/bin/moto_server ]; then
    echo "== installing moto into .venv"
    python3 -m venv .venv
    .venv/bin/pip install --quiet 'moto[server]>=5.2,<5.3'
fi
# pyarrow writes the Parquet and ORC inventories that tests/columnar_manifests.rs reads.
if ! .venv/bin/python -c 'import pyarrow.orc, pyarrow.parquet' 2> /dev/null; then
    echo "== installing pyarrow into .venv"
    .venv/bin/pip install --quiet 'pyarrow>=26,<27'
fi
# prometheus-client parses the metrics textfiles that tests/sweep.rs has `reseal sweep` write.
if ! .venv/bin/python -c 'import prometheus_client' 2> /dev/null; then
    echo "== installing prometheus-client into .venv"
    .venv/bin/pip install --quiet 'prometheus-client>=0.21,<1'
fi
if [ ! -x .cache/s3s-fs/bin/s3s-fs ]; then
    # 0.14.1: later versions need a newer rustc than the project's.
    echo "== installing s3s-fs into .cache/s3s-fs"
    cargo install s3s-fs@0.14.1 --features binary --locked --root .cache/s3s-fs
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

echo "== test clients for reseal serve (idempotent)"
# The AWS CLI in .venv (beside moto), and rclone from Debian: tests/serve_clients.rs and
# tests/serve_tls.rs run them.
[ -x .venv/bin/python ] || python3 -m venv .venv
[ -x .venv/bin/aws ] || .venv/bin/pip install --quiet awscli
command -v rclone > /dev/null || { apt-get update -qq && apt-get install -y -qq rclone; }

# PostgreSQL: a private cluster for this run (tests/postgres.sh: data under
# .cache/postgres, a loopback port, an unprivileged server user), stopped on the way out.
echo "== PostgreSQL for the job store tests"
RESEAL_TEST_POSTGRES=$(tests/postgres.sh start)
export RESEAL_TEST_POSTGRES
trap 'tests/postgres.sh stop' EXIT

echo "== cargo test (job store: SQLite; tests/fleet.rs on PostgreSQL)"
cargo test --locked

# One suite, two stores: every job and runner test again, on PostgreSQL.
echo "== cargo test (job store: PostgreSQL)"
RESEAL_TEST_STORE=postgres cargo test --locked --test job_cli --test manifest_limits \
    --test columnar_manifests --test sweep --test 'runner_*'

echo "== cargo test (aws-lc cipher backend: same bytes as aes-gcm)"
cargo test --locked --features aws-lc --lib crypto
