#!/usr/bin/env python3
"""Helpers for benches/s3_peers.sh (boto3, from the project venv).

  kms-key  --endpoint URL                    create a KMS key (moto), print its id
  create   --endpoint URL --bucket B --prefix P --count N --size S [--inventory DIR]
                                             make the bucket and N objects under P/ (and
                                             an S3 Inventory of them in DIR: prints the
                                             path of its manifest.json)
  check    --endpoint URL --bucket B --prefix P --count N --size S --since T [--kms KEY]
                                             after a timed run: the same keys and no
                                             others, every object written at or after T,
                                             a sample with its bytes, user metadata and
                                             content type intact (and SSE-KMS with KEY)
  requests --log FILE --skip LINES --objects N
                                             classify the requests the server logged
                                             after line LINES (moto's access log, or
                                             s3s-fs's debug log), per object
  reseal-tasks --db DB                       reseal's task outcomes: state, error code, count
  table    --results TSV                     medians over rounds, per server and tool

Objects are `P/dNN/oNNNNNN` (16 folders) with bytes derived from their key, so a check
needs nothing saved between creation and checking. Credentials, region and endpoint
come from the environment the script sets.
"""

import argparse
import gzip
import hashlib
import json
import os
import random
import re
import statistics
import sys
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from urllib.parse import quote

CONTENT_TYPE = "text/x-reseal-bench"


def keys(prefix, count):
    return [f"{prefix}/d{i % 16:02d}/o{i:06d}" for i in range(count)]


def body(key, size):
    block = hashlib.sha256(key.encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def metadata(key):
    return {"bench": "s3-peers", "source-key": key.rsplit("/", 1)[-1]}


def client(endpoint, service="s3", pool=32):
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=endpoint,
        config=Config(max_pool_connections=pool, retries={"mode": "standard", "max_attempts": 5}),
    )


def cmd_kms_key(a):
    print(client(a.endpoint, "kms").create_key(Description="s3_peers bench")["KeyMetadata"]["KeyId"])


def cmd_create(a):
    s3 = client(a.endpoint, pool=a.threads)
    s3.create_bucket(Bucket=a.bucket)

    def put(key):
        return s3.put_object(
            Bucket=a.bucket,
            Key=key,
            Body=body(key, a.size),
            Metadata=metadata(key),
            ContentType=CONTENT_TYPE,
        )

    with ThreadPoolExecutor(a.threads) as pool:
        put_answers = list(pool.map(put, keys(a.prefix, a.count)))
    if a.inventory:
        print(write_inventory(a, put_answers))


# What S3 Inventory's EncryptionStatus says for a PutObject answer's ServerSideEncryption.
ENCRYPTION_STATUS = {None: "NOT-SSE", "AES256": "SSE-S3", "aws:kms": "SSE-KMS", "aws:kms:dsse": "DSSE-KMS"}


def write_inventory(a, put_answers):
    """An S3 Inventory (CSV) of the objects just put, as S3 lays one out once copied to
    disk: DIR/DATE/manifest.json and manifest.checksum, DIR/data/FILE.csv.gz. The ETags and
    encryption are the ones the puts' answers gave. Returns the manifest's path."""
    rows = ""
    for key, put in zip(keys(a.prefix, a.count), put_answers):
        fields = [a.bucket, quote(key, safe="/-_.~"), str(a.size), put["ETag"].strip('"'), "STANDARD"]
        fields.append(ENCRYPTION_STATUS[put.get("ServerSideEncryption")])
        rows += ",".join(f'"{f}"' for f in fields) + "\n"
    data = gzip.compress(rows.encode())
    now = datetime.now(timezone.utc)
    date_dir = os.path.join(a.inventory, now.strftime("%Y-%m-%dT%H-%MZ"))
    os.makedirs(os.path.join(a.inventory, "data"), exist_ok=True)
    os.makedirs(date_dir, exist_ok=True)
    with open(os.path.join(a.inventory, "data", "part0.csv.gz"), "wb") as f:
        f.write(data)
    manifest = json.dumps(
        {
            "sourceBucket": a.bucket,
            "destinationBucket": "arn:aws:s3:::bench-inventory",
            "version": "2016-11-30",
            "creationTimestamp": str(int(now.timestamp() * 1000)),
            "fileFormat": "CSV",
            "fileSchema": "Bucket, Key, Size, ETag, StorageClass, EncryptionStatus",
            "files": [
                {
                    "key": f"{a.bucket}/bench/data/part0.csv.gz",
                    "size": len(data),
                    "MD5checksum": hashlib.md5(data).hexdigest(),
                }
            ],
        },
        indent=2,
    ).encode()
    with open(os.path.join(date_dir, "manifest.checksum"), "w") as f:
        f.write(hashlib.md5(manifest).hexdigest())
    path = os.path.join(date_dir, "manifest.json")
    with open(path, "wb") as f:
        f.write(manifest)
    return path


