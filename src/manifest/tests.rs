//! Manifest reading on real files in a temporary folder.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use md5::{Digest, Md5};

use super::*;

fn gz(text: &str) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

fn md5_hex(bytes: &[u8]) -> String {
    hex(&Md5::digest(bytes))
}

/// Writes an inventory in S3's layout under `root`; returns the manifest.json path.
fn inventory(root: &Path, schema: &str, files: &[Vec<u8>]) -> PathBuf {
    inventory_with(root, schema, files, |_, data| md5_hex(data))
}

fn inventory_with(
    root: &Path,
    schema: &str,
    files: &[Vec<u8>],
    md5_of: impl Fn(usize, &[u8]) -> String,
) -> PathBuf {
    let config = root.join("dest/bkt/cfg");
    std::fs::create_dir_all(config.join("data")).unwrap();
    std::fs::create_dir_all(config.join("2026-01-01T00-00Z")).unwrap();
    let mut entries = Vec::new();
    for (i, data) in files.iter().enumerate() {
        let key = format!("dest/bkt/cfg/data/file{i}.csv.gz");
        std::fs::write(root.join(&key), data).unwrap();
        entries.push(serde_json::json!({
            "key": key, "size": data.len(), "MD5checksum": md5_of(i, data)
        }));
    }
    let manifest = serde_json::json!({
        "sourceBucket": "bkt",
        "destinationBucket": "arn:aws:s3:::dest",
        "version": "2016-11-30",
        "creationTimestamp": "1700000000000",
        "fileFormat": "CSV",
        "fileSchema": schema,
        "files": entries,
    });
    let path = config.join("2026-01-01T00-00Z/manifest.json");
    let text = serde_json::to_vec_pretty(&manifest).unwrap();
    std::fs::write(path.with_file_name("manifest.checksum"), md5_hex(&text)).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

fn read_all(path: &Path) -> Result<Vec<Row>, ManifestError> {
    let manifest = Manifest::open(path)?;
    let mut rows = Vec::new();
    manifest.read_rows(&mut |row| {
        rows.push(row);
        Ok(())
    })?;
    Ok(rows)
}

fn err_text(result: Result<Vec<Row>, ManifestError>) -> String {
    result
        .expect_err("the manifest should be refused")
        .to_string()
}

#[test]
fn columns_are_mapped_by_file_schema_in_any_order_and_unknown_ones_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let data = gz(concat!(
        "\"SSE-KMS\",\"STANDARD_IA\",\"12\",\"a+b%2Bc\",\"whatever\",\"bkt\",\"2024-05-01T12:00:00.000Z\"\n",
        "\"NOT-SSE\",\"STANDARD\",\"0\",\"x/y.txt\",\"\",\"bkt\",\"2024-05-02T00:00:00.000Z\"\n",
    ));
    let path = inventory(
        dir.path(),
        "EncryptionStatus, StorageClass, Size, Key, SomeFutureColumn, Bucket, LastModifiedDate",
        &[data],
    );
    let rows = read_all(&path).unwrap();
    assert_eq!(rows.len(), 2);
    let e = &rows[0].entry;
    assert_eq!(rows[0].kind, RowKind::Current);
    assert_eq!(e.bucket, "bkt");
    assert_eq!(e.key, "a b+c");
    assert_eq!(e.size, Some(12));
    assert_eq!(e.storage_class.as_deref(), Some("STANDARD_IA"));
    assert_eq!(e.encryption_status, Some(SseMode::SseKms));
    assert_eq!(e.last_modified, Some(1_714_564_800_000));
    assert_eq!(e.version_id, None);
    assert_eq!(rows[1].entry.key, "x/y.txt");
    assert_eq!(rows[1].entry.size, Some(0));
}

#[test]
fn all_versions_inventory_skips_delete_markers_and_counts_noncurrent() {
    let dir = tempfile::tempdir().unwrap();
    let data = gz(concat!(
        "\"bkt\",\"k1\",\"v2\",\"true\",\"false\",\"5\"\n",
        "\"bkt\",\"k1\",\"v1\",\"false\",\"false\",\"4\"\n",
        "\"bkt\",\"k2\",\"dm\",\"true\",\"true\",\"\"\n",
        "\"bkt\",\"k3\",\"\",\"true\",\"false\",\"7\"\n",
    ));
    let path = inventory(
        dir.path(),
        "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size",
        &[data],
    );
    let rows = read_all(&path).unwrap();
    let kinds: Vec<RowKind> = rows.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            RowKind::Current,
            RowKind::Noncurrent,
            RowKind::DeleteMarker,
            RowKind::Current
        ]
    );
    assert_eq!(rows[0].entry.version_id.as_deref(), Some("v2"));
    // An empty VersionId is the null version.
    assert_eq!(rows[3].entry.version_id.as_deref(), Some("null"));
}

