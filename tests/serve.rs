//! `reseal serve` itself, through real clients: the Rust SDK, the AWS CLI (from `.venv`),
//! rclone and curl, against the real binary on loopback (and once off loopback, to see
//! SSE-C refused over plain HTTP). tests/run.sh installs the clients; a test whose client
//! or server is missing fails.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, Delete, MetadataDirective, ObjectIdentifier,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
    ServerSideEncryptionRule, Tag, Tagging,
};
use base64::Engine as _;
use common::s3::{ACCESS_KEY, REGION, S3Server, SECRET_KEY, aws_env, client_for, rt};
use md5::{Digest, Md5};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An SSE-C key as its three headers want it.
struct Ssec {
    key: String,
    md5: String,
}

fn ssec(byte: u8) -> Ssec {
    let key = [byte; 32];
    Ssec {
        key: b64(&key),
        md5: b64(&Md5::digest(key)),
    }
}

/// The code and HTTP status of a failed SDK call.
macro_rules! refused {
    ($call:expr) => {{
        let e = $call.expect_err("the request is refused");
        let status = e.raw_response().map_or(0, |r| r.status().as_u16());
        (e.code().unwrap_or_default().to_owned(), status)
    }};
}

/// Where the store keeps an object's metadata.
fn meta_path(server: &S3Server, bucket: &str, key: &str) -> PathBuf {
    let hash = sha256_hex(key.as_bytes());
    server
        .reseal
        .as_ref()
        .unwrap()
        .dir
        .join("buckets")
        .join(bucket)
        .join("objects")
        .join(&hash[..2])
        .join(format!("{hash}.meta"))
}

/// An object's metadata as the store keeps it (JSON between a magic and an HMAC).
fn stored_meta(server: &S3Server, bucket: &str, key: &str) -> serde_json::Value {
    let bytes = std::fs::read(meta_path(server, bucket, key)).unwrap();
    serde_json::from_slice(&bytes[8..bytes.len() - 32]).unwrap()
}

