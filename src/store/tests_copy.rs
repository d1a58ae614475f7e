//! What a copy is: refused when it changes nothing, a re-encryption in place when only the
//! encryption changes, a new object otherwise; and the conditions on both of its ends.

use std::collections::BTreeMap;

use super::tests::*;
use super::*;
use crate::sse::SseMode;

fn source(key: &str) -> CopySource {
    CopySource {
        bucket: "bkt".into(),
        key: key.into(),
        ..Default::default()
    }
}

/// A copy of `bkt/o` onto itself that asks for nothing.
pub(super) fn onto_itself() -> CopyObject {
    CopyObject {
        source: source("o"),
        bucket: "bkt".into(),
        key: "o".into(),
        condition: WriteCondition::Always,
        encryption: None,
        metadata: Directive::Copy,
        tags: Directive::Copy,
        headers: BTreeMap::new(),
        storage_class: None,
        website_redirect_location: None,
        checksum_algorithm: None,
    }
}

fn put_with_headers(store: &Store) -> ObjectMeta {
    store
        .put(
            "bkt",
            "o",
            &data(SEG + 3, 4)[..],
            PutOptions {
                encryption: Some(Encryption::SseS3),
                content_type: Some("text/x-o".into()),
                metadata: BTreeMap::from([("owner".into(), "ops".into())]),
                tags: BTreeMap::from([("team".into(), "blue".into())]),
                headers: BTreeMap::from([("cache-control".into(), "max-age=1".into())]),
                storage_class: Some("STANDARD_IA".into()),
                website_redirect_location: Some("/r".into()),
                ..Default::default()
            },
        )
        .unwrap()
}

#[test]
fn a_copy_onto_itself_must_change_something_and_only_encryption_changes_in_place() {
    let (_d, store) = store();
    let first = put_with_headers(&store);
    let refused = |request: CopyObject| {
        matches!(
            store.copy_object(request),
            Err(StoreError::CopyChangesNothing { .. })
        )
    };
    assert!(refused(onto_itself()));
    assert!(refused(CopyObject {
        storage_class: Some("STANDARD_IA".into()),
        website_redirect_location: Some("/r".into()),
        ..onto_itself()
    }));

    // The same mode: the fast path re-seals the data key.
    let (meta, how) = store
        .copy_object(CopyObject {
            encryption: Some(Encryption::SseS3),
            ..onto_itself()
        })
        .unwrap();
    assert_eq!(how, CopyMethod::InPlace(ReencryptMethod::Reseal));
    assert_eq!(meta.data_id, first.data_id);
    // Another mode, and new tags: rewritten in place, everything else kept.
    let tags = BTreeMap::from([("k".to_owned(), "v".to_owned())]);
    let (meta, how) = store
        .copy_object(CopyObject {
            encryption: Some(Encryption::SseKms {
                key_id: None,
                bucket_key: false,
            }),
            tags: Directive::Replace(tags.clone()),
            ..onto_itself()
        })
        .unwrap();
    assert_eq!(how, CopyMethod::InPlace(ReencryptMethod::Rewrite));
    assert_eq!(meta.sse.mode(), SseMode::SseKms);
    assert_eq!(
        (
            meta.etag.as_str(),
            &meta.tags,
            &meta.headers,
            &meta.metadata
        ),
        (first.etag.as_str(), &tags, &first.headers, &first.metadata)
    );

    // The destination's condition is checked against the object itself.
    for condition in [
        WriteCondition::IfAbsent,
        WriteCondition::IfMatch("nope".into()),
    ] {
        assert!(matches!(
            store.copy_object(CopyObject {
                condition,
                encryption: Some(Encryption::SseS3),
                ..onto_itself()
            }),
            Err(StoreError::PreconditionFailed { .. })
        ));
    }
    let (_, how) = store
        .copy_object(CopyObject {
            condition: WriteCondition::IfMatch(first.etag.clone()),
            encryption: Some(Encryption::SseS3),
            ..onto_itself()
        })
        .unwrap();
    assert_eq!(how, CopyMethod::InPlace(ReencryptMethod::Rewrite));
}

