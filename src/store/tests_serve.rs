//! What `reseal serve` needs of the store: multipart uploads, conditional reads and
//! writes, byte ranges as HTTP gives them, copies, content MD5s, checksums.

use std::collections::BTreeMap;

use md5::Md5;

use super::tests::*;
use super::*;
use crate::sse::SseMode;

const MIB: usize = 1024 * 1024;

fn all_parts_files(store: &Store) -> usize {
    let dir = store.bucket_dir("bkt").join("data");
    fs::read_dir(dir)
        .unwrap()
        .map(|shard| fs::read_dir(shard.unwrap().path()).unwrap().count())
        .sum()
}

fn multipart(store: &Store, key: &str, e: &Encryption, parts: &[Vec<u8>]) -> ObjectMeta {
    let upload = store
        .create_upload(
            "bkt",
            key,
            PutOptions {
                encryption: Some(e.clone()),
                content_type: Some("text/x-parts".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let k = key_for(e);
    let mut listed = Vec::new();
    // Out of order, and part 2 written twice: the second write wins.
    for (i, body) in parts.iter().enumerate().rev() {
        let number = i as u32 + 1;
        if number == 2 {
            store
                .upload_part(
                    "bkt",
                    &upload.id,
                    2,
                    k.as_ref(),
                    PartDigests::default(),
                    &mut &b"stale"[..],
                )
                .unwrap();
        }
        let part = store
            .upload_part(
                "bkt",
                &upload.id,
                number,
                k.as_ref(),
                PartDigests::default(),
                &mut &body[..],
            )
            .unwrap();
        listed.push(CompletedPart {
            number,
            etag: part.etag,
            checksum: None,
        });
    }
    listed.reverse();
    assert_eq!(
        store.list_parts("bkt", &upload.id).unwrap().len(),
        parts.len()
    );
    let meta = store
        .complete_upload("bkt", &upload.id, &listed, None, WriteCondition::Always)
        .unwrap();
    assert!(matches!(
        store.upload("bkt", &upload.id),
        Err(StoreError::NoSuchUpload(_))
    ));
    meta
}

#[test]
fn multipart_objects_in_every_mode_read_whole_in_ranges_and_reencrypt() {
    let (_d, store) = store();
    let parts = vec![data(5 * MIB + 3, 2), data(1000, 3)];
    let whole: Vec<u8> = parts.concat();
    let mut md5s = Vec::new();
    for p in &parts {
        md5s.extend_from_slice(&Md5::digest(p));
    }
    let etag = format!("{}-2", hex(&Md5::digest(&md5s)));
    for e in modes() {
        let name = format!("mp/{}", e.mode());
        let meta = multipart(&store, &name, &e, &parts);
        assert_eq!(meta.etag, etag);
        assert_eq!(meta.size, whole.len() as u64);
        assert_eq!(meta.sse.mode(), e.mode());
        assert_eq!(meta.content_type.as_deref(), Some("text/x-parts"));
        let k = key_for(&e);
        assert_eq!(get(&store, &name, None, k.as_ref()).unwrap(), whole);
        let five = 5 * MIB as u64;
        for r in [
            0..10,
            five - 5..five + 5,
            five + 1..five + 900,
            0..whole.len() as u64,
        ] {
            let got = get(&store, &name, Some(r.clone()), k.as_ref()).unwrap();
            assert_eq!(
                got,
                &whole[r.start as usize..r.end as usize],
                "{name} {r:?}"
            );
        }
        // Re-encryption keeps the bytes and the multipart ETag, and makes one data file.
        let (after, how) = store
            .reencrypt(
                "bkt",
                &name,
                &Reencrypt {
                    to: Encryption::SseS3,
                    if_match: Some(&etag),
                    source_key: k.as_ref(),
                    fast_path: true,
                },
            )
            .unwrap();
        assert_eq!(after.etag, etag);
        if e.mode() == SseMode::SseS3 {
            assert_eq!(how, ReencryptMethod::Reseal);
            assert_eq!(after.parts.len(), 2);
        } else {
            assert_eq!(how, ReencryptMethod::Rewrite);
            assert!(after.parts.is_empty());
            assert_eq!(
                after.md5.as_deref(),
                Some(hex(&Md5::digest(&whole)).as_str())
            );
        }
        assert_eq!(get(&store, &name, None, None).unwrap(), whole);
        store.delete("bkt", &name).unwrap();
    }
    assert_eq!(all_parts_files(&store), 0, "no data file is left behind");
}

#[test]
fn multipart_completion_checks_parts_and_abort_leaves_nothing() {
    let (_d, store) = store();
    let upload = store
        .create_upload("bkt", "k", PutOptions::default())
        .unwrap();
    let small = store
        .upload_part(
            "bkt",
            &upload.id,
            1,
            None,
            PartDigests::default(),
            &mut &b"small"[..],
        )
        .unwrap();
    let last = store
        .upload_part(
            "bkt",
            &upload.id,
            2,
            None,
            PartDigests::default(),
            &mut &b"last"[..],
        )
        .unwrap();
    let complete = |parts: &[(u32, String)]| {
        let parts: Vec<CompletedPart> = parts
            .iter()
            .map(|(number, etag)| CompletedPart {
                number: *number,
                etag: etag.clone(),
                checksum: None,
            })
            .collect();
        store.complete_upload("bkt", &upload.id, &parts, None, WriteCondition::Always)
    };
    assert!(matches!(
        complete(&[(1, small.etag.clone()), (2, last.etag.clone())]),
        Err(StoreError::EntityTooSmall { number: 1, .. })
    ));
    assert!(matches!(
        complete(&[(2, last.etag.clone()), (1, small.etag.clone())]),
        Err(StoreError::InvalidPartOrder)
    ));
    assert!(matches!(
        complete(&[(1, last.etag.clone())]),
        Err(StoreError::InvalidPart(_))
    ));
    assert!(matches!(
        store.upload_part(
            "bkt",
            &upload.id,
            10_001,
            None,
            PartDigests::default(),
            &mut &b""[..]
        ),
        Err(StoreError::InvalidPartNumber { number: 10_001 })
    ));
    assert!(matches!(
        store.upload("bkt", "../../../../etc"),
        Err(StoreError::NoSuchUpload(_))
    ));
    assert_eq!(store.list_uploads("bkt").unwrap().len(), 1);
    assert!(matches!(
        store.head("bkt", "k"),
        Err(StoreError::NoSuchKey { .. })
    ));
    store.abort_upload("bkt", &upload.id).unwrap();
    assert!(store.list_uploads("bkt").unwrap().is_empty());
    assert_eq!(all_parts_files(&store), 0);
    assert!(matches!(
        store.upload_part(
            "bkt",
            &upload.id,
            1,
            None,
            PartDigests::default(),
            &mut &b"x"[..]
        ),
        Err(StoreError::NoSuchUpload(_))
    ));
}

#[test]
fn an_sse_c_upload_needs_its_key_for_every_part() {
    let (_d, store) = store();
    let upload = store
        .create_upload(
            "bkt",
            "c",
            PutOptions {
                encryption: Some(Encryption::SseC(customer(5))),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(matches!(
        store.upload_part(
            "bkt",
            &upload.id,
            1,
            None,
            PartDigests::default(),
            &mut &b"x"[..]
        ),
        Err(StoreError::SseCKeyRequired { .. })
    ));
    assert!(matches!(
        store.upload_part(
            "bkt",
            &upload.id,
            1,
            Some(&customer(6)),
            PartDigests::default(),
            &mut &b"x"[..]
        ),
        Err(StoreError::AccessDenied { .. })
    ));
    let part = store
        .upload_part(
            "bkt",
            &upload.id,
            1,
            Some(&customer(5)),
            PartDigests::default(),
            &mut &b"x"[..],
        )
        .unwrap();
    let meta = store
        .complete_upload(
            "bkt",
            &upload.id,
            &[CompletedPart {
                number: 1,
                etag: part.etag,
                checksum: None,
            }],
            None,
            WriteCondition::Always,
        )
        .unwrap();
    assert!(store.check_customer_key(&meta, Some(&customer(5))).is_ok());
    assert!(matches!(
        store.check_customer_key(&meta, Some(&customer(6))),
        Err(StoreError::AccessDenied { .. })
    ));
    assert!(matches!(
        store.check_customer_key(&meta, None),
        Err(StoreError::SseCKeyRequired { .. })
    ));
}

#[test]
fn reads_check_conditions_and_resolve_ranges() {
    let (_d, store) = store();
    let body = data(1000, 7);
    let meta = put(&store, "r", &body, Encryption::SseS3);
    let secs = meta.modified / 1000;
    let read = |conditions: ReadConditions, range: Option<ByteRange>| {
        let mut out = Vec::new();
        let mut seen = None;
        let request = GetRequest {
            range,
            part_number: None,
            version_id: None,
            sse_c: None,
            conditions,
        };
        store
            .get_object("bkt", "r", &request, &mut |_, r| seen = Some(r), &mut out)
            .map(|_| (seen.unwrap(), out))
    };
    let quoted = format!("\"{}\"", meta.etag);
    for (conditions, ok) in [
        (
            ReadConditions {
                if_match: Some(quoted.clone()),
                ..Default::default()
            },
            true,
        ),
        (
            ReadConditions {
                if_match: Some("\"other\"".into()),
                ..Default::default()
            },
            false,
        ),
        (
            ReadConditions {
                if_match: Some("*".into()),
                if_unmodified_since: Some(secs - 10),
                ..Default::default()
            },
            true,
        ),
        (
            ReadConditions {
                if_unmodified_since: Some(secs - 10),
                ..Default::default()
            },
            false,
        ),
        (
            ReadConditions {
                if_unmodified_since: Some(secs),
                ..Default::default()
            },
            true,
        ),
    ] {
        let got = read(conditions.clone(), None);
        assert_eq!(got.is_ok(), ok, "{conditions:?}");
        if !ok {
            assert!(matches!(got, Err(StoreError::PreconditionFailed { .. })));
        }
    }
    for (conditions, modified) in [
        (
            ReadConditions {
                if_none_match: Some(quoted.clone()),
                ..Default::default()
            },
            false,
        ),
        (
            ReadConditions {
                if_none_match: Some("\"other\"".into()),
                if_modified_since: Some(secs + 10),
                ..Default::default()
            },
            true,
        ),
        (
            ReadConditions {
                if_modified_since: Some(secs),
                ..Default::default()
            },
            false,
        ),
        (
            ReadConditions {
                if_modified_since: Some(secs - 1),
                ..Default::default()
            },
            true,
        ),
    ] {
        let got = read(conditions.clone(), None);
        assert_eq!(got.is_ok(), modified, "{conditions:?}");
        if !modified {
            assert!(matches!(got, Err(StoreError::NotModified { .. })));
        }
    }
    for (range, want) in [
        (
            ByteRange::From {
                first: 10,
                last: Some(19),
            },
            Some(10..20),
        ),
        (
            ByteRange::From {
                first: 990,
                last: Some(5000),
            },
            Some(990..1000),
        ),
        (
            ByteRange::From {
                first: 990,
                last: None,
            },
            Some(990..1000),
        ),
        (ByteRange::Suffix(10), Some(990..1000)),
        (ByteRange::Suffix(5000), Some(0..1000)),
        (
            ByteRange::From {
                first: 1000,
                last: None,
            },
            None,
        ),
        (ByteRange::Suffix(0), None),
    ] {
        match (read(ReadConditions::default(), Some(range)), want) {
            (Ok((r, out)), Some(want)) => {
                assert_eq!(r, want, "{range:?}");
                assert_eq!(out, &body[want.start as usize..want.end as usize]);
            }
            (Err(StoreError::InvalidRange { .. }), None) => {}
            (got, want) => panic!("{range:?}: {:?}, wanted {want:?}", got.map(|g| g.0)),
        }
    }
}

#[test]
fn writes_check_conditions_and_digests_and_copies_keep_their_source() {
    let (_d, store) = store();
    // Larger than a segment, so that the copy's reads meet the end of the pipe twice.
    let body = data(SEG * 2 + 5, 1);
    let first = put(&store, "w", &body, Encryption::SseC(customer(1)));
    let write = |condition: WriteCondition, md5: Option<String>| {
        store.put(
            "bkt",
            "w",
            &b"new"[..],
            PutOptions {
                condition,
                content_md5: md5,
                ..Default::default()
            },
        )
    };
    assert!(matches!(
        write(WriteCondition::IfAbsent, None),
        Err(StoreError::PreconditionFailed { .. })
    ));
    assert!(matches!(
        write(WriteCondition::IfMatch("nope".into()), None),
        Err(StoreError::PreconditionFailed { .. })
    ));
    assert!(matches!(
        write(WriteCondition::Always, Some("0".repeat(32))),
        Err(StoreError::BadDigest { .. })
    ));
    assert!(matches!(
        store.put(
            "bkt",
            "absent",
            &b"x"[..],
            PutOptions {
                condition: WriteCondition::IfMatch(first.etag.clone()),
                ..Default::default()
            }
        ),
        Err(StoreError::NoSuchKey { .. })
    ));
    assert_eq!(
        get(&store, "w", None, Some(&customer(1))).unwrap(),
        body,
        "refused writes change nothing"
    );
    // A copy to another key, decrypted with the source's key and sealed anew.
    let copy = |conditions: ReadConditions| {
        store.copy(
            &CopySource {
                bucket: "bkt".into(),
                key: "w".into(),
                version_id: None,
                sse_c: Some(customer(1)),
                conditions,
            },
            "bkt",
            "copy",
            PutOptions {
                encryption: Some(Encryption::SseKms {
                    key_id: None,
                    bucket_key: true,
                }),
                ..Default::default()
            },
        )
    };
    assert!(matches!(
        copy(ReadConditions {
            if_match: Some("nope".into()),
            ..Default::default()
        }),
        Err(StoreError::PreconditionFailed { .. })
    ));
    let copied = copy(ReadConditions {
        if_match: Some(first.etag.clone()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(copied.etag, first.etag);
    assert_eq!(copied.sse.mode(), SseMode::SseKms);
    assert_eq!(get(&store, "copy", None, None).unwrap(), body);
    // With the wrong source key, nothing is written.
    let wrong = store.copy(
        &CopySource {
            bucket: "bkt".into(),
            key: "w".into(),
            sse_c: Some(customer(2)),
            ..Default::default()
        },
        "bkt",
        "copy2",
        PutOptions::default(),
    );
    assert!(matches!(wrong, Err(StoreError::AccessDenied { .. })));
    assert!(matches!(
        store.head("bkt", "copy2"),
        Err(StoreError::NoSuchKey { .. })
    ));
}

#[test]
fn storage_class_and_website_redirect_are_kept_and_standard_is_not_recorded() {
    let (_d, store) = store();
    let write = |key: &str, class: &str| {
        store
            .put(
                "bkt",
                key,
                &b"x"[..],
                PutOptions {
                    headers: BTreeMap::from([("cache-control".into(), "max-age=1".into())]),
                    storage_class: Some(class.into()),
                    website_redirect_location: Some("/elsewhere".into()),
                    ..Default::default()
                },
            )
            .unwrap()
    };
    let ia = write("ia", "STANDARD_IA");
    assert_eq!(ia.storage_class(), Some("STANDARD_IA"));
    assert_eq!(ia.website_redirect_location(), Some("/elsewhere"));
    assert_eq!(store.head("bkt", "ia").unwrap().headers, ia.headers);
    let standard = write("standard", STANDARD_STORAGE_CLASS);
    assert_eq!(standard.storage_class(), None);
    assert_eq!(standard.headers.len(), 2, "{:?}", standard.headers);
}

fn checked(algorithm: ChecksumAlgorithm, expected: ExpectedChecksum) -> PutOptions {
    PutOptions {
        checksum: Some(ChecksumRequest {
            algorithm,
            expected,
        }),
        ..Default::default()
    }
}

#[test]
fn a_checksum_is_kept_and_a_wrong_one_writes_nothing() {
    let (_d, store) = store();
    let body = data(SEG + 5, 3);
    let sha = ChecksumAlgorithm::Sha256;
    let right = sha.digest(&body);
    let meta = store
        .put(
            "bkt",
            "given",
            &body[..],
            checked(sha, ExpectedChecksum::Value(right.clone())),
        )
        .unwrap();
    let kept = store.head("bkt", "given").unwrap().checksum.unwrap();
    assert_eq!(
        (kept.value, kept.checksum_type),
        (right, ChecksumType::FullObject)
    );
    // A value that comes after the body (a trailer) is read once the body is.
    let at_end =
        |v: Option<Vec<u8>>| ExpectedChecksum::AtEnd(std::sync::Arc::new(move || v.clone()));
    let crc = ChecksumAlgorithm::Crc32c;
    store
        .put(
            "bkt",
            "trailer",
            &body[..],
            checked(crc, at_end(Some(crc.digest(&body)))),
        )
        .unwrap();
    let files = all_parts_files(&store);
    for (key, expected) in [
        ("wrong", ExpectedChecksum::Value(crc.digest(b"other"))),
        ("wrong-trailer", at_end(Some(crc.digest(b"other")))),
        ("no-trailer", at_end(None)),
    ] {
        assert!(matches!(
            store.put("bkt", key, &body[..], checked(crc, expected)),
            Err(StoreError::BadChecksum {
                algorithm: ChecksumAlgorithm::Crc32c,
                ..
            })
        ));
        assert!(matches!(
            store.head("bkt", key),
            Err(StoreError::NoSuchKey { .. })
        ));
    }
    assert_eq!(
        all_parts_files(&store),
        files,
        "no data file is left behind"
    );
    // Re-encryption keeps it, whichever way it goes.
    for to in [Encryption::SseC(customer(1)), Encryption::None] {
        let source_key = store.head("bkt", "given").unwrap();
        let source_key = matches!(source_key.sse, SseState::SseC { .. }).then(|| customer(1));
        let (after, _) = store
            .reencrypt(
                "bkt",
                "given",
                &Reencrypt {
                    to,
                    if_match: None,
                    source_key: source_key.as_ref(),
                    fast_path: false,
                },
            )
            .unwrap();
        assert_eq!(after.checksum, meta.checksum);
    }
}

#[test]
fn multipart_checksums_are_made_of_the_parts() {
    let (_d, store) = store();
    let parts = [data(5 * MIB, 1), data(100, 2)];
    let whole = parts.concat();
    let upload_with = |algorithm, checksum_type| {
        store.create_upload(
            "bkt",
            "mp",
            PutOptions {
                checksum_type,
                ..checked(algorithm, ExpectedChecksum::Unknown)
            },
        )
    };
    assert!(matches!(
        upload_with(ChecksumAlgorithm::Crc64Nvme, Some(ChecksumType::Composite)),
        Err(StoreError::ChecksumTypeNotAllowed { .. })
    ));
    assert!(matches!(
        upload_with(ChecksumAlgorithm::Sha1, Some(ChecksumType::FullObject)),
        Err(StoreError::ChecksumTypeNotAllowed { .. })
    ));
    for (algorithm, checksum_type) in [
        (ChecksumAlgorithm::Crc32, ChecksumType::FullObject),
        (ChecksumAlgorithm::Crc32, ChecksumType::Composite),
        (ChecksumAlgorithm::Sha1, ChecksumType::Composite),
    ] {
        let upload = upload_with(algorithm, Some(checksum_type)).unwrap();
        assert!(matches!(
            store.upload_part(
                "bkt",
                &upload.id,
                1,
                None,
                PartDigests {
                    checksum: Some(&ChecksumRequest {
                        algorithm: ChecksumAlgorithm::Sha256,
                        expected: ExpectedChecksum::Unknown
                    }),
                    ..Default::default()
                },
                &mut &parts[0][..]
            ),
            Err(StoreError::ChecksumAlgorithmMismatch { .. })
        ));
        let wrong = ChecksumRequest {
            algorithm,
            expected: ExpectedChecksum::Value(algorithm.digest(b"x")),
        };
        assert!(matches!(
            store.upload_part(
                "bkt",
                &upload.id,
                1,
                None,
                PartDigests {
                    checksum: Some(&wrong),
                    ..Default::default()
                },
                &mut &parts[0][..]
            ),
            Err(StoreError::BadChecksum { .. })
        ));
        assert!(store.list_parts("bkt", &upload.id).unwrap().is_empty());
        let mut listed = Vec::new();
        for (i, body) in parts.iter().enumerate() {
            let part = store
                .upload_part(
                    "bkt",
                    &upload.id,
                    i as u32 + 1,
                    None,
                    PartDigests::default(),
                    &mut &body[..],
                )
                .unwrap();
            assert_eq!(
                part.checksum.as_ref().unwrap().value,
                algorithm.digest(body)
            );
            listed.push(CompletedPart {
                number: part.number,
                etag: part.etag,
                checksum: part.checksum,
            });
        }
        let without: Vec<_> = listed
            .iter()
            .map(|p| CompletedPart {
                checksum: None,
                ..p.clone()
            })
            .collect();
        let complete = |parts: &[CompletedPart], whole: Option<&ChecksumValue>| {
            store.complete_upload("bkt", &upload.id, parts, whole, WriteCondition::Always)
        };
        if checksum_type == ChecksumType::Composite {
            assert!(matches!(
                complete(&without, None),
                Err(StoreError::PartChecksumMissing { number: 1, .. })
            ));
        }
        let expected = match checksum_type {
            ChecksumType::FullObject => algorithm.digest(&whole),
            ChecksumType::Composite => algorithm.digest(
                &parts
                    .iter()
                    .flat_map(|p| algorithm.digest(p))
                    .collect::<Vec<_>>(),
            ),
        };
        let bad = ChecksumValue {
            algorithm,
            value: algorithm.digest(b"x"),
        };
        assert!(matches!(
            complete(&listed, Some(&bad)),
            Err(StoreError::BadChecksum { .. })
        ));
        let meta = complete(
            &listed,
            Some(&ChecksumValue {
                algorithm,
                value: expected.clone(),
            }),
        )
        .unwrap();
        let c = meta.checksum.unwrap();
        assert_eq!(
            (c.value, c.checksum_type, c.parts.len()),
            (expected, checksum_type, 2)
        );
    }
}

/// A part whose Content-MD5 does not match is refused before it is recorded: the part it
/// would have replaced stays.
#[test]
fn a_part_with_a_wrong_content_md5_leaves_the_part_before_it() {
    let (_d, store) = store();
    let upload = store
        .create_upload("bkt", "o", PutOptions::default())
        .unwrap();
    let good = store
        .upload_part(
            "bkt",
            &upload.id,
            1,
            None,
            PartDigests::default(),
            &mut &b"good"[..],
        )
        .unwrap();
    let wrong = crate::encoding::hex(&[0u8; 16]);
    let refused = store.upload_part(
        "bkt",
        &upload.id,
        1,
        None,
        PartDigests {
            content_md5: Some(&wrong),
            ..Default::default()
        },
        &mut &b"bad!"[..],
    );
    assert!(
        matches!(refused, Err(StoreError::BadDigest { .. })),
        "{refused:?}"
    );
    let listed = store.list_parts("bkt", &upload.id).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].etag, good.etag);
}
