//! The S3 target against a real S3 server on loopback (moto, started by each test), with
//! the real binary. Each scenario is a function taking the server, so that the same checks
//! run against `reseal serve` once it exists; what moto cannot check is said where it
//! matters:
//! - moto stores nothing for SSE-C and treats a key rotation in place as no change, so the
//!   SSE-C cases need a server with `caps.sse_c`;
//! - moto ignores x-amz-copy-source-if-match (the overwrite race is tested on s3s-fs);
//! - moto does not check KMS key ids (any id is "valid"), and drops the key id of a
//!   DSSE-KMS object, so DSSE-KMS as the target mode needs a server with
//!   `caps.dsse_key_id` (reseal checks the key after each write and would rightly fail).

mod common;

use std::path::Path;

use aws_sdk_s3::types::ServerSideEncryption;
use common::Env;
use common::s3::S3Server;
use common::s3_fixture::{Fixture, Mode, report_rows, run_listing};

const SOURCE_MODES: [Mode; 4] = [Mode::NotSse, Mode::SseS3, Mode::SseKms, Mode::DsseKms];

/// Keys that need encoding in every place a key travels: copy source, CSV, report.
const AWKWARD_KEYS: [&str; 6] = [
    "plain.txt",
    "with space/a b.txt",
    "plus+sign",
    "percent%41",
    "query?and#hash",
    "ünïcödé/日本語.txt",
];

fn body_for(key: &str, mode: Mode) -> Vec<u8> {
    format!("{key} was {mode:?}\n").repeat(50).into_bytes()
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::NotSse => "not-sse",
        Mode::SseS3 => "sse-s3",
        Mode::SseKms => "sse-kms",
        Mode::DsseKms => "dsse-kms",
    }
}

/// Every target mode from every source mode, keys that need encoding, everything kept.
fn every_mode_from_every_mode(f: &Fixture) {
    let old_key = f.server.kms_key();
    let new_key = f.server.kms_key();
    let targets = [
        ("sse-s3".to_owned(), ServerSideEncryption::Aes256, None),
        (
            format!("sse-kms:{new_key}"),
            ServerSideEncryption::AwsKms,
            Some(new_key.as_str()),
        ),
        (
            format!("dsse-kms:{new_key}"),
            ServerSideEncryption::AwsKmsDsse,
            Some(new_key.as_str()),
        ),
    ];
    for (i, (spec, want, kms)) in targets.iter().enumerate() {
        if *want == ServerSideEncryption::AwsKmsDsse && !f.server.caps.dsse_key_id {
            continue;
        }
        let env = Env::new();
        let bucket = format!("modes-{i}");
        f.bucket(&bucket);
        let mut objects = Vec::new();
        for source in SOURCE_MODES {
            for key in AWKWARD_KEYS {
                let key = format!("{}/{key}", mode_name(source));
                let body = body_for(&key, source);
                f.put(&bucket, &key, &body, source, &old_key);
                objects.push((key, body, source));
            }
        }
        let report = env.path("report");
        let run = f.reseal_ok(
            &env,
            &run_listing(
                &format!("s3://{bucket}"),
                spec,
                &["--report", report.to_str().unwrap()],
            ),
        );
        for (key, body, _) in &objects {
            f.assert_kept(&bucket, key, body, want, *kms);
        }
        let rows = report_rows(&report);
        assert_eq!(
            rows.len(),
            objects.len(),
            "{spec}: one report row per object:\n{}",
            run.stderr
        );
        for row in &rows {
            let key = reseal::encoding::decode_key(&row[1]).unwrap();
            let (_, _, source) = objects.iter().find(|(k, _, _)| *k == key).unwrap();
            assert_eq!(row[3], "succeeded", "{spec} {key}: {row:?}");
            let already = spec == "sse-s3"
                && (*source == Mode::SseS3 || *source == Mode::NotSse && f.server.caps.default_sse);
            if already {
                assert!(row[6].contains("already SSE-S3"), "{spec} {key}: {row:?}");
            } else {
                assert!(
                    row[6].starts_with("re-encrypted by CopyObject"),
                    "{spec} {key}: {row:?}"
                );
            }
        }
        // A second run finds everything compliant and changes nothing.
        let again = f.reseal_ok(&env, &run_listing(&format!("s3://{bucket}"), spec, &[]));
        assert!(
            again
                .stderr
                .contains(&format!("{} skipped, 0 failed", objects.len())),
            "{spec}: second run:\n{}",
            again.stderr
        );
        let verify_id = env.jobs()[0]["id"].as_str().unwrap().to_owned();
        f.reseal_ok(&env, &["verify", &verify_id]);
    }
}

