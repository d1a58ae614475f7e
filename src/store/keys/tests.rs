//! The key manager on real files in a temporary folder, with other managers on the same
//! folder standing for other processes.

use std::os::unix::fs::PermissionsExt;

use uuid::Uuid;

use super::audit::AUDIT_FILE;
use super::*;
use crate::crypto;

struct Store {
    _root: tempfile::TempDir,
    keys: PathBuf,
    tmp: PathBuf,
}

fn store() -> Store {
    let root = tempfile::tempdir().unwrap();
    let keys = root.path().join("keys");
    let tmp = root.path().join("tmp");
    Store {
        _root: root,
        keys,
        tmp,
    }
}

fn master(byte: u8) -> MasterKey {
    MasterKey::from_slice(&[byte; 32]).unwrap()
}

fn init(s: &Store) -> KeyManager {
    KeyManager::init(&s.keys, &s.tmp, master(7)).unwrap()
}

fn open(s: &Store) -> KeyManager {
    KeyManager::open(&s.keys, &s.tmp, master(7)).unwrap()
}

fn same(a: &DataKey, b: &DataKey) -> bool {
    a.expose_secret() == b.expose_secret()
}

/// Every regular file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn init_then_open_and_init_refuses_an_initialised_store() {
    let s = store();
    let err = KeyManager::open(&s.keys, &s.tmp, master(7)).unwrap_err();
    assert!(matches!(err, KeyError::NotInitialised { .. }), "{err}");
    assert!(err.is_user_error());
    assert!(err.to_string().contains("reseal store init"), "{err}");

    let keys = init(&s);
    let default = keys.describe_key(DEFAULT_KMS_ALIAS).unwrap();
    assert_eq!(default.aliases, [DEFAULT_KMS_ALIAS]);
    assert!(default.enabled);
    assert_eq!((default.current_version, default.versions), (1, vec![1]));
    assert_eq!(keys.root_versions().unwrap(), (1, vec![1]));
    drop(keys);

    let keys = open(&s);
    assert_eq!(keys.list_keys().unwrap().len(), 1, "open adds no key");
    let err = KeyManager::init(&s.keys, &s.tmp, master(7)).unwrap_err();
    assert!(matches!(err, KeyError::AlreadyInitialised { .. }), "{err}");
}

#[test]
fn another_master_key_is_refused_clearly() {
    let s = store();
    init(&s);
    let err = KeyManager::open(&s.keys, &s.tmp, master(8)).unwrap_err();
    assert!(matches!(err, KeyError::WrongMasterKey { .. }), "{err}");
    assert!(err.is_user_error());
    assert!(err.to_string().contains("wrong master key"), "{err}");
}

#[test]
fn root_seal_open_and_rotation() {
    let s = store();
    let mut keys = init(&s);
    // Another process using the same store.
    let other = open(&s);
    let dek = DataKey::generate().unwrap();
    let (v1, sealed_v1) = keys.root_seal(&dek, "photos", "2024/cat.jpg").unwrap();
    assert_eq!(v1, 1);
    let opened = keys
        .root_open(1, &sealed_v1, "photos", "2024/cat.jpg")
        .unwrap();
    assert!(same(&opened, &dek));
    for (bucket, key) in [("photos", "2024/dog.jpg"), ("backup", "2024/cat.jpg")] {
        assert!(matches!(
            keys.root_open(1, &sealed_v1, bucket, key),
            Err(KeyError::Crypto(crypto::Error::SealedKeyMismatch))
        ));
    }

    assert_eq!(keys.rotate_root().unwrap(), 2);
    assert_eq!(keys.root_versions().unwrap(), (2, vec![1, 2]));
    let opened = keys
        .root_open(1, &sealed_v1, "photos", "2024/cat.jpg")
        .unwrap();
    assert!(same(&opened, &dek));
    let (v2, sealed_v2) = keys.root_seal(&dek, "photos", "2024/cat.jpg").unwrap();
    assert_eq!(v2, 2);
    assert!(
        keys.root_open(1, &sealed_v2, "photos", "2024/cat.jpg")
            .is_err()
    );

    // The other process sees the rotation without reopening.
    assert_eq!(other.root_seal(&dek, "b", "k").unwrap().0, 2);
    let opened = other
        .root_open(2, &sealed_v2, "photos", "2024/cat.jpg")
        .unwrap();
    assert!(same(&opened, &dek));
    drop(other);
    assert_eq!(open(&s).root_versions().unwrap(), (2, vec![1, 2]));
}

