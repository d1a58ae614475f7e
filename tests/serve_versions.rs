//! Object versions through `reseal serve` and the Rust SDK: what each operation that takes
//! a `versionId` does with it, delete markers, paged version listings, and the errors S3
//! gives for versions that are not there or not objects.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, Delete, ObjectIdentifier, Tag, Tagging, VersioningConfiguration,
};
use common::s3::{S3Server, rt};
use common::serve::assert_refused;

#[test]
fn versions_tags_copies_deletes_and_listings() {
    let server = S3Server::reseal_serve();
    let c = server.client();
    let rt = rt();
    let versioning = |status: BucketVersioningStatus| {
        c.put_bucket_versioning()
            .bucket("vbkt")
            .versioning_configuration(VersioningConfiguration::builder().status(status).build())
    };
    let put = |key: &str, body: &'static [u8]| {
        c.put_object()
            .bucket("vbkt")
            .key(key)
            .body(ByteStream::from_static(body))
    };
    let get = |key: &str| c.get_object().bucket("vbkt").key(key);
    rt.block_on(async {
        c.create_bucket().bucket("vbkt").send().await.unwrap();
        // Before versioning: no status, no version ids in answers.
        let status = || async {
            let out = c.get_bucket_versioning().bucket("vbkt").send().await;
            out.unwrap().status().cloned()
        };
        assert_eq!(status().await, None);
        let before = put("k", b"null one").send().await.unwrap();
        assert_eq!(before.version_id(), None);
        versioning(BucketVersioningStatus::Enabled)
            .send()
            .await
            .unwrap();
        assert_eq!(status().await, Some(BucketVersioningStatus::Enabled));
        let version_of = |out: aws_sdk_s3::operation::put_object::PutObjectOutput| {
            out.version_id().unwrap().to_owned()
        };
        let v2 = version_of(put("k", b"two").tagging("n=2").send().await.unwrap());
        let v3 = version_of(put("k", b"three").send().await.unwrap());
        let read = |version: &str| {
            let req = get("k").version_id(version);
            async move {
                let out = req.send().await.unwrap();
                let id = out.version_id().map(str::to_owned);
                (out.body.collect().await.unwrap().into_bytes().to_vec(), id)
            }
        };
        assert_eq!(
            read("null").await,
            (b"null one".to_vec(), Some("null".into()))
        );
        assert_eq!(read(&v2).await, (b"two".to_vec(), Some(v2.clone())));
        let head = c
            .head_object()
            .bucket("vbkt")
            .key("k")
            .send()
            .await
            .unwrap();
        assert_eq!(head.version_id(), Some(v3.as_str()));

        // Tags of one version, not of the others.
        c.put_object_tagging()
            .bucket("vbkt")
            .key("k")
            .version_id("null")
            .tagging(
                Tagging::builder()
                    .tag_set(Tag::builder().key("era").value("old").build().unwrap())
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let tags = |version: Option<&str>| {
            let req = c
                .get_object_tagging()
                .bucket("vbkt")
                .key("k")
                .set_version_id(version.map(str::to_owned));
            async move {
                let out = req.send().await.unwrap();
                out.tag_set()
                    .iter()
                    .map(|t| format!("{}={}", t.key(), t.value()))
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(tags(Some("null")).await, ["era=old"]);
        assert_eq!(tags(Some(&v2)).await, ["n=2"]);
        assert!(tags(None).await.is_empty());

        // A copy of an old version: a new current version with its bytes.
        let copied = c
            .copy_object()
            .bucket("vbkt")
            .key("k")
            .copy_source(format!("vbkt/k?versionId={v2}"))
            .send()
            .await
            .unwrap();
        assert_eq!(copied.copy_source_version_id(), Some(v2.as_str()));
        let v4 = copied.version_id().unwrap().to_owned();
        assert!(![v2.as_str(), v3.as_str()].contains(&v4.as_str()));
        assert_eq!(read(&v4).await.0, b"two");

        // Versions that are not there, or not versions at all.
        assert_refused!(
            get("k")
                .version_id("0123456789abcdef0123456789abcdef")
                .send()
                .await,
            "NoSuchVersion",
            404
        );
        assert_refused!(
            get("k").version_id("not-a-version").send().await,
            "InvalidArgument",
            400
        );

        // A delete leaves a marker; reading it is 405, the key is gone, the versions stay.
        let deleted = c
            .delete_object()
            .bucket("vbkt")
            .key("k")
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.delete_marker(), Some(true));
        let marker = deleted.version_id().unwrap().to_owned();
        assert_refused!(get("k").send().await, "NoSuchKey", 404);
        assert_refused!(get("k").version_id(&marker).send().await, 405);
        let listed = c.list_objects_v2().bucket("vbkt").send().await.unwrap();
        assert!(listed.contents().is_empty());

        // Listed by key and newest first, a page of one at a time.
        put("other", b"o").send().await.unwrap();
        let mut seen = Vec::new();
        let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
        loop {
            let page = c
                .list_object_versions()
                .bucket("vbkt")
                .max_keys(1)
                .set_key_marker(key_marker.clone())
                .set_version_id_marker(version_marker.clone())
                .send()
                .await
                .unwrap();
            for v in page.versions() {
                seen.push((
                    v.key().unwrap().to_owned(),
                    v.version_id().unwrap().to_owned(),
                    v.is_latest().unwrap(),
                ));
            }
            for m in page.delete_markers() {
                seen.push((
                    format!("{} (marker)", m.key().unwrap()),
                    m.version_id().unwrap().to_owned(),
                    m.is_latest().unwrap(),
                ));
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
        }
        let k = |v: &str, latest| ("k".to_owned(), v.to_owned(), latest);
        assert_eq!(seen.len(), 6, "{seen:?}");
        assert_eq!(seen[0], ("k (marker)".into(), marker.clone(), true));
        assert_eq!(
            &seen[1..5],
            &[
                k(&v4, false),
                k(&v3, false),
                k(&v2, false),
                k("null", false)
            ]
        );
        assert_eq!((seen[5].0.as_str(), seen[5].2), ("other", true));

        // DeleteObjects with version ids removes those versions, the marker included: the
        // newest version left is current again.
        let removed = c
            .delete_objects()
            .bucket("vbkt")
            .delete(
                Delete::builder()
                    .objects(
                        ObjectIdentifier::builder()
                            .key("k")
                            .version_id(&marker)
                            .build()
                            .unwrap(),
                    )
                    .objects(
                        ObjectIdentifier::builder()
                            .key("k")
                            .version_id(&v4)
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert!(removed.errors().is_empty(), "{:?}", removed.errors());
        assert_eq!(removed.deleted().len(), 2);
        assert!(
            removed
                .deleted()
                .iter()
                .any(|d| d.version_id() == Some(marker.as_str()) && d.delete_marker() == Some(true))
        );
        let out = get("k").send().await.unwrap();
        assert_eq!(out.version_id(), Some(v3.as_str()));
        assert_eq!(
            out.body.collect().await.unwrap().into_bytes().as_ref(),
            b"three"
        );

        // Suspended: the null version is written, and replaces the old null version.
        versioning(BucketVersioningStatus::Suspended)
            .send()
            .await
            .unwrap();
        let null = put("k", b"null two").send().await.unwrap();
        assert_eq!(null.version_id(), Some("null"));
        assert_eq!(read("null").await.0, b"null two");
        let versions = c
            .list_object_versions()
            .bucket("vbkt")
            .prefix("k")
            .send()
            .await
            .unwrap();
        let ids: Vec<&str> = versions
            .versions()
            .iter()
            .map(|v| v.version_id().unwrap())
            .collect();
        assert_eq!(ids, ["null", v3.as_str(), v2.as_str()]);

        // A bucket whose objects are all deleted still holds their versions.
        for id in ["null", v3.as_str(), v2.as_str()] {
            c.delete_object()
                .bucket("vbkt")
                .key("k")
                .version_id(id)
                .send()
                .await
                .unwrap();
        }
        c.delete_object()
            .bucket("vbkt")
            .key("other")
            .send()
            .await
            .unwrap();
        assert_refused!(
            c.delete_bucket().bucket("vbkt").send().await,
            "BucketNotEmpty",
            409
        );
    });
}