#[test]
fn moto_every_mode_from_every_mode() {
    every_mode_from_every_mode(&Fixture::new(S3Server::moto()));
}

/// The multipart path: 12 MiB objects in 5 MiB parts keep bytes, metadata, content
/// headers, tags and storage class, and no upload is left behind.
fn multipart_keeps_everything(f: &Fixture) {
    let env = Env::new();
    let key = f.server.kms_key();
    f.bucket("multi");
    let mut objects = Vec::new();
    for (i, name) in ["big one.bin", "big+two/ü.bin"].iter().enumerate() {
        let body: Vec<u8> = (0..12 * 1024 * 1024 + 333 * i)
            .map(|n| (n * 31 + i * 7) as u8)
            .collect();
        f.put("multi", name, &body, Mode::SseS3, "");
        objects.push((name.to_string(), body));
    }
    let report = env.path("report");
    f.reseal_ok(
        &env,
        &run_listing(
            "s3://multi",
            &format!("sse-kms:{key}"),
            &[
                "--multipart-threshold",
                "8MiB",
                "--part-size",
                "5MiB",
                "--report",
                report.to_str().unwrap(),
            ],
        ),
    );
    for (name, body) in &objects {
        f.assert_kept(
            "multi",
            name,
            body,
            &ServerSideEncryption::AwsKms,
            Some(&key),
        );
        let etag = f.head("multi", name).e_tag().unwrap_or_default().to_owned();
        assert!(
            etag.trim_matches('"').ends_with("-3"),
            "{name}: a 3-part ETag, got {etag}"
        );
    }
    for row in report_rows(&report) {
        assert_eq!(row[3], "succeeded", "{row:?}");
        assert!(
            row[6].starts_with("re-encrypted by multipart copy"),
            "{row:?}"
        );
    }
    f.no_uploads_left("multi");
}

#[test]
fn moto_multipart_keeps_everything() {
    multipart_keeps_everything(&Fixture::new(S3Server::moto()));
}

/// Versioned buckets: the copy source is the current version; a manifest version that is
/// no longer current is reported as superseded and left alone; the report gives old and
/// new version ids; --delete-noncurrent removes noncurrent versions after the copy.
fn versioned_bucket(f: &Fixture) {
    let env = Env::new();
    f.versioned_bucket("vers");
    let old_a = f.put("vers", "a.txt", b"a one", Mode::NotSse, "").unwrap();
    let new_a = f.put("vers", "a.txt", b"a two", Mode::NotSse, "").unwrap();
    let b1 = f.put("vers", "b.txt", b"b one", Mode::NotSse, "").unwrap();
    f.put("vers", "c.txt", b"c one", Mode::NotSse, "").unwrap();
    let c2 = f.put("vers", "c.txt", b"c two", Mode::NotSse, "").unwrap();
    // As written: plaintext on moto, the bucket's default (SSE-S3) on reseal serve.
    let a_sse = f.sse("vers", "a.txt");
    let first_key = f.server.kms_key();

    // The manifest names a.txt's old version: superseded, never copied over the new one.
    let manifest = env.write(
        "manifest.csv",
        format!("vers,a.txt,{old_a}\nvers,b.txt,{b1}\nvers,c.txt,{c2}\n").as_bytes(),
    );
    let report = env.path("report");
    let run = f.reseal_ok(
        &env,
        &[
            "run",
            "--manifest",
            manifest.to_str().unwrap(),
            "--sse",
            &format!("sse-kms:{first_key}"),
            "--report",
            report.to_str().unwrap(),
        ],
    );
    let rows = report_rows(&report);
    let row = |k: &str| rows.iter().find(|r| r[1] == k).unwrap().clone();
    assert!(
        row("a.txt")[6].contains(&format!(
            "superseded: version {old_a} is no longer current (current: {new_a})"
        )),
        "{:?}\n{}",
        row("a.txt"),
        run.stderr
    );
    assert_eq!(
        f.get("vers", "a.txt"),
        b"a two",
        "the newer version stays current"
    );
    assert_eq!(
        f.sse("vers", "a.txt"),
        a_sse,
        "a superseded task changes nothing"
    );
    let b = row("b.txt");
    let new_b = f.head("vers", "b.txt").version_id().unwrap().to_owned();
    assert!(b[6].contains(&format!("version {b1} -> {new_b}")), "{b:?}");
    assert_eq!(f.get("vers", "b.txt"), b"b one");

    // --from-listing --all-versions: current versions are tasks, noncurrent ones counted;
    // --delete-noncurrent leaves one version per re-encrypted key.
    let env2 = Env::new();
    let key = f.server.kms_key();
    let run = f.reseal_ok(
        &env2,
        &run_listing(
            "s3://vers",
            &format!("sse-kms:{key}"),
            &["--all-versions", "--delete-noncurrent"],
        ),
    );
    let listed = env2.describe(env2.jobs()[0]["id"].as_str().unwrap());
    assert_eq!(listed["ingest"]["noncurrent_versions"], 4, "{listed}");
    assert!(
        run.stderr
            .contains("3 current versions; 4 noncurrent versions"),
        "{}",
        run.stderr
    );
    for (k, body) in [
        ("a.txt", &b"a two"[..]),
        ("b.txt", b"b one"),
        ("c.txt", b"c two"),
    ] {
        assert_eq!(f.get("vers", k), body);
        let versions =
            f.rt.block_on(
                f.client
                    .list_object_versions()
                    .bucket("vers")
                    .prefix(k)
                    .send(),
            )
            .unwrap();
        assert_eq!(
            versions.versions().len(),
            1,
            "{k}: noncurrent versions deleted: {:?}",
            versions.versions()
        );
        assert_eq!(
            f.head("vers", k).server_side_encryption(),
            Some(&ServerSideEncryption::AwsKms)
        );
    }
}