fn body(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

#[test]
fn objects_ranges_conditions_listing_copies_tags_and_deletes() {
    let server = S3Server::reseal_serve();
    let c = server.client();
    let rt = rt();
    rt.block_on(async {
        c.create_bucket().bucket("objs").send().await.unwrap();
        let (code, st) = refused!(c.create_bucket().bucket("objs").send().await);
        assert_eq!((code.as_str(), st), ("BucketAlreadyOwnedByYou", 409));
        let data = body(300_000, 1);
        let put = c
            .put_object()
            .bucket("objs")
            .key("dir/one")
            .body(ByteStream::from(data.clone()))
            .content_type("text/x-one")
            .metadata("owner", "ops")
            .tagging("team=blue&x=a%20b")
            .send()
            .await
            .unwrap();
        let etag = put.e_tag().unwrap().to_owned();
        assert_eq!(etag, format!("\"{}\"", common::md5_hex(&data)));
        assert_eq!(
            put.server_side_encryption(),
            Some(&ServerSideEncryption::Aes256),
            "SSE-S3 by default"
        );
        let get = |range: Option<&str>| {
            let mut req = c.get_object().bucket("objs").key("dir/one");
            if let Some(r) = range {
                req = req.range(r);
            }
            req.send()
        };
        for (range, want) in [
            ("bytes=0-9", 0..10),
            ("bytes=262140-262150", 262_140..262_151),
            ("bytes=299990-", 299_990..300_000),
            ("bytes=-5", 299_995..300_000),
            ("bytes=100-999999", 100..300_000),
        ] {
            let out = get(Some(range)).await.unwrap();
            assert_eq!(
                out.content_range(),
                Some(format!("bytes {}-{}/300000", want.start, want.end - 1).as_str())
            );
            let got = out.body.collect().await.unwrap().into_bytes();
            assert_eq!(&got[..], &data[want], "{range}");
        }
        let (code, st) = refused!(get(Some("bytes=300000-")).await);
        assert_eq!((code.as_str(), st), ("InvalidRange", 416));
        let whole = get(None).await.unwrap();
        assert_eq!(whole.content_type(), Some("text/x-one"));
        assert_eq!(whole.tag_count(), Some(2));
        assert_eq!(
            whole.metadata().unwrap().get("owner").map(String::as_str),
            Some("ops")
        );
        assert_eq!(whole.body.collect().await.unwrap().into_bytes(), data);

        // Conditional reads.
        let (_, st) = refused!(
            c.get_object()
                .bucket("objs")
                .key("dir/one")
                .if_none_match(&etag)
                .send()
                .await
        );
        assert_eq!(st, 304);
        let (code, st) = refused!(
            c.get_object()
                .bucket("objs")
                .key("dir/one")
                .if_match("\"0000\"")
                .send()
                .await
        );
        assert_eq!((code.as_str(), st), ("PreconditionFailed", 412));
        let (_, st) = refused!(
            c.head_object()
                .bucket("objs")
                .key("dir/one")
                .if_match("\"0000\"")
                .send()
                .await
        );
        assert_eq!(st, 412);
        c.get_object()
            .bucket("objs")
            .key("dir/one")
            .if_match(&etag)
            .send()
            .await
            .unwrap();
        // Conditional writes: If-None-Match: * refuses to overwrite.
        let (code, st) = refused!(
            c.put_object()
                .bucket("objs")
                .key("dir/one")
                .if_none_match("*")
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
        );
        assert_eq!((code.as_str(), st), ("PreconditionFailed", 412));
        let (code, st) = refused!(
            c.put_object()
                .bucket("objs")
                .key("bad-md5")
                .content_md5(b64(&[0u8; 16]))
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
        );
        assert_eq!((code.as_str(), st), ("BadDigest", 400));

        // Listing: prefix, delimiter, pages.
        for k in ["dir/two", "dir/sub/a", "dir/sub/b", "top", "zz/1"] {
            c.put_object()
                .bucket("objs")
                .key(k)
                .body(ByteStream::from_static(b"k"))
                .send()
                .await
                .unwrap();
        }
        let out = c
            .list_objects_v2()
            .bucket("objs")
            .delimiter("/")
            .send()
            .await
            .unwrap();
        let keys: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
        let prefixes: Vec<&str> = out
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix())
            .collect();
        assert_eq!((keys, prefixes), (vec!["top"], vec!["dir/", "zz/"]));
        let out = c
            .list_objects_v2()
            .bucket("objs")
            .prefix("dir/")
            .delimiter("/")
            .send()
            .await
            .unwrap();
        let keys: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
        assert_eq!(keys, vec!["dir/one", "dir/two"]);
        assert_eq!(out.common_prefixes()[0].prefix(), Some("dir/sub/"));
        let mut all = Vec::new();
        let mut token = None;
        loop {
            let out = c
                .list_objects_v2()
                .bucket("objs")
                .max_keys(2)
                .set_continuation_token(token)
                .send()
                .await
                .unwrap();
            all.extend(out.contents().iter().map(|o| o.key().unwrap().to_owned()));
            token = out.next_continuation_token().map(str::to_owned);
            if !out.is_truncated().unwrap_or(false) {
                break;
            }
        }
        assert_eq!(
            all,
            [
                "dir/one",
                "dir/sub/a",
                "dir/sub/b",
                "dir/two",
                "top",
                "zz/1"
            ]
        );
        // An unversioned bucket's versions: every object, version null.
        let versions = c
            .list_object_versions()
            .bucket("objs")
            .send()
            .await
            .unwrap();
        assert_eq!(versions.versions().len(), 6);
        assert!(
            versions
                .versions()
                .iter()
                .all(|v| v.version_id() == Some("null") && v.is_latest() == Some(true))
        );

        // Copies: to another key (metadata kept), onto itself (something must change).
        let copied = c
            .copy_object()
            .bucket("objs")
            .key("copy")
            .copy_source("objs/dir/one")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .send()
            .await
            .unwrap();
        assert_eq!(
            copied.copy_object_result().unwrap().e_tag(),
            Some(etag.as_str())
        );
        let h = c
            .head_object()
            .bucket("objs")
            .key("copy")
            .send()
            .await
            .unwrap();
        assert_eq!(h.content_type(), Some("text/x-one"));
        assert_eq!(
            h.server_side_encryption(),
            Some(&ServerSideEncryption::AwsKms)
        );
        let (code, st) = refused!(
            c.copy_object()
                .bucket("objs")
                .key("dir/one")
                .copy_source("objs/dir/one")
                .send()
                .await
        );
        assert_eq!((code.as_str(), st), ("InvalidRequest", 400));
        c.copy_object()
            .bucket("objs")
            .key("dir/one")
            .copy_source("objs/dir/one")
            .metadata_directive(MetadataDirective::Replace)
            .content_type("text/x-replaced")
            .send()
            .await
            .unwrap();
        let h = c
            .head_object()
            .bucket("objs")
            .key("dir/one")
            .send()
            .await
            .unwrap();
        assert_eq!(h.content_type(), Some("text/x-replaced"));
        assert!(h.metadata().is_none_or(|m| m.is_empty()));
        let (code, st) = refused!(
            c.copy_object()
                .bucket("objs")
                .key("copy2")
                .copy_source("objs/dir/one")
                .copy_source_if_match("\"0000\"")
                .send()
                .await
        );
        assert_eq!((code.as_str(), st), ("PreconditionFailed", 412));

        // Tags.
        let tags = c
            .get_object_tagging()
            .bucket("objs")
            .key("copy")
            .send()
            .await
            .unwrap();
        let tags: HashMap<&str, &str> = tags
            .tag_set()
            .iter()
            .map(|t| (t.key(), t.value()))
            .collect();
        assert_eq!(tags, HashMap::from([("team", "blue"), ("x", "a b")]));
        c.put_object_tagging()
            .bucket("objs")
            .key("copy")
            .tagging(
                Tagging::builder()
                    .tag_set(Tag::builder().key("k").value("v").build().unwrap())
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let tags = c
            .get_object_tagging()
            .bucket("objs")
            .key("copy")
            .send()
            .await
            .unwrap();
        assert_eq!(tags.tag_set().len(), 1);

        // Deletes, one and many; a bucket with objects is not deleted.
        let (code, st) = refused!(c.delete_bucket().bucket("objs").send().await);
        assert_eq!((code.as_str(), st), ("BucketNotEmpty", 409));
        c.delete_object()
            .bucket("objs")
            .key("copy")
            .send()
            .await
            .unwrap();
        c.delete_object()
            .bucket("objs")
            .key("never-was")
            .send()
            .await
            .unwrap();
        let keys = [
            "dir/one",
            "dir/two",
            "dir/sub/a",
            "dir/sub/b",
            "top",
            "zz/1",
        ];
        let out = c
            .delete_objects()
            .bucket("objs")
            .delete(
                Delete::builder()
                    .set_objects(Some(
                        keys.iter()
                            .map(|k| ObjectIdentifier::builder().key(*k).build().unwrap())
                            .collect(),
                    ))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(out.deleted().len(), keys.len());
        c.delete_bucket().bucket("objs").send().await.unwrap();
        let (code, st) = refused!(c.head_bucket().bucket("objs").send().await);
        assert_eq!((code.as_str(), st), ("NotFound", 404));
        let buckets = c.list_buckets().send().await.unwrap();
        assert!(buckets.buckets().is_empty());
    });
}

#[test]
fn every_sse_mode_bucket_defaults_and_their_errors() {
    let server = S3Server::reseal_serve();
    let key = server.kms_key();
    let other = server.kms_key();
    let c = server.client();
    let rt = rt();
    let arn = |id: &str| format!("arn:aws:kms:{REGION}:000000000000:key/{id}");
    rt.block_on(async {
        c.create_bucket().bucket("enc").send().await.unwrap();
        let put = |k: &'static str| {
            c.put_object()
                .bucket("enc")
                .key(k)
                .body(ByteStream::from_static(b"secret bytes"))
        };
        // Request headers.
        let out = put("kms")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(&key)
            .bucket_key_enabled(true)
            .send()
            .await
            .unwrap();
        assert_eq!(out.ssekms_key_id(), Some(arn(&key).as_str()));
        assert_eq!(out.bucket_key_enabled(), Some(true));
        let out = put("kms-default")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .send()
            .await
            .unwrap();
        let default_arn = out.ssekms_key_id().unwrap().to_owned();
        assert!(default_arn.starts_with(&format!("arn:aws:kms:{REGION}:")));
        let out = put("dsse")
            .server_side_encryption(ServerSideEncryption::AwsKmsDsse)
            .ssekms_key_id(arn(&other))
            .send()
            .await
            .unwrap();
        assert_eq!(
            out.server_side_encryption(),
            Some(&ServerSideEncryption::AwsKmsDsse)
        );
        assert_eq!(out.ssekms_key_id(), Some(arn(&other).as_str()));
        let k = ssec(7);
        let out = put("ssec")
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&k.key)
            .sse_customer_key_md5(&k.md5)
            .send()
            .await
            .unwrap();
        assert_eq!(out.sse_customer_algorithm(), Some("AES256"));
        assert_eq!(out.sse_customer_key_md5(), Some(k.md5.as_str()));
        assert!(out.server_side_encryption().is_none());
        // HEAD reports each.
        let h = c
            .head_object()
            .bucket("enc")
            .key("dsse")
            .send()
            .await
            .unwrap();
        assert_eq!(h.ssekms_key_id(), Some(arn(&other).as_str()));
        let h = c
            .head_object()
            .bucket("enc")
            .key("kms")
            .send()
            .await
            .unwrap();
        assert_eq!(h.bucket_key_enabled(), Some(true));

        // Errors: two kinds of SSE at once, a KMS key without aws:kms, unknown keys.
        let (code, st) = refused!(
            put("two")
                .server_side_encryption(ServerSideEncryption::Aes256)
                .sse_customer_algorithm("AES256")
                .sse_customer_key(&k.key)
                .sse_customer_key_md5(&k.md5)
                .send()
                .await
        );
        assert_eq!((code.as_str(), st), ("InvalidArgument", 400));
        let (code, st) = refused!(
            put("two")
                .server_side_encryption(ServerSideEncryption::Aes256)
                .ssekms_key_id(&key)
                .send()
                .await
        );
        assert_eq!((code.as_str(), st), ("InvalidArgument", 400));
        let (code, st) = refused!(
            put("nokey")
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id("alias/none")
                .send()
                .await
        );
        assert_eq!((code.as_str(), st), ("KMS.NotFoundException", 400));

        // Bucket default: SSE-S3 until set; a default applies when a request names none;
        // request headers win; deleting it goes back to SSE-S3.
        let enc = c
            .get_bucket_encryption()
            .bucket("enc")
            .send()
            .await
            .unwrap();
        let rule = &enc.server_side_encryption_configuration().unwrap().rules()[0];
        assert_eq!(
            rule.apply_server_side_encryption_by_default()
                .unwrap()
                .sse_algorithm(),
            &ServerSideEncryption::Aes256
        );
        let config = |alg: ServerSideEncryption, key: Option<String>| {
            ServerSideEncryptionConfiguration::builder()
                .rules(
                    ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(
                            ServerSideEncryptionByDefault::builder()
                                .sse_algorithm(alg)
                                .set_kms_master_key_id(key)
                                .build()
                                .unwrap(),
                        )
                        .bucket_key_enabled(true)
                        .build(),
                )
                .build()
                .unwrap()
        };
        c.put_bucket_encryption()
            .bucket("enc")
            .server_side_encryption_configuration(config(
                ServerSideEncryption::AwsKms,
                Some(key.clone()),
            ))
            .send()
            .await
            .unwrap();
        let out = put("by-default").send().await.unwrap();
        assert_eq!(
            out.server_side_encryption(),
            Some(&ServerSideEncryption::AwsKms)
        );
        assert_eq!(out.ssekms_key_id(), Some(arn(&key).as_str()));
        assert_eq!(out.bucket_key_enabled(), Some(true));
        let out = put("header-wins")
            .server_side_encryption(ServerSideEncryption::Aes256)
            .send()
            .await
            .unwrap();
        assert_eq!(
            out.server_side_encryption(),
            Some(&ServerSideEncryption::Aes256)
        );
        let enc = c
            .get_bucket_encryption()
            .bucket("enc")
            .send()
            .await
            .unwrap();
        let rule = &enc.server_side_encryption_configuration().unwrap().rules()[0];
        assert_eq!(
            rule.apply_server_side_encryption_by_default()
                .unwrap()
                .kms_master_key_id(),
            Some(key.as_str())
        );
        c.put_bucket_encryption()
            .bucket("enc")
            .server_side_encryption_configuration(config(
                ServerSideEncryption::AwsKmsDsse,
                Some(other.clone()),
            ))
            .send()
            .await
            .unwrap();
        let out = put("by-dsse-default").send().await.unwrap();
        assert_eq!(
            out.server_side_encryption(),
            Some(&ServerSideEncryption::AwsKmsDsse)
        );
        let (code, st) = refused!(
            c.put_bucket_encryption()
                .bucket("enc")
                .server_side_encryption_configuration(config(
                    ServerSideEncryption::AwsKms,
                    Some("no-such-key".into())
                ))
                .send()
                .await
        );
        assert_eq!((code.as_str(), st), ("KMS.NotFoundException", 400));
        c.delete_bucket_encryption()
            .bucket("enc")
            .send()
            .await
            .unwrap();
        let out = put("after-delete").send().await.unwrap();
        assert_eq!(
            out.server_side_encryption(),
            Some(&ServerSideEncryption::Aes256)
        );
        // Every object reads back.
        for k in [
            "kms",
            "kms-default",
            "dsse",
            "by-default",
            "header-wins",
            "by-dsse-default",
            "after-delete",
        ] {
            let out = c.get_object().bucket("enc").key(k).send().await.unwrap();
            assert_eq!(
                &out.body.collect().await.unwrap().into_bytes()[..],
                b"secret bytes",
                "{k}"
            );
        }
    });
}

