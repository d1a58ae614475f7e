//! `reseal serve` as an object store, through the Rust SDK: buckets, objects, ranges,
//! conditional reads and writes, listings, copies, tags and deletes.

mod common;

use std::collections::HashMap;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    Delete, MetadataDirective, ObjectIdentifier, ServerSideEncryption, Tag, Tagging,
};
use base64::Engine as _;
use common::s3::{S3Server, rt};
use common::serve::{assert_refused, body};

#[test]
fn objects_ranges_conditions_listing_copies_tags_and_deletes() {
    let server = S3Server::reseal_serve();
    let c = server.client();
    let rt = rt();
    let put = |key: &str| c.put_object().bucket("objs").key(key);
    let get = |key: &str| c.get_object().bucket("objs").key(key);
    let head = |key: &str| c.head_object().bucket("objs").key(key);
    let copy = |key: &str| c.copy_object().bucket("objs").key(key);
    let list = || c.list_objects_v2().bucket("objs");
    let tags_of = |key: &str| c.get_object_tagging().bucket("objs").key(key);
    rt.block_on(async {
        c.create_bucket().bucket("objs").send().await.unwrap();
        assert_refused!(
            c.create_bucket().bucket("objs").send().await,
            "BucketAlreadyOwnedByYou",
            409
        );
        let data = body(300_000, 1);
        let written = put("dir/one")
            .body(ByteStream::from(data.clone()))
            .content_type("text/x-one")
            .metadata("owner", "ops")
            .tagging("team=blue&x=a%20b")
            .send()
            .await
            .unwrap();
        let etag = written.e_tag().unwrap().to_owned();
        assert_eq!(etag, format!("\"{}\"", common::md5_hex(&data)));
        assert_eq!(
            written.server_side_encryption(),
            Some(&ServerSideEncryption::Aes256),
            "SSE-S3 by default"
        );
        for (range, want) in [
            ("bytes=0-9", 0..10),
            ("bytes=262140-262150", 262_140..262_151),
            ("bytes=299990-", 299_990..300_000),
            ("bytes=-5", 299_995..300_000),
            ("bytes=100-999999", 100..300_000),
        ] {
            let out = get("dir/one").range(range).send().await.unwrap();
            assert_eq!(
                out.content_range(),
                Some(format!("bytes {}-{}/300000", want.start, want.end - 1).as_str())
            );
            let got = out.body.collect().await.unwrap().into_bytes();
            assert_eq!(&got[..], &data[want], "{range}");
        }
        assert_refused!(
            get("dir/one").range("bytes=300000-").send().await,
            "InvalidRange",
            416
        );
        let whole = get("dir/one").send().await.unwrap();
        assert_eq!(whole.content_type(), Some("text/x-one"));
        assert_eq!(whole.tag_count(), Some(2));
        assert_eq!(
            whole.metadata().unwrap().get("owner").map(String::as_str),
            Some("ops")
        );
        assert_eq!(whole.body.collect().await.unwrap().into_bytes(), data);

        // Conditional reads.
        assert_refused!(get("dir/one").if_none_match(&etag).send().await, 304);
        assert_refused!(
            get("dir/one").if_match("\"0000\"").send().await,
            "PreconditionFailed",
            412
        );
        assert_refused!(head("dir/one").if_match("\"0000\"").send().await, 412);
        get("dir/one").if_match(&etag).send().await.unwrap();
        // Conditional writes: If-None-Match: * refuses to overwrite.
        assert_refused!(
            put("dir/one")
                .if_none_match("*")
                .body(ByteStream::from_static(b"x"))
                .send()
                .await,
            "PreconditionFailed",
            412
        );
        let zeros = base64::engine::general_purpose::STANDARD.encode([0u8; 16]);
        assert_refused!(
            put("bad-md5")
                .content_md5(zeros)
                .body(ByteStream::from_static(b"x"))
                .send()
                .await,
            "BadDigest",
            400
        );

        // Listing: prefix, delimiter, pages.
        for k in ["dir/two", "dir/sub/a", "dir/sub/b", "top", "zz/1"] {
            put(k)
                .body(ByteStream::from_static(b"k"))
                .send()
                .await
                .unwrap();
        }
        let out = list().delimiter("/").send().await.unwrap();
        let keys: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
        let prefixes: Vec<&str> = out
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix())
            .collect();
        assert_eq!((keys, prefixes), (vec!["top"], vec!["dir/", "zz/"]));
        let out = list().prefix("dir/").delimiter("/").send().await.unwrap();
        let keys: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
        assert_eq!(keys, vec!["dir/one", "dir/two"]);
        assert_eq!(out.common_prefixes()[0].prefix(), Some("dir/sub/"));
        let mut all = Vec::new();
        let mut token = None;
        loop {
            let out = list()
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
        let copied = copy("copy")
            .copy_source("objs/dir/one")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .send()
            .await
            .unwrap();
        assert_eq!(
            copied.copy_object_result().unwrap().e_tag(),
            Some(etag.as_str())
        );
        let h = head("copy").send().await.unwrap();
        assert_eq!(h.content_type(), Some("text/x-one"));
        assert_eq!(
            h.server_side_encryption(),
            Some(&ServerSideEncryption::AwsKms)
        );
        assert_refused!(
            copy("dir/one").copy_source("objs/dir/one").send().await,
            "InvalidRequest",
            400
        );
        copy("dir/one")
            .copy_source("objs/dir/one")
            .metadata_directive(MetadataDirective::Replace)
            .content_type("text/x-replaced")
            .send()
            .await
            .unwrap();
        let h = head("dir/one").send().await.unwrap();
        assert_eq!(h.content_type(), Some("text/x-replaced"));
        assert!(h.metadata().is_none_or(|m| m.is_empty()));
        assert_refused!(
            copy("copy2")
                .copy_source("objs/dir/one")
                .copy_source_if_match("\"0000\"")
                .send()
                .await,
            "PreconditionFailed",
            412
        );

        // Tags.
        let tags = tags_of("copy").send().await.unwrap();
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
        let tags = tags_of("copy").send().await.unwrap();
        assert_eq!(tags.tag_set().len(), 1);

        // Deletes, one and many; a bucket with objects is not deleted.
        assert_refused!(
            c.delete_bucket().bucket("objs").send().await,
            "BucketNotEmpty",
            409
        );
        for k in ["copy", "never-was"] {
            c.delete_object()
                .bucket("objs")
                .key(k)
                .send()
                .await
                .unwrap();
        }
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
        assert_refused!(c.head_bucket().bucket("objs").send().await, "NotFound", 404);
        let buckets = c.list_buckets().send().await.unwrap();
        assert!(buckets.buckets().is_empty());
    });
}
