//! One S3 server with an SDK client that talks to it directly, for the scenarios of the
//! S3 target (`tests/s3_target.rs`, `tests/s3_faults.rs`): objects are set up and checked
//! through the client, and reseal runs against the server or a proxy in front of it.
//! What a server cannot do is in its [`Caps`](super::s3::Caps); the checks here skip
//! what it does not keep.

use std::collections::HashMap;
use std::path::Path;

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, ServerSideEncryption, StorageClass, VersioningConfiguration,
};

use super::s3::{S3Server, Ssec, WithSsec, client_for, rt};
use super::{Env, Run};

/// The encryption an object is written with in a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    NotSse,
    SseS3,
    SseKms,
    DsseKms,
}

pub struct Fixture {
    pub server: S3Server,
    /// Straight to the server, never through a proxy: what the checks see is the truth.
    pub client: Client,
    pub rt: tokio::runtime::Runtime,
}

impl Fixture {
    pub fn new(server: S3Server) -> Fixture {
        let client = server.client();
        Fixture {
            server,
            client,
            rt: rt(),
        }
    }

    pub fn reseal(&self, env: &Env, args: &[&str]) -> Run {
        self.reseal_with(env, args, &[])
    }

    /// [`Fixture::reseal`] with more environment variables.
    pub fn reseal_with(&self, env: &Env, args: &[&str], extra: &[(&str, &str)]) -> Run {
        self.reseal_to(env, &self.server.endpoint, args, extra)
    }

    /// Runs reseal against `endpoint`: a proxy in front of the server.
    pub fn reseal_at(&self, env: &Env, endpoint: &str, args: &[&str]) -> Run {
        self.reseal_to(env, endpoint, args, &[])
    }

    fn reseal_to(&self, env: &Env, endpoint: &str, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let vars = self.server.env();
        let mut vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        vars.extend_from_slice(extra);
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--endpoint-url", endpoint]);
        env.reseal_with_env(&all, &vars)
    }

    pub fn reseal_ok(&self, env: &Env, args: &[&str]) -> Run {
        let run = self.reseal(env, args);
        assert_eq!(
            run.code, 0,
            "reseal {args:?} failed on {}:\nstdout: {}\nstderr: {}",
            self.server.name, run.stdout, run.stderr
        );
        run
    }