#[test]
fn moto_versioned_bucket() {
    versioned_bucket(&Fixture::new(S3Server::moto()));
}

/// Manifests (CSV and S3 Inventory) and the report on S3.
fn manifests_and_reports_on_s3(f: &Fixture) {
    f.bucket("data");
    f.bucket("inventory");
    let keys = ["one.txt", "two/with space.txt", "three+ü.txt"];
    for k in keys {
        f.put("data", k, k.as_bytes(), Mode::NotSse, "");
    }
    let put = |bucket: &str, key: &str, body: Vec<u8>| f.put_bytes(bucket, key, &body, None);
    // A CSV manifest on S3; the report goes to S3.
    let csv: String = keys
        .iter()
        .map(|k| format!("data,{}\n", reseal::encoding::encode_key(k)))
        .collect();
    put("inventory", "lists/objects.csv", csv.into_bytes());
    let env = Env::new();
    f.reseal_ok(
        &env,
        &[
            "run",
            "--manifest",
            "s3://inventory/lists/objects.csv",
            "--sse",
            "sse-s3",
            "--report",
            "s3://inventory/reports",
        ],
    );
    let result = f.report_results("inventory", "reports/");
    let text = String::from_utf8(f.get("inventory", &result)).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.lines().all(|l| l.contains(",succeeded,200,")),
        "{text}"
    );

    // An S3 Inventory manifest on S3: manifest.json, manifest.checksum and a gzip data file
    // in the destination bucket; the data file's MD5 is checked.
    let rows: String = keys
        .iter()
        .map(|k| {
            format!(
                "\"data\",\"{}\",\"NOT-SSE\"\n",
                reseal::encoding::encode_key(k)
            )
        })
        .collect();
    let gz = common::gz(&rows);
    let md5 = common::md5_hex(&gz);
    put("inventory", "data/config/data/file1.csv.gz", gz.clone());
    let manifest = format!(
        r#"{{"sourceBucket":"data","destinationBucket":"arn:aws:s3:::inventory","version":"2016-11-30","creationTimestamp":"1700000000000","fileFormat":"CSV","fileSchema":"Bucket, Key, EncryptionStatus","files":[{{"key":"data/config/data/file1.csv.gz","size":{},"MD5checksum":"{md5}"}}]}}"#,
        gz.len()
    );
    put(
        "inventory",
        "data/config/2026-11-01T00-00Z/manifest.checksum",
        common::md5_hex(manifest.as_bytes()).into_bytes(),
    );
    put(
        "inventory",
        "data/config/2026-11-01T00-00Z/manifest.json",
        manifest.clone().into_bytes(),
    );
    let key = f.server.kms_key();
    let env = Env::new();
    f.reseal_ok(
        &env,
        &[
            "run",
            "--manifest",
            "s3://inventory/data/config/2026-11-01T00-00Z/manifest.json",
            "--sse",
            &format!("sse-kms:{key}"),
        ],
    );
    for k in keys {
        assert_eq!(f.get("data", k), k.as_bytes());
        assert_eq!(
            f.head("data", k).server_side_encryption(),
            Some(&ServerSideEncryption::AwsKms)
        );
    }

    // A damaged data file: refused, and the error names the S3 object.
    put(
        "inventory",
        "data/config/data/file1.csv.gz",
        common::gz("\"data\",\"x\",\"NOT-SSE\"\n"),
    );
    let env = Env::new();
    let run = f.reseal(
        &env,
        &[
            "job",
            "create",
            "--manifest",
            "s3://inventory/data/config/2026-11-01T00-00Z/manifest.json",
            "--sse",
            "sse-s3",
        ],
    );
    run.exits(2).says("MD5");
    run.says("s3://inventory/data/config/data/file1.csv.gz");
    assert!(
        !run.stderr.contains("/tmp/"),
        "no temporary path in the error: {}",
        run.stderr
    );
}

