//! The local store on real files in a temporary folder.

use std::collections::BTreeMap;
use std::ops::Range;

use md5::Md5;

use super::*;
use crate::crypto::{self, CustomerKey, MasterKey};
use crate::sse::SseMode;

pub(super) const SEG: usize = crypto::DEFAULT_SEGMENT_SIZE as usize;

pub(super) fn master() -> MasterKey {
    MasterKey::from_slice(&[9u8; 32]).unwrap()
}

pub(super) fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::init(&dir.path().join("s"), master()).unwrap();
    store.create_bucket("bkt", None).unwrap();
    (dir, store)
}

pub(super) fn customer(byte: u8) -> CustomerKey {
    CustomerKey::from_slice(&[byte; 32]).unwrap()
}

pub(super) fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

pub(super) fn modes() -> Vec<Encryption> {
    vec![
        Encryption::None,
        Encryption::SseS3,
        Encryption::SseKms {
            key_id: None,
            bucket_key: false,
        },
        Encryption::DsseKms {
            key_id: "alias/aws/s3".into(),
        },
        Encryption::SseC(customer(1)),
    ]
}

pub(super) fn key_for(e: &Encryption) -> Option<CustomerKey> {
    match e {
        Encryption::SseC(k) => Some(k.clone()),
        _ => None,
    }
}

pub(super) fn put(store: &Store, key: &str, body: &[u8], e: Encryption) -> ObjectMeta {
    store
        .put(
            "bkt",
            key,
            body,
            PutOptions {
                encryption: Some(e),
                content_type: Some("text/plain".into()),
                metadata: BTreeMap::from([("owner".into(), "ops".into())]),
                tags: BTreeMap::from([("team".into(), "blue".into())]),
                ..Default::default()
            },
        )
        .unwrap()
}

pub(super) fn get(
    store: &Store,
    key: &str,
    range: Option<Range<u64>>,
    k: Option<&CustomerKey>,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    store.get("bkt", key, None, range, k, &mut out)?;
    Ok(out)
}

#[test]
fn every_mode_round_trips_whole_and_in_ranges() {
    let (_d, store) = store();
    for e in modes() {
        for len in [0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG + 7] {
            let body = data(len, len as u8);
            let name = format!("{}/{len}", e.mode());
            let meta = put(&store, &name, &body, e.clone());
            assert_eq!(meta.sse.mode(), e.mode());
            assert_eq!(meta.size, len as u64);
            assert_eq!(meta.etag, hex(&Md5::digest(&body)));
            let k = key_for(&e);
            assert_eq!(
                get(&store, &name, None, k.as_ref()).unwrap(),
                body,
                "{name}"
            );
            let l = len as u64;
            for r in [0..0, 0..l, l / 2..l, l.saturating_sub(3)..l] {
                let got = get(&store, &name, Some(r.clone()), k.as_ref()).unwrap();
                assert_eq!(got, &body[r.start as usize..r.end as usize], "{name} {r:?}");
            }
            if len > SEG + 2 {
                let across = SEG as u64 - 2..SEG as u64 + 2;
                let got = get(&store, &name, Some(across.clone()), k.as_ref()).unwrap();
                assert_eq!(got, &body[across.start as usize..across.end as usize]);
            }
        }
    }
}

#[test]
fn the_bucket_default_applies_when_a_put_names_none() {
    let (_d, store) = store();
    let meta = store
        .put("bkt", "a", &b"x"[..], PutOptions::default())
        .unwrap();
    assert_eq!(meta.sse.mode(), SseMode::SseS3);
    store
        .set_default_encryption(
            "bkt",
            DefaultEncryption::DsseKms {
                key_id: "alias/aws/s3".into(),
            },
            false,
        )
        .unwrap();
    let meta = store
        .put("bkt", "b", &b"x"[..], PutOptions::default())
        .unwrap();
    assert_eq!(meta.sse.mode(), SseMode::DsseKms);
}

