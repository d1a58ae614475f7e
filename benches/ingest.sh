#!/usr/bin/env bash
# Times `reseal job create` on generated S3 Inventory reports (3 gzip data files) of
# 100,000 and 1,000,000 rows, with peak RSS from /usr/bin/time -v, beside `zcat | wc -l`
# of the same files (the cost of just decompressing them).
#
#   benches/ingest.sh            # both sizes
#   benches/ingest.sh 250000     # other sizes
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100000 1000000)

cargo build --release --quiet
bin=target/release/reseal
work=bench-data/ingest
mkdir -p "$work"

printf '%-9s %-12s %-10s %-12s %-14s\n' rows seconds rows/s peak_MiB zcat_seconds
for rows in "${sizes[@]}"; do
  out="$work/$rows"
  if [ ! -f "$out/.done" ]; then
    rm -rf "$out"
    manifest=$(python3 benches/gen_inventory.py --out "$out" --rows "$rows" --files 3 --bucket bench-bucket)
    echo "$manifest" > "$out/.done"
  fi
  manifest=$(cat "$out/.done")
  db="$work/jobs-$rows.db"
  rm -f "$db" "$db-wal" "$db-shm"
  start=$(date +%s.%N)
  /usr/bin/time -v -o "$work/time-$rows.txt" \
    "$bin" --db "$db" job create --manifest "$manifest" --sse sse-kms:alias/bench >/dev/null 2>&1
  secs=$(printf '%.2f' "$(echo "$(date +%s.%N) - $start" | bc)")
  kib=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time-$rows.txt")
  tasks=$("$bin" --db "$db" job list --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["tasks"]["total"])')
  [ "$tasks" = "$rows" ] || { echo "expected $rows tasks, the job has $tasks" >&2; exit 1; }
  zstart=$(date +%s.%N)
  zcat "$out"/inventory/bench-bucket/all-objects/data/*.csv.gz | wc -l >/dev/null
  zsecs=$(echo "$(date +%s.%N) - $zstart" | bc)
  printf '%-9s %-12s %-10s %-12s %-14s\n' "$rows" "$secs" \
    "$(echo "$rows / $secs" | bc)" "$(echo "scale=1; $kib / 1024" | bc)" "$(printf '%.2f' "$zsecs")"
done