#[test]
fn moto_manifests_and_reports_on_s3() {
    manifests_and_reports_on_s3(&Fixture::new(S3Server::moto()));
}

/// --preserve-acl re-applies the ACL that S3 does not copy.
fn preserve_acl(f: &Fixture) {
    f.bucket("acls");
    f.put("acls", "public.txt", b"hi", Mode::NotSse, "");
    f.rt.block_on(
        f.client
            .put_object_acl()
            .bucket("acls")
            .key("public.txt")
            .acl(aws_sdk_s3::types::ObjectCannedAcl::PublicRead)
            .send(),
    )
    .unwrap();
    let grants = |f: &Fixture| {
        let acl =
            f.rt.block_on(
                f.client
                    .get_object_acl()
                    .bucket("acls")
                    .key("public.txt")
                    .send(),
            )
            .unwrap();
        let mut g: Vec<String> = acl.grants().iter().map(|g| format!("{g:?}")).collect();
        g.sort();
        g
    };
    let before = grants(f);
    assert!(before.iter().any(|g| g.contains("AllUsers")), "{before:?}");
    let env = Env::new();
    let report = env.path("report");
    f.reseal_ok(
        &env,
        &run_listing(
            "s3://acls",
            "sse-s3",
            &["--preserve-acl", "--report", report.to_str().unwrap()],
        ),
    );
    assert_eq!(grants(f), before, "the ACL is the same after the copy");
    let rows = report_rows(&report);
    assert!(rows[0][6].contains("ACL re-applied"), "{rows:?}");
}

#[test]
fn moto_preserve_acl() {
    preserve_acl(&Fixture::new(S3Server::moto()));
}

/// `reseal verify` lists objects that are not (any longer) compliant.
fn verify_lists_what_is_not_compliant(f: &Fixture) {
    f.bucket("verify");
    for k in ["a", "b", "c"] {
        f.put("verify", k, k.as_bytes(), Mode::NotSse, "");
    }
    let env = Env::new();
    f.reseal_ok(&env, &run_listing("s3://verify", "sse-s3", &[]));
    let id = env.jobs()[0]["id"].as_str().unwrap().to_owned();
    f.reseal_ok(&env, &["verify", &id]);
    // Someone writes b.txt again without encryption headers (where the server then
    // encrypts with SSE-S3 anyway, with SSE-KMS).
    let (again, shown) = if f.server.caps.default_sse {
        (Mode::SseKms, "verify/b\tSSE-KMS")
    } else {
        (Mode::NotSse, "verify/b\tNOT-SSE")
    };
    f.put("verify", "b", b"b again", again, "");
    let run = f.reseal(&env, &["verify", &id]);
    if f.server.caps.sse {
        run.exits(1);
        assert!(run.stdout.trim().starts_with(shown), "{}", run.stdout);
        run.says("3 objects checked, 2 compliant, 1 not");
    }
}

#[test]
fn moto_verify_lists_what_is_not_compliant() {
    verify_lists_what_is_not_compliant(&Fixture::new(S3Server::moto()));
}

/// Mistakes get clear errors and change nothing.
#[test]
fn moto_bad_options_are_refused() {
    let f = Fixture::new(S3Server::moto());
    f.bucket("bad");
    f.put("bad", "a", b"a", Mode::NotSse, "");
    let env = Env::new();
    let run = f.reseal(
        &env,
        &run_listing("s3://bad", "sse-kms:k", &["--method", "update"]),
    );
    run.exits(2).says("--method update needs Amazon S3");
    let run = f.reseal(
        &env,
        &run_listing("s3://bad", "sse-s3", &["--multipart-threshold", "6GiB"]),
    );
    run.exits(2).says("at most 5GiB");
    let run = f.reseal(&env, &run_listing("s3://no-such-bucket", "sse-s3", &[]));
    run.exits(2).says("s3://no-such-bucket/: NoSuchBucket");
    let run = f.reseal(
        &env,
        &[
            "run",
            "--manifest",
            "s3://bad/missing.csv",
            "--sse",
            "sse-s3",
        ],
    );
    run.exits(2).says("s3://bad/missing.csv: NoSuchKey");
    assert_eq!(f.get("bad", "a"), b"a");
    assert!(f.head("bad", "a").server_side_encryption().is_none());
    // Refused options left no job behind; a missing manifest left a Failed job, none Ready.
    for job in env.jobs() {
        assert_ne!(job["status"], "Ready", "{job}");
    }
}

