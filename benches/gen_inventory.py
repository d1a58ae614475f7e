#!/usr/bin/env python3
"""Writes an S3 Inventory report in the layout S3 uses, for benchmarks, tests and examples.

    OUT/PREFIX/BUCKET/CONFIG/data/<uuid>.csv.gz          gzip CSV, every field quoted
    OUT/PREFIX/BUCKET/CONFIG/data/<uuid>.parquet         or Parquet (--format parquet)
    OUT/PREFIX/BUCKET/CONFIG/data/<uuid>.orc             or ORC (--format orc)
    OUT/PREFIX/BUCKET/CONFIG/<date>/manifest.json
    OUT/PREFIX/BUCKET/CONFIG/<date>/manifest.checksum

Keys are realistic (nested prefixes, spaces, '+', unicode); CSV keys are form-encoded as
S3 Inventory writes them, Parquet and ORC keys are not. --all-columns writes every column
S3 can (18 with --versions) and longer keys. The output is deterministic for a given --seed.
Parquet and ORC need pyarrow (`.venv/bin/pip install pyarrow`).
"""
import argparse
import datetime
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
# Every column S3 Inventory writes in CSV, ORC and Parquet alike, in S3's order (the
# manifest.json examples in AWS's S3 User Guide, "Locating your inventory list").
ALL_COLUMNS = [
    "Bucket", "Key", "VersionId", "IsLatest", "IsDeleteMarker", "Size",
    "LastModifiedDate", "ETag", "StorageClass", "IsMultipartUploaded", "ReplicationStatus",
    "EncryptionStatus", "ObjectLockRetainUntilDate", "ObjectLockMode",
    "ObjectLockLegalHoldStatus", "IntelligentTieringAccessTier", "BucketKeyStatus",
    "ChecksumAlgorithm",
]
VERSION_COLUMNS = ("VersionId", "IsLatest", "IsDeleteMarker")
# The name and type of each column in Parquet and ORC inventories, from the same examples'
# fileSchema: snake-case names; strings, booleans, 64-bit sizes and timestamps in ms.
COLUMNAR = {
    "Bucket": ("bucket", "string"),
    "Key": ("key", "string"),
    "VersionId": ("version_id", "string"),
    "IsLatest": ("is_latest", "bool"),
    "IsDeleteMarker": ("is_delete_marker", "bool"),
    "Size": ("size", "int64"),
    "LastModifiedDate": ("last_modified_date", "timestamp"),
    "ETag": ("e_tag", "string"),
    "StorageClass": ("storage_class", "string"),
    "IsMultipartUploaded": ("is_multipart_uploaded", "bool"),
    "ReplicationStatus": ("replication_status", "string"),
    "EncryptionStatus": ("encryption_status", "string"),
    "ObjectLockRetainUntilDate": ("object_lock_retain_until_date", "timestamp"),
    "ObjectLockMode": ("object_lock_mode", "string"),
    "ObjectLockLegalHoldStatus": ("object_lock_legal_hold_status", "string"),
    "IntelligentTieringAccessTier": ("intelligent_tiering_access_tier", "string"),
    "BucketKeyStatus": ("bucket_key_status", "string"),
    "ChecksumAlgorithm": ("checksum_algorithm", "string"),
}
EXTENSIONS = {"CSV": ".csv.gz", "Parquet": ".parquet", "ORC": ".orc"}
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


def make_long_key(rng, i):
    """A key as large buckets have them: a few levels of partitioning in front of make_key."""
    return (f"tenant={i % 211:04d}/region=eu-west-{1 + i % 3}/year={2020 + i % 6}"
            f"/month={1 + i % 12:02d}/{make_key(rng, i)}")


