//! The S3 operations of `reseal serve`, each a call into the local store on tokio's
//! blocking pool. Request bodies stream into the store and object bodies stream out of
//! it, in bounded memory. The store keeps no versions: objects have the version id
//! `null`, as in a bucket that never had versioning enabled.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use futures_util::TryStreamExt;
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::Connection;
use super::error::{error, from_store, internal};
use super::payload::{self, Verdict};
use super::sse::{CustomerHeaders, Described, KeyArns, requested};
use crate::crypto::CustomerKey;
use crate::encoding;
use crate::store::{
    self, ByteRange, CopyMethod, CopyObject, DefaultEncryption, Directive, GetRequest, NewMetadata,
    ObjectMeta, PutOptions, ReadConditions, ReencryptMethod, STANDARD_STORAGE_CLASS, SseState,
    Store, StoreError, WriteCondition,
};

/// The account id in KMS key ARNs and owners (the store has one owner).
const ACCOUNT: &str = "000000000000";
const OWNER_NAME: &str = "reseal";
/// Chunks of an object body on their way to the client.
const BODY_CHUNK: usize = 256 * 1024;

/// The S3 service over one local store.
pub struct Endpoint {
    store: Arc<Store>,
    region: String,
    arns: KeyArns,
}

impl Endpoint {
    pub fn new(store: Arc<Store>, region: String) -> Endpoint {
        Endpoint {
            arns: KeyArns {
                region: region.clone(),
                account: ACCOUNT.into(),
            },
            store,
            region,
        }
    }

    /// Runs `f` with the store on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> S3Result<T> {
        self.on_pool(f).await?.map_err(from_store)
    }

    /// [`Endpoint::blocking`] for a call that reads the request body.
    async fn blocking_reading<T: Send + 'static>(
        &self,
        body: &BodyOutcome,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> S3Result<T> {
        self.on_pool(f).await?.map_err(|e| body.answer(e))
    }

    async fn on_pool<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> S3Result<Result<T, StoreError>> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(internal)
    }

    fn describe(&self, sse: &SseState) -> Described {
        self.arns.describe(sse)
    }

    /// Whether the client may see an object's bucket-default behaviour (a HEAD on a bucket).
    async fn require_bucket(&self, bucket: &str) -> S3Result<crate::store::BucketInfo> {
        let bucket = bucket.to_owned();
        self.blocking(move |s| s.bucket(&bucket)).await
    }
}

/// The SSE-C key of a request, refused on plain HTTP off loopback (as AWS refuses it
/// without TLS).
fn customer_key<T>(
    req: &S3Request<T>,
    headers: CustomerHeaders<'_>,
) -> S3Result<Option<CustomerKey>> {
    if headers.given()
        && let Some(conn) = req.extensions.get::<Connection>()
        && !conn.may_carry_keys()
    {
        return Err(error(
            S3ErrorCode::InvalidRequest,
            "Requests specifying Server Side Encryption with Customer provided keys must be \
             made over a secure connection.",
        ));
    }
    headers.key()
}

fn timestamp(ms: i64) -> Timestamp {
    let at = SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    Timestamp::from(at)
}

fn seconds(t: &Timestamp) -> i64 {
    let mut out = Vec::new();
    if t.format(TimestampFormat::EpochSeconds, &mut out).is_err() {
        return 0;
    }
    let text = String::from_utf8_lossy(&out);
    let whole = text.split('.').next().unwrap_or_default();
    whole.parse().unwrap_or(0)
}

fn etag(meta: &ObjectMeta) -> ETag {
    ETag::Strong(meta.etag.clone())
}

fn condition_text(c: &ETagCondition) -> String {
    match c {
        ETagCondition::Any => "*".into(),
        ETagCondition::ETag(tag) => tag.value().to_owned(),
    }
}

fn read_conditions(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> ReadConditions {
    ReadConditions {
        if_match: if_match.map(condition_text),
        if_none_match: if_none_match.map(condition_text),
        if_modified_since: if_modified_since.map(seconds),
        if_unmodified_since: if_unmodified_since.map(seconds),
    }
}

/// The conditional-write headers (If-Match, If-None-Match: *) of a PUT, a completion or a
/// copy's destination.
fn write_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<WriteCondition> {
    match (if_match, if_none_match) {
        (Some(_), Some(_)) => Err(error(
            S3ErrorCode::NotImplemented,
            "If-Match and If-None-Match together are not supported",
        )),
        (Some(m), None) => Ok(WriteCondition::IfMatch(condition_text(m))),
        (None, Some(ETagCondition::Any)) => Ok(WriteCondition::IfAbsent),
        (None, Some(_)) => Err(error(
            S3ErrorCode::NotImplemented,
            "If-None-Match takes only * on writes",
        )),
        (None, None) => Ok(WriteCondition::Always),
    }
}

/// A header read from the request itself, for those s3s's input does not carry (If-Match
/// on CopyObject).
fn header_condition<T>(req: &S3Request<T>, name: &str) -> S3Result<Option<ETagCondition>> {
    req.headers
        .get(name)
        .map(|v| {
            ETagCondition::parse_http_header(v.as_bytes()).map_err(|_| {
                error(
                    S3ErrorCode::InvalidArgument,
                    format!("invalid {name} header"),
                )
            })
        })
        .transpose()
}

fn tags_from_header(text: Option<&str>) -> S3Result<BTreeMap<String, String>> {
    let mut tags = BTreeMap::new();
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(tags);
    };
    for pair in text.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            encoding::decode_key(s)
                .map_err(|_| error(S3ErrorCode::InvalidArgument, "invalid x-amz-tagging header"))
        };
        tags.insert(decode(k)?, decode(v)?);
    }
    check_tags(&tags)?;
    Ok(tags)
}

