//! Every encryption mode of the local store to every other, through the real binary and
//! a real SQLite job store: the object already in the wanted mode is left alone, every
//! other keeps its bytes, ETag, content type, metadata and tags, and an SSE-C object
//! re-encrypted to a new key no longer opens with the old one.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::local::{
    BUCKET, Counts, KEY_A, KEY_B, Obj, Sse, Want, World, body, job_id_from, key_md5_b64,
    read_report,
};
use common::md5_hex;
use serde_json::Value;

/// One wanted encryption of the modes test.
struct TargetCase {
    name: &'static str,
    spec: String,
    want: Want,
}

#[test]
fn every_source_mode_to_every_target_mode() {
    let w = World::new();
    let other_id = w
        .ok(&["keys", "--store", w.s(), "create", "--alias", "other"])
        .trim()
        .to_owned();
    let default_id = w.kms_id("alias/aws/s3");
    assert_eq!(w.kms_id("alias/other"), other_id);
    // Key A as 32 raw bytes, key B as base64 text: both forms of a key file.
    let a = w.env.write("a.key", &KEY_A);
    let b = w.env.write("b.key", B64.encode(KEY_B).as_bytes());
    let a_spec = format!("sse-c:@{}", a.display());
    let b_spec = format!("sse-c:@{}", b.display());

    let sources: Vec<(&str, String)> = vec![
        ("none", "none".into()),
        ("sse-s3", "sse-s3".into()),
        ("sse-kms", "sse-kms".into()),
        ("dsse-kms", "dsse-kms:alias/aws/s3".into()),
        ("sse-c-a", a_spec.clone()),
    ];
    let case = |name, spec: &str, mode, kms_key_id: Option<&String>, customer| TargetCase {
        name,
        spec: spec.to_owned(),
        want: Want {
            mode,
            kms_key_id: kms_key_id.cloned(),
            customer,
        },
    };
    let targets = [
        case("sse-s3", "sse-s3", "SSE-S3", None, None),
        case("sse-kms", "sse-kms", "SSE-KMS", Some(&default_id), None),
        case(
            "kms-other",
            "sse-kms:alias/other",
            "SSE-KMS",
            Some(&other_id),
            None,
        ),
        case(
            "dsse-kms",
            "dsse-kms:alias/aws/s3",
            "DSSE-KMS",
            Some(&default_id),
            None,
        ),
        case("sse-c-b", &b_spec, "SSE-C", None, Some(KEY_B)),
    ];
    // Empty, one byte, part of a segment, exactly one segment (256 KiB), three segments.
    const SIZES: [usize; 5] = [0, 1, 70_001, 262_144, 600_001];

    for (ti, t) in targets.iter().enumerate() {
        let (target, spec) = (t.name, &t.spec);
        let (mode, kms, customer) = (t.want.mode, &t.want.kms_key_id, &t.want.customer);
        // The one object already as the job wants it: among the sources, or added.
        let compliant_spec = spec;
        let mut objs = Vec::new();
        let mut all_sources = sources.clone();
        if !sources.iter().any(|(_, s)| s == compliant_spec) {
            all_sources.push(("already", compliant_spec.clone()));
        }
        for (si, (source, source_spec)) in all_sources.iter().enumerate() {
            let o = Obj::new(
                si,
                format!("to {target}/from {source}/objet é+{si}.bin"),
                body((ti * 10 + si) as u64, SIZES[(si + ti) % SIZES.len()]),
                Sse::None,
            );
            w.put_cli(&o, source_spec);
            objs.push((o, source_spec == compliant_spec));
        }
        let compliant: Vec<&Obj> = objs.iter().filter(|(_, c)| *c).map(|(o, _)| o).collect();
        assert_eq!(compliant.len(), 1, "{target}");
        let before = w.head(&compliant[0].key);

        let manifest = w.manifest(
            &format!("{target}.csv"),
            objs.iter().map(|(o, _)| o.key.as_str()),
        );
        let r = w.run(&[
            "run",
            "--manifest",
            manifest.to_str().unwrap(),
            "--sse",
            spec,
            "--store",
            w.s(),
            "--source-sse-c",
            &format!("@{}", a.display()),
            "--description",
            &format!("to {target}"),
        ]);
        assert_eq!(r.code, 0, "to {target}:\n{}", r.stderr);
        let id = job_id_from(&r.stderr);
        r.says(&format!("job {id}: Complete"));
        let n = objs.len() as u64;
        assert_eq!(
            w.counts(&id),
            Counts {
                total: n,
                succeeded: n - 1,
                skipped: 1,
                ..Counts::default()
            },
            "to {target}"
        );
        assert_eq!(w.status(&id), "Complete");

        let key_file = customer.map(|_| b.as_path());
        for (o, is_compliant) in &objs {
            let head = w.head(&o.key);
            let what = format!("{} to {target}", o.key);
            assert_eq!(head["encryption"], mode, "{what}");
            assert_eq!(head["kms_key_id"].as_str(), kms.as_deref(), "{what}");
            assert_eq!(
                head["sse_customer_key_md5"].as_str(),
                customer.as_ref().map(key_md5_b64).as_deref(),
                "{what}"
            );
            assert_eq!(head["etag"], md5_hex(&o.body), "{what}");
            assert_eq!(head["size"], o.body.len(), "{what}");
            assert_eq!(head["content_type"], o.content_type, "{what}");
            assert_eq!(head["metadata"], serde_json::json!(o.metadata), "{what}");
            assert_eq!(head["tags"], serde_json::json!(o.tags), "{what}");
            if *is_compliant {
                assert_eq!(
                    head, before,
                    "{what}: an object already compliant is left alone"
                );
            }
            let got = w
                .get(&o.key, key_file)
                .unwrap_or_else(|r| panic!("{what}: {}", r.stderr));
            assert!(got == o.body, "{what}: the bytes changed");
        }
        if customer.is_some() {
            // The object from key A now opens with key B only.
            let o = &objs[4].0;
            let r = w.get(&o.key, Some(&a)).unwrap_err();
            assert_eq!(r.code, 2);
            r.says("access denied");
            let r = w.get(&o.key, None).unwrap_err();
            assert_eq!(r.code, 2);
            r.says("SSE-C");
        }
    }
}

