#!/usr/bin/env python3
"""Writes an S3 Inventory report in the layout S3 uses, for benchmarks and examples.

    OUT/PREFIX/BUCKET/CONFIG/data/<uuid>.csv.gz          gzip CSV, every field quoted
    OUT/PREFIX/BUCKET/CONFIG/<date>/manifest.json
    OUT/PREFIX/BUCKET/CONFIG/<date>/manifest.checksum

Keys are realistic (nested prefixes, spaces, '+', unicode) and form-encoded as S3
Inventory writes them. The output is deterministic for a given --seed.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import random
import uuid
from urllib.parse import quote_plus

SCHEMA = [
    "Bucket", "Key", "VersionId", "IsLatest", "IsDeleteMarker", "Size",
    "LastModifiedDate", "ETag", "StorageClass", "IsMultipartUploaded",
    "EncryptionStatus", "BucketKeyStatus",
]
UNVERSIONED = [c for c in SCHEMA if c not in ("VersionId", "IsLatest", "IsDeleteMarker")]
CLASSES = ["STANDARD"] * 8 + ["STANDARD_IA", "INTELLIGENT_TIERING", "GLACIER_IR"]
MODES = ["SSE-S3"] * 6 + ["NOT-SSE"] * 2 + ["SSE-KMS", "SSE-C"]
WORDS = ["report", "photo", "invoice", "backup", "données", "файл", "写真", "a+b", "50%", "x y"]


def make_key(rng, i):
    kind = i % 4
    if kind == 0:
        return f"logs/{2020 + i % 5}/{1 + i % 12:02d}/{1 + i % 28:02d}/host-{i % 97}/part-{i:09d}.json.gz"
    if kind == 1:
        return f"images/users/{rng.randrange(100000)}/{rng.choice(WORDS)} {i}.jpg"
    if kind == 2:
        return f"exports/{rng.choice(WORDS)}/{i:x}/data.parquet"
    return f"backups/db-{i % 31}/{rng.choice(WORDS)}-{i}.tar.zst"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--rows", type=int, default=1000)
    p.add_argument("--files", type=int, default=3)
    p.add_argument("--bucket", default="example-bucket")
    p.add_argument("--prefix", default="inventory")
    p.add_argument("--config", default="all-objects")
    p.add_argument("--versions", action="store_true", help="an all-versions inventory")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--date", default="2026-11-22T01-00Z")
    args = p.parse_args()

    rng = random.Random(args.seed)
    schema = SCHEMA if args.versions else UNVERSIONED
    config_dir = os.path.join(args.out, args.prefix, args.bucket, args.config)
    data_dir = os.path.join(config_dir, "data")
    date_dir = os.path.join(config_dir, args.date)
    os.makedirs(data_dir, exist_ok=True)
    os.makedirs(date_dir, exist_ok=True)

    files = []
    per_file = -(-args.rows // args.files) if args.files else 0
    row = 0
    for f in range(args.files):
        name = str(uuid.UUID(int=rng.getrandbits(128), version=4)) + ".csv.gz"
        key = f"{args.prefix}/{args.bucket}/{args.config}/data/{name}"
        buf = io.StringIO()
        for _ in range(min(per_file, args.rows - row)):
            obj = {
                "Bucket": args.bucket,
                "Key": quote_plus(make_key(rng, row), safe="/"),
                "Size": str(rng.randrange(0, 64 << 20)),
                "LastModifiedDate": f"20{20 + row % 6}-{1 + row % 12:02d}-{1 + row % 28:02d}T{row % 24:02d}:00:00.000Z",
                "ETag": hashlib.md5(str(row).encode()).hexdigest(),
                "StorageClass": rng.choice(CLASSES),
                "IsMultipartUploaded": "false",
                "EncryptionStatus": rng.choice(MODES),
                "BucketKeyStatus": "DISABLED",
                "VersionId": uuid.UUID(int=rng.getrandbits(128)).hex,
                "IsLatest": "true",
                "IsDeleteMarker": "false",
            }
            if args.versions and row % 10 == 7:
                obj["IsLatest"] = "false"
            if args.versions and row % 10 == 9:
                obj.update(IsDeleteMarker="true", Size="", ETag="", StorageClass="", EncryptionStatus="")
            buf.write(",".join('"' + obj[c].replace('"', '""') + '"' for c in schema) + "\n")
            row += 1
        data = gzip.compress(buf.getvalue().encode(), mtime=0)
        with open(os.path.join(data_dir, name), "wb") as out:
            out.write(data)
        files.append({"key": key, "size": len(data), "MD5checksum": hashlib.md5(data).hexdigest()})

    manifest = {
        "sourceBucket": args.bucket,
        "destinationBucket": "arn:aws:s3:::example-inventory-destination",
        "version": "2016-11-30",
        "creationTimestamp": "1795309200000",
        "fileFormat": "CSV",
        "fileSchema": ", ".join(schema),
        "files": files,
    }
    text = json.dumps(manifest, indent=2).encode()
    with open(os.path.join(date_dir, "manifest.json"), "wb") as out:
        out.write(text)
    with open(os.path.join(date_dir, "manifest.checksum"), "w") as out:
        out.write(hashlib.md5(text).hexdigest() + "\n")
    print(os.path.join(date_dir, "manifest.json"))


if __name__ == "__main__":
    main()