#[test]
fn multi_member_gzip_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = gz("\"bkt\",\"one\"\n");
    data.extend(gz("\"bkt\",\"two\"\n\"bkt\",\"three\"\n"));
    let path = inventory(dir.path(), "Bucket, Key", &[data]);
    let keys: Vec<String> = read_all(&path)
        .unwrap()
        .into_iter()
        .map(|r| r.entry.key)
        .collect();
    assert_eq!(keys, ["one", "two", "three"]);
}

#[test]
fn data_file_md5_mismatch_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = inventory_with(
        dir.path(),
        "Bucket, Key",
        &[gz("\"bkt\",\"k\"\n")],
        |_, _| "0".repeat(32),
    );
    let text = err_text(read_all(&path));
    assert!(text.contains("file0.csv.gz"), "{text}");
    assert!(text.contains("MD5 mismatch"), "{text}");
}

#[test]
fn manifest_checksum_mismatch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = inventory(dir.path(), "Bucket, Key", &[gz("\"bkt\",\"k\"\n")]);
    std::fs::write(path.with_file_name("manifest.checksum"), "0".repeat(32)).unwrap();
    let text = Manifest::open(&path).unwrap_err().to_string();
    assert!(text.contains("manifest.checksum"), "{text}");
    assert!(text.contains("MD5 mismatch"), "{text}");
}

#[test]
fn truncated_gzip_is_an_error_even_when_its_md5_matches() {
    let dir = tempfile::tempdir().unwrap();
    let rows: String = (0..2000)
        .map(|i| format!("\"bkt\",\"key-{i}\"\n"))
        .collect();
    let mut data = gz(&rows);
    data.truncate(data.len() / 2);
    let path = inventory(dir.path(), "Bucket, Key", &[data]);
    let text = err_text(read_all(&path));
    assert!(text.contains("file0.csv.gz"), "{text}");
    assert!(text.contains("gzip"), "{text}");
}

#[test]
fn missing_required_column_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = inventory(dir.path(), "Bucket, Size", &[gz("\"bkt\",\"1\"\n")]);
    let text = Manifest::open(&path).unwrap_err().to_string();
    assert!(text.contains("no Key column"), "{text}");
    assert!(text.contains("manifest.json"), "{text}");
}

#[test]
fn file_formats_s3_does_not_write_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = inventory(dir.path(), "Bucket, Key", &[]);
    let original = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(path.with_file_name("manifest.checksum")).unwrap();
    std::fs::write(&path, original.replace("\"CSV\"", "\"Avro\"")).unwrap();
    let text = Manifest::open(&path).unwrap_err().to_string();
    assert!(text.contains("fileFormat is \"Avro\""), "{text}");
    assert!(text.contains("CSV, ORC or Parquet"), "{text}");

    // A columnar format with a CSV fileSchema: the schema is not of its format.
    std::fs::write(&path, original.replace("\"CSV\"", "\"Parquet\"")).unwrap();
    let text = Manifest::open(&path).unwrap_err().to_string();
    assert!(
        text.contains("fileSchema \"Bucket, Key\" is not a Parquet message type"),
        "{text}"
    );
}

#[test]
fn a_missing_data_file_lists_the_paths_tried() {
    let dir = tempfile::tempdir().unwrap();
    let path = inventory(dir.path(), "Bucket, Key", &[gz("\"bkt\",\"k\"\n")]);
    std::fs::remove_file(dir.path().join("dest/bkt/cfg/data/file0.csv.gz")).unwrap();
    let text = Manifest::open(&path).unwrap_err().to_string();
    assert!(text.contains("not found; tried"), "{text}");
    assert!(text.contains("cfg/data/file0.csv.gz"), "{text}");
}