// ---- `reseal serve`: the scenarios above against reseal's own endpoint, and what only a
// server with real SSE-C and KMS checks can show. Not run there: `preserve_acl` (reseal
// serve has no ACLs).

#[test]
fn serve_versioned_bucket() {
    versioned_bucket(&Fixture::new(S3Server::reseal_serve()));
}

/// The versions of `key` in `bucket`, newest first: (version id, is latest).
fn versions_of(f: &Fixture, bucket: &str, key: &str) -> Vec<(String, bool)> {
    let out =
        f.rt.block_on(
            f.client
                .list_object_versions()
                .bucket(bucket)
                .prefix(key)
                .send(),
        )
        .unwrap();
    out.versions()
        .iter()
        .filter(|v| v.key() == Some(key))
        .map(|v| {
            (
                v.version_id().unwrap().to_owned(),
                v.is_latest() == Some(true),
            )
        })
        .collect()
}

/// GET of one version of an SSE-C object: its bytes, or the HTTP status of the refusal.
fn get_version_ssec(
    f: &Fixture,
    bucket: &str,
    key: &str,
    version: &str,
    customer: &[u8; 32],
) -> Result<Vec<u8>, u16> {
    use common::s3::{Ssec, WithSsec};
    f.rt.block_on(async {
        match f
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .version_id(version)
            .sse_c(&Ssec::new(customer))
            .send()
            .await
        {
            Ok(out) => Ok(out.body.collect().await.unwrap().into_bytes().to_vec()),
            Err(e) => Err(e.raw_response().map_or(0, |r| r.status().as_u16())),
        }
    })
}

/// Versioned buckets in the modes moto cannot check: an SSE-C key rotation makes each
/// current version a new version on the new key while the older versions keep the old
/// one (and open with nothing else); DSSE-KMS over every version, with
/// --delete-noncurrent, leaves one version per key under the job's key id.
#[test]
fn serve_versioned_sse_c_and_dsse_kms() {
    let f = Fixture::new(S3Server::reseal_serve());
    let env = Env::new();
    let (old, new) = ([1u8; 32], [2u8; 32]);
    let old_file = env.write("old.key", &old);
    let new_file = env.write("new.key", &new);
    f.versioned_bucket("vssec");
    f.put_ssec("vssec", "a", b"a one", &old);
    f.put_ssec("vssec", "a", b"a two", &old);
    f.put_ssec("vssec", "b", b"b one", &old);
    let before = versions_of(&f, "vssec", "a");
    assert_eq!(before.len(), 2, "{before:?}");
    let report = env.path("report");
    let (sse, source) = sse_c_files(&new_file, &old_file);
    f.reseal_ok(
        &env,
        &run_listing(
            "s3://vssec",
            &sse,
            &[
                "--source-sse-c",
                &source,
                "--report",
                report.to_str().unwrap(),
            ],
        ),
    );
    assert_eq!(f.get_ssec("vssec", "a", &new), Ok(b"a two".to_vec()));
    assert_eq!(f.get_ssec("vssec", "a", &old), Err(403));
    let after = versions_of(&f, "vssec", "a");
    assert_eq!(after.len(), 3, "a new current version: {after:?}");
    assert!(after[0].1 && !after[1].1 && !after[2].1, "{after:?}");
    // The older versions are as they were: on the old key only.
    assert_eq!(
        &after[1..],
        &[(before[0].0.clone(), false), (before[1].0.clone(), false)]
    );
    assert_eq!(
        get_version_ssec(&f, "vssec", "a", &before[0].0, &old),
        Ok(b"a two".to_vec())
    );
    assert_eq!(
        get_version_ssec(&f, "vssec", "a", &before[1].0, &old),
        Ok(b"a one".to_vec())
    );
    assert_eq!(
        get_version_ssec(&f, "vssec", "a", &before[1].0, &new),
        Err(403)
    );
    let rows = report_rows(&report);
    let a = rows.iter().find(|r| r[1] == "a").unwrap();
    assert!(
        a[6].contains(&format!("version {} -> {}", before[0].0, after[0].0)),
        "{a:?}"
    );

    // DSSE-KMS over all versions, the noncurrent ones deleted after each copy.
    let env = Env::new();
    let key = f.server.kms_key();
    f.versioned_bucket("vdsse");
    for body in [&b"d one"[..], b"d two", b"d three"] {
        f.put("vdsse", "d", body, Mode::SseS3, "").unwrap();
    }
    f.reseal_ok(
        &env,
        &run_listing(
            "s3://vdsse",
            &format!("dsse-kms:{key}"),
            &["--all-versions", "--delete-noncurrent"],
        ),
    );
    let head = f.head("vdsse", "d");
    assert_eq!(
        head.server_side_encryption(),
        Some(&ServerSideEncryption::AwsKmsDsse)
    );
    assert!(
        head.ssekms_key_id()
            .is_some_and(|k| k.ends_with(&key) || key.ends_with(k)),
        "{:?} for {key}",
        head.ssekms_key_id()
    );
    assert_eq!(f.get("vdsse", "d"), b"d three");
    assert_eq!(versions_of(&f, "vdsse", "d").len(), 1);
}