def iso_millis(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def csv_field(column, value):
    """A value as S3 writes it in a CSV inventory: keys form-encoded, empty for no value."""
    if value is None:
        return ""
    if column == "Key":
        return quote_plus(value, safe="/")
    if isinstance(value, bool):
        return "true" if value else "false"
    if COLUMNAR[column][1] == "timestamp":
        return iso_millis(value)
    return str(value)


def csv_bytes(schema, rows):
    buf = io.StringIO()
    for row in rows:
        fields = (csv_field(c, row.get(c)) for c in schema)
        buf.write(",".join('"' + f.replace('"', '""') + '"' for f in fields) + "\n")
    return gzip.compress(buf.getvalue().encode(), mtime=0)


def arrow_table(schema, rows, fmt):
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "bool": pa.bool_(),
        "int64": pa.int64(),
        # Parquet: int64 TIMESTAMP(MILLIS, UTC); ORC: `timestamp`, which has no zone.
        "timestamp": pa.timestamp("ms", tz="UTC" if fmt == "Parquet" else None),
    }
    fields, arrays = [], []
    for column in schema:
        name, kind = COLUMNAR[column]
        # Bucket and key are `required` in S3's Parquet schema.
        fields.append(pa.field(name, types[kind], nullable=column not in ("Bucket", "Key")))
        arrays.append(pa.array([row.get(column) for row in rows], types[kind]))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def file_schema(schema, fmt):
    """manifest.json's fileSchema, spelled as in AWS's examples for each format."""
    if fmt == "CSV":
        return ", ".join(schema)
    if fmt == "ORC":
        orc = {"string": "string", "bool": "boolean", "int64": "bigint", "timestamp": "timestamp"}
        return "struct<" + ",".join(
            f"{COLUMNAR[c][0]}:{orc[COLUMNAR[c][1]]}" for c in schema) + ">"
    parquet = {"string": "binary {} (UTF8)", "bool": "boolean {}", "int64": "int64 {}",
               "timestamp": "int64 {} (TIMESTAMP_MILLIS)"}
    fields = (("required " if c in ("Bucket", "Key") else "optional ")
              + parquet[COLUMNAR[c][1]].format(COLUMNAR[c][0]) + ";" for c in schema)
    return "message s3.inventory { " + " ".join(fields) + " }"


def data_file_bytes(schema, rows, fmt, group_rows):
    """One data file. group_rows caps the rows of a Parquet row group or an ORC stripe."""
    if fmt == "CSV":
        return csv_bytes(schema, rows)
    table = arrow_table(schema, rows, fmt)
    out = io.BytesIO()
    if fmt == "Parquet":
        import pyarrow.parquet as pq

        # Snappy, as S3 writes its Parquet inventories.
        pq.write_table(table, out, compression="snappy", row_group_size=group_rows or 1 << 20)
    else:
        import pyarrow.orc as orc

        # ORC's own default codec, zlib. liborc measures a stripe by its compressed bytes,
        # which stay at zero until a 64 KiB compression block fills, so stripes of a few rows
        # (group_rows, for tests) can only be cut uncompressed: a 1-byte stripe_size then
        # makes each write of group_rows rows one stripe.
        if group_rows is None:
            orc.write_table(table, out, compression="zlib")
        else:
            writer = orc.ORCWriter(out, compression="uncompressed", stripe_size=1,
                                   batch_size=group_rows)
            for start in range(0, table.num_rows, group_rows):
                writer.write(table.slice(start, group_rows))
            writer.close()
    return out.getvalue()


def write_inventory(config_dir, key_prefix, source_bucket, date, fmt, schema, files,
                    group_rows=None, names=None):
    """Writes each list of rows in `files` as one data file, then manifest.json and its
    checksum; returns manifest.json's path. Rows map column names (CSV's) to values: str,
    bool, int (sizes, and times in ms since the epoch) or None."""
    data_dir = os.path.join(config_dir, "data")
    date_dir = os.path.join(config_dir, date)
    os.makedirs(data_dir, exist_ok=True)
    os.makedirs(date_dir, exist_ok=True)
    entries = []
    for i, rows in enumerate(files):
        name = (names[i] if names else f"part-{i:05d}") + EXTENSIONS[fmt]
        data = data_file_bytes(schema, rows, fmt, group_rows)
        with open(os.path.join(data_dir, name), "wb") as out:
            out.write(data)
        entries.append({"key": f"{key_prefix}/data/{name}", "size": len(data),
                        "MD5checksum": hashlib.md5(data).hexdigest()})
    manifest = {
        "sourceBucket": source_bucket,
        "destinationBucket": "arn:aws:s3:::example-inventory-destination",
        "version": "2016-11-30",
        "creationTimestamp": "1795309200000",
        "fileFormat": fmt,
        "fileSchema": file_schema(schema, fmt),
        "files": entries,
    }
    text = json.dumps(manifest, indent=2).encode()
    path = os.path.join(date_dir, "manifest.json")
    with open(path, "wb") as out:
        out.write(text)
    with open(os.path.join(date_dir, "manifest.checksum"), "w") as out:
        out.write(hashlib.md5(text).hexdigest() + "\n")
    return path


