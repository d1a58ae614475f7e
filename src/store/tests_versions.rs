//! Object versions in the local store, on real files: what S3 does with a versioned
//! bucket, and that each version keeps its own bytes, encryption and data files.

use std::collections::BTreeMap;

use super::tests::{customer, get, put, store};
use super::tests_copy::onto_itself;
use super::*;
use crate::sse::SseMode;

fn versioned() -> (tempfile::TempDir, Store) {
    let (dir, store) = store();
    store.set_versioning("bkt", Versioning::Enabled).unwrap();
    (dir, store)
}

fn read_version(store: &Store, key: &str, version: &str, k: Option<&CustomerKey>) -> Vec<u8> {
    let mut out = Vec::new();
    store
        .get("bkt", key, Some(version), None, k, &mut out)
        .unwrap();
    out
}

/// The (version, is_latest, delete_marker) of a key's versions, as listed.
fn versions_of(store: &Store, key: &str) -> Vec<(String, bool, bool)> {
    store
        .list_versions("bkt", key)
        .unwrap()
        .into_iter()
        .filter(|v| v.meta.key == key)
        .map(|v| {
            (
                v.meta.version_name().to_owned(),
                v.is_latest,
                v.meta.delete_marker,
            )
        })
        .collect()
}

fn data_files(dir: &tempfile::TempDir) -> usize {
    fn count(path: &std::path::Path) -> usize {
        std::fs::read_dir(path)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| {
                        if e.path().is_dir() {
                            count(&e.path())
                        } else {
                            1
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    count(&dir.path().join("s/buckets/bkt/data"))
}

use crate::crypto::CustomerKey;

#[test]
fn each_write_makes_a_version_and_old_ones_stay_readable() {
    let (_d, store) = versioned();
    let v1 = put(&store, "k", b"one", Encryption::SseS3);
    let v2 = put(&store, "k", b"two", Encryption::SseC(customer(1)));
    let (id1, id2) = (
        v1.version_id.clone().unwrap(),
        v2.version_id.clone().unwrap(),
    );
    assert_eq!(id1.len(), 32);
    assert_ne!(id1, id2);
    assert_eq!(
        store.head("bkt", "k").unwrap().version_id,
        Some(id2.clone())
    );
    // Each version keeps its own encryption and key.
    assert_eq!(read_version(&store, "k", &id1, None), b"one");
    assert_eq!(read_version(&store, "k", &id2, Some(&customer(1))), b"two");
    assert_eq!(
        store.head_version("bkt", "k", &id1).unwrap().sse.mode(),
        SseMode::SseS3
    );
    assert_eq!(
        versions_of(&store, "k"),
        vec![(id2.clone(), true, false), (id1.clone(), false, false)]
    );
    // Only the current version is listed as an object.
    assert_eq!(store.list("bkt", "").unwrap().len(), 1);
    assert!(matches!(
        store.head_version("bkt", "k", "0123456789abcdef0123456789abcdef"),
        Err(StoreError::NoSuchVersion { .. })
    ));
    assert!(matches!(
        store.head_version("bkt", "k", "../../x"),
        Err(StoreError::InvalidVersionId { .. })
    ));
}

#[test]
fn a_delete_leaves_a_marker_and_deleting_the_marker_brings_the_object_back() {
    let (_d, store) = versioned();
    let v1 = put(&store, "k", b"one", Encryption::SseS3);
    let deleted = store.delete("bkt", "k").unwrap();
    assert!(deleted.delete_marker);
    let marker = deleted.version_id.unwrap();
    assert!(matches!(
        store.head("bkt", "k"),
        Err(StoreError::NoSuchKey { .. })
    ));
    assert!(store.list("bkt", "").unwrap().is_empty());
    assert!(matches!(
        store.head_version("bkt", "k", &marker),
        Err(StoreError::DeleteMarker { .. })
    ));
    let id1 = v1.version_id.unwrap();
    assert_eq!(
        versions_of(&store, "k"),
        vec![(marker.clone(), true, true), (id1.clone(), false, false)]
    );
    // A bucket with only versions left is not empty.
    assert!(matches!(
        store.delete_bucket("bkt"),
        Err(StoreError::BucketNotEmpty(_))
    ));
    let undone = store.delete_version("bkt", "k", &marker).unwrap();
    assert!(undone.delete_marker);
    assert_eq!(get(&store, "k", None, None).unwrap(), b"one");
    assert_eq!(versions_of(&store, "k"), vec![(id1, true, false)]);
}

#[test]
fn deleting_a_version_removes_its_data_and_promotes_the_next() {
    let (dir, store) = versioned();
    let v1 = put(&store, "k", b"one", Encryption::SseS3);
    let v2 = put(&store, "k", b"two", Encryption::SseS3);
    let v3 = put(&store, "k", b"three", Encryption::SseS3);
    assert_eq!(data_files(&dir), 3);
    // A noncurrent one: the current stays.
    store
        .delete_version("bkt", "k", v2.version_id.as_deref().unwrap())
        .unwrap();
    assert_eq!(data_files(&dir), 2);
    assert_eq!(get(&store, "k", None, None).unwrap(), b"three");
    // The current one: the newest of the rest becomes current.
    store
        .delete_version("bkt", "k", v3.version_id.as_deref().unwrap())
        .unwrap();
    assert_eq!(get(&store, "k", None, None).unwrap(), b"one");
    assert_eq!(store.head("bkt", "k").unwrap().version_id, v1.version_id);
    assert_eq!(data_files(&dir), 1);
    store
        .delete_version("bkt", "k", v1.version_id.as_deref().unwrap())
        .unwrap();
    assert_eq!(data_files(&dir), 0);
    assert!(store.list_versions("bkt", "").unwrap().is_empty());
    // Deleting a version that is not there is not an error, as on S3.
    store
        .delete_version("bkt", "k", v1.version_id.as_deref().unwrap())
        .unwrap();
    store.delete_bucket("bkt").unwrap();
}

#[test]
fn suspended_versioning_writes_and_replaces_the_null_version() {
    let (dir, store) = store();
    // Written before versioning: the null version.
    put(&store, "k", b"null one", Encryption::SseS3);
    store.set_versioning("bkt", Versioning::Enabled).unwrap();
    let v2 = put(&store, "k", b"two", Encryption::SseS3);
    let id2 = v2.version_id.unwrap();
    assert_eq!(read_version(&store, "k", NULL_VERSION, None), b"null one");
    store.set_versioning("bkt", Versioning::Suspended).unwrap();
    let v3 = put(&store, "k", b"null two", Encryption::SseS3);
    assert_eq!(v3.version_id, None);
    // The new null version replaced the old one, data file and all; version two stays.
    assert_eq!(
        versions_of(&store, "k"),
        vec![
            (NULL_VERSION.to_owned(), true, false),
            (id2.clone(), false, false)
        ]
    );
    assert_eq!(read_version(&store, "k", NULL_VERSION, None), b"null two");
    assert_eq!(data_files(&dir), 2);
    // A delete while suspended: a null delete marker, in place of the null version.
    let deleted = store.delete("bkt", "k").unwrap();
    assert_eq!(deleted.version_id.as_deref(), Some(NULL_VERSION));
    assert_eq!(
        versions_of(&store, "k"),
        vec![(NULL_VERSION.to_owned(), true, true), (id2, false, false)]
    );
    assert_eq!(data_files(&dir), 1);
    assert!(matches!(
        store.set_versioning("bkt", Versioning::Unversioned),
        Err(StoreError::VersioningCannotBeDisabled(_))
    ));
}

#[test]
fn reencryption_makes_a_new_version_and_the_old_one_keeps_its_encryption() {
    let (dir, store) = versioned();
    let old = put(&store, "k", b"secret", Encryption::SseC(customer(1)));
    for fast_path in [true, false] {
        let before = store.head("bkt", "k").unwrap();
        let (after, _) = store
            .reencrypt(
                "bkt",
                "k",
                &Reencrypt {
                    to: Encryption::SseC(customer(2)),
                    if_match: None,
                    source_key: Some(&customer(if before.version_id == old.version_id {
                        1
                    } else {
                        2
                    })),
                    fast_path,
                },
            )
            .unwrap();
        assert_ne!(after.version_id, before.version_id);
        assert_eq!(after.etag, before.etag);
    }
    // Three versions: the first still opens only with the first key.
    let id = old.version_id.as_deref().unwrap();
    assert_eq!(read_version(&store, "k", id, Some(&customer(1))), b"secret");
    let mut out = Vec::new();
    assert!(matches!(
        store.get("bkt", "k", Some(id), None, Some(&customer(2)), &mut out),
        Err(StoreError::AccessDenied { .. })
    ));
    assert_eq!(versions_of(&store, "k").len(), 3);
    // The fast path shares the first version's data file; deleting the first version
    // keeps the file the second still reads.
    assert_eq!(data_files(&dir), 2);
    store.delete_version("bkt", "k", id).unwrap();
    let second = &versions_of(&store, "k")[1].0;
    assert_eq!(
        read_version(&store, "k", second, Some(&customer(2))),
        b"secret"
    );
    assert_eq!(data_files(&dir), 2);
}

#[test]
fn tags_of_a_version_change_in_place_and_a_copy_of_an_old_version_is_new() {
    let (_d, store) = versioned();
    let v1 = put(&store, "k", b"one", Encryption::SseS3);
    put(&store, "k", b"two", Encryption::SseS3);
    let id1 = v1.version_id.clone().unwrap();
    let tags = BTreeMap::from([("state".to_owned(), "old".to_owned())]);
    let tagged = store
        .set_tags("bkt", "k", Some(&id1), tags.clone())
        .unwrap();
    assert_eq!(tagged.version_id, v1.version_id);
    assert_eq!(store.head_version("bkt", "k", &id1).unwrap().tags, tags);
    assert_ne!(store.head("bkt", "k").unwrap().tags, tags);
    assert_eq!(versions_of(&store, "k").len(), 2);
    // A copy of version one onto its own key: a new current version with its bytes.
    let (copied, method) = store
        .copy_object(CopyObject {
            source: CopySource {
                bucket: "bkt".into(),
                key: "k".into(),
                version_id: Some(id1.clone()),
                ..Default::default()
            },
            key: "k".into(),
            ..onto_itself()
        })
        .unwrap();
    assert_eq!(method, CopyMethod::NewObject);
    assert_eq!(get(&store, "k", None, None).unwrap(), b"one");
    assert_eq!(copied.tags, tags);
    assert_eq!(versions_of(&store, "k").len(), 3);
}