#[test]
fn data_files_are_found_beside_the_date_folder_when_the_prefix_is_not_copied() {
    let dir = tempfile::tempdir().unwrap();
    let path = inventory(dir.path(), "Bucket, Key", &[gz("\"bkt\",\"k\"\n")]);
    // Copy only the configuration folder elsewhere: files[].key no longer resolves from any
    // ancestor, but data/ beside the date folder does.
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("cfg");
    std::fs::create_dir_all(copy.join("data")).unwrap();
    std::fs::create_dir_all(copy.join("2026-01-01T00-00Z")).unwrap();
    for name in ["manifest.json", "manifest.checksum"] {
        std::fs::copy(
            path.with_file_name(name),
            copy.join("2026-01-01T00-00Z").join(name),
        )
        .unwrap();
    }
    std::fs::copy(
        dir.path().join("dest/bkt/cfg/data/file0.csv.gz"),
        copy.join("data/file0.csv.gz"),
    )
    .unwrap();
    let rows = read_all(&copy.join("2026-01-01T00-00Z/manifest.json")).unwrap();
    assert_eq!(rows.len(), 1);
}

#[test]
fn bad_rows_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = gz("\"bkt\",\"ok\",\"1\"\n\"bkt\",\"ok2\",\"2\"\n\"bkt\",\"bad\",\"lots\"\n");
    let path = inventory(dir.path(), "Bucket, Key, Size", &[data]);
    let text = err_text(read_all(&path));
    assert!(text.contains("file0.csv.gz line 3"), "{text}");
    assert!(text.contains("Size \"lots\""), "{text}");

    let data = gz("\"bkt\",\"ok\"\n\"bkt\",\"%FF%FE\"\n");
    let dir = tempfile::tempdir().unwrap();
    let path = inventory(dir.path(), "Bucket, Key", &[data]);
    let text = err_text(read_all(&path));
    assert!(text.contains("line 2"), "{text}");
    assert!(text.contains("not valid UTF-8"), "{text}");

    let data = gz("\"bkt\",\"ok\",\"extra\"\n");
    let dir = tempfile::tempdir().unwrap();
    let path = inventory(dir.path(), "Bucket, Key", &[data]);
    let text = err_text(read_all(&path));
    assert!(
        text.contains("line 1: 3 fields where fileSchema has 2"),
        "{text}"
    );
}

fn csv_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("list.csv");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn plain_csv_keys_with_commas_quotes_newlines_and_encodings() {
    let dir = tempfile::tempdir().unwrap();
    let path = csv_file(
        dir.path(),
        "bkt,a+b\nbkt,%E6%97%A5%E6%9C%AC/%7Ex\nbkt,\"c,d\"\nbkt,\"say \"\"hi\"\"\"\nbkt,\"two\nlines\"\nbkt,e%2Cf%0Ag\n",
    );
    let keys: Vec<String> = read_all(&path)
        .unwrap()
        .into_iter()
        .map(|r| r.entry.key)
        .collect();
    assert_eq!(
        keys,
        [
            "a b",
            "日本/~x",
            "c,d",
            "say \"hi\"",
            "two\nlines",
            "e,f\ng"
        ]
    );
}

#[test]
fn plain_csv_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = csv_file(dir.path(), "bkt,a,v1\nbkt,b,v2\n");
    let rows = read_all(&path).unwrap();
    assert_eq!(rows[1].entry.version_id.as_deref(), Some("v2"));

    let path = csv_file(dir.path(), "bkt,a,v1\nbkt,b\n");
    let text = err_text(read_all(&path));
    assert!(text.contains("list.csv line 2"), "{text}");
    assert!(
        text.contains("every row must have a version id or none"),
        "{text}"
    );

    let path = csv_file(dir.path(), "bkt,a\nbkt,b\nbkt,c,v3\n");
    let text = err_text(read_all(&path));
    assert!(text.contains("line 3"), "{text}");
}

#[test]
fn plain_csv_header_row_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = csv_file(dir.path(), "Bucket,Key\nbkt,a\n");
    let text = err_text(read_all(&path));
    assert!(text.contains("line 1"), "{text}");
    assert!(text.contains("looks like a header"), "{text}");
}

#[test]
fn plain_csv_bad_rows_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = csv_file(dir.path(), "bkt,a\nbkt\n");
    let text = err_text(read_all(&path));
    assert!(text.contains("line 2: 1 fields"), "{text}");
    let path = csv_file(dir.path(), "bkt,a\nbkt,b%zz\n");
    let text = err_text(read_all(&path));
    assert!(text.contains("line 2"), "{text}");
    assert!(text.contains("percent-escape"), "{text}");
}