def make_row(rng, row, args):
    key = make_long_key(rng, row) if args.all_columns else make_key(rng, row)
    obj = {
        "Bucket": args.bucket,
        "Key": key,
        "Size": rng.randrange(0, 64 << 20),
        "LastModifiedDate": int(datetime.datetime(
            2020 + row % 6, 1 + row % 12, 1 + row % 28, row % 24,
            tzinfo=datetime.timezone.utc).timestamp()) * 1000,
        "ETag": hashlib.md5(str(row).encode()).hexdigest(),
        "StorageClass": rng.choice(CLASSES),
        "IsMultipartUploaded": False,
        "EncryptionStatus": rng.choice(MODES),
        "BucketKeyStatus": "DISABLED",
        "VersionId": uuid.UUID(int=rng.getrandbits(128)).hex,
        "IsLatest": True,
        "IsDeleteMarker": False,
    }
    if args.all_columns:
        obj.update(
            IsMultipartUploaded=row % 5 == 0,
            ReplicationStatus=["COMPLETED", "PENDING", None, None][row % 4],
            ObjectLockRetainUntilDate=obj["LastModifiedDate"] + 86_400_000 * 365
            if row % 8 == 0 else None,
            ObjectLockMode="GOVERNANCE" if row % 8 == 0 else None,
            ObjectLockLegalHoldStatus="ON" if row % 16 == 0 else "OFF",
            IntelligentTieringAccessTier="FREQUENT"
            if obj["StorageClass"] == "INTELLIGENT_TIERING" else None,
            BucketKeyStatus="ENABLED" if obj["EncryptionStatus"] == "SSE-KMS" else "DISABLED",
            ChecksumAlgorithm=["CRC32", "CRC64NVME", None][row % 3],
        )
    if args.versions and row % 10 == 7:
        obj["IsLatest"] = False
    if args.versions and row % 10 == 9:
        obj.update(IsDeleteMarker=True, Size=None, ETag=None, StorageClass=None,
                   EncryptionStatus=None)
    return obj


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--rows", type=int, default=1000)
    p.add_argument("--files", type=int, default=3)
    p.add_argument("--bucket", default="example-bucket")
    p.add_argument("--prefix", default="inventory")
    p.add_argument("--config", default="all-objects")
    p.add_argument("--versions", action="store_true", help="an all-versions inventory")
    p.add_argument("--all-columns", action="store_true",
                   help="every column S3 can write, and longer keys")
    p.add_argument("--format", choices=["CSV", "Parquet", "ORC"], default="CSV")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--date", default="2026-11-22T01-00Z")
    args = p.parse_args()

    rng = random.Random(args.seed)
    columns = ALL_COLUMNS if args.all_columns else SCHEMA
    schema = [c for c in columns if args.versions or c not in VERSION_COLUMNS]
    per_file = -(-args.rows // args.files) if args.files else 0
    files, names, row = [], [], 0
    for _ in range(args.files):
        names.append(str(uuid.UUID(int=rng.getrandbits(128), version=4)))
        rows = []
        for _ in range(min(per_file, args.rows - row)):
            rows.append(make_row(rng, row, args))
            row += 1
        files.append(rows)
    config_dir = os.path.join(args.out, args.prefix, args.bucket, args.config)
    key_prefix = f"{args.prefix}/{args.bucket}/{args.config}"
    print(write_inventory(config_dir, key_prefix, args.bucket, args.date, args.format, schema,
                          files, names=names))


if __name__ == "__main__":
    main()