#[test]
fn any_key_is_stored_inside_the_store() {
    let (dir, store) = store();
    let long = "k".repeat(1024);
    let keys = [
        "../../etc/passwd",
        "a//b",
        "dir/",
        "/leading",
        ".",
        "..",
        "名前/ファイル.txt",
        "sp ace+plus%25",
        long.as_str(),
    ];
    for (i, key) in keys.iter().enumerate() {
        put(&store, key, &data(10, i as u8), Encryption::SseS3);
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            get(&store, key, None, None).unwrap(),
            data(10, i as u8),
            "{key}"
        );
    }
    let listed: Vec<String> = store
        .list("bkt", "")
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    let mut sorted: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    sorted.sort();
    assert_eq!(listed, sorted);
    assert_eq!(store.list("bkt", "名前/").unwrap().len(), 1);
    // Nothing was written outside the store's folder.
    let outside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, ["s"]);
    let too_long = "k".repeat(1025);
    assert!(matches!(
        store.put("bkt", &too_long, &b""[..], PutOptions::default()),
        Err(StoreError::InvalidKey(_))
    ));
    assert!(matches!(
        store.put("bkt", "", &b""[..], PutOptions::default()),
        Err(StoreError::InvalidKey(_))
    ));
    assert!(matches!(
        store.create_bucket("../x", None),
        Err(StoreError::InvalidBucketName(_))
    ));
}

#[test]
fn a_bucket_that_blocks_sse_c_refuses_every_new_sse_c_object_and_still_reads_the_old() {
    let (_d, store) = store();
    put(&store, "old", b"kept", Encryption::SseC(customer(1)));
    put(&store, "plain", b"p", Encryption::SseS3);
    store
        .set_default_encryption("bkt", DefaultEncryption::SseS3, true)
        .unwrap();
    assert!(store.bucket("bkt").unwrap().sse_c_blocked);
    fn blocked<T>(r: Result<T, StoreError>) -> bool {
        matches!(r, Err(StoreError::EncryptionTypeBlocked { .. }))
    }
    let sse_c = || PutOptions {
        encryption: Some(Encryption::SseC(customer(2))),
        ..Default::default()
    };
    assert!(blocked(store.put("bkt", "new", &b"x"[..], sse_c())));
    assert!(blocked(store.create_upload("bkt", "mp", sse_c())));
    assert!(blocked(store.copy_object(CopyObject {
        source: CopySource {
            bucket: "bkt".into(),
            key: "plain".into(),
            ..Default::default()
        },
        bucket: "bkt".into(),
        key: "copy".into(),
        condition: WriteCondition::Always,
        encryption: Some(Encryption::SseC(customer(2))),
        metadata: Directive::Copy,
        tags: Directive::Copy,
        headers: BTreeMap::new(),
        storage_class: None,
        website_redirect_location: None,
        checksum_algorithm: None,
    })));
    assert!(blocked(store.reencrypt(
        "bkt",
        "plain",
        &Reencrypt {
            to: Encryption::SseC(customer(2)),
            if_match: None,
            source_key: None,
            fast_path: true,
        },
    )));
    // Nothing was written, and what was there stays readable.
    for key in ["new", "mp", "copy"] {
        assert!(matches!(
            store.head("bkt", key),
            Err(StoreError::NoSuchKey { .. })
        ));
    }
    assert!(store.list_uploads("bkt").unwrap().is_empty());
    assert_eq!(
        store.head("bkt", "plain").unwrap().sse.mode(),
        SseMode::SseS3
    );
    assert_eq!(
        get(&store, "old", None, Some(&customer(1))).unwrap(),
        b"kept"
    );
    // Other encryptions are written as before; unblocking lets SSE-C in again.
    put(
        &store,
        "kms",
        b"k",
        Encryption::SseKms {
            key_id: None,
            bucket_key: false,
        },
    );
    store
        .set_default_encryption("bkt", DefaultEncryption::SseS3, false)
        .unwrap();
    store.put("bkt", "new", &b"x"[..], sse_c()).unwrap();
}

#[test]
fn sse_c_needs_the_right_key() {
    let (_d, store) = store();
    put(&store, "c", b"secret bytes", Encryption::SseC(customer(1)));
    assert!(matches!(
        get(&store, "c", None, None),
        Err(StoreError::SseCKeyRequired { .. })
    ));
    assert!(matches!(
        get(&store, "c", None, Some(&customer(2))),
        Err(StoreError::AccessDenied { .. })
    ));
    assert_eq!(
        get(&store, "c", None, Some(&customer(1))).unwrap(),
        b"secret bytes"
    );
    put(&store, "plain", b"p", Encryption::SseS3);
    assert!(matches!(
        get(&store, "plain", None, Some(&customer(1))),
        Err(StoreError::SseCKeyNotExpected { .. })
    ));
}

