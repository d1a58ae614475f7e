//! Flexible checksums and GetObjectAttributes on `reseal serve`, through the Rust SDK and
//! the AWS CLI: every algorithm checked on upload, kept and returned in checksum mode;
//! a wrong checksum refused with nothing written; multipart uploads' part checksums and
//! composite or full-object checksums; checksums kept by a re-encryption in place and
//! by copies; a checksum sent as a trailer (the AWS CLI over TLS).

mod common;

use aws_sdk_s3::error::ProvideErrorMetadata as _;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart,
    ObjectAttributes,
};
use base64::Engine as _;
use common::s3::{S3Server, Ssec, WithSourceSsec, WithSsec, client_with_sdk_checksums, rt};
use common::serve::{assert_refused, aws, aws_ok, aws_with, body, tls_server};
use sha2::Digest as _;

const MIB: usize = 1024 * 1024;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The checksum of `data` by `algorithm`, base64, as S3 gives it.
fn sum(algorithm: &ChecksumAlgorithm, data: &[u8]) -> String {
    use crc_fast::{CrcAlgorithm, checksum};
    b64(&match algorithm {
        ChecksumAlgorithm::Crc32 => (checksum(CrcAlgorithm::Crc32IsoHdlc, data) as u32)
            .to_be_bytes()
            .to_vec(),
        ChecksumAlgorithm::Crc32C => (checksum(CrcAlgorithm::Crc32Iscsi, data) as u32)
            .to_be_bytes()
            .to_vec(),
        ChecksumAlgorithm::Crc64Nvme => checksum(CrcAlgorithm::Crc64Nvme, data)
            .to_be_bytes()
            .to_vec(),
        ChecksumAlgorithm::Sha1 => sha1::Sha1::digest(data).to_vec(),
        ChecksumAlgorithm::Sha256 => sha2::Sha256::digest(data).to_vec(),
        other => panic!("no such algorithm here: {other:?}"),
    })
}

/// The one checksum value of any output with the five `checksum_*` accessors.
macro_rules! value_of {
    ($out:expr) => {
        $out.checksum_crc32()
            .or($out.checksum_crc32_c())
            .or($out.checksum_crc64_nvme())
            .or($out.checksum_sha1())
            .or($out.checksum_sha256())
            .map(str::to_owned)
    };
}

