//! Parquet and ORC inventories, written with pyarrow from `.venv` (tests/run.sh installs it)
//! with S3's schemas by tests/write_inventory.py: the same inventory in CSV, Parquet and ORC
//! makes the same rows and the same job, locally and on S3 (moto); damaged files and bad
//! rows are refused with the file, the row group or stripe and the row named, and leave a
//! Failed job without tasks.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Env, md5_hex, repo_path};
use reseal::manifest::{Manifest, Row, RowKind};
use serde_json::{Value, json};

/// Every column S3 Inventory writes, in its order.
const ALL_COLUMNS: [&str; 18] = [
    "Bucket",
    "Key",
    "VersionId",
    "IsLatest",
    "IsDeleteMarker",
    "Size",
    "LastModifiedDate",
    "ETag",
    "StorageClass",
    "IsMultipartUploaded",
    "ReplicationStatus",
    "EncryptionStatus",
    "ObjectLockRetainUntilDate",
    "ObjectLockMode",
    "ObjectLockLegalHoldStatus",
    "IntelligentTieringAccessTier",
    "BucketKeyStatus",
    "ChecksumAlgorithm",
];

const FORMATS: [&str; 3] = ["CSV", "Parquet", "ORC"];

/// Keys that CSV must encode and Parquet and ORC carry as they are.
const AWKWARD_KEYS: [&str; 10] = [
    "with space/a b.txt",
    "plus+sign",
    "percent%41 and 100%",
    "a%2Bb stays a%2Bb",
    "ünïcödé/日本語.txt",
    "line\nbreak\r\nand\ttab",
    "comma,\"quoted\"",
    "../../etc/passwd",
    "🔑/emoji",
    " leading and trailing ",
];

/// An object's row with every column filled the way S3 fills it.
fn object(key: &str, version: Option<&str>, size: i64, mode: &str) -> Value {
    json!({
        "Bucket": "bkt",
        "Key": key,
        "VersionId": version,
        "IsLatest": true,
        "IsDeleteMarker": false,
        "Size": size,
        "LastModifiedDate": 1_714_564_800_000i64 + size * 86_400_000,
        "ETag": format!("{:032x}", size),
        "StorageClass": if size % 3 == 0 { "STANDARD_IA" } else { "STANDARD" },
        "IsMultipartUploaded": size % 2 == 0,
        "ReplicationStatus": "COMPLETED",
        "EncryptionStatus": mode,
        "ObjectLockRetainUntilDate": 1_900_000_000_000i64,
        "ObjectLockMode": "GOVERNANCE",
        "ObjectLockLegalHoldStatus": "OFF",
        "IntelligentTieringAccessTier": null,
        "BucketKeyStatus": "DISABLED",
        "ChecksumAlgorithm": "CRC32",
    })
}

/// An all-versions inventory: awkward keys, old versions, delete markers, the null version,
/// and enough plain rows to fill several row groups or stripes; in two data files.
fn all_versions_rows() -> Vec<Vec<Value>> {
    let modes = ["NOT-SSE", "SSE-S3", "SSE-KMS", "SSE-C", "DSSE-KMS"];
    let mut rows: Vec<Value> = AWKWARD_KEYS
        .iter()
        .enumerate()
        .map(|(i, key)| object(key, Some(&format!("v{i}")), i as i64, modes[i % 5]))
        .collect();
    rows.push(object("versioned.txt", Some("v2"), 20, "NOT-SSE"));
    let mut old = object("versioned.txt", Some("v1"), 19, "NOT-SSE");
    old["IsLatest"] = json!(false);
    rows.push(old);
    let mut marker = object("deleted.txt", Some("dm"), 0, "NOT-SSE");
    for column in ["Size", "ETag", "StorageClass", "EncryptionStatus"] {
        marker[column] = Value::Null;
    }
    marker["IsDeleteMarker"] = json!(true);
    rows.push(marker);
    let mut under_marker = object("deleted.txt", Some("v0"), 7, "SSE-S3");
    under_marker["IsLatest"] = json!(false);
    rows.push(under_marker);
    rows.push(object("null-version.txt", None, 11, "NOT-SSE"));
    let mut second = Vec::new();
    for i in 0..23 {
        second.push(object(
            &format!("gen/{i:03}/obj {i}+x.bin"),
            Some(&format!("g{i}")),
            100 + i,
            modes[i as usize % 5],
        ));
    }
    vec![rows, second]
}