#[test]
fn reencryption_between_every_pair_of_modes_keeps_everything_but_the_encryption() {
    let (_d, store) = store();
    let body = data(2 * SEG + 100, 3);
    for from in modes() {
        for to in modes()
            .into_iter()
            .filter(|m| !matches!(m, Encryption::None))
        {
            let name = format!("{}-to-{}", from.mode(), to.mode());
            let before = put(&store, &name, &body, from.clone());
            for fast in [false, true] {
                let source = if fast { key_for(&to) } else { key_for(&from) };
                let (after, _) = store
                    .reencrypt(
                        "bkt",
                        &name,
                        &Reencrypt {
                            to: to.clone(),
                            if_match: Some(&before.etag),
                            source_key: source.as_ref(),
                            fast_path: fast,
                        },
                    )
                    .unwrap_or_else(|e| panic!("{name} fast={fast}: {e}"));
                assert_eq!(after.sse.mode(), to.mode(), "{name}");
                assert_eq!(after.etag, before.etag);
                assert_eq!(after.size, before.size);
                assert_eq!(after.content_type, before.content_type);
                assert_eq!(after.metadata, before.metadata);
                assert_eq!(after.tags, before.tags);
                assert_eq!(after.created, before.created);
                assert_eq!(
                    get(&store, &name, None, key_for(&to).as_ref()).unwrap(),
                    body,
                    "{name}"
                );
            }
        }
    }
    // Old data files are gone: one data file per object.
    let objects = store.list("bkt", "").unwrap().len();
    let mut files = 0;
    for shard in std::fs::read_dir(store.bucket_dir("bkt").join("data")).unwrap() {
        files += std::fs::read_dir(shard.unwrap().path()).unwrap().count();
    }
    assert_eq!(files, objects);
}

#[test]
fn the_fast_path_reseals_data_keys_without_touching_data() {
    let (_d, mut store) = store();
    let body = data(SEG + 5, 1);
    let s3 = put(&store, "s3", &body, Encryption::SseS3);
    store.keys_mut().rotate_root().unwrap();
    let fast = |store: &Store, name: &str, to: Encryption, source: Option<&CustomerKey>| {
        store
            .reencrypt(
                "bkt",
                name,
                &Reencrypt {
                    to,
                    if_match: None,
                    source_key: source,
                    fast_path: true,
                },
            )
            .unwrap()
    };
    let (after, method) = fast(&store, "s3", Encryption::SseS3, None);
    assert_eq!(method, ReencryptMethod::Reseal);
    assert_eq!(after.data_id, s3.data_id);
    assert_eq!(after.sse.key_version(), Some(2));

    let other = store.keys().create_key(Some("other"), "").unwrap();
    let kms = put(
        &store,
        "kms",
        &body,
        Encryption::SseKms {
            key_id: None,
            bucket_key: false,
        },
    );
    let (after, method) = fast(
        &store,
        "kms",
        Encryption::SseKms {
            key_id: Some("alias/other".into()),
            bucket_key: false,
        },
        None,
    );
    assert_eq!(method, ReencryptMethod::Reseal);
    assert_eq!(after.data_id, kms.data_id);
    assert_eq!(after.sse.kms_key_id(), Some(other.id.as_str()));

    let c = put(&store, "c", &body, Encryption::SseC(customer(1)));
    let (after, method) = fast(
        &store,
        "c",
        Encryption::SseC(customer(2)),
        Some(&customer(1)),
    );
    assert_eq!(method, ReencryptMethod::Reseal);
    assert_eq!(after.data_id, c.data_id);
    assert!(matches!(
        get(&store, "c", None, Some(&customer(1))),
        Err(StoreError::AccessDenied { .. })
    ));
    assert_eq!(get(&store, "c", None, Some(&customer(2))).unwrap(), body);

    // A mode change is always a rewrite.
    let (after, method) = fast(
        &store,
        "s3",
        Encryption::SseKms {
            key_id: None,
            bucket_key: false,
        },
        None,
    );
    assert_eq!(method, ReencryptMethod::Rewrite);
    assert_ne!(after.data_id, s3.data_id);
}

#[test]
fn a_changed_etag_stops_a_reencryption() {
    let (_d, store) = store();
    put(&store, "o", b"one", Encryption::None);
    let seen = store.head("bkt", "o").unwrap().etag;
    put(&store, "o", b"two", Encryption::None);
    let err = store
        .reencrypt(
            "bkt",
            "o",
            &Reencrypt {
                to: Encryption::SseS3,
                if_match: Some(&seen),
                source_key: None,
                fast_path: false,
            },
        )
        .unwrap_err();
    assert!(
        matches!(err, StoreError::PreconditionFailed { .. }),
        "{err}"
    );
    assert_eq!(get(&store, "o", None, None).unwrap(), b"two");
    assert_eq!(store.head("bkt", "o").unwrap().sse.mode(), SseMode::NotSse);
}