fn check_tags(tags: &BTreeMap<String, String>) -> S3Result<()> {
    if tags.len() > 10 {
        return Err(error(
            S3ErrorCode::InvalidTag,
            "Object tags cannot be greater than 10",
        ));
    }
    if tags.keys().any(|k| k.is_empty() || k.chars().count() > 128)
        || tags.values().any(|v| v.chars().count() > 256)
    {
        return Err(error(
            S3ErrorCode::InvalidTag,
            "A tag key is 1 to 128 characters and its value at most 256",
        ));
    }
    Ok(())
}

fn http_date(t: &Timestamp) -> S3Result<String> {
    let mut out = Vec::new();
    t.format(TimestampFormat::HttpDate, &mut out)
        .map_err(internal)?;
    String::from_utf8(out).map_err(internal)
}

/// The content headers S3 keeps with an object, from a request (the store keeps them by
/// these names, and knows nothing of them).
struct ContentHeaders<'a> {
    cache_control: Option<&'a str>,
    content_disposition: Option<&'a str>,
    content_encoding: Option<&'a str>,
    content_language: Option<&'a str>,
    expires: Option<&'a Timestamp>,
}

impl ContentHeaders<'_> {
    fn to_map(&self) -> S3Result<BTreeMap<String, String>> {
        let mut map = BTreeMap::new();
        for (name, value) in [
            ("cache-control", self.cache_control),
            ("content-disposition", self.content_disposition),
            ("content-encoding", self.content_encoding),
            ("content-language", self.content_language),
        ] {
            if let Some(v) = value {
                map.insert(name.to_owned(), v.to_owned());
            }
        }
        if let Some(t) = self.expires {
            map.insert("expires".into(), http_date(t)?);
        }
        Ok(map)
    }
}

/// An object's kept headers, as the response fields they fill.
struct KeptHeaders {
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
    expires: Option<Timestamp>,
    website_redirect_location: Option<String>,
    storage_class: Option<StorageClass>,
}

fn kept(meta: &ObjectMeta) -> KeptHeaders {
    let get = |name: &str| meta.headers.get(name).cloned();
    KeptHeaders {
        cache_control: get("cache-control"),
        content_disposition: get("content-disposition"),
        content_encoding: get("content-encoding"),
        content_language: get("content-language"),
        expires: get("expires").and_then(|t| Timestamp::parse(TimestampFormat::HttpDate, &t).ok()),
        website_redirect_location: meta.website_redirect_location().map(str::to_owned),
        storage_class: meta
            .storage_class()
            .map(|c| StorageClass::from(c.to_owned())),
    }
}