#[test]
fn sse_c_errors_and_key_rotation_by_the_fast_path() {
    let server = S3Server::reseal_serve();
    let c = server.client();
    let rt = rt();
    let (k1, k2) = (ssec(1), ssec(2));
    rt.block_on(async {
        c.create_bucket().bucket("ssec").send().await.unwrap();
        let data = body(600_000, 9);
        c.put_object()
            .bucket("ssec")
            .key("obj")
            .body(ByteStream::from(data.clone()))
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&k1.key)
            .sse_customer_key_md5(&k1.md5)
            .send()
            .await
            .unwrap();
        // 400 on an MD5 that does not match the key.
        let (code, st) = refused!(
            c.put_object()
                .bucket("ssec")
                .key("bad")
                .body(ByteStream::from_static(b"x"))
                .sse_customer_algorithm("AES256")
                .sse_customer_key(&k1.key)
                .sse_customer_key_md5(&k2.md5)
                .send()
                .await
        );
        assert_eq!((code.as_str(), st), ("InvalidArgument", 400));
        // 400 without the key, on GET and HEAD.
        let (code, st) = refused!(c.get_object().bucket("ssec").key("obj").send().await);
        assert_eq!((code.as_str(), st), ("InvalidRequest", 400));
        let (_, st) = refused!(c.head_object().bucket("ssec").key("obj").send().await);
        assert_eq!(st, 400);
        // 403 with another key.
        let (code, st) = refused!(
            c.get_object()
                .bucket("ssec")
                .key("obj")
                .sse_customer_algorithm("AES256")
                .sse_customer_key(&k2.key)
                .sse_customer_key_md5(&k2.md5)
                .send()
                .await
        );
        assert_eq!((code.as_str(), st), ("AccessDenied", 403));
        let (_, st) = refused!(
            c.head_object()
                .bucket("ssec")
                .key("obj")
                .sse_customer_algorithm("AES256")
                .sse_customer_key(&k2.key)
                .sse_customer_key_md5(&k2.md5)
                .send()
                .await
        );
        assert_eq!(st, 403);
        // A range with the right key.
        let out = c
            .get_object()
            .bucket("ssec")
            .key("obj")
            .range("bytes=262000-262299")
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&k1.key)
            .sse_customer_key_md5(&k1.md5)
            .send()
            .await
            .unwrap();
        assert_eq!(out.sse_customer_key_md5(), Some(k1.md5.as_str()));
        assert_eq!(
            &out.body.collect().await.unwrap().into_bytes()[..],
            &data[262_000..262_300]
        );

        // Key rotation onto itself: the data key is re-sealed, the data file stays.
        let before = stored_meta(&server, "ssec", "obj");
        let rotated = c
            .copy_object()
            .bucket("ssec")
            .key("obj")
            .copy_source("ssec/obj")
            .copy_source_sse_customer_algorithm("AES256")
            .copy_source_sse_customer_key(&k1.key)
            .copy_source_sse_customer_key_md5(&k1.md5)
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&k2.key)
            .sse_customer_key_md5(&k2.md5)
            .send()
            .await
            .unwrap();
        assert_eq!(rotated.sse_customer_key_md5(), Some(k2.md5.as_str()));
        let after = stored_meta(&server, "ssec", "obj");
        assert_eq!(
            before["data_id"], after["data_id"],
            "the fast path keeps the data"
        );
        assert_ne!(before["sse"], after["sse"]);
        // The wrong source key changes nothing.
        let (code, st) = refused!(
            c.copy_object()
                .bucket("ssec")
                .key("obj")
                .copy_source("ssec/obj")
                .copy_source_sse_customer_algorithm("AES256")
                .copy_source_sse_customer_key(&k1.key)
                .copy_source_sse_customer_key_md5(&k1.md5)
                .server_side_encryption(ServerSideEncryption::Aes256)
                .send()
                .await
        );
        assert_eq!((code.as_str(), st), ("AccessDenied", 403));
        // To SSE-KMS and then to another KMS key: the first rewrites, the second re-seals.
        c.copy_object()
            .bucket("ssec")
            .key("obj")
            .copy_source("ssec/obj")
            .copy_source_sse_customer_algorithm("AES256")
            .copy_source_sse_customer_key(&k2.key)
            .copy_source_sse_customer_key_md5(&k2.md5)
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .send()
            .await
            .unwrap();
        let kms = stored_meta(&server, "ssec", "obj");
        assert_ne!(kms["data_id"], after["data_id"], "a mode change rewrites");
        let key = server.kms_key();
        let out = c
            .copy_object()
            .bucket("ssec")
            .key("obj")
            .copy_source("ssec/obj")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(&key)
            .send()
            .await
            .unwrap();
        assert!(
            out.ssekms_key_id()
                .unwrap()
                .ends_with(&format!("key/{key}"))
        );
        assert_eq!(
            stored_meta(&server, "ssec", "obj")["data_id"],
            kms["data_id"]
        );
        let out = c
            .get_object()
            .bucket("ssec")
            .key("obj")
            .send()
            .await
            .unwrap();
        assert_eq!(out.body.collect().await.unwrap().into_bytes(), data);
    });
}