    /// reseal's `run` options for this server: --no-verify where the server never
    /// reports SSE (a check after the write could never pass).
    pub fn run_args<'a>(&self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = args.to_vec();
        if !self.server.caps.sse {
            all.push("--no-verify");
        }
        all
    }

    pub fn bucket(&self, name: &str) {
        self.rt
            .block_on(self.client.create_bucket().bucket(name).send())
            .unwrap();
    }

    pub fn versioned_bucket(&self, name: &str) {
        self.bucket(name);
        self.rt
            .block_on(
                self.client
                    .put_bucket_versioning()
                    .bucket(name)
                    .versioning_configuration(
                        VersioningConfiguration::builder()
                            .status(BucketVersioningStatus::Enabled)
                            .build(),
                    )
                    .send(),
            )
            .unwrap();
    }

    /// Puts an object with metadata, a content type, tags and a storage class; returns its
    /// version id.
    pub fn put(
        &self,
        bucket: &str,
        key: &str,
        body: &[u8],
        mode: Mode,
        kms_key: &str,
    ) -> Option<String> {
        let mut req = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body.to_vec()))
            .content_type("text/x-reseal-test")
            .content_disposition("attachment; filename=\"x\"")
            .cache_control("max-age=60")
            .metadata("owner", "team-a")
            .metadata("origin", key.len().to_string())
            .storage_class(StorageClass::StandardIa)
            .tagging("project=reseal&kind=test%20tag");
        req = match mode {
            Mode::NotSse => req,
            Mode::SseS3 => req.server_side_encryption(ServerSideEncryption::Aes256),
            Mode::SseKms => req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(kms_key),
            Mode::DsseKms => req
                .server_side_encryption(ServerSideEncryption::AwsKmsDsse)
                .ssekms_key_id(kms_key),
        };
        let out = self.rt.block_on(req.send()).unwrap();
        out.version_id().map(str::to_owned)
    }

    /// Puts the bytes alone (no metadata, content type or tags), with `sse` if any.
    pub fn put_bytes(
        &self,
        bucket: &str,
        key: &str,
        body: &[u8],
        sse: Option<ServerSideEncryption>,
    ) {
        put_bytes(&self.client, &self.rt, bucket, key, body, sse);
    }

    /// Puts an SSE-C object with `customer`'s key, metadata and a tag.
    pub fn put_ssec(&self, bucket: &str, key: &str, body: &[u8], customer: &[u8; 32]) {
        self.rt
            .block_on(
                self.client
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(ByteStream::from(body.to_vec()))
                    .metadata("owner", "team-c")
                    .tagging("project=reseal")
                    .sse_c(&Ssec::new(customer))
                    .send(),
            )
            .unwrap();
    }

    pub fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        self.rt.block_on(async {
            let out = self
                .client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {bucket}/{key}: {e:?}"));
            out.body.collect().await.unwrap().into_bytes().to_vec()
        })
    }

    /// GETs an SSE-C object with `customer`; the HTTP status of a refusal.
    pub fn get_ssec(&self, bucket: &str, key: &str, customer: &[u8; 32]) -> Result<Vec<u8>, u16> {
        self.rt.block_on(async {
            match self
                .client
                .get_object()
                .bucket(bucket)
                .key(key)
                .sse_c(&Ssec::new(customer))
                .send()
                .await
            {
                Ok(out) => Ok(out.body.collect().await.unwrap().into_bytes().to_vec()),
                Err(e) => Err(e.raw_response().map_or(0, |r| r.status().as_u16())),
            }
        })
    }

    pub fn head(&self, bucket: &str, key: &str) -> HeadObjectOutput {
        self.rt
            .block_on(self.client.head_object().bucket(bucket).key(key).send())
            .unwrap_or_else(|e| panic!("HEAD {bucket}/{key}: {e:?}"))
    }

    /// The SSE the server reports for an object.
    pub fn sse(&self, bucket: &str, key: &str) -> Option<ServerSideEncryption> {
        self.head(bucket, key).server_side_encryption().cloned()
    }

    pub fn tags(&self, bucket: &str, key: &str) -> HashMap<String, String> {
        let out = self
            .rt
            .block_on(
                self.client
                    .get_object_tagging()
                    .bucket(bucket)
                    .key(key)
                    .send(),
            )
            .unwrap();
        out.tag_set()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect()
    }

    /// The keys of the bucket's objects under `prefix`.
    pub fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let listed = self
            .rt
            .block_on(
                self.client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(prefix)
                    .send(),
            )
            .unwrap();
        listed
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .map(str::to_owned)
            .collect()
    }

    /// The key of the results file of the one report under `prefix`, whose manifest.json
    /// must be there too.
    pub fn report_results(&self, bucket: &str, prefix: &str) -> String {
        let names = self.list(bucket, prefix);
        assert!(
            names.iter().any(|n| n.ends_with("/manifest.json")),
            "{names:?}"
        );
        names
            .iter()
            .find(|n| n.contains("/results/"))
            .unwrap_or_else(|| panic!("no results file: {names:?}"))
            .clone()
    }

    /// Checks that an object kept everything `put` gave it and has the wanted encryption.
    pub fn assert_kept(
        &self,
        bucket: &str,
        key: &str,
        body: &[u8],
        want: &ServerSideEncryption,
        kms: Option<&str>,
    ) {
        let what = format!("{} s3://{bucket}/{key}", self.server.name);
        assert_eq!(self.get(bucket, key), body, "{what}: bytes changed");
        let h = self.head(bucket, key);
        if self.server.caps.sse {
            assert_eq!(h.server_side_encryption(), Some(want), "{what}: encryption");
            if let Some(kms) = kms {
                let got = h.ssekms_key_id().unwrap_or_default();
                assert!(
                    got == kms || got.ends_with(&format!("key/{kms}")),
                    "{what}: KMS key {got}, wanted {kms}"
                );
            }
        }
        assert_eq!(
            h.content_type(),
            Some("text/x-reseal-test"),
            "{what}: content type"
        );
        assert_eq!(
            h.cache_control(),
            Some("max-age=60"),
            "{what}: cache control"
        );
        assert_eq!(
            h.content_disposition(),
            Some("attachment; filename=\"x\""),
            "{what}: content disposition"
        );
        let meta = h.metadata().cloned().unwrap_or_default();
        assert_eq!(
            meta.get("owner").map(String::as_str),
            Some("team-a"),
            "{what}: metadata {meta:?}"
        );
        assert_eq!(
            meta.get("origin"),
            Some(&key.len().to_string()),
            "{what}: metadata {meta:?}"
        );
        assert_eq!(
            h.storage_class(),
            Some(&StorageClass::StandardIa),
            "{what}: storage class"
        );
        if self.server.caps.tagging {
            let tags = self.tags(bucket, key);
            assert_eq!(
                tags.get("project").map(String::as_str),
                Some("reseal"),
                "{what}: tags {tags:?}"
            );
            assert_eq!(
                tags.get("kind").map(String::as_str),
                Some("test tag"),
                "{what}: tags {tags:?}"
            );
        }
    }

    pub fn no_uploads_left(&self, bucket: &str) {
        let out = self
            .rt
            .block_on(self.client.list_multipart_uploads().bucket(bucket).send())
            .unwrap();
        assert!(
            out.uploads().is_empty(),
            "{}: multipart uploads left behind: {:?}",
            self.server.name,
            out.uploads()
        );
    }
}