#[test]
fn kms_keys_resolve_by_id_alias_name_and_arn() {
    let s = store();
    let keys = init(&s);
    let key = keys.create_key(Some("photos"), "for photos").unwrap();
    assert_eq!(key.aliases, ["alias/photos"]);
    assert_eq!(key.description, "for photos");
    assert!(Uuid::parse_str(&key.id).is_ok());
    let arn = "arn:aws:kms:us-east-1:111122223333";
    for name in [
        key.id.clone(),
        key.id.to_uppercase(),
        "alias/photos".into(),
        "photos".into(),
        format!("{arn}:key/{}", key.id),
        format!("{arn}:alias/photos"),
    ] {
        assert_eq!(keys.describe_key(&name).unwrap(), key, "{name}");
    }
    // A second manager resolves the alias from the files, not from a cache.
    assert_eq!(open(&s).describe_key("photos").unwrap(), key);

    let nested = keys.create_key(Some("alias/team/a_b-1"), "").unwrap();
    assert_eq!(keys.describe_key("team/a_b-1").unwrap(), nested);
    assert_eq!(keys.list_keys().unwrap().len(), 3);

    for name in [
        "alias/nope",
        "nope",
        "0b0e7c36-1c43-4f0e-9a51-2b8d3c1e5f00",
        &format!("{arn}:key/not-a-uuid"),
        &format!("{arn}:other/photos"),
        "../../root",
        "alias/a b",
    ] {
        let err = keys.describe_key(name).unwrap_err();
        assert!(matches!(err, KeyError::UnknownKey(_)), "{name}: {err}");
        assert!(err.is_user_error());
    }
}

#[test]
fn aliases_are_unique_and_well_formed() {
    let s = store();
    let keys = init(&s);
    let first = keys.create_key(Some("alias/photos"), "").unwrap();
    for alias in ["photos", "alias/photos"] {
        let err = keys.create_key(Some(alias), "").unwrap_err();
        assert!(
            matches!(&err, KeyError::AliasTaken { key_id, .. } if *key_id == first.id),
            "{err}"
        );
        assert!(err.is_user_error());
    }
    let long = "x".repeat(251);
    for alias in [
        "",
        "alias/",
        "a b",
        "ph:otos",
        "émoji",
        long.as_str(),
        "aws/s3",
        "alias/aws/mine",
    ] {
        let err = keys.create_key(Some(alias), "").unwrap_err();
        assert!(matches!(err, KeyError::BadAlias { .. }), "{alias}: {err}");
        assert!(err.is_user_error());
    }
    keys.create_key(Some(&"y".repeat(250)), "").unwrap();
    keys.create_key(None, "no alias").unwrap();
    assert_eq!(keys.list_keys().unwrap().len(), 4);
}

#[test]
fn a_disabled_key_neither_seals_nor_opens_until_enabled() {
    let s = store();
    let keys = init(&s);
    let key = keys.create_key(Some("photos"), "").unwrap();
    let dek = DataKey::generate().unwrap();
    let sealed = keys
        .kms_seal(Some("photos"), &dek, Mode::SseKms, "b", "k")
        .unwrap();

    let info = keys.set_enabled("photos", false).unwrap();
    assert!(!info.enabled);
    let err = keys
        .kms_seal(Some("photos"), &dek, Mode::SseKms, "b", "k")
        .unwrap_err();
    assert!(
        matches!(&err, KeyError::Disabled(id) if *id == key.id),
        "{err}"
    );
    assert!(err.is_user_error());
    assert!(
        err.to_string()
            .contains(&format!("reseal keys enable {}", key.id)),
        "{err}"
    );
    let err = keys.kms_open(&sealed, Mode::SseKms, "b", "k").unwrap_err();
    assert!(matches!(err, KeyError::Disabled(_)), "{err}");
    // Another process sees the change at once.
    assert!(matches!(
        open(&s).kms_open(&sealed, Mode::SseKms, "b", "k"),
        Err(KeyError::Disabled(_))
    ));
    assert!(matches!(
        keys.rotate_key("photos"),
        Err(KeyError::Disabled(_))
    ));

    assert!(keys.set_enabled(&key.id, true).unwrap().enabled);
    let opened = keys.kms_open(&sealed, Mode::SseKms, "b", "k").unwrap();
    assert!(same(&opened, &dek));
    keys.kms_seal(Some("photos"), &dek, Mode::SseKms, "b", "k")
        .unwrap();
}

