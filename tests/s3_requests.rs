//! What reseal sends per object on S3, counted by a proxy in front of the server (moto and
//! `reseal serve`): an object that needs work costs two requests (HEAD, CopyObject: the
//! copy's own answer confirms the new encryption), one already compliant costs one (HEAD).

mod common;

use std::collections::BTreeMap;

use common::Env;
use common::proxy::{Faults, Proxy};
use common::s3::S3Server;
use common::s3_fixture::{Fixture, Mode};

/// The requests the proxy saw per key, as `METHOD` or `COPY` for a CopyObject.
fn per_key(proxy: &Proxy, bucket: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in proxy.seen() {
        if s.bucket == bucket && !s.key.is_empty() {
            let what = if s.copy {
                "COPY".to_owned()
            } else {
                s.method.clone()
            };
            out.entry(s.key.clone()).or_default().push(what);
        }
    }
    out
}

/// A new bucket with `plain` objects that need work (`needs work/N`, no SSE) and
/// `compliant` ones (`compliant/N`, SSE-S3); their keys.
fn plain_and_compliant(
    f: &Fixture,
    bucket: &str,
    plain: usize,
    compliant: usize,
) -> (Vec<String>, Vec<String>) {
    f.bucket(bucket);
    let keys = |prefix: &str, n: usize, mode: Mode| -> Vec<String> {
        (0..n)
            .map(|i| {
                let key = format!("{prefix}/{i}");
                f.put(bucket, &key, b"bytes", mode, "");
                key
            })
            .collect()
    };
    (
        keys("needs work", plain, Mode::NotSse),
        keys("compliant", compliant, Mode::SseS3),
    )
}

fn requests_per_object(f: &Fixture) {
    let bucket = "counted";
    let (plain, done) = plain_and_compliant(f, bucket, 6, 4);
    let env = Env::new();
    let rows: String = plain
        .iter()
        .chain(&done)
        .map(|k| format!("{bucket},{}\n", reseal::encoding::encode_key(k)))
        .collect();
    let manifest = env.write("list.csv", rows.as_bytes());
    let proxy = Proxy::start(&f.server.endpoint, Faults::default());
    // reseal serve encrypts an object written without SSE headers with SSE-S3, as S3 does.
    let (want, compliant) = if f.server.caps.default_sse {
        ("sse-kms", &plain[..0])
    } else {
        ("sse-s3", &done[..])
    };
    let run = f.reseal_at(
        &env,
        &proxy.endpoint,
        &[
            "run",
            "--manifest",
            manifest.to_str().unwrap(),
            "--sse",
            want,
        ],
    );
    assert_eq!(run.code, 0, "{}: {}", f.server.name, run.stderr);
    let seen = per_key(&proxy, bucket);
    let needing: Vec<&String> = plain
        .iter()
        .chain(&done)
        .filter(|k| !compliant.contains(k))
        .collect();
    for key in &needing {
        assert_eq!(
            seen[*key],
            ["HEAD", "COPY"],
            "{}: {key} needs work: HEAD and the copy, whose answer confirms it",
            f.server.name
        );
    }
    for key in compliant {
        assert_eq!(seen[key], ["HEAD"], "{}: {key} is compliant", f.server.name);
    }
    assert_eq!(seen.len(), plain.len() + done.len());
}

#[test]
fn moto_requests_per_object() {
    requests_per_object(&Fixture::new(S3Server::moto()));
}

#[test]
fn serve_requests_per_object() {
    requests_per_object(&Fixture::new(S3Server::reseal_serve()));
}

/// With `--trust-inventory`, an object that needs work costs one request (the copy,
/// guarded by the inventory's ETag, whose answer confirms it), an object the inventory
/// says is compliant none, and one changed since the inventory is inspected as usual
/// after its guarded copy is refused (where the server checks the guard).
fn trusted_inventory(f: &Fixture) {
    let bucket = "trusted";
    let (plain, done) = plain_and_compliant(f, bucket, 5, 3);
    let (want, listed_done) = if f.server.caps.default_sse {
        ("sse-kms", "NOT-SSE")
    } else {
        ("sse-s3", "SSE-S3")
    };
    let env = Env::new();
    let row = |k: &str, status: &str| {
        let head = f.head(bucket, k);
        format!(
            "\"{bucket}\",\"{}\",\"5\",\"{}\",\"STANDARD\",\"{status}\"\n",
            reseal::encoding::encode_key(k),
            head.e_tag().unwrap().trim_matches('"')
        )
    };
    let mut rows: String = plain.iter().map(|k| row(k, "NOT-SSE")).collect();
    rows.extend(done.iter().map(|k| row(k, listed_done)));
    // Changed since the inventory: the row's ETag is the old one.
    let stale = "changed since";
    f.put(bucket, stale, b"old bytes", Mode::NotSse, "");
    rows.push_str(&row(stale, "NOT-SSE"));
    f.put(bucket, stale, b"newer bytes", Mode::NotSse, "");
    // Without the columns it needs, the option is refused: the job fails holding no task.
    let narrow = env.inventory(
        "Bucket, Key, Size",
        &[common::gz("\"trusted\",\"a\",\"1\"\n")],
    );
    let refused = f.reseal(
        &env,
        &[
            "job",
            "create",
            "--manifest",
            narrow.to_str().unwrap(),
            "--sse",
            want,
            "--trust-inventory",
        ],
    );
    refused
        .exits(2)
        .says("--trust-inventory needs the ETag column");
    assert!(env.jobs().iter().all(|j| j["status"] == "Failed"));
    let schema = "Bucket, Key, Size, ETag, StorageClass, EncryptionStatus";
    let manifest = env.inventory(schema, &[common::gz(&rows)]);

    let proxy = Proxy::start(&f.server.endpoint, Faults::default());
    let run = f.reseal_at(
        &env,
        &proxy.endpoint,
        &[
            "run",
            "--manifest",
            manifest.to_str().unwrap(),
            "--sse",
            want,
            "--trust-inventory",
        ],
    );
    assert_eq!(run.code, 0, "{}: {}", f.server.name, run.stderr);
    let seen = per_key(&proxy, bucket);
    for key in &plain {
        assert_eq!(seen[key], ["COPY"], "{}: {key}", f.server.name);
    }
    if !f.server.caps.default_sse {
        for key in &done {
            assert!(
                !seen.contains_key(key),
                "{}: {key}: {:?}",
                f.server.name,
                seen.get(key)
            );
        }
    }
    if f.server.caps.copy_if_match {
        assert_eq!(
            seen[stale],
            ["COPY", "HEAD", "COPY"],
            "{}: the guarded copy is refused, the object inspected and copied",
            f.server.name
        );
    }
    assert_eq!(f.get(bucket, stale), b"newer bytes");
    for key in plain.iter().chain([&stale.to_owned()]) {
        let head = f.head(bucket, key);
        assert!(head.server_side_encryption().is_some(), "{key}");
    }
}

