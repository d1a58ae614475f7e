//! Multipart uploads on `reseal serve`: parts under SSE-C, S3's ETag of the parts'
//! MD5s, UploadPartCopy between encryption modes, and aborts that leave nothing.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use common::s3::{S3Server, Ssec, WithSourceSsec, WithSsec, rt};
use common::serve::{assert_refused, body};
use md5::{Digest, Md5};

#[test]
fn multipart_uploads_are_encrypted_with_s3_etags() {
    let server = S3Server::reseal_serve();
    let c = server.client();
    let rt = rt();
    let k = Ssec::new(&[4; 32]);
    let create = |key: &str| c.create_multipart_upload().bucket("mpu").key(key);
    let part = |key: &str, id: &str, n: i32| {
        c.upload_part()
            .bucket("mpu")
            .key(key)
            .upload_id(id)
            .part_number(n)
    };
    let complete = |key: &str, id: &str, parts: Vec<CompletedPart>| {
        c.complete_multipart_upload()
            .bucket("mpu")
            .key(key)
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
    };
    let list_parts = |key: &str, id: &str| c.list_parts().bucket("mpu").key(key).upload_id(id);
    let uploads = || c.list_multipart_uploads().bucket("mpu");
    let get = |key: &str| c.get_object().bucket("mpu").key(key);
    rt.block_on(async {
        c.create_bucket().bucket("mpu").send().await.unwrap();
        let parts = [
            body(5 * 1024 * 1024, 1),
            body(5 * 1024 * 1024 + 11, 2),
            body(777, 3),
        ];
        let created = create("big")
            .content_type("text/x-big")
            .sse_c(&k)
            .send()
            .await
            .unwrap();
        let id = created.upload_id().unwrap().to_owned();
        assert_eq!(created.sse_customer_key_md5(), Some(k.md5.as_str()));
        // A part without the upload's key is refused.
        assert_refused!(
            part("big", &id, 1)
                .body(ByteStream::from_static(b"x"))
                .send()
                .await,
            400
        );
        let mut completed = Vec::new();
        let mut md5s = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let out = part("big", &id, i as i32 + 1)
                .body(ByteStream::from(p.clone()))
                .sse_c(&k)
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
        let listed = list_parts("big", &id).send().await.unwrap();
        assert_eq!(listed.parts().len(), 3);
        let pending = uploads().send().await.unwrap();
        assert_eq!(pending.uploads()[0].upload_id(), Some(id.as_str()));
        let done = complete("big", &id, completed).send().await.unwrap();
        let want = format!("\"{}-3\"", common::md5_hex(&md5s));
        assert_eq!(done.e_tag(), Some(want.as_str()));
        let whole = parts.concat();
        let out = get("big").sse_c(&k).send().await.unwrap();
        assert_eq!(out.e_tag(), Some(want.as_str()));
        assert_eq!(out.content_type(), Some("text/x-big"));
        assert_eq!(out.body.collect().await.unwrap().into_bytes(), whole);
        assert!(uploads().send().await.unwrap().uploads().is_empty());

        // UploadPartCopy from the SSE-C object into an SSE-KMS upload, in two ranges.
        let created = create("copied")
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
                .source_sse_c(&k)
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
        complete("copied", &id, completed).send().await.unwrap();
        let out = get("copied").send().await.unwrap();
        assert_eq!(
            out.server_side_encryption(),
            Some(&ServerSideEncryption::AwsKms)
        );
        assert!(out.e_tag().unwrap().ends_with("-2\""));
        assert_eq!(out.body.collect().await.unwrap().into_bytes(), whole);

        // An aborted upload leaves nothing.
        let created = create("aborted").send().await.unwrap();
        let id = created.upload_id().unwrap().to_owned();
        part("aborted", &id, 1)
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
        assert_refused!(list_parts("aborted", &id).send().await, "NoSuchUpload", 404);
        assert_refused!(
            c.head_object().bucket("mpu").key("aborted").send().await,
            404
        );
    });
}

/// GetObject and HeadObject with `partNumber`, as the SDKs' transfer managers use them:
/// one part's bytes with its Content-Range and the parts count; part 1 of an object not
/// uploaded in parts is all of it; a part past the last is 416, with a Range 400.
#[test]
fn a_read_by_part_number_gives_that_part() {
    let server = S3Server::reseal_serve();
    let c = server.client();
    let rt = rt();
    let part = |key: &str, n: i32| c.get_object().bucket("parts").key(key).part_number(n);
    rt.block_on(async {
        c.create_bucket().bucket("parts").send().await.unwrap();
        let sizes = [5 << 20, 5 << 20, 1000];
        let data: Vec<u8> = (0..sizes.iter().sum::<usize>())
            .map(|i| (i % 251) as u8)
            .collect();
        let id = c
            .create_multipart_upload()
            .bucket("parts")
            .key("multi")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .send()
            .await
            .unwrap()
            .upload_id()
            .unwrap()
            .to_owned();
        let mut completed = Vec::new();
        let mut start = 0;
        for (i, size) in sizes.iter().enumerate() {
            let n = i as i32 + 1;
            let out = c
                .upload_part()
                .bucket("parts")
                .key("multi")
                .upload_id(&id)
                .part_number(n)
                .body(ByteStream::from(data[start..start + size].to_vec()))
                .send()
                .await
                .unwrap();
            completed.push(
                CompletedPart::builder()
                    .part_number(n)
                    .e_tag(out.e_tag().unwrap())
                    .build(),
            );
            start += size;
        }
        c.complete_multipart_upload()
            .bucket("parts")
            .key("multi")
            .upload_id(&id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await
            .unwrap();

        let whole = c
            .get_object()
            .bucket("parts")
            .key("multi")
            .send()
            .await
            .unwrap();
        assert_eq!(whole.parts_count(), None, "only a read of a part says it");
        assert_eq!(whole.content_range(), None);
        let mut start = 0;
        for (i, size) in sizes.iter().enumerate() {
            let n = i as i32 + 1;
            let range = format!("bytes {start}-{}/{}", start + size - 1, data.len());
            let got = part("multi", n).send().await.unwrap();
            assert_eq!(got.parts_count(), Some(3));
            assert_eq!(got.content_range(), Some(range.as_str()));
            assert_eq!(got.content_length(), Some(*size as i64));
            assert_eq!(
                got.server_side_encryption(),
                Some(&ServerSideEncryption::AwsKms)
            );
            assert_eq!(
                got.body.collect().await.unwrap().to_vec(),
                &data[start..start + size],
                "part {n}"
            );
            let head = c
                .head_object()
                .bucket("parts")
                .key("multi")
                .part_number(n)
                .send()
                .await
                .unwrap();
            assert_eq!(head.parts_count(), Some(3));
            assert_eq!(head.content_length(), Some(*size as i64));
            assert_eq!(head.content_range(), Some(range.as_str()));
            start += size;
        }
        let past = part("multi", 4).send().await;
        assert_refused!(past, "InvalidPartNumber", 416);
        let both = part("multi", 1).range("bytes=0-9").send().await;
        assert_refused!(both, "InvalidRequest", 400);

        c.put_object()
            .bucket("parts")
            .key("single")
            .body(ByteStream::from_static(b"ten bytes!"))
            .send()
            .await
            .unwrap();
        let one = part("single", 1).send().await.unwrap();
        assert_eq!(one.content_range(), Some("bytes 0-9/10"));
        assert_eq!(one.parts_count(), None);
        assert_eq!(one.body.collect().await.unwrap().to_vec(), b"ten bytes!");
        let two = part("single", 2).send().await;
        assert_refused!(two, "InvalidPartNumber", 416);
    });
}