#[test]
fn multipart_uploads_are_encrypted_with_s3_etags() {
    let server = S3Server::reseal_serve();
    let c = server.client();
    let rt = rt();
    let k = ssec(4);
    rt.block_on(async {
        c.create_bucket().bucket("mpu").send().await.unwrap();
        let parts = [
            body(5 * 1024 * 1024, 1),
            body(5 * 1024 * 1024 + 11, 2),
            body(777, 3),
        ];
        let created = c
            .create_multipart_upload()
            .bucket("mpu")
            .key("big")
            .content_type("text/x-big")
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&k.key)
            .sse_customer_key_md5(&k.md5)
            .send()
            .await
            .unwrap();
        let id = created.upload_id().unwrap().to_owned();
        assert_eq!(created.sse_customer_key_md5(), Some(k.md5.as_str()));
        // A part without the upload's key is refused.
        let (_, st) = refused!(
            c.upload_part()
                .bucket("mpu")
                .key("big")
                .upload_id(&id)
                .part_number(1)
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
        );
        assert_eq!(st, 400);
        let mut completed = Vec::new();
        let mut md5s = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let out = c
                .upload_part()
                .bucket("mpu")
                .key("big")
                .upload_id(&id)
                .part_number(i as i32 + 1)
                .body(ByteStream::from(p.clone()))
                .sse_customer_algorithm("AES256")
                .sse_customer_key(&k.key)
                .sse_customer_key_md5(&k.md5)
                .send()
                .await
                .unwrap();
            md5s.extend_from_slice(&Md5::digest(p));
            completed.push(
                CompletedPart::builder()
                    .part_number(i as i32 + 1)
                    .e_tag(out.e_tag().unwrap())
                    .build(),
            );
        }
        let listed = c
            .list_parts()
            .bucket("mpu")
            .key("big")
            .upload_id(&id)
            .send()
            .await
            .unwrap();
        assert_eq!(listed.parts().len(), 3);
        let uploads = c
            .list_multipart_uploads()
            .bucket("mpu")
            .send()
            .await
            .unwrap();
        assert_eq!(uploads.uploads()[0].upload_id(), Some(id.as_str()));
        let done = c
            .complete_multipart_upload()
            .bucket("mpu")
            .key("big")
            .upload_id(&id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let want = format!("\"{}-3\"", common::md5_hex(&md5s));
        assert_eq!(done.e_tag(), Some(want.as_str()));
        let whole = parts.concat();
        let out = c
            .get_object()
            .bucket("mpu")
            .key("big")
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&k.key)
            .sse_customer_key_md5(&k.md5)
            .send()
            .await
            .unwrap();
        assert_eq!(out.e_tag(), Some(want.as_str()));
        assert_eq!(out.content_type(), Some("text/x-big"));
        assert_eq!(out.body.collect().await.unwrap().into_bytes(), whole);
        assert!(
            c.list_multipart_uploads()
                .bucket("mpu")
                .send()
                .await
                .unwrap()
                .uploads()
                .is_empty()
        );

        // UploadPartCopy from the SSE-C object into an SSE-KMS upload, in two ranges.
        let created = c
            .create_multipart_upload()
            .bucket("mpu")
            .key("copied")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .send()
            .await
            .unwrap();
        let id = created.upload_id().unwrap().to_owned();
        let split = 5 * 1024 * 1024 + 100;
        let mut completed = Vec::new();
        for (n, range) in [
            (1, format!("bytes=0-{}", split - 1)),
            (2, format!("bytes={split}-{}", whole.len() - 1)),
        ] {
            let out = c
                .upload_part_copy()
                .bucket("mpu")
                .key("copied")
                .upload_id(&id)
                .part_number(n)
                .copy_source("mpu/big")
                .copy_source_range(range)
                .copy_source_sse_customer_algorithm("AES256")
                .copy_source_sse_customer_key(&k.key)
                .copy_source_sse_customer_key_md5(&k.md5)
                .send()
                .await
                .unwrap();
            completed.push(
                CompletedPart::builder()
                    .part_number(n)
                    .e_tag(out.copy_part_result().unwrap().e_tag().unwrap())
                    .build(),
            );
        }
        c.complete_multipart_upload()
            .bucket("mpu")
            .key("copied")
            .upload_id(&id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let out = c
            .get_object()
            .bucket("mpu")
            .key("copied")
            .send()
            .await
            .unwrap();
        assert_eq!(
            out.server_side_encryption(),
            Some(&ServerSideEncryption::AwsKms)
        );
        assert!(out.e_tag().unwrap().ends_with("-2\""));
        assert_eq!(out.body.collect().await.unwrap().into_bytes(), whole);

        // An aborted upload leaves nothing.
        let id = c
            .create_multipart_upload()
            .bucket("mpu")
            .key("aborted")
            .send()
            .await
            .unwrap()
            .upload_id()
            .unwrap()
            .to_owned();
        c.upload_part()
            .bucket("mpu")
            .key("aborted")
            .upload_id(&id)
            .part_number(1)
            .body(ByteStream::from_static(b"part"))
            .send()
            .await
            .unwrap();
        c.abort_multipart_upload()
            .bucket("mpu")
            .key("aborted")
            .upload_id(&id)
            .send()
            .await
            .unwrap();
        let (code, st) = refused!(
            c.list_parts()
                .bucket("mpu")
                .key("aborted")
                .upload_id(&id)
                .send()
                .await
        );
        assert_eq!((code.as_str(), st), ("NoSuchUpload", 404));
        let (_, st) = refused!(c.head_object().bucket("mpu").key("aborted").send().await);
        assert_eq!(st, 404);
    });
}