#[test]
fn moto_trusted_inventory() {
    trusted_inventory(&Fixture::new(S3Server::moto()));
}

#[test]
fn serve_trusted_inventory() {
    trusted_inventory(&Fixture::new(S3Server::reseal_serve()));
}

/// `--estimate` counts the requests the run then sends, operation by operation, with and
/// without `--trust-inventory`; `job create` keeps its estimate, which `job describe`
/// shows; a price table that is not one is refused, naming the file.
#[test]
fn moto_an_estimate_counts_the_requests_the_run_sends() {
    let f = Fixture::new(S3Server::moto());
    for trusted in [false, true] {
        let bucket = if trusted {
            "estimated-trusted"
        } else {
            "estimated"
        };
        f.bucket(bucket);
        let env = Env::new();
        let mut rows = String::new();
        for i in 0..7 {
            let (key, mode, status) = if i < 4 {
                (format!("needs work/{i}"), Mode::NotSse, "NOT-SSE")
            } else {
                (format!("compliant/{i}"), Mode::SseS3, "SSE-S3")
            };
            f.put(bucket, &key, b"bytes", mode, "");
            let etag = f
                .head(bucket, &key)
                .e_tag()
                .unwrap()
                .trim_matches('"')
                .to_owned();
            rows.push_str(&format!(
                "\"{bucket}\",\"{}\",\"5\",\"{etag}\",\"STANDARD\",\"{status}\"\n",
                reseal::encoding::encode_key(&key)
            ));
        }
        let schema = "Bucket, Key, Size, ETag, StorageClass, EncryptionStatus";
        let manifest = env.inventory(schema, &[common::gz(&rows)]);
        let mut args = vec![
            "run",
            "--manifest",
            manifest.to_str().unwrap(),
            "--sse",
            "sse-s3",
        ];
        if trusted {
            args.push("--trust-inventory");
        }
        let proxy = Proxy::start(&f.server.endpoint, Faults::default());

        let mut estimating = args.clone();
        estimating.extend(["--estimate", "--output", "json"]);
        let run = f.reseal_at(&env, &proxy.endpoint, &estimating);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(env.jobs().is_empty(), "--estimate creates no job");
        assert!(
            proxy.seen().is_empty(),
            "--estimate sends nothing to the bucket"
        );
        let estimate: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(estimate["objects"], 7);
        assert_eq!(estimate["bytes"], 35);
        assert_eq!(estimate["by_mode"]["NOT-SSE"]["objects"], 4);
        assert_eq!(estimate["by_method"]["CopyObject"]["objects"], 4);
        assert_eq!(estimate["by_method"]["skip (compliant)"]["objects"], 3);
        assert_eq!(estimate["kms_requests"]["without_bucket_key"], 0);

        let run = f.reseal_at(&env, &proxy.endpoint, &args);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let sent = proxy.per_operation(bucket);
        let estimated: BTreeMap<String, u64> =
            serde_json::from_value(estimate["requests"].clone()).unwrap();
        assert_eq!(estimated, sent, "trusted: {trusted}: estimated, then sent");
        let expected_heads = if trusted { 0 } else { 7 };
        assert_eq!(sent.get("HeadObject").copied().unwrap_or(0), expected_heads);

        // The estimate is kept with a job that `job create` makes, and shown.
        let mut create = vec!["job", "create"];
        create.extend(&args[1..]);
        let id = f.reseal_at(&env, &proxy.endpoint, &create);
        assert_eq!(id.code, 0, "{}", id.stderr);
        let described = env.describe(id.stdout.trim());
        assert_eq!(described["estimate"]["requests"], estimate["requests"]);
    }
    let env = Env::new();
    let prices = env.write("prices.json", b"{\"write_per_1000\": \"cheap\"}");
    let manifest = env.write("list.csv", b"estimated,a\n");
    f.reseal(
        &env,
        &[
            "job",
            "create",
            "--manifest",
            manifest.to_str().unwrap(),
            "--sse",
            "sse-s3",
            "--estimate",
            "--prices",
            prices.to_str().unwrap(),
        ],
    )
    .exits(2)
    .says("prices.json: not a price table");
}
