//! `reseal serve`'s server-side encryption, through the Rust SDK: every mode in request
//! headers and as a bucket default, their errors, and SSE-C's errors and key rotation by
//! the fast path (the data key re-sealed, the data file kept).

mod common;

use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
    ServerSideEncryptionRule,
};
use common::s3::{REGION, S3Server, Ssec, WithSourceSsec, WithSsec, rt};
use common::serve::{assert_refused, body};

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
        let sse = |out: &PutObjectOutput| out.server_side_encryption().cloned();
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
        assert_eq!(sse(&out), Some(ServerSideEncryption::AwsKmsDsse));
        assert_eq!(out.ssekms_key_id(), Some(arn(&other).as_str()));
        let k = Ssec::new(&[7; 32]);
        let out = put("ssec").sse_c(&k).send().await.unwrap();
        assert_eq!(out.sse_customer_algorithm(), Some("AES256"));
        assert_eq!(out.sse_customer_key_md5(), Some(k.md5.as_str()));
        assert!(out.server_side_encryption().is_none());
        // HEAD reports each.
        let head = |k: &str| c.head_object().bucket("enc").key(k).send();
        let h = head("dsse").await.unwrap();
        assert_eq!(h.ssekms_key_id(), Some(arn(&other).as_str()));
        let h = head("kms").await.unwrap();
        assert_eq!(h.bucket_key_enabled(), Some(true));

        // Errors: two kinds of SSE at once, a KMS key without aws:kms, unknown keys.
        assert_refused!(
            put("two")
                .server_side_encryption(ServerSideEncryption::Aes256)
                .sse_c(&k)
                .send()
                .await,
            "InvalidArgument",
            400
        );
        assert_refused!(
            put("two")
                .server_side_encryption(ServerSideEncryption::Aes256)
                .ssekms_key_id(&key)
                .send()
                .await,
            "InvalidArgument",
            400
        );
        assert_refused!(
            put("nokey")
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id("alias/none")
                .send()
                .await,
            "KMS.NotFoundException",
            400
        );
        // So is a copy to one, whatever the source's size (its bytes are not read first).
        c.put_object()
            .bucket("enc")
            .key("large")
            .body(vec![7u8; 4 << 20].into())
            .send()
            .await
            .unwrap();
        assert_refused!(
            c.copy_object()
                .bucket("enc")
                .key("large copy")
                .copy_source("enc/large")
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id("alias/none")
                .send()
                .await,
            "KMS.NotFoundException",
            400
        );

        // Bucket default: SSE-S3 until set; a default applies when a request names none;
        // request headers win; deleting it goes back to SSE-S3.
        let default = || async {
            let enc = c
                .get_bucket_encryption()
                .bucket("enc")
                .send()
                .await
                .unwrap();
            let rule = &enc.server_side_encryption_configuration().unwrap().rules()[0];
            rule.apply_server_side_encryption_by_default()
                .unwrap()
                .clone()
        };
        assert_eq!(
            default().await.sse_algorithm(),
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
        let set_default = |alg, key| {
            c.put_bucket_encryption()
                .bucket("enc")
                .server_side_encryption_configuration(config(alg, key))
                .send()
        };
        set_default(ServerSideEncryption::AwsKms, Some(key.clone()))
            .await
            .unwrap();
        let out = put("by-default").send().await.unwrap();
        assert_eq!(sse(&out), Some(ServerSideEncryption::AwsKms));
        assert_eq!(out.ssekms_key_id(), Some(arn(&key).as_str()));
        assert_eq!(out.bucket_key_enabled(), Some(true));
        let out = put("header-wins")
            .server_side_encryption(ServerSideEncryption::Aes256)
            .send()
            .await
            .unwrap();
        assert_eq!(sse(&out), Some(ServerSideEncryption::Aes256));
        assert_eq!(default().await.kms_master_key_id(), Some(key.as_str()));
        set_default(ServerSideEncryption::AwsKmsDsse, Some(other.clone()))
            .await
            .unwrap();
        let out = put("by-dsse-default").send().await.unwrap();
        assert_eq!(sse(&out), Some(ServerSideEncryption::AwsKmsDsse));
        assert_refused!(
            set_default(ServerSideEncryption::AwsKms, Some("no-such-key".into())).await,
            "KMS.NotFoundException",
            400
        );
        c.delete_bucket_encryption()
            .bucket("enc")
            .send()
            .await
            .unwrap();
        let out = put("after-delete").send().await.unwrap();
        assert_eq!(sse(&out), Some(ServerSideEncryption::Aes256));
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
    let (k1, k2) = (Ssec::new(&[1; 32]), Ssec::new(&[2; 32]));
    let store = server.reseal.as_ref().unwrap();
    let put = || c.put_object().bucket("ssec").key("obj");
    let get = || c.get_object().bucket("ssec").key("obj");
    let head = || c.head_object().bucket("ssec").key("obj");
    let copy = || {
        c.copy_object()
            .bucket("ssec")
            .key("obj")
            .copy_source("ssec/obj")
    };
    rt.block_on(async {
        c.create_bucket().bucket("ssec").send().await.unwrap();
        let data = body(600_000, 9);
        put()
            .body(ByteStream::from(data.clone()))
            .sse_c(&k1)
            .send()
            .await
            .unwrap();
        // 400 on an MD5 that does not match the key.
        assert_refused!(
            c.put_object()
                .bucket("ssec")
                .key("bad")
                .body(ByteStream::from_static(b"x"))
                .sse_customer_algorithm("AES256")
                .sse_customer_key(&k1.key)
                .sse_customer_key_md5(&k2.md5)
                .send()
                .await,
            "InvalidArgument",
            400
        );
        // 400 without the key, on GET and HEAD.
        assert_refused!(get().send().await, "InvalidRequest", 400);
        assert_refused!(head().send().await, 400);
        // 403 with another key.
        assert_refused!(get().sse_c(&k2).send().await, "AccessDenied", 403);
        assert_refused!(head().sse_c(&k2).send().await, 403);
        // A range with the right key.
        let out = get()
            .range("bytes=262000-262299")
            .sse_c(&k1)
            .send()
            .await
            .unwrap();
        assert_eq!(out.sse_customer_key_md5(), Some(k1.md5.as_str()));
        assert_eq!(
            &out.body.collect().await.unwrap().into_bytes()[..],
            &data[262_000..262_300]
        );

        // Key rotation onto itself: the data key is re-sealed, the data file stays.
        let before = store.head("ssec", "obj");
        let rotated = copy().source_sse_c(&k1).sse_c(&k2).send().await.unwrap();
        assert_eq!(rotated.sse_customer_key_md5(), Some(k2.md5.as_str()));
        let after = store.head("ssec", "obj");
        assert_eq!(
            before.data_id, after.data_id,
            "the fast path keeps the data"
        );
        assert_ne!(before.sse, after.sse);
        // The wrong source key changes nothing.
        assert_refused!(
            copy()
                .source_sse_c(&k1)
                .server_side_encryption(ServerSideEncryption::Aes256)
                .send()
                .await,
            "AccessDenied",
            403
        );
        // To SSE-KMS and then to another KMS key: the first rewrites, the second re-seals.
        copy()
            .source_sse_c(&k2)
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .send()
            .await
            .unwrap();
        let kms = store.head("ssec", "obj");
        assert_ne!(kms.data_id, after.data_id, "a mode change rewrites");
        let key = server.kms_key();
        let out = copy()
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
        assert_eq!(store.head("ssec", "obj").data_id, kms.data_id);
        let out = get().send().await.unwrap();
        assert_eq!(out.body.collect().await.unwrap().into_bytes(), data);
    });
}