fn data_file(store: &Store, key: &str) -> PathBuf {
    let meta = store.head("bkt", key).unwrap();
    store.data_path("bkt", &meta.data_id)
}

fn assert_refused(store: &Store, key: &str, what: &str) {
    let err = get(store, key, None, None).expect_err(what);
    assert!(
        matches!(err, StoreError::Crypto { .. } | StoreError::Corrupt { .. }),
        "{what}: {err}"
    );
    let text = err.to_string();
    assert!(
        text.contains(key),
        "{what}: the error names the object: {text}"
    );
}

#[test]
fn tampering_is_detected() {
    let (_d, store) = store();
    let body = data(3 * SEG, 5);
    for name in ["flip", "swap", "cut", "cut-border", "append", "other"] {
        put(&store, name, &body, Encryption::SseS3);
    }
    let edit = |name: &str, f: &dyn Fn(&mut Vec<u8>)| {
        let path = data_file(&store, name);
        let mut bytes = std::fs::read(&path).unwrap();
        f(&mut bytes);
        std::fs::write(&path, bytes).unwrap();
    };
    let seg = SEG + crypto::TAG_LEN;
    let h = crypto::HEADER_LEN;
    edit("flip", &|b| b[h + 100] ^= 1);
    assert_refused(&store, "flip", "a flipped bit");
    edit("swap", &|b| {
        let (first, rest) = b[h..].split_at_mut(seg);
        first.swap_with_slice(&mut rest[..seg]);
    });
    assert_refused(&store, "swap", "two segments swapped");
    edit("cut", &|b| b.truncate(b.len() - 10));
    assert_refused(&store, "cut", "a truncation");
    edit("cut-border", &|b| b.truncate(h + 2 * seg));
    assert_refused(&store, "cut-border", "a truncation at a segment border");
    edit("append", &|b| b.extend_from_slice(&[0u8; 40]));
    assert_refused(&store, "append", "bytes appended");

    // Another object's data (a different data key) under this object's metadata.
    let other = std::fs::read(data_file(&store, "other")).unwrap();
    put(&store, "victim", &body, Encryption::SseS3);
    std::fs::write(data_file(&store, "victim"), other).unwrap();
    assert_refused(&store, "victim", "data files swapped");
}

#[test]
fn edited_or_moved_metadata_is_detected() {
    let (_d, store) = store();
    put(&store, "a", b"aaaa", Encryption::SseS3);
    put(&store, "b", b"bbbb", Encryption::SseS3);
    let path = store.meta_path("bkt", "a");
    let original = std::fs::read(&path).unwrap();
    let edited = String::from_utf8_lossy(&original).replace("\"size\":4", "\"size\":3");
    assert_ne!(edited.as_bytes(), original.as_slice());
    std::fs::write(&path, edited.as_bytes()).unwrap();
    let err = store.head("bkt", "a").unwrap_err();
    assert!(err.to_string().contains("changed outside reseal"), "{err}");

    // b's (authentic) metadata put in a's place: its sealed key belongs to b.
    std::fs::copy(store.meta_path("bkt", "b"), &path).unwrap();
    let err = store.head("bkt", "a").unwrap_err();
    assert!(err.to_string().contains("belongs to bkt/b"), "{err}");
}

#[test]
fn another_master_key_cannot_open_the_store() {
    let (d, store) = store();
    drop(store);
    let err = Store::open(
        &d.path().join("s"),
        MasterKey::from_slice(&[1u8; 32]).unwrap(),
    )
    .err()
    .expect("a wrong master key is refused");
    assert!(err.is_user_error(), "{err}");
}

#[test]
fn tags_change_without_a_key_and_deletes_remove_data() {
    let (_d, store) = store();
    put(&store, "c", b"x", Encryption::SseC(customer(4)));
    let meta = store
        .set_tags("bkt", "c", None, BTreeMap::from([("k".into(), "v".into())]))
        .unwrap();
    assert_eq!(meta.tags.len(), 1);
    let data = data_file(&store, "c");
    store.delete("bkt", "c").unwrap();
    assert!(!data.exists());
    // Deleting a key that never was is not an error, as on S3.
    assert_eq!(
        store.delete("bkt", "never-was").unwrap(),
        Deleted::default()
    );
    assert!(matches!(
        store.head("bkt", "c"),
        Err(StoreError::NoSuchKey { .. })
    ));
    assert!(store.delete_bucket("bkt").is_ok());
}