#[test]
fn every_algorithm_is_checked_on_upload_kept_and_returned_in_checksum_mode() {
    let server = S3Server::reseal_serve();
    let c = client_with_sdk_checksums(&server.endpoint);
    let rt = rt();
    let put = |key: &str| c.put_object().bucket("sums").key(key);
    let head = |key: &str| c.head_object().bucket("sums").key(key);
    let get = |key: &str| c.get_object().bucket("sums").key(key);
    rt.block_on(async {
        c.create_bucket().bucket("sums").send().await.unwrap();
        let data = body(300_000, 3);
        for algorithm in [
            ChecksumAlgorithm::Crc32,
            ChecksumAlgorithm::Crc32C,
            ChecksumAlgorithm::Crc64Nvme,
            ChecksumAlgorithm::Sha1,
            ChecksumAlgorithm::Sha256,
        ] {
            let key = format!("o-{}", algorithm.as_str());
            let want = Some(sum(&algorithm, &data));
            let written = put(&key)
                .checksum_algorithm(algorithm.clone())
                .body(ByteStream::from(data.clone()))
                .send()
                .await
                .unwrap();
            assert_eq!(value_of!(written), want, "{algorithm:?}");
            assert_eq!(written.checksum_type(), Some(&ChecksumType::FullObject));
            let plain = head(&key).send().await.unwrap();
            assert_eq!(value_of!(plain), None, "only in checksum mode");
            let h = head(&key)
                .checksum_mode(ChecksumMode::Enabled)
                .send()
                .await
                .unwrap();
            assert_eq!(value_of!(h), want, "{algorithm:?}");
            assert_eq!(h.checksum_type(), Some(&ChecksumType::FullObject));
            let g = get(&key)
                .checksum_mode(ChecksumMode::Enabled)
                .send()
                .await
                .unwrap();
            assert_eq!(value_of!(g), want, "{algorithm:?}");
            assert_eq!(g.body.collect().await.unwrap().into_bytes(), data);
            let ranged = get(&key)
                .range("bytes=0-9")
                .checksum_mode(ChecksumMode::Enabled)
                .send()
                .await
                .unwrap();
            assert_eq!(value_of!(ranged), None, "a range has no checksum");
        }

        // A value given in a header is checked: a wrong one writes nothing.
        put("given")
            .checksum_sha256(sum(&ChecksumAlgorithm::Sha256, &data))
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        let wrong = put("wrong")
            .checksum_crc32(sum(&ChecksumAlgorithm::Crc32, b"other"))
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .expect_err("a wrong CRC32 is refused");
        assert_eq!(wrong.code(), Some("BadDigest"));
        assert_eq!(
            wrong.message(),
            Some("The CRC32 you specified did not match the calculated checksum.")
        );
        assert_refused!(head("wrong").send().await, 404);
        assert_refused!(
            put("two")
                .checksum_crc32(sum(&ChecksumAlgorithm::Crc32, &data))
                .checksum_sha1(sum(&ChecksumAlgorithm::Sha1, &data))
                .body(ByteStream::from(data.clone()))
                .send()
                .await,
            "InvalidRequest",
            400
        );
        assert_refused!(head("two").send().await, 404);

        // Copies: a new object keeps the source's algorithm unless the request names
        // another; a copy onto itself may change only the algorithm.
        let copied = c
            .copy_object()
            .bucket("sums")
            .key("copy")
            .copy_source("sums/o-SHA1")
            .send()
            .await
            .unwrap();
        let result = copied.copy_object_result().unwrap();
        assert_eq!(
            result.checksum_sha1(),
            Some(sum(&ChecksumAlgorithm::Sha1, &data).as_str())
        );
        let recoded = c
            .copy_object()
            .bucket("sums")
            .key("copy")
            .copy_source("sums/copy")
            .checksum_algorithm(ChecksumAlgorithm::Crc32C)
            .send()
            .await
            .unwrap();
        assert_eq!(
            recoded.copy_object_result().unwrap().checksum_crc32_c(),
            Some(sum(&ChecksumAlgorithm::Crc32C, &data).as_str())
        );
        let h = head("copy")
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        assert_eq!(value_of!(h), Some(sum(&ChecksumAlgorithm::Crc32C, &data)));
        assert_refused!(
            c.copy_object()
                .bucket("sums")
                .key("copy")
                .copy_source("sums/copy")
                .checksum_algorithm(ChecksumAlgorithm::Crc32C)
                .send()
                .await,
            "InvalidRequest",
            400
        );
    });
}

