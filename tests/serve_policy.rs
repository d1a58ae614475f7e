//! Keeping a bucket's new writes encrypted on `reseal serve`: bucket policies (the subset
//! of S3's language for encryption, enforced on every write S3 authorises as
//! s3:PutObject) and `BlockedEncryptionTypes` (SSE-C writes refused as S3 refuses them),
//! through the Rust SDK, the AWS CLI, and reseal's own S3 target.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BlockedEncryptionTypes, CompletedMultipartUpload, CompletedPart, EncryptionType,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
    ServerSideEncryptionRule,
};
use common::Env;
use common::s3::{REGION, S3Server, Ssec, WithSsec, rt};
use common::s3_fixture::{Fixture, report_rows, run_listing};
use common::serve::{assert_refused, aws, aws_ok, aws_with, tls_server};

fn statement(condition: &str) -> String {
    format!(
        r#"{{"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::pol/*", "Condition": {condition}}}"#
    )
}

fn policy(statements: &[String]) -> String {
    format!(
        r#"{{"Version": "2012-10-17", "Statement": [{}]}}"#,
        statements.join(",")
    )
}

#[test]
fn policies_deny_writes_by_their_encryption_headers_and_keep_the_rest() {
    let server = S3Server::reseal_serve();
    let key = server.kms_key();
    let arn = format!("arn:aws:kms:{REGION}:000000000000:key/{key}");
    let c = server.client();
    let rt = rt();
    rt.block_on(async {
        c.create_bucket().bucket("pol").send().await.unwrap();
        let put = |k: &str| {
            c.put_object()
                .bucket("pol")
                .key(k)
                .body(ByteStream::from_static(b"bytes"))
        };
        let set = |text: String| c.put_bucket_policy().bucket("pol").policy(text).send();
        let exists = |k: &'static str| {
            let c = c.clone();
            async move { c.head_object().bucket("pol").key(k).send().await.is_ok() }
        };
        // No policy yet.
        assert_refused!(
            c.get_bucket_policy().bucket("pol").send().await,
            "NoSuchBucketPolicy",
            404
        );

        // Deny uploads without x-amz-server-side-encryption: the bucket default (SSE-S3)
        // does not count, the header does.
        let deny_unencrypted =
            policy(&[statement(r#"{"Null": {"s3:x-amz-server-side-encryption": "true"}}"#)]);
        set(deny_unencrypted.clone()).await.unwrap();
        let got = c.get_bucket_policy().bucket("pol").send().await.unwrap();
        assert_eq!(got.policy(), Some(deny_unencrypted.as_str()));
        assert_refused!(put("bare").send().await, "AccessDenied", 403);
        assert!(!exists("bare").await, "nothing written");
        put("aes")
            .server_side_encryption(ServerSideEncryption::Aes256)
            .send()
            .await
            .unwrap();
        // A copy is checked by its destination's headers.
        let copy = |to: &str| {
            c.copy_object()
                .bucket("pol")
                .key(to)
                .copy_source("pol/aes")
        };
        assert_refused!(copy("copy-bare").send().await, "AccessDenied", 403);
        assert!(!exists("copy-bare").await);
        copy("copy-kms")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .send()
            .await
            .unwrap();
        // A multipart upload is checked when it is created; its parts and completion
        // carry no encryption headers and pass.
        assert_refused!(
            c.create_multipart_upload()
                .bucket("pol")
                .key("mp-bare")
                .send()
                .await,
            "AccessDenied",
            403
        );
        let upload = c
            .create_multipart_upload()
            .bucket("pol")
            .key("mp")
            .server_side_encryption(ServerSideEncryption::Aes256)
            .send()
            .await
            .unwrap();
        let id = upload.upload_id().unwrap();
        let part = c
            .upload_part()
            .bucket("pol")
            .key("mp")
            .upload_id(id)
            .part_number(1)
            .body(ByteStream::from_static(b"one part"))
            .send()
            .await
            .unwrap();
        c.complete_multipart_upload()
            .bucket("pol")
            .key("mp")
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .parts(
                        CompletedPart::builder()
                            .part_number(1)
                            .e_tag(part.e_tag().unwrap())
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
        assert!(exists("mp").await);

        // A particular KMS key, and nothing but aws:kms.
        set(policy(&[
            statement(r#"{"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}}"#),
            statement(&format!(
                r#"{{"StringNotEquals": {{"s3:x-amz-server-side-encryption-aws-kms-key-id": "{arn}"}}}}"#
            )),
        ]))
        .await
        .unwrap();
        let kms = |k: &str| put(k).server_side_encryption(ServerSideEncryption::AwsKms);
        assert_refused!(kms("default-key").send().await, "AccessDenied", 403);
        assert_refused!(
            kms("other-key").ssekms_key_id("alias/aws/s3").send().await,
            "AccessDenied",
            403
        );
        assert_refused!(
            put("aes2")
                .server_side_encryption(ServerSideEncryption::Aes256)
                .send()
                .await,
            "AccessDenied",
            403
        );
        kms("the-key").ssekms_key_id(&arn).send().await.unwrap();

        // StringNotEquals on the SSE-C algorithm: only SSE-C writes pass.
        set(policy(&[statement(
            r#"{"StringNotEquals": {"s3:x-amz-server-side-encryption-customer-algorithm": "AES256"}}"#,
        )]))
        .await
        .unwrap();
        let k = Ssec::new(&[5; 32]);
        assert_refused!(
            put("no-c")
                .server_side_encryption(ServerSideEncryption::Aes256)
                .send()
                .await,
            "AccessDenied",
            403
        );
        put("c").sse_c(&k).send().await.unwrap();

        // Anything outside the subset is refused whole, naming it; the policy in force
        // stays.
        let in_force = c.get_bucket_policy().bucket("pol").send().await.unwrap();
        for (text, named) in [
            (
                policy(&[statement(r#"{"StringLike": {"s3:x-amz-server-side-encryption": "aws:*"}}"#)]),
                "StringLike",
            ),
            (
                policy(&[r#"{"Effect": "Deny", "Principal": "*", "NotAction": "s3:GetObject", "Resource": "arn:aws:s3:::pol/*"}"#.to_owned()]),
                "NotAction",
            ),
            (
                policy(&[statement(r#"{"Null": {"s3:x-amz-server-side-encryption": "true"}}"#)
                    .replace("pol/*", "other/*")]),
                "arn:aws:s3:::other/*",
            ),
        ] {
            use aws_sdk_s3::error::ProvideErrorMetadata as _;
            let e = set(text).await.expect_err("refused");
            assert_eq!(e.code(), Some("MalformedPolicy"));
            assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(400));
            assert!(e.message().unwrap_or_default().contains(named), "{named}: {:?}", e.message());
        }
        let after = c.get_bucket_policy().bucket("pol").send().await.unwrap();
        assert_eq!(after.policy(), in_force.policy());
        assert_refused!(
            put("still-denied")
                .server_side_encryption(ServerSideEncryption::Aes256)
                .send()
                .await,
            "AccessDenied",
            403
        );

        // Deleted: 204, then none, and writes pass again.
        let deleted = c.delete_bucket_policy().bucket("pol").send().await;
        assert!(deleted.is_ok());
        assert_refused!(
            c.get_bucket_policy().bucket("pol").send().await,
            "NoSuchBucketPolicy",
            404
        );
        put("free").send().await.unwrap();

        // aws:SecureTransport over plain HTTP: denied.
        set(policy(&[statement(r#"{"Bool": {"aws:SecureTransport": "false"}}"#)]))
            .await
            .unwrap();
        assert_refused!(
            put("http")
                .server_side_encryption(ServerSideEncryption::Aes256)
                .send()
                .await,
            "AccessDenied",
            403
        );
        // Reads are not what the policy is about.
        c.get_object().bucket("pol").key("free").send().await.unwrap();
    });
}

#[test]
fn a_bucket_that_blocks_sse_c_refuses_sse_c_writes_as_s3_does() {
    let server = S3Server::reseal_serve();
    let c = server.client();
    let rt = rt();
    let k = Ssec::new(&[9; 32]);
    rt.block_on(async {
        c.create_bucket().bucket("blk").send().await.unwrap();
        let put = |key: &str| {
            c.put_object()
                .bucket("blk")
                .key(key)
                .body(ByteStream::from_static(b"bytes"))
        };
        put("old").sse_c(&k).send().await.unwrap();
        put("plain").send().await.unwrap();
        let configure = |blocked: EncryptionType| {
            c.put_bucket_encryption()
                .bucket("blk")
                .server_side_encryption_configuration(
                    ServerSideEncryptionConfiguration::builder()
                        .rules(
                            ServerSideEncryptionRule::builder()
                                .apply_server_side_encryption_by_default(
                                    ServerSideEncryptionByDefault::builder()
                                        .sse_algorithm(ServerSideEncryption::AwsKms)
                                        .build()
                                        .unwrap(),
                                )
                                .blocked_encryption_types(
                                    BlockedEncryptionTypes::builder()
                                        .encryption_type(blocked)
                                        .build(),
                                )
                                .build(),
                        )
                        .build()
                        .unwrap(),
                )
                .send()
        };
        let blocks = || async {
            let got = c
                .get_bucket_encryption()
                .bucket("blk")
                .send()
                .await
                .unwrap();
            let rule = &got.server_side_encryption_configuration().unwrap().rules()[0];
            rule.blocked_encryption_types()
                .is_some_and(|b| b.encryption_type().contains(&EncryptionType::SseC))
        };
        assert!(!blocks().await);
        configure(EncryptionType::SseC).await.unwrap();
        assert!(blocks().await);

        // Every way of writing SSE-C: 403 AccessDenied, nothing written.
        assert_refused!(put("new").sse_c(&k).send().await, "AccessDenied", 403);
        assert_refused!(
            c.copy_object()
                .bucket("blk")
                .key("copy")
                .copy_source("blk/plain")
                .sse_c(&k)
                .send()
                .await,
            "AccessDenied",
            403
        );
        assert_refused!(
            c.create_multipart_upload()
                .bucket("blk")
                .key("mp")
                .sse_c(&k)
                .send()
                .await,
            "AccessDenied",
            403
        );
        for key in ["new", "copy"] {
            assert_refused!(c.head_object().bucket("blk").key(key).send().await, 404);
        }
        // The default set with the block holds and other writes go on under it; SSE-C
        // objects there stay readable.
        let out = put("kms").send().await.unwrap();
        assert_eq!(
            out.server_side_encryption(),
            Some(&ServerSideEncryption::AwsKms)
        );
        c.get_object()
            .bucket("blk")
            .key("old")
            .sse_c(&k)
            .send()
            .await
            .unwrap();
        // NONE lets SSE-C in again.
        configure(EncryptionType::None).await.unwrap();
        assert!(!blocks().await);
        put("new").sse_c(&k).send().await.unwrap();
    });
}

/// The S3 target's explanation of a blocked SSE-C write, from a real answer: serve
/// refuses as S3 does, and GetBucketEncryption says the bucket blocks SSE-C.
#[test]
fn the_s3_target_explains_an_sse_c_write_to_a_bucket_that_blocks_it() {
    let f = Fixture::new(S3Server::reseal_serve());
    let env = Env::new();
    let key_file = env.write("new.key", &[4u8; 32]);
    f.bucket("blocked");
    f.put(
        "blocked",
        "o",
        b"bytes",
        common::s3_fixture::Mode::SseS3,
        "",
    );
    aws_ok(
        &f.server.endpoint,
        &[
            "s3api",
            "put-bucket-encryption",
            "--bucket",
            "blocked",
            "--server-side-encryption-configuration",
            r#"{"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                "BlockedEncryptionTypes": {"EncryptionType": ["SSE-C"]}}]}"#,
        ],
    );
    let report = env.path("report");
    let sse = format!("sse-c:@{}", key_file.display());
    let run = f.reseal(
        &env,
        &run_listing(
            "s3://blocked",
            &sse,
            &["--report", report.to_str().unwrap()],
        ),
    );
    run.exits(1);
    let rows = report_rows(&report);
    let row = rows.iter().find(|r| r[1] == "o").expect("the object's row");
    assert_eq!(row[3], "failed", "{row:?}");
    assert!(
        row.join(" ").contains("blocked blocks SSE-C"),
        "the explanation: {row:?}"
    );
}

/// The AWS CLI: put, get and delete a policy; `s3 cp` refused without `--sse` and
/// accepted with it; an unsupported policy refused; and aws:SecureTransport over TLS.
#[test]
fn the_aws_cli_sets_policies_and_is_held_to_them() {
    let server = S3Server::reseal_serve();
    let endpoint = server.endpoint.as_str();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, b"cli bytes").unwrap();
    let file = file.to_str().unwrap();
    aws_ok(endpoint, &["s3", "mb", "s3://pol"]);
    let deny = policy(&[statement(
        r#"{"Null": {"s3:x-amz-server-side-encryption": "true"}}"#,
    )]);
    aws_ok(
        endpoint,
        &[
            "s3api",
            "put-bucket-policy",
            "--bucket",
            "pol",
            "--policy",
            &deny,
        ],
    );
    let got: serde_json::Value = serde_json::from_str(&aws_ok(
        endpoint,
        &["s3api", "get-bucket-policy", "--bucket", "pol"],
    ))
    .unwrap();
    assert_eq!(got["Policy"].as_str(), Some(deny.as_str()));
    let refused = aws(endpoint, &["s3", "cp", file, "s3://pol/bare"]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("AccessDenied"), "{said}");
    aws_ok(
        endpoint,
        &["s3", "cp", file, "s3://pol/sse", "--sse", "AES256"],
    );

    let unsupported = policy(&[statement(
        r#"{"Bool": {"aws:MultiFactorAuthPresent": "true"}}"#,
    )]);
    let refused = aws(
        endpoint,
        &[
            "s3api",
            "put-bucket-policy",
            "--bucket",
            "pol",
            "--policy",
            &unsupported,
        ],
    );
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("MalformedPolicy") && said.contains("aws:MultiFactorAuthPresent"),
        "{said}"
    );
    let got: serde_json::Value = serde_json::from_str(&aws_ok(
        endpoint,
        &["s3api", "get-bucket-policy", "--bucket", "pol"],
    ))
    .unwrap();
    assert_eq!(got["Policy"].as_str(), Some(deny.as_str()), "kept");
    aws_ok(
        endpoint,
        &["s3api", "delete-bucket-policy", "--bucket", "pol"],
    );
    let none = aws(endpoint, &["s3api", "get-bucket-policy", "--bucket", "pol"]);
    assert!(String::from_utf8_lossy(&none.stderr).contains("NoSuchBucketPolicy"));
    aws_ok(endpoint, &["s3", "cp", file, "s3://pol/bare"]);
    drop(server);

    // Over TLS, a policy that denies insecure transport lets writes in.
    let (server, cert) = tls_server(dir.path(), "127.0.0.1");
    let ca = [("AWS_CA_BUNDLE", cert.to_str().unwrap())];
    let cli = |args: &[&str]| {
        let out = aws_with(&server.endpoint, &ca, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    cli(&["s3", "mb", "s3://pol"]);
    let secure = policy(&[statement(r#"{"Bool": {"aws:SecureTransport": "false"}}"#)]);
    cli(&[
        "s3api",
        "put-bucket-policy",
        "--bucket",
        "pol",
        "--policy",
        &secure,
    ]);
    cli(&["s3", "cp", file, "s3://pol/over-tls"]);
}