fn metadata_of(meta: &ObjectMeta) -> Option<Metadata> {
    (!meta.metadata.is_empty()).then(|| {
        meta.metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
}

fn metadata_in(m: Option<&Metadata>) -> BTreeMap<String, String> {
    m.map(|m| {
        m.iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect()
    })
    .unwrap_or_default()
}

fn content_md5_hex(md5: Option<&str>) -> S3Result<Option<String>> {
    use base64::Engine as _;
    md5.map(|m| {
        base64::engine::general_purpose::STANDARD
            .decode(m)
            .ok()
            .filter(|b| b.len() == 16)
            .map(|b| crate::encoding::hex(&b))
            .ok_or_else(|| {
                error(
                    S3ErrorCode::InvalidDigest,
                    "The Content-MD5 you specified is not valid.",
                )
            })
    })
    .transpose()
}

fn byte_range(r: Range) -> ByteRange {
    match r {
        Range::Int { first, last } => ByteRange::From { first, last },
        Range::Suffix { length } => ByteRange::Suffix(length),
    }
}

/// A request body as a blocking reader for the store (to be moved onto the blocking pool),
/// and what to answer if it breaks off.
fn body_reader(
    body: Option<StreamingBlob>,
    extensions: &http::Extensions,
) -> (Box<dyn io::Read + Send>, BodyOutcome) {
    let outcome = BodyOutcome {
        broke: Arc::new(AtomicBool::new(false)),
        payload: extensions.get::<Verdict>().cloned(),
    };
    let reader: Box<dyn io::Read + Send> = match body {
        None => Box::new(io::empty()),
        Some(blob) => {
            let broke = outcome.broke.clone();
            let stream = blob.map_err(move |e| {
                broke.store(true, Ordering::Release);
                io::Error::other(e)
            });
            Box::new(tokio_util::io::SyncIoBridge::new(
                tokio_util::io::StreamReader::new(stream),
            ))
        }
    };
    (reader, outcome)
}

/// Whether a request body broke off on its way into the store.
struct BodyOutcome {
    broke: Arc<AtomicBool>,
    payload: Option<Verdict>,
}

impl BodyOutcome {
    /// The answer to a store call that read the body. A body that broke off (it did not
    /// match its SHA-256, the client went away, s3s refused a chunk's signature) is why the
    /// call failed, and the client's doing, whatever the store made of it.
    fn answer(&self, e: StoreError) -> S3Error {
        if self.payload.as_ref().is_some_and(Verdict::mismatched) {
            payload::mismatch()
        } else if self.broke.load(Ordering::Acquire) {
            error(
                S3ErrorCode::IncompleteBody,
                "You did not provide the number of bytes specified by the Content-Length HTTP \
                 header.",
            )
        } else {
            from_store(e)
        }
    }
}

/// The copy source of a CopyObject or UploadPartCopy: which object (its only version is
/// `null`), its SSE-C key, and the conditions it must meet.
fn copy_source<T>(
    req: &S3Request<T>,
    source: &CopySource,
    customer: CustomerHeaders<'_>,
    conditions: ReadConditions,
) -> S3Result<store::CopySource> {
    let sse_c = customer_key(req, customer)?;
    let CopySource::Bucket {
        bucket,
        key,
        version_id,
    } = source
    else {
        return Err(error(
            S3ErrorCode::NotImplemented,
            "only bucket copy sources are supported",
        ));
    };
    check_version(version_id.as_deref())?;
    Ok(store::CopySource {
        bucket: bucket.to_string(),
        key: key.to_string(),
        sse_c,
        conditions,
    })
}

/// Writes what the store reads into a channel that feeds a response body.
struct BodySender {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, io::Error>>,
    buf: BytesMut,
}

impl BodySender {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl io::Write for BodySender {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= BODY_CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// One page of a listing: objects and common prefixes in key order.
struct Page {
    objects: Vec<ObjectMeta>,
    prefixes: Vec<String>,
    truncated: bool,
    /// Where the next page starts (after this key or prefix).
    next: Option<String>,
}

/// S3's listing rules over the store's sorted keys: keys after `after` (a key, or a common
/// prefix whose keys are all skipped), grouped by `delimiter` after `prefix`.
fn page(
    all: Vec<ObjectMeta>,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<&str>,
    max: usize,
) -> Page {
    let mut page = Page {
        objects: Vec::new(),
        prefixes: Vec::new(),
        truncated: false,
        next: None,
    };
    let delimiter = delimiter.filter(|d| !d.is_empty());
    let mut count = 0;
    for meta in all {
        if !meta.key.starts_with(prefix) {
            continue;
        }
        if let Some(after) = after {
            let after_prefix = delimiter.is_some_and(|d| after.ends_with(d));
            if meta.key.as_str() <= after || (after_prefix && meta.key.starts_with(after)) {
                continue;
            }
        }
        let grouped = delimiter.and_then(|d| {
            meta.key[prefix.len()..]
                .find(d)
                .map(|at| meta.key[..prefix.len() + at + d.len()].to_owned())
        });
        if let Some(common) = &grouped
            && page.prefixes.last() == Some(common)
        {
            continue;
        }
        if count == max {
            page.truncated = true;
            break;
        }
        count += 1;
        match grouped {
            Some(common) => {
                page.next = Some(common.clone());
                page.prefixes.push(common);
            }
            None => {
                page.next = Some(meta.key.clone());
                page.objects.push(meta);
            }
        }
    }
    if !page.truncated {
        page.next = None;
    }
    page
}

fn encode_token(key: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

fn decode_token(token: &str) -> S3Result<String> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            error(
                S3ErrorCode::InvalidArgument,
                "The continuation token provided is incorrect",
            )
        })
}

fn owner() -> Owner {
    Owner {
        display_name: Some(OWNER_NAME.into()),
        id: Some(ACCOUNT.into()),
    }
}

/// The request's SSE-C key (`x-amz-server-side-encryption-customer-*`), checked, on any
/// input that has those three fields.
macro_rules! customer_key_of {
    ($req:expr) => {
        customer_key(
            &$req,
            CustomerHeaders {
                algorithm: $req.input.sse_customer_algorithm.as_deref(),
                key: $req.input.sse_customer_key.as_deref(),
                md5: $req.input.sse_customer_key_md5.as_deref(),
            },
        )
    };
}

/// [`copy_source`] of a CopyObject or UploadPartCopy, whose `copy_source*` fields have the
/// same names.
macro_rules! copy_source_of {
    ($req:expr) => {
        copy_source(
            &$req,
            &$req.input.copy_source,
            CustomerHeaders {
                algorithm: $req.input.copy_source_sse_customer_algorithm.as_deref(),
                key: $req.input.copy_source_sse_customer_key.as_deref(),
                md5: $req.input.copy_source_sse_customer_key_md5.as_deref(),
            },
            read_conditions(
                $req.input.copy_source_if_match.as_ref(),
                $req.input.copy_source_if_none_match.as_ref(),
                $req.input.copy_source_if_modified_since.as_ref(),
                $req.input.copy_source_if_unmodified_since.as_ref(),
            ),
        )
    };
}

/// What PutObject and CreateMultipartUpload both say of the object to come: encryption,
/// content type, metadata, tags and content headers.
macro_rules! new_object_options {
    ($input:expr, $customer:expr) => {
        PutOptions {
            encryption: requested(
                $input.server_side_encryption.as_ref(),
                $input.ssekms_key_id.as_deref(),
                $input.bucket_key_enabled,
                $customer,
            )?,
            content_type: $input.content_type.clone(),
            metadata: metadata_in($input.metadata.as_ref()),
            tags: tags_from_header($input.tagging.as_deref())?,
            headers: ContentHeaders {
                cache_control: $input.cache_control.as_deref(),
                content_disposition: $input.content_disposition.as_deref(),
                content_encoding: $input.content_encoding.as_deref(),
                content_language: $input.content_language.as_deref(),
                expires: $input.expires.as_ref(),
            }
            .to_map()?,
            storage_class: $input.storage_class.as_ref().map(|c| c.as_str().to_owned()),
            website_redirect_location: $input.website_redirect_location.clone(),
            ..Default::default()
        }
    };
}

#[async_trait::async_trait]
impl S3 for Endpoint {
    async fn list_buckets(
        &self,
        _req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let buckets = self.blocking(|s| s.list_buckets()).await?;
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(
                buckets
                    .into_iter()
                    .map(|b| Bucket {
                        name: Some(b.name),
                        creation_date: Some(timestamp(b.created)),
                        bucket_region: Some(self.region.clone()),
                    })
                    .collect(),
            ),
            owner: Some(owner()),
            ..Default::default()
        }))
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let bucket = req.input.bucket.clone();
        self.blocking(move |s| s.create_bucket(&bucket, None))
            .await?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{}", req.input.bucket)),
        }))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.require_bucket(&req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.region.clone()),
            ..Default::default()
        }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.require_bucket(&req.input.bucket).await?;
        // us-east-1 is said with an empty constraint.
        let location = (self.region != "us-east-1")
            .then(|| BucketLocationConstraint::from(self.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint: location,
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let bucket = req.input.bucket;
        self.blocking(move |s| s.delete_bucket(&bucket)).await?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        // Never enabled: S3 then answers with no status.
        self.require_bucket(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketVersioningOutput::default()))
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        self.require_bucket(&req.input.bucket).await?;
        Err(error(
            S3ErrorCode::NotImplemented,
            "reseal serve keeps no object versions; versioning cannot be enabled",
        ))
    }

    async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        let info = self.require_bucket(&req.input.bucket).await?;
        let (algorithm, key, bucket_key) = match info.default_encryption {
            DefaultEncryption::SseS3 => (ServerSideEncryption::AES256, None, false),
            DefaultEncryption::SseKms { key_id, bucket_key } => {
                (ServerSideEncryption::AWS_KMS, key_id, bucket_key)
            }
            DefaultEncryption::DsseKms { key_id } => {
                (ServerSideEncryption::AWS_KMS_DSSE, Some(key_id), false)
            }
        };
        Ok(S3Response::new(GetBucketEncryptionOutput {
            server_side_encryption_configuration: Some(ServerSideEncryptionConfiguration {
                rules: vec![ServerSideEncryptionRule {
                    apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
                        sse_algorithm: ServerSideEncryption::from_static(algorithm),
                        kms_master_key_id: key,
                    }),
                    bucket_key_enabled: Some(bucket_key),
                }],
            }),
        }))
    }

    async fn put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        let config = req.input.server_side_encryption_configuration;
        let [rule] = config.rules.as_slice() else {
            return Err(error(
                S3ErrorCode::MalformedXML,
                "a bucket encryption configuration has exactly one rule",
            ));
        };
        let Some(default) = &rule.apply_server_side_encryption_by_default else {
            return Err(error(
                S3ErrorCode::MalformedXML,
                "the rule has no ApplyServerSideEncryptionByDefault",
            ));
        };
        let key = default.kms_master_key_id.clone().filter(|k| !k.is_empty());
        let default = match default.sse_algorithm.as_str() {
            ServerSideEncryption::AES256 if key.is_some() => {
                return Err(error(
                    S3ErrorCode::InvalidArgument,
                    "a KMS key is given only with aws:kms or aws:kms:dsse",
                ));
            }
            ServerSideEncryption::AES256 => DefaultEncryption::SseS3,
            ServerSideEncryption::AWS_KMS => DefaultEncryption::SseKms {
                key_id: key,
                bucket_key: rule.bucket_key_enabled.unwrap_or(false),
            },
            ServerSideEncryption::AWS_KMS_DSSE => DefaultEncryption::DsseKms {
                key_id: key.unwrap_or_else(|| crate::store::keys::DEFAULT_KMS_ALIAS.into()),
            },
            other => {
                return Err(error(
                    S3ErrorCode::InvalidArgument,
                    format!("unknown SSEAlgorithm {other}"),
                ));
            }
        };
        let bucket = req.input.bucket;
        self.blocking(move |s| {
            // A key that does not exist is refused now, not at the next write.
            if let DefaultEncryption::SseKms {
                key_id: Some(k), ..
            }
            | DefaultEncryption::DsseKms { key_id: k } = &default
            {
                s.keys().describe_key(k)?;
            }
            s.set_default_encryption(&bucket, default)
        })
        .await?;
        Ok(S3Response::new(PutBucketEncryptionOutput {}))
    }

    async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        // As in S3: the bucket goes back to SSE-S3, never to no encryption.
        let bucket = req.input.bucket;
        self.blocking(move |s| s.set_default_encryption(&bucket, DefaultEncryption::SseS3))
            .await?;
        Ok(S3Response::new(DeleteBucketEncryptionOutput {}))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max = input.max_keys.unwrap_or(1000).clamp(0, 1000) as usize;
        let after = match &input.continuation_token {
            Some(token) => Some(decode_token(token)?),
            None => input.start_after.clone(),
        };
        let (bucket, listed_prefix) = (input.bucket.clone(), prefix.clone());
        let all = self
            .blocking(move |s| s.list(&bucket, &listed_prefix))
            .await?;
        let page = page(
            all,
            &prefix,
            input.delimiter.as_deref(),
            after.as_deref(),
            max,
        );
        let url = input
            .encoding_type
            .as_ref()
            .is_some_and(|e| e.as_str() == EncodingType::URL);
        let enc = |s: String| if url { encoding::encode_key(&s) } else { s };
        let key_count = (page.objects.len() + page.prefixes.len()) as i32;
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(enc(prefix)),
            delimiter: input.delimiter.map(enc),
            max_keys: Some(max as i32),
            key_count: Some(key_count),
            continuation_token: input.continuation_token,
            start_after: input.start_after.map(enc),
            is_truncated: Some(page.truncated),
            next_continuation_token: page.next.as_deref().map(encode_token),
            encoding_type: input.encoding_type,
            contents: Some(
                page.objects
                    .into_iter()
                    .map(|m| Object {
                        e_tag: Some(etag(&m)),
                        last_modified: Some(timestamp(m.modified)),
                        size: Some(m.size as i64),
                        storage_class: Some(ObjectStorageClass::from(
                            m.storage_class()
                                .unwrap_or(STANDARD_STORAGE_CLASS)
                                .to_owned(),
                        )),
                        owner: input.fetch_owner.unwrap_or(false).then(owner),
                        key: Some(enc(m.key)),
                        ..Default::default()
                    })
                    .collect(),
            ),
            common_prefixes: Some(
                page.prefixes
                    .into_iter()
                    .map(|p| CommonPrefix {
                        prefix: Some(enc(p)),
                    })
                    .collect(),
            ),
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        // Version 1 of the listing (rclone's default): a marker instead of a token.
        let v2 = req.map_input(|i| ListObjectsV2Input {
            bucket: i.bucket,
            delimiter: i.delimiter,
            encoding_type: i.encoding_type,
            max_keys: i.max_keys,
            prefix: i.prefix,
            start_after: i.marker,
            ..Default::default()
        });
        let out = self.list_objects_v2(v2).await?.output;
        let next_marker = out
            .next_continuation_token
            .as_deref()
            .map(decode_token)
            .transpose()?;
        Ok(S3Response::new(ListObjectsOutput {
            name: out.name,
            prefix: out.prefix,
            marker: out.start_after,
            max_keys: out.max_keys,
            is_truncated: out.is_truncated,
            contents: out.contents,
            common_prefixes: out.common_prefixes,
            delimiter: out.delimiter,
            next_marker,
            encoding_type: out.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        // An unversioned bucket: every object is its key's only version, `null`.
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max = input.max_keys.unwrap_or(1000).clamp(0, 1000) as usize;
        let (bucket, listed_prefix) = (input.bucket.clone(), prefix.clone());
        let all = self
            .blocking(move |s| s.list(&bucket, &listed_prefix))
            .await?;
        let page = page(
            all,
            &prefix,
            input.delimiter.as_deref(),
            input.key_marker.as_deref().filter(|k| !k.is_empty()),
            max,
        );
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(input.bucket),
            prefix: Some(prefix),
            delimiter: input.delimiter,
            max_keys: Some(max as i32),
            key_marker: input.key_marker,
            is_truncated: Some(page.truncated),
            next_key_marker: page.next.clone(),
            next_version_id_marker: page.next.map(|_| "null".into()),
            versions: Some(
                page.objects
                    .into_iter()
                    .map(|m| ObjectVersion {
                        e_tag: Some(etag(&m)),
                        is_latest: Some(true),
                        last_modified: Some(timestamp(m.modified)),
                        size: Some(m.size as i64),
                        version_id: Some("null".into()),
                        owner: Some(owner()),
                        key: Some(m.key),
                        ..Default::default()
                    })
                    .collect(),
            ),
            common_prefixes: Some(
                page.prefixes
                    .into_iter()
                    .map(|p| CommonPrefix { prefix: Some(p) })
                    .collect(),
            ),
            ..Default::default()
        }))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let customer = customer_key_of!(req)?;
        let input = req.input;
        let options = PutOptions {
            content_md5: content_md5_hex(input.content_md5.as_deref())?,
            condition: write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?,
            ..new_object_options!(input, customer)
        };
        let (body, outcome) = body_reader(input.body, &req.extensions);
        let (bucket, key) = (input.bucket, input.key);
        let meta = self
            .blocking_reading(&outcome, move |s| s.put(&bucket, &key, body, options))
            .await?;
        let d = self.describe(&meta.sse);
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(etag(&meta)),
            server_side_encryption: d.sse,
            ssekms_key_id: d.kms_key_id,
            bucket_key_enabled: d.bucket_key,
            sse_customer_algorithm: d.customer_algorithm,
            sse_customer_key_md5: d.customer_key_md5,
            size: Some(meta.size as i64),
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let customer = customer_key_of!(req)?;
        let input = req.input;
        check_version(input.version_id.as_deref())?;
        let conditions = read_conditions(
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        );
        let (bucket, key) = (input.bucket, input.key);
        let meta = self
            .blocking(move |s| {
                let meta = s.head(&bucket, &key)?;
                conditions.check(&meta)?;
                s.check_customer_key(&meta, customer.as_ref())?;
                Ok(meta)
            })
            .await?;
        let d = self.describe(&meta.sse);
        let k = kept(&meta);
        let tag_count = meta.tags.len();
        let mut response = S3Response::new(HeadObjectOutput {
            accept_ranges: Some("bytes".into()),
            content_length: Some(meta.size as i64),
            content_type: meta.content_type.clone(),
            e_tag: Some(etag(&meta)),
            last_modified: Some(timestamp(meta.modified)),
            metadata: metadata_of(&meta),
            server_side_encryption: d.sse,
            ssekms_key_id: d.kms_key_id,
            bucket_key_enabled: d.bucket_key,
            sse_customer_algorithm: d.customer_algorithm,
            sse_customer_key_md5: d.customer_key_md5,
            parts_count: (!meta.parts.is_empty()).then_some(meta.parts.len() as i32),
            cache_control: k.cache_control,
            content_disposition: k.content_disposition,
            content_encoding: k.content_encoding,
            content_language: k.content_language,
            expires: k.expires,
            website_redirect_location: k.website_redirect_location,
            storage_class: k.storage_class,
            ..Default::default()
        });
        // As S3 gives it, so that a copy knows whether to read the tags.
        if tag_count > 0 {
            response.headers.insert(
                http::HeaderName::from_static("x-amz-tagging-count"),
                http::HeaderValue::from(tag_count),
            );
        }
        Ok(response)
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let customer = customer_key_of!(req)?;
        let input = req.input;
        check_version(input.version_id.as_deref())?;
        if input.part_number.is_some() {
            return Err(error(
                S3ErrorCode::NotImplemented,
                "GetObject by part number is not supported; use a Range",
            ));
        }
        let conditions = read_conditions(
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        );
        let range = input.range.map(byte_range);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, io::Error>>(4);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let store = self.store.clone();
        let (bucket, key) = (input.bucket, input.key);
        let reading = tokio::task::spawn_blocking(move || {
            let request = GetRequest {
                range,
                sse_c: customer.as_ref(),
                conditions,
            };
            let mut ready_tx = Some(ready_tx);
            let mut out = BodySender {
                tx: tx.clone(),
                buf: BytesMut::with_capacity(BODY_CHUNK),
            };
            let result = store
                .get_object(
                    &bucket,
                    &key,
                    &request,
                    &mut |meta, range| {
                        if let Some(ready) = ready_tx.take() {
                            let _ = ready.send((meta.clone(), range));
                        }
                    },
                    &mut out,
                )
                .and_then(|meta| {
                    io::Write::flush(&mut out).map_err(|source| StoreError::Io {
                        path: "response".into(),
                        source,
                    })?;
                    Ok(meta)
                });
            if let Err(e) = &result
                && ready_tx.is_none()
            {
                // Headers are out: the body ends with an error, and the client sees a
                // response cut short, never a wrong one.
                tracing::warn!(error = %e, "GET failed after its headers were sent");
                let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
            }
            result
        });
        let (meta, range) = match ready_rx.await {
            Ok(ready) => ready,
            Err(_) => {
                return Err(match reading.await.map_err(internal)? {
                    Err(e) => from_store(e),
                    Ok(_) => internal("the object was read without being announced"),
                });
            }
        };
        let d = self.describe(&meta.sse);
        let k = kept(&meta);
        let length = range.end - range.start;
        let content_range = input.range.map(|_| {
            format!(
                "bytes {}-{}/{}",
                range.start,
                range.end.saturating_sub(1),
                meta.size
            )
        });
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let mut response = S3Response::new(GetObjectOutput {
            body: Some(StreamingBlob::wrap(body)),
            accept_ranges: Some("bytes".into()),
            content_length: Some(length as i64),
            content_range,
            content_type: meta.content_type.clone(),
            e_tag: Some(etag(&meta)),
            last_modified: Some(timestamp(meta.modified)),
            metadata: metadata_of(&meta),
            server_side_encryption: d.sse,
            ssekms_key_id: d.kms_key_id,
            bucket_key_enabled: d.bucket_key,
            sse_customer_algorithm: d.customer_algorithm,
            sse_customer_key_md5: d.customer_key_md5,
            tag_count: (!meta.tags.is_empty()).then_some(meta.tags.len() as i32),
            parts_count: (!meta.parts.is_empty()).then_some(meta.parts.len() as i32),
            cache_control: input.response_cache_control.or(k.cache_control),
            content_disposition: input.response_content_disposition.or(k.content_disposition),
            content_encoding: input.response_content_encoding.or(k.content_encoding),
            content_language: input.response_content_language.or(k.content_language),
            expires: input.response_expires.or(k.expires),
            website_redirect_location: k.website_redirect_location,
            storage_class: k.storage_class,
            ..Default::default()
        });
        if let Some(t) = input.response_content_type {
            response.output.content_type = Some(t);
        }
        if response.output.content_range.is_some() {
            response.status = Some(http::StatusCode::PARTIAL_CONTENT);
        }
        Ok(response)
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        check_version(req.input.version_id.as_deref())?;
        let (bucket, key) = (req.input.bucket, req.input.key);
        self.blocking(move |s| match s.delete(&bucket, &key) {
            // S3 answers 204 for a key that is not there.
            Err(StoreError::NoSuchKey { .. }) => Ok(()),
            other => other,
        })
        .await?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        let quiet = input.delete.quiet.unwrap_or(false);
        let bucket = input.bucket;
        let keys: Vec<(String, Option<String>)> = input
            .delete
            .objects
            .into_iter()
            .map(|o| (o.key, o.version_id))
            .collect();
        if keys.len() > 1000 {
            return Err(error(
                S3ErrorCode::MalformedXML,
                "at most 1,000 keys in one DeleteObjects",
            ));
        }
        let results = self
            .blocking(move |s| {
                s.bucket(&bucket)?;
                Ok(keys
                    .into_iter()
                    .map(|(key, version)| {
                        let result = if version.as_deref().is_some_and(|v| v != "null") {
                            Err(error(S3ErrorCode::NoSuchVersion, "no such version"))
                        } else {
                            match s.delete(&bucket, &key) {
                                Ok(()) | Err(StoreError::NoSuchKey { .. }) => Ok(()),
                                Err(e) => Err(from_store(e)),
                            }
                        };
                        (key, version, result)
                    })
                    .collect::<Vec<_>>())
            })
            .await?;
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for (key, version_id, result) in results {
            match result {
                Ok(()) if !quiet => deleted.push(DeletedObject {
                    key: Some(key),
                    version_id,
                    ..Default::default()
                }),
                Ok(()) => {}
                Err(e) => errors.push(s3s::dto::Error {
                    code: Some(e.code().as_str().to_owned()),
                    message: e.message().map(str::to_owned),
                    key: Some(key),
                    version_id,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: Some(errors),
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let target_key = customer_key_of!(req)?;
        let source = copy_source_of!(req)?;
        let destination_if_match = header_condition(&req, "if-match")?;
        let destination_if_none_match = header_condition(&req, "if-none-match")?;
        let input = req.input;
        let encryption = requested(
            input.server_side_encryption.as_ref(),
            input.ssekms_key_id.as_deref(),
            input.bucket_key_enabled,
            target_key,
        )?;
        let metadata = if input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE)
        {
            Directive::Replace(NewMetadata {
                content_type: input.content_type.clone(),
                metadata: metadata_in(input.metadata.as_ref()),
            })
        } else {
            Directive::Copy
        };
        let tags = if input
            .tagging_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == TaggingDirective::REPLACE)
        {
            Directive::Replace(tags_from_header(input.tagging.as_deref())?)
        } else {
            Directive::Copy
        };
        let headers = ContentHeaders {
            cache_control: input.cache_control.as_deref(),
            content_disposition: input.content_disposition.as_deref(),
            content_encoding: input.content_encoding.as_deref(),
            content_language: input.content_language.as_deref(),
            expires: input.expires.as_ref(),
        }
        .to_map()?;
        let request = CopyObject {
            source,
            bucket: input.bucket,
            key: input.key,
            condition: write_condition(
                destination_if_match.as_ref(),
                destination_if_none_match.as_ref(),
            )?,
            encryption,
            metadata,
            tags,
            headers,
            storage_class: input.storage_class.map(|c| c.as_str().to_owned()),
            website_redirect_location: input.website_redirect_location,
        };
        let (meta, method) = self.blocking(move |s| s.copy_object(request)).await?;
        let d = self.describe(&meta.sse);
        let mut response = S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(etag(&meta)),
                last_modified: Some(timestamp(meta.modified)),
                ..Default::default()
            }),
            server_side_encryption: d.sse,
            ssekms_key_id: d.kms_key_id,
            bucket_key_enabled: d.bucket_key,
            sse_customer_algorithm: d.customer_algorithm,
            sse_customer_key_md5: d.customer_key_md5,
            ..Default::default()
        });
        // How the copy was done, for operators and tests: the fast path re-seals only the
        // data keys.
        let how = match method {
            CopyMethod::InPlace(ReencryptMethod::Reseal) => "reseal",
            CopyMethod::InPlace(ReencryptMethod::Rewrite) => "rewrite",
            CopyMethod::NewObject => "copy",
        };
        response.headers.insert(
            http::HeaderName::from_static("x-reseal-copy-method"),
            http::HeaderValue::from_static(how),
        );
        Ok(response)
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        check_version(req.input.version_id.as_deref())?;
        let (bucket, key) = (req.input.bucket, req.input.key);
        let meta = self.blocking(move |s| s.head(&bucket, &key)).await?;
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set: meta
                .tags
                .into_iter()
                .map(|(k, v)| Tag {
                    key: Some(k),
                    value: Some(v),
                })
                .collect(),
            version_id: None,
        }))
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        check_version(req.input.version_id.as_deref())?;
        let tags: BTreeMap<String, String> = req
            .input
            .tagging
            .tag_set
            .into_iter()
            .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
            .collect();
        check_tags(&tags)?;
        let (bucket, key) = (req.input.bucket, req.input.key);
        self.blocking(move |s| s.set_tags(&bucket, &key, tags))
            .await?;
        Ok(S3Response::new(PutObjectTaggingOutput::default()))
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        check_version(req.input.version_id.as_deref())?;
        let (bucket, key) = (req.input.bucket, req.input.key);
        self.blocking(move |s| s.set_tags(&bucket, &key, BTreeMap::new()))
            .await?;
        Ok(S3Response::new(DeleteObjectTaggingOutput::default()))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let customer = customer_key_of!(req)?;
        let input = req.input;
        let options = new_object_options!(input, customer);
        let (bucket, key) = (input.bucket.clone(), input.key.clone());
        let upload = self
            .blocking(move |s| s.create_upload(&bucket, &key, options))
            .await?;
        let d = self.describe(&upload.object.sse);
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload.id),
            server_side_encryption: d.sse,
            ssekms_key_id: d.kms_key_id,
            bucket_key_enabled: d.bucket_key,
            sse_customer_algorithm: d.customer_algorithm,
            sse_customer_key_md5: d.customer_key_md5,
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let customer = customer_key_of!(req)?;
        let input = req.input;
        let number = part_number(input.part_number)?;
        let expected_md5 = content_md5_hex(input.content_md5.as_deref())?;
        let (mut body, outcome) = body_reader(input.body, &req.extensions);
        let (bucket, key, id) = (input.bucket, input.key, input.upload_id);
        let (part, sse) = self
            .blocking_reading(&outcome, move |s| {
                let upload = s.upload_of(&bucket, &key, &id)?;
                let part = s.upload_part(&bucket, &id, number, customer.as_ref(), &mut body)?;
                if let Some(expected) = expected_md5
                    && !expected.eq_ignore_ascii_case(&part.etag)
                {
                    return Err(StoreError::BadDigest {
                        bucket,
                        key,
                        expected,
                        actual: part.etag,
                    });
                }
                Ok((part, upload.object.sse))
            })
            .await?;
        let d = self.describe(&sse);
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(part.etag)),
            server_side_encryption: d.sse,
            ssekms_key_id: d.kms_key_id,
            bucket_key_enabled: d.bucket_key,
            sse_customer_algorithm: d.customer_algorithm,
            sse_customer_key_md5: d.customer_key_md5,
            ..Default::default()
        }))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let customer = customer_key_of!(req)?;
        let source = copy_source_of!(req)?;
        let input = req.input;
        let number = part_number(input.part_number)?;
        let range = match &input.copy_source_range {
            None => None,
            Some(text) => match Range::parse(text) {
                Ok(Range::Int {
                    first,
                    last: Some(last),
                }) => Some(ByteRange::From {
                    first,
                    last: Some(last),
                }),
                _ => {
                    return Err(error(
                        S3ErrorCode::InvalidArgument,
                        "The x-amz-copy-source-range value must be of the form bytes=first-last",
                    ));
                }
            },
        };
        let (bucket, key, id) = (input.bucket, input.key, input.upload_id);
        let (part, sse) = self
            .blocking(move |s| {
                let upload = s.upload_of(&bucket, &key, &id)?;
                let part =
                    s.upload_part_copy(&bucket, &id, number, customer.as_ref(), &source, range)?;
                Ok((part, upload.object.sse))
            })
            .await?;
        let d = self.describe(&sse);
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(part.etag)),
                last_modified: Some(timestamp(part.modified)),
                ..Default::default()
            }),
            server_side_encryption: d.sse,
            ssekms_key_id: d.kms_key_id,
            bucket_key_enabled: d.bucket_key,
            sse_customer_algorithm: d.customer_algorithm,
            sse_customer_key_md5: d.customer_key_md5,
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let condition = write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
        let mut parts = Vec::new();
        for part in input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default()
        {
            let number = part_number(part.part_number.unwrap_or(0))?;
            let tag = part.e_tag.map(ETag::into_value).unwrap_or_default();
            parts.push((number, tag));
        }
        if parts.is_empty() {
            return Err(error(
                S3ErrorCode::MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema",
            ));
        }
        let (bucket, key, id) = (input.bucket.clone(), input.key.clone(), input.upload_id);
        let meta = self
            .blocking(move |s| {
                s.upload_of(&bucket, &key, &id)?;
                s.complete_upload(&bucket, &id, &parts, condition)
            })
            .await?;
        let d = self.describe(&meta.sse);
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            e_tag: Some(etag(&meta)),
            server_side_encryption: d.sse,
            ssekms_key_id: d.kms_key_id,
            bucket_key_enabled: d.bucket_key,
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let (bucket, key, id) = (req.input.bucket, req.input.key, req.input.upload_id);
        self.blocking(move |s| {
            s.upload_of(&bucket, &key, &id)?;
            s.abort_upload(&bucket, &id)
        })
        .await?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
        let marker = input
            .part_number_marker
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(0);
        let (bucket, key, id) = (
            input.bucket.clone(),
            input.key.clone(),
            input.upload_id.clone(),
        );
        let parts = self
            .blocking(move |s| {
                s.upload_of(&bucket, &key, &id)?;
                s.list_parts(&bucket, &id)
            })
            .await?;
        let after: Vec<_> = parts.into_iter().filter(|p| p.number > marker).collect();
        let truncated = after.len() > max;
        let shown: Vec<_> = after.into_iter().take(max).collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: Some(max as i32),
            is_truncated: Some(truncated),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: shown.last().filter(|_| truncated).map(|p| p.number as i32),
            owner: Some(owner()),
            parts: Some(
                shown
                    .into_iter()
                    .map(|p| Part {
                        part_number: Some(p.number as i32),
                        e_tag: Some(ETag::Strong(p.etag)),
                        size: Some(p.size as i64),
                        last_modified: Some(timestamp(p.modified)),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let bucket = input.bucket.clone();
        let uploads = self.blocking(move |s| s.list_uploads(&bucket)).await?;
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            max_uploads: Some(1000),
            is_truncated: Some(false),
            uploads: Some(
                uploads
                    .into_iter()
                    .filter(|u| u.key.starts_with(&prefix))
                    .take(1000)
                    .map(|u| MultipartUpload {
                        key: Some(u.key),
                        upload_id: Some(u.id),
                        initiated: Some(timestamp(u.initiated)),
                        owner: Some(owner()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }))
    }
}

fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=crate::store::multipart::MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| {
            error(
                S3ErrorCode::InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive",
            )
        })
}

