//! `reseal serve` through the clients people use: the AWS CLI (from `.venv`) in every
//! mode, multipart and ranged, and rclone copying a folder in and out. tests/run.sh
//! installs both; a test whose client is missing fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use aws_sdk_s3::types::ServerSideEncryption;
use common::s3::{ACCESS_KEY, REGION, S3Server, SECRET_KEY, rt};
use common::serve::{aws, aws_ok, body};

#[test]
fn the_aws_cli_works_with_every_mode() {
    let server = S3Server::reseal_serve();
    let ep = server.endpoint.as_str();
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.txt");
    std::fs::write(&small, b"small file\n").unwrap();
    // Over the CLI's multipart threshold (8 MiB): a multipart upload, then ranged GETs.
    let big = dir.path().join("big.bin");
    let big_data = body(20 * 1024 * 1024 + 5, 3);
    std::fs::write(&big, &big_data).unwrap();
    let key = server.kms_key();
    let customer = dir.path().join("customer.key");
    std::fs::write(&customer, [5u8; 32]).unwrap();
    let p = |p: &Path| p.to_str().unwrap().to_owned();
    let head = |key: &str| {
        aws_ok(
            ep,
            &["s3api", "head-object", "--bucket", "cli", "--key", key],
        )
    };
    aws_ok(ep, &["s3", "mb", "s3://cli"]);
    for (name, extra) in [
        ("s3", vec!["--sse", "AES256"]),
        (
            "kms",
            vec!["--sse", "aws:kms", "--sse-kms-key-id", key.as_str()],
        ),
        ("default", vec![]),
    ] {
        for (file, suffix) in [(&small, "small"), (&big, "big")] {
            let target = format!("s3://cli/{name}/{suffix}");
            let mut args = vec!["s3".to_owned(), "cp".into(), p(file), target.clone()];
            args.extend(extra.iter().map(|s| s.to_string()));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            aws_ok(ep, &args);
            let back = dir.path().join(format!("{name}-{suffix}.back"));
            aws_ok(ep, &["s3", "cp", &target, &p(&back)]);
            assert_eq!(
                std::fs::read(&back).unwrap(),
                std::fs::read(file).unwrap(),
                "{target}"
            );
        }
        let head: serde_json::Value = serde_json::from_str(&head(&format!("{name}/big"))).unwrap();
        let want = if name == "kms" { "aws:kms" } else { "AES256" };
        assert_eq!(head["ServerSideEncryption"], want, "{head}");
        assert!(head["ETag"].as_str().unwrap().ends_with("-3\""), "{head}");
        if name == "kms" {
            assert!(
                head["SSEKMSKeyId"].as_str().unwrap().ends_with(&key),
                "{head}"
            );
        }
    }
    // DSSE-KMS (which `aws s3 cp` of this CLI does not offer) through s3api.
    aws_ok(
        ep,
        &[
            "s3api",
            "put-object",
            "--bucket",
            "cli",
            "--key",
            "dsse",
            "--body",
            &p(&small),
            "--server-side-encryption",
            "aws:kms:dsse",
            "--ssekms-key-id",
            &key,
        ],
    );
    let dsse = head("dsse");
    assert!(
        dsse.contains("aws:kms:dsse") && dsse.contains(&key),
        "{dsse}"
    );
    // SSE-C: the CLI computes the MD5 itself.
    let sse_c_key = format!("fileb://{}", p(&customer));
    let sse_c = ["--sse-c", "AES256", "--sse-c-key", &sse_c_key];
    aws_ok(
        ep,
        &[&["s3", "cp", &p(&big), "s3://cli/ssec/big"][..], &sse_c].concat(),
    );
    let back = dir.path().join("ssec.back");
    let out = aws(ep, &["s3", "cp", "s3://cli/ssec/big", &p(&back)]);
    assert!(!out.status.success(), "no key: refused");
    aws_ok(
        ep,
        &[&["s3", "cp", "s3://cli/ssec/big", &p(&back)][..], &sse_c].concat(),
    );
    assert_eq!(std::fs::read(&back).unwrap(), big_data);
    // A range, a part (the CLI uploaded it in 8 MiB parts), a listing, tags, bucket
    // encryption.
    let get_big = |how: &[&str], to: &Path| {
        let args = [
            &["s3api", "get-object", "--bucket", "cli", "--key", "s3/big"],
            how,
            &[&p(to)],
        ];
        aws_ok(ep, &args.concat())
    };
    let range = dir.path().join("range.bin");
    get_big(&["--range", "bytes=100-199"], &range);
    assert_eq!(std::fs::read(&range).unwrap(), &big_data[100..200]);
    let part = dir.path().join("part.bin");
    let got = get_big(&["--part-number", "2"], &part);
    assert!(got.contains("\"PartsCount\": 3"), "{got}");
    assert_eq!(std::fs::read(&part).unwrap(), &big_data[8 << 20..16 << 20]);
    let listed = aws_ok(ep, &["s3", "ls", "--recursive", "s3://cli/"]);
    assert_eq!(listed.lines().count(), 8, "{listed}");
    aws_ok(
        ep,
        &[
            "s3api",
            "put-object-tagging",
            "--bucket",
            "cli",
            "--key",
            "s3/small",
            "--tagging",
            "TagSet=[{Key=a,Value=b}]",
        ],
    );
    let tags = aws_ok(
        ep,
        &[
            "s3api",
            "get-object-tagging",
            "--bucket",
            "cli",
            "--key",
            "s3/small",
        ],
    );
    assert!(tags.contains("\"Key\": \"a\""), "{tags}");
    aws_ok(
        ep,
        &[
            "s3api",
            "put-bucket-encryption",
            "--bucket",
            "cli",
            "--server-side-encryption-configuration",
            &format!(
                r#"{{"Rules":[{{"ApplyServerSideEncryptionByDefault":{{"SSEAlgorithm":"aws:kms","KMSMasterKeyID":"{key}"}}}}]}}"#
            ),
        ],
    );
    let enc = aws_ok(ep, &["s3api", "get-bucket-encryption", "--bucket", "cli"]);
    assert!(enc.contains("aws:kms") && enc.contains(&key), "{enc}");
    aws_ok(ep, &["s3", "cp", &p(&small), "s3://cli/after-default"]);
    let after = head("after-default");
    assert!(after.contains("aws:kms"), "{after}");
    aws_ok(
        ep,
        &["s3api", "delete-bucket-encryption", "--bucket", "cli"],
    );
    // A server-side copy of the whole prefix, re-encrypting.
    aws_ok(
        ep,
        &[
            "s3",
            "cp",
            "--recursive",
            "s3://cli/s3/",
            "s3://cli/s3/",
            "--sse",
            "aws:kms",
        ],
    );
    let copied = head("s3/small");
    assert!(copied.contains("aws:kms"), "{copied}");
}