#[test]
fn serve_every_mode_from_every_mode() {
    every_mode_from_every_mode(&Fixture::new(S3Server::reseal_serve()));
}

#[test]
fn serve_multipart_keeps_everything() {
    multipart_keeps_everything(&Fixture::new(S3Server::reseal_serve()));
}

#[test]
fn serve_manifests_and_reports_on_s3() {
    manifests_and_reports_on_s3(&Fixture::new(S3Server::reseal_serve()));
}

#[test]
fn serve_verify_lists_what_is_not_compliant() {
    verify_lists_what_is_not_compliant(&Fixture::new(S3Server::reseal_serve()));
}

/// `--sse sse-c:@NEW --source-sse-c @OLD`, a key rotation with key files: the values of
/// both options.
fn sse_c_files(new: &Path, old: &Path) -> (String, String) {
    (
        format!("sse-c:@{}", new.display()),
        format!("@{}", old.display()),
    )
}

/// SSE-C key rotation in place (`--sse sse-c:@new --source-sse-c @old`), objects already
/// on the new key skipped, plaintext and SSE-S3 objects brought to SSE-C, and a wrong
/// source key failing its tasks clearly with nothing changed.
#[test]
fn serve_sse_c_key_rotation_and_wrong_keys() {
    let f = Fixture::new(S3Server::reseal_serve());
    let env = Env::new();
    let (old, new, wrong) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    let old_file = env.write("old.key", &old);
    let new_file = env.write("new.key", &new);
    let wrong_file = env.write("wrong.key", &wrong);
    f.bucket("ssec");
    let mut objects = Vec::new();
    for key in AWKWARD_KEYS {
        let body = body_for(key, Mode::SseS3);
        f.put_ssec("ssec", key, &body, &old);
        objects.push((key.to_owned(), body));
    }
    f.put_ssec("ssec", "already-new", b"already", &new);
    f.put("ssec", "plain", b"plain", Mode::NotSse, "");
    f.put("ssec", "s3", b"s3", Mode::SseS3, "");

    // A wrong source key: the old-key objects fail with AccessDenied, nothing changes.
    // Logged at trace, where the SDK would show request headers: no key appears.
    let report = env.path("report-wrong");
    let (sse, source) = sse_c_files(&new_file, &wrong_file);
    let run = f.reseal_with(
        &env,
        &run_listing(
            "s3://ssec",
            &sse,
            &[
                "--source-sse-c",
                &source,
                "--report",
                report.to_str().unwrap(),
            ],
        ),
        &[("RESEAL_LOG", "trace")],
    );
    run.exits(1);
    assert!(run.stderr.contains("TRACE"), "logged at trace");
    {
        use base64::Engine as _;
        for k in [&old, &new, &wrong] {
            let b64 = base64::engine::general_purpose::STANDARD.encode(k);
            assert!(!run.stderr.contains(&b64), "an SSE-C key in the log");
        }
    }
    let rows = report_rows(&report);
    for (key, _) in &objects {
        let encoded = reseal::encoding::encode_key(key);
        let row = rows.iter().find(|r| r[1] == encoded).unwrap();
        assert_eq!(row[3], "failed", "{row:?}");
        assert!(
            row[5].contains("AccessDenied") || row[6].contains("key"),
            "a clear reason: {row:?}"
        );
    }
    for (key, body) in &objects {
        assert_eq!(f.get_ssec("ssec", key, &old).as_ref(), Ok(body), "{key}");
    }

    // The right keys: every object ends on the new key.
    let env = Env::new();
    let report = env.path("report");
    let (sse, source) = sse_c_files(&new_file, &old_file);
    f.reseal_ok(
        &env,
        &run_listing(
            "s3://ssec",
            &sse,
            &[
                "--source-sse-c",
                &source,
                "--report",
                report.to_str().unwrap(),
            ],
        ),
    );
    for (key, body) in &objects {
        assert_eq!(f.get_ssec("ssec", key, &new).as_ref(), Ok(body), "{key}");
        assert_eq!(f.get_ssec("ssec", key, &old), Err(403), "{key}: old key");
        let tags = f.tags("ssec", key);
        assert_eq!(tags.get("project").map(String::as_str), Some("reseal"));
    }
    for (key, body) in [
        ("plain", &b"plain"[..]),
        ("s3", b"s3"),
        ("already-new", b"already"),
    ] {
        assert_eq!(f.get_ssec("ssec", key, &new).as_deref(), Ok(body), "{key}");
    }
    let rows = report_rows(&report);
    let already = rows.iter().find(|r| r[1] == "already-new").unwrap();
    assert!(already[6].contains("already"), "{already:?}");
    // Without a key, an SSE-C object is a 400; the whole job's objects verify.
    let head =
        f.rt.block_on(f.client.head_object().bucket("ssec").key("plain").send());
    assert_eq!(
        head.err()
            .and_then(|e| e.raw_response().map(|r| r.status().as_u16())),
        Some(400)
    );
    let id = env.jobs()[0]["id"].as_str().unwrap().to_owned();
    f.reseal_ok(&env, &["verify", &id]);
}