#[test]
fn anonymous_and_wrongly_signed_requests_are_refused() {
    let server = S3Server::reseal_serve();
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/stdout", "-w", "\n%{http_code}"])
        .arg(format!("{}/", server.endpoint))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.trim_end().ends_with("403"), "{text}");
    assert!(text.contains("AccessDenied"), "{text}");
    let creds = aws_sdk_s3::config::Credentials::new(ACCESS_KEY, "not-the-secret", None, None, "t");
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(REGION))
        .endpoint_url(&server.endpoint)
        .force_path_style(true)
        .credentials_provider(creds)
        .build();
    let c = aws_sdk_s3::Client::from_conf(config);
    let (code, st) = refused!(rt().block_on(c.list_buckets().send()));
    assert_eq!((code.as_str(), st), ("SignatureDoesNotMatch", 403));
}

/// The AWS CLI from `.venv`, with the test credentials, against `endpoint`.
fn aws(endpoint: &str, args: &[&str]) -> std::process::Output {
    aws_with(endpoint, &[], args)
}

fn aws_with(endpoint: &str, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let bin = common::repo_path(".venv/bin/aws");
    assert!(
        bin.exists(),
        "the AWS CLI is not installed at {}: run tests/run.sh, which installs it",
        bin.display()
    );
    Command::new(bin)
        .args(["--endpoint-url", endpoint, "--output", "json"])
        .args(args)
        .envs(aws_env())
        .env("AWS_CONFIG_FILE", "/nonexistent/reseal-test/config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/reseal-test/credentials",
        )
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("aws runs")
}

fn aws_ok(endpoint: &str, args: &[&str]) -> String {
    let out = aws(endpoint, args);
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

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
        let head: serde_json::Value = serde_json::from_str(&aws_ok(
            ep,
            &[
                "s3api",
                "head-object",
                "--bucket",
                "cli",
                "--key",
                &format!("{name}/big"),
            ],
        ))
        .unwrap();
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
    let head = aws_ok(
        ep,
        &["s3api", "head-object", "--bucket", "cli", "--key", "dsse"],
    );
    assert!(
        head.contains("aws:kms:dsse") && head.contains(&key),
        "{head}"
    );
    // SSE-C: the CLI computes the MD5 itself.
    let c_args = |file: &str| format!("fileb://{file}");
    aws_ok(
        ep,
        &[
            "s3",
            "cp",
            &p(&big),
            "s3://cli/ssec/big",
            "--sse-c",
            "AES256",
            "--sse-c-key",
            &c_args(&p(&customer)),
        ],
    );
    let back = dir.path().join("ssec.back");
    let out = aws(ep, &["s3", "cp", "s3://cli/ssec/big", &p(&back)]);
    assert!(!out.status.success(), "no key: refused");
    aws_ok(
        ep,
        &[
            "s3",
            "cp",
            "s3://cli/ssec/big",
            &p(&back),
            "--sse-c",
            "AES256",
            "--sse-c-key",
            &c_args(&p(&customer)),
        ],
    );
    assert_eq!(std::fs::read(&back).unwrap(), big_data);
    // A range, a listing, tags, bucket encryption.
    let range = dir.path().join("range.bin");
    aws_ok(
        ep,
        &[
            "s3api",
            "get-object",
            "--bucket",
            "cli",
            "--key",
            "s3/big",
            "--range",
            "bytes=100-199",
            &p(&range),
        ],
    );
    assert_eq!(std::fs::read(&range).unwrap(), &big_data[100..200]);
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
    let head = aws_ok(
        ep,
        &[
            "s3api",
            "head-object",
            "--bucket",
            "cli",
            "--key",
            "after-default",
        ],
    );
    assert!(head.contains("aws:kms"), "{head}");
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
    let head = aws_ok(
        ep,
        &[
            "s3api",
            "head-object",
            "--bucket",
            "cli",
            "--key",
            "s3/small",
        ],
    );
    assert!(head.contains("aws:kms"), "{head}");
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

/// curl with SigV4 (curl signs the request itself), returning the HTTP status.
fn curl_signed(args: &[&str]) -> Command {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["--aws-sigv4", &format!("aws:amz:{REGION}:s3")])
        .args(["--user", &format!("{ACCESS_KEY}:{SECRET_KEY}")])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .args(args)
        .stdin(Stdio::null());
    cmd
}