/// A versioned bucket of the local store, as a versioned S3 bucket: a manifest row naming
/// a version that is no longer current is skipped as superseded; one naming the current
/// version makes a new version, reported as `version OLD -> NEW`, and the old version
/// keeps its bytes and its old encryption.
#[test]
fn versioned_manifests_on_the_local_store() {
    let w = World::new();
    w.ok(&["store", "versioning", "--store", w.s(), BUCKET, "enabled"]);
    let put = |key: &str, body: &[u8]| {
        let file = w.env.write("body", body);
        w.ok(&[
            "store",
            "put",
            "--store",
            w.s(),
            BUCKET,
            key,
            file.to_str().unwrap(),
            "--sse",
            "sse-s3",
        ]);
    };
    put("a", b"a one");
    put("a", b"a two");
    put("b", b"b one");
    let listed: Vec<Value> = serde_json::from_str(&w.ok(&[
        "store",
        "ls",
        "--store",
        w.s(),
        BUCKET,
        "--versions",
        "--output",
        "json",
    ]))
    .unwrap();
    let version = |key: &str, latest: bool| -> String {
        listed
            .iter()
            .find(|v| v["key"] == key && v["is_latest"] == latest)
            .unwrap_or_else(|| panic!("{key} latest={latest} in {listed:?}"))["version_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (old_a, new_a, b1) = (version("a", false), version("a", true), version("b", true));
    let manifest = w.env.write(
        "versions.csv",
        format!("{BUCKET},a,{old_a}\n{BUCKET},b,{b1}\n").as_bytes(),
    );
    let reports = w.env.path("reports");
    let id = w.create(
        &manifest,
        "sse-kms",
        &["--report", reports.to_str().unwrap()],
    );
    w.ok(&["job", "run", &id]);
    let (rows, _) = read_report(&reports, &id);
    let row = |key: &str| rows.iter().find(|r| r.key == key).unwrap();
    assert_eq!(row("a").status, "succeeded");
    assert!(
        row("a").message.contains(&format!(
            "superseded: version {old_a} is no longer current (current: {new_a})"
        )),
        "{:?}",
        row("a")
    );
    let head = |key: &str, version: Option<&str>| -> Value {
        let mut args = vec![
            "store",
            "head",
            "--store",
            w.s(),
            BUCKET,
            key,
            "--output",
            "json",
        ];
        if let Some(v) = version {
            args.extend(["--version-id", v]);
        }
        serde_json::from_str(&w.ok(&args)).unwrap()
    };
    assert_eq!(
        head("a", None)["encryption"],
        "SSE-S3",
        "superseded: untouched"
    );
    let b2 = head("b", None)["version_id"].as_str().unwrap().to_owned();
    assert_ne!(b2, b1);
    assert!(
        row("b").message.contains(&format!("version {b1} -> {b2}")),
        "{:?}",
        row("b")
    );
    assert_eq!(head("b", None)["encryption"], "SSE-KMS");
    assert_eq!(head("b", Some(&b1))["encryption"], "SSE-S3");
    let get = |version: &str| {
        w.ok(&[
            "store",
            "get",
            "--store",
            w.s(),
            BUCKET,
            "b",
            "--version-id",
            version,
        ])
    };
    assert_eq!(get(&b1), "b one");
    assert_eq!(get(&b2), "b one");

    // The old version removed for good; then a delete leaves a marker over the new one.
    let b_versions = || -> Vec<Value> {
        let all: Vec<Value> = serde_json::from_str(&w.ok(&[
            "store",
            "ls",
            "--store",
            w.s(),
            BUCKET,
            "--prefix",
            "b",
            "--versions",
            "--output",
            "json",
        ]))
        .unwrap();
        all
    };
    w.ok(&[
        "store",
        "rm",
        "--store",
        w.s(),
        BUCKET,
        "b",
        "--version-id",
        &b1,
    ]);
    assert_eq!(b_versions().len(), 1);
    let rm = w.run(&["store", "rm", "--store", w.s(), BUCKET, "b"]);
    rm.exits(0).says("delete marker");
    let after = b_versions();
    assert_eq!(after.len(), 2, "{after:?}");
    assert_eq!(after[0]["delete_marker"], true, "{after:?}");
    w.run(&["store", "head", "--store", w.s(), BUCKET, "b"])
        .exits(2)
        .says("no object");
    assert_eq!(get(&b2), "b one");
}