def fail(msg):
    print(f"CHECK FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def cmd_check(a):
    s3 = client(a.endpoint)
    since = datetime.fromtimestamp(a.since, timezone.utc)
    want = set(keys(a.prefix, a.count))
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=a.bucket):
        for o in page.get("Contents", []):
            found[o["Key"]] = o
    if set(found) != want:
        extra = sorted(set(found) - want)[:3]
        missing = sorted(want - set(found))[:3]
        fail(f"{a.bucket}: {len(found)} objects, {a.count} expected; extra {extra}, missing {missing}")
    stale = [k for k, o in found.items() if o["LastModified"] < since]
    if stale:
        fail(
            f"{a.bucket}: {len(stale)} of {a.count} objects were not rewritten by the run "
            f"(last modified before it started), e.g. {stale[0]} at {found[stale[0]]['LastModified']}"
        )
    sample = random.Random(a.bucket).sample(sorted(want), min(a.sample, a.count))
    for key in sample:
        got = s3.get_object(Bucket=a.bucket, Key=key)
        data = got["Body"].read()
        if data != body(key, a.size):
            fail(f"s3://{a.bucket}/{key}: {len(data)} bytes that are not the object's")
        if got.get("Metadata") != metadata(key):
            fail(f"s3://{a.bucket}/{key}: user metadata {got.get('Metadata')}, expected {metadata(key)}")
        if got.get("ContentType") != CONTENT_TYPE:
            fail(f"s3://{a.bucket}/{key}: content type {got.get('ContentType')!r}, expected {CONTENT_TYPE!r}")
        if a.kms:
            sse, kid = got.get("ServerSideEncryption"), got.get("SSEKMSKeyId") or ""
            if sse != "aws:kms" or not (kid == a.kms or kid.endswith("/" + a.kms)):
                fail(f"s3://{a.bucket}/{key}: encryption {sse} with key {kid!r}, expected aws:kms with {a.kms}")
    print(f"ok: {a.count} objects, all rewritten, {len(sample)} sampled intact" + (", SSE-KMS" if a.kms else ""))


# moto (werkzeug's access log): 127.0.0.1 - - [date] "METHOD /path?query HTTP/1.1" 200 -
LOG_LINE = re.compile(r'"([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3})')
# s3s-fs with RUST_LOG=s3s::ops=debug: ... DEBUG s3s::ops: resolved route, op: HeadObject, ...
S3S_ROUTE = re.compile(r"resolved route, op: (\w+)")
S3S_OPS = {"HeadObject": "HEAD", "CopyObject": "COPY", "ListObjectsV2": "LIST", "ListObjects": "LIST"}


def classify(method, path):
    route, _, query = path.partition("?")
    parts = route.strip("/").split("/", 1)
    on_object = len(parts) == 2 and parts[1] != ""
    if method == "GET" and not on_object and ("list-type" in query or "prefix" in query or query == ""):
        return "LIST"
    if method == "PUT" and on_object and query in ("", "x-id=CopyObject"):
        return "COPY"  # every PUT on an object in a timed run: nothing uploads there
    return method + ("" if on_object else " bucket") + (f"?{query.split('=')[0]}" if query else "")