#[test]
fn sigterm_lets_a_request_in_flight_finish_and_leaves_nothing_partial() {
    let mut server = S3Server::reseal_serve();
    let c = server.client();
    rt().block_on(c.create_bucket().bucket("sig").send())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("slow.bin");
    let data = body(600_000, 4);
    std::fs::write(&file, &data).unwrap();
    // An upload at 200 KB/s takes 3 s; the signal comes after 1 s.
    let upload = curl_signed(&["--limit-rate", "200k", "-T", file.to_str().unwrap()])
        .arg(format!("{}/sig/slow.bin", server.endpoint))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    send_signal(server.pid(), "TERM");
    let out = upload.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "200",
        "the upload in flight completes"
    );
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("the server exits once the request is done");
    assert!(status.success(), "{status}");
    let store = server.reseal.as_ref().unwrap();
    let meta = stored_meta(&server, "sig", "slow.bin");
    assert_eq!(meta["size"], 600_000);
    assert_eq!(meta["etag"], common::md5_hex(&data));
    assert_eq!(std::fs::read_dir(store.dir.join("tmp")).unwrap().count(), 0);

    // A request cut off mid-body after the signal: no object, no temporary file, and the
    // server exits without waiting for the full grace period.
    let mut server = S3Server::reseal_serve();
    rt().block_on(server.client().create_bucket().bucket("sig").send())
        .unwrap();
    let mut upload = curl_signed(&["--limit-rate", "100k", "-T", file.to_str().unwrap()])
        .arg(format!("{}/sig/cut.bin", server.endpoint))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    send_signal(server.pid(), "TERM");
    std::thread::sleep(Duration::from_millis(500));
    upload.kill().unwrap();
    upload.wait().unwrap();
    server
        .wait_exit(Duration::from_secs(20))
        .expect("the server exits once the cut request has failed");
    let store = server.reseal.as_ref().unwrap();
    let objects = store.dir.join("buckets/sig/objects");
    let left: usize = std::fs::read_dir(&objects).map_or(0, |d| d.count());
    assert_eq!(left, 0, "no object from a cut request");
    assert_eq!(std::fs::read_dir(store.dir.join("tmp")).unwrap().count(), 0);
}

fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// An address of this machine that is not loopback (the one a default route would use).
fn outside_address() -> std::net::IpAddr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    socket
        .connect("192.0.2.1:9")
        .expect("a route off loopback (the test needs one)");
    let ip = socket.local_addr().unwrap().ip();
    assert!(!ip.is_loopback(), "no address off loopback");
    ip
}