#[test]
fn other_copies_make_a_new_object_from_the_source_as_it_was_checked() {
    let (_d, store) = store();
    let first = put_with_headers(&store);
    // A new storage class: a new object, with the bucket's default encryption.
    let (meta, how) = store
        .copy_object(CopyObject {
            storage_class: Some("GLACIER".into()),
            ..onto_itself()
        })
        .unwrap();
    assert_eq!(how, CopyMethod::NewObject);
    assert_ne!(meta.data_id, first.data_id);
    assert_eq!(meta.storage_class(), Some("GLACIER"));
    assert_eq!(meta.website_redirect_location(), Some("/r"));
    assert_eq!(meta.sse.mode(), SseMode::SseS3);
    assert_eq!(
        (&meta.content_type, &meta.metadata, &meta.tags),
        (&first.content_type, &first.metadata, &first.tags)
    );
    // Replaced metadata: the content headers come only from the request.
    let (meta, how) = store
        .copy_object(CopyObject {
            metadata: Directive::Replace(NewMetadata {
                content_type: Some("text/x-new".into()),
                metadata: BTreeMap::new(),
            }),
            ..onto_itself()
        })
        .unwrap();
    assert_eq!(how, CopyMethod::NewObject);
    assert_eq!(meta.content_type.as_deref(), Some("text/x-new"));
    assert!(meta.metadata.is_empty() && meta.headers.is_empty());
    assert_eq!(meta.tags, first.tags);
    // To another key: the source's conditions fail with a 412, never a 304.
    let not_modified = ReadConditions {
        if_none_match: Some(meta.etag.clone()),
        ..Default::default()
    };
    let to_other = |conditions: ReadConditions| CopyObject {
        source: CopySource {
            conditions,
            ..source("o")
        },
        key: "other".into(),
        ..onto_itself()
    };
    assert!(matches!(
        store.copy_object(to_other(not_modified)),
        Err(StoreError::PreconditionFailed { .. })
    ));
    let (copied, how) = store
        .copy_object(to_other(ReadConditions::default()))
        .unwrap();
    assert_eq!(how, CopyMethod::NewObject);
    assert_eq!((copied.key.as_str(), &copied.etag), ("other", &meta.etag));
}

#[test]
fn a_part_copy_reads_a_range_within_its_source() {
    let (_d, store) = store();
    let body = data(SEG + 3, 4);
    put(&store, "src", &body, Encryption::SseC(customer(1)));
    let upload = store
        .create_upload("bkt", "dst", PutOptions::default())
        .unwrap();
    let from = CopySource {
        sse_c: Some(customer(1)),
        ..source("src")
    };
    let copy = |source: &CopySource, last: u64| {
        store.upload_part_copy(
            "bkt",
            &upload.id,
            1,
            None,
            source,
            Some(ByteRange::From {
                first: 1,
                last: Some(last),
            }),
        )
    };
    assert!(matches!(
        copy(&from, body.len() as u64),
        Err(StoreError::CopyRangeOutsideSource { number: 1, .. })
    ));
    let etag = store.head("bkt", "src").unwrap().etag;
    let not_modified = CopySource {
        conditions: ReadConditions {
            if_none_match: Some(etag),
            ..Default::default()
        },
        ..from.clone()
    };
    assert!(matches!(
        copy(&not_modified, 10),
        Err(StoreError::PreconditionFailed { .. })
    ));
    let part = copy(&from, 10).unwrap();
    assert_eq!(part.size, 10);
    assert_eq!(
        part.etag,
        crate::encoding::hex(&md5::Md5::digest(&body[1..11]))
    );
}

/// A copy to another key whose KMS key does not exist fails as that, at once, whatever
/// the source's size: the write's refusal wins over the broken pipe its reader then sees.
#[test]
fn a_copy_to_an_unknown_kms_key_is_refused_as_that() {
    let (_d, store) = store();
    for len in [10, 4 << 20] {
        put(&store, "o", &data(len, 7), Encryption::SseS3);
        let refused = store.copy_object(CopyObject {
            key: "copy".into(),
            encryption: Some(Encryption::SseKms {
                key_id: Some("alias/no-such-key".into()),
                bucket_key: false,
            }),
            ..onto_itself()
        });
        assert!(
            matches!(
                refused,
                Err(StoreError::Keys(crate::store::keys::KeyError::UnknownKey(
                    _
                )))
            ),
            "{len} bytes: {refused:?}"
        );
    }
}