/// The arguments of `run --from-listing LISTING --sse SSE`, then `extra`.
pub fn run_listing<'a>(listing: &'a str, sse: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", "--from-listing", listing, "--sse", sse];
    args.extend_from_slice(extra);
    args
}

/// Puts the bytes alone, with `sse` if any, through `client`.
pub fn put_bytes(
    client: &Client,
    rt: &tokio::runtime::Runtime,
    bucket: &str,
    key: &str,
    body: &[u8],
    sse: Option<ServerSideEncryption>,
) {
    let req = client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .set_server_side_encryption(sse);
    rt.block_on(req.send())
        .unwrap_or_else(|e| panic!("PUT {bucket}/{key}: {e:?}"));
}

/// Overwrites an object from another thread (a proxy's hook), on a client and runtime of
/// its own: the bytes alone, no SSE header.
pub fn overwrite(endpoint: &str, bucket: &str, key: &str, body: &[u8]) {
    put_bytes(&client_for(endpoint), &rt(), bucket, key, body, None);
}

/// Reads a job's report result files (all of them) as rows of fields, sorted.
pub fn report_rows(dir: &Path) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for job in std::fs::read_dir(dir).unwrap() {
        let results = job.unwrap().path().join("results");
        for f in std::fs::read_dir(results).unwrap() {
            let mut r = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_path(f.unwrap().path())
                .unwrap();
            for rec in r.records() {
                rows.push(rec.unwrap().iter().map(str::to_owned).collect());
            }
        }
    }
    rows.sort();
    rows
}

/// The report row of `key` (keys in a report are encoded).
pub fn row_of<'a>(rows: &'a [Vec<String>], key: &str) -> &'a [String] {
    rows.iter()
        .find(|r| reseal::encoding::decode_key(&r[1]).unwrap() == key)
        .unwrap_or_else(|| panic!("no report row for {key}: {rows:?}"))
}