#[test]
fn sse_c_needs_tls_off_loopback_and_works_over_tls() {
    // Plain HTTP on an outside address: SSE-C refused, other requests served.
    let ip = outside_address();
    let server = S3Server::reseal_serve_with(&["--addr", &format!("{ip}:0")]);
    let k = ssec(3);
    let c = client_for(&server.endpoint);
    let rt = rt();
    rt.block_on(c.create_bucket().bucket("tls").send()).unwrap();
    let (code, st) = refused!(
        rt.block_on(
            c.put_object()
                .bucket("tls")
                .key("x")
                .body(ByteStream::from_static(b"x"))
                .sse_customer_algorithm("AES256")
                .sse_customer_key(&k.key)
                .sse_customer_key_md5(&k.md5)
                .send()
        )
    );
    assert_eq!((code.as_str(), st), ("InvalidRequest", 400));
    rt.block_on(
        c.put_object()
            .bucket("tls")
            .key("x")
            .body(ByteStream::from_static(b"x"))
            .send(),
    )
    .unwrap();
    drop(server);

    // TLS with a self-signed certificate: SSE-C accepted (curl trusts the certificate).
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", &format!("subjectAltName=IP:{ip},IP:127.0.0.1")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(made.success());
    let server = S3Server::reseal_serve_with(&[
        "--addr",
        &format!("{ip}:0"),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert!(
        server.endpoint.starts_with("https://"),
        "{}",
        server.endpoint
    );
    // The AWS CLI, trusting the certificate (curl 7.88 signs SSE-C headers wrongly).
    let ca = [("AWS_CA_BUNDLE", cert.to_str().unwrap())];
    let cli = |args: &[&str]| aws_with(&server.endpoint, &ca, args);
    let file = dir.path().join("f");
    std::fs::write(&file, b"over tls").unwrap();
    let customer = dir.path().join("customer.key");
    std::fs::write(&customer, [3u8; 32]).unwrap();
    let sse_c = format!("fileb://{}", customer.display());
    assert!(cli(&["s3", "mb", "s3://tls"]).status.success());
    let put = cli(&[
        "s3api",
        "put-object",
        "--bucket",
        "tls",
        "--key",
        "f",
        "--body",
        file.to_str().unwrap(),
        "--sse-customer-algorithm",
        "AES256",
        "--sse-customer-key",
        &sse_c,
    ]);
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let back = dir.path().join("back");
    let get = cli(&[
        "s3api",
        "get-object",
        "--bucket",
        "tls",
        "--key",
        "f",
        "--sse-customer-algorithm",
        "AES256",
        "--sse-customer-key",
        &sse_c,
        back.to_str().unwrap(),
    ]);
    assert!(
        get.status.success(),
        "{}",
        String::from_utf8_lossy(&get.stderr)
    );
    assert_eq!(std::fs::read(&back).unwrap(), b"over tls");
    let without = cli(&[
        "s3api",
        "get-object",
        "--bucket",
        "tls",
        "--key",
        "f",
        back.to_str().unwrap(),
    ]);
    assert!(!without.status.success());
    let said = String::from_utf8_lossy(&without.stderr);
    assert!(said.contains("InvalidRequest"), "{said}");
}

/// The hex SHA-256 of `bytes`.
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// SigV4 by hand, for the requests an SDK will not make (a presigned URL valid for years,
/// a request dated an hour away): the credential scope and signature of `canonical` (a
/// canonical request) signed at `at`.
fn sign_by_hand(at: SystemTime, canonical: &str) -> (String, String) {
    use hmac::{Hmac, KeyInit, Mac};
    let hmac = |key: &[u8], data: &str| {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().to_vec()
    };
    let (stamp, day) = amz_date(at);
    let scope = format!("{day}/{REGION}/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let mut key = format!("AWS4{SECRET_KEY}").into_bytes();
    for part in [day.as_str(), REGION, "s3", "aws4_request"] {
        key = hmac(&key, part);
    }
    let signature = hmac(&key, &to_sign)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (format!("{ACCESS_KEY}/{scope}"), signature)
}

/// `X-Amz-Date` and the credential scope's day, for `at`.
fn amz_date(at: SystemTime) -> (String, String) {
    let at = chrono::DateTime::<chrono::Utc>::from(at);
    (
        at.format("%Y%m%dT%H%M%SZ").to_string(),
        at.format("%Y%m%d").to_string(),
    )
}

/// A presigned GET of `path`, dated `at` and valid for `expires` seconds, signed by hand.
fn presign_by_hand(endpoint: &str, path: &str, at: SystemTime, expires: u64) -> String {
    let host = endpoint.trim_start_matches("http://");
    let (stamp, day) = amz_date(at);
    let query = format!(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={ACCESS_KEY}%2F{day}%2F{REGION}%2Fs3%2F\
         aws4_request&X-Amz-Date={stamp}&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host"
    );
    let canonical = format!("GET\n{path}\n{query}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD");
    let (_, signature) = sign_by_hand(at, &canonical);
    format!("{endpoint}{path}?{query}&X-Amz-Signature={signature}")
}

/// GET `url` with curl: the status, and the S3 error code and message (empty if none).
fn curl_get(url: &str, headers: &[String]) -> (u16, String, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "/dev/stdout", "-w", "\n%{http_code}"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    let element = |name: &str| {
        body.split_once(&format!("<{name}>"))
            .and_then(|(_, rest)| rest.split_once(&format!("</{name}>")))
            .map_or(String::new(), |(value, _)| value.to_owned())
    };
    (status.parse().unwrap(), element("Code"), element("Message"))
}

#[test]
fn presigned_urls_expire_and_are_valid_for_at_most_a_week() {
    use aws_sdk_s3::presigning::PresigningConfig;
    let server = S3Server::reseal_serve();
    let c = server.client();
    let rt = rt();
    let data = body(1000, 9);
    rt.block_on(async {
        c.create_bucket().bucket("pre").send().await.unwrap();
        c.put_object()
            .bucket("pre")
            .key("k")
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
    });
    let now = SystemTime::now();
    let presigned = |start: SystemTime, expires: u64| {
        let config = PresigningConfig::builder()
            .start_time(start)
            .expires_in(Duration::from_secs(expires))
            .build()
            .unwrap();
        let request = rt
            .block_on(c.get_object().bucket("pre").key("k").presigned(config))
            .unwrap();
        curl_get(request.uri(), &[])
    };
    let out = Command::new("curl")
        .args(["-s", "-f"])
        .arg(
            rt.block_on(
                c.get_object()
                    .bucket("pre")
                    .key("k")
                    .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap()),
            )
            .unwrap()
            .uri(),
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "a fresh presigned GET is served");
    assert_eq!(out.stdout, data);
    assert_eq!(
        presigned(now + Duration::from_secs(300), 3600).0,
        200,
        "a clock five minutes behind the client's is within the skew allowed"
    );
    let (status, code, message) = presigned(now - Duration::from_secs(7200), 3600);
    assert_eq!(
        (status, code.as_str(), message.as_str()),
        (403, "AccessDenied", "Request has expired")
    );
    let (status, code, message) = presigned(now + Duration::from_secs(3600), 3600);
    assert_eq!(
        (status, code.as_str(), message.as_str()),
        (403, "AccessDenied", "Request is not yet valid")
    );

    // Past a week: the SDK refuses to sign such a URL, so it is signed by hand.
    let (status, ..) = curl_get(
        &presign_by_hand(&server.endpoint, "/pre/k", now, 604_800),
        &[],
    );
    assert_eq!(status, 200, "a week is allowed");
    for (at, expires) in [
        (now, 604_801),
        (now - Duration::from_secs(3000 * 86_400), 10 * 365 * 86_400),
    ] {
        let url = presign_by_hand(&server.endpoint, "/pre/k", at, expires);
        let (status, code, message) = curl_get(&url, &[]);
        assert_eq!(
            (status, code.as_str()),
            (400, "AuthorizationQueryParametersError"),
            "X-Amz-Expires={expires}: {message}"
        );
        assert!(message.contains("604800"), "{message}");
    }
}

#[test]
fn header_signed_requests_dated_too_far_from_the_clock_are_refused() {
    let server = S3Server::reseal_serve();
    let host = server.endpoint.trim_start_matches("http://");
    let empty = sha256_hex(b"");
    let list_buckets = |at: SystemTime| {
        let (stamp, _) = amz_date(at);
        let canonical = format!(
            "GET\n/\n\nhost:{host}\nx-amz-content-sha256:{empty}\nx-amz-date:{stamp}\n\n\
             host;x-amz-content-sha256;x-amz-date\n{empty}"
        );
        let (credential, signature) = sign_by_hand(at, &canonical);
        let headers = [
            format!(
                "Authorization: AWS4-HMAC-SHA256 Credential={credential}, \
                 SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}"
            ),
            format!("x-amz-content-sha256: {empty}"),
            format!("x-amz-date: {stamp}"),
        ];
        let (status, code, _) = curl_get(&format!("{}/", server.endpoint), &headers);
        (status, code)
    };
    let now = SystemTime::now();
    assert_eq!(list_buckets(now), (200, String::new()));
    for at in [
        now + Duration::from_secs(3600),
        now - Duration::from_secs(3600),
    ] {
        assert_eq!(list_buckets(at), (403, "RequestTimeTooSkewed".to_owned()));
    }
}

#[test]
fn a_body_that_does_not_match_its_sha256_is_refused_and_not_stored() {
    let server = S3Server::reseal_serve();
    let c = server.client();
    let rt = rt();
    rt.block_on(c.create_bucket().bucket("sha").send()).unwrap();
    let wrong = format!("x-amz-content-sha256: {}", sha256_hex(b"other bytes"));
    // curl signs the request with the digest it is given: a valid signature, a wrong digest.
    let put = |url: &str, digest: &str, data: &str| {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/stdout",
                "-w",
                "\n%{http_code}",
                "-X",
                "PUT",
            ])
            .args(["--aws-sigv4", &format!("aws:amz:{REGION}:s3")])
            .args(["--user", &format!("{ACCESS_KEY}:{SECRET_KEY}")])
            .args(["-H", digest, "--data-binary", data])
            .arg(format!("{}{url}", server.endpoint))
            .output()
            .expect("curl runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = put("/sha/k", &wrong, "the bytes sent");
    assert!(said.ends_with("\n400"), "{said}");
    assert!(
        said.contains("<Code>XAmzContentSHA256Mismatch</Code>"),
        "{said}"
    );
    let (_, st) = refused!(rt.block_on(c.head_object().bucket("sha").key("k").send()));
    assert_eq!(st, 404, "nothing is stored");
    let right = format!("x-amz-content-sha256: {}", sha256_hex(b"the bytes sent"));
    assert!(put("/sha/k", &right, "the bytes sent").ends_with("\n200"));

    // A part, and an XML body (which s3s reads itself).
    let upload = rt
        .block_on(c.create_multipart_upload().bucket("sha").key("mp").send())
        .unwrap();
    let id = upload.upload_id().unwrap();
    let said = put(
        &format!("/sha/mp?partNumber=1&uploadId={id}"),
        &wrong,
        "a part",
    );
    assert!(
        said.contains("<Code>XAmzContentSHA256Mismatch</Code>"),
        "{said}"
    );
    let parts = rt
        .block_on(c.list_parts().bucket("sha").key("mp").upload_id(id).send())
        .unwrap();
    assert!(parts.parts().is_empty(), "no part is stored");
    let said = put(
        "/sha?tagging=",
        &wrong,
        "<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>",
    );
    assert!(said.ends_with("\n400"), "{said}");
    assert!(
        said.contains("<Code>XAmzContentSHA256Mismatch</Code>"),
        "{said}"
    );
    assert!(!server.log().contains("ERROR"), "{}", server.log());
}

/// Sends `n` unsigned requests, each on its own connection; expects each refused.
fn send_unsigned(endpoint: &str, n: usize) {
    use std::io::{Read, Write};
    let addr = endpoint.trim_start_matches("http://");
    for _ in 0..n {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "GET /some-bucket/some-key HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    }
}

#[test]
fn refused_requests_are_not_errors_in_the_log_and_server_failures_are() {
    let server = S3Server::reseal_serve_env(&[], &[("RESEAL_LOG", "warn")]);
    send_unsigned(&server.endpoint, 200);
    let creds = aws_sdk_s3::config::Credentials::new(ACCESS_KEY, "not-the-secret", None, None, "t");
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(REGION))
        .endpoint_url(&server.endpoint)
        .force_path_style(true)
        .credentials_provider(creds)
        .build();
    let wrongly_signed = aws_sdk_s3::Client::from_conf(config);
    let c = server.client();
    let rt = rt();
    rt.block_on(async {
        let (code, _) = refused!(wrongly_signed.list_buckets().send().await);
        assert_eq!(code, "SignatureDoesNotMatch");
        c.create_bucket().bucket("logs").send().await.unwrap();
        let (_, st) = refused!(c.head_object().bucket("logs").key("none").send().await);
        assert_eq!(st, 404);
        c.put_object()
            .bucket("logs")
            .key("k")
            .body(ByteStream::from_static(b"data"))
            .send()
            .await
            .unwrap();
    });
    let log = server.log();
    assert!(!log.contains("ERROR"), "{log}");
    assert!(log.len() < 400, "only the startup line: {log}");

    // A damaged object is a server failure, and is logged as one.
    let mut meta = std::fs::read(meta_path(&server, "logs", "k")).unwrap();
    meta[10] ^= 1;
    std::fs::write(meta_path(&server, "logs", "k"), meta).unwrap();
    let status = curl_signed(&[])
        .arg(format!("{}/logs/k", server.endpoint))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&status.stdout), "500");
    let log = server.log();
    assert!(log.contains("ERROR"), "{log}");
}