/// Writes `files` as an inventory of `format` under `dir`; returns manifest.json's path.
/// `group_rows` caps a row group or stripe; `types` overrides a column's type.
fn write_inventory(
    dir: &Path,
    format: &str,
    schema: &[&str],
    files: &[Vec<Value>],
    group_rows: Option<usize>,
    types: Value,
) -> PathBuf {
    let python = repo_path(".venv/bin/python");
    assert!(
        python.exists(),
        "no Python at {}: run tests/run.sh, which installs pyarrow into .venv",
        python.display()
    );
    let spec = json!({
        "out": dir, "format": format, "schema": schema, "files": files,
        "group_rows": group_rows, "types": types,
    });
    let mut child = Command::new(python)
        .arg(repo_path("tests/write_inventory.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(spec.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "tests/write_inventory.py failed (is pyarrow in .venv? tests/run.sh installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn read_rows(manifest: &Path) -> Vec<Row> {
    let manifest = Manifest::open(manifest).unwrap();
    let mut rows = Vec::new();
    manifest
        .read_rows(&mut |row| {
            rows.push(row);
            Ok(())
        })
        .unwrap();
    rows
}

#[test]
fn the_same_inventory_in_csv_parquet_and_orc_reads_as_the_same_rows() {
    let files = all_versions_rows();
    // Parts of 4 rows put row groups and stripes across both files; `None` is one part each.
    for group_rows in [None, Some(4)] {
        let dir = tempfile::tempdir().unwrap();
        let read: Vec<(Vec<Row>, Manifest)> = FORMATS
            .iter()
            .map(|format| {
                let manifest = write_inventory(
                    &dir.path().join(format),
                    format,
                    &ALL_COLUMNS,
                    &files,
                    group_rows,
                    json!({}),
                );
                (read_rows(&manifest), Manifest::open(&manifest).unwrap())
            })
            .collect();
        let (csv, csv_manifest) = &read[0];
        assert_eq!(csv.len(), 38);
        for (format, (rows, manifest)) in FORMATS.iter().zip(&read).skip(1) {
            assert_eq!(rows, csv, "{format} ({group_rows:?} rows a part)");
            assert_eq!(
                manifest.summary().columns,
                csv_manifest.summary().columns,
                "{format}"
            );
            assert!(
                manifest.summary().format.to_string().contains(format),
                "{format}: {}",
                manifest.summary().format
            );
        }

        // The keys are the objects' own: CSV's decoded, Parquet's and ORC's untouched.
        let keys: Vec<&str> = csv.iter().map(|r| r.entry.key.as_str()).collect();
        for key in AWKWARD_KEYS {
            assert!(keys.contains(&key), "{key:?} not in {keys:?}");
        }
        let kinds = |kind| csv.iter().filter(|r| r.kind == kind).count();
        assert_eq!(kinds(RowKind::Current), 35);
        assert_eq!(kinds(RowKind::Noncurrent), 2);
        assert_eq!(kinds(RowKind::DeleteMarker), 1);
        let null_version = csv
            .iter()
            .find(|r| r.entry.key == "null-version.txt")
            .unwrap();
        assert_eq!(null_version.entry.version_id.as_deref(), Some("null"));
        let first = &csv[0].entry;
        assert_eq!(first.last_modified, Some(1_714_564_800_000));
        assert_eq!(first.etag.as_deref(), Some("0".repeat(32).as_str()));
        assert_eq!(first.storage_class.as_deref(), Some("STANDARD_IA"));
    }
}

/// `job create` on each format: the same counts, filters included.
#[test]
fn jobs_from_csv_parquet_and_orc_inventories_are_the_same() {
    let env = Env::new();
    let files = all_versions_rows();
    let mut seen = Vec::new();
    for format in FORMATS {
        let manifest = write_inventory(
            &env.path(format),
            format,
            &ALL_COLUMNS,
            &files,
            Some(5),
            json!({}),
        );
        let id = env
            .ok(&[
                "job",
                "create",
                "--manifest",
                manifest.to_str().unwrap(),
                "--sse",
                "sse-kms",
                "--match-encryption",
                "NOT-SSE,SSE-S3",
                "--min-size",
                "2",
                "--modified-after",
                "2024-05-03",
                "--storage-class",
                "STANDARD",
            ])
            .trim()
            .to_owned();
        let job = env.describe(&id);
        assert_eq!(job["status"], "Ready", "{format}: {job}");
        assert_eq!(job["ingest"]["rows_read"], 38, "{format}");
        assert_eq!(job["ingest"]["delete_markers"], 1, "{format}");
        assert_eq!(job["ingest"]["noncurrent_versions"], 2, "{format}");
        seen.push((format, job["ingest"].clone(), job["tasks"]["total"].clone()));
        let text = env.ok(&["job", "describe", &id]);
        assert!(
            text.contains(&format!("S3 Inventory report ({format})")),
            "{text}"
        );
    }
    for (format, ingest, tasks) in &seen[1..] {
        assert_eq!(ingest, &seen[0].1, "{format} against CSV");
        assert_eq!(tasks, &seen[0].2, "{format} against CSV");
    }
    assert!(seen[0].2.as_u64().unwrap() > 5, "{:?}", seen[0]);
}

/// Rewrites manifest.json (and its checksum) through `edit`.
fn edit_manifest(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut json: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut json);
    let text = serde_json::to_vec_pretty(&json).unwrap();
    std::fs::write(path.with_file_name("manifest.checksum"), md5_hex(&text)).unwrap();
    std::fs::write(path, text).unwrap();
}

/// The path of data file `i` of the inventory at `manifest`.
fn data_file(manifest: &Path, i: usize) -> PathBuf {
    let data = manifest.parent().unwrap().parent().unwrap().join("data");
    let mut files: Vec<PathBuf> = std::fs::read_dir(data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.swap_remove(i)
}

/// Replaces data file `i`'s bytes and, unless the damage is to be caught by its MD5, the
/// MD5 that manifest.json gives for it.
fn damage(manifest: &Path, i: usize, bytes: &[u8], keep_md5: bool) {
    std::fs::write(data_file(manifest, i), bytes).unwrap();
    if !keep_md5 {
        edit_manifest(manifest, |json| {
            json["files"][i]["MD5checksum"] = json!(md5_hex(bytes));
        });
    }
}

#[test]
fn damaged_parquet_and_orc_inventories_are_refused_with_the_place_named() {
    let env = Env::new();
    let good = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| object(&format!("k{i}"), Some("v"), i as i64, "NOT-SSE"))
            .collect()
    };
    let schema = [
        "Bucket",
        "Key",
        "VersionId",
        "IsLatest",
        "Size",
        "EncryptionStatus",
    ];
    let mut case = 0;
    // Row groups and stripes of 2 rows, unless a case says otherwise.
    let mut refuse = |format: &str,
                      parts: Option<usize>,
                      files: Vec<Vec<Value>>,
                      types: Value,
                      spoil: &dyn Fn(&Path),
                      expected: &[&str]| {
        case += 1;
        let manifest = write_inventory(
            &env.path(&format!("case{case}")),
            format,
            &schema,
            &files,
            parts,
            types,
        );
        spoil(&manifest);
        let run = env.reseal(&[
            "job",
            "create",
            "--manifest",
            manifest.to_str().unwrap(),
            "--sse",
            "sse-s3",
        ]);
        assert_eq!(run.code, 2, "{format} case {case}: {}", run.stderr);
        for e in expected {
            assert!(
                run.stderr.contains(e),
                "{format} case {case}: {e:?} not in {}",
                run.stderr
            );
        }
    };
    let untouched: &dyn Fn(&Path) = &|_| {};
    for (format, ext, part) in [
        ("Parquet", "parquet", "row group"),
        ("ORC", "orc", "stripe"),
    ] {
        let second = |bad: Value| {
            let mut rows = good(5);
            rows.push(bad);
            vec![good(3), rows]
        };
        let bad_mode = object("bad", Some("v"), 1, "AES256");
        let bad_file = format!("part-00001.{ext}");
        refuse(
            format,
            Some(2),
            second(bad_mode),
            json!({}),
            untouched,
            &[&bad_file, &format!("{part} 3, row 6:"), "AES256"],
        );
        refuse(
            format,
            Some(2),
            second(object("negative", Some("v"), -1, "NOT-SSE")),
            json!({}),
            untouched,
            &[
                &bad_file,
                &format!("{part} 3, row 6:"),
                "size -1 is negative",
            ],
        );
        refuse(
            format,
            Some(2),
            second(object("", Some("v"), 1, "NOT-SSE")),
            json!({}),
            untouched,
            &[&bad_file, "row 6:", "the key is empty"],
        );
        // A data file that is not the one manifest.json describes.
        refuse(
            format,
            Some(2),
            vec![good(3), good(4)],
            json!({}),
            &|m| damage(m, 1, b"not the file", true),
            &[&bad_file, "MD5 mismatch"],
        );
        // Cut short after it was listed: its MD5 matches, its footer is gone.
        refuse(
            format,
            Some(2),
            vec![good(3), good(4)],
            json!({}),
            &|m| {
                let bytes = std::fs::read(data_file(m, 0)).unwrap();
                damage(m, 0, &bytes[..bytes.len() / 2], false);
            },
            &[
                &format!("part-00000.{ext}"),
                &format!("not a readable {format} file"),
            ],
        );
        // Damaged inside after S3 listed it, so that its MD5 matches: for ORC, half of the
        // stripe's compressed streams; for Parquet, the first page header (after the 4-byte
        // magic). Damage to values alone can go unseen by both formats' readers (S3 writes
        // no page checksums): the MD5s are what catch it.
        refuse(
            format,
            None,
            vec![good(2000)],
            json!({}),
            &|m| {
                let mut bytes = std::fs::read(data_file(m, 0)).unwrap();
                if format == "ORC" {
                    let len = bytes.len();
                    bytes[len / 10..len * 6 / 10]
                        .iter_mut()
                        .for_each(|b| *b ^= 0x5a);
                } else {
                    bytes[4..12].iter_mut().for_each(|b| *b ^= 0x5a);
                }
                damage(m, 0, &bytes, false);
            },
            &[&format!("part-00000.{ext}"), "cannot decode"],
        );
        // fileSchema lists a column the file does not have.
        refuse(
            format,
            Some(2),
            vec![good(3)],
            json!({}),
            &|m| {
                let columnar = if format == "ORC" {
                    "struct<bucket:string,key:string,version_id:string,is_latest:boolean,\
                     size:bigint,encryption_status:string,storage_class:string>"
                } else {
                    "message s3.inventory { required binary bucket (UTF8); required binary key \
                     (UTF8); optional binary version_id (UTF8); optional boolean is_latest; \
                     optional int64 size; optional binary encryption_status (UTF8); optional \
                     binary storage_class (UTF8); }"
                };
                edit_manifest(m, |json| json["fileSchema"] = json!(columnar));
            },
            &[
                &format!("part-00000.{ext}"),
                "no storage_class column, which manifest.json's fileSchema lists",
            ],
        );
        // A column of another type than S3 writes.
        refuse(
            format,
            Some(2),
            vec![
                good(2)
                    .into_iter()
                    .map(|mut row| {
                        row["Size"] = json!(row["Size"].to_string());
                        row
                    })
                    .collect(),
            ],
            json!({"Size": "string"}),
            untouched,
            &["column size is Utf8", "64-bit integer"],
        );
        // fileSchema without a required column, or not of this format.
        refuse(
            format,
            Some(2),
            vec![good(2)],
            json!({}),
            &|m| {
                edit_manifest(m, |json| {
                    let schema = json["fileSchema"].as_str().unwrap().to_owned();
                    json["fileSchema"] = json!(
                        schema
                            .replace("required binary key (UTF8); ", "")
                            .replace("key:string,", "")
                    );
                })
            },
            &["manifest.json", "has no key column"],
        );
        refuse(
            format,
            Some(2),
            vec![good(2)],
            json!({}),
            &|m| edit_manifest(m, |json| json["fileSchema"] = json!("Bucket, Key")),
            &["manifest.json", "fileSchema \"Bucket, Key\" is not"],
        );
    }
    refuse(
        "Parquet",
        Some(2),
        vec![good(2)],
        json!({}),
        &|m| edit_manifest(m, |json| json["fileFormat"] = json!("Avro")),
        &["manifest.json", "fileFormat is \"Avro\""],
    );

    let jobs = env.jobs();
    assert_eq!(jobs.len(), 21);
    for job in jobs {
        assert_eq!(job["status"], "Failed", "{job}");
        assert_eq!(job["tasks"]["total"], 0, "{job}");
    }
}

/// On S3 the manifest, its checksum and the data files are downloaded as they are, whatever
/// the format; the job is the one the local copy makes.
#[test]
fn moto_parquet_and_orc_inventories_on_s3() {
    use aws_sdk_s3::primitives::ByteStream;
    let server = common::s3::S3Server::moto();
    let client = server.client();
    let rt = common::s3::rt();
    // The bucket manifest.json names as its destination, where the data files are.
    let bucket = "example-inventory-destination";
    rt.block_on(client.create_bucket().bucket(bucket).send())
        .unwrap();
    let env = Env::new();
    let files = all_versions_rows();
    let vars = server.env();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for format in ["Parquet", "ORC"] {
        let local = env.path(format);
        let manifest = write_inventory(&local, format, &ALL_COLUMNS, &files, None, json!({}));
        let mut stack = vec![local.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let key = path.strip_prefix(&local).unwrap().to_str().unwrap();
                let key = format!("{format}/{key}");
                let body = ByteStream::from(std::fs::read(&path).unwrap());
                rt.block_on(
                    client
                        .put_object()
                        .bucket(bucket)
                        .key(&key)
                        .body(body)
                        .send(),
                )
                .unwrap();
            }
        }
        // files[].key is relative to the bucket.
        let url_key = format!(
            "{format}/{}",
            manifest.strip_prefix(&local).unwrap().to_str().unwrap()
        );
        let text = std::fs::read_to_string(&manifest).unwrap();
        let text = text.replace("\"key\": \"inv/", &format!("\"key\": \"{format}/inv/"));
        for (name, body) in [
            ("manifest.json", text.clone()),
            ("manifest.checksum", md5_hex(text.as_bytes())),
        ] {
            let key = url_key.replace("manifest.json", name);
            rt.block_on(
                client
                    .put_object()
                    .bucket(bucket)
                    .key(&key)
                    .body(ByteStream::from(body.into_bytes()))
                    .send(),
            )
            .unwrap();
        }
        let url = format!("s3://{bucket}/{url_key}");
        let run = env.reseal_with_env(
            &[
                "job",
                "create",
                "--manifest",
                &url,
                "--sse",
                "sse-s3",
                "--endpoint-url",
                &server.endpoint,
            ],
            &vars,
        );
        assert_eq!(run.code, 0, "{format}: {}", run.stderr);
        let job = env.describe(run.stdout.trim());
        assert_eq!(job["tasks"]["total"], 35, "{format}: {job}");
        assert_eq!(job["ingest"]["noncurrent_versions"], 2, "{format}");
        assert_eq!(job["ingest"]["delete_markers"], 1, "{format}");
    }
}