/// A server that cannot be reached is a failure (exit 1), not bad input (exit 2), and the
/// error is one readable line: what failed, where, why, without Rust's debug dump.
#[test]
fn an_unreachable_endpoint_fails_with_one_readable_line() {
    let env = Env::new();
    let vars = common::s3::aws_env();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for args in [
        &run_listing("s3://bucket1/", "sse-s3", &[])[..],
        &[
            "job",
            "create",
            "--manifest",
            "s3://bucket1/list.csv",
            "--sse",
            "sse-s3",
        ],
    ] {
        let mut all = args.to_vec();
        all.extend(["--endpoint-url", "http://127.0.0.1:1"]);
        let run = env.reseal_with_env(&all, &vars);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        let line = run.stderr.trim();
        assert_eq!(line.lines().count(), 1, "{args:?}: one line: {line}");
        assert!(line.contains("s3://bucket1/"), "names where: {line}");
        assert!(line.contains("Connection refused"), "says why: {line}");
        for debug in ["DispatchFailure(", "ConnectorError", "{ ", "Some("] {
            assert!(!line.contains(debug), "no debug dump ({debug}): {line}");
        }
    }
}

/// No secret reaches a log line, whatever RESEAL_LOG asks for: every target at trace, and
/// the targets that print request headers named on their own (which a level cap on the
/// crate could not hold back). The server logs every request at trace, the client signs
/// with a session token, and the job rotates SSE-C keys, so that the logs are full of
/// SSE-C key headers, signatures and tokens; each of them must be redacted.
#[test]
fn serve_logs_carry_no_secret_whatever_the_filter() {
    use base64::Engine as _;
    const TOKEN: &str = "reseal-test-session-token-7f3a";
    for (server_filter, client_filter) in [
        ("trace", "trace"),
        (
            "s3s::service=debug,s3s=trace",
            "aws_sigv4::http_request=trace",
        ),
    ] {
        let f = Fixture::new(S3Server::reseal_serve_env(
            &[],
            &[("RESEAL_LOG", server_filter)],
        ));
        let env = Env::new();
        let (old, new) = ([5u8; 32], [6u8; 32]);
        let old_file = env.write("old.key", &old);
        let new_file = env.write("new.key", &new);
        f.bucket("logs");
        f.put_ssec("logs", "a b.txt", b"secret bytes", &old);
        f.put("logs", "plain", b"plain", Mode::NotSse, "");
        let logged = |run: &common::Run, what: &str| {
            assert!(
                run.stderr.to_ascii_lowercase().contains("customer-key")
                    || run.stderr.contains("signing"),
                "{what}: the client's {client_filter} log shows its requests"
            );
        };
        let (sse, source) = sse_c_files(&new_file, &old_file);
        let run = f.reseal_with(
            &env,
            &run_listing("s3://logs", &sse, &["--source-sse-c", &source]),
            &[("RESEAL_LOG", client_filter), ("AWS_SESSION_TOKEN", TOKEN)],
        );
        run.exits(0);
        logged(&run, "run");
        let id = env.jobs()[0]["id"].as_str().unwrap().to_owned();
        let verify = f.reseal_with(
            &env,
            &["verify", &id],
            &[("RESEAL_LOG", client_filter), ("AWS_SESSION_TOKEN", TOKEN)],
        );
        verify.exits(0);
        logged(&verify, "verify");
        let server_log = f.server.log();
        assert!(
            server_log.contains("x-amz-server-side-encryption-customer-key"),
            "the server's {server_filter} log shows request headers"
        );
        for (what, log) in [
            ("run", &run.stderr),
            ("verify", &verify.stderr),
            ("serve", &server_log),
        ] {
            for key in [&old, &new] {
                let b64 = base64::engine::general_purpose::STANDARD.encode(key);
                assert!(!log.contains(&b64), "{what}: an SSE-C key in the log");
            }
            assert!(!log.contains(TOKEN), "{what}: the session token in the log");
            assert!(
                !log.contains(common::s3::SECRET_KEY),
                "{what}: the secret key in the log"
            );
            for line in log.lines() {
                let lower = line.to_ascii_lowercase();
                for marker in [
                    "signature=",
                    "x-amz-signature=",
                    "\"authorization\": \"aws4",
                ] {
                    if let Some(at) = lower.find(marker) {
                        assert!(
                            lower[at + marker.len()..].starts_with("[redacted]"),
                            "{what}: a signature in the log: {line}"
                        );
                    }
                }
            }
            assert!(log.contains("[REDACTED]"), "{what}: something was redacted");
        }
        assert_eq!(
            f.get_ssec("logs", "a b.txt", &new).as_deref(),
            Ok(&b"secret bytes"[..])
        );
    }
}