#[test]
fn rotated_kms_key_opens_old_data_keys_and_seals_under_the_new_version() {
    let s = store();
    let keys = init(&s);
    let dek = DataKey::generate().unwrap();
    let old = keys.kms_seal(None, &dek, Mode::SseKms, "b", "k").unwrap();
    assert_eq!(old.key_version, 1);
    assert_eq!(old.key_id, keys.describe_key(DEFAULT_KMS_ALIAS).unwrap().id);

    let info = keys.rotate_key(DEFAULT_KMS_ALIAS).unwrap();
    assert_eq!((info.current_version, info.versions), (2, vec![1, 2]));
    let opened = keys.kms_open(&old, Mode::SseKms, "b", "k").unwrap();
    assert!(same(&opened, &dek));
    let new = keys.kms_seal(None, &dek, Mode::SseKms, "b", "k").unwrap();
    assert_eq!(new.key_version, 2);
    assert!(same(
        &keys.kms_open(&new, Mode::SseKms, "b", "k").unwrap(),
        &dek
    ));

    // Re-sealing into the same key brings an old data key to the current version.
    let resealed = keys.kms_reseal(&old, None, Mode::SseKms, "b", "k").unwrap();
    assert_eq!(resealed.key_version, 2);
    assert!(same(
        &keys.kms_open(&resealed, Mode::SseKms, "b", "k").unwrap(),
        &dek
    ));
}

#[test]
fn a_sealed_data_key_opens_only_in_its_own_context() {
    let s = store();
    let keys = init(&s);
    let other = keys.create_key(Some("other"), "").unwrap();
    let dek = DataKey::generate().unwrap();
    let sealed = keys
        .kms_seal(None, &dek, Mode::DsseKmsOuter, "photos", "cat.jpg")
        .unwrap();
    assert!(
        keys.kms_open(&sealed, Mode::DsseKmsOuter, "photos", "cat.jpg")
            .is_ok()
    );
    for (mode, bucket, key) in [
        (Mode::DsseKmsOuter, "photos", "dog.jpg"),
        (Mode::DsseKmsOuter, "backup", "cat.jpg"),
        (Mode::DsseKmsInner, "photos", "cat.jpg"),
        (Mode::SseKms, "photos", "cat.jpg"),
    ] {
        assert!(
            matches!(
                keys.kms_open(&sealed, mode, bucket, key),
                Err(KeyError::Crypto(crypto::Error::SealedKeyMismatch))
            ),
            "{mode:?} {bucket} {key}"
        );
    }
    let moved = KmsSealed {
        key_id: other.id.clone(),
        ..sealed.clone()
    };
    assert!(
        keys.kms_open(&moved, Mode::DsseKmsOuter, "photos", "cat.jpg")
            .is_err()
    );
    let later = KmsSealed {
        key_version: 2,
        ..sealed.clone()
    };
    assert!(
        keys.kms_open(&later, Mode::DsseKmsOuter, "photos", "cat.jpg")
            .is_err()
    );
    let aliased = KmsSealed {
        key_id: DEFAULT_KMS_ALIAS.into(),
        ..sealed
    };
    assert!(matches!(
        keys.kms_open(&aliased, Mode::DsseKmsOuter, "photos", "cat.jpg"),
        Err(KeyError::UnknownKey(_))
    ));
}

#[test]
fn reseal_moves_a_data_key_to_another_kms_key() {
    let s = store();
    let keys = init(&s);
    let to = keys.create_key(Some("new"), "").unwrap();
    let dek = DataKey::generate().unwrap();
    let old = keys.kms_seal(None, &dek, Mode::SseKms, "b", "k").unwrap();
    let new = keys
        .kms_reseal(&old, Some("alias/new"), Mode::SseKms, "b", "k")
        .unwrap();
    assert_eq!((new.key_id.as_str(), new.key_version), (to.id.as_str(), 1));
    assert!(same(
        &keys.kms_open(&new, Mode::SseKms, "b", "k").unwrap(),
        &dek
    ));
    // The new sealed key is bound to the new key id: relabelled, it does not open.
    let relabelled = KmsSealed {
        key_id: old.key_id.clone(),
        ..new.clone()
    };
    assert!(keys.kms_open(&relabelled, Mode::SseKms, "b", "k").is_err());
    // Another object's context does not re-seal.
    assert!(
        keys.kms_reseal(&old, Some("new"), Mode::SseKms, "b", "k2")
            .is_err()
    );

    // Both keys must be enabled.
    keys.set_enabled("new", false).unwrap();
    assert!(matches!(
        keys.kms_reseal(&old, Some("new"), Mode::SseKms, "b", "k"),
        Err(KeyError::Disabled(id)) if id == to.id
    ));
}