#[test]
fn empty_manifests_read_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    assert!(read_all(&csv_file(dir.path(), "")).unwrap().is_empty());
    let path = inventory(dir.path(), "Bucket, Key", &[gz("")]);
    assert!(read_all(&path).unwrap().is_empty());
}

#[test]
fn filters_apply_to_columns() {
    let entry = Entry {
        bucket: "b".into(),
        key: "logs/2024/x.gz".into(),
        version_id: None,
        size: Some(100),
        etag: None,
        last_modified: Some(1_000),
        storage_class: Some("STANDARD".into()),
        encryption_status: Some(SseMode::NotSse),
    };
    let pass = |f: Filter| f.matches(&entry);
    assert!(pass(Filter::default()));
    assert!(pass(Filter {
        prefix: Some("logs/".into()),
        suffix: Some(".gz".into()),
        ..Filter::default()
    }));
    assert!(!pass(Filter {
        prefix: Some("img/".into()),
        ..Filter::default()
    }));
    assert!(pass(Filter {
        min_size: Some(100),
        max_size: Some(100),
        ..Filter::default()
    }));
    assert!(!pass(Filter {
        min_size: Some(101),
        ..Filter::default()
    }));
    assert!(pass(Filter {
        modified_after: Some(1_000),
        modified_before: Some(1_001),
        ..Filter::default()
    }));
    assert!(!pass(Filter {
        modified_before: Some(1_000),
        ..Filter::default()
    }));
    assert!(pass(Filter {
        storage_classes: vec!["GLACIER".into(), "STANDARD".into()],
        encryption: vec![SseMode::NotSse],
        ..Filter::default()
    }));
    assert!(!pass(Filter {
        encryption: vec![SseMode::SseS3],
        ..Filter::default()
    }));
    let no_size = Entry {
        size: None,
        ..entry.clone()
    };
    assert!(
        !Filter {
            min_size: Some(0),
            ..Filter::default()
        }
        .matches(&no_size)
    );
}

#[test]
fn line_numbers_count_blank_lines_and_quoted_newlines() {
    let dir = tempfile::tempdir().unwrap();
    let path = csv_file(
        dir.path(),
        "bkt,a\n\n\nbkt,\"multi\nline\"\r\n\r\nbkt,b\nbkt,%C3%28\n",
    );
    let text = err_text(read_all(&path));
    assert!(text.contains("list.csv line 8:"), "{text}");

    let path = csv_file(dir.path(), "bkt,a\n\nbkt,\"x\ny\",v1\n");
    let text = err_text(read_all(&path));
    assert!(text.contains("list.csv line 3:"), "{text}");
}

#[test]
fn quotes_open_a_field_only_at_its_start_as_the_csv_crate_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    // A quote inside an unquoted field is a byte of the key; after a closing quote, bytes
    // are literal up to the delimiter; `""` inside quotes is one quote. None of these
    // leaves a quote open at the end.
    let path = csv_file(
        dir.path(),
        "bkt,a\"b\nbkt,\"c\"d\"e\nbkt,\"f\"\"g\"\nbkt,\"h\"\"\"\r\n\r\nbkt,i\"",
    );
    let keys: Vec<String> = read_all(&path)
        .unwrap()
        .into_iter()
        .map(|r| r.entry.key)
        .collect();
    assert_eq!(keys, ["a\"b", "cd\"e", "f\"g", "h\"", "i\""]);
}

#[test]
fn an_unclosed_quote_at_the_end_names_the_line_it_opens_on() {
    let dir = tempfile::tempdir().unwrap();
    for (text, line) in [
        ("bkt,a\nbkt,\"abc", 2),
        ("bkt,a\nbkt,\"abc\n", 2),
        ("bkt,\"two\nlines\"\nbkt,\"abc\n\n", 3),
        ("bkt,a\nbkt,\"x\"\"y", 2),
        ("bkt,a\n\nbkt,b,\"v1\nv2\n", 3),
    ] {
        let text_err = err_text(read_all(&csv_file(dir.path(), text)));
        assert!(
            text_err.contains(&format!("list.csv line {line}: ")),
            "{text:?}: {text_err}"
        );
        assert!(text_err.contains("never closed"), "{text:?}: {text_err}");
    }

    let dir = tempfile::tempdir().unwrap();
    let path = inventory(
        dir.path(),
        "Bucket, Key",
        &[gz("\"bkt\",\"a\"\n\"bkt\",\"abc\n")],
    );
    let text = err_text(read_all(&path));
    assert!(text.contains("file0.csv.gz line 2: "), "{text}");
    assert!(text.contains("never closed"), "{text}");
    assert!(!text.contains("gzip"), "{text}");
}

