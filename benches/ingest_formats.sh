#!/usr/bin/env bash
# Times `reseal job create` on one all-versions S3 Inventory written as CSV, Parquet and ORC
# (benches/gen_inventory.py --all-columns: the 18 columns S3 can write, long nested keys,
# some needing percent-encoding; 3 data files), each into a fresh SQLite job store, with
# peak RSS from /usr/bin/time -v. Then the same with a --prefix no key has, so that no task
# is written: the reader alone (MD5, decompression, decoding, rows, filter), beside the job
# store's fixed costs.
#
#   benches/ingest_formats.sh            # 1,000,000 rows
#   benches/ingest_formats.sh 100000     # other sizes
#   ROUNDS=3 benches/ingest_formats.sh   # each measurement 3 times
#   PROFILE=1 benches/ingest_formats.sh  # and where `job create`'s CPU time goes (perf)
#
# Needs pyarrow in .venv (`.venv/bin/pip install pyarrow`; tests/run.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000000)
rounds=${ROUNDS:-1}

cargo build --release --quiet
bin=target/release/reseal
work=bench-data/ingest-formats
mkdir -p "$work"

# One measurement: prints seconds, rows/s, peak MiB and the job's task count.
measure() {
  local manifest=$1 rows=$2 db=$3
  shift 3
  rm -f "$db" "$db-wal" "$db-shm"
  local start secs kib tasks
  start=$(date +%s.%N)
  /usr/bin/time -v -o "$db.time" \
    "$bin" --db "$db" job create --manifest "$manifest" --sse sse-kms:alias/bench "$@" \
    >/dev/null 2>"$db.stderr"
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  kib=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$db.time")
  tasks=$("$bin" --db "$db" job list --output json |
    python3 -c 'import json,sys; j=json.load(sys.stdin)[0]; print(j["tasks"]["total"], j["ingest"]["rows_read"])')
  [ "${tasks#* }" = "$rows" ] || { echo "expected $rows rows read, the job read ${tasks#* }" >&2; exit 1; }
  printf '%-8s %-10s %-10s %-10s %-9s' "$(printf '%.2f' "$secs")" \
    "$(echo "$rows / $secs" | bc)" "$(echo "scale=1; $kib / 1024" | bc)" "${tasks%% *}" \
    "$(du -sm "$(dirname "$manifest")/../data" | cut -f1)"
}

printf '%-9s %-8s %-13s %-8s %-10s %-10s %-10s %-9s\n' \
  rows format run seconds rows/s peak_MiB tasks data_MiB
for rows in "${sizes[@]}"; do
  for format in CSV Parquet ORC; do
    out="$work/$rows-$format"
    if [ ! -f "$out/.done" ]; then
      rm -rf "$out"
      manifest=$(.venv/bin/python benches/gen_inventory.py --out "$out" --rows "$rows" \
        --files 3 --bucket bench-bucket --config all-versions --versions --all-columns \
        --format "$format")
      echo "$manifest" > "$out/.done"
    fi
  done
  for round in $(seq "$rounds"); do
    for run in "job create" "reader alone"; do
      for format in CSV Parquet ORC; do
        manifest=$(cat "$work/$rows-$format/.done")
        extra=()
        [ "$run" = "reader alone" ] && extra=(--prefix "no key starts like this/")
        printf '%-9s %-8s %-13s ' "$rows" "$format" "$run"
        measure "$manifest" "$rows" "$work/jobs-$rows-$format.db" "${extra[@]}"
        echo
      done
    done
  done
done

# Where the CPU time of `job create` goes, from `perf record` samples of every thread: by
# thread (the reader runs on a blocking thread, SQLite on sqlx's worker, the INSERTs are
# built on the main thread), then grouped by what each function does.
[ "${PROFILE:-0}" = 1 ] || exit 0
for rows in "${sizes[@]}"; do
  for format in CSV Parquet ORC; do
    manifest=$(cat "$work/$rows-$format/.done")
    db="$work/jobs-$rows-$format.db"
    rm -f "$db" "$db-wal" "$db-shm"
    perf record -q -F 499 -o "$work/perf-$rows-$format.data" -- \
      "$bin" --db "$db" job create --manifest "$manifest" --sse sse-kms:alias/bench \
      >/dev/null 2>"$db.stderr"
    echo "== $rows rows, $format: share of CPU samples, by thread"
    perf report -q -i "$work/perf-$rows-$format.data" --stdio --no-children --sort comm 2>/dev/null |
      sed -e 's/sqlx-sqlite-wor/SQLite (sqlx worker thread)/' \
        -e 's/tokio-rt-worker/manifest reader and its MD5 thread/' \
        -e 's/reseal *$/main thread (batches of INSERTs)/' | grep .
    echo "== $rows rows, $format: share of CPU samples, by what the function does"
    perf report -q -i "$work/perf-$rows-$format.data" --stdio --no-children --sort dso,sym 2>/dev/null |
      python3 -c '
import re, sys
groups = [
    ("job store (SQLite, sqlx)", r"sqlite3|sqlx|libsqlite|balance_|pcache|wal[A-Z]|btree"),
    ("decompression", r"snap::|zlib_rs|inflate|ZSTD_|zstd|miniz|flate2|decompress"),
    ("MD5 of data files", r"md5|Md5"),
    ("Parquet/ORC/Arrow decoding", r"parquet::|orc_rust|arrow_|prost"),
    ("CSV parsing", r"csv_core|csv::"),
    ("rows and tasks (reseal)", r"reseal::"),
    ("memory (malloc, free, copies)", r"malloc|free|memcpy|memmove|realloc|memset|_int_"),
    ("kernel", r"\[kernel|\[k\]"),
]
totals = {}
for line in sys.stdin:
    m = re.match(r"\s*([\d.]+)%\s+(.*)", line)
    if not m:
        continue
    name = next((g for g, pat in groups if re.search(pat, m.group(2))), "other")
    totals[name] = totals.get(name, 0.0) + float(m.group(1))
for name, share in sorted(totals.items(), key=lambda kv: -kv[1]):
    print(f"  {share:5.1f}%  {name}")
'
  done
done