#[test]
fn audit_log_has_one_line_per_operation_and_no_key_bytes() {
    let s = store();
    let mut keys = init(&s);
    let default = keys.describe_key(DEFAULT_KMS_ALIAS).unwrap();
    let dek = DataKey::generate().unwrap();
    keys.rotate_root().unwrap();
    keys.root_seal(&dek, "b", "k").unwrap();
    let photos = keys.create_key(Some("photos"), "").unwrap();
    let sealed = keys
        .kms_seal(Some("photos"), &dek, Mode::SseKms, "b", "k")
        .unwrap();
    keys.kms_open(&sealed, Mode::SseKms, "b", "k").unwrap();
    keys.set_enabled("photos", false).unwrap();
    keys.kms_open(&sealed, Mode::SseKms, "b", "k").unwrap_err();
    keys.set_enabled("photos", true).unwrap();
    keys.rotate_key("photos").unwrap();
    let moved = keys
        .kms_reseal(&sealed, None, Mode::SseKms, "b", "k")
        .unwrap();
    keys.kms_seal(Some("ghost"), &dek, Mode::SseKms, "b", "k")
        .unwrap_err();

    use AuditOperation as Op;
    let all = keys.audit(None).unwrap();
    let summary: Vec<(Op, &str, Option<u32>, AuditOutcome)> = all
        .iter()
        .map(|r| (r.operation, r.key_id.as_str(), r.key_version, r.outcome))
        .collect();
    let (d, p) = (default.id.as_str(), photos.id.as_str());
    use AuditOutcome::{Error, Ok};
    assert_eq!(
        summary,
        [
            (Op::CreateKey, d, Some(1), Ok),
            (Op::CreateKey, p, Some(1), Ok),
            (Op::GenerateDataKey, p, Some(1), Ok),
            (Op::Decrypt, p, Some(1), Ok),
            (Op::DisableKey, p, Some(1), Ok),
            (Op::Decrypt, p, Some(1), Error),
            (Op::EnableKey, p, Some(1), Ok),
            (Op::RotateKey, p, Some(2), Ok),
            (Op::ReEncrypt, d, Some(1), Ok),
            (Op::GenerateDataKey, "ghost", None, Error),
        ]
    );
    let disabled = &all[5];
    assert!(
        disabled.error.as_deref().unwrap().contains("is disabled"),
        "{disabled:?}"
    );
    let context = disabled.context.as_ref().unwrap();
    assert_eq!(
        (
            context.bucket.as_str(),
            context.key.as_str(),
            context.mode.as_str()
        ),
        ("b", "k", "sse-kms")
    );
    assert!(all[0].context.is_none() && all[0].error.is_none());
    let reencrypt = &all[8];
    assert_eq!(reencrypt.source_key_id.as_deref(), Some(p));
    assert_eq!(reencrypt.source_key_version, Some(1));
    assert_eq!(moved.key_id, d);

    // Filtered: by alias or id, including the ReEncrypt that read from the key.
    assert_eq!(keys.audit(Some("photos")).unwrap().len(), 8);
    assert_eq!(keys.audit(Some(d)).unwrap().len(), 2);
    assert_eq!(keys.audit(Some("ghost")).unwrap().len(), 1);

    let log = fs::read_to_string(s.keys.join(AUDIT_FILE)).unwrap();
    assert_eq!(log.lines().count(), all.len());
    let first: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(first["operation"], "CreateKey");
    assert_eq!(first["outcome"], "ok");
    assert!(first["time"].as_str().unwrap().ends_with('Z'));

    // No secret, in any encoding, in any file of the keys folder.
    let mut secrets: Vec<Vec<u8>> = vec![
        dek.expose_secret().to_vec(),
        master(7).expose_secret().to_vec(),
    ];
    {
        let root = keys.root.read().unwrap();
        secrets.extend(
            root.keyring
                .versions()
                .map(|v| root.keyring.get(v).unwrap().expose_secret().to_vec()),
        );
    }
    for id in [d, p] {
        let kms = keys.read_key(id).unwrap().unwrap();
        secrets.extend(
            kms.keyring
                .versions()
                .map(|v| kms.keyring.get(v).unwrap().expose_secret().to_vec()),
        );
    }
    let mut needles: Vec<Vec<u8>> = Vec::new();
    for secret in &secrets {
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        needles.push(hex.to_uppercase().into_bytes());
        needles.push(hex.into_bytes());
        needles.push(STANDARD.encode(secret).into_bytes());
        // Unpadded and URL-safe base64 share this prefix with the standard form.
        needles.push(STANDARD.encode(secret).as_bytes()[..40].to_vec());
        needles.push(secret.clone());
    }
    let all_files = files(&s.keys);
    assert!(all_files.len() >= 5, "{all_files:?}");
    for path in &all_files {
        let bytes = fs::read(path).unwrap();
        for needle in &needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                "secret found in {}",
                path.display()
            );
        }
    }
}