fn check_version(version: Option<&str>) -> S3Result<()> {
    match version {
        None | Some("null") => Ok(()),
        Some(_) => Err(error(
            S3ErrorCode::NoSuchVersion,
            "reseal serve keeps no versions: the only version is null",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(key: &str) -> ObjectMeta {
        ObjectMeta {
            bucket: "b".into(),
            key: key.into(),
            size: 0,
            etag: String::new(),
            content_type: None,
            metadata: BTreeMap::new(),
            tags: BTreeMap::new(),
            created: 0,
            modified: 0,
            data_id: "x".into(),
            segment_size: 0,
            sse: SseState::None,
            headers: BTreeMap::new(),
            md5: None,
            parts: Vec::new(),
        }
    }

    fn keys(p: &Page) -> (Vec<&str>, Vec<&str>) {
        (
            p.objects.iter().map(|m| m.key.as_str()).collect(),
            p.prefixes.iter().map(String::as_str).collect(),
        )
    }

    #[test]
    fn listing_pages_group_by_delimiter_and_resume_after_a_prefix() {
        let all: Vec<ObjectMeta> = ["a/1", "a/2", "b", "c/1", "c/d/2", "d"]
            .into_iter()
            .map(meta)
            .collect();
        let p = page(all.clone(), "", Some("/"), None, 2);
        assert_eq!(keys(&p), (vec!["b"], vec!["a/"]));
        assert!(p.truncated);
        let p = page(all.clone(), "", Some("/"), None, 3);
        assert_eq!(keys(&p), (vec!["b"], vec!["a/", "c/"]));
        assert_eq!(p.next.as_deref(), Some("c/"));
        let p = page(all.clone(), "", Some("/"), Some("c/"), 10);
        assert_eq!(keys(&p), (vec!["d"], vec![]));
        assert!(!p.truncated && p.next.is_none());
        let p = page(all.clone(), "c/", Some("/"), None, 10);
        assert_eq!(keys(&p), (vec!["c/1"], vec!["c/d/"]));
        let p = page(all, "", None, Some("b"), 2);
        assert_eq!(keys(&p), (vec!["c/1", "c/d/2"], vec![]));
        assert_eq!(p.next.as_deref(), Some("c/d/2"));
    }
}