#[test]
fn multipart_checksums_are_per_part_and_composite_or_full_object_and_survive_reencryption() {
    let server = S3Server::reseal_serve();
    let c = client_with_sdk_checksums(&server.endpoint);
    let rt = rt();
    let k = Ssec::new(&[7; 32]);
    let sha = ChecksumAlgorithm::Sha256;
    rt.block_on(async {
        c.create_bucket().bucket("mpu-sums").send().await.unwrap();
        let parts = [body(5 * MIB, 1), body(1000, 2)];
        let whole = parts.concat();

        // Composite SHA-256: each part's checksum, and one of their concatenation, -2.
        let created = c
            .create_multipart_upload()
            .bucket("mpu-sums")
            .key("composite")
            .checksum_algorithm(sha.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(created.checksum_type(), Some(&ChecksumType::Composite));
        let id = created.upload_id().unwrap();
        let mut completed = Vec::new();
        for (i, data) in parts.iter().enumerate() {
            let n = i as i32 + 1;
            let out = c
                .upload_part()
                .bucket("mpu-sums")
                .key("composite")
                .upload_id(id)
                .part_number(n)
                .checksum_algorithm(sha.clone())
                .body(ByteStream::from(data.clone()))
                .send()
                .await
                .unwrap();
            assert_eq!(out.checksum_sha256(), Some(sum(&sha, data).as_str()));
            completed.push(
                CompletedPart::builder()
                    .part_number(n)
                    .e_tag(out.e_tag().unwrap())
                    .checksum_sha256(out.checksum_sha256().unwrap())
                    .build(),
            );
        }
        let listed = c
            .list_parts()
            .bucket("mpu-sums")
            .key("composite")
            .upload_id(id)
            .send()
            .await
            .unwrap();
        assert_eq!(listed.checksum_algorithm(), Some(&sha));
        let listed: Vec<_> = listed
            .parts()
            .iter()
            .map(|p| p.checksum_sha256().map(str::to_owned))
            .collect();
        assert_eq!(
            listed,
            parts.iter().map(|d| Some(sum(&sha, d))).collect::<Vec<_>>()
        );
        let complete = |parts: Vec<CompletedPart>| {
            c.complete_multipart_upload()
                .bucket("mpu-sums")
                .key("composite")
                .upload_id(id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
        };
        let bare: Vec<_> = completed
            .iter()
            .map(|p| {
                CompletedPart::builder()
                    .part_number(p.part_number().unwrap())
                    .e_tag(p.e_tag().unwrap())
                    .build()
            })
            .collect();
        assert_refused!(complete(bare).send().await, "InvalidRequest", 400);
        let done = complete(completed).send().await.unwrap();
        let raw: Vec<u8> = parts
            .iter()
            .flat_map(|d| sha2::Sha256::digest(d).to_vec())
            .collect();
        let composite = format!("{}-2", b64(&sha2::Sha256::digest(&raw)));
        assert_eq!(done.checksum_sha256(), Some(composite.as_str()));
        assert_eq!(done.checksum_type(), Some(&ChecksumType::Composite));
        let g = c
            .get_object()
            .bucket("mpu-sums")
            .key("composite")
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        assert_eq!(g.checksum_sha256(), Some(composite.as_str()));
        assert_eq!(g.body.collect().await.unwrap().into_bytes(), whole);
        let part2 = c
            .get_object()
            .bucket("mpu-sums")
            .key("composite")
            .part_number(2)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        assert_eq!(part2.checksum_sha256(), Some(sum(&sha, &parts[1]).as_str()));

        // GetObjectAttributes, the parts paged.
        let attributes = |marker: Option<i32>| {
            c.get_object_attributes()
                .bucket("mpu-sums")
                .key("composite")
                .object_attributes(ObjectAttributes::Etag)
                .object_attributes(ObjectAttributes::Checksum)
                .object_attributes(ObjectAttributes::ObjectParts)
                .object_attributes(ObjectAttributes::ObjectSize)
                .object_attributes(ObjectAttributes::StorageClass)
                .max_parts(1)
                .set_part_number_marker(marker.map(|m| m.to_string()))
        };
        let a = attributes(None).send().await.unwrap();
        assert_eq!(a.object_size(), Some(whole.len() as i64));
        assert_eq!(
            a.e_tag().map(|t| t.trim_matches('"')),
            Some(done.e_tag().unwrap().trim_matches('"'))
        );
        assert_eq!(a.storage_class().map(|s| s.as_str()), Some("STANDARD"));
        let checksum = a.checksum().unwrap();
        assert_eq!(checksum.checksum_sha256(), Some(composite.as_str()));
        assert_eq!(checksum.checksum_type(), Some(&ChecksumType::Composite));
        let p = a.object_parts().unwrap();
        assert_eq!(p.total_parts_count(), Some(2));
        assert_eq!(p.is_truncated(), Some(true));
        assert_eq!(p.next_part_number_marker(), Some("1"));
        assert_eq!(p.parts().len(), 1);
        assert_eq!(p.parts()[0].size(), Some(5 * MIB as i64));
        assert_eq!(
            p.parts()[0].checksum_sha256(),
            Some(sum(&sha, &parts[0]).as_str())
        );
        let a = attributes(Some(1)).send().await.unwrap();
        let p = a.object_parts().unwrap();
        assert_eq!(p.is_truncated(), Some(false));
        assert_eq!(p.parts()[0].part_number(), Some(2));

        // Re-encrypted in place (SSE-S3 to SSE-C): the checksum and its parts stay; the
        // attributes of an SSE-C object need its key, as HEAD does.
        c.copy_object()
            .bucket("mpu-sums")
            .key("composite")
            .copy_source("mpu-sums/composite")
            .sse_c(&k)
            .send()
            .await
            .unwrap();
        assert_refused!(attributes(None).send().await, "InvalidRequest", 400);
        let a = attributes(None).sse_c(&k).send().await.unwrap();
        assert_eq!(
            a.checksum().unwrap().checksum_sha256(),
            Some(composite.as_str())
        );
        assert_eq!(a.object_parts().unwrap().total_parts_count(), Some(2));
        let h = c
            .head_object()
            .bucket("mpu-sums")
            .key("composite")
            .checksum_mode(ChecksumMode::Enabled)
            .sse_c(&k)
            .send()
            .await
            .unwrap();
        assert_eq!(h.checksum_sha256(), Some(composite.as_str()));
        // A copy to a new object is one part: its checksum is of the whole.
        let copied = c
            .copy_object()
            .bucket("mpu-sums")
            .key("copy")
            .copy_source("mpu-sums/composite")
            .source_sse_c(&k)
            .send()
            .await
            .unwrap();
        let result = copied.copy_object_result().unwrap();
        assert_eq!(result.checksum_sha256(), Some(sum(&sha, &whole).as_str()));
        assert_eq!(result.checksum_type(), Some(&ChecksumType::FullObject));

        // Full-object CRC64NVME: the CRC of the whole object, combined from the parts'.
        let crc = ChecksumAlgorithm::Crc64Nvme;
        let created = c
            .create_multipart_upload()
            .bucket("mpu-sums")
            .key("full")
            .checksum_algorithm(crc.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(created.checksum_type(), Some(&ChecksumType::FullObject));
        let id = created.upload_id().unwrap();
        let mut completed = Vec::new();
        for (i, data) in parts.iter().enumerate() {
            let out = c
                .upload_part()
                .bucket("mpu-sums")
                .key("full")
                .upload_id(id)
                .part_number(i as i32 + 1)
                .checksum_algorithm(crc.clone())
                .body(ByteStream::from(data.clone()))
                .send()
                .await
                .unwrap();
            completed.push(
                CompletedPart::builder()
                    .part_number(i as i32 + 1)
                    .e_tag(out.e_tag().unwrap())
                    .build(),
            );
        }
        let done = c
            .complete_multipart_upload()
            .bucket("mpu-sums")
            .key("full")
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(done.checksum_crc64_nvme(), Some(sum(&crc, &whole).as_str()));
        assert_eq!(done.checksum_type(), Some(&ChecksumType::FullObject));

        // CRC64NVME has no composite checksums; SHA-256 no full-object ones.
        assert_refused!(
            c.create_multipart_upload()
                .bucket("mpu-sums")
                .key("no")
                .checksum_algorithm(ChecksumAlgorithm::Sha256)
                .checksum_type(ChecksumType::FullObject)
                .send()
                .await,
            "InvalidRequest",
            400
        );
    });
}

#[test]
fn the_aws_cli_stores_checks_and_reads_checksums() {
    let server = S3Server::reseal_serve();
    let ep = &server.endpoint;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data");
    let data = body(100_000, 5);
    std::fs::write(&file, &data).unwrap();
    let file = file.to_str().unwrap();
    aws_ok(ep, &["s3api", "create-bucket", "--bucket", "cli"]);
    let put = aws_ok(
        ep,
        &[
            "s3api",
            "put-object",
            "--bucket",
            "cli",
            "--key",
            "o",
            "--body",
            file,
            "--checksum-algorithm",
            "SHA256",
        ],
    );
    let sha = sum(&ChecksumAlgorithm::Sha256, &data);
    let put: serde_json::Value = serde_json::from_str(&put).unwrap();
    assert_eq!(put["ChecksumSHA256"], sha.as_str(), "{put}");
    let head = aws_ok(
        ep,
        &[
            "s3api",
            "head-object",
            "--bucket",
            "cli",
            "--key",
            "o",
            "--checksum-mode",
            "ENABLED",
        ],
    );
    let head: serde_json::Value = serde_json::from_str(&head).unwrap();
    assert_eq!(head["ChecksumSHA256"], sha.as_str(), "{head}");
    assert_eq!(head["ChecksumType"], "FULL_OBJECT", "{head}");
    let attributes = aws_ok(
        ep,
        &[
            "s3api",
            "get-object-attributes",
            "--bucket",
            "cli",
            "--key",
            "o",
            "--object-attributes",
            "ETag",
            "Checksum",
            "ObjectParts",
            "ObjectSize",
        ],
    );
    let attributes: serde_json::Value = serde_json::from_str(&attributes).unwrap();
    assert_eq!(
        attributes["Checksum"]["ChecksumSHA256"],
        sha.as_str(),
        "{attributes}"
    );
    assert_eq!(attributes["ObjectSize"], data.len(), "{attributes}");
    assert_eq!(
        attributes["ETag"].as_str().map(|t| t.trim_matches('"')),
        Some(common::md5_hex(&data).as_str()),
        "{attributes}"
    );
    assert!(attributes.get("ObjectParts").is_none(), "{attributes}");
    let wrong = aws(
        ep,
        &[
            "s3api",
            "put-object",
            "--bucket",
            "cli",
            "--key",
            "wrong",
            "--body",
            file,
            "--checksum-crc32",
            "AAAAAA==",
        ],
    );
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("BadDigest"), "{stderr}");
    let missing = aws(
        ep,
        &["s3api", "head-object", "--bucket", "cli", "--key", "wrong"],
    );
    assert!(!missing.status.success(), "nothing was written");
}

/// Over TLS the AWS CLI sends an upload's checksum as a trailer after an aws-chunked body:
/// it is checked once the body is read, and kept.
#[test]
fn a_checksum_in_a_trailer_is_checked_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (server, cert) = tls_server(dir.path(), "127.0.0.1");
    let ca = [("AWS_CA_BUNDLE", cert.to_str().unwrap())];
    let cli = |args: &[&str]| aws_with(&server.endpoint, &ca, args);
    let file = dir.path().join("f");
    let data = body(200_000, 8);
    std::fs::write(&file, &data).unwrap();
    let file = file.to_str().unwrap();
    assert!(
        cli(&["s3api", "create-bucket", "--bucket", "tls"])
            .status
            .success()
    );
    let object = ["--bucket", "tls", "--key", "f"];
    let put = cli(&[
        &["s3api", "put-object"][..],
        &object,
        &["--body", file, "--checksum-algorithm", "SHA1"],
    ]
    .concat());
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let head = cli(&[
        &["s3api", "head-object"][..],
        &object,
        &["--checksum-mode", "ENABLED"],
    ]
    .concat());
    let head: serde_json::Value = serde_json::from_slice(&head.stdout).unwrap();
    assert_eq!(
        head["ChecksumSHA1"],
        sum(&ChecksumAlgorithm::Sha1, &data).as_str(),
        "{head}"
    );
}