/// KMS key checks moto cannot make: an unknown key and a disabled key fail their tasks
/// with S3's KMS errors and change nothing; a job naming an alias ends with objects whose
/// reported key is that alias's key, and `verify` agrees.
#[test]
fn serve_kms_keys_are_checked() {
    let f = Fixture::new(S3Server::reseal_serve());
    let store = f.server.reseal.as_ref().unwrap();
    f.bucket("kms");
    for k in ["a", "b"] {
        f.put("kms", k, k.as_bytes(), Mode::SseS3, "");
    }
    let env = Env::new();
    let report = env.path("unknown");
    let run = f.reseal(
        &env,
        &run_listing(
            "s3://kms",
            "sse-kms:11111111-2222-3333-4444-555555555555",
            &["--report", report.to_str().unwrap()],
        ),
    );
    run.exits(1);
    for row in report_rows(&report) {
        assert_eq!(row[3], "failed", "{row:?}");
        assert_eq!(row[5], "KMS.NotFoundException", "{row:?}");
    }
    let key = f.server.kms_key();
    store.reseal(&["keys", "disable", &key]);
    let env = Env::new();
    let report = env.path("disabled");
    let run = f.reseal(
        &env,
        &run_listing(
            "s3://kms",
            &format!("sse-kms:{key}"),
            &["--report", report.to_str().unwrap()],
        ),
    );
    run.exits(1);
    for row in report_rows(&report) {
        assert_eq!(row[5], "KMS.DisabledException", "{row:?}");
    }
    for k in ["a", "b"] {
        assert_eq!(
            f.head("kms", k).server_side_encryption(),
            Some(&ServerSideEncryption::Aes256),
            "{k}: unchanged"
        );
    }
    store.reseal(&["keys", "enable", &key]);
    let billing = store
        .reseal(&["keys", "create", "--alias", "billing"])
        .trim()
        .to_owned();
    let alias_env = Env::new();
    f.reseal_ok(
        &alias_env,
        &run_listing("s3://kms", "sse-kms:alias/billing", &[]),
    );
    // The job keeps the alias's key ARN that the first write showed, so that verify can
    // compare what HEAD reports.
    let alias_job = alias_env.jobs()[0]["id"].as_str().unwrap().to_owned();
    f.reseal_ok(&alias_env, &["verify", &alias_job]);
    for k in ["a", "b"] {
        let h = f.head("kms", k);
        assert_eq!(
            h.server_side_encryption(),
            Some(&ServerSideEncryption::AwsKms)
        );
        let reported = h.ssekms_key_id().unwrap_or_default();
        assert!(
            reported.starts_with("arn:aws:kms:") && reported.ends_with(&format!("key/{billing}")),
            "{k}: {reported}"
        );
    }
    // A job naming the key by id finds every object compliant, and verifies.
    let env = Env::new();
    let run = f.reseal_ok(
        &env,
        &run_listing("s3://kms", &format!("sse-kms:{billing}"), &[]),
    );
    run.says("2 skipped, 0 failed");
    let id = env.jobs()[0]["id"].as_str().unwrap().to_owned();
    f.reseal_ok(&env, &["verify", &id]);
}