#[test]
fn files_are_private() {
    let s = store();
    let mut keys = init(&s);
    keys.create_key(Some("photos"), "").unwrap();
    keys.rotate_root().unwrap();
    for path in files(&s.keys) {
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
    }
    for dir in [s.keys.clone(), s.keys.join(KMS_DIR)] {
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());
    }
    // Nothing left behind in tmp/.
    assert_eq!(fs::read_dir(&s.tmp).unwrap().count(), 0);
}

#[test]
fn concurrent_processes_lose_no_update_and_share_no_alias() {
    let s = store();
    init(&s);
    let id = open(&s).create_key(Some("busy"), "").unwrap().id;
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                // Each thread stands for a process: its own manager and lock file handle.
                let keys = open(&s);
                for _ in 0..3 {
                    keys.rotate_key("busy").unwrap();
                }
            });
        }
    });
    let info = open(&s).describe_key(&id).unwrap();
    assert_eq!(info.current_version, 13);
    assert_eq!(info.versions, (1..=13).collect::<Vec<_>>());

    let created: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| open(&s).create_key(Some("race"), "").is_ok()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(created.iter().filter(|ok| **ok).count(), 1);
}

#[test]
fn concurrent_kms_operations_each_leave_one_whole_audit_record() {
    // The audit log's records are fsynced in groups: none may be lost or torn.
    let s = store();
    let keys = init(&s);
    let before = keys.audit(None).unwrap().len();
    let dek = DataKey::generate().unwrap();
    std::thread::scope(|scope| {
        for t in 0..8 {
            let (keys, dek) = (&keys, &dek);
            scope.spawn(move || {
                for i in 0..25 {
                    let key = format!("k{t}-{i}");
                    keys.kms_seal(None, dek, Mode::SseKms, "b", &key).unwrap();
                }
            });
        }
    });
    let records = keys.audit(None).unwrap();
    assert_eq!(records.len(), before + 200);
    assert!(
        records[before..]
            .iter()
            .all(|r| r.operation == AuditOperation::GenerateDataKey)
    );
}

#[test]
fn damaged_files_are_reported_as_such() {
    let s = store();
    let keys = init(&s);
    let key = keys.create_key(Some("photos"), "").unwrap();
    let path = s.keys.join(KMS_DIR).join(format!("{}.json", key.id));
    let mut file: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    // A keyring taken from another key's file does not open under this id.
    let default = keys.describe_key(DEFAULT_KMS_ALIAS).unwrap();
    let other: serde_json::Value = serde_json::from_slice(
        &fs::read(s.keys.join(KMS_DIR).join(format!("{}.json", default.id))).unwrap(),
    )
    .unwrap();
    file["keyring"] = other["keyring"].clone();
    fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
    let err = keys.describe_key(&key.id).unwrap_err();
    assert!(matches!(err, KeyError::Corrupt { .. }), "{err}");
    assert!(!err.is_user_error());

    fs::write(s.keys.join(ROOT_FILE), b"RSKR\x01short").unwrap();
    let err = KeyManager::open(&s.keys, &s.tmp, master(7)).unwrap_err();
    assert!(matches!(err, KeyError::Corrupt { .. }), "{err}");
}
