#!/usr/bin/env bash
# The job store for fleets, in one run on this machine:
#   1. ingest: `reseal job create` of a 1,000,000-row S3 Inventory (benches/gen_inventory.py,
#      3 gzip files) into SQLite and into PostgreSQL: rows/s and peak RSS;
#   2. bookkeeping: lease + record of 1,000,000 tasks by workers whose target does nothing
#      (benches/bookkeeping.rs), 1, 2 and 4 workers on PostgreSQL against 1 on SQLite;
#   3. end to end: 20,000 small objects on s3s-fs re-encrypted (CopyObject onto itself,
#      --no-verify: s3s-fs reports no SSE) by 1, 2 and 4 `reseal job run` processes on one
#      PostgreSQL job.
# PostgreSQL is the private cluster of tests/postgres.sh (fsync off, as in the tests).
#
#   benches/fleet.sh                         # everything
#   ROWS=100000 TASKS=100000 OBJECTS=2000 benches/fleet.sh    # a quick look
# Scratch goes to bench-data/fleet/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-1000000}
TASKS=${TASKS:-1000000}
OBJECTS=${OBJECTS:-20000}
work=bench-data/fleet
mkdir -p "$work"
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1 \
    AWS_EC2_METADATA_DISABLED=true
unset AWS_CA_BUNDLE

cargo build --release --quiet
bin=target/release/reseal
pg=$(tests/postgres.sh start)
fresh_db() {
    local name="bench_$1_$$"
    psql -q "$pg" -c "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name" > /dev/null
    echo "${pg%/*}/$name"
}
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); load before: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- 1. ingest ---------------------------------------------------------------------------
inv="$work/inventory-$ROWS"
if [ ! -f "$inv/.manifest" ]; then
    rm -rf "$inv"
    python3 benches/gen_inventory.py --out "$inv" --rows "$ROWS" --files 3 --bucket bench-bucket > "$inv.path"
    mv "$inv.path" "$inv/.manifest"
fi
manifest=$(cat "$inv/.manifest")
printf '\n%-10s %-9s %-10s %-10s %-9s\n' store rows seconds rows/s peak_MiB
for store in sqlite postgres; do
    if [ $store = sqlite ]; then db="$work/ingest.db"; rm -f "$db" "$db"-*; else db=$(fresh_db ingest); fi
    start=$(date +%s.%N)
    /usr/bin/time -v -o "$work/time.txt" "$bin" --db "$db" job create --manifest "$manifest" \
        --sse sse-kms:alias/bench > /dev/null 2> "$work/ingest-$store.err"
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    kib=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
    printf '%-10s %-9s %-10.2f %-10.0f %-9.1f\n' $store "$ROWS" "$secs" \
        "$(echo "$ROWS / $secs" | bc -l)" "$(echo "$kib / 1024" | bc -l)"
done

# --- 2. bookkeeping ----------------------------------------------------------------------
echo
for run in "sqlite 1" "postgres 1" "postgres 2" "postgres 4"; do
    set -- $run
    if [ "$1" = sqlite ]; then db="$work/bookkeeping.db"; rm -f "$db" "$db"-*; else db=$(fresh_db "bk$2"); fi
    cargo bench --quiet --bench bookkeeping -- --db "$db" --tasks "$TASKS" --workers "$2" 2> /dev/null
done

# --- 3. end to end on s3s-fs ---------------------------------------------------------------
[ -x .cache/s3s-fs/bin/s3s-fs ] || cargo install s3s-fs@0.14.1 --features binary --locked --root .cache/s3s-fs
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -c 'import boto3' 2> /dev/null || .venv/bin/pip install --quiet boto3
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rm -rf "$work/s3s-fs" && mkdir -p "$work/s3s-fs"
.cache/s3s-fs/bin/s3s-fs --host 127.0.0.1 --port "$port" --access-key bench --secret-key bench-secret \
    "$work/s3s-fs" > /dev/null 2>&1 &
server=$!
trap 'kill $server 2> /dev/null || true' EXIT
url="http://127.0.0.1:$port"
for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$port) 2> /dev/null && break; sleep 0.1; done
.venv/bin/python benches/s3_objects.py create --endpoint "$url" --bucket bench --prefix data \
    --count "$OBJECTS" --size 4096
printf '\n%-8s %-9s %-10s %-10s\n' workers objects seconds copies/s
for workers in 1 2 4; do
    db=$(fresh_db "e2e$workers")
    id=$("$bin" --db "$db" job create --from-listing s3://bench/data/ --sse sse-s3 \
        --endpoint-url "$url" 2> /dev/null)
    start=$(date +%s.%N)
    pids=()
    for _ in $(seq "$workers"); do
        "$bin" --db "$db" job run "$id" --endpoint-url "$url" --no-verify 2> /dev/null &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    done_tasks=$("$bin" --db "$db" job describe "$id" --output json | python3 -c \
        'import json,sys; t=json.load(sys.stdin)["tasks"]; print(t["succeeded"] + t["skipped"])')
    [ "$done_tasks" = "$OBJECTS" ] || { echo "expected $OBJECTS tasks done, got $done_tasks" >&2; exit 1; }
    printf '%-8s %-9s %-10.2f %-10.0f\n' "$workers" "$OBJECTS" "$secs" "$(echo "$OBJECTS / $secs" | bc -l)"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