def cmd_requests(a):
    counts, errors = Counter(), Counter()
    with open(a.log, errors="replace") as f:
        for n, line in enumerate(f):
            if n < a.skip:
                continue
            r = S3S_ROUTE.search(line)
            if r:
                counts[S3S_OPS.get(r.group(1), r.group(1))] += 1
                continue
            m = LOG_LINE.search(line)
            if not m:
                continue
            kind = classify(m.group(1), m.group(2))
            counts[kind] += 1
            if not m.group(3).startswith("2"):
                errors[f"{kind} {m.group(3)}"] += 1
    order = {"HEAD": 0, "COPY": 1, "LIST": 2}
    parts = [f"{k} {v / a.objects:.3g}" for k, v in sorted(counts.items(), key=lambda kv: (order.get(kv[0], 9), kv[0]))]
    parts += [f"[{k}: {v}]" for k, v in sorted(errors.items())]
    print(", ".join(parts) or "none logged")


def cmd_reseal_tasks(a):
    import sqlite3

    db = sqlite3.connect(f"file:{a.db}?mode=ro", uri=True)
    for state, code, n in db.execute("SELECT state, error_code, count(*) FROM tasks GROUP BY 1, 2 ORDER BY 1, 2"):
        print(state, code or "-", n)


def cmd_table(a):
    rows = defaultdict(list)
    requests = {}
    with open(a.results) as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            r = dict(zip(header, line.rstrip("\n").split("\t")))
            rows[(r["server"], r["tool"])].append(r)
            if r.get("requests", "-") != "-":
                requests[(r["server"], r["tool"])] = r["requests"]
    for server in dict.fromkeys(s for s, _ in rows):
        tools = [t for s, t in rows if s == server]
        med = {}
        for t in tools:
            rs = rows[(server, t)]
            n = int(rs[0]["objects"])
            wall = statistics.median(float(r["wall_s"]) for r in rs)
            cpu = statistics.median(float(r["cpu_s"]) for r in rs)
            med[t] = dict(n=n, rounds=len(rs), wall=wall, rate=n / wall, cpu=cpu, ms=1000 * cpu / n)
        peers = [t for t in tools if not t.startswith("reseal")]
        best_rate = max((med[t]["rate"] for t in peers), default=None)
        best_ms = min((med[t]["ms"] for t in peers), default=None)
        first = med[tools[0]]
        print(f"\n== {server}: {first['n']:,} objects per tool per round, median of {first['rounds']} round(s)")
        print(f"{'tool':<28} {'wall s':>8} {'copies/s':>9} {'CPU s':>7} {'CPU ms/copy':>11} {'vs best peer (rate, CPU)':<27}  requests per object")
        for t in tools:
            m = med[t]
            vs = ""
            if t.startswith("reseal") and best_rate:
                vs = f"{m['rate'] / best_rate:.2f}x rate, {m['ms'] / best_ms:.2f}x CPU"
            print(
                f"{t:<28} {m['wall']:>8.2f} {m['rate']:>9.0f} {m['cpu']:>7.2f} {m['ms']:>11.3f} {vs:<27}  "
                f"{requests.get((server, t), '-')}"
            )
        if not any((server, t) in requests for t in tools):
            print("(requests not counted on this server: COUNT_FAST_REQUESTS=1 counts them, slowing it)")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("kms-key")
    k.add_argument("--endpoint", required=True)
    for name in ("create", "check"):
        c = sub.add_parser(name)
        c.add_argument("--endpoint", required=True)
        c.add_argument("--bucket", required=True)
        c.add_argument("--prefix", required=True)
        c.add_argument("--count", type=int, required=True)
        c.add_argument("--size", type=int, required=True)
        if name == "create":
            c.add_argument("--threads", type=int, default=32)
            c.add_argument("--inventory", help="also write an S3 Inventory of the objects here")
        else:
            c.add_argument("--since", type=float, required=True, help="epoch seconds")
            c.add_argument("--kms", help="expect SSE-KMS with this key id")
            c.add_argument("--sample", type=int, default=100)
    r = sub.add_parser("requests")
    r.add_argument("--log", required=True)
    r.add_argument("--skip", type=int, required=True)
    r.add_argument("--objects", type=int, required=True)
    d = sub.add_parser("reseal-tasks")
    d.add_argument("--db", required=True)
    t = sub.add_parser("table")
    t.add_argument("--results", required=True)
    a = p.parse_args()
    commands = {
        "kms-key": cmd_kms_key,
        "create": cmd_create,
        "check": cmd_check,
        "requests": cmd_requests,
        "reseal-tasks": cmd_reseal_tasks,
        "table": cmd_table,
    }
    commands[a.cmd](a)


if __name__ == "__main__":
    main()