/// Object versions through the AWS CLI: versioning on, each PUT a version with its own
/// encryption, reads of older versions, a delete marker and its removal, a version deleted
/// for good, and a suspended bucket's null version.
#[test]
fn the_aws_cli_works_with_versions() {
    let server = S3Server::reseal_serve();
    let ep = server.endpoint.as_str();
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let json = |args: &[&str]| -> serde_json::Value {
        let out = aws_ok(ep, args);
        if out.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&out).unwrap()
        }
    };
    let (one, two) = (file("one", b"version one\n"), file("two", b"version two\n"));
    let kms = server.kms_key();
    aws_ok(ep, &["s3", "mb", "s3://ver"]);
    let set_versioning = |status: &str| {
        let configuration = format!("Status={status}");
        aws_ok(
            ep,
            &[
                "s3api",
                "put-bucket-versioning",
                "--bucket",
                "ver",
                "--versioning-configuration",
                &configuration,
            ],
        )
    };
    set_versioning("Enabled");
    assert_eq!(
        json(&["s3api", "get-bucket-versioning", "--bucket", "ver"])["Status"],
        "Enabled"
    );
    let put = |body: &str, extra: &[&str]| -> String {
        let mut args = vec![
            "s3api",
            "put-object",
            "--bucket",
            "ver",
            "--key",
            "k",
            "--body",
            body,
        ];
        args.extend_from_slice(extra);
        json(&args)["VersionId"].as_str().unwrap().to_owned()
    };
    let v1 = put(&one, &[]);
    let v2 = put(
        &two,
        &[
            "--server-side-encryption",
            "aws:kms:dsse",
            "--ssekms-key-id",
            &kms,
        ],
    );
    assert_ne!(v1, v2);
    let versions = |key: &str| {
        json(&[
            "s3api",
            "list-object-versions",
            "--bucket",
            "ver",
            "--prefix",
            key,
        ])
    };
    let listed = versions("k");
    let ids: Vec<(&str, bool)> = listed["Versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["VersionId"].as_str().unwrap(),
                v["IsLatest"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(ids, [(v2.as_str(), true), (v1.as_str(), false)], "{listed}");
    // Each version with its own bytes and encryption.
    let back = dir.path().join("back");
    let back_s = back.to_str().unwrap();
    let got = json(&[
        "s3api",
        "get-object",
        "--bucket",
        "ver",
        "--key",
        "k",
        "--version-id",
        &v1,
        back_s,
    ]);
    assert_eq!(got["VersionId"], v1.as_str());
    assert_eq!(std::fs::read(&back).unwrap(), b"version one\n");
    let head = |version: &str| {
        json(&[
            "s3api",
            "head-object",
            "--bucket",
            "ver",
            "--key",
            "k",
            "--version-id",
            version,
        ])
    };
    assert_eq!(head(&v1)["ServerSideEncryption"], "AES256");
    assert_eq!(head(&v2)["ServerSideEncryption"], "aws:kms:dsse");

    // A delete leaves a marker: the key is gone, its versions are not.
    let deleted = json(&["s3api", "delete-object", "--bucket", "ver", "--key", "k"]);
    assert_eq!(deleted["DeleteMarker"], true, "{deleted}");
    let marker = deleted["VersionId"].as_str().unwrap().to_owned();
    let gone = aws(
        ep,
        &["s3api", "head-object", "--bucket", "ver", "--key", "k"],
    );
    assert!(!gone.status.success());
    let listed = versions("k");
    assert_eq!(
        listed["DeleteMarkers"][0]["VersionId"],
        marker.as_str(),
        "{listed}"
    );
    assert_eq!(listed["DeleteMarkers"][0]["IsLatest"], true, "{listed}");
    assert_eq!(listed["Versions"].as_array().unwrap().len(), 2, "{listed}");
    // Removing the marker brings version two back; version one goes for good.
    let delete_version = |id: &str| {
        json(&[
            "s3api",
            "delete-object",
            "--bucket",
            "ver",
            "--key",
            "k",
            "--version-id",
            id,
        ])
    };
    delete_version(&marker);
    aws_ok(ep, &["s3", "cp", "s3://ver/k", back_s]);
    assert_eq!(std::fs::read(&back).unwrap(), b"version two\n");
    delete_version(&v1);
    let missing = aws(
        ep,
        &[
            "s3api",
            "head-object",
            "--bucket",
            "ver",
            "--key",
            "k",
            "--version-id",
            &v1,
        ],
    );
    assert!(!missing.status.success());
    assert_eq!(versions("k")["Versions"].as_array().unwrap().len(), 1);

    // Suspended: a PUT writes the null version.
    set_versioning("Suspended");
    assert_eq!(put(&one, &[]), "null");
    let listed = versions("k");
    let ids: Vec<&str> = listed["Versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["VersionId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["null", v2.as_str()], "{listed}");
}

#[test]
fn rclone_copies_a_folder_in_and_out_byte_for_byte() {
    let server = S3Server::reseal_serve();
    let rclone = which("rclone");
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let mut files = Vec::new();
    for (i, name) in ["a.txt", "sub/b.bin", "sub/deeper/c d.txt", "empty"]
        .iter()
        .enumerate()
    {
        let path = src.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let data = if *name == "empty" {
            Vec::new()
        } else {
            body(1000 * (i + 1) * (i + 1) * 700, i as u8)
        };
        std::fs::write(&path, &data).unwrap();
        files.push((name.to_string(), data));
    }
    let config = dir.path().join("rclone.conf");
    std::fs::write(&config, "").unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(&rclone)
            .args(args)
            .args(["--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M"])
            .env("RCLONE_CONFIG", &config)
            // rclone takes AWS_CA_BUNDLE for its own and cannot use it on plain HTTP.
            .env_remove("AWS_CA_BUNDLE")
            .env("RCLONE_CONFIG_SERVE_TYPE", "s3")
            .env("RCLONE_CONFIG_SERVE_PROVIDER", "Other")
            .env("RCLONE_CONFIG_SERVE_ACCESS_KEY_ID", ACCESS_KEY)
            .env("RCLONE_CONFIG_SERVE_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("RCLONE_CONFIG_SERVE_ENDPOINT", &server.endpoint)
            .env("RCLONE_CONFIG_SERVE_REGION", REGION)
            .env("RCLONE_CONFIG_SERVE_FORCE_PATH_STYLE", "true")
            .stdin(Stdio::null())
            .output()
            .expect("rclone runs");
        assert!(
            out.status.success(),
            "rclone {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["mkdir", "serve:rcl"]);
    run(&["copy", src.to_str().unwrap(), "serve:rcl/in"]);
    let back = dir.path().join("back");
    run(&["copy", "serve:rcl/in", back.to_str().unwrap()]);
    for (name, data) in &files {
        assert_eq!(&std::fs::read(back.join(name)).unwrap(), data, "{name}");
    }
    let h = rt()
        .block_on(
            server
                .client()
                .head_object()
                .bucket("rcl")
                .key("in/sub/deeper/c d.txt")
                .send(),
        )
        .unwrap();
    assert_eq!(
        h.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );
}

fn which(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{name} is not installed: run tests/run.sh, which installs it"))
}