#[test]
fn refusals_are_logged_at_debug_at_a_bounded_rate_and_without_colour() {
    let server = S3Server::reseal_serve_env(&[], &[("RESEAL_LOG", "reseal=debug")]);
    let refusals = |log: &str| {
        log.lines()
            .filter(|l| l.contains(" refused"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let start = std::time::Instant::now();
    send_unsigned(&server.endpoint, 200);
    let elapsed = start.elapsed().as_secs_f64();
    let written = refusals(&server.log()).len();
    assert!(
        written >= 1 && written as f64 <= 11.0 + 10.0 * elapsed,
        "{written} lines in {elapsed:.2}s: {}",
        server.log()
    );
    // After a pause, the next line counts the refusals not logged before it.
    std::thread::sleep(Duration::from_millis(300));
    send_unsigned(&server.endpoint, 1);
    let log = server.log();
    assert!(!log.contains('\u{1b}'), "no colour in a log file: {log:?}");
    let lines = refusals(&log);
    let dropped: u64 = lines
        .iter()
        .filter_map(|l| l.split("dropped=").nth(1))
        .map(|n| n.split_whitespace().next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(dropped > 0, "{log}");
    assert_eq!(
        lines.len() as u64 + dropped,
        201,
        "every refusal is logged or counted: {log}"
    );
}