#[test]
fn keys_over_1024_bytes_are_refused_with_their_decoded_length() {
    let dir = tempfile::tempdir().unwrap();
    let at_limit = "k".repeat(MAX_KEY_BYTES);
    let encoded_at_limit = "%C3%A9".repeat(MAX_KEY_BYTES / 2);
    let path = csv_file(
        dir.path(),
        &format!("bkt,{at_limit}\nbkt,{encoded_at_limit}\n"),
    );
    let rows = read_all(&path).unwrap();
    assert_eq!(rows[0].entry.key.len(), MAX_KEY_BYTES);
    assert_eq!(rows[1].entry.key, "é".repeat(MAX_KEY_BYTES / 2));

    for (key, len) in [
        ("k".repeat(MAX_KEY_BYTES + 1), 1025),
        (format!("{encoded_at_limit}%41"), 1025),
        (format!("{}+", "a".repeat(2000)), 2001),
    ] {
        let text = err_text(read_all(&csv_file(
            dir.path(),
            &format!("bkt,a\nbkt,{key}\n"),
        )));
        assert!(text.contains("list.csv line 2: "), "{text}");
        assert!(
            text.contains(&format!("{len} bytes long once decoded")),
            "{text}"
        );
        assert!(text.contains("at most 1,024 bytes"), "{text}");
    }

    let path = inventory(
        dir.path(),
        "Bucket, Key",
        &[gz(&format!(
            "\"bkt\",\"a\"\n\"bkt\",\"{}\"\n",
            "%2F".repeat(1025)
        ))],
    );
    let text = err_text(read_all(&path));
    assert!(text.contains("file0.csv.gz line 2: "), "{text}");
    assert!(text.contains("1025 bytes long once decoded"), "{text}");
}

#[test]
fn a_record_over_the_limit_is_refused_at_the_line_it_starts_on() {
    let dir = tempfile::tempdir().unwrap();
    let limit = MAX_RECORD_BYTES as usize;
    // A record of exactly the limit is read (and its key refused); one byte more is not.
    let exact = format!("bkt,a\nbkt,{}\n", "k".repeat(limit - 4));
    let text = err_text(read_all(&csv_file(dir.path(), &exact)));
    assert!(text.contains("list.csv line 2: "), "{text}");
    assert!(text.contains("bytes long once decoded"), "{text}");
    for (text, line) in [
        (format!("bkt,a\nbkt,{}\nbkt,b\n", "k".repeat(limit - 3)), 2),
        (format!("bkt,a\nbkt,{}", "k".repeat(limit - 3)), 2),
        // A quoted field's newlines are inside the record: it is named by its first line.
        (
            format!("bkt,a\n\nbkt,\"{}\"\n", "line\n".repeat(limit / 5)),
            3,
        ),
    ] {
        let message = err_text(read_all(&csv_file(dir.path(), &text)));
        assert!(
            message.contains(&format!("list.csv line {line}: ")),
            "{message}"
        );
        assert!(message.contains("longer than 1 MiB"), "{message}");
    }

    // The rows before it are read first: a bad one there is the error.
    let text = format!("bkt,a\nbkt,%zz\nbkt,{}\n", "k".repeat(limit));
    let message = err_text(read_all(&csv_file(dir.path(), &text)));
    assert!(message.contains("list.csv line 2: "), "{message}");
    assert!(message.contains("percent-escape"), "{message}");

    let data = gz(&format!(
        "\"bkt\",\"a\"\n\"bkt\",\"b\"\n\"bkt\",\"{}\"\n",
        "k".repeat(limit)
    ));
    let path = inventory(dir.path(), "Bucket, Key", &[data]);
    let message = err_text(read_all(&path));
    assert!(message.contains("file0.csv.gz line 3: "), "{message}");
    assert!(message.contains("longer than 1 MiB"), "{message}");
    assert!(!message.contains("gzip"), "{message}");
}
