#!/usr/bin/env python3
"""Writes the S3 Inventory report a Rust test describes (JSON on stdin) in one format, with
benches/gen_inventory.py's writers and S3's schemas, and prints its manifest.json's path.

    {"out": DIR, "format": "CSV" | "Parquet" | "ORC", "schema": [CSV column names],
     "files": [[{column: value, ...}, ...], ...], "group_rows": N or null,
     "types": {column: "string" | "bool" | "int64" | "timestamp"}   (optional overrides)}

Values: strings (keys as they are, never encoded), booleans, integers (sizes, and times in
ms since the epoch) or null. The layout is DIR/inv/bkt/cfg/{data/,2026-01-01T00-00Z/}.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benches"))
import gen_inventory  # noqa: E402

spec = json.load(sys.stdin)
for column, kind in spec.get("types", {}).items():
    gen_inventory.COLUMNAR[column] = (gen_inventory.COLUMNAR[column][0], kind)
print(gen_inventory.write_inventory(
    os.path.join(spec["out"], "inv", "bkt", "cfg"), "inv/bkt/cfg", "bkt", "2026-01-01T00-00Z",
    spec["format"], spec["schema"], spec["files"], group_rows=spec.get("group_rows")))
