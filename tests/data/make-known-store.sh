#!/usr/bin/env bash
# Writes tests/data/known-store: a small local store in every encryption mode, made once
# by the first version of the store format and checked in, so that every later version is
# tested on reading it (tests/store_cli.rs). The keys here are test keys, public on purpose.
# Run it only when starting a new format version, next to the old one, never over it.
set -euo pipefail
cd "$(dirname "$0")"
[ ! -e known-store ] || { echo "known-store exists; a known-answer store is never rewritten" >&2; exit 1; }
bin=${RESEAL:-../../target/debug/reseal}
export RESEAL_MASTER_KEY=$(cat known-store.master-key)
printf 'reseal known-answer SSE-C key!!!' > known-store.customer-key   # 32 bytes
"$bin" store init known-store
"$bin" store mb --store known-store bkt
python3 - <<'PY' > /tmp/known-body.bin
import sys
sys.stdout.buffer.write(bytes((i * 7 + 3) % 256 for i in range(300_000)))
PY
printf '' > /tmp/known-empty.bin
for mode in none sse-s3 sse-kms dsse-kms:alias/aws/s3 "sse-c:@known-store.customer-key"; do
  name=$(echo "$mode" | cut -d: -f1)
  "$bin" store put --store known-store bkt "$name/body.bin" /tmp/known-body.bin --sse "$mode"
  "$bin" store put --store known-store bkt "$name/empty" /tmp/known-empty.bin --sse "$mode"
done
"$bin" store put --store known-store bkt "keys/../odd key+ü/" /tmp/known-body.bin --sse sse-s3
"$bin" store ls --store known-store bkt --output json \
  | python3 -c 'import json,sys; print(json.dumps([{k: o[k] for k in ("key","size","etag","encryption")} for o in json.load(sys.stdin)], indent=1))' \
  > known-store.json
rm -f known-store/buckets/bkt/.lock
